"""Scenario files and the command-line interface, run in-process through cli.main."""

import csv
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli as _run_cli

import spectral_theory as st
from spectral_theory.cli import main
from spectral_theory.spec import load_scenario, scenario_from_dict

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "distillation.toml"
CHAIN = ROOT / "examples" / "chain.json"


def run_cli(args, capsys):
    """``main(args)`` in-process (:func:`conftest.run_cli`): exit status, stdout, stderr. Every
    run, whatever it does, prints no traceback, and an error (exit 2) is one line
    ``spectral-theory: error: ...``."""
    code, out, err = _run_cli(args, capsys)
    assert "Traceback" not in err, err
    if code == 2:
        errors = [x for x in err.splitlines() if not x.startswith("spectral-theory: warning: ")]
        assert len(errors) == 1 and errors[0].startswith("spectral-theory: error: "), err
    return code, out, err


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
    code, out, _ = run_cli(["run", CHAIN, "--format", "csv", "--out", out_file, "--at", "0,5", "--mkdir"], capsys)
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
    assert code == 1 and "UNSTABLE" in out  # the stability command exits 1 on an unstable file


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
    assert code == 1 and "UNSTABLE (the final constant phase, from step 7" in out  # exit 1: unstable


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

    sweep_file = _write(transfer_file.parent, f"""[sweep]
base = "{transfer_file.name}"
kind = "kd"
at = [0, 50]
[design]
kind = "grid"
fields = {{ "alpha" = [0.0, 0.5] }}
""", "s.toml")

    cases = {
        "run": ["run", CHAIN, "--at", "0,5"],
        "simulate": ["simulate", CHAIN, "--at", "0,5", "--reps", "20", "--no-progress"],
        "stability": ["stability", CHAIN],
        "kd": ["kd", transfer_file],
        "w2s": ["w2s", transfer_file],
        "chain": ["chain", transfer_file, "--base", "small", "--generations", "3"],
        "tune": ["tune", transfer_file, "--kind", "kd", "--grid", "3"],
        "map": ["map", transfer_file, "--kind", "kd", "--x", "alpha=0,1", "--y", "student.capacity=5,10"],
        "compare": ["compare", CHAIN, "--at", "0,5", "--reps", "20", "--no-progress"],
        "convert": ["convert", "1", "2", "--from", "paquette"],
        "demo": ["demo"],
        # the figure layer (tests/test_figures.py tests it in depth); replot reads figure's data
        "figure": ["figure", "curves", CHAIN, "--out", transfer_file.parent / "f.png", "--points", "5"],
        "replot": ["replot", transfer_file.parent / "f.json", "--out", transfer_file.parent / "g.svg"],
        "gallery": ["gallery", "--out", transfer_file.parent / "gal", "--only", "denoising-profile"],
        "check": ["check", CHAIN.parent / "claims.toml", "--only", "gaussian_b1_criterion", "--budget", "4",
                  "--no-certify"],
        "sweep": ["sweep", sweep_file, "--no-progress"],
        "validate-sweep": ["validate-sweep", sweep_file, "--reps", "4", "--block", "2", "--z-max", "1e9",
                           "--no-progress"],  # the wiring, not the statistics (tests/test_sweeps.py)
    }
    parser = cli.build_parser()
    assert set(cases) == set(parser._subparsers._group_actions[0].choices)  # every subcommand is run here
    for name, argv in cases.items():
        args = parser.parse_args([str(a) for a in argv])
        handler = cli._cmd_transfer if name in ("kd", "w2s", "chain") else getattr(cli, f"_cmd_{name.replace('-', '_')}")
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
    assert cli.DEMOS == demo.DEMOS  # names and one-line descriptions


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
    code, out, _ = run_cli(["run", CHAIN, "--npz", npz, "--format", "json", "--mkdir"], capsys)
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


# ---------------------------------------------------------------------------- issue 8: error boundary
HUGE = BASE.replace("d = 20", "d = 1e9") + "lr = 0.1\n"


