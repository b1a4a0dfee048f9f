"""``spectral-theory check CLAIMS``: table and JSON reports, exit status 0 (all hold) / 1 (a
violation) / 2 (bad input: one error line, nothing written), witness files, the strict claim-
file reader."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_cli

import spectral_theory as st

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = str(ROOT / "examples" / "claims.toml")
SCN = ('[scenario]\nproblem = { spectrum = { kind = "powerlaw", a = 1.5, d = 20 }, '
       'target = { kind = "powerlaw", b = 2.0 }, noise = 0.1 }\nmodels = [{ name = "m", steps = 100, lr = 0.1 }]\n')


def _run(capsys, *argv):
    return run_cli(argv, capsys)


def test_example_file_reports_the_violation_and_writes_its_witness(capsys, tmp_path):
    code, out, err = _run(capsys, "check", EXAMPLE, "--budget", "6", "--witness-dir", str(tmp_path),
                          "--only", "risk_never_increases,bias_plus_variance")
    assert code == 1, err
    row = next(line for line in out.splitlines() if line.startswith("risk_never_increases "))
    assert row.split()[:3] == ["risk_never_increases", "monotone", "VIOLATED"]
    assert "CERTIFIED COUNTEREXAMPLE" in out
    assert "1 of 2 claims hold on the points tried; VIOLATED: risk_never_increases" in out
    witness = tmp_path / "risk_never_increases.json"
    sc = st.load_scenario(witness)
    curve = st.predict(sc, at=[0, 10, 100, 1000, 2000])["m"].excess_risk
    assert any(curve[j + 1] > curve[j] for j in range(4))  # the witness reproduces the rise
    assert [p.name for p in tmp_path.iterdir()] == ["risk_never_increases.json"]


def test_json_report_and_exit_zero_when_all_hold(capsys):
    code, out, err = _run(capsys, "check", EXAMPLE, "--budget", "6", "--format", "json", "--no-certify",
                          "--only", "bias_plus_variance,gaussian_b1_criterion")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["all_hold"] is True and doc["violated"] == []
    names = [c["claim"] for c in doc["claims"]]
    assert names == ["bias_plus_variance", "gaussian_b1_criterion"]
    for c in doc["claims"]:
        assert c["verdict"] == "holds" and c["points"] <= 6 and "seconds" not in c
        assert c["certificate"] is None


def test_out_file_is_written_atomically(capsys, tmp_path):
    out = tmp_path / "report.json"
    code, text, err = _run(capsys, "check", EXAMPLE, "--budget", "4", "--format", "json", "--no-certify",
                           "--only", "gaussian_b1_criterion", "--out", str(out))
    assert code == 0 and text == "" and json.loads(out.read_text())["all_hold"]


def _file(tmp_path, body: str, name="c.toml") -> str:
    f = tmp_path / name
    f.write_text(body)
    return str(f)


@pytest.mark.parametrize("body, msg", [
    (SCN + '[[claims]]\nname = "x"\nkind = "inequality"\nlhz = "excess_risk"\n',
     "claims[0].lhz: got 'excess_risk'; unknown key; allowed keys:"),
    (SCN + '[[claims]]\nname = "x"\nkind = "theorem"\n', "claims[0].kind: got 'theorem'; must be one of"),
    (SCN + '[[claims]]\nname = "x"\nkind = "inequality"\nlhs = "excess_risk"\nrhs = "os.getcwd()"\n',
     "claims[0].rhs: got 'os.getcwd()'; unsafe or invalid expression: attribute access"),
    (SCN + '[[claims]]\nname = "x"\nkind = "inequality"\nlhs = "excess_risk"\n'
     'domain = { eta = { lo = 0.5, hi = 0.1 } }\n', "claims[0].domain.eta.hi: got 0.1; must be >= lo"),
    (SCN + '[[claims]]\nname = "x"\nkind = "inequality"\nlhs = "excess_risk"\n'
     'domain = { eta = { lo = 0.1, hi = 0.5, step = 2 } }\n', "claims[0].domain.eta.step: got 2; unknown key"),
    (SCN + '[[claims]]\nname = "x"\nkind = "inequality"\nlhs = "risk_of_ruin"\n',
     "unknown name 'risk_of_ruin'"),
    (SCN + '[[claims]]\nname = "x"\nkind = "equality"\nlhs = "excess_risk"\nrhs = "bias"\nrtol = -1\n',
     "claims[0].rtol: got -1; must be a finite number >= 0"),
    (SCN + '[search]\nbudget = 0\n[[claims]]\nname = "x"\nkind = "inequality"\nlhs = "excess_risk"\n',
     "search.budget: got 0; must be an integer in [1, 1000000]"),
    (SCN + '[[claims]]\nname = "x"\nkind = "rate"\nexpected = "-1"\nwindow = [10, 5]\n',
     "claims[0].window: got (10, 5); must be [t_lo, t_hi] with 0 < t_lo < t_hi"),
    ('[[claims]]\nname = "x"\nkind = "inequality"\nlhs = "excess_risk"\n', "claims[0].scenario: got None; is required"),
    (SCN + 'extra = 1\n[[claims]]\nname = "x"\nkind = "inequality"\nlhs = "excess_risk"\n',
     "scenario.extra: got 1; unknown key"),
    (SCN.replace("noise = 0.1", "noize = 0.1") + '[[claims]]\nname = "x"\nkind = "inequality"\nlhs = "excess_risk"\n'
     'model = "m"\n', "problem.noize: got 0.1; unknown key"),
])
def test_bad_claim_files_are_one_error_line(capsys, tmp_path, body, msg):
    code, out, err = _run(capsys, "check", _file(tmp_path, body), "--budget", "2", "--no-certify")
    assert code == 2, (out, err)
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("spectral-theory: error: "), err
    assert msg in lines[0], lines[0]


def test_bad_flags_and_paths(capsys, tmp_path):
    for argv, msg in [
        (["check", EXAMPLE, "--only", "nope"], "--only: got 'nope'; must name claims of the file"),
        (["check", EXAMPLE, "--budget", "0"], "--budget: got 0; must be an integer >= 1"),
        (["check", EXAMPLE, "--witness-dir", str(tmp_path / "missing")], "--witness-dir"),
        (["check", str(tmp_path / "none.toml")], "claims file: got"),
        (["check", _file(tmp_path, "not [valid", "bad.toml")], "must be valid TOML"),
        (["check", _file(tmp_path, SCN, "same.toml"), "--out", str(tmp_path / "same.toml")], "is the claim file"),
    ]:
        code, out, err = _run(capsys, *argv)
        assert code == 2 and out == "" and msg in err, (argv, err)
        assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "missing").exists()


def test_claim_file_scenario_by_path_relative_to_the_file(capsys, tmp_path):
    (tmp_path / "s.toml").write_text(SCN.replace("[scenario]\n", ""))
    body = ('scenario = "s.toml"\n[[claims]]\nname = "pos"\nkind = "inequality"\nmodel = "m"\nlhs = "0"\n'
            'rhs = "excess_risk"\ndomain = { eta = { lo = 0.01, hi = 0.2 } }\n')
    code, out, err = _run(capsys, "check", _file(tmp_path, body), "--budget", "3", "--no-certify")
    assert code == 0, err
    assert "pos" in out


def _untimed(text: str) -> list[str]:
    import re

    text = re.sub(r"\d+\.\d+ s\b", "T s", text)  # timings
    lines = []
    for line in text.splitlines():
        if line.startswith(("bias_plus_variance ", "gaussian_b1_criterion ", "risk_bound_constant ",
                            "risk_never_increases ")):
            line = line.rsplit(None, 1)[0]  # the table's seconds column
        lines.append(line.rstrip())
    return lines


@pytest.mark.slow
def test_readme_shows_what_check_prints(capsys, tmp_path, monkeypatch):
    """The README's report of examples/claims.toml is the command's output (timings aside)."""
    readme = (ROOT / "README.md").read_text()
    block = readme.split("$ spectral-theory check examples/claims.toml --witness-dir .\n", 1)[1]
    block = block.split("\n$ spectral-theory run", 1)[0]
    monkeypatch.chdir(tmp_path)
    code, out, err = _run(capsys, "check", EXAMPLE, "--witness-dir", ".")
    assert code == 1
    assert _untimed(out) == _untimed(block + "\n")


def test_forced_certification_that_cannot_be_done_is_an_error_line(capsys, tmp_path):
    body = (SCN + '[[claims]]\nname = "ode"\nkind = "inequality"\nmodel = "m"\nrhs = "10"\n'
            'lhs = "E_ode"\nquantities = { E_ode = { quantity = "excess_risk", method = "ode" } }\n'
            'domain = { eta = { lo = 0.01, hi = 0.2 } }\n')
    code, out, err = _run(capsys, "check", _file(tmp_path, body), "--budget", "2", "--certify")
    assert code == 2 and out == "" and "--certify: got True; cannot certify" in err and "approximation" in err
    code, out, err = _run(capsys, "check", _file(tmp_path, body), "--budget", "2")  # auto: declined, said
    assert code == 0 and "certificate: quantity 'excess_risk' uses method 'ode'" in out


def test_invalid_points_are_reported_with_a_reason(capsys, tmp_path):
    body = (SCN + '[[claims]]\nname = "modes"\nkind = "inequality"\nmodel = "m"\nlhs = "M(15)"\nrhs = "10"\n'
            'domain = { d = { lo = 5, hi = 30, integer = true } }\n')
    code, out, err = _run(capsys, "check", _file(tmp_path, body), "--budget", "6", "--no-certify")
    assert code == 0, err
    assert "invalid points, e.g.: M(15): got 15; mode index must be <= d" in out
