"""Stability of the moment recursion for a constant step (``docs/theory.md`` §5).

For a model with speeds ``s``, batch ``B`` and latent kurtosis ``kappa``, a
constant step ``eta`` gives per-mode step ``x_i = eta s_i`` and, per mode with
``s_i > 0``,

* mean and cross moments: factor ``1 - x_i``;
* second moment: ``M_i <- a_i M_i + b_i (sum_j M_j + ...)`` with
  ``a_i = (1 - x_i)^2 + x_i^2 (kappa - 2)/B = 1 - 2 x_i + q x_i^2``,
  ``q = (B + kappa - 2)/B`` and ``b_i = x_i^2 / B > 0``.

The eigenvalues of ``diag(a) + b 1^T`` are: each value ``alpha`` shared by
``m >= 2`` modes, with multiplicity ``m - 1``; and the roots of the secular
equation ``g(z) = sum_k beta_k / (z - alpha_k) = 1`` over the distinct values
``alpha_1 < ... < alpha_n`` (``beta_k``: the sum of ``b_i`` over the modes sharing
``alpha_k``), one root in each ``(alpha_k, alpha_{k+1})`` and one above
``alpha_n``. ``g`` decreases between its poles, so the recursion is stable iff

1. ``x_i < 2`` for every moving mode (mean and cross moments);
2. ``a_i < 1`` and ``g(1) = sum_i b_i / (1 - a_i) = sum_i x_i / (B (2 - q x_i)) < 1``
   (the top root is below 1; ``g(1)`` is the l1 norm of the renewal kernel
   ``k_n = sum_i b_i a_i^n`` when all ``a_i >= 0``);
3. at most one mode has ``a_i <= -1``, and if one does, ``g(-1) > 1`` (the
   bottom root is above -1).

Condition 3 can bind only when ``q < 1/2`` (``B = 1`` and ``kappa < 1.5``, e.g.
Rademacher latents); otherwise every ``a_i >= 1 - 1/q > -1``. For ``B = 1``,
``kappa = 3``, ``s = lambda``, condition 2 reads
``sum_i eta lambda_i / (2 (1 - eta lambda_i)) < 1``. Conditions 1 and 2 have
the form ``eta < limit``; condition 3 can remove windows of larger steps, so
:func:`stability_limit` returns the end of the stable interval that starts at
0 and :func:`is_stable` is the exact test for any one step. Modes with
``s_i = 0`` never move and do not enter.

Schedules (``docs/theory.md`` §5, "Policy"): :func:`guard_steps` applies the policy
:data:`ON_UNSTABLE` for every solver and for Monte Carlo. A schedule above the limit for some
steps that returns below it is computed with a warning naming the steps, the limit and the
peak growth factor (the product over those steps of :func:`step_growth`, the spectral radius
of ``diag(a) + b 1^T`` from the secular equation, :func:`map_radius`); a final constant phase
above the limit is an error (except under ``"ignore"``), and so is an overflow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["StabilityReport", "StepCheck", "kernel_norm", "is_stable", "stability_limit", "check_step",
           "map_radius", "step_growth", "guard_steps", "ON_UNSTABLE", "DEFAULT_ON_UNSTABLE", "NEAR_LIMIT",
           "check_on_unstable"]

#: What a solver or the simulator does with step sizes beyond the stability limit
#: (``docs/theory.md`` §5): ``"warn"`` computes a transiently unstable schedule and warns,
#: ``"raise"`` refuses any step above the limit, ``"ignore"`` computes without a warning.
#: Whatever the value, a risk that overflows is an error; except under ``"ignore"``, so is a
#: model whose final constant phase is above the limit.
ON_UNSTABLE = ("warn", "raise", "ignore")
DEFAULT_ON_UNSTABLE = "warn"
#: a stable step at or above this fraction of the limit is warned about (unless "ignore")
NEAR_LIMIT = 0.99


def check_on_unstable(value: str) -> str:
    """``value`` if it is one of :data:`ON_UNSTABLE`, else a :class:`SpecError` naming them."""
    if value not in ON_UNSTABLE:
        from .errors import SpecError

        raise SpecError("on_unstable", value, f"must be one of {list(ON_UNSTABLE)}")
    return value


@dataclass(frozen=True)
class StabilityReport:
    eta: float
    limit: float
    kernel_norm: float
    max_mode_factor: float
    stable: bool

    @property
    def margin(self) -> float:
        """``limit / eta``: above 1 is stable."""
        return self.limit / self.eta if self.eta > 0 else math.inf


def moment_q(batch: int, kappa: float) -> float:
    """``q = (B + kappa - 2) / B``: the per-mode second-moment factor is ``a = 1 - 2x + q x^2``."""
    return (batch + kappa - 2.0) / batch


def _checked(speeds, batch, kappa, weights=None, eta=None):
    """The public functions' arguments, checked (a :class:`SpecError` naming the field):
    ``speeds`` a 1-D array of finite numbers ``>= 0``, ``batch`` an integer ``>= 1``, ``kappa``
    finite ``>= 1``, ``weights`` (if given) like ``speeds`` and of its length, ``eta`` (if
    given) finite ``>= 0``. Returns ``(speeds, batch, kappa, weights)``."""
    from .errors import SpecError
    from .spec.validate import array, finite, integer

    if eta is not None:
        finite("eta", eta, lo=0.0)
    batch = integer("batch", batch, lo=1)
    kappa = finite("kappa", kappa, lo=1.0)
    s = array("speeds", speeds, min_len=0)
    if weights is not None:
        weights = array("weights", weights, min_len=0)
        if weights.size != s.size:
            raise SpecError("weights", f"<array of length {weights.size}>",
                            f"must have one entry per speed ({s.size})")
    return s, batch, kappa, weights


def _moving(speeds: np.ndarray, weights: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Speeds and multiplicities of the modes that move (``s_i > 0``)."""
    s = np.asarray(speeds, dtype=float)
    w = np.ones_like(s) if weights is None else np.asarray(weights, dtype=float)
    mask = s > 0
    return s[mask], w[mask]


