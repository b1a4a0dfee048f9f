"""Continuous-time deterministic equivalent of the moment recursion (``docs/theory.md`` §6),
integrated on an adaptive log grid; ``docs/solvers/ode.md`` describes the method.

In ``tau = sum_{u<t} eta_u`` the per-step change of the recursion divided by ``eta`` gives, for
the student's residual ``U = E v^2`` (``v = e_g - c e_p``),
``dU/dtau = -2 s U + eta(tau) [q s^2 U + (s^2/B)(sum_j U_j + alpha^2 sigma2)]`` with
``q = 1 + (kappa - 2)/B``; cross moments and first moments decay as ``exp(-s tau)``. The solver
is an exponential integrator (phi-functions of the stiff diagonal part, the rank-one coupling
interpolated by a cubic in the past grid values) with local error control (``rtol``, ``atol``)
and schedule jumps above ``jump_tol`` as grid nodes.

Not exact: it drops terms of relative order ``eta s`` per step. Stated bound against the
discrete recursion: ``max_t |E_ode - E_exact| <= ODE_ERROR_CONSTANT * max(eta s) * max_t E``
(:func:`ode_error_bound`; tests/test_ode.py measures it). Weighted nodes
(``modes=(lam, theta2, weights)``) make the cost independent of ``d``: this is how the
continuum limit (:mod:`spectral_theory.solvers.continuum`) plugs in.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.polynomial import polynomial as npoly

from ..errors import InstabilityError, SpecError
from ..result import ModelResult, Result
from ..spec import Constant, Model, Piecewise, Scenario, StepDecay
from ..stability import DEFAULT_ON_UNSTABLE, check_on_unstable, guard_steps, moment_q
from .base import ChainState, Solver, model_result, pairwise_disagreement

__all__ = ["run_ode", "ode_error_bound", "ODE_ERROR_CONSTANT", "Timeline"]

#: Stated constant of the ODE-vs-recursion bound (module docstring):
#: ``max_t |E_ode - E_exact| <= ODE_ERROR_CONSTANT * max(eta s) * max_t E_exact``.
ODE_ERROR_CONSTANT = 0.5

_SERIES_Z = 1.0
_MAX_DEGREE = 3  # cubic interpolation of the forcing (3 history nodes)
_GROW = 3.0  # largest step growth factor
_CHUNK = 8192  # modes per cache-sized block of a step
# series coefficients of J_3(z) = sum_m (-z)^m 3! / (m + 4)!
_SERIES_COEF = [math.factorial(_MAX_DEGREE) / math.factorial(m + _MAX_DEGREE + 1) for m in range(16)]


# ----------------------------------------------------------------------------
# phi-type functions


def _jfun(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``exp(-z)`` and ``J_k(z) = int_0^1 exp(-z (1-u)) u^k du``, k = 0..3 (shape (4, n)).

    ``z >= 1``: upward recursion ``J_k = (1 - k J_{k-1}) / z`` from
    ``J_0 = (1 - e^{-z})/z`` (no cancellation there; error growth at most
    ``k/z <= 3`` per level).
    ``z < 1``: ``J_3`` by its series ``sum_m (-z)^m 3!/(m+4)!`` (16 terms,
    truncation < 1e-15 relative) and the downward recursion
    ``J_{k-1} = (1 - z J_k)/k`` (errors damped by ``z/k < 1``).
    Both branches are evaluated on whole arrays (no fancy indexing) and merged.
    """
    e = np.exp(-z)
    J = np.empty((_MAX_DEGREE + 1, z.size))
    small = z < _SERIES_Z
    n_small = int(np.count_nonzero(small))
    if n_small < z.size:
        zb = np.maximum(z, _SERIES_Z) if n_small else z
        inv = 1.0 / zb
        # 1 - exp(-z) has no cancellation for z >= 1
        np.subtract(1.0, np.exp(-zb) if n_small else e, out=J[0])
        J[0] *= inv
        for k in range(1, _MAX_DEGREE + 1):
            np.multiply(J[k - 1], -k, out=J[k])
            J[k] += 1.0
            J[k] *= inv
    if n_small:
        zs = np.minimum(z, _SERIES_Z) if n_small < z.size else z
        mz = -zs
        acc = np.full(z.size, _SERIES_COEF[-1])
        for cf in _SERIES_COEF[-2::-1]:
            acc *= mz
            acc += cf
        if n_small == z.size:
            J[_MAX_DEGREE] = acc
            for k in range(_MAX_DEGREE, 0, -1):
                np.multiply(J[k], mz, out=J[k - 1])
                J[k - 1] += 1.0
                J[k - 1] *= 1.0 / k
        else:
            Js = np.empty_like(J)
            Js[_MAX_DEGREE] = acc
            for k in range(_MAX_DEGREE, 0, -1):
                np.multiply(Js[k], mz, out=Js[k - 1])
                Js[k - 1] += 1.0
                Js[k - 1] *= 1.0 / k
            np.copyto(J, Js, where=small[None, :])
    return e, J


