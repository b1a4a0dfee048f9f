"""Claims (docs/claims.md): domains, claim kinds against independent computations, the search,
the reports and their witnesses, the interval recursion against exact rational arithmetic and
a dense-matrix propagation of the full second-moment matrix, and ``assert_claim``."""

from __future__ import annotations

import json
import math
from fractions import Fraction

import flint  # the certified extra, installed with the test extra
import numpy as np
import pytest

import spectral_theory as st
from spectral_theory import claims as C
from spectral_theory.claims.certify import ArbContext, run_recursion
from spectral_theory.claims.claim import Context, evaluate_point
from spectral_theory.claims.scenarios import scenario_file_dict, set_path
from spectral_theory.errors import SpecError

ONE = {"problem": {"spectrum": {"kind": "powerlaw", "a": 1.5, "d": 20},
                   "target": {"kind": "powerlaw", "b": 2.0}, "noise": 0.1},
       "models": [{"name": "m", "steps": 200, "lr": 0.2}]}


# ---------------------------------------------------------------------------- domains
def test_param_maps_log_integer_and_list_values():
    p = C.Param(1e-3, 1.0, log=True, name="eta")
    assert p.value(0.0) == 1e-3 and p.value(1.0) == 1.0
    assert p.value(0.5) == pytest.approx(math.sqrt(1e-3))
    assert p.unit(p.value(0.3)) == pytest.approx(0.3)
    q = C.Param(2, 2000, log=True, integer=True, name="d")
    assert q.value(0.5) == round(math.sqrt(4000)) and isinstance(q.value(0.5), int)
    r = C.Param(values=[1, 2, 4], name="B")
    assert [r.value(u) for u in (0.0, 0.34, 0.99, 1.0)] == [1, 2, 4, 4]
    dom = C.Domain({"eta": p, "B": r})
    assert dom.size == math.inf and len(dom.grid(3)) == 9
    assert C.Domain({"B": r}).enumerate() == [{"B": 1}, {"B": 2}, {"B": 4}]


@pytest.mark.parametrize("kw, msg", [
    ({"lo": 1.0, "hi": 0.5}, "must be >= lo"),
    ({"lo": 0.0, "hi": 1.0, "log": True}, "must be > 0 on a log scale"),
    ({"lo": 0.5, "hi": 2, "integer": True}, "integer bounds"),
    ({"values": []}, "non-empty list"),
    ({"lo": 1, "hi": 2, "values": [1]}, "not both"),
    ({"lo": float("nan"), "hi": 1}, "finite number"),
])
def test_bad_params_are_spec_errors(kw, msg):
    with pytest.raises(SpecError, match=msg):
        C.Param(name="x", **kw)


# ---------------------------------------------------------------------------- scenarios
def test_paths_and_aliases_set_fields():
    data = json.loads(json.dumps(ONE))
    set_path(data, "models.m.lr", 0.05)
    set_path(data, "problem.spectrum.a", 2.0)
    set_path(data, "models[0].batch", 4)
    sc = st.scenario_from_dict(data)
    assert sc.models[0].batch == 4 and sc.problem.spectrum.a == 2.0
    assert float(sc.models[0].step_sizes()[0]) == 0.05
    with pytest.raises(SpecError, match="no model of that name"):
        set_path(data, "models.x.lr", 1.0)
    with pytest.raises(SpecError, match="must start with"):
        set_path(data, "nowhere.x", 1.0)


def test_scenario_file_dict_round_trips():
    sc = st.load_scenario("examples/distillation.toml")
    back = st.scenario_from_dict(scenario_file_dict(sc))
    assert back.describe() == {**sc.describe(), "name": back.name}


# ---------------------------------------------------------------------------- claim kinds
def _risk(data, eta):
    d = json.loads(json.dumps(data))
    d["models"][0]["lr"] = eta
    return st.predict(st.scenario_from_dict(d), at=[200])["m"].final


