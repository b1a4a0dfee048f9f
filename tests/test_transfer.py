"""Transfer workflows: metrics against independent computations through plain predict()."""

import json

import numpy as np
import pytest

import spectral_theory as st
from spectral_theory.cli import main
from spectral_theory.solvers import PrefixCache
from spectral_theory.transfer import spectral_horizon, transfer_from_dict


def prob(noise=0.5, d=40, b=2.0):
    return st.Problem(st.PowerLawSpectrum(a=1.5, d=d), st.PowerLawTarget(b=b), noise=noise)


def kd_spec(alpha=0.0):
    return st.Distillation(prob(), teacher=st.Model("T", steps=400, schedule=0.1, batch=4),
                           student=st.Model("S", steps=150, schedule=0.3, capacity=20), alpha=alpha,
                           output=st.Output(at=(0, 10, 150)))


def w2s_spec():
    return st.WeakToStrong(prob(noise=1.0), weak=st.Model("W", steps=200, schedule=0.4, capacity=10),
                           strong=st.Model("S", steps=200, schedule=0.03))


def full_curve(problem, models, name):
    """Excess risk of `name` at every step, from predict() at explicit steps."""
    sc = st.Scenario(problem, tuple(models))
    T = sc.model(name).steps
    return st.predict(sc, at=list(range(T + 1)))[name].excess_risk


def test_horizon_definition():
    t2 = np.array([1.0, 0.5, 0.0, 0.2, 0.1])
    m = np.array([0.1, 0.25, 0.0, 0.3, 0.01])
    # normalised: 0.1, 0.5 (<= 1/2), undefined (theta = 0, skipped), 1.5, 0.1 -> last learned index 5
    assert spectral_horizon(m, t2) == 5
    assert spectral_horizon(np.array([0.9, 0.6]), np.array([1.0, 1.0])) == 0
    assert spectral_horizon(np.array([0.5, 0.6]), np.array([1.0, 1.0])) == 1


def test_distillation_metrics_match_plain_predict():
    spec = kd_spec(alpha=0.3)
    rep = st.evaluate(spec)
    p = spec.problem
    T = st.Model("teacher", steps=400, schedule=0.1, batch=4)
    kd = st.Model("kd", steps=150, schedule=0.3, capacity=20, teacher="teacher", alpha=0.3)
    hard = st.Model("hard", steps=150, schedule=0.3, capacity=20)
    r1 = st.predict(st.Scenario(p, (T, kd)), at=[150, 400])
    r2 = st.predict(st.Scenario(p, (hard,)), at=[150])
    e_kd, e_hard = r1["kd"].final, r2["hard"].final
    assert rep["kd_risk"] == pytest.approx(e_kd, rel=1e-12)
    assert rep["hard_risk"] == pytest.approx(e_hard, rel=1e-12)
    assert rep["teacher_risk"] == pytest.approx(r1["teacher"].final, rel=1e-12)
    assert rep["kd_gain"] == pytest.approx(e_hard / e_kd, rel=1e-12)
    assert rep["kd_gain_difference"] == pytest.approx(e_hard - e_kd, rel=1e-12)
    assert rep["student_teacher_disagreement"] == pytest.approx(r1.disagreement["kd"]["teacher"], rel=1e-12)
    h_kd = spectral_horizon(r1["kd"].modes.second_moment, p.theta2)
    assert rep["kd_horizon"] == h_kd
    assert rep["horizon_expansion"] == h_kd - spectral_horizon(r2["hard"].modes.second_moment, p.theta2)
    np.testing.assert_allclose(rep.models["kd_student"].normalised, r1["kd"].modes.second_moment / p.theta2,
                               rtol=1e-12)
    nb = rep.models["kd_student"].normalised_bias + rep.models["kd_student"].normalised_variance
    np.testing.assert_allclose(nb, rep.models["kd_student"].normalised, rtol=1e-12)