def test_os_errors_are_one_line_errors_naming_the_path(capsys, tmp_path):
    good = _write(tmp_path, BASE + "lr = 0.1\n")
    (tmp_path / "dir.toml").mkdir()
    regular = _write(tmp_path, "x", "regular.txt")
    cases = [
        (["run", tmp_path / "dir.toml"], "dir.toml"),
        (["run", good, "--out", tmp_path], "is a directory"),
        (["run", good, "--out", regular / "r.json"], "is not a directory"),
        (["run", good, "--out", regular / "sub" / "r.json", "--mkdir"], "is not a directory"),
        (["run", good, "--out", tmp_path / "missing" / "r.json"], "--mkdir creates it"),
        (["run", good, "--out", good], "is the scenario file"),
        (["run", good, "--out", tmp_path / "a.npz", "--npz", tmp_path / "a.npz"], "name two files"),
        (["kd", good, "--out", tmp_path], "is a directory"),
    ]
    if Path("/proc/self").is_dir():  # an unwritable location, even for root
        cases.append((["run", good, "--out", "/proc/spectral-theory-test.json"], "/proc/spectral-theory-test.json"))
    before = sorted(tmp_path.rglob("*"))
    for argv, fragment in cases:
        code, out, err = run_cli(argv, capsys)
        assert code == 2 and out == "" and fragment in err, (argv, err)
    assert sorted(tmp_path.rglob("*")) == before  # nothing written, no directory made


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root writes anywhere")
def test_unwritable_directory_is_an_error(capsys, tmp_path):
    good = _write(tmp_path, BASE + "lr = 0.1\n")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    try:
        code, _, err = run_cli(["run", good, "--out", locked / "r.json"], capsys)
        assert code == 2 and "permission denied" in err
    finally:
        locked.chmod(0o700)


def test_non_utf8_scenario_file(capsys, tmp_path):
    p = tmp_path / "latin1.toml"
    p.write_bytes((BASE + "lr = 0.1\nname2 = 'caf\xe9'\n").encode("latin-1"))
    code, _, err = run_cli(["run", p], capsys)
    assert code == 2 and "latin1.toml" in err and "UTF-8" in err


def test_memory_error_and_os_error_become_one_line(capsys, tmp_path, monkeypatch):
    from spectral_theory import cli

    good = _write(tmp_path, BASE + "lr = 0.1\n")

    def oom(args):
        raise MemoryError("Unable to allocate 7.45 GiB for an array with shape (1000000000,) and data type float64")

    def no_file(args):
        raise FileNotFoundError(2, "No such file or directory", "/nowhere/x")

    for handler, fragment in ((oom, "out of memory: Unable to allocate 7.45 GiB"), (no_file, "'/nowhere/x'")):
        monkeypatch.setattr(cli, "_cmd_run", handler)
        code, _, err = run_cli(["run", good, "--out", tmp_path / "r.json"], capsys)
        assert code == 2 and fragment in err
        assert not (tmp_path / "r.json").exists()


def test_huge_d_is_refused_before_allocation_unless_continuum(capsys, tmp_path):
    import tracemalloc

    p = _write(tmp_path, HUGE)
    for argv in (["run", p], ["run", p, "--method", "exact"], ["run", p, "--method", "renewal"],
                 ["simulate", p, "--reps", "2"], ["stability", p], ["compare", p, "--reps", "2"]):
        tracemalloc.start()
        try:
            code, out, err = run_cli([*argv, "--max-memory", "4GiB"], capsys)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert code == 2 and out == "" and "GiB of memory" in err and "d = 1000000000" in err, err
        assert peak < 50 * 2**20  # refused before any d-sized array (7.45 GiB each)
    code, _, err = run_cli(["run", p, "--max-memory", "4GiB"], capsys)
    assert "--method continuum" in err and "over the budget of 4 GiB" in err
    tracemalloc.start()
    try:
        code, out, err = run_cli(["run", p, "--method", "continuum", "--format", "json", "--at", "0,10"], capsys)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert code == 0, err
    assert peak < 200 * 2**20  # no d-sized array (one would be 7.45 GiB)
    data = json.loads(out)
    assert data["method"] == "continuum" and data["scenario"]["problem"]["spectrum"]["d"] == 10**9
    transfer = _write(tmp_path, HUGE + '[[models]]\nname = "s"\nsteps = 10\nlr = 0.1\ncapacity = 5\n', "t.toml")
    code, _, err = run_cli(["kd", transfer, "--max-memory", "4GiB"], capsys)
    assert code == 2 and "--method continuum" in err