def test_inequality_ratio_is_lhs_over_bound():
    claim = C.Inequality(name="c", scenario=ONE, model="m", lhs="excess_risk", rhs="2*sigma2",
                         domain={"eta": C.Param(0.05, 0.3)})
    rec = evaluate_point(claim, {"eta": 0.1})
    assert rec["ratio"] == pytest.approx(_risk(ONE, 0.1) / 0.2, rel=1e-12)
    assert rec["holds"] == (_risk(ONE, 0.1) <= 0.2 * (1 + 1e-9))


def test_where_condition_excludes_points_without_solving():
    claim = C.Inequality(name="c", scenario=ONE, model="m", lhs="excess_risk", rhs=1e-9,
                         where="eta > 1", domain={"eta": C.Param(0.05, 0.3)})
    rec = evaluate_point(claim, {"eta": 0.1})
    assert rec["inside"] is False and rec["outside"] == pytest.approx(10.0)
    rep = C.check(claim, budget=8, certify=False)
    assert rep.verdict == "undecided" and rep.excluded == rep.points


def test_constant_is_found():
    # E(200) / sigma2 over eta: the smallest constant is the largest ratio over the domain
    claim = C.Inequality(name="c", scenario=ONE, model="m", lhs="excess_risk", rhs="sigma2", constant="find",
                         domain={"eta": C.Param(0.05, 0.3)})
    rep = C.check(claim, budget=24, certify=False)
    grid = np.linspace(0.05, 0.3, 26)
    best = max(_risk(ONE, e) / 0.1 for e in grid)
    assert rep.verdict == "holds"
    assert rep.constant["value"] >= best * (1 - 1e-3)


def test_equality_and_limit_and_monotone_against_direct_runs():
    eq = C.Equality(name="e", scenario=ONE, model="m", lhs="excess_risk", rhs="bias + variance", rtol=1e-12,
                    domain={"eta": C.Param(0.05, 0.3)})
    assert C.check(eq, budget=6, certify=False).verdict == "holds"
    # the risk decreases in t at a small step; at a step near the limit it first grows
    mono = C.Monotone(name="m", scenario=ONE, model="m", value="excess_risk", param="t",
                      values=(0, 1, 2, 5, 10, 50, 100, 200), domain={"eta": C.Param(0.01, 0.1)})
    assert C.check(mono, budget=6, certify=False).verdict == "holds"
    lim = st.stability_limit(st.scenario_from_dict(ONE).models[0].speed_profile(
        st.scenario_from_dict(ONE).problem.eigenvalues), 1, 3.0)
    steep = C.Monotone(name="m2", scenario=ONE, model="m", value="excess_risk", param="t",
                       values=(0, 1, 2, 5, 10), domain={"eta": C.Param(values=[0.97 * lim])})
    rep = C.check(steep, budget=2, certify=False)
    curve = st.predict(st.scenario_from_dict({**ONE, "models": [{"name": "m", "steps": 200, "lr": 0.97 * lim}]}),
                       at=[0, 1, 2, 5, 10])["m"].excess_risk
    assert rep.verdict == ("violated" if np.any(np.diff(curve) > 0) else "holds")
    # the limit of the risk as T grows is the floor (risk_floor), within 1e-6 at T = 10^5
    limit = C.Limit(name="l", scenario={**ONE, "problem": {**ONE["problem"], "spectrum": {"kind": "powerlaw", "a": 1.5, "d": 5}}},
                    model="m", value="excess_risk", limit="risk_floor", param="T", values=(3, 30, 10**5),
                    rtol=1e-6, domain={"eta": C.Param(0.1, 0.5)})
    rep = C.check(limit, budget=4, certify=False)
    assert rep.verdict == "holds"
    errs = rep.worst["info"]["errors"]
    assert errs[0] > 1e-3 * rep.worst["info"]["limit"] and errs[-1] <= 1e-6 * rep.worst["info"]["limit"]