def kernel_norm(eta: float, speeds: np.ndarray, batch: int, kappa: float,
                weights: np.ndarray | None = None) -> float:
    """``sum_i w_i b_i / (1 - a_i)`` over moving modes (inf where some ``a_i >= 1``)."""
    speeds, batch, kappa, weights = _checked(speeds, batch, kappa, weights, eta)
    s, w = _moving(speeds, weights)
    x = eta * s
    q = moment_q(batch, kappa)
    denom = batch * (2.0 - q * x)
    if np.any(denom <= 0):
        return math.inf
    return float(np.sum(w * x / denom))


def _upper_bound(batch: int, kappa: float) -> float:
    """Largest per-mode step ``x`` allowed by ``x < 2`` and ``a < 1``."""
    q = moment_q(batch, kappa)
    return min(2.0, 2.0 / q) if q > 0 else 2.0


def _low_window(batch: int, kappa: float) -> tuple[float, float] | None:
    """Per-mode steps ``x`` with ``a(x) <= -1``: ``[lo, hi]``, or None if there are none."""
    q = moment_q(batch, kappa)
    if q >= 0.5:
        return None
    root = math.sqrt(1.0 - 2.0 * q)
    lo = 2.0 / (1.0 + root)
    hi = 2.0 / (1.0 - root) if root < 1.0 else math.inf
    return lo, hi


def _lower_ok(eta: float, moving: np.ndarray, weights: np.ndarray, batch: int, kappa: float) -> bool:
    """Condition 3: the bottom eigenvalue of the second-moment map is above -1
    (``weights``: how many identical modes each entry stands for)."""
    x = eta * moving
    a = 1.0 - 2.0 * x + moment_q(batch, kappa) * x * x
    low = a <= -1.0
    n_low = float(weights[low].sum())
    if n_low == 0:
        return True
    if n_low > 1:
        return False
    with np.errstate(divide="ignore"):
        g = float(np.sum(weights * (x * x / batch) / (-1.0 - a)))
    return g > 1.0 or math.isinf(g)


def is_stable(eta: float, speeds: np.ndarray, batch: int, kappa: float,
              weights: np.ndarray | None = None) -> bool:
    """Exact stability test of one constant step (conditions 1-3 of the module docstring);
    ``weights[i]``: the number of identical modes entry ``i`` stands for (default 1)."""
    speeds, batch, kappa, weights = _checked(speeds, batch, kappa, weights, eta)
    moving, w = _moving(speeds, weights)
    if moving.size == 0 or eta <= 0:
        return True
    if eta * moving.max() >= _upper_bound(batch, kappa):
        return False
    if kernel_norm(eta, moving, batch, kappa, w) >= 1.0:
        return False
    return _lower_ok(eta, moving, w, batch, kappa)


