"""Constant-phase fast path for averaged and momentum models
(``docs/solvers/renewal.md``, "SGD variants"; ``docs/theory.md`` §10).

A model with momentum and/or iterate averaging and constant coefficients over a constant phase
is a linear time-invariant system per mode, coupled across modes only through the gradient-noise
term, like plain SGD (``docs/theory.md`` §6). In the coordinates ``y = (e, d)``, ``d = e - v``
(iterate error and its gap to the auxiliary sequence; ``d = 0`` at the start), one step is
``y' = P_i y - g_i xi`` with ``P_i = I - Dp_i``,

    Dp = [[x_e, -(p_e - 1) - x_e (1 - r)], [x_e - x_v, 1 - (p_e - p_v) - (x_e - x_v)(1 - r)]],

``g_i = (x_e, x_e - x_v)`` and ``xi`` the zero-mean gradient noise, whose variance is
``(1/B)((kappa - 2) U_i + sum_j U_j + noise)`` with ``U_i = E[pi_i^2] = c^T Sigma_i``,
``pi = e - (1 - r) d`` the residual at the gradient point. The second moments
``Sigma_i = (E[e^2], E[e d], E[d^2])`` obey ``Sigma' = (I - D2_i) Sigma + b_i (sum_j U_j + noise)``,
``b_i = (g_1^2, g_1 g_2, g_2^2)/B``; ``D2`` is formed from ``Dp`` without subtracting from 1, so
slow modes keep their digits. An average ``a' = keep a + rho e'`` (EMA: ``keep = decay``,
``rho = 1 - decay``; uniform and tail: the running sum ``S' = S + e'``, ``keep = rho = 1``,
divided by the window length when reported) adds ``E[a^2]`` and ``E[a y]``, which never feed
back. The scalar ``u(t) = sum_i U_i(t)`` then has the z-transform
``U(z) = [F(z) + K(z) noise z/(z - 1)] / (1 - K(z))`` with ``K(z) = sum_i c^T (z - I + D2_i)^-1 b_i``
and ``F(z) = sum_i c^T (z - I + D2_i)^-1 z Sigma_i(0)``. Every transform is a sum over modes of
ratios of polynomials in ``E = z - 1`` with per-mode real coefficients (:class:`_Rational`:
adjugates and characteristic polynomials of the 3x3 and 2x2 blocks, computed once per phase),
inverted on the contours of :data:`~spectral_theory.solvers.renewal.CONTOURS_POLES` (designed for
poles of order up to 4: an average's moments over a slow mode), the sums over modes and the
per-mode inversions being matrix products. First moments and cross moments with frozen models
(no noise) are exact matrix powers (:func:`_delta_power`).

Momentum gives complex per-mode poles ``zeta`` (under-damped modes). A pole outside the wedge
``|arg zeta| <= WEDGE (-log |zeta|)`` may lie outside a contour; its residue decays like
``|zeta|^t``, so the first ``n_direct`` steps of a phase are stepped directly, with
``|zeta|^n_direct <= e^-DECAY_E`` for every such pole, and the contour serves only later times.
An a-posteriori check compares the contour with the directly stepped value at ``n_direct``
(``diagnostics["consistency"]``); a phase that fails it, or needs more than :data:`MAX_DIRECT`
direct steps, and models with a transient excursion above the stability limit or asking for
every step, are handed to the exact step engine (``diagnostics["variant_fallbacks"]``). A source
row without a steady state that decays over the phase is inverted on contours shifted onto its
slowest pole (relative accuracy in the exponential regime) when the complex poles allow it.
A student moves only its residual ``e - c e_p`` (and ``d``), which follows the recursion of a
model trained on the data (:func:`_train`); its noise-free cross moment with the parent is summed
on the unshifted contour (:func:`_cross_sums`). Declined by :func:`fast_reason` (then ``auto``
picks ``exact``): per-step momentum coefficients and per-step averaging weights.
"""

from __future__ import annotations

import math

import numpy as np

from ..result import ModelResult
from ..spec import Scenario
from ..spec.variants import variant_phases
from ..stability import StepCheck
from .base import ChainState, model_result

__all__ = ["fast_reason", "train_variant_fast", "WEDGE", "DECAY_E", "MAX_DIRECT", "CHECK_TOL"]

#: A pole ``zeta`` is within reach of every contour when ``|arg zeta| <= WEDGE (-log|zeta|)``
#: (the contours' asymptotic half-opening ``tan(alpha)`` is 1.0 to 2.1: a margin of 2 or more).
WEDGE = 0.5
#: Poles outside the wedge: direct steps until their residues decay below ``e^-DECAY_E``.
DECAY_E = 40.0
#: Most direct steps per phase before the model is handed to the exact engine.
MAX_DIRECT = 200_000
#: A-posteriori check (contour vs direct steps at ``n_direct``): relative tolerance.
CHECK_TOL = 1e-8
#: Times ``t <= T_FIRST`` of a phase are always stepped directly.
T_FIRST = 16
_NODE_CHUNK = 4


class _Fallback(Exception):
    """The fast path cannot serve this model; the exact engine will."""


def fast_reason(scenario: Scenario, model) -> str | None:
    """``None`` if the constant-phase fast path serves ``model`` (an averaged and/or momentum
    model of ``scenario``), else the reason why not."""
    from .renewal import constant_phases

    name = model.name
    mom = model.momentum
    if mom is not None and not mom.constant:
        return (f"model {name!r} has per-step momentum coefficients; the constant-phase fast path needs "
                "constant ones")
    avg = model.average
    if avg is not None and avg.kind == "weights":
        return (f"model {name!r} averages with per-step weights (kind 'weights'); the constant-phase fast "
                "path covers the kinds 'uniform', 'tail' and 'ema'")
    ph = constant_phases(model)
    if isinstance(ph, str):
        return ph
    return None


# ----------------------------------------------------------------------------
# per-mode blocks of one constant phase