def _lagrange(past: list[float], h: float) -> np.ndarray:
    """``L[j, k]``: coefficient of ``u^k`` in the Lagrange basis polynomial of node ``j``,
    nodes (in units of h) ``u = 1`` (new), ``0`` (current), ``-past[0]/h``, ..."""
    u = np.concatenate([[1.0, 0.0], -np.cumsum(past) / h])
    L = np.empty((u.size, u.size))
    for j in range(u.size):
        others = np.delete(u, j)
        L[j] = npoly.polyfromroots(others) / np.prod(u[j] - others)
    return L


def _combine(L: np.ndarray, h: float, J: np.ndarray) -> list[np.ndarray]:
    """Weights ``c_j = h sum_k L[j, k] J_k`` (one array per node)."""
    out = []
    m = L.shape[1]
    for j in range(L.shape[0]):
        cj = (h * L[j, 0]) * J[0]
        for k in range(1, m):
            if L[j, k] != 0.0:
                cj += (h * L[j, k]) * J[k]
        out.append(cj)
    return out


# ----------------------------------------------------------------------------
# time line: tau(t), eta(tau), breakpoints


class Timeline:
    """Map between a model's SGD steps and ``tau``, and the ``eta(tau)`` the ODE uses.

    Built from constant phases ``(eta, n)``. ``segments`` are runs of phases
    whose consecutive relative jumps are at most ``jump_tol``; inside a
    segment ``eta(tau)`` is the linear interpolant through the phase midpoints
    (constant in the outer half-phases), across segments it jumps.
    """

    def __init__(self, lrs: np.ndarray, lengths: np.ndarray, jump_tol: float = 1e-2):
        lrs = np.asarray(lrs, dtype=float)
        lengths = np.asarray(lengths, dtype=np.int64)
        self.lrs = lrs
        self.step_start = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        self.tau_start = np.concatenate([[0.0], np.cumsum(lrs * lengths)])
        self.mids = 0.5 * (self.tau_start[:-1] + self.tau_start[1:])
        if lrs.size > 1:
            big = np.abs(np.diff(lrs)) > jump_tol * np.maximum(lrs[1:], lrs[:-1])
            cuts = np.flatnonzero(big) + 1
        else:
            cuts = np.zeros(0, dtype=np.int64)
        self.seg_first = np.concatenate([[0], cuts]).astype(np.int64)
        self.seg_end = np.concatenate([cuts, [lrs.size]]).astype(np.int64)
        self._lrs_ext = np.append(lrs, 0.0)

    @classmethod
    def from_model(cls, model: Model, jump_tol: float = 1e-2) -> Timeline:
        sched = model.schedule
        if model.steps == 0:
            return cls(np.zeros(0), np.zeros(0, dtype=np.int64), jump_tol)
        if isinstance(sched, (Constant, StepDecay, Piecewise)):
            ph = model.phases()
            return cls(np.array([p[0] for p in ph]), np.array([p[1] for p in ph]), jump_tol)
        rates = model.step_sizes()
        change = np.flatnonzero(rates[1:] != rates[:-1]) + 1
        starts = np.concatenate([[0], change])
        ends = np.concatenate([change, [rates.size]])
        return cls(rates[starts], ends - starts, jump_tol)

    @property
    def total_tau(self) -> float:
        return float(self.tau_start[-1])

    @property
    def max_lr(self) -> float:
        return float(self.lrs.max()) if self.lrs.size else 0.0

    def tau_of_steps(self, steps: np.ndarray) -> np.ndarray:
        t = np.asarray(steps, dtype=np.int64)
        k = np.searchsorted(self.step_start, t, side="right") - 1
        k = np.clip(k, 0, self.lrs.size)
        return self.tau_start[k] + (t - self.step_start[k]) * self._lrs_ext[k]

    def segments(self):
        """``(tau_lo, tau_hi, eta_fn)`` for each segment, in order."""
        for k0, k1 in zip(self.seg_first, self.seg_end, strict=True):
            lo, hi = float(self.tau_start[k0]), float(self.tau_start[k1])
            if k1 - k0 == 1:
                v = float(self.lrs[k0])
                yield lo, hi, (lambda tau, v=v: v)
            else:
                mids = self.mids[k0:k1]
                vals = self.lrs[k0:k1]
                yield lo, hi, (lambda tau, m=mids, v=vals: float(np.interp(tau, m, v)))


