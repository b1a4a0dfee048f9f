"""Independent reference implementations of the exact moment engine.

Written from docs/theory.md §1-4 only (not from ``spectral_theory.solvers``),
to test the package's exact engine. Two implementations:

* :func:`dense_reference` propagates the FULL second-moment matrix
  ``A = E[E E^T]`` of the stacked error vector ``E = [e_1; ...; e_G]`` (size
  ``G d``) of a chain of models, and the mean vector ``E[E]``, in float64,
  without using the per-mode shortcut of docs/theory.md §4.
* :func:`mp_reference` is a plain-Python transcription of the per-mode
  recursions of docs/theory.md §4 in mpmath at 40 significant digits.

Both take the problem as plain arrays (``theta2``, ``sigma2``, ``kappa``) and
the chain as a list of :class:`RefModel` (per-step batch-mean step sizes,
speeds, batch, parent index, hard-label weight ``alpha``), so they do not use
the package's specification objects either.

Derivation of the dense step (model g, parent p, c = 1 - alpha)
-----------------------------------------------------------------
Labels ``l_b = alpha (z_b.theta + eps_b) + c z_b.phi_p``. With
``e = phi - theta``, the residual is
``z_b.phi_g - l_b = z_b.(e_g + theta - alpha theta - c e_p - c theta) - alpha eps_b
                  = z_b.v - alpha eps_b``,   ``v = e_g - c e_p = L E``
with ``L = [.., I (block g), .., -c I (block p), ..]`` (a d x Gd matrix). So

    E' = E - eta K H L E + eta alpha K n,   K = J_g S (Gd x d),
    H = (1/B) sum_b z_b z_b^T,   n = (1/B) sum_b eps_b z_b.

``E[H] = I``, ``E[n] = 0``, ``E[n n^T] = sigma2/B I``, and ``n`` is
uncorrelated with anything else (eps is independent and centred). For any
d x d matrix C,

    E[H C H] = (1/B^2) sum_{b,b'} E[z_b z_b^T C z_b' z_b'^T]
             = (1/B) (tr(C) I + C + C^T + (kappa-3) diag(diag C)) + (B-1)/B C

(same sample: the general fourth-moment identity for independent coordinates;
distinct samples: E[z z^T] C E[z z^T] = C). Hence, with C = L A L^T,

    E[E'] = (I - eta K L) E[E]
    A'    = A - eta K L A - eta A L^T K^T + eta^2 K E[H C H] K^T
              + eta^2 alpha^2 sigma2/B K K^T.

Initialisation when model g starts (phi_g = 0, theta deterministic with
theta_i = sqrt(theta2_i)): ``E[e_g] = -theta``, ``A_gg = theta theta^T``
(a full rank-one block, not diagonal) and ``A_gh = -theta E[e_h]^T`` for every
model h trained before g.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import mpmath
import numpy as np

__all__ = ["RefModel", "dense_reference", "mp_reference", "d1_closed_form"]


@dataclass
class RefModel:
    """One model of a chain for the reference implementations.

    ``etas``: per-step step sizes in the batch-MEAN convention (length = steps);
    ``speeds``: ``s_i >= 0`` per mode; ``parent``: index of an earlier model or
    None (hard labels, alpha must then be 1); ``alpha``: hard-label weight;
    ``at``: steps (0..steps) at which to report.
    """

    name: str
    etas: np.ndarray
    speeds: np.ndarray
    batch: int = 1
    parent: int | None = None
    alpha: float = 1.0
    at: Sequence[int] = field(default_factory=tuple)

    @property
    def steps(self) -> int:
        return len(self.etas)


def _check_chain(models: Sequence[RefModel]) -> None:
    for g, m in enumerate(models):
        if m.parent is None:
            assert m.alpha == 1.0, "a model without parent trains on hard labels"
        else:
            assert 0 <= m.parent < g, "the parent must be trained earlier"


# ----------------------------------------------------------------------------
# dense reference (float64, full Gd x Gd second-moment matrix)


def _dense_run(theta2, sigma2, kappa, models, *, ones_mean=False):
    """One dense run. Returns per-model dicts and the final (A, mean)."""
    theta2 = np.asarray(theta2, dtype=float)
    d = theta2.size
    G = len(models)
    N = G * d
    theta = np.sqrt(theta2)
    A = np.zeros((N, N))
    mean = np.zeros(N)
    mu = np.zeros(N)  # the mean recursion run with theta = 1: the multipliers mu
    blk = [slice(g * d, (g + 1) * d) for g in range(G)]
    out = []
    for g, m in enumerate(models):
        sg = blk[g]
        # initialisation of block g (cross blocks only with models trained before g)
        mean[sg] = -theta
        mu[sg] = -1.0
        A[sg, :] = 0.0
        A[:, sg] = 0.0
        A[sg, sg] = np.outer(theta, theta)
        for h in range(g):
            A[sg, blk[h]] = -np.outer(theta, mean[blk[h]])
            A[blk[h], sg] = A[sg, blk[h]].T
        s = np.asarray(m.speeds, dtype=float)
        B = int(m.batch)
        alpha = float(m.alpha)
        c = 1.0 - alpha
        L = np.zeros((d, N))
        L[:, sg] = np.eye(d)
        if m.parent is not None:
            L[:, blk[m.parent]] -= c * np.eye(d)
        K = np.zeros((N, d))
        K[sg, :] = np.diag(s)
        KKt = K @ K.T
        at = set(int(t) for t in m.at)
        rec = {"steps": [], "risk": [], "disagreement": [], "modes": [], "curve": []}

        def record(t):
            r = float(np.trace(A[sg, sg]))
            rec["curve"].append(r)
            if t in at:
                rec["steps"].append(t)
                rec["risk"].append(r)
                rec["modes"].append(np.diag(A[sg, sg]).copy())
                if m.parent is not None:
                    sp = blk[m.parent]
                    rec["disagreement"].append(
                        float(np.trace(A[sg, sg]) - 2 * np.trace(A[sg, sp]) + np.trace(A[sp, sp])))

        record(0)
        for t, eta in enumerate(np.asarray(m.etas, dtype=float)):
            C = L @ A @ L.T
            EHCH = (np.trace(C) * np.eye(d) + C + C.T + (kappa - 3.0) * np.diag(np.diag(C))) / B \
                + (B - 1.0) / B * C
            KLA = K @ (L @ A)
            A = A - eta * KLA - eta * KLA.T + eta**2 * (K @ EHCH @ K.T) \
                + eta**2 * alpha**2 * sigma2 / B * KKt
            mean = mean - eta * (K @ (L @ mean))
            mu = mu - eta * (K @ (L @ mu))
            record(t + 1)
        rec = {k: np.array(v) for k, v in rec.items()}
        rec["name"] = m.name
        rec["second_moment"] = np.diag(A[sg, sg]).copy()
        rec["mean"] = mean[sg].copy()
        rec["first_moment"] = mu[sg].copy()
        out.append(rec)
    tr = np.array([[np.trace(A[blk[g], blk[h]]) for h in range(G)] for g in range(G)])
    pair = np.array([[tr[g, g] - 2 * tr[g, h] + tr[h, h] for h in range(G)] for g in range(G)])
    return out, pair


def dense_reference(theta2, sigma2, kappa, models: Sequence[RefModel], *, split: bool = True):
    """Dense full-covariance reference for a chain.

    Returns ``{"models": {name: rec}, "disagreement": {g: {h: value}}}`` where
    ``rec`` has ``steps``, ``risk`` (excess risk at ``at``), ``disagreement``
    with the parent at ``at`` (empty without parent), ``modes`` (per-mode
    ``E[e_i^2]`` at ``at``), ``curve`` (risk at every step 0..T),
    ``second_moment`` (final per-mode ``E[e_i^2]``), ``mean`` (final
    ``E[e_i]``), ``first_moment`` (final multipliers ``mu_i``), and with
    ``split=True`` also ``bias``/``variance`` (at ``at``) and
    ``second_moment_bias``/``second_moment_variance`` (final per mode).
    """
    _check_chain(models)
    theta2 = np.asarray(theta2, dtype=float)
    recs, pair = _dense_run(theta2, sigma2, kappa, models)
    if split:
        b_recs, _ = _dense_run(theta2, 0.0, kappa, models)
        v_recs, _ = _dense_run(np.zeros_like(theta2), sigma2, kappa, models)
        for r, rb, rv in zip(recs, b_recs, v_recs, strict=True):
            r["bias"] = rb["risk"]
            r["variance"] = rv["risk"]
            r["second_moment_bias"] = rb["second_moment"]
            r["second_moment_variance"] = rv["second_moment"]
    names = [m.name for m in models]
    return {
        "models": {r["name"]: r for r in recs},
        "disagreement": {names[g]: {names[h]: float(pair[g, h]) for h in range(len(names))}
                         for g in range(len(names))},
    }


# ----------------------------------------------------------------------------
# per-mode recursion of docs/theory.md §4 in mpmath (40 digits)


def _mp_run(theta2, sigma2, kappa, models):
    """Plain loops over the docs/theory.md §4 recursions, at mp.dps = 40."""
    with mpmath.workdps(40):
        th2 = [mpmath.mpf(float(x)) for x in theta2]
        d = len(th2)
        s2 = mpmath.mpf(float(sigma2))
        kap = mpmath.mpf(float(kappa))
        mu: dict[int, list] = {}
        M: dict[tuple[int, int], list] = {}  # M[(g, h)] = M_gh per mode, both orders stored

        def getM(g, h):
            return M[(g, h)]

        out = []
        for g, m in enumerate(models):
            trained = list(range(g))
            # initialisation at phi_g(0) = 0
            mu[g] = [mpmath.mpf(-1)] * d
            M[(g, g)] = list(th2)
            for h in trained:
                M[(g, h)] = [-mu[h][i] * th2[i] for i in range(d)]
                M[(h, g)] = list(M[(g, h)])
            s = [mpmath.mpf(float(x)) for x in m.speeds]
            B = mpmath.mpf(int(m.batch))
            alpha = mpmath.mpf(float(m.alpha))
            c = 1 - alpha
            p = m.parent
            at = set(int(t) for t in m.at)
            rec = {"steps": [], "risk": [], "disagreement": [], "modes": [], "curve": []}

            def record(t):
                r = mpmath.fsum(M[(g, g)])
                rec["curve"].append(r)
                if t in at:
                    rec["steps"].append(t)
                    rec["risk"].append(r)
                    rec["modes"].append(list(M[(g, g)]))
                    if p is not None:
                        rec["disagreement"].append(mpmath.fsum(
                            M[(g, g)][i] - 2 * M[(g, p)][i] + M[(p, p)][i] for i in range(d)))

            record(0)
            for t, eta_f in enumerate(m.etas):
                eta = mpmath.mpf(float(eta_f))
                Mgg = M[(g, g)]
                if p is None:
                    # alpha = 1, no parent: U_i = M_gg
                    mup = [mpmath.mpf(0)] * d
                    Mgp = [mpmath.mpf(0)] * d
                    Mpp = [mpmath.mpf(0)] * d
                else:
                    mup = mu[p]
                    Mgp = getM(g, p)
                    Mpp = getM(p, p)
                U = [Mgg[i] - 2 * c * Mgp[i] + c**2 * Mpp[i] for i in range(d)]
                sumU = mpmath.fsum(U)
                # simultaneous update: every right-hand side uses the old values
                new_mu = [mu[g][i] - eta * s[i] * (mu[g][i] - c * mup[i]) for i in range(d)]
                new_cross = {}
                for h in trained:
                    Mgh = getM(g, h)
                    Mph = getM(p, h) if p is not None else [mpmath.mpf(0)] * d
                    new_cross[h] = [Mgh[i] - eta * s[i] * (Mgh[i] - c * Mph[i]) for i in range(d)]
                new_Mgg = [
                    Mgg[i] - 2 * eta * s[i] * (Mgg[i] - c * Mgp[i])
                    + eta**2 * s[i] ** 2 * (U[i] + (sumU + (kap - 2) * U[i] + alpha**2 * s2) / B)
                    for i in range(d)
                ]
                mu[g] = new_mu
                M[(g, g)] = new_Mgg
                for h, v in new_cross.items():
                    M[(g, h)] = v
                    M[(h, g)] = list(v)
                record(t + 1)
            rec["name"] = m.name
            rec["second_moment"] = list(M[(g, g)])
            rec["first_moment"] = list(mu[g])
            out.append(rec)
        G = len(models)
        pair = [[mpmath.fsum(M[(g, g)][i] - 2 * M[(g, h)][i] + M[(h, h)][i] for i in range(d))
                 if g != h else mpmath.mpf(0) for h in range(G)] for g in range(G)]
        return out, pair


def _to_float(x):
    if isinstance(x, list):
        return np.array([_to_float(v) for v in x], dtype=float)
    return float(x)


def mp_reference(theta2, sigma2, kappa, models: Sequence[RefModel], *, split: bool = True):
    """Per-mode recursion of docs/theory.md §4 at 40 digits, returned as float64.

    Same return layout as :func:`dense_reference` (``mean`` is ``mu * theta``).
    The bias/variance split reruns the recursion with ``sigma2 = 0`` and with
    ``theta = 0``.
    """
    _check_chain(models)
    theta2 = np.asarray(theta2, dtype=float)
    recs, pair = _mp_run(theta2, sigma2, kappa, models)
    if split:
        b_recs, _ = _mp_run(theta2, 0.0, kappa, models)
        v_recs, _ = _mp_run(np.zeros_like(theta2), sigma2, kappa, models)
    names = [m.name for m in models]
    res = {"models": {}, "disagreement": {}}
    for k, r in enumerate(recs):
        fr = {key: (_to_float(v) if key != "name" else v) for key, v in r.items()}
        fr["mean"] = fr["first_moment"] * np.sqrt(theta2)
        if split:
            fr["bias"] = _to_float(b_recs[k]["risk"])
            fr["variance"] = _to_float(v_recs[k]["risk"])
            fr["second_moment_bias"] = _to_float(b_recs[k]["second_moment"])
            fr["second_moment_variance"] = _to_float(v_recs[k]["second_moment"])
        res["models"][r["name"]] = fr
    res["disagreement"] = {names[g]: {names[h]: float(pair[g][h]) for h in range(len(names))}
                           for g in range(len(names))}
    return res


# ----------------------------------------------------------------------------
# d = 1 closed form


def d1_closed_form(t, theta2, sigma2, kappa, lam, eta, batch):
    """Excess risk after t steps of a single hard-label model, d = 1, constant step.

    With x = eta*lam and H = (1/B) sum_b z_b^2: e' = (1 - x H) e + x n, so
    E[e'^2] = E[(1 - x H)^2] M + x^2 sigma2 / B with E[H] = 1,
    E[H^2] = (kappa + B - 1)/B:   M_{t+1} = a M_t + b,
    a = 1 - 2x + x^2 (kappa + B - 1)/B,  b = x^2 sigma2 / B, hence the geometric sum
    M_t = a^t theta2 + b (1 - a^t)/(1 - a)   (= theta2 + t b when a = 1).
    """
    x = eta * lam
    a = 1.0 - 2.0 * x + x * x * (kappa + batch - 1.0) / batch
    b = x * x * sigma2 / batch
    t = np.asarray(t, dtype=float)
    if a == 1.0:
        return theta2 + t * b
    return a**t * theta2 + b * (1.0 - a**t) / (1.0 - a)
