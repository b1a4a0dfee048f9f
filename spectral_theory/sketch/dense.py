"""Dense reference for chains with sketched models (``docs/sketch.md`` §4): the full second moment
of every model's latent weights, propagated step by step in latent coordinates without any
shortcut (no eigenbasis, no renewal, no decoupling).

The state is ``M = E[u u^T]`` for ``u = (phi_1, ..., phi_G, 1)`` (``G d + 1`` numbers). A step
of model ``g`` (preconditioner ``P_g = A_g^T A_g``, ``A_g`` its feature map in latent
coordinates, parent ``p``, residual ``r = phi_g - c phi_p - alpha theta = L u``) is

``u' = u - eta E_g P_g G``, ``E[G | u] = r``,
``E[G G^T | u] = (1 + 1/B) r r^T + (1/B) ((|r|^2 + alpha^2 sigma^2) I + (kappa - 3) Diag(r r^T))``,

exactly for independent latent coordinates of kurtosis ``kappa``:
``E[z z^T A z z^T] = tr(A) I + A + A^T + (kappa - 3) Diag(A)``. It is therefore the exact
expected dynamics for any such law (Gaussian or not), at ``O((G d)^2 d)`` per step: small ``d`` only.
"""

from __future__ import annotations

import numpy as np

from ..spec import Scenario

__all__ = ["dense_chain", "feature_map"]


def feature_map(model, eigenvalues: np.ndarray) -> np.ndarray:
    """``A`` with ``features = A z`` in latent coordinates: ``S Lambda^(1/2)`` for a sketched
    model, ``diag(sqrt(s))`` otherwise."""
    lam = np.asarray(eigenvalues, dtype=float)
    if model.features is not None:
        return model.features.matrix(lam.size) * np.sqrt(lam)[None, :]
    return np.diag(np.sqrt(model.speed_profile(lam)))


def dense_chain(scenario: Scenario, *, at: dict[str, np.ndarray] | None = None,
                theta: np.ndarray | None = None) -> dict[str, dict[str, np.ndarray]]:
    """Excess risk (and, for students, the disagreement with the teacher) of every model at its
    reported steps (``at``, default the scenario's output), plus the final pairwise
    disagreements, by dense propagation. ``theta``: the latent target vector (default
    ``+sqrt(theta2)``, as the solvers and the simulator use)."""
    prob = scenario.problem
    lam = np.asarray(prob.eigenvalues, dtype=float)
    d = lam.size
    th = np.sqrt(np.asarray(prob.theta2, dtype=float)) if theta is None else np.asarray(theta, dtype=float)
    kappa = prob.kappa
    sigma2 = prob.noise
    models = scenario.models
    G = len(models)
    n = G * d + 1
    idx = {m.name: i for i, m in enumerate(models)}
    M = np.zeros((n, n))
    M[-1, -1] = 1.0

    def blk(g: int) -> slice:
        return slice(g * d, (g + 1) * d)

    def risk(g: int) -> float:
        L = np.zeros((d, n))
        L[:, blk(g)] = np.eye(d)
        L[:, -1] = -th
        return float(np.trace(L @ M @ L.T))

    def dis(g: int, h: int) -> float:
        L = np.zeros((d, n))
        L[:, blk(g)] = np.eye(d)
        L[:, blk(h)] -= np.eye(d)
        return float(np.trace(L @ M @ L.T))

    out: dict[str, dict[str, np.ndarray]] = {}
    for g, m in enumerate(models):
        steps = scenario.output.steps_for(m.steps) if at is None else np.asarray(at[m.name])
        A = feature_map(m, lam)
        P = A.T @ A
        p = idx[m.teacher] if m.teacher is not None else None
        al = float(m.alpha)
        c = 1.0 - al if p is not None else 0.0
        L = np.zeros((d, n))
        L[:, blk(g)] = np.eye(d)
        if p is not None:
            L[:, blk(p)] -= c * np.eye(d)
        L[:, -1] = -al * th
        E = np.zeros((n, d))
        E[blk(g)] = np.eye(d)
        K = E @ P  # n x d: u' = u - eta K G
        eta = m.step_sizes()
        B = m.batch
        rs, ds = [], []
        k = 0
        for t in range(m.steps + 1):
            while k < steps.size and steps[k] == t:
                rs.append(risk(g))
                if p is not None:
                    ds.append(dis(g, p))
                k += 1
            if t == m.steps:
                break
            LM = L @ M  # E[r u^T]
            U = LM @ L.T  # E[r r^T]
            GG = (1.0 + 1.0 / B) * U + (np.trace(U) + al * al * sigma2) / B * np.eye(d) \
                + (kappa - 3.0) / B * np.diag(np.diag(U))
            KLM = K @ LM
            M = M - eta[t] * (KLM + KLM.T) + eta[t] ** 2 * (K @ GG @ K.T)
        out[m.name] = {"steps": np.asarray(steps), "excess_risk": np.array(rs),
                       "disagreement": np.array(ds) if p is not None else None}
    out["_pairs"] = {(models[g].name, models[h].name): dis(g, h) for g in range(G) for h in range(g)}
    return out
