"""SGD variants (iterate averaging, momentum): the exact engine against the independent dense
reference (tests/reference_variants.py), the reduction to plain SGD, the scenario-file reader,
the transfer layer and the solver registry (docs/theory.md §10).

Tolerance: relative 1e-10 with the floors of tests/test_engine_reference.py (a difference of
O(R) numbers in float64 is known to ~1e-16 R whatever the code): second moments, risks and
disagreements relative to max(|y|, 1e-4 * sources), first moments to max(|y|, 1e-5).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hst
from reference_variants import VarModel, dense_variants

import spectral_theory as st
from spectral_theory.errors import SpecError

RTOL = 1e-10
KAPPA = {"gaussian": 3.0, "rademacher": 1.0, "uniform": 9.0 / 5.0}


def close(x, y, floor, what):
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    tol = RTOL * np.maximum(np.abs(y), floor)
    bad = ~(np.abs(x - y) <= tol)
    assert not bad.any(), f"{what}: engine {x[bad][:4]} reference {y[bad][:4]}"


AVERAGES = [
    None,
    {"kind": "uniform", "start": 0},
    {"kind": "uniform", "start": 3},
    {"kind": "tail", "fraction": 0.5},
    {"kind": "tail", "last": 2},
    {"kind": "ema", "decay": 0.7},
    {"kind": "ema", "half_life": 2.5},
]


def _momentum(draw, T):
    kind = draw(hst.sampled_from([None, "heavy_ball", "nesterov", "accelerated", "general", "schedule"]))
    u = hst.floats(0.0, 0.9)
    if kind is None:
        return None
    if kind in ("heavy_ball", "nesterov"):
        return {"kind": kind, "beta": draw(u)}
    if kind == "schedule" and T == 0:
        return None
    if kind == "schedule":  # DANA-style step-dependent beta_t
        return {"kind": draw(hst.sampled_from(["heavy_ball", "nesterov"])),
                "beta": [draw(u) for _ in range(T)]}
    if kind == "accelerated":
        return {"kind": kind, "alpha": draw(hst.floats(0.1, 1.0)), "beta": draw(hst.floats(0.0, 1.0)),
                "gamma": draw(hst.floats(0.0, 0.5))}
    return {"kind": kind, "r": draw(hst.floats(0.5, 1.8)), "p_e": draw(hst.floats(0.5, 1.8)),
            "p_v": draw(hst.floats(0.0, 1.0)), "k_v": draw(hst.floats(0.0, 1.0))}


@hst.composite
def scenarios(draw):
    d = draw(hst.integers(1, 4))
    lam = np.sort(np.array([draw(hst.floats(0.05, 1.0)) for _ in range(d)]))[::-1]
    theta2 = np.array([draw(hst.sampled_from([0.0, 0.3, 1.0, 2.0])) for _ in range(d)])
    sigma2 = draw(hst.sampled_from([0.0, 0.5]))
    feat = draw(hst.sampled_from(list(KAPPA)))
    G = draw(hst.integers(1, 3))
    models, refs = [], []
    for g in range(G):
        T = draw(hst.integers(0, 7))
        B = draw(hst.integers(1, 3))
        lr = draw(hst.floats(0.05, 0.6))
        sched = draw(hst.sampled_from(["const", "array"]))
        etas = np.full(T, lr) if sched == "const" else np.array([draw(hst.floats(0.05, 0.6)) for _ in range(T)])
        avg = draw(hst.sampled_from(AVERAGES))
        if avg is not None and avg["kind"] == "uniform" and avg["start"] > T:
            avg = {"kind": "uniform", "start": T}
        if avg is not None and avg.get("last", 0) > T + 1:
            avg = {"kind": "tail", "last": T + 1}
        if draw(hst.booleans()) and T > 0:
            avg = {"kind": "weights", "values": [draw(hst.floats(0.0, 1.0)) for _ in range(T)] + [1.0]}
        mom = _momentum(draw, T)
        cap = draw(hst.integers(1, d))
        parent = draw(hst.sampled_from([None, *range(g)])) if g else None
        alpha = draw(hst.sampled_from([0.0, 0.3, 1.0])) if parent is not None else 1.0
        kw = dict(steps=T, batch=B, capacity=cap, average=avg, momentum=mom,
                  schedule=st.ArraySchedule(etas) if (sched == "array" and T) else float(lr))
        if parent is not None:
            kw.update(teacher=f"m{parent}", alpha=alpha)
        models.append(st.Model(f"m{g}", **kw))
        s = np.where(np.arange(d) < cap, lam, 0.0)
        refs.append(VarModel(etas=etas, speeds=s, batch=B, parent=parent, alpha=alpha, momentum=mom, average=avg))
    prob = st.Problem(st.ArraySpectrum(lam), st.ArrayTarget(theta2), noise=sigma2, features=st.Features(feat))
    return st.Scenario(prob, tuple(models)), refs, theta2, sigma2, KAPPA[feat]


def compare(scn, refs, theta2, sigma2, kappa):
    res = st.predict(scn, method="exact", at=list(range(max(m.steps for m in scn.models) + 1)),
                     on_unstable="ignore")
    ref = dense_variants(theta2, sigma2, kappa, refs)
    src = float(np.sum(theta2) + sigma2) or 1.0
    for g, m in enumerate(scn.models):
        r, f = res[m.name], dict(ref[g])
        for k in ("risk", "bias", "variance", "last", "dis"):
            if f[k].size:
                f[k] = f[k][np.asarray(r.steps)]
        floor = 1e-4 * src * max(1.0, float(np.max(np.abs(f["risk"]))))
        close(r.excess_risk, f["risk"], floor, f"{m.name} risk")
        close(r.bias, f["bias"], floor, f"{m.name} bias")
        close(r.variance, f["variance"], floor, f"{m.name} variance")
        if m.average is not None:
            close(r.last_iterate["excess_risk"], f["last"], floor, f"{m.name} last iterate")
        if m.teacher is not None:
            close(r.disagreement, f["dis"], floor, f"{m.name} disagreement")
        close(r.modes.second_moment, f["modes"], floor, f"{m.name} modes")
        ok = np.isfinite(f["mu"])
        close(r.modes.first_moment[ok], f["mu"][ok], 1e-5 * max(1.0, float(np.max(np.abs(f["mu"][ok]), initial=0))),
              f"{m.name} mu")
        for h, other in enumerate(scn.models):
            close(res.disagreement[m.name][other.name], max(f["pairs"][h], 0.0), floor, "pairwise")


@settings(max_examples=60, deadline=None)
@given(scenarios())
def test_engine_matches_dense_reference(case):
    """Every variant (averaging kinds, heavy-ball, Nesterov, accelerated SGD, general two-state
    updates, step-dependent beta), in chains with averaged/momentum parents, kappa != 3, B > 1:
    the per-mode engine equals the dense full-covariance propagation to 1e-10."""
    compare(*case)


def _plain_pair(**variant):
    prob = st.Problem(st.PowerLawSpectrum(a=1.4, d=30), st.PowerLawTarget(b=1.8), noise=0.2,
                      features=st.Features("uniform"))
    t = st.Model("t", steps=150, schedule=st.StepDecay(0.5, 0.5, 40), batch=2)
    s = st.Model("s", steps=120, schedule=0.4, teacher="t", alpha=0.3, capacity=20)
    tv = st.Model("t", steps=150, schedule=st.StepDecay(0.5, 0.5, 40), batch=2, **variant)
    out = st.Output(at=(0, 1, 7, 60, 120, 150))
    return st.Scenario(prob, (t, s), output=out), st.Scenario(prob, (tv, s), output=out)


@pytest.mark.parametrize("variant", [
    {"momentum": {"kind": "heavy_ball", "beta": 0.0}},
    {"momentum": {"kind": "nesterov", "beta": 0.0}},
    {"momentum": {"kind": "accelerated", "alpha": 1.0, "beta": 0.3, "gamma": 0.2}},
    {"momentum": {"kind": "general", "r": 1.0, "p_e": 1.0, "p_v": 0.4, "k_v": 0.7}},
])
def test_plain_sgd_reduces_identically(variant):
    """beta = 0 (and the other plain special cases) without averaging: identical values. This
    checks the routing (``Momentum.is_plain`` sends such a model down plain SGD's path, so the
    values are the same numbers, byte for byte); that the variant engine itself reduces to plain
    SGD is :func:`test_variant_path_reduces_to_plain` (to round-off, 1e-12) and the symbolic
    reduction is in tests/test_variants_symbolic.py."""
    plain, var = _plain_pair(**variant)
    a, b = st.predict(plain, method="exact"), st.predict(var, method="exact")
    for name in ("t", "s"):
        assert np.array_equal(a[name].excess_risk, b[name].excess_risk)
        assert np.array_equal(a[name].modes.second_moment, b[name].modes.second_moment)


@pytest.mark.parametrize("variant", [
    {"momentum": {"kind": "heavy_ball", "beta": 1e-300}},  # the variant path, plain up to round-off
    {"average": {"kind": "ema", "decay": 0.0}},
    {"average": {"kind": "tail", "last": 1}},
])
def test_variant_path_reduces_to_plain(variant):
    """The variant engine itself, at the plain special case, agrees with plain SGD to round-off."""
    plain, var = _plain_pair(**variant)
    a, b = st.predict(plain, method="exact"), st.predict(var, method="exact")
    for name in ("t", "s"):
        np.testing.assert_allclose(b[name].excess_risk, a[name].excess_risk, rtol=1e-12, atol=0)


def test_one_mode_tail_average_closed_form():
    """d = 1, sigma2 = 0, deterministic speed: with kappa = 1, B = 1 and x = 1 ... use B -> inf
    instead: at B = 10^12 the noise vanishes and e_t = (1 - x)^t e_0, so the tail average of
    the last N iterates is -theta (1 - x)^(T-N+1) (1 - (1 - x)^N) / (N x) exactly."""
    x, T, N = 0.3, 20, 7
    prob = st.Problem(st.ArraySpectrum([1.0]), st.ArrayTarget([1.0]))
    m = st.Model("m", steps=T, schedule=x, batch=10**12, average={"kind": "tail", "last": N})
    r = st.predict(st.Scenario(prob, (m,), output=st.Output(at=(T,))), method="exact")
    q = 1 - x
    mean = q ** (T - N + 1) * (1 - q**N) / (N * x)
    assert math.isclose(r["m"].final, mean**2, rel_tol=1e-9)
    assert math.isclose(r["m"].modes.first_moment[0], -mean, rel_tol=1e-9)


# ----------------------------------------------------------------------------- input


def _file(tmp_path, model_extra: str):
    p = tmp_path / "s.toml"
    p.write_text('[problem]\nspectrum = { kind = "powerlaw", a = 1.5, d = 10 }\n'
                 'target = { kind = "powerlaw", b = 2.0 }\n'
                 f'[[models]]\nname = "m"\nsteps = 20\nlr = 0.2\n{model_extra}\n')
    return p


def test_scenario_files_accept_variants(tmp_path):
    from spectral_theory.spec import load_scenario

    scn = load_scenario(_file(tmp_path, 'average = { kind = "tail", fraction = 0.5 }\n'
                                        'momentum = { kind = "heavy_ball", beta = 0.9 }'))
    m = scn.models[0]
    assert m.average.kind == "tail" and m.average.fraction == 0.5
    assert m.momentum.kind == "heavy_ball" and m.momentum.beta == 0.9
    assert scn.describe()["models"][0]["average"] == {"kind": "tail", "fraction": 0.5}
    for text in ('momentum = { kind = "nesterov", beta = 0.5 }',
                 'momentum = { kind = "accelerated", alpha = 0.5, beta = 0.1, gamma = 0.3 }',
                 'momentum = { kind = "general", r = 1.5, p_e = 1.5, p_v = 1.0, k_v = 0.0 }',
                 'average = { kind = "uniform", start = 1 }', 'average = { kind = "ema", half_life = 10 }',
                 'average = { kind = "weights", values = [' + ", ".join(["1"] * 21) + "] }"):
        load_scenario(_file(tmp_path, text))


@pytest.mark.parametrize("text, field, words", [
    ('average = { kind = "tail", fraction = 0.5, start = 2 }', "models['m'].average.start", "unknown key"),
    ('average = { kind = "tail" }', "models['m'].average.fraction", "exactly one"),
    ('average = { kind = "tail", fraction = 1.5 }', "models['m'].average.fraction", "<= 1"),
    ('average = { kind = "tail", last = 30 }', "models['m'].average.last", "steps + 1 = 21"),
    ('average = { kind = "uniform" }', "models['m'].average.start", "required"),
    ('average = { kind = "uniform", start = 21 }', "models['m'].average.start", "at most"),
    ('average = { kind = "ema", decay = 1.0 }', "models['m'].average.decay", "< 1"),
    ('average = { kind = "ema", decay = 0.5, half_life = 3 }', "models['m'].average.decay", "exactly one"),
    ('average = { kind = "weights", values = [1, 2] }', "models['m'].average.values", "21 weights"),
    ('average = { kind = "weights", values = [' + ", ".join(["0"] * 21) + "] }",
     "models['m'].average.values", "positive sum"),
    ('average = { kind = "mean" }', "models['m'].average.kind", "one of"),
    ('average = 0.5', "models['m'].average", "table"),
    ('momentum = { kind = "heavy_ball", beta = 1.0 }', "models['m'].momentum.beta", "< 1"),
    ('momentum = { kind = "heavy_ball", beta = -0.1 }', "models['m'].momentum.beta", ">= 0"),
    ('momentum = { kind = "heavy_ball", bta = 0.5 }', "models['m'].momentum.bta", "unknown key"),
    ('momentum = { kind = "heavy_ball" }', "models['m'].momentum.beta", "required"),
    ('momentum = { kind = "heavy_ball", beta = [0.5, 0.5] }', "models['m'].momentum.beta", "one value per"),
    ('momentum = { kind = "accelerated", alpha = 0.0, beta = 0.1, gamma = 0.1 }',
     "models['m'].momentum.alpha", "> 0"),
    ('momentum = { kind = "nesterov", beta = "0.5" }', "models['m'].momentum.beta", "finite real"),
    ('momentum = { kind = "polyak", beta = 0.5 }', "models['m'].momentum.kind", "one of"),
])
def test_invalid_variants_refused(tmp_path, text, field, words):
    from spectral_theory.spec import load_scenario

    with pytest.raises(SpecError) as err:
        load_scenario(_file(tmp_path, text))
    assert err.value.field == field, str(err.value)
    assert words in str(err.value)


def test_cli_refuses_bad_variant_in_one_line(tmp_path, capsys):
    from spectral_theory.cli import main

    p = _file(tmp_path, 'momentum = { kind = "heavy_ball", beta = 2 }')
    assert main(["run", str(p)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "models['m'].momentum.beta" in err[0]


# ----------------------------------------------------------------------------- registry


def test_continuous_methods_decline_and_auto_picks_an_exact_method():
    prob = st.Problem(st.PowerLawSpectrum(a=1.5, d=2000), st.PowerLawTarget(b=2.0), noise=0.1)
    m = st.Model("m", steps=20000, schedule=0.3, momentum={"kind": "heavy_ball", "beta": 0.5})
    scn = st.Scenario(prob, (m,), output=st.Output(at=(0, 100)))
    for method in ("ode", "continuum"):
        with pytest.raises(SpecError, match="'exact' integrates every SGD variant step by step, 'renewal'"):
            st.predict(scn, method=method)
    from spectral_theory.solvers import choose

    solver, why = choose(scn)  # the constant-phase fast path (tests/test_variant_renewal.py)
    assert solver.name == "renewal"
    per_step = st.Model("s", steps=20000, schedule=0.3, teacher="m", alpha=0.5,
                        momentum={"kind": "nesterov", "beta": [0.5] * 20000})
    solver, why = choose(st.Scenario(prob, (m, per_step), output=st.Output(at=(0, 100))))
    assert solver.name == "exact" and "renewal declined" in why and "per-step momentum" in why


# ----------------------------------------------------------------------------- transfer


def test_transfer_deploys_the_average():
    """KD, W2S and chains take variant models; a student learns from its parent's deployed
    predictor (the average), and the reports are those of the deployed predictors: the report's
    numbers equal predict() on the same chain (which the dense reference checks above)."""
    prob = st.Problem(st.PowerLawSpectrum(a=1.5, d=300), st.PowerLawTarget(b=1.5), noise=0.5)
    avg = st.Model("t", steps=3000, schedule=0.5, average={"kind": "tail", "fraction": 0.5})
    last = st.Model("t", steps=3000, schedule=0.5)
    student = st.Model("s", steps=2000, schedule=0.5, capacity=60)
    r_avg = st.evaluate(st.Distillation(prob, teacher=avg, student=student, alpha=0.0))
    r_last = st.evaluate(st.Distillation(prob, teacher=last, student=student, alpha=0.0))
    # the demonstration's claim (docs/variants.md): the averaged teacher transfers, its last iterate does not
    assert r_avg["kd_gain"] > 1 > r_last["kd_gain"]
    assert r_avg["horizon_expansion"] > 0 == r_last["horizon_expansion"]
    chain = st.Scenario(prob, (dataclasses_replace(avg, name="teacher"),
                               dataclasses_replace(student, name="kd_student", teacher="teacher", alpha=0.0)),
                        output=st.Output(at=(0, 2000, 3000)))
    direct = st.predict(chain, method="exact")
    assert math.isclose(r_avg["kd_risk"], direct["kd_student"].final, rel_tol=1e-12)
    assert math.isclose(r_avg["teacher_risk"], direct["teacher"].final, rel_tol=1e-12)

    w2s = st.evaluate(st.WeakToStrong(prob, weak=st.Model("w", steps=500, schedule=0.04, capacity=20,
                                                          momentum={"kind": "heavy_ball", "beta": 0.8}),
                                      strong=st.Model("s", steps=500, schedule=0.2,
                                                      average={"kind": "ema", "half_life": 50})))
    assert math.isfinite(w2s["pgr"])
    ch = st.evaluate(st.Chain(prob, base=avg, child=st.Model("c", steps=300, schedule=0.3, capacity=50,
                                                             momentum={"kind": "nesterov", "beta": 0.5}),
                              generations=3, alpha=0.0))
    assert len(ch["generation_risk"]) == 3


def dataclasses_replace(model, **kw):
    import dataclasses

    return dataclasses.replace(model, **kw)


def test_tune_lr_uses_the_momentum_limit():
    """tune_lr searches (0, limit) with the momentum model's own limit (heavy-ball's is far below
    plain SGD's at B = 1), and refuses per-step momentum coefficients."""
    from spectral_theory.spec.variants import Momentum
    from spectral_theory.stability_momentum import momentum_limit

    prob = st.Problem(st.PowerLawSpectrum(a=1.5, d=40), st.PowerLawTarget(b=2.0), noise=0.2)
    student = st.Model("s", steps=200, schedule=0.01, momentum={"kind": "heavy_ball", "beta": 0.9})
    kd = st.Distillation(prob, teacher=st.Model("t", steps=300, schedule=0.3), student=student)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the grid ends at 0.999 of the limit: near-limit warning
        tun = st.tune_lr(kd, grid=5)
    lim = momentum_limit(Momentum("heavy_ball", beta=0.9), prob.eigenvalues, 1, 3.0)
    assert math.isclose(tun.stability_limit, lim, rel_tol=1e-12) and lim < 0.2 * st.stability_limit(
        prob.eigenvalues, 1, 3.0)
    assert 0 < tun.best < lim
    per_step = st.Model("s", steps=200, schedule=0.01, momentum={"kind": "heavy_ball", "beta": [0.5] * 200})
    with pytest.raises(SpecError, match="constant momentum"):
        st.tune_lr(st.Distillation(prob, teacher=st.Model("t", steps=300, schedule=0.3), student=per_step))