def test_max_memory_flag(capsys, tmp_path):
    good = _write(tmp_path, BASE + "lr = 0.1\n")
    code, _, err = run_cli(["run", good, "--max-memory", "1K"], capsys)
    assert code == 2 and "over the budget of 1 KiB (--max-memory 1 KiB)" in err
    code, out, _ = run_cli(["run", good, "--max-memory", "none", "--at", "0"], capsys)
    assert code == 0 and "excess risk" in out
    code, _, err = run_cli(["run", good, "--max-memory", "lots"], capsys)
    assert code == 2 and "--max-memory: got 'lots'" in err
    from spectral_theory.budget import format_size, parse_size

    assert parse_size("4GiB") == parse_size("4G") == 4 * 2**30 and parse_size("2GB") == 2 * 10**9
    assert parse_size("1e9") == 10**9 and parse_size("none") is None
    assert format_size(8 * 10**9) == "7.45 GiB"
    with pytest.raises(ValueError):
        parse_size("-3M")


@pytest.mark.parametrize("method", ["exact", "renewal", "ode", "continuum"])
def test_memory_estimates_bound_the_measured_peaks(method):
    """The budget's estimates are upper bounds of what the solvers allocate (numpy arrays,
    counted by tracemalloc), with and without per-mode and every-step curves: checked without
    the estimate's fixed 32 MiB (4 MiB of slack instead), so that the per-mode terms are what
    is tested."""
    import tracemalloc

    from spectral_theory.budget import _FIXED_BYTES, simulation_estimate, theory_estimate

    def peak_of(fn):
        tracemalloc.start()
        try:
            fn()
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    d = 20000
    prob = st.Problem(st.PowerLawSpectrum(a=1.5, d=d), st.PowerLawTarget(b=2.0), noise=0.1)
    models = [st.Model("g0", steps=50, schedule=0.2)] + [
        st.Model(f"g{g}", steps=50, schedule=0.2, teacher=f"g{g - 1}", alpha=0.3) for g in (1, 2)]
    for G in (1, 3):
        sc = st.Scenario(prob, tuple(models[:G]), output=st.Output(points=20))
        for record_modes, every_step in ((False, False), (True, False), (False, True)):
            est = theory_estimate(sc, method, record_modes=record_modes, every_step=every_step)
            kw = dict(method=method, record_modes=record_modes, every_step=every_step)
            peak = peak_of(lambda: st.predict(sc, **kw))  # noqa: B023
            assert peak <= est.total - _FIXED_BYTES + 4 * 2**20, (G, record_modes, every_step, peak, est.parts)
        if method == "exact":
            peak = peak_of(lambda: st.simulate(sc, reps=20, seed=0))  # noqa: B023
            assert peak <= simulation_estimate(sc, 20).total - _FIXED_BYTES + 4 * 2**20


# ---------------------------------------------------------------------------- output hygiene
def test_out_files_respect_the_umask_and_mkdir(capsys, tmp_path):
    good = _write(tmp_path, BASE + "lr = 0.1\n")
    for mask in (0o022, 0o077, 0o002):
        old = os.umask(mask)
        try:
            out, npz = tmp_path / f"r{mask}.json", tmp_path / "deep" / f"{mask}" / "r.npz"
            code, _, err = run_cli(["run", good, "--format", "json", "--out", out, "--npz", npz, "--mkdir"], capsys)
        finally:
            os.umask(old)
        assert code == 0, err
        for f in (out, npz):
            assert (f.stat().st_mode & 0o777) == 0o666 & ~mask
    assert not list(tmp_path.rglob("*.tmp"))