class _Block:
    """The per-mode matrices of one constant phase (see the module docstring)."""

    def __init__(self, coefs, s: np.ndarray, batch: int, kappa: float, keep: float, rho: float):
        inv_b = 1.0 / batch
        r, p_e, p_v, h_e, h_v = coefs
        x_e = h_e * s
        x_v = h_v * s
        rb = 1.0 - r
        dp = np.empty((2, 2, s.size))
        dp[0, 0] = x_e
        dp[0, 1] = -(p_e - 1.0) - x_e * rb
        dp[1, 0] = x_e - x_v
        dp[1, 1] = (1.0 - (p_e - p_v)) - (x_e - x_v) * rb
        p = -dp  # off-diagonal entries of P; its diagonal is 1 - dp
        p00 = 1.0 - dp[0, 0]
        p11 = 1.0 - dp[1, 1]
        g1, g2 = x_e, x_e - x_v
        ghat = np.stack([g1 * g1, g1 * g2, g2 * g2])
        self.c = np.array([1.0, -2.0 * rb, rb * rb])
        d2 = np.empty((3, 3, s.size))
        d2[0, 0] = dp[0, 0] * (2.0 - dp[0, 0])
        d2[0, 1] = -2.0 * p00 * p[0, 1]
        d2[0, 2] = -p[0, 1] * p[0, 1]
        d2[1, 0] = -p00 * p[1, 0]
        d2[1, 1] = dp[0, 0] + dp[1, 1] - dp[0, 0] * dp[1, 1] - dp[0, 1] * dp[1, 0]
        d2[1, 2] = -p[0, 1] * p11
        d2[2, 0] = -p[1, 0] * p[1, 0]
        d2[2, 1] = -2.0 * p[1, 0] * p11
        d2[2, 2] = dp[1, 1] * (2.0 - dp[1, 1])
        self_noise = inv_b * (kappa - 2.0)
        d2 -= self_noise * ghat[:, None, :] * self.c[None, :, None]
        self.dp, self.d2 = dp, d2
        self.b = inv_b * ghat
        self.keep, self.rho = keep, rho
        self.coefs, self.speeds, self.batch, self.kappa = coefs, s, batch, kappa
        self.x_e, self.x_v = x_e, x_v

    # -- direct steps -------------------------------------------------------------------
    def step(self, sig: np.ndarray, noise: np.ndarray) -> np.ndarray:
        """``Sigma`` (rows, 3, d) one step on, by the step engine's kernels
        (:mod:`~spectral_theory.solvers.variant_kernels`): the a-posteriori check then compares
        the transforms built from ``D2`` and ``b`` with the engine's own recursion."""
        from . import variant_kernels as vk

        r, p_e, p_v, _, _ = self.coefs
        Mee, Med, Mdd = sig[:, 0], sig[:, 1], sig[:, 2]
        U, e_pi, d_pi = vk.point_moment(Mee, Med, Mdd, 0.0, 0.0, 0.0, r, 0.0)
        out = vk.momentum_step(Mee, Med, Mdd, U, e_pi, d_pi, U.sum(axis=1, keepdims=True), p_e, p_v, self.x_e,
                               self.x_v, 1.0 / self.batch, self.kappa, noise[:, None])
        return np.stack(out, axis=1)

    def pstep(self, y: np.ndarray) -> np.ndarray:
        """``P y`` for ``y`` (..., 2, d)."""
        dp = self.dp
        out = np.empty_like(y)
        for k in range(2):
            out[..., k, :] = y[..., k, :] - dp[k, 0] * y[..., 0, :] - dp[k, 1] * y[..., 1, :]
        return out

    def avg_step(self, A: np.ndarray, Ay: np.ndarray, sig_new: np.ndarray):
        """``E[a'^2]``, ``E[a' y']`` from ``E[a^2]``, ``E[a y]`` and the new ``Sigma``."""
        k, w = self.keep, self.rho
        py = self.pstep(Ay)
        return (k * k * A + 2.0 * k * w * py[..., 0, :] + w * w * sig_new[..., 0, :],
                k * py + w * sig_new[..., :2, :])


# ----------------------------------------------------------------------------
# the transforms as rational functions of E = z - 1 with per-mode real coefficients


def _adj3(B: np.ndarray) -> np.ndarray:
    """Adjugate of every 3x3 block of ``B`` (3, 3, d)."""
    a = B
    out = np.empty_like(B)
    out[0, 0] = a[1, 1] * a[2, 2] - a[1, 2] * a[2, 1]
    out[0, 1] = a[0, 2] * a[2, 1] - a[0, 1] * a[2, 2]
    out[0, 2] = a[0, 1] * a[1, 2] - a[0, 2] * a[1, 1]
    out[1, 0] = a[1, 2] * a[2, 0] - a[1, 0] * a[2, 2]
    out[1, 1] = a[0, 0] * a[2, 2] - a[0, 2] * a[2, 0]
    out[1, 2] = a[0, 2] * a[1, 0] - a[0, 0] * a[1, 2]
    out[2, 0] = a[1, 0] * a[2, 1] - a[1, 1] * a[2, 0]
    out[2, 1] = a[0, 1] * a[2, 0] - a[0, 0] * a[2, 1]
    out[2, 2] = a[0, 0] * a[1, 1] - a[0, 1] * a[1, 0]
    return out