def test_time_estimate_counts_the_variant_step_cost(tmp_path, capsys):
    """Issue 13 review, finding 7: the exact engine's time estimate (``--max-seconds``, the CLI's
    notes) charged a variant's step as a plain SGD step; at d = 10^5, T = 10^8 heavy-ball it said
    3.5 days where the benchmark's per-step ratio (5.3x, docs/variants.md "Cost") gives 18.5."""
    from spectral_theory.budget import VARIANT_STEP_FACTORS, exact_seconds
    from spectral_theory.cli import main

    prob = st.Problem(st.PowerLawSpectrum(a=1.5, d=10**5), st.PowerLawTarget(b=2.0), noise=0.1)

    def secs(**kw):
        return exact_seconds(st.Scenario(prob, (st.Model("m", steps=10**8, schedule=0.03, **kw),)))

    plain = secs()
    assert plain == pytest.approx(1e8 * (2e-5 + 3e-8 * 1e5), rel=1e-12)  # 3.5 days
    hb = {"kind": "heavy_ball", "beta": 0.9}
    assert secs(momentum=hb) == pytest.approx(VARIANT_STEP_FACTORS["heavy_ball"] * plain, rel=1e-12)
    assert secs(momentum={"kind": "nesterov", "beta": 0.0}) == plain  # reduces to plain SGD's path
    assert secs(average={"kind": "tail", "fraction": 0.5}) == pytest.approx(4.8 * plain, rel=1e-12)
    assert secs(momentum={"kind": "accelerated", "alpha": 0.5, "beta": 0.1, "gamma": 0.05}) > 15 * plain
    assert secs(momentum=hb, average={"kind": "tail", "fraction": 0.5}) == pytest.approx(17.3 * plain, rel=1e-12)
    f = tmp_path / "hb.toml"
    f.write_text('[problem]\nspectrum = { kind = "powerlaw", a = 1.5, d = 100000 }\n'
                 'target = { kind = "powerlaw", b = 2.0 }\nnoise = 0.1\n[[models]]\nname = "m"\n'
                 'steps = 100000000\nlr = 0.03\nmomentum = { kind = "heavy_ball", beta = 0.9 }\n')
    assert main(["run", str(f), "--method", "exact", "--max-seconds", "10"]) == 2
    assert "about 18.5 days" in capsys.readouterr().err