def ode_error_bound(scenario: Scenario, result: Result) -> dict[str, float]:
    """Stated bound on ``max_t |E_ode - E_exact|`` per model: ``C * max(eta s) * max_t E``."""
    out = {}
    for name, m in result.models.items():
        xmax = result.diagnostics["max_eta_s"][name]
        out[name] = ODE_ERROR_CONSTANT * xmax * float(np.max(m.excess_risk))
    return out


# ----------------------------------------------------------------------------
# the coupled rank-one system for U


@dataclass
class _Coupled:
    s: np.ndarray  # speeds (n,)
    w: np.ndarray  # weights (n,)
    q: float
    inv_b: float
    nu: np.ndarray  # (2,) noise per source row

    def __post_init__(self):
        s2 = self.s * self.s
        self.qs2 = self.q * s2
        self.bs2 = self.inv_b * s2
        self.aw = np.abs(self.w)

    def forcing(self, U: np.ndarray, R: np.ndarray, eta: float) -> np.ndarray:
        return eta * (self.qs2 * U + self.bs2 * (R + self.nu)[:, None])

    def forcing_derivative(self, U: np.ndarray, G: np.ndarray, eta: float, slope: float) -> np.ndarray:
        """``dG/dtau`` at a node from the ODE itself: ``G = eta F``,
        ``F' = q s^2 U' + (s^2/B) R'``, ``U' = -2 s U + G``."""
        dU = G - (2.0 * self.s) * U
        dF = self.qs2 * dU + self.bs2 * (dU @ self.w)[:, None]
        out = eta * dF
        if slope != 0.0 and eta > 0:
            out += (slope / eta) * G
        return out

    def step(self, U: np.ndarray, G_a: np.ndarray, hist_G: list[np.ndarray], L: np.ndarray,
             dL: np.ndarray, h: float, eta_b: float, name: str, tau: float):
        """One exponential-integrator step of length ``h`` (module docstring).

        ``L``/``dL``: monomial coefficients of the Lagrange basis of the propagated
        interpolant and of its difference with the lower-degree one (nodes: new,
        current, history newest first). Returns ``U(b)``, ``R(b)``, ``G(b)``, the
        error estimate ``sum_i |w_i| |dU_i|`` and the size ``sum_i |w_i U_i(b)|``
        per source row. Two passes over cache-sized chunks of the modes: the
        implicit end value is linear with a rank-one coupling, so pass 1 gathers
        ``U = P + K (R + nu)`` and two scalar sums, and pass 2 applies ``R(b)``.
        """
        n = self.s.size
        Ub = np.empty_like(U)
        Gb = np.empty_like(U)
        K = np.empty(n)
        dc0 = np.empty(n)
        dknown = np.empty_like(U)
        pw = np.zeros(2)
        sk = 0.0
        ce = eta_b
        for lo in range(0, n, _CHUNK):
            sl = slice(lo, min(lo + _CHUNK, n))
            s = self.s[sl]
            E, J = _jfun((2.0 * h) * s)
            c = _combine(L, h, J)
            dc = _combine(dL, h, J)
            A = E * U[:, sl]
            A += c[1] * G_a[:, sl]
            dk = dc[1] * G_a[:, sl]
            for j, Gj in enumerate(hist_G):
                g = Gj[:, sl]
                A += c[2 + j] * g
                dk += dc[2 + j] * g
            c0e = c[0] * ce
            D = 1.0 - c0e * self.qs2[sl]
            Kc = c0e * self.bs2[sl] / D
            A /= D
            Ub[:, sl] = A
            K[sl] = Kc
            dc0[sl] = dc[0]
            dknown[:, sl] = dk
            wc = self.w[sl]
            pw += A @ wc
            sk += float(Kc @ wc)
        den = 1.0 - sk
        if not den > 0:
            raise InstabilityError(name, -1, eta_b, math.nan, tau=tau,
                                   detail=f"the ODE's rank-one coupling exceeds 1 at tau = {tau:.6g} "
                                          "(kernel norm >= 1)")
        Rb = (pw + self.nu * sk) / den
        f = (Rb + self.nu)[:, None]
        err = np.zeros(2)
        size = np.zeros(2)
        for lo in range(0, n, _CHUNK):
            sl = slice(lo, min(lo + _CHUNK, n))
            u = Ub[:, sl]
            u += K[sl] * f
            g = Gb[:, sl]
            np.multiply(self.qs2[sl], u, out=g)
            g += self.bs2[sl] * f
            g *= ce
            diff = dc0[sl] * g
            diff += dknown[:, sl]
            aw = self.aw[sl]
            err += np.abs(diff) @ aw
            size += np.abs(u) @ aw
        return Ub, Rb, Gb, err, size


