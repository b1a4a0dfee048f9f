"""Independent dense reference for the SGD variants (iterate averaging, momentum).

Written from the update rules (docs/theory.md §3 and §10), not from ``spectral_theory.solvers``,
without the per-mode shortcut: it propagates the FULL raw second-moment matrix
``S = E[X X^T]`` and the mean ``E[X]`` of the stacked vector ``X`` of every error sequence of
every model of a chain -- for model g its iterate error ``e_g``, its auxiliary error ``v_g`` and
its averaged error ``a_g`` (``3 G d`` numbers) -- in float64.

One step of model g (parent p, hard-label weight alpha, c = 1 - alpha; the parent deploys
``d_p = a_p`` if averaged, else ``e_p``; step coefficients ``r, p_e, p_v, h_e, h_v`` and
averaging weight ``rho``):

    pi  = r e_g + (1 - r) v_g - c d_p = R X                       (d x 3Gd matrix R)
    G   = (1/B) sum_b z_b (z_b . pi - alpha eps_b)                 (batch-mean gradient at y)
    e'  = p_e e + (1 - p_e) v - h_e S G
    v'  = p_v e + (1 - p_v) v - h_v S G
    a'  = (1 - rho) a + rho e'
        = L X - K G

with ``E[G | X] = pi`` and, for C = R S R^T (the fourth-moment identity for independent
coordinates, docs/theory.md §4, plus the B(B-1) distinct-sample pairs and the noise),

    E[G G^T] = (1/B) (tr(C) I + 2 C + (kappa - 3) diag(C) + alpha^2 sigma2 I) + (B - 1)/B C,

so that ``E[X'] = (L - K R) E[X]`` and
``S' = L S L^T - L S R^T K^T - K R S L^T + K E[G G^T] K^T``.
A model starts with ``e = v = a = -theta`` (phi = v = 0; theta deterministic).
The step coefficients are computed here from the kinds' definitions (docs/theory.md §10).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

__all__ = ["VarModel", "dense_variants", "coefficients", "mix_weights"]


@dataclass
class VarModel:
    """One model for the dense reference: ``etas`` per-step batch-mean steps, ``speeds``,
    ``batch``, ``parent`` (index) and ``alpha``; ``momentum`` and ``average``: the dicts of a
    scenario file (or None)."""

    etas: np.ndarray
    speeds: np.ndarray
    batch: int = 1
    parent: int | None = None
    alpha: float = 1.0
    momentum: dict | None = None
    average: dict | None = None
    extra: dict = field(default_factory=dict)

    @property
    def steps(self) -> int:
        return len(self.etas)


def _at(v, t):
    return float(v[t]) if isinstance(v, (list, tuple, np.ndarray)) else float(v)


def coefficients(mom: dict | None, eta: float, t: int):
    """``(r, p_e, p_v, h_e, h_v)`` of step t, from the definitions of each kind."""
    if mom is None:
        return 1.0, 1.0, 1.0, eta, 0.0
    k = mom["kind"]
    if k == "heavy_ball":  # phi' = phi + beta (phi - phi_prev) - eta G(phi); v = phi_prev
        b = _at(mom["beta"], t)
        return 1.0, 1.0 + b, 1.0, eta, 0.0
    if k == "nesterov":  # y = phi + beta (phi - phi_prev); phi' = y - eta G(y); v = phi_prev
        b = _at(mom["beta"], t)
        return 1.0 + b, 1.0 + b, 1.0, eta, 0.0
    if k == "accelerated":  # Jain et al. 2018: y = a w + (1-a) v; w' = y - delta G; v' = b y + (1-b) v - gamma G
        a, b, gam = _at(mom["alpha"], t), _at(mom["beta"], t), _at(mom["gamma"], t)
        return a, a, a * b, eta, gam
    return (_at(mom["r"], t), _at(mom["p_e"], t), _at(mom["p_v"], t), eta, _at(mom["k_v"], t) * eta)


def mix_weights(avg: dict | None, T: int) -> np.ndarray:
    """Unnormalised weights w_0..w_T of the iterates (ema: the running EMA's weights at T)."""
    if avg is None:
        w = np.zeros(T + 1)
        w[T] = 1.0
        return w
    k = avg["kind"]
    w = np.zeros(T + 1)
    if k == "uniform":
        w[avg["start"]:] = 1.0
    elif k == "tail":
        n = avg["last"] if "last" in avg else max(1, math.ceil(avg["fraction"] * T))
        w[T + 1 - n:] = 1.0
    elif k == "ema":
        g = avg["decay"] if "decay" in avg else 2.0 ** (-1.0 / avg["half_life"])
        w[0] = g ** T
        w[1:] = (1 - g) * g ** (T - np.arange(1, T + 1))
    else:
        w[:] = avg["values"]
    return w


def _running_rho(avg: dict | None, T: int) -> np.ndarray:
    """rho_t such that a_t = (1 - rho_t) a_{t-1} + rho_t e_t reproduces, at every t, the online
    average sum_{u<=t} w_u e_u / sum_{u<=t} w_u (the last iterate while no weight was reached)."""
    if avg is None:
        return np.ones(T + 1)
    if avg["kind"] == "ema":
        g = avg["decay"] if "decay" in avg else 2.0 ** (-1.0 / avg["half_life"])
        rho = np.full(T + 1, 1.0 - g)
        rho[0] = 1.0
        return rho
    w = mix_weights(avg, T)
    cum = np.cumsum(w)
    return np.array([w[t] / cum[t] if cum[t] > 0 else 1.0 for t in range(T + 1)])


def _run(theta2, sigma2, kappa, models):
    theta2 = np.asarray(theta2, dtype=float)
    d = theta2.size
    G = len(models)
    N = 3 * G * d
    theta = np.sqrt(theta2)
    S = np.zeros((N, N))
    m = np.zeros(N)

    def blk(g, j):  # j: 0 = e, 1 = v, 2 = a
        o = (3 * g + j) * d
        return slice(o, o + d)

    def dep(g):
        return blk(g, 2) if models[g].average is not None else blk(g, 0)

    out = []
    for g, mod in enumerate(models):
        idx = [blk(g, j) for j in range(3)]
        others = np.ones(N, dtype=bool)
        for sl in idx:
            others[sl] = False
        for sl in idx:
            m[sl] = -theta
        for sl in idx:
            S[sl, :] = 0.0
            S[:, sl] = 0.0
        for s1 in idx:
            for s2 in idx:
                S[s1, s2] = np.outer(theta, theta)
            S[s1, others] = -np.outer(theta, m[others])
            S[others, s1] = S[s1, others].T
        s = np.asarray(mod.speeds, dtype=float)
        B = int(mod.batch)
        alpha = float(mod.alpha)
        c = 1.0 - alpha if mod.parent is not None else 0.0
        T = mod.steps
        rho = _running_rho(mod.average, T)
        rec = {"risk": [S[dep(g), dep(g)].trace()], "last": [S[blk(g, 0), blk(g, 0)].trace()], "dis": []}
        if mod.parent is not None:
            dp = dep(mod.parent)
            rec["dis"].append(np.trace(S[dep(g), dep(g)] - 2 * S[dep(g), dp] + S[dp, dp]))
        eye = np.eye(d)
        for t in range(T):
            r, pe, pv, he, hv = coefficients(mod.momentum, float(mod.etas[t]), t)
            w = float(rho[t + 1])
            R = np.zeros((d, N))
            R[:, blk(g, 0)] = r * eye
            R[:, blk(g, 1)] = (1 - r) * eye
            if mod.parent is not None and c != 0.0:
                R[:, dep(mod.parent)] -= c * eye
            L = np.eye(N)
            L[blk(g, 0), blk(g, 0)] = pe * eye
            L[blk(g, 0), blk(g, 1)] = (1 - pe) * eye
            L[blk(g, 1), blk(g, 0)] = pv * eye
            L[blk(g, 1), blk(g, 1)] = (1 - pv) * eye
            L[blk(g, 2), blk(g, 2)] = (1 - w) * eye
            L[blk(g, 2), blk(g, 0)] = w * pe * eye
            L[blk(g, 2), blk(g, 1)] = w * (1 - pe) * eye
            K = np.zeros((N, d))
            K[blk(g, 0), :] = np.diag(he * s)
            K[blk(g, 1), :] = np.diag(hv * s)
            K[blk(g, 2), :] = w * np.diag(he * s)
            C = R @ S @ R.T
            EGG = (np.trace(C) * eye + 2 * C + (kappa - 3) * np.diag(np.diag(C)) + alpha**2 * sigma2 * eye) / B \
                + (B - 1) / B * C
            LS = L @ S
            S = LS @ L.T - LS @ R.T @ K.T - K @ R @ S @ L.T + K @ EGG @ K.T
            S = 0.5 * (S + S.T)
            m = (L - K @ R) @ m
            rec["risk"].append(S[dep(g), dep(g)].trace())
            rec["last"].append(S[blk(g, 0), blk(g, 0)].trace())
            if mod.parent is not None:
                dp = dep(mod.parent)
                rec["dis"].append(np.trace(S[dep(g), dep(g)] - 2 * S[dep(g), dp] + S[dp, dp]))
        rec["modes"] = np.diag(S[dep(g), dep(g)]).copy()
        rec["mean"] = m[dep(g)].copy()
        out.append({k: np.asarray(v) for k, v in rec.items()})
    for g in range(G):
        out[g]["pairs"] = {h: float(np.trace(S[dep(g), dep(g)] - 2 * S[dep(g), dep(h)] + S[dep(h), dep(h)]))
                           for h in range(G)}
    return out


def dense_variants(theta2, sigma2, kappa, models):
    """Per model: ``risk``, ``bias``, ``variance`` (deployed predictor, steps 0..T), ``last``
    (last iterate's risk), ``dis`` (deployed vs the parent's deployed), ``modes`` (final
    per-mode E[d_i^2]), ``mu`` (final E[d_i] / theta_i where theta_i > 0), ``pairs`` (final
    pairwise disagreements). Bias: sigma2 = 0; variance: theta = 0; they add up."""
    full = _run(theta2, sigma2, kappa, models)
    bias = _run(theta2, 0.0, kappa, models)
    var = _run(np.zeros_like(np.asarray(theta2, dtype=float)), sigma2, kappa, models)
    theta = np.sqrt(np.asarray(theta2, dtype=float))
    for f, b, v in zip(full, bias, var, strict=True):
        f["bias"], f["variance"] = b["risk"], v["risk"]
        with np.errstate(divide="ignore", invalid="ignore"):
            f["mu"] = np.where(theta > 0, f["mean"] / np.where(theta > 0, theta, 1.0), np.nan)
    return full
