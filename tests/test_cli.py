"""Scenario files and the command-line interface, run in-process through cli.main."""

import csv
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import spectral_theory as st
from spectral_theory.cli import main
from spectral_theory.spec import load_scenario, scenario_from_dict

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "distillation.toml"
CHAIN = ROOT / "examples" / "chain.json"


def run_cli(args, capsys):
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_example_files_parse():
    sc = load_scenario(EXAMPLE)
    assert [m.name for m in sc.models] == ["teacher", "student"]
    assert sc.model("student").teacher == "teacher" and sc.model("student").alpha == 0.0
    assert isinstance(sc.model("student").schedule, st.StepDecay)
    ch = load_scenario(CHAIN)
    assert ch.problem.kappa == 2.5
    assert isinstance(ch.model("g2").schedule, st.Piecewise)


def test_run_json_schema(capsys, tmp_path):
    code, out, _ = run_cli(["run", CHAIN, "--format", "json"], capsys)
    assert code == 0
    data = json.loads(out)
    assert set(data["models"]) == {"g0", "g1", "g2"}
    g1 = data["models"]["g1"]
    assert g1["steps"] == [0, 1, 10, 100, 200]
    assert len(g1["excess_risk"]) == 5 and len(g1["bias"]) == 5 and len(g1["disagreement"]) == 5
    assert "modes" in g1 and len(g1["modes"]["second_moment"]) == 5
    assert data["method"] == "exact" and "risk" in data["conventions"]
    res = st.predict(load_scenario(CHAIN))
    np.testing.assert_allclose(g1["excess_risk"], res["g1"].excess_risk, rtol=1e-15)


def test_run_csv_and_out_file(capsys, tmp_path):
    out_file = tmp_path / "sub" / "r.csv"
    code, out, _ = run_cli(["run", CHAIN, "--format", "csv", "--out", out_file, "--at", "0,5"], capsys)
    assert code == 0 and out == ""
    rows = list(csv.DictReader(io.StringIO(out_file.read_text())))
    assert [r["step"] for r in rows] == ["0", "5"] * 3
    assert {"model", "step", "excess_risk", "bias", "variance"} <= set(rows[0])


def test_simulate_json(capsys):
    code, out, _ = run_cli(["simulate", CHAIN, "--reps", "50", "--seed", "3", "--format", "json",
                            "--no-modes", "--no-progress"], capsys)
    assert code == 0
    data = json.loads(out)
    assert data["reps"] == 50 and data["seed"] == 3
    assert len(data["models"]["g2"]["excess_risk_se"]) == 5
    assert "modes" not in data["models"]["g2"]


def test_table_and_stability_and_demo(capsys):
    code, out, _ = run_cli(["run", CHAIN], capsys)
    assert code == 0 and "excess risk" in out and "g2" in out
    code, out, _ = run_cli(["stability", CHAIN], capsys)
    assert code == 0 and out.count(": stable") == 3
    code, out, _ = run_cli(["demo"], capsys)
    assert code == 0 and "KD gain" in out and "PGR" in out


def _write(tmp_path, text, name="s.toml"):
    p = tmp_path / name
    p.write_text(text)
    return p


BASE = """
[problem]
spectrum = { kind = "powerlaw", a = 1.5, d = 20 }
target = { kind = "powerlaw", b = 2.0 }
noise = 0.1
[[models]]
name = "m"
steps = 10
"""


@pytest.mark.parametrize(
    "extra, fragment",
    [
        ("lr = -0.5\n", "models[0].lr: got -0.5"),
        ("lr = 0.1\nbatchsize = 3\n", "models[0].batchsize: got 3; unknown key"),
        ("lr = 0.1\nteacher = 'x'\n", "models['m'].teacher: got 'x'; must name a model listed earlier"),
        ("schedule = { kind = 'cosine', lr = 0.1 }\n", "models[0].schedule.kind: got 'cosine'"),
        ("schedule = { kind = 'step_decay', lr = 0.1, factor = 0.5, every = 0 }\n", "models[0].schedule.every: got 0"),
        ("", "models[0].lr: got None; is required"),
    ],
)
def test_cli_errors_name_the_field(capsys, tmp_path, extra, fragment):
    p = _write(tmp_path, BASE + extra)
    out_file = tmp_path / "out.json"
    code, out, err = run_cli(["run", p, "--out", out_file], capsys)
    assert code == 2
    assert fragment in err
    assert not out_file.exists()


def test_unstable_config_is_reported(capsys, tmp_path):
    p = _write(tmp_path, BASE + "lr = 2.0\n")
    out_file = tmp_path / "out.json"
    code, _, err = run_cli(["run", p, "--format", "json", "--out", out_file], capsys)
    assert code == 2 and "unstable" in err and "largest stable constant step" in err
    assert not out_file.exists() and not list(tmp_path.glob(".out.json*"))
    code, _, err = run_cli(["simulate", p, "--reps", "10"], capsys)
    assert code == 2 and "unstable" in err
    code, out, _ = run_cli(["stability", p], capsys)
    assert "UNSTABLE" in out


def test_problem_level_errors():
    with pytest.raises(st.SpecError, match=r"problem.spectrum.kind: got 'zipf'"):
        scenario_from_dict({"problem": {"spectrum": {"kind": "zipf"}, "target": {"kind": "powerlaw", "b": 2}},
                            "models": [{"name": "m", "steps": 1, "lr": 0.1}]})
    with pytest.raises(st.SpecError, match=r"problem.spectrum.a: got -2"):
        scenario_from_dict({"problem": {"spectrum": {"kind": "powerlaw", "a": -2, "d": 3},
                                        "target": {"kind": "powerlaw", "b": 2}},
                            "models": [{"name": "m", "steps": 1, "lr": 0.1}]})
    with pytest.raises(st.SpecError, match="kurtosis"):
        scenario_from_dict({"problem": {"spectrum": {"kind": "powerlaw", "a": 2, "d": 3},
                                        "target": {"kind": "powerlaw", "b": 2}, "features": "gaussian",
                                        "kurtosis": 2.0},
                            "models": [{"name": "m", "steps": 1, "lr": 0.1}]})


def test_console_script_installed():
    assert shutil.which("spectral-theory"), "install the package (README) to get the console script"
    r = subprocess.run(["spectral-theory", "run", str(CHAIN), "--at", "0,1"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "g0" in r.stdout


def test_module_entry_point():
    r = subprocess.run([sys.executable, "-m", "spectral_theory.cli", "run", str(CHAIN), "--at", "0"],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
