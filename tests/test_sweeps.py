"""Sweeps (``docs/sweeps.md``): designs, recorded values against direct computations, failing
points, resumption and crash safety, executors (process pool, dask LocalCluster, an existing
scheduler) giving the same table bit for bit, a killed worker and a killed driver, and the
Monte Carlo validation's seed-derived blocks."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd  # the sweeps extra, installed with the test extra
import pyarrow  # noqa: F401
import pytest

import spectral_theory as st  # noqa: E402
from spectral_theory.cli import main  # noqa: E402
from spectral_theory.errors import SpecError  # noqa: E402
from spectral_theory.sweeps import (  # noqa: E402
    design_points,
    load_sweep,
    make_batches,
    parse_design,
    read_results,
    sweep,
    to_xarray,
    validate_sweep,
)
from spectral_theory.sweeps.compute import run_batch  # noqa: E402
from spectral_theory.sweeps.validate import block_seed  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def kd_base(d: int = 100, teacher_steps: int = 400, student_steps: int = 200) -> dict:
    """A distillation's scenario-file contents (teacher then student)."""
    return {"problem": {"spectrum": {"kind": "powerlaw", "a": 1.5, "d": d},
                        "target": {"kind": "powerlaw", "b": 2.0}, "noise": 0.5},
            "models": [{"name": "T", "steps": teacher_steps, "lr": 0.1, "batch": 2},
                       {"name": "S", "steps": student_steps, "lr": 0.2, "capacity": d // 2}],
            "transfer": {"teacher": "T", "student": "S"}}


def write_sweep(path: Path, doc: dict) -> Path:
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def assert_same_table(a, b) -> None:
    pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True), check_exact=True)


# ---------------------------------------------------------------------------- designs
def test_grid_log_and_integer_axes():
    blocks = parse_design({"kind": "grid", "fields": {
        "a": [1, 2], "b": {"log": [0.01, 1.0], "num": 3}, "c": {"range": [10, 20], "num": 3, "integer": True}}})
    pts = design_points(blocks)
    assert len(pts) == 2 * 3 * 3
    # first field slowest, last fastest
    assert [p["a"] for p in pts[:9]] == [1] * 9 and [p["c"] for p in pts[:3]] == [10, 15, 20]
    np.testing.assert_allclose(sorted({p["b"] for p in pts}), [0.01, 0.1, 1.0], rtol=1e-15)
    # integer log grid: rounding repeats are dropped, every value an int
    (blk,) = parse_design({"kind": "grid", "fields": {"k": {"log": [1, 8], "num": 8, "integer": True}}})
    vals = [p["k"] for p in blk.points]
    assert vals == sorted(set(vals)) and all(isinstance(v, int) for v in vals) and vals[0] == 1 and vals[-1] == 8


def test_list_random_sobol_and_product():
    lst = parse_design({"kind": "list", "points": [{"x": 1, "y": "a"}, {"x": 2, "y": "b"}]})
    zipped = parse_design({"kind": "list", "fields": {"x": [1, 2], "y": ["a", "b"]}})
    assert design_points(lst) == design_points(zipped) == [{"x": 1, "y": "a"}, {"x": 2, "y": "b"}]
    rnd = design_points(parse_design({"kind": "random", "n": 200, "seed": 3, "fields": {
        "u": {"range": [-1, 1]}, "v": {"log": [1e-3, 1e3]}, "w": [7, 8, 9]}}))
    assert len(rnd) == 200
    assert all(-1 <= p["u"] <= 1 and 1e-3 <= p["v"] <= 1e3 and p["w"] in (7, 8, 9) for p in rnd)
    # log-uniform: about half the draws below the geometric midpoint 1 (binomial, 5 sigma)
    below = sum(p["v"] < 1 for p in rnd)
    assert abs(below - 100) < 5 * math.sqrt(50)
    assert rnd == design_points(parse_design({"kind": "random", "n": 200, "seed": 3, "fields": {
        "u": {"range": [-1, 1]}, "v": {"log": [1e-3, 1e3]}, "w": [7, 8, 9]}}))
    # scrambled Sobol: each 1-D projection of 2^m points is stratified (one point per 1/2^m bin)
    sob = design_points(parse_design({"kind": "sobol", "n": 64, "seed": 1, "fields": {
        "p": {"range": [0, 1]}, "q": {"range": [0, 1]}, "r": {"range": [0, 1]}}}))
    for f in ("p", "q", "r"):
        bins = sorted(int(p[f] * 64) for p in sob)
        assert bins == list(range(64))
    # product of blocks: the first varies slowest
    prod = design_points(parse_design([{"kind": "grid", "fields": {"a": [1, 2]}},
                                       {"kind": "list", "fields": {"b": [5, 6, 7]}}]))
    assert [(p["a"], p["b"]) for p in prod] == [(1, 5), (1, 6), (1, 7), (2, 5), (2, 6), (2, 7)]