def _slope(eta_fn, lo: float, hi: float) -> float:
    """Right derivative of the (piecewise-linear) ``eta(tau)`` at ``lo``."""
    dt = 1e-7 * max(hi - lo, 1e-300)
    return (eta_fn(lo + dt) - eta_fn(lo)) / dt


class _Recorder:
    """Risk rows, disagreement with the parent and per-mode curves at the checkpoints.

    ``M_gg = U + 2 c W_p + c^2 M_pp`` and the disagreement
    ``U - 2 (1 - c) W_p + (1 - c)^2 M_pp`` with ``W_p(tau) = W_p(0) e^{-s tau}``.
    """

    def __init__(self, *, tau, w, s, c, W0p, Mpp, n_modes):
        self.tau, self.w, self.s, self.c, self.W0p, self.Mpp = tau, w, s, c, W0p, Mpp
        n = tau.size
        self.risk = np.empty((n, 2))
        self.dis = np.empty(n) if W0p is not None else None
        self.modes = np.empty((n, n_modes)) if n_modes else None

    def __call__(self, k: int, U: np.ndarray) -> None:
        c = self.c
        if self.W0p is not None:
            Wp = self.W0p * np.exp(-self.s * self.tau[k])
            Mgg = U + 2.0 * c * Wp + c * c * self.Mpp
            self.dis[k] = float(((U - 2.0 * (1.0 - c) * Wp + (1.0 - c) ** 2 * self.Mpp) @ self.w).sum())
        else:
            Mgg = U
        self.risk[k] = Mgg @ self.w
        if self.modes is not None:
            self.modes[k] = Mgg.sum(axis=0)


@dataclass
class _Stats:
    accepted: int = 0
    rejected: int = 0