def test_oracle_stopping_is_min_over_every_step():
    spec = w2s_spec()
    rep = st.evaluate(spec)
    p = spec.problem
    W = st.Model("w", steps=200, schedule=0.4, capacity=10)
    S = st.Model("s", steps=200, schedule=0.03, teacher="w", alpha=0.0)
    curve = full_curve(p, (W, S), "s")
    assert rep.models["w2s_student"].oracle_step == int(np.argmin(curve))
    assert rep.models["w2s_student"].oracle_risk == pytest.approx(curve.min(), rel=1e-12)
    wc = full_curve(p, (W,), "w")
    cc = full_curve(p, (st.Model("c", steps=200, schedule=0.03),), "c")
    assert rep["pgr_oracle"] == pytest.approx((wc.min() - curve.min()) / (wc.min() - cc.min()), rel=1e-10)
    assert rep["pgr"] == pytest.approx((wc[-1] - curve[-1]) / (wc[-1] - cc[-1]), rel=1e-10)


def test_w2s_denoising_profile_is_the_variance_part():
    spec = w2s_spec()
    rep = st.evaluate(spec)
    r = st.predict(st.Scenario(spec.problem, (st.Model("w", steps=200, schedule=0.4, capacity=10),
                                              st.Model("s", steps=200, schedule=0.03, teacher="w"))))
    np.testing.assert_allclose(rep.profiles["teacher_variance"], r["w"].modes.variance, rtol=1e-12)
    np.testing.assert_allclose(rep.profiles["student_variance"], r["s"].modes.variance, rtol=1e-12)
    noisy = (r["w"].modes.variance > r["w"].modes.bias) & (r["w"].modes.variance > 0)
    assert rep["teacher_noisy_modes"] == int(noisy.sum())
    assert rep["denoised_modes"] == int((noisy & (r["s"].modes.variance < r["w"].modes.variance)).sum())


def test_chain_matches_explicit_chain():
    p = prob()
    spec = st.Chain(p, base=st.Model("B", steps=100, schedule=0.3),
                    child=st.Model("C", steps=80, schedule=0.2, capacity=15), generations=4, alpha=0.2)
    rep = st.evaluate(spec)
    models = [st.Model("a0", steps=100, schedule=0.3)]
    for g in range(1, 4):
        models.append(st.Model(f"a{g}", steps=80, schedule=0.2, capacity=15, teacher=f"a{g - 1}", alpha=0.2))
    r = st.predict(st.Scenario(p, tuple(models)))
    risks = [r[f"a{g}"].final for g in range(4)]
    np.testing.assert_allclose(rep["generation_risk"], risks, rtol=1e-12)
    np.testing.assert_allclose(rep["generation_growth"], [risks[g] / risks[g - 1] for g in range(1, 4)], rtol=1e-12)
    np.testing.assert_allclose(rep["parent_disagreement"],
                               [r.disagreement[f"a{g}"][f"a{g - 1}"] for g in range(1, 4)], rtol=1e-12)


def test_tune_alpha_beats_a_fine_grid():
    spec = kd_spec()
    tun = st.tune_alpha(spec, grid=11)
    assert tun.best_risk <= tun.risks.min() + 1e-15
    fine = np.linspace(0, 1, 201)
    cache = PrefixCache()
    risks = [st.evaluate(st.Distillation(spec.problem, teacher=spec.teacher, student=spec.student, alpha=a,
                                         output=spec.output), cache=cache)["kd_risk"] for a in fine]
    assert tun.best_risk <= min(risks) + 1e-9 * min(risks)
    # the teacher was trained once: one miss for it, one per distinct alpha for the student
    assert tun.cache_misses <= 1 + 11 + 40


def test_tune_lr_within_stability_limit():
    spec = kd_spec()
    tun = st.tune_lr(spec, grid=9)
    assert 0 < tun.best < tun.stability_limit and tun.param == "lr"
    assert tun.best_risk <= tun.risks.min() + 1e-15
    lim = st.stability_limit(spec.student.speed_profile(spec.problem.eigenvalues), 1, 3.0)
    assert tun.stability_limit == pytest.approx(lim)


