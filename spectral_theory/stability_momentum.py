"""Exact stability of momentum SGD with constant coefficients (``docs/theory.md`` §10).

For a model with momentum (:class:`~spectral_theory.spec.variants.Momentum`), the residual
moments of a moving mode ``i`` -- ``E[e^2]``, ``E[e v]``, ``E[v^2]`` -- follow a linear map of
the whole state: per mode a 3x3 block

    D_i = Sym2(T_i) + ((kappa - 2) / B) xx_i w^T,
    T_i = [[p_e - x_e r, (1 - p_e) - x_e (1 - r)], [p_v - x_v r, (1 - p_v) - x_v (1 - r)]],

(``Sym2(T) Sigma = T Sigma T^T`` on symmetric 2x2 matrices, ``x_e = h_e s_i``, ``x_v = h_v s_i``,
``xx_i = (x_e^2, x_e x_v, x_v^2)``, ``w = (r^2, 2 r (1 - r), (1 - r)^2)`` so that ``U_i = w . M_i``
is the second moment at the gradient point) plus the rank-one coupling through the gradient
noise, ``(xx_i / B) sum_j w . M_j``. The whole map is ``A = blockdiag(D_i) + b w^T`` (``3d x 3d``);
the first moments and the cross moments with frozen models follow ``T_i``. The recursion at a
constant step is stable iff ``rho(A) < 1`` and every ``rho(T_i) < 1``.

**The exact test without eigenvalues.** ``A`` maps the cone of per-mode positive
semi-definite moment matrices into itself for every ``kappa >= 1`` (a block adds
``xx_i [sum_{j != i} U_j + (kappa - 1) U_i] / B`` to ``T_i M_i T_i^T``, and every ``U_j >= 0``).
For such a map ``rho(A) < z`` iff ``(z - A) M = u`` has a positive definite solution for
``u = I`` (:func:`_cone_test`): 3x3 solves per distinct speed and Sherman-Morrison over the
rank-one coupling, ``O(d)`` per test. Stability is the test at ``z = 1``; the spectral radius
(the growth factor of the policy) is found by bisection on ``z``; ``rho(T_i)^2 <= rho(A)``
follows. Modes that share a speed give equal blocks of the solution, so the test runs over the
distinct speeds with their multiplicities. :func:`_radius_reduced` (all eigenvalues of the
reduced matrix, LAPACK or ARPACK) is kept as an independent reference for the tests.

:func:`momentum_limit` gives the largest stable constant step for given momentum coefficients,
:func:`momentum_beta_limit` the largest stable ``beta`` for a step, and :func:`guard_momentum`
applies the stability policy of §5 to a momentum model's schedule (the per-step growth factor is
``max(rho(A_t), max_i rho(T_i))``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .errors import SpecError
from .stability import NEAR_LIMIT, StepCheck, check_on_unstable, report_transient, user_stacklevel

__all__ = ["momentum_blocks", "momentum_radius", "second_moment_radius", "is_stable_momentum", "momentum_limit", "momentum_beta_limit",
           "guard_momentum", "DENSE_MODES"]

#: :func:`_radius_reduced` (a test reference): all eigenvalues up to this many distinct speeds
DENSE_MODES = 400


class _Grouped(tuple):
    """Distinct moving speeds and their multiplicities, computed once (pass as ``speeds``)."""


def grouped(speeds) -> _Grouped:
    """The distinct moving speeds of ``speeds`` with multiplicities, to pass as ``speeds`` to
    the functions of this module when testing many step coefficients on the same model."""
    return speeds if isinstance(speeds, _Grouped) else _Grouped(_groups(speeds))


def _groups(speeds) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(speeds, _Grouped):
        return speeds[0], speeds[1]
    s = np.asarray(speeds, dtype=float)
    s = s[s > 0]
    u, m = np.unique(s, return_counts=True)
    return u, m.astype(float)


def momentum_blocks(coef, speeds, batch: int, kappa: float):
    """``(D, b, w, T, mult)`` for the distinct moving speeds: ``D`` (n, 3, 3), ``b`` (n, 3)
    (already times the multiplicities ``mult``), ``w`` (3,), the mean maps ``T`` (n, 2, 2)."""
    with np.errstate(over="ignore", invalid="ignore"):
        return _blocks(coef, speeds, batch, kappa)


def _blocks(coef, speeds, batch: int, kappa: float):
    r, pe, pv, he, hv = (float(v) for v in coef)
    s, mult = _groups(speeds)
    xe, xv = he * s, hv * s
    T11, T12 = pe - xe * r, (1.0 - pe) - xe * (1.0 - r)
    T21, T22 = pv - xv * r, (1.0 - pv) - xv * (1.0 - r)
    n = s.size
    D = np.empty((n, 3, 3))
    D[:, 0, 0], D[:, 0, 1], D[:, 0, 2] = T11 * T11, 2 * T11 * T12, T12 * T12
    D[:, 1, 0], D[:, 1, 1], D[:, 1, 2] = T11 * T21, T11 * T22 + T12 * T21, T12 * T22
    D[:, 2, 0], D[:, 2, 1], D[:, 2, 2] = T21 * T21, 2 * T21 * T22, T22 * T22
    xx = np.stack([xe * xe, xe * xv, xv * xv], axis=1)
    w = np.array([r * r, 2 * r * (1 - r), (1 - r) * (1 - r)])
    D += ((kappa - 2.0) / batch) * xx[:, :, None] * w[None, None, :]
    b = xx / batch * mult[:, None]
    T = np.stack([np.stack([T11, T12], axis=1), np.stack([T21, T22], axis=1)], axis=1)
    return D, b, w, T, mult


def _radius_reduced(D: np.ndarray, b: np.ndarray, w: np.ndarray) -> float:
    n = D.shape[0]
    if n == 0:
        return 0.0
    if n <= DENSE_MODES:
        A = np.zeros((3 * n, 3 * n))
        for k in range(3):
            for j in range(3):
                A[np.arange(n) * 3 + k, np.arange(n) * 3 + j] = D[:, k, j]
        A += np.outer(b.ravel(), np.tile(w, n))
        return float(np.max(np.abs(np.linalg.eigvals(A))))
    from scipy.sparse.linalg import ArpackError, ArpackNoConvergence, LinearOperator, eigs

    bf, wf = b.ravel(), np.tile(w, n)

    def mv(u):
        u = np.asarray(u).reshape(n, 3)
        return (np.einsum("nkj,nj->nk", D, u).ravel() + bf * (wf @ u.ravel()))

    op = LinearOperator((3 * n, 3 * n), matvec=mv, dtype=float)
    try:
        vals = eigs(op, k=6, which="LM", tol=1e-12, maxiter=20000, return_eigenvectors=False)
        return float(np.max(np.abs(vals)))
    except (ArpackNoConvergence, ArpackError):  # pragma: no cover - rare; exact fall-back
        A = np.zeros((3 * n, 3 * n))
        for k in range(3):
            for j in range(3):
                A[np.arange(n) * 3 + k, np.arange(n) * 3 + j] = D[:, k, j]
        A += np.outer(bf, wf)
        return float(np.max(np.abs(np.linalg.eigvals(A))))


def _solve3(M: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """Batched 3x3 solves ``M[k] y[k] = rhs[k]`` by Cramer's rule (``rhs`` (n, 3) or (n, 3, m)),
    several times faster than LAPACK's batched solve for 10^5 small systems; ``inf``/``nan``
    where a block is singular."""
    a, b, c = M[:, 0, 0], M[:, 0, 1], M[:, 0, 2]
    d, e, f = M[:, 1, 0], M[:, 1, 1], M[:, 1, 2]
    g, h, i = M[:, 2, 0], M[:, 2, 1], M[:, 2, 2]
    A, B_, C = e * i - f * h, f * g - d * i, d * h - e * g
    det = a * A + b * B_ + c * C
    rows = ((A, c * h - b * i, b * f - c * e), (B_, a * i - c * g, c * d - a * f), (C, b * g - a * h, a * e - b * d))
    extra = (None,) * (rhs.ndim - 2)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        r = 1.0 / det
        return np.stack([(m0 * r)[(slice(None), *extra)] * rhs[:, 0] + (m1 * r)[(slice(None), *extra)] * rhs[:, 1]
                         + (m2 * r)[(slice(None), *extra)] * rhs[:, 2] for m0, m1, m2 in rows], axis=1)


def _cone_test(D: np.ndarray, b: np.ndarray, w: np.ndarray, z: float = 1.0) -> bool:
    """``rho(A) < z``, without eigenvalues (module docstring). ``A`` maps the cone of (per-mode)
    positive semi-definite 2x2 moment matrices into itself for every ``kappa >= 1``: a block sends
    ``M_i`` to ``T_i M_i T_i^T + xx_i [sum_{j != i} U_j + (kappa - 1) U_i] / B`` with every
    ``U_j = rho^T M_j rho >= 0``. For such a map ``rho(A) < z`` iff ``(z - A) M = u`` has a solution
    ``M`` in the cone's interior for an interior ``u`` (then ``A M = z M - u < z M``; conversely
    ``M = sum_n A^n u / z^(n+1)``). With ``u_k = I`` and Sherman-Morrison over the rank-one
    coupling: ``y = (z - D)^-1 u``, ``v = (z - D)^-1 b``, ``K = w . v``,
    ``M = y + v (w . y) / (1 - K)``. A singular block counts as not below ``z``."""
    eye = z * np.eye(3)[None] - D
    rhs = np.stack([np.tile([1.0, 0.0, 1.0], (D.shape[0], 1)), b], axis=2)
    sol = _solve3(eye, rhs)
    y, v = sol[:, :, 0], sol[:, :, 1]
    K = float(np.sum(v @ w))
    if not (np.all(np.isfinite(sol)) and math.isfinite(K)) or K == 1.0:
        return False
    return _pd(y + v * (float(np.sum(y @ w)) / (1.0 - K)))


def _pd(v: np.ndarray) -> bool:
    """Every ``(ee, ev, vv)`` row a positive definite 2x2 moment matrix."""
    return bool(np.all(v[:, 0] > 0) and np.all(v[:, 2] > 0) and np.all(v[:, 0] * v[:, 2] - v[:, 1] ** 2 > 0))


def momentum_radius(coef, speeds, batch: int, kappa: float) -> float:
    """Per-step growth factor ``max(rho(A), max_i rho(T_i))`` of the moments (module docstring);
    below 1 iff the constant-coefficient recursion is stable. ``rho(A)`` is found by bisection
    on ``z`` with :func:`_cone_test` (``rho(A) < z``), to relative ``1e-12``, at ``O(d)`` cost per
    test; ``max_i rho(T_i)`` (at most ``rho(A)^(1/2)``) from the 2x2 mean maps."""
    D, b, w, T, _ = momentum_blocks(coef, speeds, batch, kappa)
    if D.shape[0] == 0:
        return 0.0
    if not _finite(D, b, w, T):
        return math.inf  # coefficients that overflow a float: unstable, no eigenvalue computation
    rT = float(np.max(np.abs(np.linalg.eigvals(T))))
    return max(_cone_radius(D, b, w), rT)


def second_moment_radius(coef, speeds, batch: int, kappa: float, *, gap_rel: float = 1e-3) -> float:
    """An upper bound ``hi`` on ``rho(A)``, the spectral radius of the second-moment map alone
    (the slowest pole of the moments' z-transforms; :func:`momentum_radius` also counts the mean
    maps), with ``hi - rho(A) <= gap_rel (1 - hi)`` when ``rho(A) < 1`` (a bisection on
    ``1 - z`` in log scale: the decay rate to relative ``gap_rel``); ``inf`` when not finite."""
    D, b, w, T, _ = momentum_blocks(coef, speeds, batch, kappa)
    if D.shape[0] == 0:
        return 0.0
    if not _finite(D, b, w, T):
        return math.inf
    if not _cone_test(D, b, w, 1.0):
        return _cone_radius(D, b, w)
    # bracket the gap g = 1 - rho(A) in (lo, hi]: _cone_test(1 - lo) holds, _cone_test(1 - hi) not
    own = float(np.max(np.abs(np.linalg.eigvals(D))))
    hi = 1.0 - own if 0.0 < own < 1.0 and not _cone_test(D, b, w, own) else 1.0
    lo = 0.1 * hi
    while not _cone_test(D, b, w, 1.0 - lo):
        hi, lo = lo, 0.1 * lo
        if lo < 1e-300:  # pragma: no cover - a radius within 1e-300 of 1
            return 1.0
    while hi > (1.0 + gap_rel) * lo:
        mid = math.sqrt(lo * hi)
        if _cone_test(D, b, w, 1.0 - mid):
            lo = mid
        else:
            hi = mid
    return 1.0 - lo


def _cone_radius(D: np.ndarray, b: np.ndarray, w: np.ndarray) -> float:
    hi = 1.0
    while not _cone_test(D, b, w, hi):
        hi *= 2.0
        if hi > 1e300:  # pragma: no cover - beyond the float range
            return math.inf
    lo = 0.0
    while hi - lo > 1e-12 * hi:
        mid = 0.5 * (lo + hi)
        if _cone_test(D, b, w, mid):
            hi = mid
        else:
            lo = mid
    return hi


def _finite(*arrays) -> bool:
    """Every entry of every array finite (coefficients such as ``r = 1e300`` overflow the
    moments map; such a map counts as unstable, ``rho = inf``)."""
    return all(bool(np.all(np.isfinite(a))) for a in arrays)


def _necessary(coef, speeds, batch: int, kappa: float) -> bool:
    """The exact stability test ``rho(A) < 1`` (:func:`_cone_test`); ``rho(T_i) < 1`` follows,
    since ``A`` dominates ``Sym2(T_i)`` on the cone and ``rho(Sym2(T_i)) = rho(T_i)^2``. A map
    with a non-finite entry (coefficients that overflow a float) is unstable."""
    D, b, w, T, _ = momentum_blocks(coef, speeds, batch, kappa)
    if D.shape[0] == 0:
        return True
    return _finite(D, b, w, T) and _cone_test(D, b, w)


def is_stable_momentum(coef, speeds, batch: int, kappa: float) -> bool:
    """The exact test of one set of step coefficients ``(r, p_e, p_v, h_e, h_v)``."""
    return _necessary(coef, speeds, batch, kappa)


def _bisect(ok, lo: float, hi: float, rel: float = 1e-10) -> float:
    while hi - lo > rel * hi:
        mid = 0.5 * (lo + hi)
        if ok(mid):
            lo = mid
        else:
            hi = mid
    return lo


def momentum_limit(momentum: Any, speeds, batch: int, kappa: float) -> float:
    """Largest stable constant step ``eta`` (batch-mean) for constant momentum coefficients:
    the end of the stable interval that starts at 0 (``inf`` if no mode moves). Found by
    bisection on the cheap necessary conditions, then checked with the exact radius just below
    it; where that check fails, by bisection on the exact test."""
    if momentum is None or not momentum.constant:
        raise SpecError("momentum", momentum, "must be a Momentum with constant coefficients")
    s = grouped(speeds)
    if s[0].size == 0:
        return math.inf
    smax = float(s[0].max())

    def coef(eta: float):
        return momentum.coefficients(eta)

    hi = 1.0 / smax
    while _necessary(coef(hi), s, batch, kappa):
        hi *= 2.0
        if hi > 1e12 / smax:  # pragma: no cover - every step stable
            return math.inf
    return _bisect(lambda e: _necessary(coef(e), s, batch, kappa), 0.0, hi)


def momentum_beta_limit(kind: str, eta: float, speeds, batch: int, kappa: float) -> float:
    """Largest stable ``beta`` of heavy-ball or Nesterov momentum at the constant step ``eta``:
    the end of the stable interval of ``beta`` that starts at 0 (0.0 if ``eta`` is unstable
    without momentum, 1.0 if every ``beta < 1`` is stable)."""
    from .spec.variants import Momentum

    if kind not in ("heavy_ball", "nesterov"):
        raise SpecError("kind", kind, "must be 'heavy_ball' or 'nesterov'")
    s = grouped(speeds)

    def ok(beta: float) -> bool:
        return is_stable_momentum(Momentum(kind, beta=beta).coefficients(eta), s, batch, kappa)

    if not ok(0.0):
        return 0.0
    hi = 1.0 - 1e-12
    if ok(hi):
        return 1.0
    return _bisect(ok, 0.0, hi, rel=1e-10)


def _growth_words(g: float) -> str:
    """The per-step growth factor ``g`` of an unstable run, in words."""
    if not math.isfinite(g):
        return ("its step coefficients overflow a float (the moments map has non-finite entries), "
                "so the moments diverge")
    if g < 1.0 + 1e-9:
        return ("the moments do not decay (the spectral radius of the second-moment map equals 1 within "
                f"{g - 1:.1e}: marginally stable, the recursion never forgets its start)")
    return f"the moments grow geometrically, by a factor up to {g:.6g} per step"


def guard_momentum(name: str, runs, speeds, batch: int, kappa: float, *, on_unstable: str,
                   warn_msgs: list[str] | None = None, unstable_steps: dict | None = None,
                   momentum: Any = None) -> StepCheck:
    """The stability policy of ``docs/theory.md`` §5 for a momentum model: ``runs`` are its runs
    of equal step coefficients ``((r, p_e, p_v, h_e, h_v), eta, length)``
    (:func:`spectral_theory.solvers.variants.variant_phases`). A run is above the limit when
    its growth factor :func:`momentum_radius` is >= 1 (each distinct set of coefficients is
    tested once); errors and warnings as :func:`spectral_theory.stability.guard_steps`. The
    reported ``limit`` is the largest stable constant step at the final run's momentum
    coefficients (:func:`momentum_limit`; ``nan`` for per-step coefficients)."""
    check_on_unstable(on_unstable)
    runs = list(runs)
    s = grouped(speeds)
    limit = momentum_limit(momentum, s, batch, kappa) if momentum is not None and momentum.constant else math.nan
    cache: dict[tuple, float] = {}
    flags, starts, t = [], [], 0
    for coef, _lr, n in runs:
        key = tuple(coef)
        if key not in cache:
            cache[key] = 0.0 if _necessary(coef, s, batch, kappa) else momentum_radius(coef, s, batch, kappa)
        starts.append(t)
        flags.append(cache[key] >= 1.0)
        t += n
    total = t
    if not any(flags):
        lrs = [lr for _c, lr, _n in runs]
        if on_unstable != "ignore" and math.isfinite(limit) and lrs and max(lrs) >= NEAR_LIMIT * limit:
            lr = max(lrs)
            msg = (f"model {name!r}: step size {lr:.6g} is {100 * lr / limit:.4g}% of the stability limit "
                   f"{limit:.6g} of its momentum SGD; the moments can grow many-fold before they decay "
                   "(the spectral radius of the second-moment map is close to 1), and they decay slowly")
            if warn_msgs is not None:
                warn_msgs.append(msg)
            import warnings

            warnings.warn(msg, RuntimeWarning, stacklevel=user_stacklevel())
        return StepCheck(name, limit, total, (), {}, 0.0, 0.0, None)
    ranges: list[tuple[int, int]] = []
    rates: dict[float, float] = {}
    log10_growth = 0.0
    for (coef, lr, n), f, st in zip(runs, flags, starts, strict=True):
        if not f:
            continue
        g = cache[tuple(coef)]
        rates[lr] = max(rates.get(lr, 0.0), g)
        log10_growth += (n * math.log10(g) if math.isfinite(g) else math.inf) if g > 0 else 0.0
        if ranges and ranges[-1][1] == st - 1:
            ranges[-1] = (ranges[-1][0], st + n - 1)
        else:
            ranges.append((st, st + n - 1))
    final = None
    per_step = momentum is not None and not momentum.constant
    if flags[-1]:
        # the final constant phase; with per-step coefficients (every step its own run) the
        # unbroken stretch of unstable steps that ends training
        k = len(runs) - 1
        while k > 0 and flags[k - 1] and (per_step or tuple(runs[k - 1][0]) == tuple(runs[-1][0])):
            k -= 1
        final = (starts[k], float(runs[-1][1]))
        g_final = max(cache[tuple(c)] for c, _lr, _n in runs[k:])
    check = StepCheck(name, limit, total, tuple(ranges), rates, float(max(rates)), log10_growth, final)
    first_lr = next(lr for (_c, lr, _n), f in zip(runs, flags, strict=True) if f)
    if on_unstable == "raise":
        raise check.error(ranges[0][0], first_lr, "on_unstable='raise' refuses any step above the stability limit")
    if final is not None and on_unstable != "ignore":
        what = ("every step" if final[0] == 0 else f"steps {final[0]}-{total - 1}") if per_step else \
            f"the final constant phase (steps {final[0]}-{total - 1})"
        raise check.error(final[0], final[1],
                          f"{what}, to the end of training, {'are' if per_step else 'is'} above the limit of "
                          f"momentum SGD: {_growth_words(g_final)} (on_unstable='ignore', CLI "
                          "--allow-unstable, computes it anyway)")
    return report_transient(name, check, on_unstable, unstable_steps, warn_msgs)