def _integrate(sys: _Coupled, U0: np.ndarray, timeline: Timeline, ck_tau: np.ndarray,
               record, *, rtol: float, atol: float, name: str, stats: _Stats,
               max_points: int) -> np.ndarray:
    """Integrate ``U`` from tau = 0 over the model's schedule, calling ``record(k, U)``
    at every (sorted) checkpoint time ``ck_tau[k]``."""
    U = U0.copy()
    R = U @ sys.w
    tau = 0.0
    n_ck = ck_tau.size
    k = 0
    while k < n_ck and ck_tau[k] <= 0.0:
        record(k, U)
        k += 1
    smax = float(sys.s.max()) if sys.s.size else 0.0
    if smax == 0.0 or timeline.lrs.size == 0:
        while k < n_ck:
            record(k, U)
            k += 1
        return U
    h = 1e-2 / (2.0 * smax)
    scale_max = np.abs(U) @ sys.aw
    tiny = 1e-300

    for lo, hi, eta_fn in timeline.segments():
        # restart the interpolation history at the segment's start, with the
        # one-sided derivative G'(lo+) as a Hermite datum for the first step
        eta_lo = eta_fn(lo)
        G_a = sys.forcing(U, R, eta_lo)
        dG_a = sys.forcing_derivative(U, G_a, eta_lo, _slope(eta_fn, lo, hi))
        hist_G: list[np.ndarray] = []  # forcing at previous nodes, newest first
        hist_h: list[float] = []  # lengths of the previous steps, newest first
        inside = ck_tau[np.searchsorted(ck_tau, lo, side="right"):np.searchsorted(ck_tau, hi, side="left")]
        targets = [*inside.tolist(), hi]
        for tgt in targets:
            while tau < tgt:
                remaining = tgt - tau
                last = (remaining - h) < 0.01 * h
                hh = remaining if last else h
                tau_b = tgt if last else tau + hh
                eta_b = eta_fn(tau_b)
                if hist_G:
                    deg = len(hist_G) + 1  # degree of the propagated interpolant
                    # rows: new node, current node, history (newest first); columns: u^k
                    L = _lagrange(hist_h, hh)
                    # error estimate: the same data under the interpolant of one degree
                    # less (oldest node dropped)
                    dL = L.copy()
                    dL[:-1, :-1] -= _lagrange(hist_h[:-1], hh)
                    data = hist_G
                else:
                    # first step of a segment: quadratic through G(a), h G'(a+), G(b)
                    # against the linear interpolant through G(a), G(b)
                    deg = 2
                    L = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, -1.0], [0.0, hh, -hh]])
                    dL = np.array([[0.0, -1.0, 1.0], [0.0, 1.0, -1.0], [0.0, hh, -hh]])
                    data = [dG_a]
                Ub, Rb, G_b, e_rows, size = sys.step(U, G_a, data, L, dL, hh, eta_b, name, tau)
                errs = e_rows / (rtol * size + atol * np.maximum(scale_max, size) + tiny)
                err = float(np.max(errs))
                if not np.isfinite(err) or not np.all(np.isfinite(size)):
                    raise InstabilityError(name, -1, eta_b, math.nan, tau=tau,
                                           detail=f"the ODE solution overflowed at tau = {tau:.6g}")
                fac = 0.9 * err ** (-1.0 / (deg + 1.0)) if err > 0 else 4.0
                if err <= 1.0:
                    stats.accepted += 1
                    if stats.accepted + stats.rejected > max_points:
                        raise RuntimeError(f"run_ode: more than {max_points} grid points for model "
                                           f"{name!r}; raise max_points or rtol")
                    hist_G.insert(0, G_a)
                    hist_h.insert(0, hh)
                    del hist_G[_MAX_DEGREE - 1:], hist_h[_MAX_DEGREE - 1:]
                    G_a = G_b
                    U, R, tau = Ub, Rb, tau_b
                    scale_max = np.maximum(scale_max, size)
                    h_new = hh * min(_GROW, max(0.2, fac))
                    h = max(h_new, h) if last else h_new
                else:
                    stats.rejected += 1
                    h = hh * min(0.9, max(0.2, fac))
                    if h < 1e-14 * max(tau, 1e-300):
                        raise RuntimeError(f"run_ode: step size underflow at tau = {tau:.6g} "
                                           f"for model {name!r}")
            while k < n_ck and ck_tau[k] <= tgt:
                record(k, U)
                k += 1
    while k < n_ck:
        record(k, U)
        k += 1
    return U


# ----------------------------------------------------------------------------
# driver


def _node_info(scenario: Scenario, modes: Any):
    prob = scenario.problem
    if modes is None:
        lam = np.array(prob.eigenvalues, dtype=float)
        theta2 = np.array(prob.theta2, dtype=float)
        return lam, theta2, np.ones_like(lam), None, None
    try:
        lam, theta2, w = (np.asarray(v, dtype=float) for v in tuple(modes)[:3])
    except (TypeError, ValueError):
        raise SpecError("modes", modes, "must be a tuple (lam, theta2, weights) of 1-D arrays") from None
    if lam.ndim != 1 or lam.shape != theta2.shape or lam.shape != w.shape or lam.size == 0:
        raise SpecError("modes", "<arrays>", "lam, theta2 and weights must be 1-D arrays of one length")
    for fname, arr in (("lam", lam), ("theta2", theta2), ("weights", w)):
        if not np.all(np.isfinite(arr)):
            raise SpecError(f"modes.{fname}", "<array>", "must be finite")
    if np.any(lam < 0) or np.any(theta2 < 0):
        raise SpecError("modes", "<arrays>", "lam and theta2 must be >= 0")
    lo = getattr(modes, "index_lo", None)
    hi = getattr(modes, "index_hi", None)
    return lam, theta2, w, lo, hi