def test_map_values_and_shared_work():
    spec = kd_spec()
    cache = PrefixCache()
    mp = st.transfer_map(spec, ("teacher.capacity", [10, 40]), ("student.capacity", [5, 10, 20]), cache=cache)
    for i, tc in enumerate([10, 40]):
        for j, sc in enumerate([5, 10, 20]):
            s2 = st.Distillation(spec.problem, teacher=st.Model("T", steps=400, schedule=0.1, batch=4, capacity=tc),
                                 student=st.Model("S", steps=150, schedule=0.3, capacity=sc), output=spec.output)
            assert mp.values[i, j] == pytest.approx(st.evaluate(s2)["kd_gain"], rel=1e-12)
    # trained: 2 teachers + 6 distilled students + 3 hard students; the rest came from the cache
    assert mp.cache_misses == 2 + 6 + 3
    assert mp.cache_hits == 6 * 3 - mp.cache_misses
    ab = st.transfer_map(spec, ("spectrum.a", [1.5, 2.0]), ("target.b", [1.5, 2.5]))
    assert ab.values.shape == (2, 2) and np.all(np.isfinite(ab.values))
    with pytest.raises(st.SpecError, match="map parameter"):
        st.transfer_map(spec, ("teacher.depth", [1]), ("alpha", [0.0]))


def test_transfer_from_dict_roles_and_errors():
    data = {"problem": {"spectrum": {"kind": "powerlaw", "a": 1.5, "d": 20}, "target": {"kind": "powerlaw", "b": 2},
                        "noise": 0.1},
            "models": [{"name": "big", "steps": 50, "lr": 0.2}, {"name": "small", "steps": 30, "lr": 0.2,
                                                                   "capacity": 5}],
            "transfer": {"kind": "kd", "teacher": "big", "student": "small", "alpha": 0.5}}
    spec = transfer_from_dict(data)
    assert spec.kind == "kd" and spec.teacher.name == "big" and spec.alpha == 0.5
    # a section without kind serves every comparison, each reading its own roles
    several = {**data, "transfer": {"teacher": "big", "student": "small", "weak": "small", "strong": "big"}}
    w = transfer_from_dict(several, kind="w2s")
    assert w.weak.name == "small" and w.strong.name == "big" and w.alpha == 0.0
    w = transfer_from_dict(several, kind="w2s", overrides={"weak": "big", "strong": "small"})
    assert w.weak.name == "big" and w.strong.name == "small"
    ch = transfer_from_dict(several, kind="chain", overrides={"generations": 3})
    assert ch.generations == 3 and ch.base.name == "big" and ch.child.name == "small"
    with pytest.raises(st.SpecError, match=r"transfer.teacher: got 'huge'"):
        transfer_from_dict(data, overrides={"teacher": "huge"})
    with pytest.raises(st.SpecError, match=r"transfer.kind"):
        transfer_from_dict({**data, "transfer": {"kind": "ensemble"}})
    with pytest.raises(st.SpecError, match=r"transfer.alpha"):
        transfer_from_dict(data, overrides={"alpha": 2.0})
    with pytest.raises(st.SpecError, match=r"transfer.generations"):
        transfer_from_dict(several, kind="chain", overrides={"generations": 0})
    # the section's kind and the comparison asked for must agree
    with pytest.raises(st.SpecError, match=r"transfer.kind: got 'kd'.*'w2s'"):
        transfer_from_dict(data, kind="w2s", overrides={"weak": "small", "strong": "big"})
    with pytest.raises(st.SpecError, match=r"transfer.kind: got None"):
        transfer_from_dict(several)


SMALL = """
[problem]
spectrum = { kind = "powerlaw", a = 1.5, d = 60 }
target = { kind = "powerlaw", b = 2.0 }
noise = 1.0
[[models]]
name = "big"
batch = 4
steps = 800
lr = 0.1
[[models]]
name = "small"
capacity = 30
steps = 300
lr = 0.3
[transfer]
teacher = "big"
student = "small"
[output]
at = [0, 100, 300]
"""


