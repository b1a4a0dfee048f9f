"""Random-feature (sketched) models: the cost of a sketched distillation comparison against
Monte Carlo at 1% relative standard error (docs/sketch.md).

    python benchmarks/bench_sketch.py                    # d = 10^3, p = 500, T = 10^5 (~2 h one core: the sd pilot)
    python benchmarks/bench_sketch.py --sd-steps 10000   # the sd pilot at 10^4 steps (~15 min)
    python benchmarks/bench_sketch.py --quick    # d = 200, p = 100, T = 10^4

Problem: lambda_i = i^-1.5, theta_i^2 = i^-2, noise 0.5, Gaussian latents. Distillation:
teacher of p = 500 Gaussian random features (seed 1), student of p = 500 random features of
an independent sketch (seed 2), T = 10^5 steps each at step 0.1, batch 1, soft labels; the
hard-label student has the student's recipe. Reports, in one run (one core: it sets
OPENBLAS_NUM_THREADS=1):

(a) theory: ``predict`` of each lineage at 50 reported steps (the ``kd`` lineage is a
    two-model chain across sketches: d x d moment matrices, renewal for the per-mode
    recursions), and the full ``evaluate`` (oracle stopping included);
(b) Monte Carlo of both lineages (like for like with (a)): per lineage, a pilot of
    ``--pilot-reps`` replicates at ``--pilot-steps`` steps per model gives the seconds per
    replicate-step, and ``--sd-reps`` replicates (default 30: the SD's own relative
    uncertainty is then ~13%) at ``--sd-steps`` steps per model (default: the full horizon T)
    give the relative sd of the lineage's final student risk; the replicates needed for 1%
    relative SE scale as (sd / 1%)^2 and the cost linearly in replicates and steps (at T);
(c) theory against the sd pilot (z-score of each final student risk, at ``--sd-steps``).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

import spectral_theory as st  # noqa: E402


def spec(d: int, p: int, T: int) -> st.Distillation:
    prob = st.Problem(st.PowerLawSpectrum(a=1.5, d=d), st.PowerLawTarget(b=2.0), noise=0.5)
    out = st.Output(points=50)
    return st.Distillation(prob, teacher=st.Model("T", steps=T, schedule=0.1, features=st.RandomFeatures(p, seed=1)),
                           student=st.Model("S", steps=T, schedule=0.1, features=st.RandomFeatures(p, seed=2)),
                           alpha=0.0, output=out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--pilot-reps", type=int, default=16)
    ap.add_argument("--pilot-steps", type=int, default=500)
    ap.add_argument("--sd-reps", type=int, default=30)
    ap.add_argument("--sd-steps", type=int, default=None, help="horizon of the sd pilot (default: T)")
    args = ap.parse_args(argv)
    d, p, T = (200, 100, 10**4) if args.quick else (1000, 500, 10**5)
    kd = spec(d, p, T)
    lin = kd.lineages()
    print(f"sketched distillation: d = {d}, p = {p} (teacher and student, independent sketches), T = {T}")

    # (a) theory (the sketch SVDs included: the sketch cache starts empty)
    t0 = time.perf_counter()
    res = {name: st.predict(scn) for name, scn in lin.items()}
    t_pred = time.perf_counter() - t0
    t0 = time.perf_counter()
    rep = st.evaluate(kd)
    t_eval = time.perf_counter() - t0
    kd_final = res["distilled"]["kd_student"].final
    methods = {k: r.diagnostics["inner_methods"] for k, r in res.items()}
    print(f"(a) theory: predict of both lineages {t_pred:.2f} s (sketch SVDs included; per-model "
          f"methods {methods}); evaluate (oracle stopping included) {t_eval:.2f} s; "
          f"kd_gain {rep['kd_gain']:.4f}, kd-student final risk {kd_final:.6f}")

    # (b) Monte Carlo cost, both lineages
    students = {"distilled": "kd_student", "hard": "hard_student"}
    sd_steps = args.sd_steps or T
    total = 0.0
    zs = {}
    for name, student in students.items():
        def at_steps(n: int, points: int, name=name) -> st.Scenario:
            sc = lin[name]
            return dataclasses.replace(sc, models=tuple(dataclasses.replace(m, steps=n) for m in sc.models),
                                       output=st.Output(points=points))

        short = at_steps(args.pilot_steps, 10)
        steps_per_rep = sum(m.steps for m in short.models)
        t0 = time.perf_counter()
        st.simulate(short, reps=args.pilot_reps, seed=0, progress=False)
        per_rep_step = (time.perf_counter() - t0) / (args.pilot_reps * steps_per_rep)
        sd_sc = at_steps(sd_steps, 10)
        t0 = time.perf_counter()
        mc = st.simulate(sd_sc, reps=args.sd_reps, seed=1, progress=False)
        t_sd = time.perf_counter() - t0
        m = mc[student]
        rel_sd = float(m.excess_risk_se[-1] / m.excess_risk[-1] * np.sqrt(args.sd_reps))
        # the longer run amortises set-up (sketch draws, checks) and blocks more steps: the
        # cheaper of the two per-replicate-step times is the honest (lower) Monte Carlo cost
        per_rep_step = min(per_rep_step, t_sd / (args.sd_reps * sum(mm.steps for mm in sd_sc.models)))
        th = st.predict(sd_sc, at=np.array([sd_steps]))[student].final if sd_steps != T else res[name][student].final
        zs[student] = (th, float(m.excess_risk[-1]), float(m.excess_risk_se[-1]))
        reps = int(np.ceil((rel_sd / 0.01) ** 2))
        n_steps = sum(mm.steps for mm in lin[name].models)
        secs = reps * n_steps * per_rep_step
        total += secs
        print(f"(b) {name}: {per_rep_step * 1e6:.1f} us per replicate-step (the cheaper of the "
              f"{args.pilot_reps}-replicate {args.pilot_steps}-step pilot and the sd run); relative sd of the final {student} risk {rel_sd:.4f} "
              f"(+- {rel_sd / np.sqrt(2 * (args.sd_reps - 1)):.4f}; {args.sd_reps} replicates at {sd_steps} steps, "
              f"{t_sd:.0f} s): {reps} replicates for 1% relative SE, ~{secs:.3g} s at T = {T}")
    print(f"    Monte Carlo of both lineages ~{total:.3g} s (~{total / 3600:.3g} h); theory (predict, both "
          f"lineages) {t_pred:.2f} s: speed-up {total / t_pred:.3g}x")
    for student, (th, mean, se) in zs.items():
        print(f"(c) {student} at step {sd_steps}: theory {th:.6f}, Monte Carlo {mean:.6f} +- {se:.6f}: "
              f"z = {(mean - th) / se:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
