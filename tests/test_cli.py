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
    assert "modes" not in g1 and "mode_curves" not in g1  # per-mode arrays are opt-in
    assert data["method"] == "exact" and "risk" in data["conventions"]
    res = st.predict(load_scenario(CHAIN))
    np.testing.assert_allclose(g1["excess_risk"], res["g1"].excess_risk, rtol=1e-15)
    code, out, _ = run_cli(["run", CHAIN, "--format", "json", "--modes"], capsys)
    g1 = json.loads(out)["models"]["g1"]
    assert code == 0 and len(g1["modes"]["second_moment"]) == 5 and len(g1["modes"]["normalised"]) == 5
    code, out2, _ = run_cli(["run", CHAIN, "--format", "json", "--no-modes"], capsys)  # the default, accepted
    assert code == 0 and "modes" not in json.loads(out2)["models"]["g1"]


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


TRANSIENT = "schedule = { kind = 'piecewise', lrs = [0.6, 0.3], lengths = [3, 7] }\n"  # limit 0.5595
FINAL_UNSTABLE = "schedule = { kind = 'piecewise', lrs = [0.3, 0.6], lengths = [7, 3] }\n"


@pytest.mark.parametrize("command", ["run", "simulate"])
def test_stability_flags_and_warning_lines(capsys, tmp_path, command):
    """docs/theory.md §5 on the command line: a transient schedule is computed with one
    ``spectral-theory: warning:`` line (no Python warning source lines); --strict-stability
    refuses it; --allow-unstable computes a final unstable phase too, silently."""
    extra = ["--reps", "8"] if command == "simulate" else []
    transient = _write(tmp_path, BASE + TRANSIENT, "transient.toml")
    final = _write(tmp_path, BASE + FINAL_UNSTABLE, "final.toml")
    code, out, err = run_cli([command, transient, "--at", "0,10", *extra], capsys)
    assert code == 0 and "excess risk" in out
    lines = [x for x in err.splitlines() if "heavy-tailed" not in x]  # Monte Carlo's own warning
    assert len(lines) == 1 and lines[0].startswith("spectral-theory: warning: model 'm': steps 0-2 (3 of 10")
    assert "stability limit 0.559545" in lines[0] and "peak growth factor" in lines[0]
    assert "RuntimeWarning" not in err and "warnings.warn" not in err
    code, out, err = run_cli([command, transient, "--strict-stability", *extra], capsys)
    assert code == 2 and out == ""
    assert err.startswith("spectral-theory: error: models['m']: step size 0.6 at step 0 is unstable")
    assert "on_unstable='raise'" in err and "warning" not in err
    code, _, err = run_cli([command, final, *extra], capsys)
    assert code == 2 and "final constant phase (steps 7-9)" in err and "0.559545" in err
    code, out, err = run_cli([command, final, "--allow-unstable", "--at", "0,10", *extra], capsys)
    assert code == 0 and "excess risk" in out
    assert all("heavy-tailed" in x for x in err.splitlines())  # no stability warning
    with pytest.raises(SystemExit):  # one or the other
        main([command, str(transient), "--allow-unstable", "--strict-stability"])


def test_stability_command_names_transient_and_final_phases(capsys, tmp_path):
    code, out, _ = run_cli(["stability", _write(tmp_path, BASE + TRANSIENT)], capsys)
    assert code == 0 and "above the limit at steps 0-2 (peak growth factor" in out
    assert "computed with a warning" in out and "UNSTABLE" not in out
    code, out, _ = run_cli(["stability", _write(tmp_path, BASE + FINAL_UNSTABLE)], capsys)
    assert code == 0 and "UNSTABLE (the final constant phase, from step 7" in out


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


# ---------------------------------------------------------------------------- handlers and --method
TRANSFER = """
[problem]
spectrum = { kind = "powerlaw", a = 1.5, d = 30 }
target = { kind = "powerlaw", b = 2.0 }
noise = 0.5
[[models]]
name = "big"
steps = 400
lr = 0.2
[[models]]
name = "small"
capacity = 10
steps = 200
lr = 0.3
[transfer]
teacher = "big"
student = "small"
weak = "small"
strong = "big"
[output]
at = [0, 50, 200]
"""


@pytest.fixture
def transfer_file(tmp_path):
    return _write(tmp_path, TRANSFER, "t.toml")


