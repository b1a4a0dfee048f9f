"""Honest Monte Carlo errors (issue 8, "What to build" 4; ``docs/montecarlo.md``, "Uncertainty"):
exact zeros where a quantity is deterministic, bootstrap intervals next to the standard error,
the heavy-tail warning, intervals of transfer-report metrics, no non-finite number in a result,
the cost estimate, the progress bar and the cost note, and ``checks.compare``."""

from __future__ import annotations

import json
import math
import time
import warnings

import numpy as np
import pytest
from scipy import stats

import spectral_theory as st
from spectral_theory import montecarlo
from spectral_theory.analysis.checks import compare
from spectral_theory.montecarlo import (
    HeavyTailWarning,
    bootstrap_means,
    estimate_simulation_seconds,
    mean_interval,
    skewness_check,
)


def quiet_simulate(sc, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", HeavyTailWarning)
        return st.simulate(sc, **kw)


def small_chain():
    prob = st.Problem(st.PowerLawSpectrum(a=1.5, d=12), st.PowerLawTarget(b=2.0), noise=0.3)
    return st.Scenario(prob, (st.Model("t", steps=60, schedule=0.4),
                              st.Model("s", steps=40, schedule=0.3, teacher="t", alpha=0.5, capacity=5)),
                       output=st.Output(at=(0, 10, 40, 60)))


def heavy_scenario(reported=(300,)):
    """A cheap analogue of the issue's hard-label student: batch 1, unit label noise, a step at
    0.54 of the stability limit (0.56 here); the per-replicate risk has a heavy right tail."""
    prob = st.Problem(st.PowerLawSpectrum(a=1.5, d=40), st.PowerLawTarget(b=2.0), noise=1.0)
    return st.Scenario(prob, (st.Model("m", steps=300, schedule=0.3, capacity=20),), output=st.Output(at=reported))


def light_scenario():
    """40 equal modes, batch 8, a small step: the risk is a sum of many comparable terms."""
    d = 40
    prob = st.Problem(st.ArraySpectrum(np.full(d, 1.0 / d)), st.ArrayTarget(np.full(d, 1.0 / d)), noise=0.5)
    return st.Scenario(prob, (st.Model("m", steps=100, schedule=0.5, batch=8),), output=st.Output(at=(0, 20, 100)))


def issue_hard_lineage():
    """The hard-label student of examples/transfer.toml (README's kd example), as `kd --simulate`
    simulates it (its own lineage), with the steps the report asks for."""
    from conftest import EXAMPLES

    from spectral_theory.spec import read_scenario_file
    from spectral_theory.transfer import transfer_from_dict
    from spectral_theory.transfer.report import with_final

    spec = transfer_from_dict(read_scenario_file(EXAMPLES / "transfer.toml"), kind="kd", overrides={},
                              name="transfer")
    hard = spec.lineages()["hard"]
    return hard, with_final(hard)


# ---------------------------------------------------------------------------- exact zeros
def test_deterministic_quantities_have_exactly_zero_standard_error():
    sc = small_chain()
    mc = quiet_simulate(sc, reps=300, seed=2)
    theta2 = sc.problem.theta2
    for name in ("t", "s"):
        m = mc[name]
        assert m.steps[0] == 0
        # step 0: phi = 0 in every replicate, so every replicate has the same risk, bit for bit
        assert m.excess_risk_se[0] == 0.0
        assert m.excess_risk[0] == m.excess_risk_ci_low[0] == m.excess_risk_ci_high[0]
        assert m.excess_risk[0] == pytest.approx(theta2.sum(), rel=1e-14)
        assert np.all(m.excess_risk_se[1:] > 0)
        rep = m.replicates
        assert np.all(rep.excess_risk[0] == rep.excess_risk[0, 0])
    # the student's disagreement at step 0 is its teacher's norm: random, so a positive SE
    assert mc["s"].disagreement_se[0] > 0
    # modes the student cannot learn (capacity 5) keep e_i = -theta_i in every replicate
    se = mc["s"].modes.second_moment_se
    assert np.all(se[5:] == 0.0) and np.all(se[:5] > 0)
    np.testing.assert_array_equal(mc["s"].modes.second_moment[5:], np.sqrt(theta2[5:]) ** 2)
    assert json.loads(mc.to_json())["models"]["t"]["excess_risk_se"][0] == 0.0


def test_streaming_per_mode_moments_when_replicates_are_not_kept(monkeypatch):
    """Above MAX_REPLICATE_MODES the per-mode moments are accumulated block by block: the same
    numbers (to rounding) and the same exact zeros."""
    sc = small_chain()
    monkeypatch.setattr(montecarlo, "_BLOCK_ELEMENTS", 12 * 70)  # 70 replicates a block: 5 blocks
    kept = quiet_simulate(sc, reps=300, seed=2)
    monkeypatch.setattr(montecarlo, "MAX_REPLICATE_MODES", 0)
    streamed = quiet_simulate(sc, reps=300, seed=2)
    assert streamed.diagnostics["blocks"] == 5 and not streamed.diagnostics["replicate_modes_kept"]
    assert streamed["s"].replicates.final_sq_error is None
    for name in ("t", "s"):
        a, b = kept[name].modes, streamed[name].modes
        assert a.second_moment != pytest.approx(0)
        np.testing.assert_allclose(b.second_moment, a.second_moment, rtol=1e-12)
        np.testing.assert_allclose(b.second_moment_se, a.second_moment_se, rtol=1e-9)
    assert np.all(streamed["s"].modes.second_moment_se[5:] == 0.0)


# ---------------------------------------------------------------------------- the bootstrap
def _direct_bootstrap_t(x, level, resamples, rng):
    """Bootstrap-t for a mean, written out: resample indices, Student statistic per resample."""
    R = x.size
    m, se = x.mean(), x.std(ddof=1) / math.sqrt(R)
    t = np.empty(resamples)
    for b in range(resamples):
        xb = x[rng.integers(0, R, R)]
        seb = xb.std(ddof=1) / math.sqrt(R)
        t[b] = (xb.mean() - m) / (seb if seb > 0 else se)
    a = (1 - level) / 2
    return m - np.quantile(t, 1 - a) * se, m - np.quantile(t, a) * se


def test_bootstrap_t_interval_matches_a_direct_computation():
    x = np.random.default_rng(7).lognormal(0.0, 1.0, 150)  # right-skewed
    lo, hi = mean_interval(x, resamples=20000, seed=3)
    dlo, dhi = _direct_bootstrap_t(x, 0.95, 20000, np.random.default_rng(11))
    width = dhi - dlo
    assert abs(lo - dlo) < 0.03 * width and abs(hi - dhi) < 0.03 * width, (lo, hi, dlo, dhi)
    m = x.mean()
    assert hi - m > m - lo  # a right tail stretches the upper end
    # on Gaussian data the bootstrap-t interval is the Student interval
    g = np.random.default_rng(8).standard_normal((3, 400)) + 5.0
    lo, hi = mean_interval(g, resamples=20000, seed=1)
    for k in range(3):
        ref = stats.t.interval(0.95, g.shape[1] - 1, loc=g[k].mean(), scale=stats.sem(g[k]))
        assert lo[k] == pytest.approx(ref[0], abs=0.05 * (ref[1] - ref[0]))
        assert hi[k] == pytest.approx(ref[1], abs=0.05 * (ref[1] - ref[0]))
    # a deterministic row, two replicates, huge values: finite, and exact where it must be
    lo, hi = mean_interval(np.array([[2.0, 2.0, 2.0], [1.0, 3.0, 2.0]]))
    assert lo[0] == hi[0] == 2.0 and lo[1] < 2.0 < hi[1]
    lo, hi = mean_interval(np.array([1.0, 2.0]))
    assert math.isfinite(lo) and math.isfinite(hi)
    lo, hi = mean_interval(np.array([1e300, 1.5e302, 3e301]))
    assert math.isfinite(lo) and math.isfinite(hi) and lo < 6.03e301 < hi


def test_bootstrap_means_agrees_with_scipy_and_resamples_groups_independently():
    rng = np.random.default_rng(0)
    x = rng.exponential(1.0, 300)
    draws = bootstrap_means([{"x": x}], lambda ms: ms[0]["x"], seeds=[5], resamples=20000)
    ours = np.quantile(draws, [0.025, 0.975])
    ref = stats.bootstrap((x,), np.mean, method="percentile", n_resamples=20000,
                          rng=np.random.default_rng(1)).confidence_interval
    width = ref.high - ref.low
    assert abs(ours[0] - ref.low) < 0.03 * width and abs(ours[1] - ref.high) < 0.03 * width
    # two arrays of one group stay paired; two groups are resampled independently
    a = rng.standard_normal(500)
    d = bootstrap_means([{"u": a, "v": 2 * a}, {"w": a.copy()}],
                        lambda ms: np.stack([ms[0]["u"], ms[0]["v"], ms[1]["w"]], axis=1),
                        seeds=[1, 2], resamples=4000)
    np.testing.assert_allclose(d[:, 1], 2 * d[:, 0], rtol=1e-12)
    assert abs(np.corrcoef(d[:, 0], d[:, 2])[0, 1]) < 0.1
    # reproducible from the seed
    again = bootstrap_means([{"x": x}], lambda ms: ms[0]["x"], seeds=[5], resamples=20000)
    np.testing.assert_array_equal(draws, again)


def test_skewness_check_is_cochrans_rule():
    x = np.random.default_rng(2).exponential(1.0, (2, 80))
    g1, needed = skewness_check(x)
    np.testing.assert_allclose(g1, stats.skew(x, axis=1, bias=False), rtol=1e-10)
    np.testing.assert_array_equal(needed, np.ceil(25 * g1**2))
    g1, needed = skewness_check(np.full((1, 10), 3.0))
    assert g1[0] == 0.0 and needed[0] == 0.0


# ---------------------------------------------------------------------------- heavy tails
@pytest.mark.montecarlo
def test_issue_example_warns_and_the_bootstrap_reaches_further():
    """`kd --simulate --reps 60` on examples/transfer.toml: the hard-label student's lineage.
    With seed 2 (the lineage seed of `--seed 1`) the simulation reproduces the issue's numbers,
    0.609 +- 0.044 against the exact 0.793 (z = -4.2); the heavy-tail warning fires, and the
    bootstrap interval reaches further toward the exact value than the normal one. With seed 1
    (the default `--seed 0`) the warning fires too and the bootstrap interval covers it."""
    hard, at = issue_hard_lineage()
    exact = st.predict(hard, at=at)["hard_student"].excess_risk
    for seed in (1, 2):
        with pytest.warns(HeavyTailWarning, match=r"model 'hard_student': the per-replicate excess risk "
                                                  r"is heavy-tailed: at 60 replicates") as caught:
            mc = st.simulate(hard, at=at, reps=60, seed=seed)
        m = mc["hard_student"]
        assert caught[0].filename == __file__
        msg = [str(w.message) for w in caught if issubclass(w.category, HeavyTailWarning)]
        assert msg == [w for w in mc.diagnostics["warnings"] if "heavy-tailed" in w]
        assert "excess_risk" in mc.diagnostics["heavy_tail"]["hard_student"]
        normal_hi = m.excess_risk[-1] + 1.96 * m.excess_risk_se[-1]
        assert m.excess_risk_ci_high[-1] > normal_hi
        z = (m.excess_risk[-1] - exact[-1]) / m.excess_risk_se[-1]
        if seed == 2:
            assert m.excess_risk[-1] == pytest.approx(0.609, abs=5e-4) and z == pytest.approx(-4.2, abs=0.05)
            assert mc.diagnostics["heavy_tail"]["hard_student"]["excess_risk"]["steps"] == [100, 2000]
        else:
            assert m.excess_risk_ci_low[-1] <= exact[-1] <= m.excess_risk_ci_high[-1]


@pytest.mark.slow
@pytest.mark.montecarlo
def test_issue_example_report_at_60_replicates():
    """`kd --simulate --reps 60` on examples/transfer.toml (about 35 s): every interval of the
    report covers the exact value (the horizons thanks to their bands: the bootstrap alone gave
    [198, 245] for the teacher's exact 185)."""
    from conftest import EXAMPLES

    from spectral_theory.spec import read_scenario_file
    from spectral_theory.transfer import transfer_from_dict

    spec = transfer_from_dict(read_scenario_file(EXAMPLES / "transfer.toml"), kind="kd", overrides={},
                              name="transfer")
    th = st.evaluate(spec)
    with pytest.warns(HeavyTailWarning):
        mc = st.evaluate(spec, simulate=True, reps=60, seed=0, progress=False)
    for key in ("kd_gain", "teacher_horizon", "kd_horizon", "hard_horizon", "horizon_expansion"):
        assert _inside(mc[f"{key}_ci"], th[key]), (key, mc[f"{key}_ci"], th[key])
    for name in ("teacher", "kd_student", "hard_student"):
        assert _inside(mc.models[name].final_ci, th.models[name].final_risk), name


@pytest.mark.montecarlo
def test_bootstrap_covers_more_honestly_and_the_warning_fires_at_60_replicates():
    """100 independent groups of 60 replicates of a heavy-tailed risk: the normal interval
    covers the exact value in 88 of them, the bootstrap-t interval in 91; the heavy-tail rule
    flags 89 groups, and the groups it does not flag are those that missed the tail."""
    sc = heavy_scenario()
    exact = st.predict(sc)["m"].final
    mc = quiet_simulate(sc, reps=6000, seed=2)
    x = mc["m"].replicates.excess_risk[-1].reshape(100, 60)
    m, se = x.mean(axis=1), x.std(axis=1, ddof=1) / math.sqrt(60)
    lo, hi = mean_interval(x, seed=5)
    normal = np.mean(np.abs(m - exact) <= 1.96 * se)
    boot = np.mean((lo <= exact) & (exact <= hi))
    _, needed = skewness_check(x)
    fires = np.mean(60 < needed)
    assert boot >= normal + 0.02 and normal < 0.93, (normal, boot)
    assert fires >= 0.8, fires
    assert mc["m"].excess_risk_ci_low[-1] <= exact <= mc["m"].excess_risk_ci_high[-1]


def test_no_warning_on_a_light_tailed_case():
    sc = light_scenario()
    for reps, seed in ((60, 0), (60, 1), (500, 2)):
        with warnings.catch_warnings():
            warnings.simplefilter("error", HeavyTailWarning)
            mc = st.simulate(sc, reps=reps, seed=seed)
        assert "heavy_tail" not in mc.diagnostics and mc.diagnostics["warnings"] == []
        g1, _ = skewness_check(mc["m"].replicates.excess_risk[1:])
        assert np.all(np.abs(g1) < 1.0)


# ---------------------------------------------------------------------------- transfer reports
def kd_spec():
    prob = st.Problem(st.PowerLawSpectrum(a=1.5, d=20), st.PowerLawTarget(b=2.0), noise=0.5)
    return st.Distillation(prob, teacher=st.Model("T", steps=200, schedule=0.2),
                           student=st.Model("S", steps=100, schedule=0.3, capacity=10), alpha=0.0,
                           output=st.Output(at=(0, 20, 50, 80, 100, 150, 200)))


def w2s_spec():
    prob = st.Problem(st.PowerLawSpectrum(a=1.5, d=20), st.PowerLawTarget(b=1.5), noise=1.0)
    return st.WeakToStrong(prob, weak=st.Model("W", steps=150, schedule=0.3),
                           strong=st.Model("S", steps=150, schedule=0.1), alpha=0.0,
                           output=st.Output(at=(0, 25, 50, 75, 100, 150)))


def _inside(ci, value, widen=1.0):
    """``value`` in ``ci`` widened ``widen`` times about its centre."""
    c, h = (ci[0] + ci[1]) / 2, (ci[1] - ci[0]) / 2
    return c - widen * h - 1e-12 <= value <= c + widen * h + 1e-12


def _check_coverage(pairs, what):
    """95% intervals: each one within twice its half-width of the exact value (a miss by more
    is a bug, not chance), and most of them covering it."""
    far = [(k, ci, v) for k, ci, v in pairs if not _inside(ci, v, widen=2.0)]
    assert not far, (what, far)
    covered = sum(_inside(ci, v) for _, ci, v in pairs)
    assert covered >= 0.8 * len(pairs), (what, covered, len(pairs),
                                         [(k, ci, v) for k, ci, v in pairs if not _inside(ci, v)])
    return covered


@pytest.mark.montecarlo
def test_transfer_report_intervals_cover_the_exact_metrics():
    spec = kd_spec()
    th = st.evaluate(spec)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", HeavyTailWarning)
        mc = st.evaluate(spec, simulate=True, reps=2000, seed=4)
    pairs = [(key, mc[f"{key}_ci"], th[key]) for key in
             ("kd_gain", "kd_gain_difference", "teacher_horizon", "kd_horizon", "hard_horizon",
              "horizon_expansion")]
    assert isinstance(mc["kd_horizon_ci"][0], int)
    # oracle over the reported steps: the theory's argmin over the same steps
    for scn in spec.lineages().values():
        at = sorted({*scn.output.at, *(m.steps for m in scn.models)})
        thr = st.predict(scn, at=at)
        for m in scn.models:
            curve = thr[m.name].excess_risk
            s = mc.models[m.name]
            pairs += [(f"{m.name}.oracle_step", s.oracle_step_ci, int(thr[m.name].steps[int(np.argmin(curve))])),
                      (f"{m.name}.oracle_risk", s.oracle_risk_ci, float(curve.min())),
                      (f"{m.name}.final", s.final_ci, float(curve[-1])),
                      (f"{m.name}.horizon", s.horizon_ci, th.models[m.name].horizon)]
    _check_coverage(pairs, "kd")
    d = json.loads(mc.to_json())
    assert d["metrics"]["kd_gain_ci"] == mc["kd_gain_ci"] and d["metrics"]["uncertainty"]["level"] == 0.95
    assert d["models"]["hard_student"]["horizon_ci"] == mc.models["hard_student"].horizon_ci
    assert "bootstrap intervals" in mc.table() and "kd_gain_ci" in mc.table()
    # theory reports carry no intervals
    assert "kd_gain_ci" not in th.metrics and th.models["kd_student"].horizon_ci is None


@pytest.mark.montecarlo
def test_w2s_and_chain_report_intervals():
    spec = w2s_spec()
    th = st.evaluate(spec)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", HeavyTailWarning)
        mc = st.evaluate(spec, simulate=True, reps=1500, seed=1)
    pairs = [(key, mc[f"{key}_ci"], th[key]) for key in ("pgr", "weak_horizon", "w2s_horizon", "ceiling_horizon")]
    assert mc["w2s_oracle_step_ci"][0] <= mc["w2s_oracle_step"] <= mc["w2s_oracle_step_ci"][1]
    chain = st.Chain(spec.problem, base=spec.strong, generations=3, output=spec.output)
    tc = st.evaluate(chain)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", HeavyTailWarning)
        mcc = st.evaluate(chain, simulate=True, reps=800, seed=2)
    assert len(mcc["generation_horizon_ci"]) == 3 and len(mcc["generation_growth_ci"]) == 2
    for key in ("generation_risk", "generation_growth", "generation_horizon"):
        pairs += [(f"{key}[{g}]", ci, tc[key][g]) for g, ci in enumerate(mcc[f"{key}_ci"])]
    pairs.append(("final_over_first", mcc["final_over_first_ci"], tc["final_over_first"]))
    _check_coverage(pairs, "w2s and chain")


def test_report_metric_cores_reproduce_the_report_values():
    """The interval formulas (uncertainty.METRIC_CORES) are the report's formulas: evaluated on
    the point estimates they give the report's own numbers."""
    from types import SimpleNamespace

    from spectral_theory.transfer.uncertainty import METRIC_CORES

    for spec in (kd_spec(), w2s_spec(), st.Chain(kd_spec().problem, base=kd_spec().student, generations=3)):
        rep = st.evaluate(spec)
        s = {n: SimpleNamespace(final_risk=np.float64(m.final_risk), oracle_risk=np.float64(m.oracle_risk),
                                oracle_step=np.int64(m.oracle_step), horizon=np.int64(m.horizon))
             for n, m in rep.models.items()}
        for key, value in METRIC_CORES[spec.kind](s, True).items():
            ref = rep[key]
            if isinstance(ref, list):
                np.testing.assert_allclose(np.asarray(value, dtype=float), ref, rtol=1e-14, err_msg=key)
            else:
                assert float(value) == pytest.approx(ref, rel=1e-14), key


def test_horizon_band_brackets_a_noisy_largest_index():
    """A normalised error crossing 1/2 slowly: with noisy per-mode means the largest index below
    1/2 lands past the true horizon; the band of modes within 2 SE of 1/2 brackets the truth."""
    from spectral_theory.transfer.uncertainty import horizon_band

    d = 200
    theta2 = np.arange(1, d + 1, dtype=float) ** -2.0
    norm = np.linspace(0.2, 0.8, d)  # true horizon: the last mode with norm <= 1/2
    true_h = int(np.flatnonzero(norm <= 0.5)[-1] + 1)
    se = 0.1 * norm * theta2
    noisy = norm * theta2 + se * np.random.default_rng(0).standard_normal(d)
    est = st.spectral_horizon(noisy, theta2)
    lo, hi = horizon_band(noisy, se, theta2)
    assert est > true_h and lo <= true_h <= hi < d
    assert horizon_band(norm * theta2, 0 * se, theta2) == [true_h, true_h]


def test_horizon_intervals_not_available_above_the_memory_bound(monkeypatch):
    monkeypatch.setattr(montecarlo, "MAX_REPLICATE_MODES", 100)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", HeavyTailWarning)
        mc = st.evaluate(kd_spec(), simulate=True, reps=50, seed=0, progress=False)
    assert "not available" in mc["uncertainty"]["horizons"]
    assert "kd_horizon_ci" not in mc.metrics and "kd_gain_ci" in mc.metrics
    assert mc.models["kd_student"].horizon_ci is None and mc.models["kd_student"].oracle_step_ci is not None


# ---------------------------------------------------------------------------- no non-finite numbers
def _numbers(obj, path=""):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _numbers(v, f"{path}.{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _numbers(v, f"{path}[{i}]")
    else:
        yield path, obj


def test_no_non_finite_number_reaches_a_monte_carlo_result():
    prob = st.Problem(st.PowerLawSpectrum(a=1.5, d=20), st.PowerLawTarget(b=2.0), noise=0.3)
    # lr = 5 (9x the limit) for 200 steps: risks near 1e187, finite; their squares are not, so the
    # standard error used to be written as the string "inf"
    sc = st.Scenario(prob, (st.Model("m", steps=200, schedule=5.0),), output=st.Output(at=(0, 100, 200)))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no numpy overflow warning either
        warnings.simplefilter("ignore", HeavyTailWarning)
        mc = st.simulate(sc, reps=50, seed=0, on_unstable="ignore")
    assert mc["m"].final > 1e150
    doc = mc.to_dict(modes=True)
    for path, v in _numbers({"models": doc["models"], "disagreement": doc["disagreement"]}):
        assert v not in ("inf", "-inf", "nan"), path
        if isinstance(v, float):
            assert math.isfinite(v), path
        assert v is not None, path
    assert "inf" not in mc.to_csv() and "Infinity" not in mc.to_json() and "NaN" not in mc.to_json()
    # longer, the weights overflow: an error naming the model, never a result
    sc = st.Scenario(prob, (st.Model("m", steps=400, schedule=5.0),))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        with pytest.raises(st.InstabilityError, match="overflowed") as info:
            st.simulate(sc, reps=4, on_unstable="ignore")
    assert info.value.model == "m"


def test_huge_but_finite_replicates_give_finite_statistics():
    x = np.array([[1e307, 1.7e308, 5e307, 1e306], [1e-300, 0.0, 2e-300, 5e-301]])
    mean, se, det = montecarlo.mean_se(x)
    assert np.all(np.isfinite(mean)) and np.all(np.isfinite(se)) and not det.any()
    assert mean[0] == pytest.approx(np.mean(x[0] / 1e300) * 1e300, rel=1e-12)


# ---------------------------------------------------------------------------- cost, progress, note
def _timed(sc, reps):
    best = math.inf
    for _ in range(2):
        t0 = time.process_time()  # CPU time: a loaded CI machine stretches the wall time only
        quiet_simulate(sc, reps=reps, seed=0, progress=False)
        best = min(best, time.process_time() - t0)
    return best


@pytest.mark.parametrize("size", ["wide", "long"])
def test_cost_estimate_within_a_factor_3(size):
    if size == "wide":  # many coordinates per step: the sampling and the products dominate
        prob = st.Problem(st.PowerLawSpectrum(a=1.5, d=300), st.PowerLawTarget(b=2.0), noise=0.5)
        sc, reps = st.Scenario(prob, (st.Model("m", steps=120, schedule=0.1, batch=2),)), 400
    else:  # few coordinates, many steps: the per-step overhead dominates
        prob = st.Problem(st.PowerLawSpectrum(a=1.5, d=8), st.PowerLawTarget(b=2.0), noise=0.5,
                          features=st.Features("rademacher"))
        sc, reps = st.Scenario(prob, (st.Model("t", steps=2500, schedule=0.2),
                                      st.Model("s", steps=1500, schedule=0.2, teacher="t"))), 40
    est = estimate_simulation_seconds(sc, reps)
    measured = _timed(sc, reps)
    assert measured / 3 <= est <= 3 * measured, (est, measured)


def test_estimate_needs_no_allocation_and_checks_its_arguments():
    prob = st.Problem(st.PowerLawSpectrum(a=1.5, d=10**9), st.PowerLawTarget(b=2.0), noise=0.5)
    sc = st.Scenario(prob, (st.Model("m", steps=10**6, schedule=0.1),))
    t0 = time.process_time()
    est = estimate_simulation_seconds(sc, 1000)
    assert est > 1e9 and time.process_time() - t0 < 1.0  # CPU seconds: no d-sized work
    with pytest.raises(st.SpecError, match="reps"):
        estimate_simulation_seconds(sc, 0)
    with pytest.raises(st.SpecError, match="scenario"):
        estimate_simulation_seconds("nope", 10)


def test_progress_bar_shows_an_eta_and_the_note_comes_first(capsys, monkeypatch):
    monkeypatch.setattr(montecarlo, "NOTE_SECONDS", 0.0)
    quiet_simulate(small_chain(), reps=200, seed=0, progress=True)
    err = capsys.readouterr().err
    assert err.startswith("spectral-theory: note: this simulation will take about ")
    assert "(200 replicates, d = 12, 100 steps over 2 models;" in err
    bar = err.split("\n", 1)[1]
    assert bar.startswith("\rsimulate [") and "100%" in bar and "elapsed, about" in bar and "left" in bar
    assert bar.endswith("\n")
    # progress=False: silent
    quiet_simulate(small_chain(), reps=20, seed=0, progress=False)
    assert capsys.readouterr().err == ""
    # a transfer report: one note and one bar over all its lineages
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", HeavyTailWarning)
        st.evaluate(kd_spec(), simulate=True, reps=30, seed=0, progress=True)
    err = capsys.readouterr().err
    assert err.count("spectral-theory: note:") == 1 and "30 replicates of 2 lineages" in err
    assert err.count("\n") == 2 and "simulate kd [" in err and "100%" in err


def test_no_note_below_the_threshold(capsys):
    quiet_simulate(small_chain(), reps=20, seed=0)
    assert capsys.readouterr().err == ""  # not a terminal, estimated well below NOTE_SECONDS


# ---------------------------------------------------------------------------- compare
def test_compare_table_has_theory_mc_se_interval_and_z():
    chk = compare(small_chain(), reps=400, seed=3)
    keys = {"model", "quantity", "step", "theory", "mc", "se", "ci_low", "ci_high", "z", "ok", "covered",
            "heavy_tailed"}
    assert all(keys <= set(r) for r in chk.rows)
    th = st.predict(small_chain())
    row = next(r for r in chk.rows if r["model"] == "t" and r["step"] == 60)
    assert row["theory"] == pytest.approx(th["t"].at(60), rel=1e-14)
    assert row["ci_low"] < row["mc"] < row["ci_high"]
    assert row["z"] == pytest.approx((row["mc"] - row["theory"]) / (row["se"] + 1e-12 / 4))
    step0 = next(r for r in chk.rows if r["model"] == "t" and r["step"] == 0)
    assert step0["se"] == 0.0 and step0["covered"] and step0["ok"]
    table = chk.table()
    assert "95% interval" in table and "theory" in table and "monte carlo" in table
    csv_text = chk.to_csv()
    assert csv_text.splitlines()[0] == "model,quantity,step,theory,mc,se,ci_low,ci_high,z,ok,covered,heavy_tailed"
    assert len(csv_text.splitlines()) == len(chk.rows) + 1
    doc = json.loads(json.dumps(chk.to_dict(), allow_nan=False))
    assert doc["ci_level"] == 0.95 and len(doc["rows"]) == len(chk.rows)
    assert 0.0 <= chk.coverage <= 1.0