def test_rate_reuses_the_rate_checker():
    from spectral_theory.analysis.rates import check_rate

    data = {"problem": {"spectrum": {"kind": "powerlaw", "a": 1.5, "d": 400}, "target": {"kind": "powerlaw", "b": 2.0}},
            "models": [{"name": "m", "steps": 2000, "lr": 0.3}]}
    claim = C.Rate(name="r", scenario=data, model="m", expected="-(b-1)/a", window=(200, 2000), band=0.05,
                   points=10, domain={"b": C.Param(values=[2.0])})
    rec = evaluate_point(claim, {"b": 2.0})
    steps = claim.window_steps()
    res = st.predict(st.scenario_from_dict(data), at=steps)
    rc = check_rate(res, -1 / 1.5, window=(200, 2000), band=0.05)
    assert rec["info"]["slope"] == pytest.approx(rc.slope, rel=1e-12)
    assert rec["ratio"] == pytest.approx(abs(rc.slope + 1 / 1.5) / 0.05, rel=1e-9)


def test_invalid_points_are_counted_not_violations():
    claim = C.Inequality(name="c", scenario={**ONE, "models": [{"name": "m", "steps": 50, "lr": 0.1, "capacity": 5}]},
                         model="m", lhs="excess_risk", rhs=10.0, domain={"d": C.Param(2, 30, integer=True)})
    rep = C.check(claim, budget=12, certify=False)
    assert rep.invalid > 0 and rep.verdict == "holds"
    assert any("capacity" in e for e in rep.errors)


# ---------------------------------------------------------------------------- search and report
def test_search_finds_a_planted_violation_and_reports_a_reproducible_witness(tmp_path):
    # claim: E(200) <= 0.9 E(0) everywhere; false where the step is tiny (the risk hardly moves)
    claim = C.Inequality(name="decay", scenario=ONE, model="m", lhs="excess_risk",
                         rhs=C.Quantity("excess_risk", at=0), constant=0.9,
                         domain={"eta": C.Param(1e-4, 0.3, log=True), "sigma2": C.Param(0.0, 0.01)})
    rep = C.check(claim, budget=40, seed=1, certify=True)
    assert rep.verdict == "violated" and rep.first_violation is not None
    w = rep.worst
    assert w["ratio"] > 1
    # the witness file reproduces the worst point with the ordinary reader and solver
    path = tmp_path / "w.json"
    path.write_text(rep.witness_text())
    sc = st.load_scenario(path)
    res = st.predict(sc, at=[0, 200])["m"]
    assert res.final / (0.9 * res.excess_risk[0]) == pytest.approx(w["ratio"], rel=1e-12)
    # the certificate proves it: the ratio's enclosure lies above 1
    cert = rep.certificate
    assert cert.status == "violated" and cert.ratio[0] > 1
    assert cert.ratio[0] <= w["ratio"] * (1 + 1e-12) and cert.ratio[1] >= w["ratio"] * (1 - 1e-12)
    d = rep.to_dict()
    json.dumps(d, allow_nan=False)
    assert d["verdict"] == "violated" and d["certificate"]["status"] == "violated"
    assert "CERTIFIED COUNTEREXAMPLE" in rep.summary()


def test_strategies_and_budget_are_honoured():
    claim = C.Inequality(name="c", scenario=ONE, model="m", lhs="excess_risk", rhs=100.0,
                         domain={"eta": C.Param(0.01, 0.3), "sigma2": C.Param(0.0, 1.0)})
    rep = C.check(claim, budget=30, certify=False)
    assert rep.points <= 30 and sum(rep.strategies.values()) == rep.points
    assert set(rep.strategies) <= set(C.STRATEGIES) and rep.strategies.get("sobol", 0) >= 4
    only = C.check(claim, budget=10, strategies=("sobol",), certify=False)
    assert set(only.strategies) == {"sobol"} and only.points == 8
    with pytest.raises(SpecError, match="budget"):
        C.check(claim, budget=0)
    with pytest.raises(SpecError, match="strategies"):
        C.check(claim, strategies=("random",))


