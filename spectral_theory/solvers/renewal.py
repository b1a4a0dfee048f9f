"""Renewal solver: the renewal equation of each constant phase inverted on hyperbolic
contours; the same answer as the exact solver at a cost independent of the number of steps.

The method, its cost, its error control and what it declines are described in
``docs/solvers/renewal.md``; in short, per constant phase:

* the student's residual ``v = e_g - c e_p`` obeys the hard-label recursion
  ``U(t+1) = diag(a) U(t) + b (1^T U(t) + sig)``; the cross moments and the first moment decay
  by ``1 - x_i`` per step (``docs/theory.md`` §4, §6);
* ``r(t) = 1^T U(t)`` has the z-transform ``R(z) = [F(z) + K(z) sig' z/(z - 1)] / (1 - K(z))``,
  inverted by the trapezoid rule on a hyperbola per window of times ``[t0, lam t0]`` (tabulated
  contours :data:`CONTOURS`, each with its measured error ``log10_err``, about 1e-12);
* sums over modes are compressed by a one-dimensional multipole scheme from :data:`FMM_MIN`
  moving modes on; times up to :data:`T_DIRECT` are stepped directly.

Accuracy: about 1e-10 relative to the exact solver (tests/test_renewal.py checks every field
at 1e-8); ``diagnostics["consistency"]`` is an a-posteriori check. Declined (``supports``): some
per-mode factor ``a_i <= 0``, more than :data:`MAX_PHASES` phases per model, schedules without
a native phase list over more than :data:`MAX_EXPAND` steps, and ``every_step`` beyond
:data:`MAX_EVERY_STEP` steps.
"""

from __future__ import annotations

import math
from contextlib import nullcontext as _nullcontext
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from ..result import ModelResult, Result
from ..spec import Constant, Piecewise, Scenario, Schedule, StepDecay
from ..stability import DEFAULT_ON_UNSTABLE, StepCheck, moment_q, secular_top
from .base import (
    ChainState,
    PrefixCache,
    Solver,
    model_result,
    solve_chain,
)

__all__ = ["RenewalSolver", "run_renewal", "supports", "contour_error", "ContourSpec", "CONTOURS", "CONTOURS_POLES",
           "METHOD_NAME", "plan_windows", "constant_phases"]

METHOD_NAME = "renewal"

#: Largest number of constant phases per model.
MAX_PHASES = 10_000
#: Schedules without a native phase list are expanded step by step up to this length.
MAX_EXPAND = 2_000_000
#: ``every_step=True`` is served up to this many steps per model.
MAX_EVERY_STEP = 1_000_000
#: Times ``t <= T_DIRECT`` of a phase (and phases that short) are stepped directly.
T_DIRECT = 16
#: Largest ``|Im s|`` allowed on a contour (the strip is ``|Im s| < pi``).
IM_MAX = 2.5
#: Multipole scheme: used from this many moving modes on (direct sums below).
FMM_MIN = 4096
#: Bins: geometric in delta with this ratio; Taylor terms and largest radius / distance.
BIN_RATIO = 1.05
FMM_TERMS = 14
FMM_RATIO = 0.1
#: Far block: delta <= FAR_RATIO min|E|, one series of FAR_TERMS terms about delta = 0.
FAR_TERMS = 10
FAR_RATIO = 0.03

_DP_MAX = 20_000  # window planning: dynamic programme up to this many times, greedy above
_T_CHUNK = 4096  # times per block of exp(s t)
_STATE_CHUNK = 8  # per-mode states per reverse evaluation


@dataclass(frozen=True)
class ContourSpec:
    """Hyperbola ``s(u) = mu (1 + sin(i u - alpha))``, nodes ``u_k = (k + 1/2) h``,
    ``k < n``, ``h = hn / n``, ``mu = mun * n``, for times ``t in [1, lam]``.

    ``log10_err``: measured ``max |error| (1 + rho t)`` on ``1/(s + rho)``.
    """

    lam: float
    n: int
    alpha: float
    hn: float
    mun: float
    log10_err: float

    def nodes(self) -> tuple[np.ndarray, np.ndarray]:
        """Nodes ``s_k`` and weights ``w_k``: ``f(t) ~ Im sum_k w_k F(s_k) e^(s_k t)``."""
        h = self.hn / self.n
        mu = self.mun * self.n
        u = (np.arange(self.n) + 0.5) * h
        arg = 1j * u - self.alpha
        s = mu * (1.0 + np.sin(arg))
        w = (h / math.pi) * (1j * mu * np.cos(arg))
        return s, w

    @cached_property
    def _nodes(self) -> tuple[np.ndarray, np.ndarray]:
        return self.nodes()

    @cached_property
    def max_im(self) -> float:
        return float(np.abs(self._nodes[0].imag).max())

    @cached_property
    def t_min(self) -> float:
        """Smallest window start ``t0`` keeping the nodes inside ``|Im s| <= IM_MAX``."""
        return self.max_im / IM_MAX


#: Tabulated contours: one per window ratio ``lam``; ``log10_err`` as measured by
#: :func:`contour_error` on its design grid (see the module docstring, "Error control").
CONTOURS: tuple[ContourSpec, ...] = (
    ContourSpec(1.0, 12, 1.1099582020218381, 1.222663789793597, 3.3275488594016895, -12.03),
    ContourSpec(3.0, 20, 1.1772134192434223, 1.622266142331643, 1.0002446544716113, -12.91),
    ContourSpec(10.0, 28, 0.9791384588340435, 3.591676294572228, 0.0675690362958149, -12.27),
    ContourSpec(100.0, 44, 0.8971454111623394, 6.539082796391147, 0.002238099439497029, -12.04),
    ContourSpec(1000.0, 60, 0.8793757586207048, 9.029561693093079, 0.00013687530089232902, -12.20),
    ContourSpec(10000.0, 76, 0.864289300733919, 11.558659755171607, 9.034005310283055e-06, -12.34),
)


