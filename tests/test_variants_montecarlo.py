"""SGD variants against Monte Carlo (docs/theory.md §9, §10): every averaging kind, heavy-ball,
Nesterov, accelerated SGD, a general two-state update and a step-dependent beta; kappa != 3,
B > 1, and a chain whose teacher is averaged (the student learns from the average). Criterion:
|theory - MC| <= 4 SE + 1e-12 at every reported step, for the deployed predictor's risk, the
disagreement with the teacher and the averaged models' last iterate."""

from __future__ import annotations

import warnings

import pytest

import spectral_theory as st
from spectral_theory.analysis.checks import check_against_simulation

pytestmark = pytest.mark.montecarlo

PROB = st.Problem(st.PowerLawSpectrum(a=1.5, d=8), st.PowerLawTarget(b=2.0), noise=0.3,
                  features=st.Features("rademacher"))
PROB_U = st.Problem(st.PowerLawSpectrum(a=1.2, d=6), st.PowerLawTarget(b=1.5), noise=0.2,
                    features=st.Features("kurtosis", 5.0))

CASES = {
    "uniform_heavy_ball": (PROB, [dict(steps=60, schedule=0.25, batch=2, average={"kind": "uniform", "start": 10},
                                       momentum={"kind": "heavy_ball", "beta": 0.5})]),
    "tail_nesterov": (PROB_U, [dict(steps=50, schedule=0.2, batch=3, average={"kind": "tail", "fraction": 0.4},
                                    momentum={"kind": "nesterov", "beta": 0.6})]),
    "ema_accelerated": (PROB, [dict(steps=50, schedule=0.3, average={"kind": "ema", "half_life": 5},
                                    momentum={"kind": "accelerated", "alpha": 0.7, "beta": 0.2, "gamma": 0.6})]),
    "weights_general": (PROB_U, [dict(steps=20, schedule=st.StepDecay(0.3, 0.5, 8), batch=2,
                                      average={"kind": "weights", "values": list(range(21))},
                                      momentum={"kind": "general", "r": 1.2, "p_e": 1.3, "p_v": 0.8,
                                                "k_v": 0.3})]),
    "beta_schedule": (PROB, [dict(steps=40, schedule=0.2, batch=4,
                                  momentum={"kind": "heavy_ball", "beta": [0.8 * t / 40 for t in range(40)]})]),
    "chain_averaged_teacher": (PROB, [
        dict(steps=60, schedule=0.3, batch=2, average={"kind": "tail", "last": 30}),
        dict(steps=40, schedule=0.25, teacher="m0", alpha=0.2, capacity=5,
             momentum={"kind": "heavy_ball", "beta": 0.3}),
        dict(steps=30, schedule=0.25, teacher="m1", alpha=0.0, average={"kind": "uniform", "start": 1})]),
}


@pytest.mark.parametrize("name", list(CASES))
def test_variants_agree_with_monte_carlo(name):
    prob, specs = CASES[name]
    models = tuple(st.Model(f"m{g}", **kw) for g, kw in enumerate(specs))
    scn = st.Scenario(prob, models, output=st.Output(at=(0, 1, 5, 20, 30, 40, 60)), name=name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        chk = check_against_simulation(scn, reps=3000, seed=13)
    assert chk.passed, chk.table()
    qty = {r["quantity"] for r in chk.rows}
    assert "excess_risk" in qty
    if any(kw.get("average") for kw in specs):
        assert "last_iterate" in qty
