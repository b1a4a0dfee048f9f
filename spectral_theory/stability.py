"""Stability of the moment recursion for a constant step (THEORY.md section 4).

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
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["StabilityReport", "kernel_norm", "is_stable", "stability_limit", "check_step", "guard_steps",
           "ON_UNSTABLE", "DEFAULT_ON_UNSTABLE", "check_on_unstable"]

#: What a solver or the simulator does with a step size beyond the stability limit.
ON_UNSTABLE = ("raise", "warn")
DEFAULT_ON_UNSTABLE = "raise"


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


def _q(batch: int, kappa: float) -> float:
    return (batch + kappa - 2.0) / batch


def _moving(speeds: np.ndarray, weights: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Speeds and multiplicities of the modes that move (``s_i > 0``)."""
    s = np.asarray(speeds, dtype=float)
    w = np.ones_like(s) if weights is None else np.asarray(weights, dtype=float)
    mask = s > 0
    return s[mask], w[mask]


def kernel_norm(eta: float, speeds: np.ndarray, batch: int, kappa: float,
                weights: np.ndarray | None = None) -> float:
    """``sum_i w_i b_i / (1 - a_i)`` over moving modes (inf where some ``a_i >= 1``)."""
    s, w = _moving(speeds, weights)
    x = eta * s
    q = _q(batch, kappa)
    denom = batch * (2.0 - q * x)
    if np.any(denom <= 0):
        return math.inf
    return float(np.sum(w * x / denom))


def _upper_bound(batch: int, kappa: float) -> float:
    """Largest per-mode step ``x`` allowed by ``x < 2`` and ``a < 1``."""
    q = _q(batch, kappa)
    return min(2.0, 2.0 / q) if q > 0 else 2.0


def _low_window(batch: int, kappa: float) -> tuple[float, float] | None:
    """Per-mode steps ``x`` with ``a(x) <= -1``: ``[lo, hi]``, or None if there are none."""
    q = _q(batch, kappa)
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
    a = 1.0 - 2.0 * x + _q(batch, kappa) * x * x
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
    moving, w = _moving(speeds, weights)
    if moving.size == 0 or eta <= 0:
        return True
    if eta * moving.max() >= _upper_bound(batch, kappa):
        return False
    if kernel_norm(eta, moving, batch, kappa, w) >= 1.0:
        return False
    return _lower_ok(eta, moving, w, batch, kappa)


def stability_limit(speeds: np.ndarray, batch: int, kappa: float,
                    weights: np.ndarray | None = None) -> float:
    """End of the stable interval of constant steps ``(0, eta_max)`` (batch-mean convention);
    ``weights[i]``: the number of identical modes entry ``i`` stands for (default 1)."""
    moving, w = _moving(speeds, weights)
    if moving.size == 0:
        return math.inf
    smax = float(moving.max())
    eta_bound = _upper_bound(batch, kappa) / smax
    below = eta_bound * (1.0 - 1e-13)
    if kernel_norm(below, moving, batch, kappa, w) < 1.0:
        limit = eta_bound
    else:
        from scipy.optimize import brentq

        limit = float(brentq(lambda e: kernel_norm(e, moving, batch, kappa, w) - 1.0, 0.0, below,
                             xtol=1e-300, rtol=4 * np.finfo(float).eps, maxiter=500))
    window = _low_window(batch, kappa)
    if window is None:
        return limit
    # condition 3 can only change where some mode enters or leaves a <= -1: scan those windows
    lo, hi = window
    events = np.concatenate([lo / moving, hi / moving])
    events = np.unique(events[events < limit])
    edges = np.concatenate([events, [limit]])
    for left, right in zip(edges[:-1], edges[1:], strict=True):
        mid = 0.5 * (left + right)
        x = mid * moving
        n_low = float(w[1.0 - 2.0 * x + _q(batch, kappa) * x * x <= -1.0].sum())
        if n_low > 1:
            return float(left)
        if n_low > 0:
            grid = np.linspace(left, right, 65)[1:-1]
            bad = [e for e in grid if not _lower_ok(e, moving, w, batch, kappa)]
            if bad:
                first = bad[0]
                prev = max([e for e in grid if e < first], default=left)
                f = lambda e: (0.0 if _lower_ok(e, moving, w, batch, kappa) else 1.0) - 0.5  # noqa: E731
                # bisection on the predicate between the last good and the first bad grid point
                a_, b_ = prev, first
                for _ in range(200):
                    m_ = 0.5 * (a_ + b_)
                    if f(m_) < 0:
                        a_ = m_
                    else:
                        b_ = m_
                    if b_ - a_ <= 4 * np.finfo(float).eps * b_:
                        break
                return float(b_)
    return limit


def check_step(eta: float, speeds: np.ndarray, batch: int, kappa: float,
               limit: float | None = None) -> StabilityReport:
    """Stability report for one constant step."""
    speeds = np.asarray(speeds, dtype=float)
    moving = speeds[speeds > 0]
    if limit is None:
        limit = stability_limit(speeds, batch, kappa)
    if moving.size:
        x = eta * moving
        a = 1.0 - 2.0 * x + _q(batch, kappa) * x * x
        factor = float(max(np.max(np.abs(a)), np.max(np.abs(1.0 - x))))
    else:
        factor = 1.0
    knorm = kernel_norm(eta, moving, batch, kappa)
    return StabilityReport(eta=float(eta), limit=float(limit), kernel_norm=knorm,
                           max_mode_factor=factor, stable=is_stable(eta, speeds, batch, kappa))


def guard_steps(name: str, steps, speeds: np.ndarray, batch: int, kappa: float, *, on_unstable: str,
                warn_msgs: list[str], weights: np.ndarray | None = None) -> float:
    """Check a model's step sizes before it is trained; return its stability limit.

    ``steps``: ``(lr, first step)`` pairs in training order. At the first unstable one,
    ``on_unstable="raise"`` raises :class:`InstabilityError` (naming the step, the step
    size and the limit); ``"warn"`` records a message in ``warn_msgs`` and warns.
    Steps below the limit are stable; beyond it :func:`is_stable` decides (stable windows
    exist only for ``B = 1``, ``kappa < 1.5``).
    """
    import warnings

    from .errors import InstabilityError

    limit = stability_limit(speeds, batch, kappa, weights)
    checked: dict[float, bool] = {}
    for lr, start in steps:
        lr = float(lr)
        if lr < limit:
            continue
        if lr not in checked:
            checked[lr] = is_stable(lr, speeds, batch, kappa, weights)
        if not checked[lr]:
            if on_unstable == "raise":
                raise InstabilityError(name, int(start), lr, limit)
            msg = (f"model {name!r}: step size {lr:.6g} from step {int(start)} is beyond the "
                   f"stability limit {limit:.6g}")
            warn_msgs.append(msg)
            warnings.warn(msg, RuntimeWarning, stacklevel=4)
            break
    return limit
