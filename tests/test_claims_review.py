"""Claims: the review findings of issue 10, each pinned by an independent computation (exact
rationals, arb balls built by hand, the definition of the quantity)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import flint  # the certified extra, installed with the test extra
import pytest

from spectral_theory import claims as C
from spectral_theory.cli import main

ONE = {"problem": {"spectrum": {"kind": "powerlaw", "a": 1.5, "d": 20},
                   "target": {"kind": "powerlaw", "b": 2.0}, "noise": 0.1},
       "models": [{"name": "m", "steps": 50, "lr": 0.1}]}
HEAD = ('[scenario]\nproblem = { spectrum = { kind = "powerlaw", a = 1.5, d = 20 }, '
        'target = { kind = "powerlaw", b = 2.0 }, noise = 0.1 }\nmodels = [{ name = "m", steps = 50, lr = 0.1 }]\n'
        '[search]\nbudget = 4\n')


def _write(tmp_path: Path, body: str) -> str:
    p = tmp_path / "c.toml"
    p.write_text(HEAD + body)
    return str(p)


# ---------------------------------------------------------------------------- 1: verdict and numbers
def test_literals_are_read_as_the_nearest_double_like_parameters():
    # eta = 0.2 (the double) and the literal 0.2 (the same double): eta <= 0.2 holds exactly there,
    # so the certificate must say so (read as the decimal 0.2 the literal is smaller than the double)
    assert Fraction(0.2) > Fraction(2, 10)
    c = C.Inequality(name="le", scenario=ONE, model="m", lhs="eta", rhs="0.2",
                     domain={"eta": C.Param(values=[0.2])})
    cert = C.certify_point(c, {"eta": 0.2})
    assert cert.status == "holds" and cert.ratio == (1.0, 1.0)


def test_certified_violation_decides_the_verdict_and_exit_status(capsys, tmp_path):
    # the double next to 0.2 is above the double 0.2 by one ulp: the float ratio is 1 + 2^-53 * ...,
    # inside the search's allowance rtol = 1e-9, so the float search says 'holds'; exactly it is > 1
    above = 0.2000000000000001
    assert Fraction(above) > Fraction(0.2)
    c = C.Inequality(name="le", scenario=ONE, model="m", lhs="eta", rhs="0.2",
                     domain={"eta": C.Param(values=[0.1, above])})
    rep = C.check(c, budget=4)
    assert rep.worst["ratio"] <= 1 + 1e-9  # the float search alone sees it hold
    assert rep.certificate.status == "violated"
    assert rep.verdict == "violated" and rep.verdict_from == "certificate" and rep.margin is None
    assert "verdict from the certificate" in rep.summary()
    path = _write(tmp_path, f'[[claims]]\nname = "le"\nkind = "inequality"\nmodel = "m"\nlhs = "eta"\nrhs = "0.2"\n'
                            f'domain = {{ eta = {{ values = [0.1, {above!r}] }} }}\n')
    assert main(["check", path]) == 1
    assert "VIOLATED" in capsys.readouterr().out


def test_strict_inequality_at_equality_is_violated(capsys, tmp_path):
    c = C.Inequality(name="lt", scenario=ONE, model="m", lhs="eta", rhs="0.2", op="<",
                     domain={"eta": C.Param(values=[0.2])})
    rep = C.check(c, budget=2)
    assert rep.certificate.status == "violated" and rep.verdict == "violated"
    path = _write(tmp_path, '[[claims]]\nname = "lt"\nkind = "inequality"\nmodel = "m"\nlhs = "eta"\nrhs = "0.2"\n'
                            'op = "<"\ndomain = { eta = { lo = 0.01, hi = 0.2 } }\n')
    assert main(["check", path]) == 1
    capsys.readouterr()


def test_pi_is_a_ball_that_contains_pi_in_certificates():
    import sympy

    c = C.Inequality(name="pi", scenario=ONE, model="m", lhs=sympy.pi, rhs="3.14159265358979312",
                     domain={"eta": C.Param(values=[0.1])})
    cert = C.certify_point(c, {"eta": 0.1})
    # pi > double(pi) = 3.141592653589793115997...: the claim pi <= double(pi) is false
    assert cert.status == "violated"


# ---------------------------------------------------------------------------- 2: monotone margin
def _balls(ctx):
    p = int(ctx.params["p"])
    if hasattr(ctx, "arb"):  # pair (0,1): ratio 0.9 exactly; pair (1,2): 0.85 +- 0.5, straddling 1
        return [flint.arb(1), flint.arb("0.9"), flint.arb(0.9 * 0.85, 0.45)][p]
    return [1.0, 0.9, 0.9 * 0.85][p]


def test_monotone_certificate_takes_the_interval_max_over_every_pair():
    c = C.Monotone(name="mono", scenario=ONE, model="m", value=_balls, param="p", values=(0, 1, 2),
                   domain={"eta": C.Param(values=[0.1])})
    cert = C.certify_point(c, {"eta": 0.1}, max_prec=128)
    # the pair (1, 2) may rise (its ratio ball reaches 1.35): nothing rigorous can be said
    assert cert.status == "undecided" and cert.ratio[1] >= 1.3
    assert "rigorous margin" not in cert.summary()


# ---------------------------------------------------------------------------- 3: cost estimate
SMALL = {**ONE, "models": [{"name": "m", "steps": 10, "lr": 0.2}]}


@pytest.mark.parametrize("kind", ["rate", "monotone"])
def test_cost_estimate_counts_each_value_of_a_varied_horizon(kind):
    if kind == "rate":
        c = C.Rate(name="r", scenario=SMALL, model="m", quantity="excess_risk", expected=-0.5, param="T",
                   values=(100, 1000, 10000), band=0.05, domain={"eta": C.Param(0.1, 0.2)})
    else:
        c = C.Monotone(name="mo", scenario=SMALL, model="m", value="excess_risk", param="T",
                       values=(100, 1000, 10000), domain={"eta": C.Param(0.1, 0.2)})
    truth = 20 * (100 + 1000 + 10000)  # d modes, each stepped T times, for each T
    assert C.estimate_cost(c, {"eta": 0.1})["mode_steps"] == truth
    cert = C.certify_point(c, {"eta": 0.1})
    assert cert.mode_steps == truth  # the sub-contexts' runs are counted in the certificate


def test_cost_estimate_counts_quantities_with_their_own_scenario_and_rows():
    c = C.Inequality(name="bv", scenario=SMALL, model="m", lhs="bias + variance",
                     rhs="2 * quiet", quantities={"quiet": C.Quantity("excess_risk", set={"models.m.steps": 30})},
                     domain={"eta": C.Param(0.1, 0.2)})
    # bias row + variance row at T = 10, the full row again for 'quiet' (a name) at T = 10, and
    # the quantity's own scenario at T = 30
    est = C.estimate_cost(c, {"eta": 0.1})
    cert = C.certify_point(c, {"eta": 0.1})
    assert cert.mode_steps == 20 * (10 + 10 + 30)
    assert cert.mode_steps <= est["mode_steps"] <= 20 * (10 + 10 + 10 + 30)


def test_auto_certification_declines_the_annealed_variance_rate():
    from spectral_theory.claims import library as L

    est = C.estimate_cost(L.LIBRARY["variance_rate_annealed"](), {"a": 2.0})
    # 2000 modes stepped N times for each N of the slope (one variance row each)
    assert est["mode_steps"] == 2000 * (1000 + 3162 + 10000 + 31623 + 100000)
    assert est["seconds"] > 60 and est["seconds_max"] > est["seconds"]


def test_auto_certification_stops_raising_precision_past_its_time():
    c = C.Monotone(name="mono", scenario=ONE, model="m", value=_balls, param="p", values=(0, 1, 2),
                   domain={"eta": C.Param(values=[0.1])})
    cert = C.certify_point(c, {"eta": 0.1}, max_seconds=0.0)
    assert cert.status == "undecided" and cert.prec == 128 and "would pass the time allowed" in cert.reason


# ---------------------------------------------------------------------------- 4: sizes too large
def test_a_horizon_beyond_int64_is_an_invalid_point_naming_the_field():
    from spectral_theory.claims.claim import evaluate_point

    c = C.Limit(name="x", scenario=ONE, model="m", value="excess_risk", limit="risk_floor", param="T",
                values=(10, 1e300), domain={"eta": C.Param(0.01, 0.2)})
    rec = evaluate_point(c, {"eta": 0.1})
    assert "steps" in rec["error"] and "2^62" in rec["error"]
    rep = C.check(c, budget=2)
    assert rep.verdict == "undecided" and rep.invalid == 2


def test_a_dimension_too_large_for_memory_is_an_invalid_point(capsys, tmp_path):
    from spectral_theory.claims.claim import evaluate_point

    c = C.Inequality(name="x", scenario=ONE, model="m", lhs="excess_risk", rhs="1",
                     domain={"d": C.Param(2, 1e12, log=True, integer=True)})
    rec = evaluate_point(c, {"d": 10**12})  # 8 TB of eigenvalues
    assert rec["error"].startswith("out of memory")
    path = _write(tmp_path, '[[claims]]\nname = "x"\nkind = "inequality"\nlhs = "excess_risk"\nrhs = "1"\n'
                            'domain = { d = { values = [2, 1000000000000] } }\n')
    assert main(["check", path, "--no-certify"]) == 0  # d = 2 holds; d = 10^12 is invalid, not the end
    out = capsys.readouterr().out
    assert "1 invalid" in out and "out of memory" in out


# ---------------------------------------------------------------------------- 5: steps beyond training
@pytest.mark.parametrize("make", [
    lambda: C.Monotone(name="x", scenario=ONE, model="m", value="excess_risk", param="t", values=(0, 10, 100000),
                       domain={"eta": C.Param(0.01, 0.2)}),
    lambda: C.Rate(name="x", scenario=ONE, model="m", quantity="excess_risk", expected=-1, window=(1, 1000),
                   domain={"eta": C.Param(0.01, 0.2)}),
    lambda: C.Inequality(name="x", scenario=ONE, model="m", lhs="excess_risk", rhs="1", at=1000,
                         domain={"eta": C.Param(0.01, 0.2)}),
    lambda: C.Inequality(name="x", scenario=ONE, model="m", lhs=C.Quantity("excess_risk", at=51), rhs="1",
                         domain={"eta": C.Param(0.01, 0.2)}),
], ids=["monotone", "rate", "at", "quantity_at"])
def test_a_step_beyond_the_training_is_invalid_not_the_last_step(make):
    from spectral_theory.claims.claim import evaluate_point

    c = make()
    rec = evaluate_point(c, {"eta": 0.1})
    assert "beyond the training of model 'm' (steps = 50)" in rec["error"]
    rep = C.check(c, budget=2)
    assert rep.verdict == "undecided" and rep.invalid == 2


def test_the_default_step_is_the_end_of_each_models_training():
    import spectral_theory as st
    from spectral_theory.claims.claim import evaluate_point

    two = {"problem": ONE["problem"], "models": [{"name": "T", "steps": 80, "lr": 0.1},
                                                 {"name": "S", "steps": 40, "lr": 0.1, "teacher": "T"}]}
    c = C.Inequality(name="x", scenario=two, model="T", lhs=C.Quantity("excess_risk", model="S"), rhs="1",
                     domain={"eta": C.Param(values=[0.1])})
    rec = evaluate_point(c, {"eta": 0.1})  # t defaults to T's end (80): S is read at its own end (40)
    from spectral_theory.claims.scenarios import build

    res = st.predict(build(two), at=[40])
    assert rec["info"]["lhs"] == pytest.approx(float(res["S"].excess_risk[-1]), rel=1e-12)


# ---------------------------------------------------------------------------- 6: found constant for >=
def test_found_constant_of_a_lower_bound_is_the_largest_valid_one():
    import spectral_theory as st
    from spectral_theory.claims.scenarios import build

    two = {**ONE, "models": [{"name": "m", "steps": 200, "lr": 0.2}]}
    c = C.Inequality(name="ge", scenario=two, model="m", lhs="excess_risk", rhs="sigma2", op=">=",
                     constant="find", domain={"eta": C.Param(values=[0.1, 0.2])})
    rep = C.check(c, budget=4, certify=True)
    truth = []
    for eta in (0.1, 0.2):
        sc = build({**two, "models": [{"name": "m", "steps": 200, "lr": eta}]})
        truth.append(float(st.predict(sc, at=[200])["m"].excess_risk[-1]) / 0.1)
    assert rep.constant["bound"] == "C <=" and rep.constant["value"] == pytest.approx(min(truth), rel=1e-10)
    assert f"largest constant found: C <= {min(truth):.6g}" in rep.summary()
    lo, hi = rep.certificate.values["largest_valid"]
    assert lo <= min(truth) * (1 + 1e-12) and hi >= min(truth) * (1 - 1e-12)
    assert "the largest constant is at most" in rep.certificate.summary()
    with pytest.raises(C.SpecError if hasattr(C, "SpecError") else Exception, match="max_constant"):
        C.Inequality(name="ge", scenario=two, model="m", lhs="excess_risk", rhs="sigma2", op=">=",
                     constant="find", max_constant=2.0, domain={"eta": C.Param(values=[0.1])})


# ---------------------------------------------------------------------------- 7: paths must exist
def test_a_parameter_path_that_is_no_field_is_bad_input(capsys, tmp_path):
    with pytest.raises(C.SpecError if hasattr(C, "SpecError") else ValueError, match="models.m.nothere"):
        C.Inequality(name="x", scenario=ONE, model="m", lhs="excess_risk", rhs="1",
                     domain={"eta": C.Param(0.01, 0.2, path="models.m.nothere")})
    path = _write(tmp_path, '[[claims]]\nname = "x"\nkind = "inequality"\nlhs = "excess_risk"\nrhs = "1"\n'
                            'domain = { eta = { lo = 0.01, hi = 0.2, path = "models.m.nothere" } }\n')
    assert main(["check", path]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "nothere" in err and "unknown key" in err and len(err.strip().splitlines()) == 1


# ---------------------------------------------------------------------------- 11: minor
@pytest.mark.parametrize("text", ["eta * 1e-400", "(1/3)**999", "eta * 1e-200 * 1e-200", "1e-200 * 1e-200"])
def test_numbers_that_underflow_to_zero_are_refused(text):
    from spectral_theory.claims import expr as ex

    with pytest.raises(C.SpecError if hasattr(C, "SpecError") else ValueError, match="too small|out of range"):
        ex.parse(text, names={"eta"})
    assert ex.parse("0.0 * eta + 0e5", names={"eta"}) is not None  # a zero written as zero is fine


def test_a_huge_step_gives_an_infinite_ratio_without_numpy_warnings():
    import warnings

    from spectral_theory.claims.claim import evaluate_point

    c = C.Inequality(name="x", scenario=ONE, model="m", lhs="excess_risk", rhs="1",
                     domain={"eta": C.Param(0.01, 1e308, log=True)})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rec = evaluate_point(c, {"eta": 1e308})
    assert rec["ratio"] == float("inf") and not rec["holds"]


def test_a_budget_covering_a_finite_domain_evaluates_all_of_it():
    c = C.Inequality(name="x", scenario=ONE, model="m", lhs="eta", rhs="1",
                     domain={"eta": C.Param(values=[0.1, 0.2])})
    rep = C.check(c, budget=4, certify=False)
    assert rep.points == 2 and rep.worst["params"] == {"eta": 0.2}