def test_assert_claim_raises_with_the_report():
    bad = C.Inequality(name="bad", scenario=ONE, model="m", lhs="excess_risk", rhs=1e-6,
                       domain={"eta": C.Param(0.05, 0.3)})
    with pytest.raises(AssertionError, match="claim violated"):
        C.assert_claim(bad, budget=4)
    rep = C.assert_claim(bad, budget=4, expect="violated")
    assert rep.violated


# ---------------------------------------------------------------------------- the interval recursion
def _dense_exact(theta2, lam, eta, steps, B, kappa, sigma2):
    """E[e e^T] propagated as a full d x d matrix with exact rationals, from the SGD update
    and the fourth-moment identity E[z z^T A z z^T] = tr(A) I + 2A + (kappa - 3) diag(A)
    (docs/theory.md §4, "Exactness"): cross-mode moments included, no diagonal closure."""
    d = len(lam)
    th = [Fraction(t).sqrt() if hasattr(Fraction, "sqrt") else None for t in theta2]
    del th
    # theta_i = sqrt(theta2_i) is irrational: use theta_i theta_j as exact products of floats
    root = [Fraction(math.sqrt(t)) for t in theta2]
    S = [[root[i] * root[j] for j in range(d)] for i in range(d)]
    x = [Fraction(eta) * Fraction(v) for v in lam]
    kap, sig, invB = Fraction(kappa), Fraction(sigma2), Fraction(1, B)
    out = [sum(S[i][i] for i in range(d))]
    for _ in range(steps):
        tr = sum(S[i][i] for i in range(d))
        new = [[None] * d for _ in range(d)]
        for i in range(d):
            for j in range(d):
                drift = S[i][j] - x[i] * S[i][j] - x[j] * S[i][j]
                quart = 2 * S[i][j] + ((tr + (kap - 3) * S[i][i] + sig) if i == j else 0)
                gg = invB * quart + (1 - invB) * S[i][j]
                new[i][j] = drift + x[i] * x[j] * gg
        S = new
        out.append(sum(S[i][i] for i in range(d)))
    return out, [math.sqrt(t) ** 2 for t in theta2]


def test_interval_recursion_encloses_the_dense_exact_propagation():
    lam = [1.0, 0.5, 0.25]
    theta_roots = [1.0, 0.5, 0.75]
    theta2 = [r * r for r in theta_roots]  # exact squares of doubles
    eta, steps, B, kappa, sigma2 = 0.375, 6, 2, 1.75, 0.125
    exact, _ = _dense_exact(theta2, lam, eta, steps, B, kappa, sigma2)
    prob = st.Problem(st.ArraySpectrum(lam), st.ArrayTarget(theta2), noise=sigma2, features=st.Features("kurtosis", kappa))
    sc = st.Scenario(prob, (st.Model("m", steps=steps, schedule=eta, batch=B),), output=st.Output(at=tuple(range(steps + 1))))
    data = scenario_file_dict(sc)
    old = flint.ctx.prec
    flint.ctx.prec = 128
    try:
        run = run_recursion(sc, data, {"m": list(range(steps + 1))})
    finally:
        flint.ctx.prec = old
    for t in range(steps + 1):
        ball = run.risk["m"][t]
        # exact rational value inside the ball (converted at 60 digits: far inside the radius)
        v = flint.arb(str(exact[t].numerator)) / flint.arb(str(exact[t].denominator))
        assert ball.overlaps(v), (t, ball, float(exact[t]))
        assert float(ball.rad()) < 1e-25
    # and the float solver agrees with it to round-off
    res = st.predict(sc, method="exact")["m"].excess_risk
    assert np.allclose(res, [float(exact[t]) for t in range(steps + 1)], rtol=1e-13, atol=0)


