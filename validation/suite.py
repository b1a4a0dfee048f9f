"""Configurations of the validation suite, in two tiers.

* ``quick``: small problems (d <= 40, a few hundred steps, R = 3000-4000
  replicates); runs in the default test suite (tests/test_validation.py).
* ``long``: larger problems and more replicates; ``python -m validation --tier long``
  or ``pytest -m slow``.

Each configuration is a function returning a Scenario; seeds are fixed.
Criterion (``docs/theory.md`` §9): at every reported step
``|theory - MC| <= 4 SE + 1e-12``, and no systematic sign across the tier
(two-sided sign test on the last model's final z-score of each
configuration, p >= 0.01).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import spectral_theory as st


@dataclass(frozen=True)
class Config:
    name: str
    build: Callable[[], st.Scenario]
    reps: int
    seed: int
    covers: str


def _pl(a: float, b: float, d: int, noise: float, features: st.Features) -> st.Problem:
    return st.Problem(st.PowerLawSpectrum(a=a, d=d), st.PowerLawTarget(b=b), noise=noise, features=features)


G, R, U = st.Features("gaussian"), st.Features("rademacher"), st.Features("uniform")


def _out(*steps: int) -> st.Output:
    return st.Output(at=steps)


def q_gauss_b1_const() -> st.Scenario:
    return st.Scenario(_pl(1.5, 2.0, 30, 0.2, G), (st.Model("m", steps=400, schedule=0.4),),
                       output=_out(0, 1, 5, 20, 100, 400))


def q_rademacher_b4_const() -> st.Scenario:
    return st.Scenario(_pl(1.2, 1.5, 40, 0.5, R), (st.Model("m", steps=300, schedule=1.0, batch=4),),
                       output=_out(0, 1, 3, 10, 50, 300))


def q_uniform_b1_stepdecay() -> st.Scenario:
    return st.Scenario(_pl(1.5, 1.8, 30, 0.3, U),
                       (st.Model("m", steps=400, schedule=st.StepDecay(0.6, 0.5, 100)),),
                       output=_out(0, 2, 10, 50, 150, 400))


def q_gauss_b8_poly() -> st.Scenario:
    return st.Scenario(_pl(2.0, 2.5, 25, 1.0, G),
                       (st.Model("m", steps=200, schedule=st.Polynomial(1.5, t0=20, power=1.0), batch=8),),
                       output=_out(0, 1, 5, 20, 80, 200))


def q_capacity_truncated() -> st.Scenario:
    return st.Scenario(_pl(1.3, 1.6, 40, 0.2, U),
                       (st.Model("m", steps=300, schedule=0.5, batch=2, capacity=8),),
                       output=_out(0, 3, 30, 300))


def q_kurtosis5_warmup() -> st.Scenario:
    prob = _pl(1.5, 2.0, 20, 0.4, st.Features("kurtosis", kurtosis=5.0))
    return st.Scenario(prob, (st.Model("m", steps=300, schedule=st.WarmupDecay(0.3, warmup=30, t0=50, power=0.5)),),
                       output=_out(0, 5, 30, 100, 300))


def q_kd_soft_rademacher() -> st.Scenario:
    prob = _pl(1.5, 2.0, 30, 0.5, R)
    return st.Scenario(prob, (st.Model("teacher", steps=400, schedule=0.4, batch=2),
                              st.Model("student", steps=300, schedule=0.4, capacity=10, teacher="teacher")),
                       output=_out(0, 3, 30, 300))


def q_chain3_mixed() -> st.Scenario:
    prob = _pl(1.4, 1.8, 30, 0.3, G)
    return st.Scenario(prob, (
        st.Model("g0", steps=300, schedule=0.3, batch=2),
        st.Model("g1", steps=200, schedule=st.Geometric(0.5, 0.995), teacher="g0", alpha=0.3, capacity=20),
        st.Model("g2", steps=200, schedule=0.3, batch=3, teacher="g1", alpha=0.3),
    ), output=_out(0, 2, 20, 200))


def q_w2s_uniform_array() -> st.Scenario:
    lam = [1.0, 0.6, 0.5, 0.3, 0.2, 0.1, 0.05, 0.05, 0.02, 0.01]
    th2 = [0.5, 0.1, 0.3, 0.05, 0.2, 0.02, 0.1, 0.0, 0.05, 0.01]
    prob = st.Problem(st.ArraySpectrum(lam), st.ArrayTarget(th2), noise=0.5, features=U)
    return st.Scenario(prob, (
        st.Model("weak", steps=200, schedule=0.6, capacity=4),
        st.Model("strong", steps=400, schedule=st.ArraySchedule([0.4] * 200 + [0.1] * 200), teacher="weak", alpha=0.0),
    ), output=_out(0, 5, 50, 200, 400))


QUICK = [
    Config("gauss_b1_const", q_gauss_b1_const, 4000, 11, "kurtosis 3, B=1, constant"),
    Config("rademacher_b4_const", q_rademacher_b4_const, 4000, 12, "kurtosis 1, B=4, constant"),
    Config("uniform_b1_stepdecay", q_uniform_b1_stepdecay, 4000, 13, "kurtosis 1.8, B=1, step decay"),
    Config("gauss_b8_poly", q_gauss_b8_poly, 3000, 14, "kurtosis 3, B=8, polynomial decay"),
    Config("capacity_truncated", q_capacity_truncated, 4000, 15, "capacity 8 of 40, kurtosis 1.8, B=2"),
    Config("kurtosis5_warmup", q_kurtosis5_warmup, 4000, 16, "three-point law kurtosis 5, warmup-decay"),
    Config("kd_soft_rademacher", q_kd_soft_rademacher, 3000, 17, "teacher -> capacity-10 student, soft labels"),
    Config("chain3_mixed", q_chain3_mixed, 3000, 18, "3-generation chain, alpha 0.3, geometric schedule"),
    Config("w2s_uniform_array", q_w2s_uniform_array, 4000, 19, "weak capacity-4 teacher -> student, array spectrum/schedule"),
]


def l_powerlaw_large() -> st.Scenario:
    return st.Scenario(_pl(1.5, 1.5, 300, 0.5, G),
                       (st.Model("m", steps=3000, schedule=st.StepDecay(0.5, 0.5, 500)),),
                       output=_out(0, 10, 100, 1000, 3000))


def l_kd_mixed_large() -> st.Scenario:
    prob = _pl(1.3, 1.7, 200, 1.0, U)
    return st.Scenario(prob, (
        st.Model("teacher", steps=3000, schedule=0.3, batch=4),
        st.Model("student", steps=2000, schedule=0.3, capacity=50, teacher="teacher", alpha=0.4),
    ), output=_out(0, 20, 200, 2000))


def l_chain4_rademacher() -> st.Scenario:
    prob = _pl(1.5, 2.0, 100, 0.5, R)
    models = [st.Model("g0", steps=1000, schedule=0.4)]
    for g in range(1, 4):
        models.append(st.Model(f"g{g}", steps=600, schedule=0.4, teacher=f"g{g - 1}", alpha=0.0))
    return st.Scenario(prob, tuple(models), output=_out(0, 10, 100, 600, 1000))


def l_near_edge() -> st.Scenario:
    prob = _pl(1.5, 2.0, 60, 0.2, G)
    m0 = st.Model("m", steps=1, schedule=0.1)
    lim = st.stability_limit(m0.speed_profile(prob.eigenvalues), 1, prob.kappa)
    return st.Scenario(prob, (st.Model("m", steps=1500, schedule=0.9 * lim),), output=_out(0, 10, 100, 1500))


LONG = [
    Config("powerlaw_large", l_powerlaw_large, 3000, 21, "d=300, step decay"),
    Config("kd_mixed_large", l_kd_mixed_large, 3000, 22, "d=200, alpha 0.4, capacity 50"),
    Config("chain4_rademacher", l_chain4_rademacher, 3000, 23, "4-generation chain, soft labels"),
    Config("near_edge", l_near_edge, 8000, 24, "constant step at 0.9 of the stability limit"),
]



# ----------------------------------------------------------------------------
# transfer builders (spectral_theory.transfer): each lineage of each comparison is
# checked against Monte Carlo (the metrics are functions of these curves)


def _lineages(name: str, build, reps: int, seed: int, covers: str) -> list[Config]:
    spec = build()
    return [Config(f"{name}/{lname}", (lambda scn=scn: scn), reps, seed + k, covers)
            for k, (lname, scn) in enumerate(spec.lineages().items())]


def t_kd_soft():
    prob = _pl(1.5, 2.0, 30, 0.5, G)
    return st.Distillation(prob, teacher=st.Model("T", steps=400, schedule=0.2, batch=2),
                           student=st.Model("S", steps=200, schedule=0.25, capacity=15), alpha=0.0,
                           output=_out(0, 5, 50, 200, 400))


def t_kd_mixed():
    prob = _pl(1.3, 1.8, 30, 0.5, U)
    return st.Distillation(prob, teacher=st.Model("T", steps=300, schedule=0.3),
                           student=st.Model("S", steps=200, schedule=0.3, capacity=10), alpha=0.4,
                           output=_out(0, 5, 50, 200, 300))


def t_w2s_capacity():
    prob = _pl(1.5, 2.0, 30, 1.0, G)
    return st.WeakToStrong(prob, weak=st.Model("W", steps=200, schedule=0.4, capacity=6),
                           strong=st.Model("S", steps=200, schedule=0.1), alpha=0.0,
                           output=_out(0, 5, 50, 200))


def t_w2s_budget():
    prob = _pl(1.5, 2.0, 30, 1.0, R)
    return st.WeakToStrong(prob, weak=st.Model("W", steps=30, schedule=0.4),
                           strong=st.Model("S", steps=300, schedule=0.05, batch=2), alpha=0.2,
                           output=_out(0, 3, 30, 300))


def t_chain4():
    prob = _pl(1.5, 2.0, 25, 0.5, G)
    return st.Chain(prob, base=st.Model("B", steps=200, schedule=0.3),
                    child=st.Model("C", steps=150, schedule=0.3, capacity=15), generations=4, alpha=0.0,
                    output=_out(0, 5, 50, 150, 200))


TRANSFER_QUICK = (
    _lineages("kd_soft", t_kd_soft, 2500, 31, "distillation, soft labels, capacity-15 student")
    + _lineages("kd_mixed", t_kd_mixed, 2500, 33, "distillation, alpha 0.4, kurtosis 1.8")
    + _lineages("w2s_capacity", t_w2s_capacity, 2500, 35, "weak-to-strong, weak capacity 6")
    + _lineages("w2s_budget", t_w2s_budget, 2500, 37, "weak-to-strong, weak budget 30 steps, alpha 0.2")
    + _lineages("chain4", t_chain4, 2500, 39, "4-generation chain, soft labels")
)
TRANSFER_SPECS = {"kd_soft": t_kd_soft, "kd_mixed": t_kd_mixed, "w2s_capacity": t_w2s_capacity,
                  "w2s_budget": t_w2s_budget, "chain4": t_chain4}



def t_kd_large():
    prob = _pl(1.5, 2.0, 200, 1.0, G)
    return st.Distillation(prob, teacher=st.Model("T", steps=3000, schedule=0.05, batch=4),
                           student=st.Model("S", steps=1000, schedule=0.2, capacity=100), alpha=0.0,
                           output=_out(0, 10, 100, 1000, 3000))


def t_w2s_large():
    prob = _pl(1.5, 2.0, 200, 1.0, U)
    return st.WeakToStrong(prob, weak=st.Model("W", steps=500, schedule=0.35, capacity=25),
                           strong=st.Model("S", steps=500, schedule=0.02), alpha=0.0,
                           output=_out(0, 10, 100, 500))


TRANSFER_LONG = (
    _lineages("kd_large", t_kd_large, 3000, 41, "distillation at d=200 (horizon expansion regime)")
    + _lineages("w2s_large", t_w2s_large, 3000, 43, "weak-to-strong at d=200 (denoising regime), uniform")
)

# SGD variants (docs/theory.md §10): averaging and momentum, kappa != 3, B > 1, an averaged teacher
def v_tail_heavy_ball() -> st.Scenario:
    return st.Scenario(_pl(1.5, 2.0, 30, 0.3, R), (st.Model(
        "m", steps=300, schedule=0.05, batch=2, momentum={"kind": "heavy_ball", "beta": 0.8},
        average={"kind": "tail", "fraction": 0.5}),), output=_out(0, 1, 10, 100, 200, 300))


def v_nesterov_ema_kurtosis() -> st.Scenario:
    return st.Scenario(_pl(1.3, 1.8, 25, 0.5, st.Features("kurtosis", kurtosis=5.0)), (st.Model(
        "m", steps=250, schedule=0.08, momentum={"kind": "nesterov", "beta": 0.7},
        average={"kind": "ema", "half_life": 20}),), output=_out(0, 2, 20, 100, 250))


def v_accelerated_uniform() -> st.Scenario:
    return st.Scenario(_pl(1.5, 2.0, 30, 0.2, U), (st.Model(
        "m", steps=300, schedule=0.2, batch=4, momentum={"kind": "accelerated", "alpha": 0.6, "beta": 0.05,
                                                         "gamma": 0.8},
        average={"kind": "uniform", "start": 150}),), output=_out(0, 5, 50, 150, 300))


def v_kd_averaged_teacher() -> st.Scenario:
    prob = _pl(1.5, 1.8, 30, 0.5, G)
    return st.Scenario(prob, (
        st.Model("teacher", steps=300, schedule=0.4, batch=2, average={"kind": "tail", "fraction": 0.5}),
        st.Model("student", steps=200, schedule=0.1, capacity=10, teacher="teacher", alpha=0.2,
                 momentum={"kind": "heavy_ball", "beta": 0.5})), output=_out(0, 5, 50, 200, 300))


VARIANT_QUICK = [
    Config("tail_heavy_ball", v_tail_heavy_ball, 3000, 51, "heavy-ball 0.8, tail average, kurtosis 1, B=2"),
    Config("nesterov_ema_kurtosis5", v_nesterov_ema_kurtosis, 3000, 52, "Nesterov 0.7, EMA half-life 20, kurtosis 5"),
    Config("accelerated_uniform", v_accelerated_uniform, 3000, 53, "Jain et al. accelerated SGD, Polyak average, B=4"),
    Config("kd_averaged_teacher", v_kd_averaged_teacher, 3000, 54, "tail-averaged teacher -> heavy-ball student"),
]


# ----------------------------------------------------------------------------
# random-feature (sketched) models at fixed sketches (docs/sketch.md): the quenched theory is
# exact for Gaussian data; several p/d ratios, both sketch laws, batch sizes, schedules, a chain
# of two different widths and a plain teacher with a sketched student


def s_wide_b1() -> st.Scenario:
    return st.Scenario(_pl(1.5, 1.8, 30, 0.3, G),
                       (st.Model("m", steps=200, schedule=0.3, features=st.RandomFeatures(60, seed=1)),),
                       output=_out(0, 1, 10, 100, 200))


def s_narrow_b4_stepdecay() -> st.Scenario:
    return st.Scenario(_pl(1.3, 1.6, 32, 0.5, G),
                       (st.Model("m", steps=200, schedule=st.StepDecay(0.8, 0.5, 70), batch=4,
                                 features=st.RandomFeatures(8, kind="orthogonal", seed=2)),),
                       output=_out(0, 2, 20, 100, 200))


def s_square_b2_poly() -> st.Scenario:
    return st.Scenario(_pl(2.0, 2.5, 25, 1.0, G),
                       (st.Model("m", steps=200, schedule=st.Polynomial(0.6, t0=20, power=1.0), batch=2,
                                 features=st.RandomFeatures(25, seed=3)),),
                       output=_out(0, 1, 5, 50, 200))


def s_chain_two_widths() -> st.Scenario:
    prob = _pl(1.5, 2.0, 30, 0.5, G)
    return st.Scenario(prob, (
        st.Model("wide", steps=200, schedule=0.3, batch=2, features=st.RandomFeatures(24, seed=4)),
        st.Model("narrow", steps=150, schedule=0.4, teacher="wide", alpha=0.2,
                 features=st.RandomFeatures(8, kind="orthogonal", seed=5)),
    ), output=_out(0, 3, 30, 150, 200))


def s_plain_teacher_sketched_student() -> st.Scenario:
    prob = _pl(1.4, 1.8, 30, 0.4, G)
    return st.Scenario(prob, (
        st.Model("teacher", steps=200, schedule=0.3),
        st.Model("student", steps=150, schedule=0.3, teacher="teacher", alpha=0.0,
                 features=st.RandomFeatures(12, seed=6)),
    ), output=_out(0, 5, 50, 150, 200))


SKETCH_QUICK = [
    Config("sketch_wide_b1", s_wide_b1, 2500, 61, "gaussian sketch p/d = 2, B=1, constant"),
    Config("sketch_narrow_b4_stepdecay", s_narrow_b4_stepdecay, 2500, 62, "orthogonal sketch p/d = 0.25, B=4, step decay"),
    Config("sketch_square_b2_poly", s_square_b2_poly, 2500, 63, "gaussian sketch p/d = 1, B=2, polynomial decay"),
    Config("sketch_chain_two_widths", s_chain_two_widths, 2500, 64, "sketched p=24 teacher -> p=8 student, alpha 0.2"),
    Config("sketch_plain_teacher", s_plain_teacher_sketched_student, 2500, 65, "plain teacher -> p=12 sketched student"),
]


TIERS = {"quick": QUICK + TRANSFER_QUICK + VARIANT_QUICK + SKETCH_QUICK,
         "long": QUICK + TRANSFER_QUICK + VARIANT_QUICK + SKETCH_QUICK + LONG + TRANSFER_LONG}