def _kernel_root(start: float, moving: np.ndarray, w: np.ndarray, batch: int, kappa: float) -> float:
    """The step ``eta <= start`` with ``kernel_norm(eta) = 1``, given ``kernel_norm(start) >= 1``
    (``start``: just below the pole of the fastest mode).

    ``k(eta) = sum_i w_i x_i / (B (2 - q x_i))`` (``x = eta s``) is increasing and convex on
    ``[0, 2 / (q max s))`` for ``q >= 0``, so its tangent lies below it: Newton's method started
    right of the root stays right of it and decreases monotonically to it (to the last ulp)."""
    q = moment_q(batch, kappa)
    # the fastest mode's term alone reaches 1 at x = 2B / (w + qB): the other terms only add,
    # so that step is right of the root (and left of the pole), a closer start than ``start``
    top = int(np.argmax(moving))
    e = min(start, 2.0 * batch / (float(w[top]) + q * batch) / float(moving[top]))
    for _ in range(400):
        den = 2.0 - q * e * moving
        k = float(np.sum(w * e * moving / den)) / batch
        with np.errstate(over="ignore"):  # speeds near the float range's top: dk = inf, a step of 0
            dk = float(np.sum(2.0 * w * moving / (den * den))) / batch
        step = (k - 1.0) / dk
        if not step > 4.0 * np.finfo(float).eps * e:  # converged, or rounding at the root
            return e - max(step, 0.0)
        e -= step
    return e  # pragma: no cover - quadratic convergence ends within ~50 steps of the pole


def secular_top(D: np.ndarray, b: np.ndarray) -> float:
    """The root ``v > 0`` of ``sum_i b_i / (v + D_i) = 1`` (``D_i >= 0``, ``min D = 0``, ``b >= 0``
    with ``b > 0`` where ``D = 0``): with ``D = max a - a`` the top eigenvalue of
    ``diag(a) + b 1^T`` is ``max a + v`` (the form keeps ``v`` accurate when it is tiny).

    ``h(v) = sum_i b_i / (v + D_i) - 1`` is convex and decreasing for ``v > 0``; started left of
    the root (``v = bm / 2``, ``bm`` the sum of ``b`` where ``D = 0``, so that ``h >= 1``) Newton's
    method increases monotonically to it."""
    v = 0.5 * float(b[D == 0].sum())
    for _ in range(400):
        inv = 1.0 / (v + D)
        binv = b * inv
        step = (float(binv.sum()) - 1.0) / float((binv * inv).sum())
        if not step > 4.0 * np.finfo(float).eps * v:
            return v + max(step, 0.0)
        v += step
    return v  # pragma: no cover - the distance to the pole doubles per step until it converges