def test_interval_student_recursion_matches_the_float_solver():
    prob = st.Problem(st.PowerLawSpectrum(a=1.5, d=30), st.PowerLawTarget(b=2.0), noise=0.3,
                      features=st.Features("rademacher"))
    t = st.Model("t", steps=150, schedule=0.3, batch=2, capacity=20)
    s = st.Model("s", steps=120, schedule=st.StepDecay(0.4, 0.5, 40), capacity=25, teacher="t", alpha=0.3)
    sc = st.Scenario(prob, (t, s), output=st.Output(at=(0, 60, 120)))
    res = st.predict(sc, method="exact")
    old = flint.ctx.prec
    flint.ctx.prec = 128
    try:
        run = run_recursion(sc, scenario_file_dict(sc), {"t": [150], "s": [0, 60, 120]})
    finally:
        flint.ctx.prec = old
    for j, step in enumerate((0, 60, 120)):
        ball = run.risk["s"][step]
        assert float(ball.mid()) == pytest.approx(res["s"].excess_risk[j], rel=1e-12)
        assert float(ball.rad()) < 1e-20 * float(ball.mid())
        dis = run.disagreement["s"][step]
        assert float(dis.mid()) == pytest.approx(res["s"].disagreement[j], rel=1e-12)
    teacher_end = st.predict(sc, method="exact", at=[150])["t"].final
    assert float(run.risk["t"][150].mid()) == pytest.approx(teacher_end, rel=1e-12)


def test_interval_stability_quantities_enclose_the_float_ones():
    claim = C.Inequality(name="c", scenario=ONE, model="m", lhs="eta", rhs="stability_limit",
                         domain={"eta": C.Param(0.01, 0.5)})
    ctx = Context(claim, {"eta": 0.4})
    old = flint.ctx.prec
    flint.ctx.prec = 128
    try:
        actx = ArbContext(claim, {"eta": 0.4})
        for name in ("stability_limit", "kernel_norm", "map_radius", "risk_floor", "tr", "lam1"):
            ball, val = actx.value(name), ctx.value(name)
            lo, hi = float(ball.lower()), float(ball.upper())
            assert lo - 1e-12 * abs(val) <= val <= hi + 1e-12 * abs(val), (name, ball, val)
            assert hi - lo <= 1e-12 * abs(val) + 1e-300
    finally:
        flint.ctx.prec = old


def test_certification_declines_what_it_cannot_enclose():
    claim = C.Inequality(name="c", scenario=ONE, model="m", lhs=C.Quantity("excess_risk", method="ode"),
                         rhs=10.0, domain={"eta": C.Param(0.05, 0.3)})
    with pytest.raises(C.CertificationError, match="approximation"):
        C.certify_point(claim, {"eta": 0.1})
    rep = C.check(claim, budget=3)  # "auto": declined, the report says why
    assert rep.certificate.status == "declined" and "approximation" in rep.certificate.reason
    est = C.estimate_cost(claim, {"eta": 0.1})
    assert est["mode_steps"] == 20 * 200


def test_a_point_too_expensive_to_solve_is_invalid_not_a_hang():
    from spectral_theory.claims.claim import MAX_COST

    claim = C.Inequality(name="c", scenario={**ONE, "models": [{"name": "m", "steps": 10**9, "lr": 0.1}]},
                         model="m", lhs="excess_risk", rhs=10.0, method="exact",
                         domain={"eta": C.Param(0.05, 0.3)})
    rec = evaluate_point(claim, {"eta": 0.1})
    assert "error" in rec and "mode-operations" in rec["error"] and f"{MAX_COST:.3g}" in rec["error"]


KD = {"problem": {"spectrum": {"kind": "powerlaw", "a": 1.5, "d": 30}, "target": {"kind": "powerlaw", "b": 2.0},
                  "noise": 0.5},
      "models": [{"name": "T", "steps": 300, "lr": 0.1}, {"name": "S", "steps": 150, "lr": 0.2, "capacity": 20}],
      "transfer": {"kind": "kd", "teacher": "T", "student": "S", "alpha": 0.0}}