class _Rational:
    """The z-transforms of one phase as sums over modes of ``N_i(E) / Q_i(E)``, ``E = z - 1``.

    With ``B = D2_i``: ``(E I + B)^-1 = adj(E I + B) / P3(E)``, ``adj(E I + B) = E^2 I +
    E (tr B I - B) + adj B``, ``P3(E) = E^3 + tr B E^2 + c2(B) E + det B``; for an average also
    ``(E + eps) I + keep Dp`` (``eps = 1 - keep``; determinant ``P2``) and ``E + 1 - keep^2``
    (``P1``). Numerators are real polynomials (coefficient index first, then mode); the sums over
    modes at a chunk of nodes are matrix products with the reciprocals of the denominators, and
    the per-mode inverse transforms matrix products over the nodes."""

    def __init__(self, blk: _Block, st: _PhaseState, averaged: bool):
        B = blk.d2
        d = B.shape[2]
        self.averaged = averaged
        trB = B[0, 0] + B[1, 1] + B[2, 2]
        adjB = _adj3(B)
        c2 = adjB[0, 0] + adjB[1, 1] + adjB[2, 2]
        detB = B[0, 0] * adjB[0, 0] + B[0, 1] * adjB[1, 0] + B[0, 2] * adjB[2, 0]
        self.p3 = (detB, c2, trB)  # P3 = E^3 + trB E^2 + c2 E + detB

        def adj3(v):  # adj(E I + B) v: (3 degrees, 3, d)
            out = np.empty((3, 3, d))
            out[0] = np.einsum("ijd,jd->id", adjB, v)
            out[1] = trB * v - np.einsum("ijd,jd->id", B, v)
            out[2] = v
            return out

        c = blk.c
        self.W = adj3(blk.b)  # (E I + B)^-1 b = W / P3
        self.Y = [adj3(st.sig[j]) for j in (0, 1)]  # (E I + B)^-1 Sigma0_j = Y_j / P3
        self.cW = np.einsum("k,pkd->pd", c, self.W)
        self.cY = [np.einsum("k,pkd->pd", c, y) for y in self.Y]
        if not averaged:
            return
        k, rho = blk.keep, blk.rho
        eps = 1.0 - k
        dp = blk.dp
        trp = dp[0, 0] + dp[1, 1]
        detp = dp[0, 0] * dp[1, 1] - dp[0, 1] * dp[1, 0]
        self.p2 = (eps * eps + k * eps * trp + k * k * detp, 2.0 * eps + k * trp)  # P2 = E^2 + a1 E + a0
        self.p1 = 1.0 - k * k  # P1 = E + p1
        C2 = np.empty((2, 2, d))  # adj((E + eps) I + k Dp) = E I + C2
        C2[0, 0] = eps + k * dp[1, 1]
        C2[1, 1] = eps + k * dp[0, 0]
        C2[0, 1] = -k * dp[0, 1]
        C2[1, 0] = -k * dp[1, 0]
        pv = np.stack([1.0 - dp[0, 0], -dp[0, 1]])  # (P y)_0 = pv . y

        def adj2(u):  # adj2(E) u for a polynomial 2-vector u (m+1, 2, d): (m+2, 2, d)
            out = np.zeros((u.shape[0] + 1, 2, d))
            out[:-1] += np.einsum("ijd,pjd->pid", C2, u)
            out[1:] += u
            return out

        def pdot(u):
            return np.einsum("id,pid->pd", pv, u)

        self.keep, self.rho = k, rho
        # Sigma(z) - Sigma0 = (V_j + W Gz) / P3 with V_j = adj(E I + B) (I - B) Sigma0_j
        V = [adj3(st.sig[j] - np.einsum("ijd,jd->id", B, st.sig[j])) for j in (0, 1)]
        self.V = V
        # E[a y](z) = [z adj2 Ay0 / P2 + rho z adj2 (V + W Gz)_01 / (P3 P2)]
        self.aAy0 = [adj2(st.Ay[j][None]) for j in (0, 1)]
        self.aV = [adj2(v[:, :2]) for v in V]
        self.aW = adj2(self.W[:, :2])
        # E[a^2](z) = z {A0/P1 + 2 k rho pv.aAy0/(P2 P1) + 2 k rho^2 pv.aV/(P3 P2 P1) + rho^2 V_0/(P3 P1)}
        #           + z Gz {2 k rho^2 pv.aW/(P3 P2 P1) + rho^2 W_0/(P3 P1)}
        self.A0 = [st.A[j][None] for j in (0, 1)]
        self.pAy0 = [pdot(u) for u in self.aAy0]
        self.pV = [pdot(u) for u in self.aV]
        self.pW = pdot(self.aW)

    def recips(self, E: np.ndarray) -> dict:
        """``1/P3`` and, averaged, ``1/P2`` and ``1/(P3 P2)`` at the nodes (m, d); ``1/P1`` (the
        same for every mode) is the node factor ``r1`` (m,)."""
        e = E[:, None]
        d0, c2, tr = self.p3
        r = {"3": 1.0 / (((e + tr) * e + c2) * e + d0)}
        if self.averaged:
            a0, a1 = self.p2
            r["2"] = 1.0 / ((e + a1) * e + a0)
            r["32"] = r["3"] * r["2"]
            r["1"] = 1.0 / (E + self.p1)
        return r

    def terms(self, j: int) -> list:
        """``E[a^2]``'s z-transform of source row ``j`` as ``[(class, poly, factor)]``: the sum of
        ``poly / (P_class P1)`` times ``z`` (factor ``"z"``) or ``z Gz`` (``"zG"``); class ``""``:
        no per-mode denominator besides ``P1``."""
        k, rho = self.keep, self.rho
        return [("", self.A0[j], "z"), ("2", 2 * k * rho * self.pAy0[j], "z"),
                ("32", 2 * k * rho * rho * self.pV[j], "z"), ("3", rho * rho * self.V[j][:, 0], "z"),
                ("32", 2 * k * rho * rho * self.pW, "zG"), ("3", rho * rho * self.W[:, 0], "zG")]


def _mode_sum(r: np.ndarray | None, poly: np.ndarray, Ep: np.ndarray) -> np.ndarray:
    """``sum_i poly_i(E) r_i`` at the nodes: ``sum_p E^p (r @ poly[p])`` (``r = None``: 1)."""
    if r is None:
        return Ep[:, :poly.shape[0]] @ poly.sum(axis=1)
    return np.einsum("mp,mp->m", r @ poly.T, Ep[:, :poly.shape[0]])


# ----------------------------------------------------------------------------
# one constant phase


class _PhaseState:
    """The model's per-mode state in ``(e, d)`` coordinates (two source rows)."""

    def __init__(self, sig, A, Ay, mu, mua, X, Xa):
        self.sig, self.A, self.Ay = sig, A, Ay  # (2,3,d), (2,d) | None, (2,2,d) | None
        self.mu, self.mua = mu, mua  # (2,d) [(e, d) first moments], (d,) | None
        self.X, self.Xa = X, Xa  # {h: (2,2,d)}, {h: (2,d)} | None

    def copy(self):
        def c(v):
            return None if v is None else v.copy()
        return _PhaseState(self.sig.copy(), c(self.A), c(self.Ay), self.mu.copy(), c(self.mua),
                           {h: v.copy() for h, v in self.X.items()},
                           None if self.Xa is None else {h: v.copy() for h, v in self.Xa.items()})