def test_accelerated_gamma_follows_lr_convention_sum():
    """Issue 13 review, finding 8: under ``lr_convention = 'sum'`` (gradients summed over the
    batch) Jain et al.'s gamma multiplies the summed gradient as the step does, so a sum-convention
    model (lr, gamma, B) is the batch-mean model (B lr, B gamma): equal values, and equal
    stability limits."""
    from spectral_theory.solvers.base import model_stability_limit

    prob = st.Problem(st.PowerLawSpectrum(a=1.5, d=30), st.PowerLawTarget(b=2.0), noise=0.2)
    B = 4
    summed = st.Model("m", steps=200, schedule=0.02, batch=B, lr_convention="sum",
                      momentum={"kind": "accelerated", "alpha": 0.5, "beta": 0.2, "gamma": 0.05})
    mean = st.Model("m", steps=200, schedule=0.08, batch=B,
                    momentum={"kind": "accelerated", "alpha": 0.5, "beta": 0.2, "gamma": 0.2})
    out = st.Output(at=(0, 50, 200))
    a = st.predict(st.Scenario(prob, (summed,), output=out), method="exact")
    b = st.predict(st.Scenario(prob, (mean,), output=out), method="exact")
    np.testing.assert_allclose(a["m"].excess_risk, b["m"].excess_risk, rtol=1e-13)
    assert summed.describe()["momentum"]["gamma"] == 0.05  # echoed as written
    la = model_stability_limit(st.Scenario(prob, (summed,)), 0)
    lb = model_stability_limit(st.Scenario(prob, (mean,)), 0)
    assert la == pytest.approx(lb, rel=1e-12)