def _speeds(model: Model, lam: np.ndarray, lo, hi, weighted: bool) -> np.ndarray:
    if not weighted:
        return model.speed_profile(lam)
    n = lam.size
    if model.speeds is not None:
        if model.speeds.size != n:
            raise SpecError(f"{model.field_name}.speeds", f"<array of length {model.speeds.size}>",
                            f"with weighted modes must have one entry per node ({n})")
        return np.array(model.speeds, dtype=float)
    s = np.array(lam, dtype=float)
    if model.capacity is not None:
        k = model.capacity
        if lo is None or hi is None:
            raise SpecError(f"{model.field_name}.capacity", k,
                            "with weighted modes needs nodes that carry their mode-index ranges "
                            "(e.g. continuum.powerlaw_nodes(..., breaks=(k,)))")
        lo = np.asarray(lo, dtype=float)
        hi = np.asarray(hi, dtype=float)
        straddle = (lo <= k) & (hi > k)
        if straddle.any():
            raise SpecError(f"{model.field_name}.capacity", k,
                            "falls inside a quadrature panel of the nodes; build the nodes with "
                            f"a break at {k} (powerlaw_nodes(..., breaks=({k},)))")
        s[lo > k] = 0.0
    return s


@dataclass(frozen=True)
class ODESolver(Solver):
    """Continuous-time deterministic equivalent (``tau = sum of steps``) on an adaptive log grid,
    any schedule (``docs/solvers/ode.md``). Not exact: it drops terms of relative order
    ``eta s`` per step (bound ``|dE| <= 0.5 max(eta s) max_t E``, :func:`ode_error_bound`).
    Options as :func:`run_ode`."""

    rtol: float = 1e-6
    atol: float = 1e-10
    jump_tol: float = 1e-2
    max_points: int = 10_000_000
    modes: Any = None

    name = "ode"
    exact = False

    def supports(self, scenario, *, every_step=False, record_modes=False):
        from .base import variant_reason

        return variant_reason(scenario, self.name)

    def _solve(self, scenario, *, at, record_modes, every_step, on_unstable, cache):
        return run_ode(scenario, at=at, record_modes=record_modes, every_step=every_step,
                       on_unstable=on_unstable, rtol=self.rtol, atol=self.atol, jump_tol=self.jump_tol,
                       max_points=self.max_points, modes=self.modes)