def test_nothing_written_when_one_of_two_files_fails(capsys, tmp_path):
    if not Path("/proc/self").is_dir():
        pytest.skip("needs an unwritable location")
    good = _write(tmp_path, BASE + "lr = 0.1\n")
    npz = tmp_path / "r.npz"
    code, _, err = run_cli(["run", good, "--npz", npz, "--out", "/proc/spectral-theory-test.json"], capsys)
    assert code == 2 and "--out" in err
    assert not npz.exists() and not list(tmp_path.glob(".*"))


def test_identical_seeds_give_identical_files(capsys, tmp_path, transfer_file):
    """No timing in written results unless --timings: byte-identical files from identical runs."""
    good = _write(tmp_path, BASE + "lr = 0.1\n")
    for argv in (["run", good, "--format", "json"], ["simulate", good, "--reps", "10", "--seed", "4", "--format", "json"],
                 ["kd", transfer_file, "--simulate", "--reps", "4", "--format", "json"],
                 ["run", good, "--format", "json", "--method", "ode"]):
        texts = []
        for k in range(2):
            out = tmp_path / f"{k}.json"
            code, _, err = run_cli([*argv, "--out", out], capsys)
            assert code == 0, err
            texts.append(out.read_bytes())
        assert texts[0] == texts[1], argv
        assert b'"seconds"' not in texts[0]
    code, out, _ = run_cli(["run", good, "--format", "json", "--timings"], capsys)
    assert code == 0 and "seconds" in json.loads(out)["diagnostics"]


def test_long_arrays_of_the_scenario_echo_are_summarised(capsys, tmp_path):
    values = ", ".join(str(1.0 / (i + 1)) for i in range(1500))
    p = _write(tmp_path, f"""
[problem]
spectrum = {{ kind = "array", values = [{values}] }}
target = {{ kind = "powerlaw", b = 2.0 }}
[[models]]
name = "m"
steps = 3
lr = 0.1
""")
    code, out, _ = run_cli(["run", p, "--format", "json"], capsys)
    assert code == 0
    spec = json.loads(out)["scenario"]["problem"]["spectrum"]
    assert spec["values"] == "<1500 numbers; --modes echoes them>" and len(out) < 20000
    code, out, _ = run_cli(["run", p, "--format", "json", "--modes"], capsys)
    assert len(json.loads(out)["scenario"]["problem"]["spectrum"]["values"]) == 1500


def test_non_finite_results_are_errors(capsys, tmp_path, monkeypatch):
    from spectral_theory import api

    good = _write(tmp_path, BASE + "lr = 0.1\n")
    real = api.predict

    def overflowing(*a, **k):
        res = real(*a, **k)
        res["m"].excess_risk[-1] = np.inf
        return res

    monkeypatch.setattr(api, "predict", overflowing)
    code, _, err = run_cli(["run", good, "--format", "json", "--out", tmp_path / "r.json"], capsys)
    assert code == 2 and "non-finite" in err and "excess_risk" in err
    assert not (tmp_path / "r.json").exists()


# ---------------------------------------------------------------------------- completeness
def test_version(capsys):
    from importlib.metadata import version

    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"spectral-theory {version('spectral-theory')}" == \
        f"spectral-theory {st.__version__}"


def test_every_flag_has_help_and_its_default():
    import argparse

    from spectral_theory import cli

    parser = cli.build_parser()
    for name, sub in parser._subparsers._group_actions[0].choices.items():
        assert sub.description, name
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help, (name, action.dest)
            if action.option_strings:
                assert "default" in action.help or "required" in action.help, (name, action.option_strings)