def _poles(blk: _Block, averaged: bool, parent: bool = False) -> np.ndarray:
    """Every per-mode pole of the transforms inverted on the contour: the eigenvalues of
    ``I - D2_i`` and, for an average, of ``keep P_i`` and ``keep^2``; with a parent, of ``P_i``
    (its cross moment with the model; with the coupled poles, module docstring)."""
    zs = [np.linalg.eigvals(np.moveaxis(np.eye(3)[:, :, None] - blk.d2, -1, 0)).ravel()]
    if averaged or parent:
        tr = 2.0 - blk.dp[0, 0] - blk.dp[1, 1]
        det = (1.0 - blk.dp[0, 0]) * (1.0 - blk.dp[1, 1]) - blk.dp[0, 1] * blk.dp[1, 0]
        disc = np.sqrt((tr * tr - 4.0 * det).astype(complex))
        pz = np.concatenate([(tr + disc) / 2.0, (tr - disc) / 2.0])
        if parent:
            zs.append(pz)
            if averaged:
                zs.append(np.array([blk.keep + 0j]))
    if averaged:
        zs.append(blk.keep * pz)
        zs.append(np.array([blk.keep * blk.keep + 0j]))
    z = np.concatenate(zs)
    return z[np.abs(z) > 1e-300]


def _ndirect(z: np.ndarray, sigma: float) -> float:
    """Direct steps after which the poles outside the wedge about ``sigma`` (the contour's shift)
    have residues below ``e^-DECAY_E`` of ``e^(sigma t)``; ``inf`` if some never do."""
    mag = np.abs(z)
    with np.errstate(divide="ignore"):
        rate = sigma - np.log(mag)
    positive = (np.abs(z.imag) <= 1e-14 * mag) & (z.real > 0)
    out = ~positive & ~(np.abs(np.angle(z)) <= WEDGE * rate)
    if np.any(positive & (rate < -1e-12)):
        return math.inf  # a real pole beyond the shift
    if not out.any():
        return float(T_FIRST)
    r = float(rate[out].min())
    return DECAY_E / r if r > 0 else math.inf


def _delta_power(dm: np.ndarray, n: int) -> np.ndarray:
    """``I - M^n`` per mode from ``dm = I - M`` (``(m, m, d)``), by binary powers in that form:
    ``I - M^(a+b) = Da + Db - Da Db``. Slow modes (``M^n`` near ``I``) keep their relative digits
    (the products are small), decayed ones are accurate to ~1e-16 absolute."""
    out = None
    base = dm
    while n:
        if n & 1:
            out = base.copy() if out is None else out + base - np.einsum("ijd,jkd->ikd", out, base)
        n >>= 1
        if n:
            base = 2.0 * base - np.einsum("ijd,jkd->ikd", base, base)
    return out if out is not None else np.zeros_like(dm)


def _free_end(blk: _Block, st: _PhaseState, n: int, averaged: bool) -> tuple:
    """First moments and cross moments with frozen models after ``n`` steps: ``y' = P y`` and,
    averaged, ``a' = keep a + rho (P y)_0``, by :func:`_delta_power` of the 2x2 (3x3) map."""
    d = blk.b.shape[1]
    m = 3 if averaged else 2
    dm = np.zeros((m, m, d))
    dm[:2, :2] = blk.dp
    if averaged:
        dm[2, 0] = -blk.rho * (1.0 - blk.dp[0, 0])
        dm[2, 1] = blk.rho * blk.dp[0, 1]
        dm[2, 2] = 1.0 - blk.keep
    Dn = _delta_power(dm, n)

    def apply(y, a):
        v = [y[..., 0, :], y[..., 1, :]] + ([a] if averaged else [])
        new = [v[i] - sum(Dn[i, k] * v[k] for k in range(m)) for i in range(m)]
        return np.stack(new[:2], axis=-2), (new[2] if averaged else None)

    mu, mua = apply(st.mu, st.mua)
    X, Xa = {}, ({} if averaged else None)
    for h in st.X:
        X[h], xa = apply(st.X[h], st.Xa[h] if averaged else None)
        if averaged:
            Xa[h] = xa
    return mu, mua, X, Xa


def _cross_sums(blk: _Block, y0: np.ndarray, a0: np.ndarray | None, E: np.ndarray, counters) -> tuple:
    """z-transforms at the nodes of ``sum_i E[e_i e_p,i]`` and, averaged, ``sum_i E[a_i e_p,i]``
    per row (2, m), from their values ``y0`` (2 rows, 2, d; with ``E[d e_p]``) and ``a0`` (2, d) at
    the phase start: ``y(z) = adj(E I + Dp) z y0 / P2(E)``, ``P2 = det(E I + Dp)``, and
    ``a(z) = z [a0 + rho adj(E I + Dp) (P y0) / P2]_0 / (E + 1 - keep)``."""
    dp = blk.dp
    tr = dp[0, 0] + dp[1, 1]
    det = dp[0, 0] * dp[1, 1] - dp[0, 1] * dp[1, 0]
    z = 1.0 + E
    m = E.size
    ys = np.empty((2, m), complex)
    As = np.empty((2, m), complex) if a0 is not None else None
    Ep = _powers(E, 2)
    for j in (0, 1):
        ny = np.stack([dp[1, 1] * y0[j, 0] - dp[0, 1] * y0[j, 1], y0[j, 0]])
        if a0 is not None:
            py = y0[j] - np.stack([dp[0, 0] * y0[j, 0] + dp[0, 1] * y0[j, 1], dp[1, 0] * y0[j, 0] + dp[1, 1] * y0[j, 1]])
            npy = np.stack([dp[1, 1] * py[0] - dp[0, 1] * py[1], py[0]])
        for lo in range(0, m, _NODE_CHUNK):
            sl = slice(lo, lo + _NODE_CHUNK)
            e = E[sl][:, None]
            counters.node_modes += e.shape[0] * dp.shape[2]
            r2 = 1.0 / ((e + tr) * e + det)
            ys[j, sl] = z[sl] * _mode_sum(r2, ny, Ep[sl])
            if a0 is not None:
                As[j, sl] = z[sl] * (a0[j].sum() + blk.rho * _mode_sum(r2, npy, Ep[sl])) / (E[sl] + (1.0 - blk.keep))
    return ys, As


