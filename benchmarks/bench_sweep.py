"""Sweeps (``docs/sweeps.md``): a KD-gain map computed serially and on a dask LocalCluster of 2
workers, the cost of resuming it when 90% is done, and a projection of the wall time of a
10^5-point sweep on 100 workers, in one run.

    python benchmarks/bench_sweep.py            # 400 points at d = 10^3 (a few minutes on 2 cores)
    python benchmarks/bench_sweep.py --quick    # 40 points at d = 200: a smoke run

The map: ``lambda_i = i^-1.5``, ``theta_i^2 = i^-2``, noise 0.5, d = 10^3 (exact theory, every
step: the oracle risks of the report); teacher batch 4, constant step 0.05; student capacity
d/5, the KD gain over a 20 x 20 grid of the teacher's capacity (linear, d/20 .. d) and the
student's constant step (log, 0.02 .. 0.4), batches of 20 points (one teacher each).

1. serial: wall time, seconds per point;
2. ``--cluster local:2`` (2 processes, 1 thread each; its start-up timed separately): wall
   time and speed-up; the two tables are required to be identical (bit for bit);
3. resumption at 90% done: the part files of 10% of the points removed, the sweep run again:
   wall time against the serial run (ideal: 10%), and a no-op resume (100% done: reading the
   parts and assembling the tables) as the fixed cost;
4. projection for 10^5 points on 100 workers: ``N c / W`` (the measured seconds per point on
   one worker ``c``) plus the scheduler's per-task overhead (measured with 400 empty tasks on
   the LocalCluster) and the driver's per-batch cost (writing a part file, measured) over the
   ``N / batch`` tasks, whichever of compute and driver is the bottleneck.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402


def base(d: int, teacher_steps: int, student_steps: int) -> dict:
    return {"problem": {"spectrum": {"kind": "powerlaw", "a": 1.5, "d": d},
                        "target": {"kind": "powerlaw", "b": 2.0}, "noise": 0.5},
            "models": [{"name": "teacher", "steps": teacher_steps, "lr": 0.05, "batch": 4},
                       {"name": "student", "steps": student_steps, "lr": 0.2, "capacity": d // 5}],
            "transfer": {"teacher": "teacher", "student": "student"}}


def _noop(x):
    return x


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="40 points at d = 200")
    args = ap.parse_args()
    from spectral_theory.sweeps import sweep

    if args.quick:
        d, side, teacher_steps, student_steps = 200, (4, 10), 1000, 500
    else:
        d, side, teacher_steps, student_steps = 1000, (20, 20), 2000, 1000
    n_points = side[0] * side[1]
    design = {"kind": "grid", "fields": {
        "teacher.capacity": [int(c) for c in np.linspace(d // 20, d, side[0]).round()],
        "student.lr": {"log": [0.02, 0.4], "num": side[1]}}}
    opts = {"kind": "kd", "record": ["kd_gain"], "method": "exact", "batch_size": side[1]}
    tmp = Path(tempfile.mkdtemp(prefix="bench_sweep-"))
    b = base(d, teacher_steps, student_steps)
    print(f"# KD-gain map: {n_points} points ({side[0]} teachers x {side[1]} student steps), d = {d}, "
          f"teacher {teacher_steps} steps, student {student_steps} steps, exact theory, batches of {side[1]}")
    try:
        t0 = time.perf_counter()
        serial = sweep(base=b, design=design, out=tmp / "serial", progress=False, **opts)
        t_serial = time.perf_counter() - t0
        per_point = t_serial / n_points
        print(f"serial:               {t_serial:8.2f} s  ({per_point * 1e3:.1f} ms per point)")

        # where a point's time goes: the theory alone (transfer.evaluate on the first teacher's
        # points with one prefix cache, as a batch does) against the sweep's cost per point
        from spectral_theory.solvers import PrefixCache
        from spectral_theory.sweeps.spec import build_spec
        from spectral_theory.transfer import evaluate

        row = serial.sweep.points()[:side[1]]
        cache = PrefixCache()
        t0 = time.perf_counter()
        for p in row:
            rep = evaluate(build_spec(p.payload, "kd"), method="exact", cache=cache)
        t_theory = (time.perf_counter() - t0) / len(row)
        mode_steps = (2 * student_steps + teacher_steps / side[1]) * d
        print(f"  theory alone (evaluate, one teacher per {side[1]} points): {t_theory * 1e3:.1f} ms per point "
              f"= {t_theory / per_point:.0%} of the sweep's cost; method {rep.method}; per point "
              f"2 students x {student_steps} steps + 1/{side[1]} teacher x {teacher_steps} steps over d = {d} "
              f"modes, every step recorded (oracle metrics): {mode_steps / t_theory:.2e} mode-steps/s")

        import logging

        from distributed import Client, LocalCluster

        t0 = time.perf_counter()
        lc = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                          dashboard_address=None, silence_logs=logging.ERROR)
        client = Client(lc)
        t_start = time.perf_counter() - t0
        t0 = time.perf_counter()
        dask = sweep(base=b, design=design, out=tmp / "dask", client=client, progress=False, dashboard=False,
                     **opts)
        t_dask = time.perf_counter() - t0
        import pandas as pd

        pd.testing.assert_frame_equal(serial.table, dask.table, check_exact=True)
        print(f"LocalCluster, 2 workers: {t_dask:6.2f} s  speed-up {t_serial / t_dask:.2f}x "
              f"(cluster start-up {t_start:.1f} s, not included); table identical to the serial one")

        # scheduler overhead per task: 400 empty tasks
        futs = [client.submit(_noop, i, pure=False) for i in range(400)]
        t0 = time.perf_counter()
        client.gather(futs)
        futs = [client.submit(_noop, i, pure=False) for i in range(400)]
        client.gather(futs)
        t_task = (time.perf_counter() - t0) / 400
        del futs
        client.close()
        lc.close()

        # resume at 90% done: remove the parts holding 10% of the points
        parts = sorted((tmp / "serial" / "parts").glob("*.json"))
        n_remove = max(1, len(parts) // 10)
        for p in parts[:n_remove]:
            p.unlink()
        t0 = time.perf_counter()
        res = sweep(base=b, design=design, out=tmp / "serial", progress=False, **opts)
        t_resume = time.perf_counter() - t0
        pd.testing.assert_frame_equal(serial.table, res.table, check_exact=True)
        t0 = time.perf_counter()
        sweep(base=b, design=design, out=tmp / "serial", progress=False, **opts)
        t_noop = time.perf_counter() - t0
        print(f"resume at 90% done:   {t_resume:8.2f} s  = {t_resume / t_serial:.1%} of the serial run "
              f"({res.counts['computed']} points computed, {res.counts['reused']} read back; ideal 10%)")
        print(f"no-op resume (100%):  {t_noop:8.2f} s  (reading {len(parts)} parts and writing the tables)")

        # driver cost per batch: one part file written
        from spectral_theory.sweeps.store import Store

        doc = {"points": [[f"{i:064d}", {"status": "ok", "kd_gain": 1.0}, []] for i in range(side[1])]}
        with Store(tmp / "writes") as st:
            t0 = time.perf_counter()
            for i in range(200):
                st.write_part(f"p{i}", doc)
            t_write = (time.perf_counter() - t0) / 200

        N, W, batch = 10**5, 100, side[1]
        tasks = N // batch
        compute = N * per_point / W
        driver = tasks * (t_task + t_write)
        print(f"\n# projection: 10^5 points on 100 workers, batches of {batch} ({tasks} tasks)")
        print(f"seconds per point on one worker (serial run):   {per_point * 1e3:8.2f} ms")
        print(f"scheduler overhead per task (400 empty tasks):   {t_task * 1e3:8.2f} ms")
        print(f"driver per finished batch (atomic part write):   {t_write * 1e3:8.2f} ms")
        print(f"compute: N c / W = {compute:8.1f} s; driver: tasks x (overhead + write) = {driver:6.1f} s")
        print(f"projected wall time: {max(compute, driver) + (t_noop * N / n_points):.0f} s "
              f"(the larger of the two, plus the final assembly scaled from the no-op resume: "
              f"{t_noop * N / n_points:.0f} s)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