def test_demo_and_convert_help_list_their_names(capsys):
    from spectral_theory import cli, conventions

    for argv, names in ((["demo", "--help"], cli.DEMOS), (["convert", "--help"], cli.CONVENTION_NAMES)):
        with pytest.raises(SystemExit):
            main(argv)
        text = " ".join(capsys.readouterr().out.split())
        for k, v in names.items():
            assert f"{k} {' '.join(v.split())}" in text
    assert tuple(cli.CONVENTION_NAMES) == tuple(conventions.CONVENTION_NAMES)
    code, out, _ = run_cli(["convert", "1", "2", "--from", "bordelon-pehlevan"], capsys)
    assert code == 0 and out == "spectral-theory: a = 2, b = 1\n"
    code, out, _ = run_cli(["convert", "1.5", "2", "--from", "spectral-theory", "--to", "paquette"], capsys)
    assert out == "paquette: alpha = 0.75, beta = 0.25\n"


def test_tune_and_map_tables_and_csv(capsys, transfer_file):
    code, out, _ = run_cli(["tune", transfer_file, "--kind", "kd", "--grid", "3"], capsys)
    lines = out.splitlines()
    assert code == 0 and lines[0].startswith("#") and lines[1].split() == ["alpha", "risk"]
    code, out, _ = run_cli(["tune", transfer_file, "--kind", "kd", "--grid", "3", "--format", "csv"], capsys)
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and len(rows) == 3 and set(rows[0]) == {"alpha", "risk"}
    argv = ["map", transfer_file, "--kind", "kd", "--x", "alpha=0,1", "--y", "student.capacity=5,10"]
    code, out, _ = run_cli([*argv, "--format", "table"], capsys)
    lines = out.splitlines()
    assert code == 0 and "kd_gain" in lines[0] and lines[1].split()[-2:] == ["5", "10"]
    assert [x.split()[0] for x in lines[3:]] == ["0", "1"]


@pytest.mark.parametrize("kind", ["kd", "w2s", "chain"])
def test_transfer_commands_take_at_and_csv(capsys, transfer_file, kind):
    code, out, err = run_cli([kind, transfer_file, "--at", "0,50", "--format", "csv"], capsys)
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert {"model", "step", "excess_risk", "bias", "variance"} <= set(rows[0])
    by_model: dict[str, list[int]] = {}
    for r in rows:
        by_model.setdefault(r["model"], []).append(int(r["step"]))
    for steps in by_model.values():  # --at plus the lineage's last steps
        assert steps[:2] == [0, 50] and steps == sorted(set(steps)) and steps[-1] in (200, 400)
    code, out, _ = run_cli([kind, transfer_file, "--at", "0,50", "--format", "json"], capsys)
    data = json.loads(out)
    assert all(c["steps"][:2] == [0, 50] for c in data["curves"].values())
    code, _, err = run_cli([kind, transfer_file, "--at", "x"], capsys)
    assert code == 2 and "--at" in err


def test_compare_prints_theory_mc_se_and_z(capsys):
    code, out, err = run_cli(["compare", CHAIN, "--reps", "30", "--seed", "2", "--at", "0,10,200"], capsys)
    assert code == 0, err
    head = [x for x in out.splitlines() if x.startswith("model")][0]
    for col in ("theory", "monte carlo", "s.e.", "z"):
        assert col in head
    code, out, _ = run_cli(["compare", CHAIN, "--reps", "30", "--at", "0,200", "--format", "json"], capsys)
    rows = json.loads(out)["rows"]
    assert {"theory", "mc", "se", "z"} <= set(rows[0]) and {r["step"] for r in rows} == {0, 200}
    res = st.predict(load_scenario(CHAIN), at=[0, 200])
    g2 = [r for r in rows if r["model"] == "g2" and r["quantity"] == "excess_risk"]
    assert [r["theory"] for r in g2] == pytest.approx(res["g2"].excess_risk.tolist(), rel=1e-12)
    code, out, _ = run_cli(["compare", CHAIN, "--reps", "30", "--at", "0,200", "--format", "csv"], capsys)
    assert {"theory", "mc", "se", "z"} <= set(next(csv.DictReader(io.StringIO(out))))


