"""Every input gets a clear answer (issue 8, "What to build" items 1 and 3 and the API-level
cases of "Found"): one strict reader for every section of a scenario file and every command,
defaults documented and echoed, steps past a model's end reported as its last step, schedule
lengths that must match, the continuum echo of d = infinity, and public functions that raise
a SpecError naming the field instead of crashing (docs/scenario-files.md)."""

from __future__ import annotations

import copy
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli

import spectral_theory as st
from spectral_theory.errors import UnknownNameError
from spectral_theory.spec import read_scenario_file, scenario_from_dict
from spectral_theory.transfer import transfer_from_dict

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

# the issue's file: examples/transfer.toml as a kd file, with a typo of alpha
ISSUE_KD = """
[problem]
spectrum = { kind = "powerlaw", a = 1.5, d = 400 }
target = { kind = "powerlaw", b = 2.0 }
noise = 1.0
[[models]]
name = "big"
batch = 4
steps = 20000
lr = 0.05
[[models]]
name = "small"
capacity = 200
steps = 2000
lr = 0.3
[transfer]
{kind}teacher = "big"
student = "small"
{extra}
"""


def issue_kd(extra: str = "", kind: str | None = "kd") -> str:
    """The issue's kd file (examples/transfer.toml with kind = "kd"), ``extra`` lines in [transfer]."""
    return ISSUE_KD.replace("{kind}", "" if kind is None else f'kind = "{kind}"\n').replace("{extra}", extra)

SMALL = {
    "problem": {"spectrum": {"kind": "powerlaw", "a": 1.5, "d": 20}, "target": {"kind": "powerlaw", "b": 2.0},
                "noise": 0.2},
    "models": [{"name": "t", "steps": 60, "lr": 0.2}, {"name": "s", "steps": 40, "lr": 0.3, "capacity": 8}],
    "output": {"at": [0, 10, 40]},
}


def small(**changes):
    data = copy.deepcopy(SMALL)
    data.update(changes)
    return data