def test_every_subcommand_has_its_handler(capsys, transfer_file):
    from spectral_theory import cli

    cases = {
        "run": ["run", CHAIN, "--at", "0,5"],
        "simulate": ["simulate", CHAIN, "--at", "0,5", "--reps", "20", "--no-progress"],
        "stability": ["stability", CHAIN],
        "kd": ["kd", transfer_file],
        "w2s": ["w2s", transfer_file],
        "chain": ["chain", transfer_file, "--base", "small", "--generations", "3"],
        "tune": ["tune", transfer_file, "--kind", "kd", "--grid", "3"],
        "map": ["map", transfer_file, "--kind", "kd", "--x", "alpha=0,1", "--y", "student.capacity=5,10"],
        "demo": ["demo"],
    }
    parser = cli.build_parser()
    assert set(cases) == set(parser._subparsers._group_actions[0].choices)  # every subcommand is run here
    for name, argv in cases.items():
        args = parser.parse_args([str(a) for a in argv])
        handler = cli._cmd_transfer if name in ("kd", "w2s", "chain") else getattr(cli, f"_cmd_{name}")
        assert args.handler is handler
        code, out, err = run_cli(argv, capsys)
        assert code == 0 and out, (name, err)


@pytest.mark.parametrize("kind", ["kd", "w2s", "chain"])
def test_method_reaches_the_solver_of_transfer_commands(capsys, transfer_file, kind):
    code, out, err = run_cli([kind, transfer_file, "--method", "renewal", "--format", "json"], capsys)
    assert code == 0, err
    data = json.loads(out)
    assert data["method"] == "renewal"  # auto would choose exact on a problem this small
    code, out, _ = run_cli([kind, transfer_file, "--format", "json"], capsys)
    assert json.loads(out)["method"] == "exact"


def test_method_reaches_the_solver_of_tune_and_map(capsys, transfer_file):
    for method in ("renewal", "exact"):
        code, out, err = run_cli(["tune", transfer_file, "--kind", "kd", "--grid", "3", "--method", method,
                                  "--format", "json"], capsys)
        assert code == 0, err
        assert json.loads(out)["method"] == method
        code, out, err = run_cli(["tune", transfer_file, "--kind", "kd", "--param", "lr", "--grid", "3", "--objective", "oracle",
                                  "--method", method, "--format", "json"], capsys)
        assert code == 0, err
        assert json.loads(out)["method"] == method
        code, out, err = run_cli(["map", transfer_file, "--kind", "kd", "--x", "alpha=0,1", "--y",
                                  "student.capacity=5,10", "--method", method, "--format", "json"], capsys)
        assert code == 0, err
        assert json.loads(out)["method"] == method
    code, out, _ = run_cli(["tune", transfer_file, "--kind", "kd", "--grid", "3"], capsys)
    assert "(exact)" in out.splitlines()[0]


def test_method_with_simulate_is_an_error_naming_both(capsys, transfer_file):
    code, _, err = run_cli(["kd", transfer_file, "--simulate", "--method", "exact", "--reps", "10"], capsys)
    assert code == 2 and err.startswith("spectral-theory: error: ")
    assert "--method" in err and "--simulate" in err
    with pytest.raises(SystemExit):  # simulate is Monte Carlo: it has no --method at all
        main(["simulate", str(CHAIN), "--method", "exact"])
    capsys.readouterr()


def test_literal_choices_are_their_registries():
    """The parser's literal choices (no imports at parser build) are the registries'."""
    from spectral_theory import cli, demo
    from spectral_theory.solvers import METHODS

    assert set(cli.METHOD_NAMES) == set(METHODS)
    assert set(cli.DEMOS) == set(demo.DEMOS)


def test_cli_defaults_are_the_api_defaults():
    import inspect

    from spectral_theory import cli
    from spectral_theory.transfer import tuning

    def default(fn, name):
        return inspect.signature(fn).parameters[name].default

    d = cli.API_DEFAULTS
    for fn in (st.simulate, st.evaluate):
        assert (default(fn, "reps"), default(fn, "seed")) == (d["reps"], d["seed"])
    for fn in (st.tune_alpha, st.tune_lr):
        assert (default(fn, "grid"), default(fn, "objective")) == (d["grid"], d["objective"])
        assert default(fn, "method") == "auto"
    assert default(st.transfer_map, "method") == "auto"
    assert tuple(d["objectives"]) == tuning.OBJECTIVES
    args = cli.build_parser().parse_args(["tune", "x.toml"])
    assert cli._given(args, "grid", "objective", "method") == {}  # left to the API


# ---------------------------------------------------------------------------- output: modes, npz, JSON
def test_npz_sidecar_round_trips(capsys, tmp_path):
    npz = tmp_path / "out" / "r.npz"
    code, out, _ = run_cli(["run", CHAIN, "--npz", npz, "--format", "json"], capsys)
    assert code == 0 and "modes" not in json.loads(out)["models"]["g1"]
    res = st.predict(load_scenario(CHAIN))
    arrays = res.arrays()
    assert "g1/modes/second_moment" in arrays and "g1/steps" in arrays
    with np.load(npz) as z:
        assert set(z.files) == set(arrays)
        for k, v in arrays.items():
            assert z[k].dtype == v.dtype and z[k].shape == v.shape
            np.testing.assert_array_equal(z[k], v)
    np.testing.assert_array_equal(arrays["g1/modes/second_moment"], res["g1"].modes.second_moment)
    # the Python API writes the same archive, to the path as named
    res.save_npz(tmp_path / "api_copy")
    with np.load(tmp_path / "api_copy") as z:
        np.testing.assert_array_equal(z["g2/excess_risk"], res["g2"].excess_risk)
    assert not list(npz.parent.glob(".*.tmp"))