def _check(counters, pairs, floor: np.ndarray, n_dir: int, what: str) -> None:
    """The a-posteriori check at ``n_dir``: each ``(contour, direct)`` pair of per-row sums agrees
    to :data:`CHECK_TOL` relative (``floor``: per-row absolute floors), else :class:`_Fallback`."""
    g = max(float(np.max(np.abs(a - b) / np.maximum(np.abs(b), floor + 1e-300))) for a, b in pairs)
    counters.consistency = max(counters.consistency, g)
    if not g <= CHECK_TOL:
        raise _Fallback(f"contour and direct steps differ by {g:.2e} at step {n_dir}{what}")


def _run_phase(blk: _Block, st: _PhaseState, n: int, times: np.ndarray, flags: np.ndarray,
               noise: np.ndarray, averaged: bool, counters, parent: int | None = None):
    """Advance ``st`` over ``n`` steps of the phase. ``times``: sorted distinct local times in
    ``[1, n]`` to report; ``flags``: those at which the whole per-mode state is wanted.

    Returns ``(end, ee, A, states, cross)``: the state at ``n``, the per-row sums
    ``sum_i E[e_i^2]`` and (averaged) ``sum_i E[a_i^2]`` at ``times`` (2, k), the per-mode
    ``(E[e^2], E[a^2])`` at the flagged times (a dict by local time) and, with a ``parent`` (its
    index in ``st.X``), the per-row sums of the cross moments ``E[e e_p]`` and (averaged)
    ``E[a e_p]`` at ``times`` (each (2, k)) and their per-mode values at the flagged times."""
    from ..stability_momentum import second_moment_radius
    from .renewal import CONTOURS_POLES, plan_windows

    k = times.size
    ee = np.empty((2, k))
    As = np.empty((2, k)) if averaged else None
    states: dict[int, _PhaseState] = {}
    z = _poles(blk, averaged, parent is not None)
    if np.any(np.abs(z) > 1.0 + 1e-12):
        raise _Fallback("a pole outside the unit circle")
    need = _ndirect(z, 0.0)
    if need > MAX_DIRECT:
        raise _Fallback(f"oscillating modes decay over more than {MAX_DIRECT} steps")
    n_dir = max(T_FIRST, int(math.ceil(need)))
    # a source row without a steady state (no noise; an average that forgets) decays over the
    # phase: invert it on a contour shifted onto its slowest pole, so that the quadrature error
    # decays with it (relative accuracy in the exponential regime)
    shifts = [0.0, 0.0]
    forgets = not (averaged and blk.keep == 1.0)
    rows = [j for j in (0, 1) if noise[j] == 0.0 and forgets and bool(np.any(st.sig[j]))]
    if rows and n > n_dir and float(np.abs(z).max()) ** n < math.exp(-1.0):
        r_top = max(second_moment_radius(blk.coefs, blk.speeds, blk.batch, blk.kappa),
                    float(np.abs(z[(np.abs(z.imag) <= 1e-14 * np.abs(z)) & (z.real > 0)]).max(initial=0.0))
                    if averaged else 0.0)
        if 0.0 < r_top < 1.0:
            sigma = math.log(r_top) + 1e-9 * abs(math.log(r_top))
            need_s = _ndirect(z, sigma)
            if need_s <= MAX_DIRECT:
                n_dir = max(n_dir, int(math.ceil(need_s)))
                for j in rows:
                    shifts[j] = sigma
    n_dir = min(n, n_dir)
    cur = st.copy()
    cross = None
    if parent is not None:
        cross = {"e": np.empty((2, k)), "a": np.empty((2, k)) if averaged else None, "modes": {}}
        yp = st.X[parent].copy()
        ap = st.Xa[parent].copy() if averaged else None
    j = 0
    for t in range(1, n_dir + 1):
        sig_new = blk.step(cur.sig, noise)
        if averaged:
            cur.A, cur.Ay = blk.avg_step(cur.A, cur.Ay, sig_new)
        cur.sig = sig_new
        if cross is not None:
            yp = blk.pstep(yp)
            if averaged:
                ap = blk.keep * ap + blk.rho * yp[:, 0]
        while j < k and times[j] == t:
            ee[:, j] = cur.sig[:, 0].sum(axis=1)
            if averaged:
                As[:, j] = cur.A.sum(axis=1)
            if flags[j]:
                states[t] = (cur.sig[:, 0].copy(), None if cur.A is None else cur.A.copy())
            if cross is not None:
                cross["e"][:, j] = yp[:, 0].sum(axis=1)
                if averaged:
                    cross["a"][:, j] = ap.sum(axis=1)
                if flags[j]:
                    cross["modes"][t] = (yp[:, 0].copy(), None if ap is None else ap.copy())
            j += 1
    counters.direct_steps += n_dir
    counters.direct_mode_steps += n_dir * blk.b.shape[1]
    mu, mua, X, Xa = _free_end(blk, st, n, averaged)
    if n_dir == n:
        counters.phases_direct += 1
        cur.mu, cur.mua, cur.X, cur.Xa = mu, mua, X, Xa
        return cur, ee, As, states, cross
    counters.phases_contour += 1
    # contour times: the check at n_dir, the reported times above it, the phase end
    ct = np.unique(np.concatenate([[float(n_dir)], times[times > n_dir].astype(float), [float(n)]]))
    pos = np.searchsorted(times, ct)
    pos_c = np.minimum(pos, max(k - 1, 0))
    hit = (pos < k) & (times[pos_c] == ct) if k else np.zeros(ct.size, dtype=bool)
    want = np.flatnonzero((ct == n) | (hit & (ct != n_dir) & flags[pos_c] if k else ct == n))
    size = np.abs(st.sig[:, 0]).sum(axis=1) + np.abs(cur.sig[:, 0]).sum(axis=1)
    groups = sorted(set(shifts))
    rat = _Rational(blk, st, averaged)
    d = st.sig.shape[2]
    end_i = int(np.flatnonzero(ct == n)[0])
    # the whole state at the phase end; E[e^2] and E[a^2] per mode at the flagged times
    per_mode = {int(i): _PhaseState(np.zeros((2, 3 if i == end_i else 1, d)),
                                    None if not averaged else np.zeros((2, d)),
                                    None if not averaged or i != end_i else np.zeros((2, 2, d)), mu, mua, X, Xa)
                for i in want}
    for spec, t0, idx in plan_windows(ct, t_floor=float(n_dir), specs=CONTOURS_POLES):
        counters.windows += 1
        s_hat, w_hat = spec._nodes
        tw = ct[idx]
        for sh in groups:
            rws = [j for j in (0, 1) if shifts[j] == sh]
            sn = s_hat / t0 + sh
            w = w_hat / t0
            E = np.expm1(sn)
            Gz, L = _forward(rat, blk, E, 1.0 + E, noise, rws, counters)
            ex = np.exp(np.multiply.outer(tw, sn))  # (nt, m)
            vals = {key: ((v * w[None]) @ ex.T).imag for key, v in L.items()}  # (rows, nt)
            for col, t in enumerate(tw):
                ci = int(idx[col])
                if t == n_dir:  # the a-posteriori check against the direct steps
                    pairs = [(vals["ee"][:, col], cur.sig[rws, 0].sum(axis=1))]
                    if averaged:
                        pairs.append((vals["A"][:, col], cur.A[rws].sum(axis=1)))
                    _check(counters, pairs, 1e-10 * size[rws], n_dir, "")
                    continue
                if hit[ci]:
                    jj = int(pos[ci])
                    ee[rws, jj] = vals["ee"][:, col]
                    if averaged:
                        As[rws, jj] = vals["A"][:, col]
                if ci in per_mode:
                    _reverse(rat, blk, per_mode[ci], sn, E, 1.0 + E, w, Gz, float(t), rws, counters)
        if cross is not None:  # the parent's cross moments: no noise, on the unshifted contour
            sn, w = s_hat / t0, w_hat / t0
            ys, yas = _cross_sums(blk, st.X[parent], st.Xa[parent] if averaged else None, np.expm1(sn), counters)
            ex = np.exp(np.multiply.outer(tw, sn))
            ve = ((ys * w[None]) @ ex.T).imag
            va = ((yas * w[None]) @ ex.T).imag if averaged else None
            for col, t in enumerate(tw):
                ci = int(idx[col])
                if t == n_dir:  # the a-posteriori check against the direct steps
                    pairs = [(ve[:, col], yp[:, 0].sum(axis=1))] + ([(va[:, col], ap.sum(axis=1))] if averaged else [])
                    floor = 1e-10 * (np.abs(st.X[parent][:, 0]).sum(axis=1) + np.abs(yp[:, 0]).sum(axis=1))
                    _check(counters, pairs, floor, n_dir, " (cross moments with the parent)")
                    continue
                if hit[ci]:
                    jj = int(pos[ci])
                    cross["e"][:, jj] = ve[:, col]
                    if averaged:
                        cross["a"][:, jj] = va[:, col]
                    if flags[jj]:
                        fm = _free_end(blk, st, int(t), averaged)
                        cross["modes"][int(t)] = (fm[2][parent][:, 0], fm[3][parent] if averaged else None)
    for ci, stt in per_mode.items():
        states[int(ct[ci])] = (stt.sig[:, 0], stt.A)
    end = per_mode[end_i]
    return end, ee, As, states, cross