@pytest.mark.parametrize("design, field, words", [
    ({"kind": "sobol", "n": 100, "fields": {"a": {"range": [0, 1]}}}, "design.n", "power of 2"),
    ({"kind": "grid", "fields": {"a": {"range": [0, 1]}}}, "design.fields.a.num", "required"),
    ({"kind": "grid", "fields": {"a": {"log": [0, 1], "num": 3}}}, "design.fields.a.log", "positive"),
    ({"kind": "cube", "fields": {"a": [1]}}, "design.kind", "grid"),
    ({"kind": "grid", "fields": {"a": [1]}, "n": 3}, "design.n", "unknown key"),
    ([{"kind": "grid", "fields": {"a": [1]}}, {"kind": "grid", "fields": {"a": [2]}}], "design[1].fields.a",
     "already a field"),
    ({"kind": "list", "fields": {"a": [1, 2], "b": [1]}}, "design.fields", "equal lengths"),
])
def test_design_errors_name_the_field(design, field, words):
    with pytest.raises(SpecError) as err:
        parse_design(design)
    assert err.value.field == field and words in str(err.value)


# ---------------------------------------------------------------------------- values
def test_scenario_sweep_values_equal_direct_predictions(tmp_path):
    base = {"problem": {"spectrum": {"kind": "powerlaw", "a": 1.5, "d": 80},
                        "target": {"kind": "powerlaw", "b": 2.0}, "noise": 0.2},
            "models": [{"name": "m", "steps": 300, "lr": 0.2}]}
    res = sweep(base=base, design={"kind": "grid", "fields": {"m.lr": [0.1, 0.4], "noise": [0.0, 0.2]}},
                record=["final", "bias_variance", "oracle", "horizon", "stability", "curves"], at=[0, 50, 300],
                method="exact", out=tmp_path / "s", progress=False)
    t = res.table
    assert list(t["point"]) == [0, 1, 2, 3] and (t["status"] == "ok").all()
    for _, row in t.iterrows():
        prob = st.Problem(st.PowerLawSpectrum(a=1.5, d=80), st.PowerLawTarget(b=2.0), noise=row["noise"])
        scn = st.Scenario(prob, (st.Model("m", steps=300, schedule=row["m.lr"]),))
        ref = st.predict(scn, at=list(range(301)), method="exact")["m"]
        assert row["m.final_risk"] == ref.excess_risk[-1]
        assert row["m.risk@50"] == ref.excess_risk[50]
        assert row["m.bias@50"] == ref.bias[50] and row["m.variance@50"] == ref.variance[50]
        j = int(np.argmin(ref.excess_risk))
        assert row["m.oracle_step"] == j and row["m.oracle_risk"] == ref.excess_risk[j]
        assert row["m.stability_limit"] == ref.stability_limit and row["m.max_lr"] == row["m.lr"]
        assert row["m.horizon"] == st.spectral_horizon(ref.modes.second_moment, prob.theta2)
    c = res.curves
    assert set(c.columns) >= {"point", "m.lr", "noise", "model", "step", "excess_risk", "bias", "variance"}
    assert len(c) == 4 * 3 and list(c[c["point"] == 1]["step"]) == [0, 50, 300]
    ds = res.to_xarray()
    assert dict(ds.sizes) == {"m.lr": 2, "noise": 2}
    assert float(ds["m.final_risk"].sel({"m.lr": 0.4, "noise": 0.2})) == t.loc[3, "m.final_risk"]


def test_kd_sweep_metrics_and_failing_points(tmp_path):
    res = sweep(base=kd_base(), design={"kind": "list", "fields": {"student.lr": [0.2, 5.0], "alpha": [0.0, 0.3]}},
                kind="kd", record=["kd_gain", "horizon_expansion", "final"], method="exact", out=tmp_path / "s",
                progress=False)
    t = res.table
    ok, bad = t.iloc[0], t.iloc[1]
    prob = st.Problem(st.PowerLawSpectrum(a=1.5, d=100), st.PowerLawTarget(b=2.0), noise=0.5)
    kd = st.Distillation(prob, teacher=st.Model("T", steps=400, schedule=0.1, batch=2),
                         student=st.Model("S", steps=200, schedule=0.2, capacity=50), alpha=0.0)
    rep = st.evaluate(kd, method="exact")
    assert ok["status"] == "ok" and ok["kd_gain"] == rep["kd_gain"]
    assert ok["horizon_expansion"] == rep["horizon_expansion"]
    assert ok["kd_student.final_risk"] == rep.models["kd_student"].final_risk
    assert "teacher_risk" not in t.columns  # only the metrics named
    assert bad["status"] == "error" and bad["error_type"] == "InstabilityError"
    assert "kd_student" in bad["error"] and math.isnan(bad["kd_gain"])
    assert res.counts["failed"] == 1


