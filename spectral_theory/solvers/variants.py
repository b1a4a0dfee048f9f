"""The exact step-by-step engine for averaged and momentum models (``docs/theory.md`` §10).

:func:`train_variant` trains one model of the chain whose spec has ``average`` and/or
``momentum`` (:mod:`spectral_theory.spec.variants`), with the per-mode steps of
:mod:`spectral_theory.solvers.variant_kernels`. Per mode it carries ``E[e^2]``, ``E[e d]``,
``E[d^2]`` (iterate ``e``, ``d = e - v`` its gap to the auxiliary sequence ``v``: the
coordinates in which a slow mode's step does not cancel), with averaging also ``E[a^2]``,
``E[a e]``, ``E[a d]`` (averaged error ``a``), the cross moments of ``e``, ``d`` and ``a`` with
every frozen model, and the first-moment multipliers; two source rows each (bias, variance), as the chain
state does. After training, the chain state holds the predictor the model *deploys* (its average
if averaged), so students, disagreements and transfer metrics see that predictor; the model's
result reports the deployed curves and, for an averaged model, the last iterate's too.
"""

from __future__ import annotations

import numpy as np

from ..result import ModelResult
from ..spec import Scenario
from ..spec.variants import variant_phases
from ..stability import StepCheck
from . import variant_kernels as vk
from .base import ChainState, model_result

__all__ = ["train_variant", "variant_phases"]