def _powers(E: np.ndarray, n: int = 4) -> np.ndarray:
    out = np.empty((E.size, n), complex)
    out[:, 0] = 1.0
    for p in range(1, n):
        out[:, p] = out[:, p - 1] * E
    return out


def _forward(rat: _Rational, blk: _Block, E: np.ndarray, z: np.ndarray, noise: np.ndarray, rows: list[int],
             counters):
    """For the source ``rows``, at the nodes: ``Gz`` (the z-transform of the noise driving
    ``noise + sum_i U_i``) and the z-transforms of the mode sums ``L["ee"]`` (``sum_i E[e_i^2]``)
    and, averaged, ``L["A"]`` (``sum_i E[a_i^2]``), each ``(len(rows), nodes)``."""
    m = E.size
    nr = len(rows)
    Gz = np.empty((nr, m), complex)
    L = {"ee": np.empty((nr, m), complex)}
    if rat.averaged:
        L["A"] = np.empty((nr, m), complex)
    for lo in range(0, m, _NODE_CHUNK):
        sl = slice(lo, lo + _NODE_CHUNK)
        Ec, zc = E[sl], z[sl]
        counters.nodes += Ec.size * nr
        counters.node_modes += Ec.size * nr * blk.b.shape[1]
        r = rat.recips(Ec)
        Ep = _powers(Ec)
        K = _mode_sum(r["3"], rat.cW, Ep)
        Lb = _mode_sum(r["3"], rat.W[:, 0], Ep)
        for i, j in enumerate(rows):
            F = zc * _mode_sum(r["3"], rat.cY[j], Ep)
            drive = noise[j] * zc / Ec
            g = drive + (F + K * drive) / (1.0 - K)
            Gz[i, sl] = g
            L["ee"][i, sl] = zc * _mode_sum(r["3"], rat.Y[j][:, 0], Ep) + Lb * g
            if rat.averaged:
                acc = 0.0
                for cls, poly, fac in rat.terms(j):
                    v = _mode_sum(r.get(cls), poly, Ep)
                    acc = acc + (v * g if fac == "zG" else v)
                L["A"][i, sl] = acc * zc * r["1"]
    return Gz, L