def test_transfer_metrics_against_the_models_risks_and_certified():
    claim = C.Equality(name="kd", scenario=KD, model="kd_student", lhs="kd_gain", rhs="E_hard / E_kd",
                       quantities={"E_hard": C.Quantity("excess_risk", model="hard_student"),
                                   "E_kd": C.Quantity("excess_risk", model="kd_student")},
                       rtol=1e-12, domain={"alpha": C.Param(0.0, 1.0), "sigma2": C.Param(0.1, 2.0)})
    rep = C.check(claim, budget=3, strategies=("grid", "sobol"), certify=True)
    assert rep.verdict == "holds" and rep.invalid == 0
    assert rep.certificate.status == "holds"
    # the report's metric against an independent evaluation of the two models
    p = rep.worst["params"]
    prob = st.Problem(st.PowerLawSpectrum(a=1.5, d=30), st.PowerLawTarget(b=2.0), noise=p["sigma2"])
    kd = st.evaluate(st.Distillation(prob, teacher=st.Model("T", steps=300, schedule=0.1),
                                     student=st.Model("S", steps=150, schedule=0.2, capacity=20), alpha=p["alpha"]))
    lo, hi = rep.certificate.values["lhs"]
    assert lo * (1 - 1e-12) <= kd["kd_gain"] <= hi * (1 + 1e-12)


def test_bounds_as_sympy_expressions_and_callables_agree_with_strings():
    import sympy

    sigma2, eta, tr, B = sympy.symbols("sigma2 eta tr B")
    common = dict(scenario=ONE, model="m", lhs="excess_risk", domain={"eta": C.Param(0.05, 0.3)})
    with pytest.raises(SpecError, match="unknown name 'pi'"):  # a file has no pi (write 3.14159...)
        C.Inequality(name="s", rhs="sigma2*eta*tr/(2*B) + pi/100", **common)
    sym = C.Inequality(name="y", rhs=sigma2 * eta * tr / (2 * B) + sympy.pi / 100, **common)
    fn = C.Inequality(name="f", rhs=lambda ctx: ctx.value("sigma2") * ctx.value("eta") * ctx.value("tr")
                      / (2 * ctx.value("B")) + math.pi / 100, **common)
    ratios = [evaluate_point(c, {"eta": 0.2})["ratio"] for c in (sym, fn)]
    assert ratios[0] == pytest.approx(ratios[1], rel=1e-14)
    with pytest.raises(SpecError, match="unknown name 'zz'"):
        C.Inequality(name="z", rhs=sympy.Symbol("zz"), **common)
    with pytest.raises(SpecError, match="cannot be evaluated"):
        C.Inequality(name="z", rhs=sympy.besselj(0, eta), **common)
    # the certificate evaluates the sympy bound (pi as a ball) and the callable (plain arithmetic)
    for c in (sym, fn):
        assert C.certify_point(c, {"eta": 0.2}).status in ("holds", "violated")


def test_oracle_risk_is_the_minimum_of_the_every_step_curve():
    claim = C.Inequality(name="o", scenario=ONE, model="m", lhs="oracle_risk", rhs="excess_risk",
                         domain={"eta": C.Param(0.05, 0.3), "sigma2": C.Param(0.0, 2.0)})
    rep = C.check(claim, budget=6, strategies=("grid", "sobol"), certify=True)
    # the tightest point has oracle = final (a decreasing curve): ratio 1 exactly, which a
    # ball can enclose but not decide
    assert rep.verdict == "holds" and rep.certificate.status in ("holds", "undecided")
    assert rep.certificate.ratio[0] <= 1
    p = rep.worst["params"]
    d = json.loads(json.dumps(ONE))
    d["models"][0]["lr"], d["problem"]["noise"] = p["eta"], p["sigma2"]
    curve = st.predict(st.scenario_from_dict(d), every_step=True)["m"].curve
    assert rep.worst["info"]["lhs"] == pytest.approx(curve.min(), rel=1e-12)
    lo, hi = rep.certificate.values["lhs"]
    assert lo * (1 - 1e-12) <= curve.min() <= hi * (1 + 1e-12)