def contour_error(spec: ContourSpec, *, n_t: int = 24, n_rho: int = 260, order: int = 1) -> float:
    """``log10 max |Q_t[1/(s + rho)^k] - f_k(t)| (1 + rho t)^k / (t^(k-1)/(k-1)!)`` over
    ``k = 1..order``, ``t in [1, lam]`` (``n_t`` log-spaced) and ``rho in {0} U [1e-6, 1e5]``
    (``n_rho`` log-spaced), ``f_k = t^(k-1) e^(-rho t)/(k-1)!`` the exact inverse: the design
    criterion of :data:`CONTOURS` (``order = 1``: ``|Q_t - e^(-rho t)| (1 + rho t)``) and of
    :data:`CONTOURS_POLES` (``order = 4``), in Laplace form (``t0 = 1``)."""
    rho = np.concatenate([[0.0], np.logspace(-6, 5, n_rho)])
    s, w = spec.nodes()
    ts = np.geomspace(1.0, spec.lam, n_t) if spec.lam > 1 else np.array([1.0])
    ew = w[None, None, :] * np.exp(s[None, None, :] * ts[:, None, None])
    sr = s[None, None, :] + rho[None, :, None]
    worst = -math.inf
    for k in range(1, order + 1):
        scale = ts[:, None] ** (k - 1) / math.factorial(k - 1)
        q = np.imag(ew / sr ** k).sum(-1)
        e = np.abs(q - scale * np.exp(-rho[None, :] * ts[:, None])) * (1.0 + rho[None, :] * ts[:, None]) ** k
        worst = max(worst, float(np.log10((e / scale).max())))
    return worst


#: Contours for transforms with poles of order up to 4, or up to four nearly coinciding simple
#: poles (an average's moments over modes slower than the window: ``docs/solvers/renewal.md``,
#: "SGD variants"): :func:`contour_error` with ``order = 4``, ``log10_err`` as measured on
#: its design grid. More nodes per decade than :data:`CONTOURS`, whose error on a double pole
#: reaches 1e-6 and on a triple pole 1 (window ratio 10^4).
CONTOURS_POLES: tuple[ContourSpec, ...] = (
    ContourSpec(1.0, 16, 1.1168394327756892, 1.127097678446443, 3.6692096874569113, -12.00),
    ContourSpec(3.0, 32, 0.8049642104371841, 3.1693245254247286, 0.14198097811381866, -13.13),
    ContourSpec(10.0, 40, 0.811089450937595, 3.856249934918183, 0.04790529131392325, -12.30),
    ContourSpec(100.0, 72, 0.7936677764080122, 6.216551035169056, 0.003039349491856673, -11.73),
)


@dataclass
class _Counters:
    nodes: int = 0  # contour nodes evaluated
    node_modes: int = 0  # sum over nodes of the moving modes summed (the O(d) work unit)
    direct_steps: int = 0  # steps integrated directly
    direct_mode_steps: int = 0
    windows: int = 0
    phases_direct: int = 0
    phases_contour: int = 0
    fmm_setups: int = 0
    near_pairs: int = 0  # (node, mode) pairs summed directly by the multipole scheme
    consistency: float = 0.0  # largest relative gap sum_i U_i(n) + C vs r(n) at phase ends
    variant_fallbacks: list = field(default_factory=list)  # variant models handed to the exact engine


# ----------------------------------------------------------------------------
# sums over modes:  sum_i w_i / (E + delta_i)  and its transpose


_CHUNK = 8192


def _direct_forward(E: np.ndarray, delta: np.ndarray, W: np.ndarray) -> np.ndarray:
    """``out[k, j] = sum_i W[k, i] / (E_j + delta_i)`` (complex, shape (nw, nE))."""
    er = E.real[:, None]
    ei = E.imag
    ei2 = (ei * ei)[:, None]
    acc_u = np.zeros((E.size, W.shape[0]))
    acc_1 = np.zeros((E.size, W.shape[0]))
    for lo in range(0, delta.size, _CHUNK):
        dl = delta[lo:lo + _CHUNK]
        wc = W[:, lo:lo + _CHUNK].T
        u = er + dl
        inv = u * u
        inv += ei2
        np.reciprocal(inv, out=inv)
        acc_1 += inv @ wc
        u *= inv
        acc_u += u @ wc
    return (acc_u - 1j * ei[:, None] * acc_1).T