def _inv_modes(r: np.ndarray | None, poly: np.ndarray, weights: np.ndarray, Ep: np.ndarray) -> np.ndarray:
    """Per mode ``Im sum_k weights_k poly(E_k) r_k`` = ``sum_p poly[p] Im((weights E^p) @ r)``
    (``r = None``: 1)."""
    we = weights[:, None] * Ep[:, :poly.shape[0]]
    if r is None:
        return we.sum(axis=0).imag @ poly
    return np.einsum("pd,pd->d", poly, (we.T @ r).imag)


def _reverse(rat: _Rational, blk: _Block, out: _PhaseState, sn, E, z, w, Gz, t: float, rows: list[int],
             counters) -> None:
    """Add the per-mode second moments of the source ``rows`` at local time ``t`` (this node
    set's share of the inverse transform) into ``out`` (``E[e^2]`` only, or the whole of
    ``Sigma``, and ``E[a^2]``, ``E[a y]`` when ``out`` holds them)."""
    d = blk.b.shape[1]
    coef = w * np.exp(sn * t)
    m = E.size
    for lo in range(0, m, _NODE_CHUNK):
        sl = slice(lo, lo + _NODE_CHUNK)
        Ec, zc, cc = E[sl], z[sl], coef[sl]
        counters.nodes += Ec.size * len(rows)
        counters.node_modes += Ec.size * len(rows) * d
        r = rat.recips(Ec)
        Ep = _powers(Ec)
        for i, j in enumerate(rows):
            wz = cc * zc
            wg = cc * Gz[i, sl]
            wzg = wz * Gz[i, sl]
            for k in range(out.sig.shape[1]):
                out.sig[j, k] += _inv_modes(r["3"], rat.Y[j][:, k], wz, Ep) + _inv_modes(r["3"], rat.W[:, k], wg, Ep)
            if rat.averaged:
                for cls, poly, fac in rat.terms(j):
                    out.A[j] += _inv_modes(r.get(cls), poly, (wzg if fac == "zG" else wz) * r["1"], Ep)
            if out.Ay is not None:
                rho = rat.rho
                for k in range(2):
                    out.Ay[j, k] += (_inv_modes(r["2"], rat.aAy0[j][:, k], wz, Ep)
                                     + rho * _inv_modes(r["32"], rat.aV[j][:, k], wz, Ep)
                                     + rho * _inv_modes(r["32"], rat.aW[:, k], wzg, Ep))


# ----------------------------------------------------------------------------
# model level


def train_variant_fast(state: ChainState, scenario: Scenario, gi: int, ckpt: np.ndarray, *, record_modes: bool,
                       every_step: bool, check: StepCheck, counters) -> ModelResult:
    """Train model ``gi`` (averaged and/or momentum, accepted by :func:`fast_reason`) phase by
    phase; the exact engine serves it when the fast path cannot (module docstring)."""
    from .variants import train_variant

    why = None
    if every_step:
        why = "every step asked"
    elif check.unstable:
        why = "a step above the stability limit"
    else:
        g = state.add_model(expect=gi)
        try:
            return _train(state, scenario, g, ckpt, record_modes=record_modes, check=check, counters=counters)
        except _Fallback as e:
            why = str(e)
            # undo add_model: the exact engine starts from the same initialisation
            for h in range(g + 1):
                state.M.pop((h, g), None)
            state.mu.pop()
    counters.variant_fallbacks.append(f"{scenario.models[gi].name}: {why}")
    return train_variant(state, scenario, gi, ckpt, record_modes=record_modes, every_step=every_step,
                         check=check, limit=check.limit)


def _segments(model):
    """``(coefs, lr, n, mode)`` per constant run; ``mode``: None, ``"start"`` (the running sum
    of a uniform or tail average starts at this run's first step), ``"avg"``."""
    avg = model.average
    runs = list(variant_phases(model))
    if avg is None:
        return [(cf, lr, n, None) for cf, lr, n in runs], None
    if avg.kind == "ema":
        return [(cf, lr, n, "avg") for cf, lr, n in runs], 0
    s0 = avg.first_weighted(model.steps)
    out = []
    t = 0
    for cf, lr, n in runs:
        if t + n <= s0:
            out.append((cf, lr, n, None))
        elif t >= s0:
            out.append((cf, lr, n, "avg"))
        else:
            out.append((cf, lr, s0 - t, None))
            out.append((cf, lr, t + n - s0, "avg"))
        t += n
    return out, s0