def stability_limit(speeds: np.ndarray, batch: int, kappa: float,
                    weights: np.ndarray | None = None) -> float:
    """End of the stable interval of constant steps ``(0, eta_max)`` (batch-mean convention);
    ``weights[i]``: the number of identical modes entry ``i`` stands for (default 1). Invalid
    arguments (``batch < 1``, ``kappa < 1``, a negative or non-finite speed) are a
    :class:`~spectral_theory.errors.SpecError` naming the field."""
    speeds, batch, kappa, weights = _checked(speeds, batch, kappa, weights)
    moving, w = _moving(speeds, weights)
    if moving.size == 0:
        return math.inf
    smax = float(moving.max())
    with np.errstate(over="ignore"):
        eta_bound = _upper_bound(batch, kappa) / smax
    if not math.isfinite(eta_bound):  # subnormal speeds only: no finite step moves them
        return math.inf
    below = eta_bound * (1.0 - 1e-13)
    if kernel_norm(below, moving, batch, kappa, w) < 1.0:
        limit = eta_bound
    else:
        limit = _kernel_root(below, moving, w, batch, kappa)
    window = _low_window(batch, kappa)
    if window is None:
        return limit
    # condition 3 can only change where some mode enters or leaves a <= -1: scan those windows
    lo, hi = window
    with np.errstate(over="ignore"):  # a subnormal speed: its events are past the limit (inf), dropped
        events = np.concatenate([lo / moving, hi / moving])
    events = np.unique(events[events < limit])
    edges = np.concatenate([events, [limit]])
    for left, right in zip(edges[:-1], edges[1:], strict=True):
        mid = 0.5 * (left + right)
        x = mid * moving
        n_low = float(w[1.0 - 2.0 * x + moment_q(batch, kappa) * x * x <= -1.0].sum())
        if n_low > 1:
            return float(left)
        if n_low > 0:
            grid = np.linspace(left, right, 65)[1:-1]
            bad = [e for e in grid if not _lower_ok(e, moving, w, batch, kappa)]
            if bad:
                first = bad[0]
                prev = max([e for e in grid if e < first], default=left)
                # Brent's method on the sign of the predicate (-1: stable, +1: not) between
                # the last good and the first bad grid point (it bisects a step function);
                # reached only for B = 1, kappa < 1.5
                from scipy.optimize import brentq

                def sign(e: float) -> float:
                    return -1.0 if _lower_ok(e, moving, w, batch, kappa) else 1.0

                return float(brentq(sign, prev, first, xtol=1e-300, rtol=4 * np.finfo(float).eps,
                                    maxiter=500))
    return limit


def check_step(eta: float, speeds: np.ndarray, batch: int, kappa: float,
               limit: float | None = None) -> StabilityReport:
    """Stability report for one constant step."""
    speeds, batch, kappa, _ = _checked(speeds, batch, kappa, None, eta)
    moving = speeds[speeds > 0]
    if limit is None:
        limit = stability_limit(speeds, batch, kappa)
    if moving.size:
        x = eta * moving
        a = 1.0 - 2.0 * x + moment_q(batch, kappa) * x * x
        factor = float(max(np.max(np.abs(a)), np.max(np.abs(1.0 - x))))
    else:
        factor = 1.0
    knorm = kernel_norm(eta, moving, batch, kappa)
    return StabilityReport(eta=float(eta), limit=float(limit), kernel_norm=knorm,
                           max_mode_factor=factor, stable=is_stable(eta, speeds, batch, kappa))


def map_radius(eta: float, speeds: np.ndarray, batch: int, kappa: float,
               weights: np.ndarray | None = None) -> float:
    """Spectral radius of the second-moment map ``diag(a) + b 1^T`` of a constant step ``eta``
    over the moving modes (``weights[i]``: how many identical modes entry ``i`` stands for).

    From the secular equation (module docstring): the top eigenvalue is the root of
    ``sum_i w_i b_i / (z - a_i) = 1`` above ``max a``; the bottom one is the smallest ``a``
    when that value is shared by more than one mode, else the root below the second
    smallest. 1 when nothing moves.
    """
    speeds, batch, kappa, weights = _checked(speeds, batch, kappa, weights, eta)
    moving, w = _moving(speeds, weights)
    if moving.size == 0 or eta <= 0:
        return 1.0
    x = eta * moving
    with np.errstate(over="ignore"):
        x2 = x * x
    if not np.all(np.isfinite(x2)):  # x beyond ~1e154: the map's radius is beyond the float range
        return math.inf
    a = 1.0 - 2.0 * x + moment_q(batch, kappa) * x2
    wb = w * (x2 / batch)
    frozen = wb < np.finfo(float).tiny
    if frozen.any():  # x^2 underflows (x below ~1e-154): no rank-one part, the eigenvalue is a_i (= 1)
        still = float(np.abs(a[frozen]).max())
        rest = ~frozen
        return max(still, map_radius(eta, moving[rest], batch, kappa, w[rest])) if rest.any() else still
    amax = float(a.max())
    top = amax + secular_top(amax - a, wb)
    radius = abs(top)
    if float(a.min()) >= -radius:
        return radius
    # the bottom eigenvalue may be larger in modulus (B = 1, kappa < 1.5 only)
    ua, inv = np.unique(a, return_inverse=True)
    Wk = np.bincount(inv, weights=w)
    Bk = np.bincount(inv, weights=wb)
    if Wk[0] > 1.0 or ua.size == 1:
        bottom = float(ua[0]) if Wk[0] > 1.0 else top
    else:
        E = ua - ua[0]

        def f(u: float) -> float:  # secular function at z = ua[0] + u, decreasing on (0, E[1])
            with np.errstate(divide="ignore", invalid="ignore"):  # u at a pole (a gap at round-off)
                return float(np.sum(Bk / (u - E))) - 1.0

        gap = float(E[1])
        left, right = 0.5 * gap, 0.5 * gap
        while f(left) <= 0 and left > 0:
            left *= 0.5
        while f(right) >= 0 and right < gap:
            right = 0.5 * (right + gap)
        if not (f(left) > 0 > f(right)):  # a root at round-off distance of a pole: that pole
            bottom = float(ua[0]) if f(left) <= 0 else float(ua[1])
        else:
            from scipy.optimize import brentq  # reached only for B = 1, kappa < 1.5

            bottom = float(ua[0]) + brentq(f, left, right, xtol=1e-300, rtol=4 * np.finfo(float).eps,
                                           maxiter=500)
    return max(radius, abs(bottom))


