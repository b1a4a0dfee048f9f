"""Monte Carlo simulator: latent laws, reproducibility, result schema, and the
statistical power of the theory-vs-MC criterion (a negative control)."""

import math

import numpy as np
import pytest

import spectral_theory as st
from spectral_theory.analysis.checks import check_against_simulation, sign_test
from spectral_theory.montecarlo import sample_latent


@pytest.mark.parametrize("features", [st.Features("gaussian"), st.Features("rademacher"),
                                      st.Features("uniform"), st.Features("kurtosis", kurtosis=4.0)])
def test_latent_moments(features):
    z = sample_latent(np.random.default_rng(0), features, (400_000,))
    n = z.size
    # mean 0, variance 1, fourth moment kappa, each within 5 standard errors
    assert abs(z.mean()) < 5 / math.sqrt(n)
    assert abs((z**2).mean() - 1) <= 5 * np.std(z**2) / math.sqrt(n) + 1e-12
    assert abs((z**4).mean() - features.kappa) <= 5 * np.std(z**4) / math.sqrt(n) + 1e-12


def small_chain():
    prob = st.Problem(st.PowerLawSpectrum(a=1.5, d=12), st.PowerLawTarget(b=2.0), noise=0.3)
    return st.Scenario(prob, (st.Model("t", steps=60, schedule=0.4),
                              st.Model("s", steps=40, schedule=0.3, teacher="t", alpha=0.5, capacity=5)),
                       output=st.Output(at=(0, 10, 40, 60)))


def test_seeded_and_same_schema_as_theory():
    sc = small_chain()
    a = st.simulate(sc, reps=200, seed=5)
    b = st.simulate(sc, reps=200, seed=5)
    c = st.simulate(sc, reps=200, seed=6)
    np.testing.assert_array_equal(a["s"].excess_risk, b["s"].excess_risk)
    assert not np.array_equal(a["s"].excess_risk, c["s"].excess_risk)
    th = st.predict(sc)
    assert type(a) is type(th)
    for name in ("t", "s"):
        np.testing.assert_array_equal(a[name].steps, th[name].steps)
    np.testing.assert_array_equal(a["t"].steps, [0, 10, 40, 60])
    np.testing.assert_array_equal(a["s"].steps, [0, 10, 40])
    # step 0: phi = 0, so the risk is exactly sum theta^2 in every replicate: a deterministic
    # quantity, whose standard error is exactly 0 (it was 1e-17 from rounding) and whose
    # bootstrap interval is the point
    assert a["t"].excess_risk[0] == pytest.approx(sc.problem.theta2.sum(), rel=1e-14)
    for name in ("t", "s"):
        assert a[name].excess_risk_se[0] == 0.0
        assert a[name].excess_risk_ci_low[0] == a[name].excess_risk_ci_high[0] == a[name].excess_risk[0]
        assert np.all(a[name].excess_risk_ci_low[1:] < a[name].excess_risk[1:])
        assert np.all(a[name].excess_risk[1:] < a[name].excess_risk_ci_high[1:])
    d = a.to_dict()
    assert d["reps"] == 200 and "excess_risk_se" in d["models"]["s"] and d["ci_level"] == 0.95
    assert d["models"]["t"]["excess_risk_se"][0] == 0.0
    assert {"excess_risk_ci_low", "excess_risk_ci_high", "disagreement_ci_low",
            "disagreement_ci_high"} <= set(d["models"]["s"])
    assert "95% interval" in a.table() and "excess_risk_ci_high" in a.to_csv().splitlines()[0]
    assert a["s"].disagreement is not None and a["s"].disagreement_se is not None


@pytest.mark.montecarlo
def test_check_passes_on_small_chain():
    chk = check_against_simulation(small_chain(), reps=3000, seed=1)
    assert chk.passed, chk.table()


@pytest.mark.montecarlo
def test_negative_control_wrong_kurtosis_is_rejected():
    """The criterion has power: theory computed with the wrong kurtosis (3 instead of
    Rademacher's 1) at batch 1 with a large step is rejected by Monte Carlo."""
    prob_true = st.Problem(st.PowerLawSpectrum(a=1.2, d=20), st.PowerLawTarget(b=1.5), noise=0.5,
                           features=st.Features("rademacher"))
    prob_wrong = st.Problem(st.PowerLawSpectrum(a=1.2, d=20), st.PowerLawTarget(b=1.5), noise=0.5,
                            features=st.Features("gaussian"))
    model = st.Model("m", steps=200, schedule=0.4)
    at = [50, 100, 200]
    mc = st.simulate(st.Scenario(prob_true, (model,)), at=at, reps=3000, seed=3)
    wrong = st.predict(st.Scenario(prob_wrong, (model,)), at=at)
    right = st.predict(st.Scenario(prob_true, (model,)), at=at)
    z_wrong = (mc["m"].excess_risk - wrong["m"].excess_risk) / mc["m"].excess_risk_se
    z_right = (mc["m"].excess_risk - right["m"].excess_risk) / mc["m"].excess_risk_se
    assert np.all(np.abs(z_right) <= 4)
    assert np.max(np.abs(z_wrong)) > 8


def test_sign_test():
    assert sign_test([1, -1, 2, -2])["p_value"] == 1.0
    assert sign_test([1.0] * 10)["p_value"] == pytest.approx(2 / 1024)


def test_bad_reps_and_seed():
    with pytest.raises(st.SpecError, match="reps"):
        st.simulate(small_chain(), reps=1)
    with pytest.raises(st.SpecError, match="seed"):
        st.simulate(small_chain(), reps=10, seed=-1)