def _train(state: ChainState, scenario: Scenario, g: int, ckpt: np.ndarray, *, record_modes: bool,
           check: StepCheck, counters) -> ModelResult:
    """The fast path for model ``g`` (added to ``state``). A student (parent ``p``, labels
    ``alpha y + (1 - alpha) phi_p``, ``c = 1 - alpha``) moves only its residual ``e - c e_p`` (and
    ``d``, which the frozen parent does not shift), which follows the recursion of a model
    trained on the data with noise ``alpha^2 sigma^2`` (``docs/theory.md`` §4, the residual
    reduction); its moments are ``U + 2 c W_p + c^2 M_pp`` with ``W_p`` the residual's cross moment
    with the parent, and its disagreement with the parent ``U - 2 alpha W_p + alpha^2 M_pp``
    (for an average, of the averaged residual)."""
    model = scenario.models[g]
    prob = scenario.problem
    s = model.speed_profile(prob.eigenvalues)
    d = s.size
    kappa = prob.kappa
    alpha = float(model.alpha)
    p = scenario.index(model.teacher) if model.teacher is not None else None
    c = 1.0 - alpha if p is not None else 0.0
    noise = np.array([0.0, alpha * alpha * prob.noise])
    avg = model.average
    ema = avg is not None and avg.kind == "ema"
    keep, rho = (avg.ema_decay, 1.0 - avg.ema_decay) if ema else (1.0, 1.0)
    segs, s0 = _segments(model)
    others = list(range(g))
    Mgg0 = state.M[(g, g)].copy()
    Mpp = state.pair(p, p) if p is not None else None
    Mgp0 = state.pair(p, g).copy() if p is not None else None

    zero = np.zeros((2, d))
    U0, W0, mu0 = state.residual(g, p, c)
    sig = np.zeros((2, 3, d))
    sig[:, 0] = U0
    mu = np.stack([mu0, np.zeros(d)])
    X = {h: np.stack([W0[h], zero], axis=1) for h in others}  # (2 rows, 2, d)
    st = _PhaseState(sig, None, None, mu, None, X, None)

    def start_average(st: _PhaseState) -> None:
        st.A = st.sig[:, 0].copy()
        st.Ay = st.sig[:, :2].copy()
        st.mua = st.mu[0].copy()
        st.Xa = {h: st.X[h][:, 0].copy() for h in others}

    times = np.unique(ckpt)
    k = times.size
    flags = np.zeros(k, dtype=bool) if not record_modes else np.ones(k, dtype=bool)
    dep = np.empty((k, 2))
    last = np.empty((k, 2)) if avg is not None else None
    dis = np.empty(k) if p is not None else None
    modes = np.empty((k, d)) if record_modes else None
    sum_pp = Mpp.sum(axis=1) if p is not None else 0.0

    def scale_of(t: int, avg_on: bool) -> float:
        return 1.0 if (not avg_on or ema) else 1.0 / float(t - s0 + 1)

    def record(j: int, t: int, ee, A, avg_on: bool, stt: tuple | None, cx=None, cxm=None) -> None:
        """``ee``/``A``: the residual's row sums; ``cx``: the sums of its cross moments with the
        parent (last iterate, average); ``stt``/``cxm``: the same per mode (flagged steps)."""
        f = scale_of(t, avg_on)
        res = A * (f * f) if avg_on else ee
        wp = 0.0
        if p is not None:
            wp = cx[1] * f if avg_on else cx[0]
        dep[j] = res + 2.0 * c * wp + (c * c) * sum_pp
        if last is not None:
            last[j] = ee + (2.0 * c * cx[0] + (c * c) * sum_pp if p is not None else 0.0)
        if dis is not None:
            dis[j] = float((res - 2.0 * alpha * wp + (alpha * alpha) * sum_pp).sum())
        if modes is not None and stt is not None:
            rm = stt[1] * (f * f) if avg_on else stt[0]
            if p is not None:
                wm = cxm[1] * f if avg_on else cxm[0]
                rm = rm + 2.0 * c * wm + (c * c) * Mpp
            modes[j] = rm.sum(axis=0)

    def cross_now(st: _PhaseState):
        if p is None:
            return None, None
        x = st.X[p][:, 0]
        xa = st.Xa[p] if st.Xa is not None else None
        return (x.sum(axis=1), None if xa is None else xa.sum(axis=1)), (x, xa)

    if ema:
        start_average(st)
    if k and times[0] == 0:
        if s0 == 0 and st.A is None:
            start_average(st)
        cx, cxm = cross_now(st)
        record(0, 0, st.sig[:, 0].sum(axis=1), None if st.A is None else st.A.sum(axis=1),
               st.A is not None, (st.sig[:, 0], st.A), cx, cxm)
        # step 0 is the initialisation itself: report it as the engine forms it
        dep[0] = Mgg0.sum(axis=1)
        if last is not None:
            last[0] = Mgg0.sum(axis=1)
        if dis is not None:
            dis[0] = float((Mgg0 - 2.0 * Mgp0 + Mpp).sum())
        if modes is not None:
            modes[0] = Mgg0.sum(axis=0)
    tg = 0
    max_lr = 0.0
    for cf, lr, n, mode in segs:
        max_lr = max(max_lr, lr)
        if mode == "avg" and st.A is None:  # the running sum starts with the iterate at s0
            start_average(st)
            jj = np.flatnonzero(times == tg)
            if jj.size:  # a reported step at s0: the average of one iterate
                cx, cxm = cross_now(st)
                record(int(jj[0]), tg, st.sig[:, 0].sum(axis=1), st.A.sum(axis=1), True, (st.sig[:, 0], st.A),
                       cx, cxm)
        avg_on = st.A is not None
        blk = _Block(cf, s, model.batch, kappa, keep if avg_on else 1.0, rho if avg_on else 1.0)
        sel = np.flatnonzero((times > tg) & (times <= tg + n))
        with np.errstate(over="ignore", invalid="ignore"):
            end, ee, As, states, cross = _run_phase(blk, st, n, times[sel] - tg, flags[sel], noise, avg_on,
                                                    counters, parent=p)
        for col, j in enumerate(sel):
            t = int(times[j])
            cx = cxm = None
            if cross is not None:
                cx = (cross["e"][:, col], cross["a"][:, col] if avg_on else None)
                cxm = cross["modes"].get(t - tg)
            record(int(j), t, ee[:, col], As[:, col] if avg_on else None, avg_on, states.get(t - tg), cx, cxm)
        if not (np.all(np.isfinite(end.sig)) and np.all(np.isfinite(ee))):
            raise check.error(tg + n, lr, "the moments overflowed to a non-finite value")
        st = end
        tg += n

    # the chain state holds the deployed predictor (from the residual's, docs/theory.md §4)
    avg_on = st.A is not None
    if segs:
        if avg_on:
            f = scale_of(model.steps, True)
            state.set_from_residual(g, p, c, st.A * (f * f), {h: st.Xa[h] * f for h in others}, st.mua * f)
        else:
            state.set_from_residual(g, p, c, st.sig[:, 0].copy(), {h: st.X[h][:, 0].copy() for h in others},
                                    st.mu[0].copy())
    pos = np.searchsorted(times, ckpt)
    res = model_result(model, ckpt, dep[pos], state, g, disagreement=dis[pos] if dis is not None else None,
                       mode_curves=modes[pos] if modes is not None else None, curve=None,
                       limit=check.limit, max_lr=max_lr)
    if last is not None:
        lastp = np.maximum(last[pos], 0.0)
        le = st.sig[:, 0]
        if p is not None:
            le = le + 2.0 * c * st.X[p][:, 0] + (c * c) * Mpp
        res.last_iterate = {"excess_risk": lastp.sum(axis=1), "bias": lastp[:, 0].copy(),
                            "variance": lastp[:, 1].copy(),
                            "second_moment": np.maximum(le.sum(axis=0), 0.0)}
    return res