def step_growth(eta: float, speeds: np.ndarray, batch: int, kappa: float,
                weights: np.ndarray | None = None) -> float:
    """How much one step of size ``eta`` can amplify the moments: the larger of
    :func:`map_radius` (second moments) and ``max |1 - x_i|`` (means and cross moments)."""
    speeds, batch, kappa, weights = _checked(speeds, batch, kappa, weights, eta)
    moving, _ = _moving(speeds, weights)
    mean = float(np.max(np.abs(1.0 - eta * moving))) if moving.size else 1.0
    return max(map_radius(eta, speeds, batch, kappa, weights), mean)


def _ranges_text(ranges, limit: int = 6) -> str:
    parts = [f"{a}" if a == b else f"{a}-{b}" for a, b in ranges[:limit]]
    if len(ranges) > limit:
        parts.append(f"... ({len(ranges)} ranges in all)")
    return ", ".join(parts)


def _limit_text(limit: float) -> str:
    """The stability limit in words (``nan``: per-step momentum coefficients, no single limit)."""
    if limit != limit:
        return "(per-step momentum coefficients: each step's own growth factor is at least 1)"
    return f"{limit:.6g} (batch-mean convention)"


def _growth_text(log10_growth: float) -> str:
    if not math.isfinite(log10_growth):
        return "infinite (the step coefficients overflow a float)"
    return f"{10.0 ** log10_growth:.4g}" if log10_growth < 300 else f"10^{log10_growth:.1f}"


@dataclass(frozen=True)
class StepCheck:
    """What :func:`guard_steps` found for one model's schedule.

    ``ranges``: the steps above the stability limit as inclusive ``(first, last)`` step ranges
    (steps ``0 .. steps - 1``); ``rates``: each step size above the limit and its per-step
    growth factor (:func:`step_growth`); ``log10_growth``: log10 of the peak growth factor,
    the product of those factors over every step above the limit; ``final``: ``(first step,
    step size)`` of the final constant phase when it is above the limit, else None.
    """

    model: str
    limit: float
    steps: int
    ranges: tuple[tuple[int, int], ...]
    rates: dict[float, float]
    max_step: float
    log10_growth: float
    final: tuple[int, float] | None

    @property
    def unstable(self) -> bool:
        """Some step is above the limit."""
        return bool(self.ranges)

    @property
    def growth(self) -> float:
        """The peak growth factor (``inf`` where it overflows a float)."""
        return 10.0 ** self.log10_growth if self.log10_growth < 300 else math.inf

    @property
    def count(self) -> int:
        """Number of steps above the limit."""
        return sum(b - a + 1 for a, b in self.ranges)

    def ranges_text(self) -> str:
        """The steps above the limit as text, e.g. ``0-9, 200-399``."""
        return _ranges_text(self.ranges)

    def growth_text(self) -> str:
        """The peak growth factor as text (``10^x`` from ``10^300`` on)."""
        return _growth_text(self.log10_growth)

    def entry(self) -> dict:
        """The ``diagnostics["unstable_steps"][model]`` entry of a result."""
        return {"steps": [[a, b] for a, b in self.ranges], "limit": self.limit,
                "max_step": self.max_step,
                "growth_bound": self.growth if math.isfinite(self.growth) else None,
                "log10_growth_bound": self.log10_growth,
                "final_phase_unstable": self.final is not None}

    def summary(self) -> str:
        """Which steps are above the limit, the limit and the peak growth factor, in words."""
        if not self.ranges:
            return f"no step is above the stability limit {_limit_text(self.limit)}"
        n = self.count
        return (f"step{'s' if n > 1 else ''} {_ranges_text(self.ranges)} ({n} of {self.steps}; step "
                f"sizes up to {self.max_step:.6g}) {'are' if n > 1 else 'is'} above the stability "
                f"limit {_limit_text(self.limit)}; peak growth factor "
                f"{_growth_text(self.log10_growth)} (the product over those steps of the spectral "
                "radius of the second-moment map)")

    def error(self, step: int, lr: float, why: str):
        """An :class:`InstabilityError` at ``step`` (step size ``lr``, the limit) saying ``why``,
        the steps above the limit and the peak growth factor."""
        from .errors import InstabilityError

        detail = why
        if self.ranges:
            detail += (f"; steps above the limit: {_ranges_text(self.ranges)} ({self.count} of "
                       f"{self.steps}); peak growth factor {_growth_text(self.log10_growth)}")
        return InstabilityError(self.model, int(step), float(lr), self.limit, detail=detail)