def test_transfer_npz_and_modes(capsys, transfer_file, tmp_path):
    npz = tmp_path / "kd.npz"
    code, out, _ = run_cli(["kd", transfer_file, "--format", "json", "--npz", npz], capsys)
    assert code == 0
    data = json.loads(out)
    assert "profiles" not in data and "normalised_error" not in data["models"]["kd_student"]
    from spectral_theory.spec import read_scenario_file
    from spectral_theory.transfer import transfer_from_dict

    rep = st.evaluate(transfer_from_dict(read_scenario_file(transfer_file), kind="kd", name="t"))
    with np.load(npz) as z:
        assert set(z.files) == set(rep.arrays())
        np.testing.assert_array_equal(z["profiles/kd_normalised"], rep.profiles["kd_normalised"])
        np.testing.assert_array_equal(z["models/kd_student/normalised_error"], rep.models["kd_student"].normalised)
    code, out, _ = run_cli(["kd", transfer_file, "--format", "json", "--modes"], capsys)
    data = json.loads(out)
    assert len(data["profiles"]["kd_normalised"]) == 30 and len(data["models"]["teacher"]["normalised_error"]) == 30


def _old_as_list(a):
    """The per-element encoder that ``as_list`` replaced (the reference)."""
    import math

    def num(v):
        v = float(v)
        if math.isnan(v):
            return None
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return v

    return [num(v) for v in np.asarray(a, dtype=float).ravel()]


def test_vectorised_json_encoding_matches_the_per_element_encoder(monkeypatch):
    from spectral_theory import result

    rng = np.random.default_rng(0)
    finite = np.concatenate([rng.standard_normal(500) * 10.0 ** rng.integers(-300, 300, 500),
                             [0.0, -0.0, 1.0, 5e-324, 1.7976931348623157e308, 0.1, 1 / 3, 2.0**53 + 1]])
    assert json.dumps(result.as_list(finite)) == json.dumps(_old_as_list(finite))
    assert json.dumps(result.as_list(finite.reshape(2, -1))) == json.dumps(_old_as_list(finite.reshape(2, -1)))
    assert json.dumps(result.as_list(np.arange(5))) == json.dumps(_old_as_list(np.arange(5)))
    odd = np.array([1.5, np.nan, np.inf, -np.inf, -0.0])
    assert result.as_list(odd) == _old_as_list(odd) == [1.5, None, "inf", "-inf", -0.0]
    # whole documents, per-mode arrays included: the same text as with the old encoder
    res = st.predict(load_scenario(CHAIN))
    sim = st.simulate(load_scenario(CHAIN), reps=20, seed=1)
    new = [res.to_json(modes=True), res.to_json(), sim.to_json(modes=True), res.to_csv(), res.table()]
    monkeypatch.setattr(result, "as_list", _old_as_list)
    old = [res.to_json(modes=True), res.to_json(), sim.to_json(modes=True), res.to_csv(), res.table()]
    assert new == old
    # CSV and table rows: the same values and types as the old per-element rows
    for r in (res, sim):
        ref = [{"model": name, "step": int(t), "excess_risk": float(m.excess_risk[j]),
                **{k: (None if getattr(m, k) is None else float(getattr(m, k)[j]))
                   for k in ("excess_risk_se", "excess_risk_ci_low", "excess_risk_ci_high", "bias",
                             "variance", "disagreement", "disagreement_se", "disagreement_ci_low",
                             "disagreement_ci_high")}}
               for name, m in r.models.items() for j, t in enumerate(m.steps)]
        rows = r.rows()
        assert rows == ref and [list(map(type, x.values())) for x in rows] == [list(map(type, x.values())) for x in ref]


# ---------------------------------------------------------------------------- import cost
def _modules_after(code: str) -> set[str]:
    """The modules a fresh interpreter has imported after running ``code``."""
    code += "\nimport sys\nsys.stderr.write('MODULES ' + ' '.join(sys.modules))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    return set(r.stderr.rpartition("MODULES ")[2].split())


def test_import_does_not_import_scipy():
    mods = _modules_after("import spectral_theory")
    assert not any(m == "scipy" or m.startswith("scipy.") for m in mods)
    assert "numpy" not in mods


@pytest.mark.parametrize("argv", [["--help"], ["run", "--help"], ["kd", "--help"], ["map", "--help"]])
def test_help_imports_no_numpy(argv):
    mods = _modules_after(f"from spectral_theory.cli import main\ntry:\n    main({argv!r})\n"
                          "except SystemExit as e:\n    assert e.code == 0")
    assert "numpy" not in mods and "spectral_theory.solvers" not in mods