def test_every_step_and_record_modes_reach_json_csv_and_npz(capsys, tmp_path):
    good = _write(tmp_path, BASE + "lr = 0.1\n")
    argv = ["run", good, "--at", "0,5", "--every-step", "--record-modes"]
    code, out, _ = run_cli([*argv, "--format", "json"], capsys)
    m = json.loads(out)["models"]["m"]
    assert code == 0 and len(m["curve"]) == 11 and len(m["mode_curves"]) == 2 and len(m["mode_curves"][0]) == 20
    res = st.predict(load_scenario(good), at=[0, 5], every_step=True, record_modes=True)
    np.testing.assert_array_equal(m["curve"], res["m"].curve)
    code, out, _ = run_cli([*argv, "--format", "csv", "--npz", tmp_path / "r.npz"], capsys)
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [int(r["step"]) for r in rows] == list(range(11))
    assert rows[5]["bias"] != "" and rows[4]["bias"] == "" and rows[5]["mode_20"] != "" and rows[4]["mode_1"] == ""
    assert float(rows[7]["excess_risk"]) == pytest.approx(res["m"].curve[7], rel=1e-11)
    assert float(rows[5]["mode_3"]) == pytest.approx(res["m"].mode_curves[1, 2], rel=1e-11)
    with np.load(tmp_path / "r.npz") as z:
        assert z["m/curve"].shape == (11,) and z["m/mode_curves"].shape == (2, 20)
    code, out, err = run_cli([*argv], capsys)
    assert code == 0 and "--every-step" in err and "excess risk" in out


def test_simulate_announces_a_long_simulation(capsys, tmp_path, monkeypatch):
    from spectral_theory import montecarlo

    monkeypatch.setattr(montecarlo, "estimate_simulation_seconds", lambda *a, **k: 1234.0, raising=False)
    monkeypatch.setattr(montecarlo, "_estimate", lambda *a, **k: 1234.0, raising=False)
    good = _write(tmp_path, BASE + "lr = 0.1\n")
    code, _, err = run_cli(["simulate", good, "--reps", "4"], capsys)
    assert code == 0 and "spectral-theory: note: this simulation will take about" in err


def test_chain_of_ten_thousand_generations_is_refused_at_once(capsys, transfer_file):
    import tracemalloc

    tracemalloc.start()
    try:
        code, out, err = run_cli(["chain", transfer_file, "--generations", "10000"], capsys)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert code == 2 and out == "" and "generations" in err
    assert peak < 50 * 2**20


def test_transfer_simulation_is_announced(capsys, transfer_file, monkeypatch):
    from spectral_theory import montecarlo

    monkeypatch.setattr(montecarlo, "estimate_simulation_seconds", lambda *a, **k: 700.0)
    code, _, err = run_cli(["kd", transfer_file, "--simulate", "--reps", "3"], capsys)
    assert code == 0 and "spectral-theory: note: this simulation will take about" in err
    code, _, err = run_cli(["kd", transfer_file, "--simulate", "--reps", "3", "--max-seconds", "60"], capsys)
    assert code == 2 and "over --max-seconds 60" in err


def test_max_seconds_refuses_a_long_exact_run(capsys, tmp_path):
    p = _write(tmp_path, BASE.replace("steps = 10", "steps = 3000000") + "lr = 0.1\n")
    code, _, err = run_cli(["run", p, "--method", "exact", "--max-seconds", "5"], capsys)
    assert code == 2 and "exact method" in err and "over --max-seconds 5" in err


def test_continuum_d_inf_is_echoed(capsys):
    code, out, _ = run_cli(["run", ROOT / "examples" / "long_horizon.toml", "--method", "continuum", "--d", "inf",
                            "--format", "json", "--at", "0,1000"], capsys)
    assert code == 0 and json.loads(out)["scenario"]["problem"]["spectrum"]["d"] == "inf"


def test_console_script_errors_and_closed_pipes_print_no_traceback(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_bytes(b"[problem]\nnoise = '\xff'\n")
    r = subprocess.run(["spectral-theory", "run", str(bad)], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    # standard output closed before the output is written (as by `| head -1`): exit status
    # 141 (128 + SIGPIPE, as a process killed by it), no error line, no traceback
    proc = subprocess.Popen(["spectral-theory", "run", str(CHAIN), "--format", "csv"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141
    assert "Traceback" not in err and "error" not in err, err