def report_transient(name: str, check: StepCheck, on_unstable: str, unstable_steps: dict | None,
                     warn_msgs: list | None) -> StepCheck:
    """Record a schedule's transient excursion above the limit in ``unstable_steps`` and, under
    ``on_unstable="warn"``, warn once (plain and momentum SGD alike; ``docs/theory.md`` §5)."""
    if unstable_steps is not None:
        unstable_steps[name] = check.entry()
    if on_unstable == "warn":
        msg = (f"model {name!r}: {check.summary()}. The schedule returns below the limit, so it "
               "is computed (the risk grows over those steps); on_unstable='ignore' (CLI "
               "--allow-unstable) silences this warning, 'raise' (--strict-stability) refuses it")
        if warn_msgs is not None:
            warn_msgs.append(msg)
        import warnings

        warnings.warn(msg, RuntimeWarning, stacklevel=user_stacklevel())
    return check


def user_stacklevel() -> int:
    """``stacklevel`` for a warning issued by the caller of this function that points at the
    first frame outside this package (the user's call)."""
    import os
    import sys

    pkg = os.path.dirname(os.path.abspath(__file__)) + os.sep
    frame = sys._getframe(1)
    level = 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(pkg):
        frame = frame.f_back
        level += 1
    return level


def _warn_near_limit(name: str, lrs: np.ndarray, limit: float, speeds: np.ndarray, batch: int,
                     kappa: float, weights: np.ndarray | None, warn_msgs: list[str] | None) -> None:
    """Warn about stable steps within ``1 - NEAR_LIMIT`` of the limit: there the coupling through
    ``sum_j U_j`` amplifies the forcing of the renewal equation by up to ``1 / (1 - K)``
    (``K = kernel_norm < 1``, the l1 norm of the kernel; ``docs/theory.md`` §5-6), so the risk can
    grow many-fold before it falls, and it falls slowly."""
    near = np.unique(lrs[(lrs >= NEAR_LIMIT * limit) & (lrs < limit)])
    if near.size == 0:
        return
    lr = float(near.max())
    amp = 1.0 / max(1.0 - kernel_norm(lr, speeds, batch, kappa, weights), np.finfo(float).tiny)
    msg = (f"model {name!r}: step size {lr:.6g} is {100 * lr / limit:.4g}% of the stability limit "
           f"{limit:.6g}; the coupling of the modes can amplify the risk up to {amp:.4g}-fold "
           f"(1 / (1 - kernel norm)) before it decays, and it decays slowly")
    if warn_msgs is not None:
        warn_msgs.append(msg)
    import warnings

    warnings.warn(msg, RuntimeWarning, stacklevel=user_stacklevel())