def train_variant(state: ChainState, scenario: Scenario, gi: int, ckpt: np.ndarray, *, record_modes: bool,
                  every_step: bool, check: StepCheck, limit: float) -> ModelResult:
    """Train model ``gi`` (an averaged and/or momentum model) step by step; see the module
    docstring. ``check``: what the stability policy found; ``limit``: the model's largest stable
    constant step (reported)."""
    model = scenario.models[gi]
    prob = scenario.problem
    lam = prob.eigenvalues
    kappa = prob.kappa
    s = model.speed_profile(lam)
    p = scenario.index(model.teacher) if model.teacher is not None else None
    alpha = float(model.alpha)
    c = 1.0 - alpha if p is not None else 0.0
    inv_b = 1.0 / model.batch
    noise = np.array([[0.0], [alpha * alpha * prob.noise]])
    avg = model.average
    rho = avg.mix(model.steps) if avg is not None else None

    g = state.add_model(expect=gi)
    others = list(range(g))
    Mee = state.M[(g, g)].copy()
    Med, Mdd = np.zeros_like(Mee), np.zeros_like(Mee)  # v_0 = e_0: d_0 = 0
    mu_e = state.mu[g].copy()
    mu_d = np.zeros_like(mu_e)
    Xe = {h: state.M[(h, g)].copy() for h in others}
    Xd = {h: np.zeros_like(x) for h, x in Xe.items()}
    zero = np.zeros_like(Mee)
    Mpp = state.pair(p, p) if p is not None else zero
    mu_p = state.mu[p] if p is not None else np.zeros_like(mu_e)
    if avg is not None:
        A, Ae, Ad = Mee.copy(), Mee.copy(), np.zeros_like(Mee)
        Ah = {h: x.copy() for h, x in Xe.items()}
        mu_a = mu_e.copy()

    n_ck = ckpt.size
    risk = np.empty((n_ck, 2))
    last = np.empty((n_ck, 2)) if avg is not None else None
    disagree = np.empty(n_ck) if p is not None else None
    mode_curves = np.empty((n_ck, lam.size)) if record_modes else None
    curve = np.empty(model.steps + 1) if every_step else None
    k = 0

    def record(t: int) -> None:
        nonlocal k
        dep = A if avg is not None else Mee
        if curve is not None:
            curve[t] = dep.sum()
        while k < n_ck and ckpt[k] == t:
            risk[k] = dep.sum(axis=1)
            if last is not None:
                last[k] = Mee.sum(axis=1)
            if disagree is not None:
                cross = Ah[p] if avg is not None else Xe[p]
                disagree[k] = (dep - 2.0 * cross + Mpp).sum()
            if mode_curves is not None:
                mode_curves[k] = dep.sum(axis=0)
            k += 1

    record(0)
    t = 0
    max_lr = 0.0
    if model.momentum is None or model.momentum.is_plain:
        # averaging only: the iterate follows plain SGD's generated kernels (docs/theory.md §4),
        # the average its own two moments (no auxiliary sequence)
        from . import kernels as gen

        hard = p is None or c == 0.0
        for lr, n in model.phases():
            max_lr = max(max_lr, lr)
            x = lr * s
            for _ in range(n):
                if hard:
                    a_pi = Ae
                    Mee_n = gen.hard_moment_step(Mee, Mee.sum(axis=1, keepdims=True), x, inv_b, kappa, noise)
                    mu_e = gen.hard_mean_step(mu_e, x)
                    for h in others:
                        Xe[h] = gen.hard_mean_step(Xe[h], x)
                else:
                    Mep = Xe[p]
                    a_pi = Ae - c * Ah[p]
                    U = gen.residual_moment(Mee, Mep, Mpp, c)
                    Mee_n = gen.self_moment_step(Mee, Mep, U, U.sum(axis=1, keepdims=True), x, c, inv_b, kappa, noise)
                    mu_e = gen.mean_step(mu_e, mu_p, x, c)
                    for h in others:
                        Xe[h] = gen.cross_moment_step(Xe[h], state.pair(p, h), x, c)
                t += 1
                w = float(rho[t])
                keep = 1.0 - w
                a_e = Ae - x * a_pi  # E[a e'] (the gradient noise has mean zero given the past)
                A = keep * keep * A + w * (2.0 * keep * a_e + w * Mee_n)
                Ae = keep * a_e + w * Mee_n
                for h in others:
                    Ah[h] = keep * Ah[h] + w * Xe[h]
                mu_a = keep * mu_a + w * mu_e
                Mee = Mee_n
                record(t)
            if not np.all(np.isfinite(Mee)):
                raise check.error(t, lr, "the moments overflowed to a non-finite value")
    for (r, p_e, p_v, h_e, h_v), lr, n in (() if model.momentum is None or model.momentum.is_plain
                                           else variant_phases(model)):
        max_lr = max(max_lr, lr)
        x_e = h_e * s
        x_v = h_v * s if h_v != 0.0 else 0.0  # a float 0 where v takes no gradient step
        rb = 1.0 - r
        for _ in range(n):
            Mep = Xe[p] if p is not None else zero
            Mdp = Xd[p] if p is not None else zero
            U, e_pi, d_pi = vk.point_moment(Mee, Med, Mdd, Mep, Mdp, Mpp, r, c)
            sum_u = U.sum(axis=1, keepdims=True)
            if avg is not None:
                a_pi = Ae - rb * Ad
                if p is not None:
                    a_pi = a_pi - c * Ah[p]
            Mee_n, Med_n, Mdd_n = vk.momentum_step(Mee, Med, Mdd, U, e_pi, d_pi, sum_u, p_e, p_v, x_e, x_v,
                                                   inv_b, kappa, noise)
            for h in others:
                pi_h = Xe[h] - rb * Xd[h] - c * state.pair(p, h) if p is not None else Xe[h] - rb * Xd[h]
                Xe[h], Xd[h] = vk.cross_step(Xe[h], Xd[h], pi_h, p_e, p_v, x_e, x_v)
            mu_pi = mu_e - rb * mu_d - c * mu_p
            mu_e, mu_d = vk.mean_step(mu_e, mu_d, mu_pi, p_e, p_v, x_e, x_v)
            t += 1
            if avg is not None:
                w = float(rho[t])
                A, Ae, Ad = vk.average_step(A, Ae, Ad, a_pi, Mee_n, Med_n, p_e, p_v, x_e, x_v, w)
                for h in others:
                    Ah[h] = (1.0 - w) * Ah[h] + w * Xe[h]
                mu_a = (1.0 - w) * mu_a + w * mu_e
            Mee, Med, Mdd = Mee_n, Med_n, Mdd_n
            record(t)
        if not (np.all(np.isfinite(Mee)) and np.all(np.isfinite(Mdd))):
            raise check.error(t, lr, "the moments overflowed to a non-finite value")

    # the chain state holds the deployed predictor from now on
    if avg is not None:
        state.M[(g, g)], state.mu[g] = A, mu_a
        for h in others:
            state.M[(h, g)] = Ah[h]
    else:
        state.M[(g, g)], state.mu[g] = Mee, mu_e
        for h in others:
            state.M[(h, g)] = Xe[h]
    res = model_result(model, ckpt, risk, state, g, disagreement=disagree, mode_curves=mode_curves,
                       curve=curve, limit=limit, max_lr=max_lr)
    if last is not None:
        last = np.maximum(last, 0.0)
        res.last_iterate = {"excess_risk": last.sum(axis=1), "bias": last[:, 0].copy(),
                            "variance": last[:, 1].copy(),
                            "second_moment": np.maximum(Mee.sum(axis=0), 0.0)}
    return res