def write(tmp_path, text, name="s.toml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def one_line_error(code, err, *fragments):
    assert code == 2, err
    assert err.startswith("spectral-theory: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for f in fragments:
        assert f in err, (f, err)


# ---------------------------------------------------------------------------- [transfer], every command
TRANSFER_COMMANDS = [
    ["kd"], ["w2s", "--weak", "small", "--strong", "big"], ["chain", "--generations", "3"],
    ["tune", "--grid", "3"], ["map", "--x", "alpha=0,1", "--y", "student.capacity=5,10"],
    ["run"], ["simulate", "--reps", "10", "--no-progress"], ["stability"],
]


@pytest.mark.parametrize("command", TRANSFER_COMMANDS, ids=lambda c: c[0])
def test_transfer_typo_alpah_is_an_error_for_every_command(tmp_path, capsys, command):
    """Issue: `alpah = 0.5` gave KD gain 31.05 (alpha silently 0) with exit 0."""
    path = write(tmp_path, issue_kd("alpah = 0.5"))
    code, out, err = run_cli([command[0], path, *command[1:]], capsys)
    one_line_error(code, err, "transfer.alpah", "unknown key", "allowed keys:", "'alpha'", "'teacher'")
    assert out == ""


def test_transfer_alpha_is_read_and_echoed(tmp_path, capsys):
    """The same file with `alpha = 0.5` spelled right: KD gain 3.78 (31.05 at alpha = 0)."""
    path = write(tmp_path, issue_kd("alpha = 0.5"))
    code, out, err = run_cli(["kd", path, "--format", "json"], capsys)
    assert code == 0, err
    data = json.loads(out)
    assert data["metrics"]["kd_gain"] == pytest.approx(3.785, abs=5e-3)
    assert data["spec"]["alpha"] == 0.5 and data["spec"]["output"] == {"at": None, "points": 50}


@pytest.mark.parametrize("extra, fragments", [
    ('teachr = "big"', ["transfer.teachr", "unknown key", "allowed keys"]),
    (None, ["transfer.kind: got 'foo'", "['kd', 'w2s', 'chain']"]),
    ('weak = "small"', ["transfer.weak", "role of a 'w2s' comparison", "kind 'kd'"]),
    ('generations = 3', ["transfer.generations", "only a chain"]),
    ('alpha = 1.5', ["transfer.alpha: got 1.5", "<= 1"]),
    ('alpha = "soft"', ["transfer.alpha: got 'soft'"]),
], ids=["teachr", "kind-foo", "role-of-other-kind", "generations-not-chain", "alpha-range", "alpha-type"])
def test_transfer_section_values_are_checked(tmp_path, capsys, extra, fragments):
    path = write(tmp_path, issue_kd(kind="foo") if extra is None else issue_kd(extra))
    code, _, err = run_cli(["kd", path], capsys)
    one_line_error(code, err, *fragments)


def test_transfer_roles_must_name_models(capsys, tmp_path):
    path = write(tmp_path, issue_kd().replace('teacher = "big"', 'teacher = "huge"'))
    code, _, err = run_cli(["kd", path], capsys)
    one_line_error(code, err, "transfer.teacher: got 'huge'", "['big', 'small']")
    code, _, err = run_cli(["run", path], capsys)  # run reads (and checks) the same section
    one_line_error(code, err, "transfer.teacher: got 'huge'")


def test_transfer_kind_differing_from_the_command_names_both(tmp_path, capsys):
    path = write(tmp_path, issue_kd())
    for argv in (["w2s", path], ["chain", path], ["tune", path, "--kind", "w2s"]):
        code, _, err = run_cli(argv, capsys)
        one_line_error(code, err, "transfer.kind: got 'kd'", "'kd' comparison", f"'{argv[-1] if argv[0] == 'tune' else argv[0]}'")
    # a file without kind serves every comparison; tune and map then need --kind
    several = write(tmp_path, issue_kd('weak = "small"\nstrong = "big"', kind=None), "several.toml")
    code, out, err = run_cli(["w2s", several, "--format", "json"], capsys)
    assert code == 0, err
    assert json.loads(out)["spec"]["weak"]["name"] == "small"
    code, _, err = run_cli(["tune", several, "--grid", "3"], capsys)
    one_line_error(code, err, "transfer.kind: got None", "--kind")
    # a role flag of another comparison is an error too, not silently unused
    code, _, err = run_cli(["tune", several, "--kind", "kd", "--weak", "small", "--grid", "3"], capsys)
    one_line_error(code, err, "transfer.weak", "'w2s' comparison")


def test_chain_generations_are_bounded_before_any_work(tmp_path, capsys):
    """Issue: `chain --generations 10000` ran 47 s into a MemoryError."""
    import time

    path = write(tmp_path, issue_kd(kind="chain").replace('teacher = "big"\nstudent = "small"\n', ""))
    t0 = time.process_time()
    code, _, err = run_cli(["chain", path, "--generations", "10000"], capsys)
    assert time.process_time() - t0 < 5  # CPU seconds: refused before any work
    one_line_error(code, err, "transfer.generations: got 10000", f"<= {st.transfer.specs.MAX_GENERATIONS}")
    code, _, err = run_cli(["chain", path, "--generations", "0"], capsys)
    one_line_error(code, err, "transfer.generations: got 0", ">= 1")
    # the memory budget: G (G + 1) pair-moment rows of d numbers
    prob = st.Problem(st.PowerLawSpectrum(a=1.5, d=10**5), st.PowerLawTarget(b=2.0))
    base = st.Model("b", steps=10, schedule=0.1)
    with pytest.raises(st.SpecError, match=r"transfer.generations: got 500.*GiB.*at most \d+ generations fit"):
        st.Chain(prob, base=base, generations=500)
    assert st.transfer.specs.chain_state_bytes(500, 10**5) > st.transfer.specs.CHAIN_MEMORY_BUDGET
    st.Chain(prob, base=base, generations=50)  # within the budget: accepted


# ---------------------------------------------------------------------------- unknown keys anywhere
@pytest.mark.parametrize("where, mutate, field", [
    ("top level", lambda d: d.update(outptu={}), "scenario.outptu"),
    ("problem", lambda d: d["problem"].update(nosie=0.1), "problem.nosie"),
    ("spectrum", lambda d: d["problem"]["spectrum"].update(b=2), "problem.spectrum.b"),
    ("target", lambda d: d["problem"]["target"].update(a=2), "problem.target.a"),
    ("models", lambda d: d["models"][0].update(btach=2), "models[0].btach"),
    ("schedule", lambda d: d["models"][1].update(lr={"kind": "step_decay", "lr": 0.3, "factor": 0.5, "evrey": 10}),
     "models[1].lr.evrey"),
    ("schedule", lambda d: d["models"].append({"name": "u", "steps": 5, "schedule": {"kind": "constant", "lr": 0.1,
                                                                                      "factor": 2}}),
     "models[2].schedule.factor"),
    ("output", lambda d: d["output"].update(step=[1]), "output.step"),
    ("transfer", lambda d: d.update(transfer={"kind": "kd", "studnet": "s"}), "transfer.studnet"),
])
def test_unknown_keys_anywhere_list_the_allowed_keys(where, mutate, field):
    data = small()
    mutate(data)
    with pytest.raises(st.SpecError) as info:
        scenario_from_dict(data)
    assert info.value.field == field
    assert "unknown key" in str(info.value) and "allowed keys" in str(info.value)
    if where == "transfer":  # the transfer commands read the file through the same reader
        with pytest.raises(st.SpecError, match=r"transfer.studnet: .*unknown key"):
            transfer_from_dict(data)


def test_output_at_and_points_together_are_an_error():
    with pytest.raises(st.SpecError, match=r"output.points: .*either at .* or points, not both"):
        scenario_from_dict(small(output={"at": [0, 5], "points": 10}))
    with pytest.raises(st.SpecError, match=r"output.at: got '0, 5'"):
        scenario_from_dict(small(output={"at": "0, 5"}))


def test_file_errors_name_the_path(tmp_path):
    bad = tmp_path / "latin1.toml"
    bad.write_bytes(b"[problem]\nnoise = 0.1 # \xe9\n")
    with pytest.raises(st.SpecError, match=r"must be UTF-8 text \(byte \d+"):
        read_scenario_file(bad)
    folder = tmp_path / "dir.toml"
    folder.mkdir()
    with pytest.raises(st.SpecError, match=r"this is a directory"):
        read_scenario_file(folder)
    dup = tmp_path / "dup.json"
    dup.write_text('{"problem": {"noise": 0.1, "noise": 0.2}}')
    with pytest.raises(st.SpecError, match=r"key 'noise'.*appears twice"):
        read_scenario_file(dup)
    top = tmp_path / "list.json"
    top.write_text("[1, 2]")
    with pytest.raises(st.SpecError, match=r"must hold a JSON object"):
        read_scenario_file(top)


# ---------------------------------------------------------------------------- defaults echoed
def test_defaults_are_echoed_in_the_json_scenario(tmp_path, capsys):
    path = write(tmp_path, json.dumps({
        "problem": {"spectrum": {"kind": "powerlaw", "a": 1.5, "d": 10}, "target": {"kind": "powerlaw", "b": 2}},
        "models": [{"name": "t", "steps": 20, "lr": 0.2},
                   {"name": "s", "steps": 20, "teacher": "t",
                    "schedule": {"kind": "polynomial", "lr": 0.2, "t0": 5, "power": 0.5}}]}), "d.json")
    code, out, err = run_cli(["run", path, "--format", "json"], capsys)
    assert code == 0, err
    echo = json.loads(out)["scenario"]
    assert echo["problem"]["noise"] == 0.0
    assert echo["problem"]["features"] == {"kind": "gaussian", "kurtosis": 3.0}
    assert echo["problem"]["spectrum"]["scale"] == 1.0 and echo["problem"]["target"]["scale"] == 1.0
    t, s = echo["models"]
    assert t == {"name": "t", "steps": 20, "batch": 1, "schedule": {"kind": "constant", "lr": 0.2},
                 "lr_convention": "mean", "capacity": None, "speeds": None, "teacher": None, "alpha": 1.0}
    assert s["teacher"] == "t" and s["alpha"] == 0.0
    assert s["schedule"] == {"kind": "polynomial", "lr": 0.2, "t0": 5.0, "power": 0.5}
    assert echo["output"] == {"at": None, "points": 50}


# ---------------------------------------------------------------------------- schedules
@pytest.mark.parametrize("kind, table", [
    ("polynomial", {"kind": "polynomial", "lr": 0.3}),
    ("polynomial", {"kind": "polynomial", "lr": 0.3, "t0": 10}),
    ("warmup_decay", {"kind": "warmup_decay", "lr": 0.3, "warmup": 5, "t0": 10}),
])
def test_polynomial_schedules_without_t0_or_power_are_errors(kind, table):
    """Issue: a polynomial schedule without t0 silently used t0 = 1, power = 1."""
    data = small()
    data["models"][0] = {"name": "t", "steps": 60, "schedule": table}
    missing = "t0" if "t0" not in table else "power"
    with pytest.raises(st.SpecError) as info:
        scenario_from_dict(data)
    assert info.value.field == f"models[0].schedule.{missing}"
    assert f"is required for kind '{kind}'" in str(info.value)
    with pytest.raises(TypeError):  # the Python classes have no defaults either
        st.Polynomial(0.3)
    with pytest.raises(TypeError):
        st.WarmupDecay(0.3, 5)


def test_schedule_longer_than_steps_is_an_error_naming_both_lengths():
    """Issue: an array schedule longer than steps was truncated silently (a piecewise one too)."""
    data = small()
    data["models"][0] = {"name": "t", "steps": 200, "schedule": {"kind": "array", "values": [0.1] * 300}}
    with pytest.raises(st.SpecError, match=r"models\['t'\]\.schedule\.values: .*steps are 200, the array has 300"):
        scenario_from_dict(data)
    data["models"][0]["schedule"] = {"kind": "piecewise", "lrs": [0.3, 0.1], "lengths": [100, 150]}
    with pytest.raises(st.SpecError, match=r"models\['t'\]\.schedule\.lengths: .*steps \(200\); they add up to 250"):
        scenario_from_dict(data)
    with pytest.raises(st.SpecError, match=r"steps are 5, the array has 6 values"):
        st.Model("m", steps=5, schedule=st.ArraySchedule([0.1] * 6))
    with pytest.raises(st.SpecError, match=r"\(5\); they add up to 6"):
        st.Model("m", steps=5, schedule=st.Piecewise([0.1, 0.2], [3, 3]))
    # exact lengths are fine, and so are the example files
    st.Model("m", steps=6, schedule=st.Piecewise([0.1, 0.2], [3, 3]))
    from spectral_theory.spec.files import read_scenario_file

    for path in EXAMPLES.iterdir():
        text = path.read_text()
        if "[[claims]]" in text:  # a claim file (docs/claims.md), not a scenario
            continue
        if "sweep" in read_scenario_file(path):  # a sweep file (docs/sweeps.md), read by its own reader
            assert st.load_sweep(path).points()
        else:
            st.load_scenario(path)


# ---------------------------------------------------------------------------- steps past the end
def scenario_200():
    prob = st.Problem(st.PowerLawSpectrum(a=1.5, d=20), st.PowerLawTarget(b=2.0), noise=0.1)
    return st.Scenario(prob, (st.Model("m", steps=200, schedule=0.3),), output=st.Output(at=(0, 500)))


def test_steps_past_the_end_report_the_last_step_in_predict():
    """Issue: at = [0, 500] for a 200-step model reported only step 0."""
    sc = scenario_200()
    res = st.predict(sc)
    assert res["m"].steps.tolist() == [0, 200]
    assert res.diagnostics["steps_past_end"] == {"m": {"requested": [500], "reported": 200}}
    full = st.predict(sc, at=[0, 200])
    assert res["m"].excess_risk[-1] == full["m"].excess_risk[-1]
    assert "steps_past_end" not in full.diagnostics
    # the same through predict's at=, the renewal solver and the JSON diagnostics
    res = st.predict(sc, at=[0, 100, 1000], method="renewal")
    assert res["m"].steps.tolist() == [0, 100, 200]
    assert res.to_dict()["diagnostics"]["steps_past_end"] == {"m": {"requested": [1000], "reported": 200}}


@pytest.mark.montecarlo
@pytest.mark.filterwarnings("ignore")  # 20 replicates: only the reported steps matter here
def test_steps_past_the_end_report_the_last_step_in_simulate():
    res = st.simulate(scenario_200(), reps=20, seed=1)
    assert res["m"].steps.tolist() == [0, 200]
    assert res.diagnostics["steps_past_end"] == {"m": {"requested": [500], "reported": 200}}


def test_steps_past_the_end_cli_note(tmp_path, capsys):
    path = write(tmp_path, json.dumps(small()), "s.json")
    code, out, err = run_cli(["run", path, "--at", "0,500", "--format", "csv"], capsys)
    assert code == 0, err
    assert "model 't' trains 60 steps; requested step(s) [500] are past its end, so its last step 60" in err
    assert "model 's' trains 40 steps" in err
    assert out.splitlines()[1:] and [r.split(",")[:2] for r in out.splitlines()[1:]] == [
        ["t", "0"], ["t", "60"], ["s", "0"], ["s", "40"]]


# ---------------------------------------------------------------------------- continuum echo
def test_continuum_d_inf_is_echoed_as_computed(tmp_path, capsys):
    """Issue: --method continuum --d inf echoed d: 100000."""
    prob = st.Problem(st.PowerLawSpectrum(a=1.5, d=1000), st.PowerLawTarget(b=2.0), noise=0.1)
    sc = st.Scenario(prob, (st.Model("m", steps=100, schedule=0.3),), output=st.Output(at=(0, 100)))
    res = st.predict(sc, method="continuum", d=None)
    assert res.to_dict()["scenario"]["problem"]["spectrum"]["d"] == "inf"
    assert res.scenario.problem is prob and res.scenario.model("m") is sc.models[0]
    assert st.predict(sc, method="continuum", d=300).to_dict()["scenario"]["problem"]["spectrum"]["d"] == 300
    assert st.predict(sc, method="continuum").to_dict()["scenario"]["problem"]["spectrum"]["d"] == 1000
    code, out, err = run_cli(["run", EXAMPLES / "long_horizon.toml", "--method", "continuum", "--d", "inf",
                              "--format", "json"], capsys)
    assert code == 0, err
    assert json.loads(out)["scenario"]["problem"]["spectrum"]["d"] == "inf"


# ---------------------------------------------------------------------------- API-level errors
@pytest.mark.parametrize("args, field", [
    ((0, 3.0), "batch"), ((1.5, 3.0), "batch"), ((1, 0.5), "kappa"), ((1, float("nan")), "kappa"),
])
def test_stability_functions_check_their_arguments(args, field):
    """Issue: st.stability_limit(eigs, 0, kappa) raised ZeroDivisionError."""
    eigs = np.arange(1, 21, dtype=float) ** -1.5
    for fn in (lambda: st.stability_limit(eigs, *args), lambda: st.check_step(0.1, eigs, *args),
               lambda: st.stability.is_stable(0.1, eigs, *args), lambda: st.stability.map_radius(0.1, eigs, *args),
               lambda: st.stability.kernel_norm(0.1, eigs, *args), lambda: st.stability.step_growth(0.1, eigs, *args)):
        with pytest.raises(st.SpecError) as info:
            fn()
        assert info.value.field == field
    with pytest.raises(st.SpecError, match=r"speeds\[1\]: got -1.0"):
        st.stability_limit([1.0, -1.0], 1, 3.0)
    with pytest.raises(st.SpecError, match=r"speeds\[0\]: got inf"):
        st.stability_limit([np.inf], 1, 3.0)
    with pytest.raises(st.SpecError, match=r"eta: got -0.1"):
        st.check_step(-0.1, eigs, 1, 3.0)
    assert st.stability_limit(eigs, 1, 3.0) > 0


def test_unknown_names_list_the_names_that_exist():
    """Issue: result['nope'] raised a bare KeyError."""
    prob = st.Problem(st.PowerLawSpectrum(a=1.5, d=20), st.PowerLawTarget(b=2.0), noise=0.1)
    sc = st.Scenario(prob, (st.Model("t", steps=50, schedule=0.2), st.Model("s", steps=30, schedule=0.3, teacher="t")),
                     output=st.Output(at=(0, 30)))
    res = st.predict(sc)
    for lookup, fragment in ((lambda: res["nope"], "result: got 'nope'; must be one of the models ['t', 's']"),
                             (lambda: sc.model("nope"), "must be one of the models ['t', 's']"),
                             (lambda: sc.index("nope"), "must be one of the models ['t', 's']"),
                             (lambda: res["t"].at(7), "must be one of the reported steps [0, 30]"),
                             (lambda: st.transfer.oracle_stop(sc, "nope"), "models ['t', 's']")):
        with pytest.raises(UnknownNameError) as info:
            lookup()
        assert isinstance(info.value, KeyError) and isinstance(info.value, st.SpecError)
        assert fragment in str(info.value)
    kd = st.Distillation(prob, teacher=st.Model("T", steps=50, schedule=0.2),
                         student=st.Model("S", steps=30, schedule=0.3, capacity=10))
    rep = st.evaluate(kd)
    with pytest.raises(KeyError, match=r"report: got 'nope'; must be one of the metrics \[.*'kd_gain'"):
        rep["nope"]
    with pytest.raises(st.SpecError, match=r"metric: got 'nope'; must be one of \[.*'kd_gain'"):
        st.transfer_map(kd, ("alpha", [0.0]), ("student.capacity", [5]), metric="nope")
    with pytest.raises(st.SpecError, match=r"x: got 'alpha'; must be a pair"):
        st.transfer_map(kd, "alpha", ("student.capacity", [5]))
    with pytest.raises(st.SpecError, match=r"map parameter student.lr: got 'x'"):
        st.transfer_map(kd, ("student.lr", ["x"]), ("alpha", [0.0]))
    for fn in (st.evaluate, st.tune_alpha, st.tune_lr):
        with pytest.raises(st.SpecError, match=r"spec: got 'x'; must be a Distillation"):
            fn("x")
    with pytest.raises(st.SpecError, match=r"source: got 'bp'; must be one of \['spectral-theory'"):
        st.conventions.convert(1.0, 2.0, source="bp", target="paquette")
    with pytest.raises(st.SpecError, match=r"x: got 'a'"):
        st.conventions.convert("a", 2.0, source="paquette", target="paquette")
    with pytest.raises(st.SpecError, match=r"at: got 5; must be a list"):
        st.predict(sc, at=5)
    with pytest.raises(st.SpecError, match=r"output.x: got 1; unknown key"):
        st.Scenario(prob, sc.models, output={"x": 1})
    with pytest.raises(st.SpecError, match=r"output: got 3"):
        st.Scenario(prob, sc.models, output=3)
    with pytest.raises(st.SpecError, match=r"models\['m'\].alpha: got 'soft'"):  # was a ValueError
        st.Model("m", steps=3, alpha="soft")
    with pytest.raises(st.SpecError, match=r"problem.kurtosis: got 'x'"):
        st.Features("gaussian", "x")


def test_errors_survive_pickling():
    """Errors raised in worker processes (map --workers) must reach the caller intact."""
    for err in (st.SpecError("a.b", 3, "must be 4"), UnknownNameError("result", "x", ["a"], "models"),
                st.InstabilityError("m", 3, 0.9, 0.5, "why", 1.5)):
        back = pickle.loads(pickle.dumps(err))
        assert type(back) is type(err) and str(back) == str(err)