def test_cli_json_carries_metrics_and_modes(tmp_path, capsys):
    scn = tmp_path / "t.toml"
    scn.write_text(SMALL)
    out = tmp_path / "kd.json"
    assert main(["kd", str(scn), "--format", "json", "--modes", "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["kind"] == "kd" and "kd_gain" in data["metrics"] and "horizon_expansion" in data["metrics"]
    assert len(data["models"]["kd_student"]["normalised_error"]) == 60
    assert len(data["profiles"]["kd_normalised"]) == 60
    assert data["curves"]["kd_student"]["steps"][-1] == 300
    assert main(["w2s", str(scn), "--weak", "small", "--strong", "big", "--format", "json", "--no-modes"]) == 0
    w = json.loads(capsys.readouterr().out)
    assert {"pgr", "pgr_oracle", "student_teacher_disagreement"} <= set(w["metrics"])
    assert main(["chain", str(scn), "--base", "small", "--generations", "3"]) == 0
    assert "generation_growth" in capsys.readouterr().out
    assert main(["map", str(scn), "--kind", "kd", "--x", "teacher.capacity=20,60", "--y", "alpha=0,0.5"]) == 0
    assert capsys.readouterr().out.count("\n") == 5
    assert main(["tune", str(scn), "--kind", "kd", "--param", "alpha", "--grid", "5", "--format", "json"]) == 0
    assert 0 <= json.loads(capsys.readouterr().out)["best"] <= 1


@pytest.mark.montecarlo
def test_monte_carlo_report_kd_gain_within_se():
    spec = st.Distillation(prob(d=20), teacher=st.Model("T", steps=200, schedule=0.2),
                           student=st.Model("S", steps=100, schedule=0.3, capacity=10), alpha=0.0)
    th = st.evaluate(spec)
    mc = st.evaluate(spec, simulate=True, reps=2000, seed=4)
    assert mc.method == "monte_carlo" and mc.models["kd_student"].oracle_over == "reported steps"
    assert abs(mc["kd_gain"] - th["kd_gain"]) <= 4 * mc["kd_gain_se"]


@pytest.mark.parametrize("name", ["horizon", "denoising", "hurts"])
def test_demonstrations_show_their_claim(name):
    from spectral_theory.demo import demonstration_text, denoising_spec, horizon_spec, hurts_spec

    spec = {"horizon": horizon_spec, "denoising": denoising_spec, "hurts": hurts_spec}[name]()
    rep = st.evaluate(spec)
    if name == "horizon":
        assert rep["horizon_expansion"] > 0 and rep["kd_gain"] > 1
    elif name == "denoising":
        assert rep["pgr"] > 0 and rep["denoised_modes"] > 0
        assert rep["student_variance_on_noisy_modes"] < rep["teacher_variance_on_noisy_modes"]
    else:
        assert rep["kd_gain"] < 1 and rep["horizon_expansion"] < 0
    assert name in demonstration_text(name)


def test_map_rows_in_parallel_match_serial():
    from concurrent.futures import ProcessPoolExecutor

    spec = kd_spec()
    serial = st.transfer_map(spec, ("teacher.capacity", [10, 40]), ("student.capacity", [5, 20]))
    with ProcessPoolExecutor(max_workers=2) as pool:
        par = st.transfer_map(spec, ("teacher.capacity", [10, 40]), ("student.capacity", [5, 20]),
                              executor=pool)
    np.testing.assert_array_equal(par.values, serial.values)
    # each row trains its teacher once and its own hard students: 2 x (1 + 2 + 2)
    assert par.cache_misses == 10
    with pytest.raises(st.SpecError, match="cache"):
        st.transfer_map(spec, ("alpha", [0.0]), ("student.capacity", [5]), executor=pool, cache=PrefixCache())