def test_momentum_instability_messages(tmp_path):
    """Issue 13 review, finding 8: per-step momentum coefficients have no single limit (the error
    said 'largest stable constant step ... is nan' and named a 'final constant phase (steps
    39-39)'); a marginal map (spectral radius exactly 1) said 'grow ... by a factor up to 1'."""
    from spectral_theory.errors import InstabilityError

    prob = st.Problem(st.PowerLawSpectrum(a=1.5, d=50), st.PowerLawTarget(b=2.0), noise=0.1)
    beta = [0.1] * 30 + [0.9 + 0.01 * k for k in range(10)]
    m = st.Model("m", steps=40, schedule=0.5, momentum={"kind": "heavy_ball", "beta": beta})
    with pytest.raises(InstabilityError) as err:
        st.predict(st.Scenario(prob, (m,)), method="exact")
    msg = str(err.value)
    assert "nan" not in msg and "no single stability limit" in msg and "steps 30-39, to the end of training" in msg
    assert "final constant phase" not in msg
    warm = st.Model("m", steps=40, schedule=0.5, momentum={"kind": "heavy_ball", "beta": [0.95] * 2 + [0.1] * 38})
    with pytest.warns(RuntimeWarning) as rec:
        st.predict(st.Scenario(prob, (warm,)), method="exact")
    text = " ".join(str(w.message) for w in rec)
    assert "steps 0-1" in text and "nan" not in text
    marginal = st.Model("m", steps=40, schedule=0.03,
                        momentum={"kind": "general", "r": 0.0, "p_e": 0.0, "p_v": 1.0, "k_v": 1.0})
    with pytest.raises(InstabilityError, match="do not decay") as err:
        st.predict(st.Scenario(prob, (marginal,)), method="exact")
    assert "factor up to 1 per step" not in str(err.value)