def test_batches_share_the_teacher():
    sw = st.sweeps.make_sweep(kd_base(), parse_design({"kind": "grid", "fields": {
        "teacher.capacity": [20, 100], "student.lr": [0.1, 0.15, 0.2]}}), kind="kd", method="exact", batch_size=8)
    pts = sw.points()
    batches = make_batches(pts, 8)
    # one batch per teacher, whatever the order of the fields
    assert [[p.values["teacher.capacity"] for p in b] for b in batches] == [[20] * 3, [100] * 3]
    from spectral_theory.solvers import PrefixCache

    cache = PrefixCache()
    run_batch([(p.hash, p.payload) for p in batches[0]], sw.config(), cache=cache)
    # the teacher trained once for 3 points; each distilled and hard student trained once
    assert cache.misses == 1 + 2 * 3 and cache.hits == 2


# ---------------------------------------------------------------------------- errors
@pytest.mark.parametrize("edit, words", [
    (lambda d: d["sweep"].update(recrod=["final"]), "sweep.recrod: got ['final']; unknown key"),
    (lambda d: d["design"]["fields"].update({"teacher.capacty": [1]}), "design field 'teacher.capacty': got 1; unknown key"),
    (lambda d: d["design"]["fields"].update({"nosie": [1]}), "design field 'nosie'"),
    (lambda d: d["sweep"].update(record=["kd_gian"]), "sweep.record[0]: got 'kd_gian'"),
    (lambda d: d["sweep"].update(batch_size=0), "sweep.batch_size: got 0"),
    (lambda d: d["base"]["models"][0].update(stpes=3), "base: models[0].stpes"),
    (lambda d: d.update(validate={"reps": 100, "block": 30}), "validate.block: got 30; must divide reps"),
])
def test_sweep_file_errors_are_one_line(tmp_path, capsys, edit, words):
    doc = {"sweep": {"kind": "kd", "method": "exact"}, "base": kd_base(),
           "design": {"kind": "grid", "fields": {"student.lr": [0.1]}}}
    edit(doc)
    path = write_sweep(tmp_path / "s.json", doc)
    assert main(["sweep", str(path), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("spectral-theory: error: ") and words in err, err
    assert not (tmp_path / "s.sweep").exists()


# ---------------------------------------------------------------------------- resumption
def _sweep_doc(n_lr: int = 4, **sweep_opts) -> dict:
    return {"sweep": {"kind": "kd", "method": "exact", "batch_size": 1, "record": ["metrics", "curves"],
                      **sweep_opts},
            "base": kd_base(), "design": {"kind": "grid", "fields": {
                "teacher.capacity": [30, 100], "student.lr": list(np.round(np.linspace(0.05, 0.3, n_lr), 6))}}}


def test_resume_skips_done_points_and_survives_partial_files(tmp_path, recwarn):
    path = write_sweep(tmp_path / "kd.json", _sweep_doc())
    first = sweep(path, progress=False)
    assert first.counts == {"points": 8, "failed": 0, "computed": 8, "reused": 0}
    parts = sorted((tmp_path / "kd.sweep" / "parts").glob("*.json"))
    assert len(parts) == 8
    again = sweep(path, progress=False)
    assert again.counts["computed"] == 0 and again.counts["reused"] == 8
    assert_same_table(first.table, again.table)
    # a lost part, a half-written temporary file, a corrupt part: recomputed, never read
    parts[0].unlink()
    (parts[1].parent / ".tmp-garbage.json-123").write_text('{"points": [[')
    parts[2].write_text('{"points": [["abc", {"status"')
    third = sweep(path, progress=False)
    assert third.counts["computed"] == 2 and third.counts["reused"] == 6
    assert any("cannot be read" in str(w.message) for w in recwarn.list)
    assert not list(parts[1].parent.glob(".tmp-*"))
    assert_same_table(first.table, third.table)
    assert_same_table(first.curves, third.curves)
    # extending the grid computes the new points only
    doc = _sweep_doc(n_lr=4)
    doc["design"]["fields"]["teacher.capacity"].append(50)
    bigger = sweep(write_sweep(path, doc), progress=False)
    assert bigger.counts["computed"] == 4 and bigger.counts["reused"] == 8
    merged = bigger.table[bigger.table["teacher.capacity"] != 50].drop(columns="point")
    assert_same_table(merged, first.table.drop(columns="point"))


def test_a_changed_sweep_file_in_the_same_directory_is_never_mixed(tmp_path):
    # another base and another record in the same output directory: every point computed
    # again (its content hash changed), the tables hold the new sweep only (no stale curves),
    # and the first sweep, run again, finds all its points
    a_doc = _sweep_doc(n_lr=2)
    a = sweep(write_sweep(tmp_path / "a.json", a_doc), out=tmp_path / "d", progress=False)
    b_doc = _sweep_doc(n_lr=2, record=["metrics"])
    b_doc["base"]["problem"]["noise"] = 0.3
    b = sweep(write_sweep(tmp_path / "b.json", b_doc), out=tmp_path / "d", progress=False)
    assert b.counts["computed"] == 4 and b.counts["reused"] == 0 and b.curves is None
    fresh = sweep(tmp_path / "b.json", out=tmp_path / "fresh", progress=False)
    assert_same_table(read_results(tmp_path / "d"), fresh.table)
    assert not (tmp_path / "d" / "curves.parquet").exists()
    with pytest.raises(SpecError, match="holds no curves"):
        read_results(tmp_path / "d", curves=True)
    manifest = json.loads((tmp_path / "d" / "manifest.json").read_text())
    assert manifest["sweep"]["record"] == ["metrics"]
    again = sweep(tmp_path / "a.json", out=tmp_path / "d", progress=False)
    assert again.counts["computed"] == 0 and again.counts["reused"] == 4
    assert_same_table(again.table, a.table)
    assert_same_table(read_results(tmp_path / "d", curves=True), a.curves)


def test_csv_format_reads_back_identical(tmp_path):
    doc = _sweep_doc(n_lr=2)
    a = sweep(write_sweep(tmp_path / "a.json", doc), progress=False)
    doc["sweep"]["format"] = "csv"
    sweep(write_sweep(tmp_path / "b.json", doc), progress=False)
    assert (tmp_path / "b.sweep" / "results.csv").is_file()
    pd.testing.assert_frame_equal(read_results(tmp_path / "a.sweep"), read_results(tmp_path / "b.sweep"),
                                  check_exact=True, check_dtype=False)
    pd.testing.assert_frame_equal(read_results(tmp_path / "a.sweep", curves=True),
                                  read_results(tmp_path / "b.sweep", curves=True), check_exact=True,
                                  check_dtype=False)
    assert_same_table(a.table, read_results(tmp_path / "a.sweep"))
    ds = to_xarray(tmp_path / "b.sweep")
    assert dict(ds.sizes) == {"teacher.capacity": 2, "student.lr": 2}
    with pytest.raises(SpecError, match="full grid"):
        sweep(base=kd_base(), design={"kind": "random", "n": 2, "fields": {"student.lr": {"range": [0.1, 0.2]}}},
              kind="kd", out=tmp_path / "r", progress=False).to_xarray()


def test_second_driver_on_the_same_directory_is_refused(tmp_path):
    from spectral_theory.sweeps.store import Store

    with Store(tmp_path / "d"):
        with pytest.raises(SpecError, match="being written by another sweep"):
            sweep(base=kd_base(), design={"kind": "grid", "fields": {"student.lr": [0.1]}}, kind="kd",
                  out=tmp_path / "d", progress=False)


def _kill_doc() -> dict:
    """The 12-point sweep the kill tests interrupt (d = 200: long enough to kill part-way)."""
    doc = _sweep_doc(n_lr=6)
    doc["base"] = kd_base(d=200, teacher_steps=800, student_steps=400)
    return doc


@pytest.fixture(scope="module")
def kill_reference(tmp_path_factory):
    """The serial run of :func:`_kill_doc`'s sweep, computed once: every kill test's resumed or
    recovered table must equal it."""
    root = tmp_path_factory.mktemp("kill-reference")
    return sweep(write_sweep(root / "kd.json", _kill_doc()), progress=False)


def test_killed_driver_resumes_with_every_point_once(tmp_path, kill_reference):
    doc = _kill_doc()
    path = write_sweep(tmp_path / "kd.json", doc)
    proc = subprocess.Popen([sys.executable, "-m", "spectral_theory", "sweep", str(path), "--no-progress"],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    parts = tmp_path / "kd.sweep" / "parts"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(parts.glob("*.json"))) < 4 and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    saved = len(list(parts.glob("*.json")))
    assert 4 <= saved < 12, f"the driver was killed after {saved} of 12 points"
    assert not (tmp_path / "kd.sweep" / "results.parquet").exists()
    resumed = sweep(path, progress=False)
    assert resumed.counts["reused"] == saved and resumed.counts["computed"] == 12 - saved
    t = resumed.table
    assert sorted(t["point"]) == list(range(12)) and t["point_hash"].is_unique
    assert_same_table(kill_reference.table, t)


# ---------------------------------------------------------------------------- executors
def test_process_pool_gives_the_serial_table(tmp_path):
    doc = _sweep_doc(n_lr=3)
    serial = sweep(write_sweep(tmp_path / "a.json", doc), progress=False)
    pool = sweep(write_sweep(tmp_path / "b.json", doc), workers=2, progress=False)
    assert pool.executor == "process pool of 2 workers"
    assert_same_table(serial.table, pool.table)
    assert_same_table(serial.curves, pool.curves)


def test_a_worker_of_another_version_is_refused(tmp_path, monkeypatch, capsys):
    # rows are stored under a hash of the driver's version: a worker with another installed
    # version refuses its tasks (one error line, exit 2, nothing saved), for sweep and
    # validate-sweep
    from spectral_theory.sweeps import compute

    monkeypatch.setattr(compute, "_version", lambda: "0.0.1-other")
    path = write_sweep(tmp_path / "kd.json", _sweep_doc(n_lr=2))
    for cmd in (["sweep"], ["validate-sweep", "--reps", "4", "--block", "2"]):
        assert main([*cmd, str(path), "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("spectral-theory: error: ")
        assert f"this worker has spectral-theory 0.0.1-other, the sweep's driver {st.__version__}" in err
        assert not (tmp_path / "kd.sweep").exists()


def test_a_run_whose_executor_cannot_start_saves_nothing(tmp_path):
    # a point whose scenario cannot be built (m.lr = -1 on a spec object) is an error row, but
    # not saved before the executor has started: a bad executor leaves no directory behind
    prob = st.Problem(st.PowerLawSpectrum(a=1.5, d=50), st.PowerLawTarget(b=2.0), noise=0.2)
    scn = st.Scenario(prob, (st.Model("m", steps=50, schedule=0.1),))
    design = {"kind": "list", "fields": {"m.lr": [0.1, -1.0]}}
    with pytest.raises(SpecError, match="--cluster: got 'local:0'"):
        sweep(base=scn, design=design, out=tmp_path / "s", cluster="local:0", progress=False)
    assert not (tmp_path / "s").exists()
    res = sweep(base=scn, design=design, out=tmp_path / "s", progress=False)
    assert list(res.table["status"]) == ["ok", "error"] and "m.lr" in res.table.loc[1, "error"]
    assert res.counts["computed"] == 2


def test_a_point_over_the_memory_budget_is_an_error_row_computed_again(tmp_path, capsys):
    from spectral_theory.budget import transfer_estimate
    from spectral_theory.transfer.specs import transfer_from_dict

    design = {"kind": "grid", "fields": {"spectrum.d": [50, 3000]}}

    def at_d(d):
        data = kd_base()
        data["problem"]["spectrum"]["d"] = d
        return transfer_from_dict(data, kind="kd")

    small, large = (transfer_estimate(at_d(d), "exact").total for d in (50, 3000))
    budget = int((small + large) / 2)
    res = sweep(base=kd_base(), design=design, kind="kd", method="exact", record=["kd_gain"],
                out=tmp_path / "m", progress=False, max_memory=budget)
    ok, over = res.table.iloc[0], res.table.iloc[1]
    assert ok["status"] == "ok" and ok["kd_gain"] == st.evaluate(at_d(50), method="exact")["kd_gain"]
    assert over["status"] == "error" and over["error_type"] == "BudgetError"
    assert "this point needs about" in over["error"] and "over the budget" in over["error"]
    # the refusal depends on the budget, not on the point: the next run computes it again
    again = sweep(base=kd_base(), design=design, kind="kd", method="exact", record=["kd_gain"],
                  out=tmp_path / "m", progress=False, max_memory=None)
    assert again.counts["reused"] == 1 and again.counts["computed"] == 1
    assert (again.table["status"] == "ok").all()
    with pytest.raises(SpecError, match="max_memory: got 0"):
        sweep(base=kd_base(), design=design, kind="kd", out=tmp_path / "z", max_memory=0)
    path = write_sweep(tmp_path / "kd.json", _sweep_doc(n_lr=2))
    assert main(["sweep", str(path), "--no-progress", "--max-memory", "lots"]) == 2
    assert "--max-memory: got 'lots'" in capsys.readouterr().err
    assert not (tmp_path / "kd.sweep").exists()
    assert main(["sweep", str(path), "--no-progress", "--max-memory", "1K"]) == 0
    assert "4 points (4 computed, 0 already done, 4 failed)" in capsys.readouterr().out


@pytest.mark.montecarlo
def test_validation_blocks_over_the_memory_budget_are_computed_again(tmp_path):
    doc = {"sweep": {"method": "exact", "at": [0, 20]},
           "base": {"problem": {"spectrum": {"kind": "powerlaw", "a": 1.5, "d": 10},
                                "target": {"kind": "powerlaw", "b": 2.0}, "noise": 0.5},
                    "models": [{"name": "m", "steps": 20, "lr": 0.2}]},
           "design": {"kind": "grid", "fields": {"m.lr": [0.1, 0.2]}},
           "validate": {"reps": 20, "block": 10, "seed": 5}}
    path = write_sweep(tmp_path / "v.json", doc)
    refused = validate_sweep(path, progress=False, max_memory=1024)
    assert refused.counts["failed"] == 2 and not len(refused.table)
    assert refused.finals["error"].str.startswith("BudgetError: this point needs about").all()
    done = validate_sweep(path, progress=False, max_memory=None)
    assert done.counts["tasks"] == 2 * (1 + 2) and done.counts["failed"] == 0 and done.passed


def _capture_pools(monkeypatch) -> list:
    """The process pools the sweep starts (to find their worker processes)."""
    from spectral_theory.sweeps import executors

    pools: list = []
    init = executors._Pool.__init__

    def record(self, workers):
        init(self, workers)
        pools.append(self)

    monkeypatch.setattr(executors._Pool, "__init__", record)
    return pools


def test_killed_pool_worker_loses_no_point(tmp_path, monkeypatch, capsys, kill_reference):
    # a worker process of the pool killed part-way: a new pool finishes the unfinished tasks,
    # every point exactly once, the same table as a serial run
    doc = _kill_doc()
    path = write_sweep(tmp_path / "kd.json", doc)
    pools = _capture_pools(monkeypatch)
    parts = tmp_path / "kd.sweep" / "parts"
    killed: list[int] = []

    def kill_one():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and (len(list(parts.glob("*.json"))) < 3 or not pools):
            time.sleep(0.01)
        pid = sorted(pools[0].pool._processes)[0]
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)

    th = threading.Thread(target=kill_one)
    th.start()
    res = sweep(path, workers=2, progress=False)
    th.join()
    assert killed and pools[0].restarted == 1, "the worker was killed after the sweep had finished"
    assert "a worker process of the process pool died" in capsys.readouterr().err
    assert res.counts["computed"] == 12 and len(list(parts.glob("*.json"))) == 12
    assert sorted(res.table["point"]) == list(range(12)) and res.table["point_hash"].is_unique
    assert_same_table(kill_reference.table, res.table)
    assert_same_table(kill_reference.curves, res.curves)


def _die_on_large_lr(points, cfg, cache=None):
    """run_batch, except that a batch holding student.lr = 0.3 kills its worker process."""
    if any(p["models"][1]["lr"] == 0.3 for _, p in points):
        os._exit(1)
    return run_batch(points, cfg, cache)


def test_a_task_that_always_kills_its_worker_stops_the_sweep_resumably(tmp_path, monkeypatch, capsys):
    from spectral_theory.sweeps import SweepError, executors
    from spectral_theory.sweeps import run as run_module

    monkeypatch.setattr(run_module, "run_batch", _die_on_large_lr)
    monkeypatch.setattr(executors._Pool, "restarts", 2)
    path = write_sweep(tmp_path / "kd.json", _sweep_doc(n_lr=2))  # student.lr 0.05 and 0.3
    with pytest.raises(SweepError, match="died 3 times"):
        sweep(path, workers=2, progress=False)
    assert capsys.readouterr().err.count("go to a new pool") == 2
    # what finished is saved (the points with lr 0.05, unless each pool broke before they were
    # done), the points with lr 0.3 are not; a resume computes the rest, each point once
    saved = len(list((tmp_path / "kd.sweep" / "parts").glob("*.json")))
    assert saved <= 2
    monkeypatch.setattr(run_module, "run_batch", run_batch)
    resumed = sweep(path, progress=False)
    assert resumed.counts["reused"] == saved and resumed.counts["computed"] == 4 - saved
    assert resumed.table["point_hash"].is_unique and (resumed.table["status"] == "ok").all()


@pytest.fixture(scope="module")
def cluster():
    """A dask LocalCluster of 2 worker processes (1 thread each) on the loopback interface,
    without a dashboard."""
    import logging

    import distributed

    lc = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None, silence_logs=logging.ERROR)
    client = distributed.Client(lc)
    yield lc, client
    client.close()
    lc.close()


def test_cli_local_cluster_gives_the_serial_table(tmp_path, capsys, cluster):
    # the module's LocalCluster of 2 workers through --scheduler (--cluster local:2 starts its
    # own the same way: the README's command runs it, tests/test_readme.py)
    lc, _ = cluster
    doc = _sweep_doc(n_lr=3)
    serial = sweep(write_sweep(tmp_path / "a.json", doc), progress=False)
    path = write_sweep(tmp_path / "b.json", doc)
    assert main(["sweep", str(path), "--scheduler", lc.scheduler_address, "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert f"6 points (6 computed, 0 already done, 0 failed) on dask scheduler {lc.scheduler_address}" in out
    assert_same_table(serial.table, read_results(tmp_path / "b.sweep"))
    assert_same_table(serial.curves, read_results(tmp_path / "b.sweep", curves=True))


def test_killed_worker_loses_no_point(tmp_path, cluster, kill_reference):
    lc, client = cluster
    doc = _kill_doc()
    path = write_sweep(tmp_path / "kd.json", doc)
    before = client.run(os.getpid)
    parts = tmp_path / "kd.sweep" / "parts"
    killed: list[int] = []

    def kill_one():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(list(parts.glob("*.json"))) < 3:
            time.sleep(0.02)
        pid = sorted(before.values())[0]
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)

    th = threading.Thread(target=kill_one)
    th.start()
    res = sweep(path, scheduler=lc.scheduler_address, progress=False)
    th.join()
    assert killed and len(list(parts.glob("*.json"))) == 12
    assert res.counts["computed"] == 12 and res.executor.startswith("dask scheduler")
    client.wait_for_workers(2, timeout=60)
    assert killed[0] not in client.run(os.getpid).values()  # the nanny started a new worker
    assert_same_table(kill_reference.table, res.table)
    assert_same_table(kill_reference.curves, res.curves)


# ---------------------------------------------------------------------------- validation
def test_block_seeds_are_spawned_sequences():
    root = np.random.SeedSequence(7)
    pt = root.spawn(5)[3]
    blk = pt.spawn(4)[2]
    lin = blk.spawn(2)[1]
    expect = int(lin.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))
    assert block_seed(7, 3, 2, 1) == expect
    assert len({block_seed(7, i, j, k) for i in range(4) for j in range(4) for k in range(2)}) == 32


@pytest.mark.montecarlo
# the blocks' own 20-replicate simulations, rerun below, warn that 20 replicates are few for a
# normal interval; the validation's table says so in its heavy_tailed column
@pytest.mark.filterwarnings("ignore::spectral_theory.montecarlo.HeavyTailWarning")
def test_validation_table_is_the_same_for_any_executor(tmp_path, cluster):
    lc, _ = cluster
    doc = {"sweep": {"kind": "kd", "method": "exact", "at": [0, 50, 200]},
           "base": kd_base(d=40, teacher_steps=200, student_steps=200),
           "design": {"kind": "grid", "fields": {"student.lr": [0.1, 0.3], "noise": [0.2, 1.0]}},
           "validate": {"reps": 60, "block": 20, "seed": 11}}
    path = write_sweep(tmp_path / "v.json", doc)
    serial = validate_sweep(path, progress=False)
    dask = validate_sweep(path, out=tmp_path / "dask", scheduler=lc.scheduler_address, progress=False)
    assert_same_table(serial.table, dask.table)
    assert serial.sign_test == dask.sign_test
    # the Monte Carlo means: the replicates of the blocks' own simulations, concatenated
    from spectral_theory.montecarlo import run_monte_carlo
    from spectral_theory.transfer.specs import transfer_from_dict

    sw = load_sweep(path)
    p = sw.points()[3]
    spec = transfer_from_dict(p.payload, kind="kd")
    scn = spec.lineages()["distilled"]
    reps = [run_monte_carlo(scn, at={"teacher": np.array([0, 50, 200]), "kd_student": np.array([0, 50, 200])},
                            reps=20, seed=block_seed(11, 3, j, 0), progress=False)
            ["kd_student"].replicates.excess_risk for j in range(3)]
    x = np.concatenate(reps, axis=1)
    row = serial.table[(serial.table["point"] == 3) & (serial.table["model"] == "kd_student")
                       & (serial.table["quantity"] == "excess_risk")]
    # (montecarlo.mean_se scales each row by its largest value first: equal to round-off)
    np.testing.assert_allclose(row["mc"].to_numpy(), x.mean(axis=1), rtol=1e-13, atol=0)
    # (and a step where every replicate agrees, step 0, has a standard error of exactly 0)
    se = np.where(np.all(x == x[:, :1], axis=1), 0.0, x.std(axis=1, ddof=1) / math.sqrt(60))
    np.testing.assert_allclose(row["se"].to_numpy(), se, rtol=1e-12, atol=0)
    theory = st.predict(scn, at=[0, 50, 200], method="exact")["kd_student"].excess_risk
    np.testing.assert_array_equal(row["theory"].to_numpy(), theory)
    # every point and lineage: theory within 4 SE (60 replicates), no systematic sign
    assert serial.passed and serial.sign_test["n"] == 8
    # more replicates reuse the finished blocks
    more = validate_sweep(path, reps=80, progress=False)
    assert more.counts["tasks"] == 4  # one new block per point, the theory reused


def test_spec_object_base_uses_the_map_paths(tmp_path):
    prob = st.Problem(st.PowerLawSpectrum(a=1.5, d=60), st.PowerLawTarget(b=2.0), noise=0.5)
    kd = st.Distillation(prob, teacher=st.Model("T", steps=300, schedule=0.1, batch=2),
                         student=st.Model("S", steps=200, schedule=0.2, capacity=30))
    res = sweep(base=kd, design={"kind": "list", "fields": {"alpha": [0.0, 0.5], "student.lr": [0.2, 0.1]}},
                record=["kd_gain"], method="exact", out=tmp_path / "o", progress=False)
    from spectral_theory.transfer.maps import set_param

    for _, row in res.table.iterrows():
        spec = set_param(set_param(kd, "alpha", row["alpha"]), "student.lr", row["student.lr"])
        assert row["kd_gain"] == st.evaluate(spec, method="exact")["kd_gain"]
    with pytest.raises(SpecError, match="Model has no field 'capacty'"):
        sweep(base=kd, design={"kind": "grid", "fields": {"student.capacty": [3]}}, out=tmp_path / "x")


@pytest.mark.parametrize("kind, fields, metric", [
    ("w2s", {"strong.lr": [0.05, 0.1]}, "pgr"),
    ("chain", {"generations": [2, 3]}, "final_over_first"),
])
def test_w2s_and_chain_metrics_equal_their_reports(tmp_path, kind, fields, metric):
    base = kd_base(d=60, teacher_steps=200, student_steps=150)
    base["transfer"] = {{"w2s": "weak", "chain": "base"}[kind]: "S", {"w2s": "strong", "chain": "child"}[kind]: "T"}
    res = sweep(base=base, design={"kind": "grid", "fields": fields}, kind=kind, record=["metrics"],
                method="exact", out=tmp_path / kind, progress=False)
    from spectral_theory.sweeps.spec import apply_value
    from spectral_theory.transfer.specs import transfer_from_dict

    for _, row in res.table.iterrows():
        data = json.loads(json.dumps(base))
        (path, _), = fields.items()
        apply_value(data, kind, path, row[path].item() if hasattr(row[path], "item") else row[path])
        rep = st.evaluate(transfer_from_dict(data, kind=kind), method="exact")
        assert row[metric] == rep[metric]
        if kind == "chain":  # list metrics, one column per generation
            for g, v in enumerate(rep["generation_risk"]):
                assert row[f"generation_risk[{g}]"] == v
    if kind == "chain":
        assert math.isnan(res.table.loc[0, "generation_risk[2]"])  # a 2-generation chain has no g2


def test_progress_bar_counts_points(tmp_path, capsys):
    sweep(base=kd_base(), design={"kind": "grid", "fields": {"student.lr": [0.1, 0.2, 0.3]}}, kind="kd",
          batch_size=1, out=tmp_path / "p", progress=True)
    err = capsys.readouterr().err
    assert "sweep sweep [" in err and "3/3 batches" in err and "done" in err


@pytest.mark.montecarlo
def test_validate_sweep_cli_fails_on_a_tight_criterion(tmp_path, capsys):
    doc = {"sweep": {"method": "exact", "at": [0, 40]},
           "base": {"problem": {"spectrum": {"kind": "powerlaw", "a": 1.5, "d": 10},
                                "target": {"kind": "powerlaw", "b": 2.0}, "noise": 0.5},
                    "models": [{"name": "m", "steps": 40, "lr": 0.2}]},
           "design": {"kind": "grid", "fields": {"m.lr": [0.2, 0.2, 0.3]}},
           "validate": {"reps": 40, "block": 10}}
    path = write_sweep(tmp_path / "v.json", doc)
    assert main(["validate-sweep", str(path), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "PASSED" in out and "sign test over 2 final z-scores" in out  # the repeated point counts once
    # z_max tiny: |theory - MC| <= 1e-9 SE fails wherever the replicates differ
    assert main(["validate-sweep", str(path), "--no-progress", "--z-max", "1e-9"]) == 1
    out = capsys.readouterr().out
    assert "FAILED" in out and "rows within the criterion: 3/6" in out


def test_csv_without_pyarrow_and_nothing_left_by_a_failed_start(tmp_path, monkeypatch, capsys):
    import spectral_theory.sweeps.spec as spec_mod

    monkeypatch.setattr(spec_mod, "has_pyarrow", lambda: False)
    res = sweep(base=kd_base(), design={"kind": "grid", "fields": {"student.lr": [0.1]}}, kind="kd",
                out=tmp_path / "c", progress=False)
    assert res.sweep.format == "csv" and (tmp_path / "c" / "results.csv").is_file()
    with pytest.raises(SpecError, match="needs pyarrow"):
        sweep(base=kd_base(), design={"kind": "grid", "fields": {"student.lr": [0.1]}}, kind="kd",
              format="parquet", out=tmp_path / "d")
    monkeypatch.undo()
    # an executor that cannot start: one error line, no directory left behind
    path = write_sweep(tmp_path / "s.json", {"sweep": {"kind": "kd"}, "base": kd_base(),
                                             "design": {"kind": "grid", "fields": {"student.lr": [0.1]}}})
    assert main(["sweep", str(path), "--cluster", "local:0"]) == 2
    assert "--cluster: got 'local:0'; must be local:N with N an integer >= 1" in capsys.readouterr().err
    assert not (tmp_path / "s.sweep").exists()


@pytest.mark.montecarlo
def test_validation_resumes_from_its_blocks(tmp_path):
    doc = {"sweep": {"method": "exact", "at": [0, 20, 40]},
           "base": {"problem": {"spectrum": {"kind": "powerlaw", "a": 1.5, "d": 10},
                                "target": {"kind": "powerlaw", "b": 2.0}, "noise": 0.5},
                    "models": [{"name": "m", "steps": 40, "lr": 0.2}]},
           "design": {"kind": "grid", "fields": {"m.lr": [0.1, 0.2, 0.3]}},
           "validate": {"reps": 40, "block": 10, "seed": 5}}
    path = write_sweep(tmp_path / "v.json", doc)
    first = validate_sweep(path, progress=False)
    assert first.counts["tasks"] == 3 * (1 + 4)  # per point: the theory and 4 blocks
    parts = sorted((tmp_path / "v.sweep" / "validation" / "parts").glob("*.json"))
    for p in parts[:4]:  # as if the driver had been killed before these were written
        p.unlink()
    again = validate_sweep(path, progress=False)
    assert again.counts["tasks"] == 4
    assert_same_table(first.table, again.table)
    assert_same_table(first.finals, again.finals)
    assert first.sign_test == again.sign_test