def guard_steps(name: str, phases, speeds: np.ndarray, batch: int, kappa: float, *, on_unstable: str,
                warn_msgs: list[str] | None = None, unstable_steps: dict | None = None,
                weights: np.ndarray | None = None) -> StepCheck:
    """The stability policy of ``docs/theory.md`` §5 for one model, before it is trained.

    ``phases``: the model's constant phases ``(step size, length)`` in training order
    (batch-mean convention). A step is above the limit when its size is at or beyond
    :func:`stability_limit` and :func:`is_stable` fails for it (below the limit every step is
    stable; beyond it stable windows exist only for ``B = 1``, ``kappa < 1.5``). Equal step
    sizes are tested, and their growth factor computed, once.

    * no step above the limit: returns the :class:`StepCheck` (``limit``) silently;
    * ``on_unstable="raise"``: :class:`InstabilityError` at the first step above the limit;
    * the final constant phase above the limit (the risk grows geometrically to the end of
      training): :class:`InstabilityError` at its first step, except under ``"ignore"``;
    * otherwise the model is computed: under ``"warn"`` a :class:`RuntimeWarning` names the
      model, the steps above the limit, the limit and the peak growth factor, and the message
      is appended to ``warn_msgs``. ``unstable_steps[name]`` (when given) receives
      :meth:`StepCheck.entry` under ``"warn"`` and ``"ignore"``.

    The caller still turns a risk that overflows into an error (:meth:`StepCheck.error`).
    """
    check_on_unstable(on_unstable)
    speeds, batch, kappa, weights = _checked(speeds, batch, kappa, weights)
    limit = stability_limit(speeds, batch, kappa, weights)
    arr = np.asarray(phases if isinstance(phases, np.ndarray) else list(phases), dtype=float)
    arr = arr.reshape(-1, 2)
    lrs, lens = arr[:, 0], arr[:, 1].astype(np.int64)
    total = int(lens.sum())
    cand = lrs >= limit
    rates: dict[float, float] = {}
    if cand.any():
        # beyond the limit only condition 3 can leave a step stable (B = 1, kappa < 1.5)
        exact_test = _low_window(batch, kappa) is not None
        for lr in np.unique(lrs[cand]):
            lr = float(lr)
            if not exact_test or not is_stable(lr, speeds, batch, kappa, weights):
                rates[lr] = step_growth(lr, speeds, batch, kappa, weights)
    if not rates:
        if on_unstable != "ignore":  # (a model above the limit gets the warning below instead)
            _warn_near_limit(name, lrs, limit, speeds, batch, kappa, weights, warn_msgs)
        return StepCheck(name, limit, total, (), {}, 0.0, 0.0, None)
    bad_lrs = np.array(sorted(rates))
    flag = cand & np.isin(lrs, bad_lrs)
    starts = np.concatenate([[0], np.cumsum(lens)[:-1]])
    idx = np.flatnonzero(flag)
    cut = np.flatnonzero(np.diff(idx) != 1) + 1
    firsts = idx[np.concatenate([[0], cut])]
    lasts = idx[np.concatenate([cut - 1, [idx.size - 1]])]
    ranges = tuple((int(starts[f]), int(starts[la] + lens[la] - 1)) for f, la in zip(firsts, lasts, strict=True))
    pos = np.searchsorted(bad_lrs, lrs[flag])
    steps_per_lr = np.bincount(pos, weights=lens[flag], minlength=bad_lrs.size)
    log10_growth = float(steps_per_lr @ np.log10([rates[float(v)] for v in bad_lrs]))
    final = None
    if flag[-1]:
        k = lrs.size - 1
        while k > 0 and lrs[k - 1] == lrs[-1]:
            k -= 1
        final = (int(starts[k]), float(lrs[-1]))
    check = StepCheck(name, limit, total, ranges, rates, float(bad_lrs.max()), log10_growth, final)
    if on_unstable == "raise":
        raise check.error(ranges[0][0], float(lrs[idx[0]]),
                          "on_unstable='raise' refuses any step above the stability limit")
    if final is not None and on_unstable != "ignore":
        raise check.error(final[0], final[1],
                          f"the final constant phase (steps {final[0]}-{total - 1}) is above the "
                          f"limit: the risk grows geometrically, by a factor up to "
                          f"{rates[final[1]]:.6g} per step, to the end of training "
                          "(on_unstable='ignore', CLI --allow-unstable, computes it anyway)")
    return report_transient(name, check, on_unstable, unstable_steps, warn_msgs)