def run_ode(
    scenario: Scenario,
    *,
    at: dict[str, np.ndarray],
    rtol: float = 1e-6,
    atol: float = 1e-10,
    record_modes: bool = False,
    every_step: bool = False,
    on_unstable: str = DEFAULT_ON_UNSTABLE,
    modes: Any = None,
    jump_tol: float = 1e-2,
    max_points: int = 10_000_000,
) -> Result:
    """Integrate the deterministic-equivalent ODE for every model of the chain.

    Same call shape and :class:`Result` fields as :func:`spectral_theory.solvers.exact.run_exact`;
    ``at[name]`` are SGD step indices, mapped to ``tau(t) = sum_{u<t} eta_u``.

    Parameters
    ----------
    rtol : local error tolerance per grid step, relative to each source row's
        ``sum_i |w_i U_i|`` (the measured global error on the risk is below ``rtol``).
    atol : floor relative to the largest value of the row seen so far (a row
        that decays below ``atol`` times its peak is no longer resolved relatively).
    modes : ``(lam, theta2, weights)`` weighted nodes replacing the problem's modes.
    jump_tol : relative schedule jumps above this are grid nodes; below, the
        staircase is smoothed (module docstring).
    on_unstable : ``"warn"``, ``"raise"`` or ``"ignore"`` as in :func:`spectral_theory.predict`.
    """
    check_on_unstable(on_unstable)
    if not (isinstance(rtol, (int, float)) and 0 < rtol < 1):
        raise SpecError("rtol", rtol, "must be a real number in (0, 1)")
    if not (isinstance(atol, (int, float)) and 0 <= atol < 1):
        raise SpecError("atol", atol, "must be a real number in [0, 1)")
    if not (isinstance(jump_tol, (int, float)) and jump_tol >= 0):
        raise SpecError("jump_tol", jump_tol, "must be a real number >= 0")
    prob = scenario.problem
    lam, theta2, w, idx_lo, idx_hi = _node_info(scenario, modes)
    weighted = modes is not None
    kappa = prob.kappa
    sigma2 = prob.noise
    n = lam.size
    state = ChainState(theta2=theta2, mu=[], M={})
    results: dict[str, ModelResult] = {}
    warn_msgs: list[str] = []
    unstable: dict[str, dict] = {}
    grid: dict[str, int] = {}
    max_xs: dict[str, float] = {}
    stats_all = _Stats()
    t_start = time.perf_counter()

    for gi, model in enumerate(scenario.models):
        s = _speeds(model, lam, idx_lo, idx_hi, weighted)
        p = scenario.index(model.teacher) if model.teacher is not None else None
        alpha = float(model.alpha)
        c = 1.0 - alpha
        q = moment_q(model.batch, kappa)
        weights = w if weighted else None
        tl = Timeline.from_model(model, jump_tol)
        check = guard_steps(model.name, zip(tl.lrs, np.diff(tl.step_start), strict=True), s, model.batch,
                            kappa, on_unstable=on_unstable, warn_msgs=warn_msgs, unstable_steps=unstable,
                            weights=weights)
        limit = check.limit
        max_xs[model.name] = tl.max_lr * (float(s.max()) if s.size else 0.0)

        g = state.add_model(expect=gi)
        others = list(range(g))
        Mpp = state.M[(p, p)] if p is not None else None
        U0, W0, m0 = state.residual(g, p, c)
        nu = np.array([0.0, alpha * alpha * sigma2])
        sys = _Coupled(s=s, w=w, q=q, inv_b=1.0 / model.batch, nu=nu)

        ckpt = np.asarray(at[model.name], dtype=np.int64)
        if every_step:
            all_steps = np.arange(model.steps + 1, dtype=np.int64)
            rec_steps = np.union1d(ckpt, all_steps)
        else:
            rec_steps = np.unique(ckpt)
        rec_tau = tl.tau_of_steps(rec_steps) if model.steps else np.zeros(rec_steps.size)
        rec = _Recorder(tau=rec_tau, w=w, s=s, c=c, W0p=W0[p] if p is not None else None,
                        Mpp=Mpp, n_modes=n if record_modes else 0)
        stats = _Stats()
        try:
            U_T = _integrate(sys, U0, tl, rec_tau, rec, rtol=rtol, atol=atol, name=model.name,
                             stats=stats, max_points=max_points)
        except InstabilityError as err:
            # _integrate knows tau, not the step: name the first step at or past that tau
            tau_fail = float(err.detail_tau) if err.detail_tau is not None else math.inf
            step = int(np.searchsorted(tl.tau_of_steps(np.arange(model.steps + 1)), tau_fail))
            raise check.error(min(step, model.steps), err.lr, err.detail) from None
        grid[model.name] = stats.accepted
        stats_all.accepted += stats.accepted
        stats_all.rejected += stats.rejected

        # final state
        decay = np.exp(-s * tl.total_tau)
        state.set_from_residual(g, p, c, U_T, {h: W0[h] * decay for h in others}, m0 * decay)
        if not np.all(np.isfinite(state.M[(g, g)])):
            raise check.error(model.steps, tl.max_lr, "the moments overflowed to a non-finite value")

        # map recorded rows back to the requested checkpoints
        pos = np.searchsorted(rec_steps, ckpt)
        risk = rec.risk[pos]
        curve = rec.risk[np.searchsorted(rec_steps, np.arange(model.steps + 1))].sum(axis=1) \
            if every_step else None
        results[model.name] = model_result(
            model, ckpt, risk, state, g, disagreement=rec.dis[pos] if rec.dis is not None else None,
            mode_curves=rec.modes[pos] if rec.modes is not None else None, curve=curve, limit=limit,
            max_lr=tl.max_lr)

    disagreement = pairwise_disagreement(state, [m.name for m in scenario.models], w)
    elapsed = time.perf_counter() - t_start
    diagnostics: dict[str, Any] = {
        "grid_points": stats_all.accepted,
        "grid_points_per_model": grid,
        "rejected_steps": stats_all.rejected,
        "mode_evaluations": (stats_all.accepted + stats_all.rejected) * n,
        "modes": n,
        "weighted_modes": weighted,
        "rtol": rtol,
        "max_eta_s": max_xs,
        "ode_error": (f"the ODE drops O(eta s) per step against the exact recursion: "
                      f"max_t |E_ode - E_exact| <= {ODE_ERROR_CONSTANT} * max(eta s) * max_t E"),
        "seconds": elapsed,
        "warnings": warn_msgs,
    }
    if unstable:
        diagnostics["unstable_steps"] = unstable
    if weighted:
        diagnostics["mode_weight_total"] = float(np.sum(w))
    return Result(method="ode", models=results, scenario=scenario, disagreement=disagreement,
                  diagnostics=diagnostics, state=state)