def _direct_reverse(E: np.ndarray, C: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """``out[k, i] = Im sum_j C[k, j] / (E_j + delta_i)`` (real, shape (nc, d))."""
    er = E.real[:, None]
    ei = E.imag
    ei2 = (ei * ei)[:, None]
    cim = np.ascontiguousarray(C.imag)
    cre_ei = np.ascontiguousarray(C.real * ei[None, :])
    out = np.empty((C.shape[0], delta.size))
    for lo in range(0, delta.size, _CHUNK):
        dl = delta[lo:lo + _CHUNK]
        u = er + dl
        inv = u * u
        inv += ei2
        np.reciprocal(inv, out=inv)
        u *= inv
        out[:, lo:lo + _CHUNK] = cim @ u - cre_ei @ inv
    return out


class _ModeSums:
    """Sums over modes with poles at ``-delta_i``.

    ``forward(E)``: ``sum_i W[k, i] / (E_j + delta_i)`` (shape (nw, nE));
    ``reverse(E, C)``: ``Im sum_j C[k, j] / (E_j + delta_i)`` for every mode
    (shape (nc, d)). Direct below ``FMM_MIN`` modes (or when some
    ``delta_i <= 0``); above, the multipole scheme of the module docstring:
    modes with ``delta_i <= FAR_RATIO * e_min`` (``e_min``: the smallest
    ``|E_j|`` the caller will use) share one Taylor series about ``delta = 0``
    (``FAR_TERMS`` terms); the others are binned.
    """

    def __init__(self, delta: np.ndarray, W: np.ndarray, counters: _Counters, *,
                 fmm: bool | None = None, e_min: float = 0.0):
        self.delta = delta
        self.W = W
        self.counters = counters
        if fmm is None:
            fmm = delta.size >= FMM_MIN
        self.fmm = bool(fmm) and delta.size > 0 and bool(np.all(delta > 0))
        if self.fmm:
            self._setup(e_min)

    # -- multipole set-up
    def _setup(self, e_min: float) -> None:
        self.counters.fmm_setups += 1
        delta = self.delta
        step = np.diff(delta)
        # an ascending view of the modes: no copy when delta is monotone
        if np.all(step >= 0):
            self.perm = None
            ds, Ws = delta, self.W
        elif np.all(step <= 0):
            self.perm = "reverse"
            ds, Ws = delta[::-1], self.W[:, ::-1]
        else:
            self.perm = np.argsort(delta, kind="stable")
            ds, Ws = delta[self.perm], self.W[:, self.perm]
        self.ds, self.Ws = ds, Ws
        # far block: delta <= FAR_RATIO e_min, one series in (delta / scale)
        self.scale = FAR_RATIO * e_min
        nf = int(np.searchsorted(ds, self.scale, side="right")) if e_min > 0 else 0
        self.nf = nf
        if nf:
            Vf = np.empty((FAR_TERMS, nf))
            Vf[0] = 1.0
            if FAR_TERMS > 1:
                np.multiply(ds[:nf], 1.0 / self.scale, out=Vf[1])
            for k in range(2, FAR_TERMS):
                np.multiply(Vf[k - 1], Vf[1], out=Vf[k])
            self.Vf = Vf
            self.mom_far = Ws[:, :nf] @ Vf.T  # (nw, FAR_TERMS)
        # bins over the rest: geometric in delta, runs of the sorted modes
        P = FMM_TERMS
        dn = ds[nf:]
        if dn.size == 0:
            self.bounds = []
            self.centre = self.radius = np.zeros(0)
            self.mom = np.zeros((Ws.shape[0], 0, P))
            return
        ids = np.floor(np.log(dn * (1.0 / dn[0])) * (1.0 / math.log(BIN_RATIO))).astype(np.int64)
        starts = np.flatnonzero(np.concatenate([[True], ids[1:] != ids[:-1]]))
        ends = np.concatenate([starts[1:], [dn.size]])
        first = dn[starts]
        last = dn[ends - 1]
        centre = 0.5 * (first + last)
        radius = 0.5 * (last - first)
        counts = ends - starts
        rad_m = np.repeat(radius, counts)
        eps = dn - np.repeat(centre, counts)
        np.divide(eps, rad_m, out=eps, where=rad_m > 0)
        eps[rad_m == 0] = 0.0
        V = np.empty((P, dn.size))  # V[p, i] = eps_i^p
        V[0] = 1.0
        if P > 1:
            V[1] = eps
        for k in range(2, P):
            np.multiply(V[k - 1], eps, out=V[k])
        Wn = Ws[:, nf:]
        mom = np.empty((Ws.shape[0], starts.size, P))
        bounds = list(zip(starts.tolist(), ends.tolist(), strict=True))
        for k, (lo_, hi_) in enumerate(bounds):
            mom[:, k, :] = Wn[:, lo_:hi_] @ V[:, lo_:hi_].T
        self.bounds, self.centre, self.radius, self.V, self.mom = bounds, centre, radius, V, mom

    def _geometry(self, E: np.ndarray):
        invZ = 1.0 / (E[:, None] + self.centre[None, :])
        Y = -self.radius[None, :] * invZ
        near = np.abs(Y) > FMM_RATIO
        return invZ, Y, near

    def _far_powers(self, E: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        invE = 1.0 / E
        Yf = -self.scale * invE
        if np.any(np.abs(Yf) > FAR_RATIO * (1 + 1e-12)):  # pragma: no cover - internal invariant
            raise RuntimeError("far-field series used outside its disc")
        return invE, Yf

    def forward(self, E: np.ndarray) -> np.ndarray:
        self.counters.nodes += E.size
        self.counters.node_modes += E.size * self.delta.size
        if not self.fmm:
            return _direct_forward(E, self.delta, self.W)
        nw = self.W.shape[0]
        out = np.zeros((nw, E.size), dtype=complex)
        if self.nf:
            invE, Yf = self._far_powers(E)
            mf = self.mom_far
            acc = np.empty((nw, E.size), dtype=complex)
            acc[...] = mf[:, -1:]
            for p in range(FAR_TERMS - 2, -1, -1):
                acc *= Yf[None]
                acc += mf[:, p:p + 1]
            out += acc * invE[None]
        if not self.bounds:
            return out
        invZ, Y, near = self._geometry(E)
        mom = self.mom
        P = mom.shape[2]
        acc = np.empty((nw, E.size, mom.shape[1]), dtype=complex)
        acc[...] = mom[:, None, :, P - 1]
        for p in range(P - 2, -1, -1):
            acc *= Y[None]
            acc += mom[:, None, :, p]
        acc *= invZ[None]
        acc[:, near] = 0.0
        out += acc.sum(axis=2)
        if near.any():
            dn, Wn = self.ds[self.nf:], self.Ws[:, self.nf:]
            for k in np.flatnonzero(near.any(axis=0)):
                J = np.flatnonzero(near[:, k])
                lo_, hi_ = self.bounds[k]
                self.counters.near_pairs += J.size * (hi_ - lo_)
                out[:, J] += _direct_forward(E[J], dn[lo_:hi_], Wn[:, lo_:hi_])
        return out

    def reverse(self, E: np.ndarray, C: np.ndarray) -> np.ndarray:
        if not self.fmm:
            return _direct_reverse(E, C, self.delta)
        nc = C.shape[0]
        rho = np.empty((nc, self.ds.size))
        nf = self.nf
        if nf:
            invE, Yf = self._far_powers(E)
            G = C * invE[None]
            cf = np.empty((nc, FAR_TERMS))
            for p in range(FAR_TERMS):
                if p:
                    G *= Yf[None]
                cf[:, p] = G.sum(axis=1).imag
            rho[:, :nf] = cf @ self.Vf
        if self.bounds:
            invZ, Y, near = self._geometry(E)
            G = C[:, :, None] * invZ[None]
            G[:, near] = 0.0
            P = FMM_TERMS
            L = np.empty((self.centre.size, nc, P))
            for p in range(P):
                if p:
                    G *= Y[None]
                L[:, :, p] = G.sum(axis=1).imag.T
            rn = rho[:, nf:]
            V = self.V
            for k, (lo_, hi_) in enumerate(self.bounds):
                rn[:, lo_:hi_] = L[k] @ V[:, lo_:hi_]
            if near.any():
                dn = self.ds[nf:]
                for k in np.flatnonzero(near.any(axis=0)):
                    J = np.flatnonzero(near[:, k])
                    lo_, hi_ = self.bounds[k]
                    rn[:, lo_:hi_] += _direct_reverse(E[J], C[:, J], dn[lo_:hi_])
        if self.perm is None:
            return rho
        if isinstance(self.perm, str):
            return rho[:, ::-1]
        out = np.empty_like(rho)
        out[:, self.perm] = rho
        return out


# ----------------------------------------------------------------------------
# windows


def plan_windows(times: np.ndarray, t_floor: float = 0.0,
                  specs: tuple[ContourSpec, ...] = CONTOURS) -> list[tuple[ContourSpec, float, np.ndarray]]:
    """Cover the sorted times (all > T_DIRECT, and all >= ``t_floor``) by contour windows
    ``[t0, lam t0]`` with ``t0 >= t_floor``, from the table ``specs``.

    A dynamic programme over the times minimises the total number of nodes
    (greedy with the widest window above ``_DP_MAX`` times). Returns
    ``(spec, t0, indices into times)`` per window, highest window first.
    """
    m = times.size
    t0s = [np.maximum(np.maximum(times / sp.lam, sp.t_min), t_floor) for sp in specs]
    js = [np.searchsorted(times, t0 * (1 - 1e-12), side="left") for t0 in t0s]
    valid = [t0 <= times for t0 in t0s]
    out = []
    if m <= _DP_MAX:
        best = np.full(m + 1, np.inf)
        best[0] = 0.0
        choice = np.full(m + 1, -1)
        for i in range(1, m + 1):
            for k, sp in enumerate(specs):
                if valid[k][i - 1]:
                    cost = best[js[k][i - 1]] + sp.n
                    if cost < best[i]:
                        best[i] = cost
                        choice[i] = k
        i = m
        while i > 0:
            k = int(choice[i])
            if k < 0:  # pragma: no cover - T_DIRECT lies above every spec's t_min
                raise RuntimeError("no contour covers the requested times")
            j = int(js[k][i - 1])
            out.append((specs[k], float(t0s[k][i - 1]), np.arange(j, i)))
            i = j
        return out
    wide = max(range(len(specs)), key=lambda k: math.log(specs[k].lam) / specs[k].n)
    i = m
    while i > 0:
        k = wide if valid[wide][i - 1] else min(
            (k for k in range(len(specs)) if valid[k][i - 1]), key=lambda k: specs[k].n)
        j = int(js[k][i - 1])
        out.append((specs[k], float(t0s[k][i - 1]), np.arange(j, i)))
        i = j
    return out


# ----------------------------------------------------------------------------
# one constant phase


@dataclass
class _PhaseOut:
    r: np.ndarray  # (2, k): sum_i U_i at the requested times
    U_end: np.ndarray  # (2, d)
    U_modes: np.ndarray | None  # (k_m, 2, d) at the times flagged in mode_mask
    geo: np.ndarray | None  # (nw, k): sum_i geo_w[:, i] (1 - x_i)^t


def _delta(x: np.ndarray, q: float) -> np.ndarray:
    """``delta = 1 - a = x (2 - q x)``, formed without cancellation."""
    out = x * q
    out -= 2.0
    out *= x
    np.negative(out, out=out)
    return out


_LOG1M_SERIES = 1e-3


def _log1m(v: np.ndarray) -> np.ndarray:
    """``log(1 - v)`` for ``v < 1``: a 6-term series below ``1e-3`` (error < v^7/7 ~ 1e-21 v),
    ``log1p(-v)`` above (the series is ~4x cheaper than the libm call)."""
    out = v * (1.0 / 6.0)
    for c in (0.2, 0.25, 1.0 / 3.0, 0.5, 1.0):
        out += c
        out *= v
    np.negative(out, out=out)
    big = np.abs(v) >= _LOG1M_SERIES
    if big.any():
        out[big] = np.log1p(-v[big])
    return out


def _pow_factor(x: np.ndarray, t) -> np.ndarray:
    """``(1 - x)^t`` for integer ``t`` (scalar or array broadcasting against x)."""
    base = 1.0 - x
    with np.errstate(divide="ignore"):
        lg = _log1m(x) if bool(np.all(x < 1.0)) else np.log(np.abs(base))
    t_arr = np.asarray(t)
    mag = np.exp(np.multiply.outer(t_arr, lg)) if t_arr.ndim else np.exp(float(t) * lg)
    neg = base < 0
    if neg.any():
        odd = (np.asarray(t_arr, dtype=np.int64) % 2 == 1)
        sign = np.where(np.multiply.outer(odd, neg) if t_arr.ndim else (odd & neg), -1.0, 1.0)
        mag = mag * sign
    return mag


def _solve_phase(x: np.ndarray, q: float, inv_b: float, U0: np.ndarray, sig: np.ndarray, n: int,
                 times: np.ndarray, mode_mask: np.ndarray, geo_w: np.ndarray | None,
                 counters: _Counters, *, fmm: bool | None = None,
                 unstable: bool = False) -> _PhaseOut:
    """Advance ``U(t+1) = diag(a) U + b (1^T U + sig)`` over ``n`` steps.

    ``times``: sorted distinct local times in ``[1, n]`` to report; ``mode_mask``
    flags those at which the per-mode state is wanted. ``geo_w`` (nw, d): rows
    whose sums against ``(1 - x)^t`` are wanted at ``times``.
    """
    d = x.size
    mov = x > 0
    allmov = bool(mov.all())
    xm = x if allmov else x[mov]
    delta = _delta(xm, q)
    b = xm * xm
    b *= inv_b
    dm = xm.size
    W3 = np.empty((3, dm))
    W3[0] = b
    W3[1:] = U0 if allmov else U0[:, mov]
    U0m = W3[1:]
    C = np.zeros(2) if allmov else U0[:, ~mov].sum(axis=1)
    sig_eff = sig + C
    k = times.size
    r = np.empty((2, k))
    n_modes = int(mode_mask.sum())
    U_modes = np.empty((n_modes, 2, d)) if n_modes else None
    mode_pos = np.cumsum(mode_mask) - 1
    geo = None
    if geo_w is not None and (n <= T_DIRECT or not _geo_contour_ok(x)):
        geo = _geo_direct(x, geo_w, times)

    if dm == 0:  # nothing moves: the state is constant
        r[:] = C[:, None]
        for j in np.flatnonzero(mode_mask):
            U_modes[mode_pos[j]] = U0
        return _PhaseOut(r=r, U_end=U0.copy(), U_modes=U_modes,
                         geo=geo if geo is not None else _geo_direct(x, geo_w, times)
                         if geo_w is not None else None)

    def full(Um: np.ndarray) -> np.ndarray:
        if allmov:
            return Um
        out = U0.copy()
        out[:, mov] = Um
        return out

    # -- direct stepping: the whole phase if short, else the times <= T_DIRECT
    if n <= T_DIRECT:
        n_dir = n
    else:
        early = times[times <= T_DIRECT]
        n_dir = int(early[-1]) if early.size else 0
    if n_dir:
        a = 1.0 - delta
        U = U0m
        j = 0
        for t in range(1, n_dir + 1):
            S = U.sum(axis=1)
            U = a * U + b * (S + sig_eff)[:, None]
            while j < k and times[j] == t:
                r[:, j] = U.sum(axis=1) + C
                if mode_mask[j]:
                    U_modes[mode_pos[j]] = full(U)
                j += 1
        counters.direct_steps += n_dir
        counters.direct_mode_steps += n_dir * dm
    if n <= T_DIRECT:
        counters.phases_direct += 1
        return _PhaseOut(r=r, U_end=full(U if n_dir else U0m.copy()), U_modes=U_modes, geo=geo)

    counters.phases_contour += 1
    # -- contour part: times above T_DIRECT and the phase end
    ct = times[times > T_DIRECT].astype(float)
    if ct.size == 0 or ct[-1] != n:
        ct = np.concatenate([ct, [float(n)]])
    windows = plan_windows(ct)
    # contour shift per source row: past an unstable step's top pole; for a row with no
    # steady state (sig' = 0) that decays over the phase, onto its slowest pole, so that
    # the quadrature error decays with it (relative accuracy in the exponential regime)
    shifts = [0.0, 0.0]
    if unstable:
        shifts = [_growth_shift(1.0 - delta, b)] * 2
    elif float(delta.min()) * n > 1.0:
        rows = [j for j in (0, 1) if sig_eff[j] == 0.0 and bool(np.any(U0m[j]))]
        if rows:
            sigma = _slowest_log_pole(delta, b)
            for j in rows:
                shifts[j] = sigma
    groups = sorted(set(shifts))
    geo_pending = geo_w is not None and geo is None
    node_shifts = groups + ([0.0] if geo_pending and 0.0 not in groups else [])
    node_sets = []
    for spec, t0, idx in windows:
        s_hat, w_hat = spec._nodes
        ns = {}
        for sh in node_shifts:
            sn = s_hat / t0 + sh
            ns[sh] = (sn, w_hat / t0, np.expm1(sn))
        node_sets.append((idx, ns))
    e_min = min(float(np.abs(E).min()) for _, ns in node_sets for _, _, E in ns.values())
    sums = _ModeSums(delta, W3, counters, fmm=fmm, e_min=e_min)
    geo_sums = None
    if geo_pending:
        geo = np.empty((geo_w.shape[0], k))
        if n_dir:
            early = times <= n_dir
            geo[:, early] = _geo_direct(x, geo_w, times[early])
        geo_const = geo_w[:, ~mov].sum(axis=1)
        geo_sums = _ModeSums(xm, geo_w if allmov else np.ascontiguousarray(geo_w[:, mov]), counters,
                             fmm=fmm, e_min=e_min)
    log_a = _log1m(delta)
    zero = delta == 0  # a_i = 1: reachable only for an unstable step
    b_over = b / np.where(zero, 1.0, delta)
    U_end = None
    for idx, ns in node_sets:
        counters.windows += 1
        tw = ct[idx]
        if k:
            pos = np.minimum(np.searchsorted(times, tw), k - 1)
            hit = times[pos] == tw
        else:
            pos = np.zeros(tw.size, dtype=np.int64)
            hit = np.zeros(tw.size, dtype=bool)
        rw = np.empty((2, tw.size))
        parts = []  # (rows, Rw, sn, E) per shift group
        for sh in groups:
            rows = np.array([j for j in (0, 1) if shifts[j] == sh])
            sn, w, E = ns[sh]
            z = 1.0 + E
            G = sums.forward(E)
            Gb = G[0]
            R = (G[1 + rows] * z[None] + sig_eff[rows, None] * (Gb * z / E)[None]) / (1.0 - Gb)[None]
            Rw = R * w[None]
            parts.append((rows, Rw, sn, E))
            for lo in range(0, tw.size, _T_CHUNK):
                ex = np.exp(np.multiply.outer(tw[lo:lo + _T_CHUNK], sn))  # (m, nodes)
                rw[rows, lo:lo + _T_CHUNK] = (Rw @ ex.T).imag + C[rows, None]
        r[:, pos[hit]] = rw[:, hit]
        if geo_sums is not None:
            sn, w, E = ns[0.0]
            Ggw = geo_sums.forward(E) * ((1.0 + E) * w)[None]
            gw = np.empty((Ggw.shape[0], tw.size))
            for lo in range(0, tw.size, _T_CHUNK):
                ex = np.exp(np.multiply.outer(tw[lo:lo + _T_CHUNK], sn))
                gw[:, lo:lo + _T_CHUNK] = (Ggw @ ex.T).imag + geo_const[:, None]
            geo[:, pos[hit]] = gw[:, hit]
        # per-mode states: at the phase end and at the flagged times of this window
        flag = hit & mode_mask[pos] if k else hit
        want = np.flatnonzero(flag | (tw == n))
        for lo in range(0, want.size, _STATE_CHUNK):
            wc = want[lo:lo + _STATE_CHUNK]
            tt = tw[wc]
            rho = np.empty((2, tt.size, dm))
            for rows, Rw, sn, E in parts:
                coef = (Rw[:, None, :] * np.exp(np.multiply.outer(tt, sn))[None]).reshape(-1, sn.size)
                rho[rows] = sums.reverse(E, coef).reshape(rows.size, tt.size, -1)
            for col, t in enumerate(tt):
                tl = t * log_a
                Ut = rho[:, col]
                Ut *= b
                Ut += np.exp(tl) * U0m
                growth = np.expm1(tl)  # a^t - 1 (not exp(tl) - 1: slow modes would cancel)
                growth *= b_over
                if zero.any():
                    growth[zero] = -t * b[zero]
                Ut -= growth * sig_eff[:, None]
                if t == n:
                    U_end = Ut.copy()
                    rn = rw[:, wc[col]]
                    nz = np.abs(rn) > 0
                    if nz.any():
                        gap = np.abs(Ut.sum(axis=1) + C - rn)[nz] / np.abs(rn[nz])
                        counters.consistency = max(counters.consistency, float(gap.max()))
                if flag[wc[col]]:
                    U_modes[mode_pos[pos[wc[col]]]] = full(Ut.copy())
    assert U_end is not None
    return _PhaseOut(r=r, U_end=full(U_end), U_modes=U_modes, geo=geo)


def _slowest_log_pole(delta: np.ndarray, b: np.ndarray) -> float:
    """``log z*`` for ``z* < 1`` the largest eigenvalue of ``diag(1 - delta) + b 1^T`` (stable step)."""
    dmin = float(delta.min())
    v = secular_top(delta - dmin, b)
    return math.log1p(min(v - dmin, 0.0))


def _growth_shift(a: np.ndarray, b: np.ndarray) -> float:
    """``log`` of the largest pole of ``R`` when it exceeds 1 (unstable step), else 0.

    The poles are the eigenvalues of ``diag(a) + b 1^T``."""
    if a.size == 0:
        return 0.0
    amax = float(a.max())
    if float(b.sum()) <= 0:
        return max(0.0, math.log(amax))
    return max(0.0, math.log(amax + secular_top(amax - a, b)))


def _geo_contour_ok(x: np.ndarray) -> bool:
    return bool(np.all(x < 1.0))


def _geo_direct(x: np.ndarray, geo_w: np.ndarray, times: np.ndarray) -> np.ndarray:
    out = np.empty((geo_w.shape[0], times.size))
    for j, t in enumerate(times):
        out[:, j] = geo_w @ _pow_factor(x, int(t))
    return out


# ----------------------------------------------------------------------------
# scenario level


def constant_phases(model) -> list[tuple[float, int]] | str:
    """The model's constant phases, or the reason they are not available cheaply."""
    sched = model.schedule
    native = type(sched).phases is not Schedule.phases or isinstance(sched, (Constant, StepDecay, Piecewise))
    if isinstance(sched, StepDecay):
        count = -(-model.steps // sched.every) if model.steps else 0
        if count > MAX_PHASES:
            return (f"model {model.name!r}: step decay every {sched.every} steps over {model.steps} "
                    f"steps has {count} constant phases (more than {MAX_PHASES}); the renewal "
                    f"solver's cost grows with the number of phases")
    if not native and model.steps > MAX_EXPAND:
        return (f"model {model.name!r}: schedule kind {sched.describe().get('kind')!r} is not "
                f"piecewise constant with few phases ({model.steps} steps, each its own phase)")
    phases = model.phases()
    if len(phases) > MAX_PHASES:
        return (f"model {model.name!r}: schedule has {len(phases)} constant phases (more than "
                f"{MAX_PHASES}); the renewal solver's cost grows with the number of phases")
    return phases


def _min_factor(speeds: np.ndarray, lr: float, q: float) -> tuple[float, float]:
    """Smallest ``a_i = 1 - 2 x + q x^2`` over moving modes and the ``x`` where it occurs.

    ``speeds``: sorted distinct positive speeds. ``a`` is a convex quadratic in
    ``x = lr s``, so the minimum over the modes is at an end or next to the vertex.
    """
    cand = [0, speeds.size - 1]
    if q * lr > 0:
        j = int(np.searchsorted(speeds, 1.0 / (q * lr)))
        cand += [max(j - 1, 0), min(j, speeds.size - 1)]
    xs = lr * speeds[np.array(cand)]
    a = 1.0 + xs * (q * xs - 2.0)
    i = int(np.argmin(a))
    return float(a[i]), float(xs[i])


def supports(scenario: Scenario) -> str | None:
    """``None`` if :class:`RenewalSolver` solves ``scenario`` exactly, else the reason why not."""
    if not isinstance(scenario, Scenario):
        return "not a Scenario"
    prob = scenario.problem
    kappa = prob.kappa
    for model in scenario.models:
        if model.is_variant:  # averaging and/or momentum: the fast path of variant_renewal
            from .variant_renewal import fast_reason

            reason = fast_reason(scenario, model)
            if reason is not None:
                return reason
            continue
        ph = constant_phases(model)
        if isinstance(ph, str):
            return ph
        s = model.speed_profile(prob.eigenvalues)
        pos = np.unique(s[s > 0])
        if pos.size == 0:
            continue
        q = moment_q(model.batch, kappa)
        for lr, _ in {(lr, 0) for lr, _ in ph}:
            amin, x = _min_factor(pos, lr, q)
            if not amin > 0:
                return (f"model {model.name!r}: at step size {lr:g} the per-mode factor "
                        f"a_i = 1 - 2 x_i + q x_i^2 (q = (B + kappa - 2)/B = {q:g}) reaches "
                        f"{amin:.3g} <= 0 at x_i = eta s_i = {x:.3g}; the renewal solver needs "
                        "every a_i > 0 (kappa >= 2, or a small enough step)")
    return None


@dataclass(frozen=True)
class RenewalSolver(Solver):
    """The renewal equation of each constant phase inverted on hyperbolic contours: exact to
    ~1e-10 relative, cost independent of the number of steps (``docs/solvers/renewal.md``).

    ``fmm``: force the multipole compression of the mode sums on (True) or off (False);
    default: on from :data:`FMM_MIN` moving modes. ``diagnostics``: ``contour_nodes`` and
    ``node_modes`` (nodes evaluated, and nodes x moving modes: the work unit), ``windows``,
    ``direct_steps``, ``phases_direct`` / ``phases_contour``, ``multipole_setups``,
    ``multipole_near_pairs`` and ``consistency`` (the a-posteriori check of the docs page).
    """

    fmm: bool | None = None

    name = METHOD_NAME
    uses_cache = True

    def supports(self, scenario, *, every_step=False, record_modes=False):
        reason = supports(scenario)
        if reason is None and every_step:
            longest = max((m for m in scenario.models), key=lambda m: m.steps)
            if longest.steps > MAX_EVERY_STEP:
                reason = (f"every_step is served only up to {MAX_EVERY_STEP} steps per model (model "
                          f"{longest.name!r} has {longest.steps}); pass the steps wanted in 'at', or "
                          "use method 'exact'")
        return reason

    def cost(self, scenario, *, every_step=False):
        # per phase: ~24 d for the compressed mode sums plus ~60 contour nodes per window;
        # direct stepping below 16 steps; every_step adds the curve
        d = scenario.problem.d
        phases = sum(len(m.phases()) for m in scenario.models)
        extra = sum(m.steps for m in scenario.models) if every_step else 0
        return float(len(scenario.models) * phases * d * 150 + 50 * extra)

    def _solve(self, scenario, *, at, record_modes, every_step, on_unstable, cache):
        counters = _Counters()

        def train(state: ChainState, gi: int, ckpt: np.ndarray, check: StepCheck) -> ModelResult:
            return _train_model(state, scenario, gi, ckpt, record_modes=record_modes, every_step=every_step,
                                check=check, counters=counters, fmm=self.fmm)

        res = solve_chain(scenario, at, train, cache=cache, record_modes=record_modes, every_step=every_step,
                          on_unstable=on_unstable, method=self.name)
        res.diagnostics.update(
            contour_nodes=counters.nodes, node_modes=counters.node_modes, windows=counters.windows,
            direct_steps=counters.direct_steps, direct_mode_steps=counters.direct_mode_steps,
            phases_direct=counters.phases_direct, phases_contour=counters.phases_contour,
            multipole_setups=counters.fmm_setups, multipole_near_pairs=counters.near_pairs,
            consistency=counters.consistency)
        if counters.variant_fallbacks:
            res.diagnostics["variant_fallbacks"] = list(counters.variant_fallbacks)
        return res


def run_renewal(
    scenario: Scenario,
    *,
    at: dict[str, np.ndarray],
    record_modes: bool = False,
    every_step: bool = False,
    on_unstable: str = DEFAULT_ON_UNSTABLE,
    cache: PrefixCache | None = None,
    fmm: bool | None = None,
) -> Result:
    """Same answer as :func:`spectral_theory.solvers.exact.run_exact`, at a cost independent of
    the number of steps (:class:`RenewalSolver`). Raises :class:`SpecError` when
    :func:`supports` declines the scenario, or for ``every_step=True`` on a model longer than
    :data:`MAX_EVERY_STEP` steps; :class:`InstabilityError` as the exact solver."""
    return RenewalSolver(fmm=fmm).solve(scenario, at=at, record_modes=record_modes,
                                        every_step=every_step, on_unstable=on_unstable, cache=cache)


def _train_model(state: ChainState, scenario: Scenario, gi: int, ckpt: np.ndarray, *,
                 record_modes: bool, every_step: bool, check: StepCheck,
                 counters: _Counters, fmm: bool | None) -> ModelResult:
    """Train model ``gi`` (models ``0..gi-1`` are in ``state``) phase by phase; report its curves
    (``check``: what the stability policy found for it)."""
    model = scenario.models[gi]
    if model.is_variant:
        from .variant_renewal import train_variant_fast

        return train_variant_fast(state, scenario, gi, ckpt, record_modes=record_modes, every_step=every_step,
                                  check=check, counters=counters)
    prob = scenario.problem
    lam = prob.eigenvalues
    kappa = prob.kappa
    d = lam.size
    g = state.add_model(expect=gi)
    s = model.speed_profile(lam)
    p = scenario.index(model.teacher) if model.teacher is not None else None
    alpha = float(model.alpha)
    c = 1.0 - alpha if p is not None else 0.0
    inv_b = 1.0 / model.batch
    q = moment_q(model.batch, kappa)
    sig = np.array([0.0, alpha * alpha * prob.noise])
    phases = constant_phases(model)
    assert not isinstance(phases, str)
    max_lr = max((lr for lr, _ in phases), default=0.0)
    limit = check.limit

    times = np.unique(ckpt)
    if every_step:
        times = np.arange(model.steps + 1, dtype=np.int64)
    mode_flag = np.isin(times, ckpt) if record_modes else np.zeros(times.size, dtype=bool)
    nt = times.size
    rU = np.zeros((2, nt))  # sum_i U_i per source
    sWp = np.zeros((2, nt))  # sum_i W_p,i per source
    U_at = np.zeros((nt, 2, d)) if record_modes else None
    Wp_at = np.zeros((nt, 2, d)) if (record_modes and p is not None) else None

    # residual state of g (see the module docstring)
    Mgg0 = state.M[(g, g)]
    Mgp0 = state.pair(p, g) if p is not None else None
    Mpp = state.M[(p, p)] if p is not None else None
    sum_mpp = Mpp.sum(axis=1) if p is not None else np.zeros(2)
    U, W, mu_v = state.residual(g, p, c)

    if nt and times[0] == 0:
        rU[:, 0] = U.sum(axis=1)
        if p is not None:
            sWp[:, 0] = W[p].sum(axis=1)
        if U_at is not None:
            U_at[0] = U
            if Wp_at is not None:
                Wp_at[0] = W[p]
    tg = 0
    for lr, n in phases:
        x = lr * s
        sel = np.flatnonzero((times > tg) & (times <= tg + n))
        # a phase above the limit is integrated on a contour shifted past its growing pole
        unstable = lr in check.rates
        with np.errstate(over="ignore", invalid="ignore") if unstable else _nullcontext():
            out = _solve_phase(x, q, inv_b, U, sig, n, times[sel] - tg, mode_flag[sel],
                               W[p] if p is not None else None, counters, fmm=fmm,
                               unstable=unstable)
            rU[:, sel] = out.r
            if p is not None:
                sWp[:, sel] = out.geo
            if U_at is not None:
                flagged = sel[mode_flag[sel]]
                if flagged.size:
                    U_at[flagged] = out.U_modes
                    if Wp_at is not None:
                        fac = _pow_factor(x, times[flagged] - tg)  # (k, d)
                        Wp_at[flagged] = W[p][None] * fac[:, None, :]
            U = out.U_end
            fac = _pow_factor(x, n)
            for h in W:
                W[h] = W[h] * fac
            mu_v = mu_v * fac
        if not (np.all(np.isfinite(U)) and np.all(np.isfinite(rU[:, sel]))):
            raise check.error(tg + n, lr, "the moments overflowed to a non-finite value")
        tg += n

    # assemble g's moments (an untrained model keeps its initialisation exactly)
    if phases:
        state.set_from_residual(g, p, c, U, W, mu_v)

    risk_src = rU + 2.0 * c * sWp + (c * c) * sum_mpp[:, None]  # (2, nt)
    dis = full = None
    if p is not None:
        dis = (rU - 2.0 * alpha * sWp + (alpha * alpha) * sum_mpp[:, None]).sum(axis=0)
    if U_at is not None:
        full = U_at + 2.0 * c * Wp_at + (c * c) * Mpp[None] if c != 0.0 else U_at
    if nt and times[0] == 0:
        # step 0 is the initialisation itself: report it as the engine forms it
        risk_src[:, 0] = Mgg0.sum(axis=1)
        if dis is not None:
            dis[0] = (Mgg0 - 2.0 * Mgp0 + Mpp).sum()
        if full is not None:
            full[0] = Mgg0
    pos = np.searchsorted(times, ckpt)
    return model_result(model, ckpt, risk_src[:, pos].T, state, g,
                        disagreement=dis[pos] if dis is not None else None,
                        mode_curves=full.sum(axis=1)[pos] if full is not None else None,
                        curve=risk_src.sum(axis=0) if every_step else None, limit=limit, max_lr=max_lr)
