"""Random-feature (sketched) models: the cost of a sketched distillation comparison against
Monte Carlo at 1% relative standard error (docs/sketch.md).

    python benchmarks/bench_sketch.py            # d = 10^3, p = 500, T = 10^5 (a few minutes)
    python benchmarks/bench_sketch.py --quick    # d = 200, p = 100, T = 10^4

Problem: lambda_i = i^-1.5, theta_i^2 = i^-2, noise 0.5, Gaussian latents. Distillation:
teacher of p = 500 Gaussian random features (seed 1), student of p = 500 random features of
an independent sketch (seed 2), T = 10^5 steps each at step 0.1, batch 1, soft labels; the
hard-label student has the student's recipe. Reports, in one run (one core: it sets
OPENBLAS_NUM_THREADS=1):

(a) theory: ``predict`` of each lineage at 50 reported steps (the ``kd`` lineage is a
    two-model chain across sketches: d x d moment matrices, renewal for the per-mode
    recursions), and the full ``evaluate`` (oracle stopping included);
(b) Monte Carlo: a pilot run of ``--pilot-reps`` replicates at ``--pilot-steps`` steps per
    model gives the seconds per replicate-step; the relative standard error of the final
    kd-student risk at T = 10^5 is taken from a pilot at the full horizon with
    ``--sd-reps`` replicates (``--no-sd-pilot``: from the short pilot, a lower bound on the
    spread); the replicates needed for 1% relative SE scale as (SE / 1%)^2 and the cost
    linearly in replicates and steps;
(c) theory against that pilot at the full horizon (z-score of the kd-student's final risk).
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
    ap.add_argument("--sd-reps", type=int, default=4)
    ap.add_argument("--no-sd-pilot", action="store_true")
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

    # (b) Monte Carlo cost
    short = dataclasses.replace(kd, teacher=dataclasses.replace(kd.teacher, steps=args.pilot_steps),
                                student=dataclasses.replace(kd.student, steps=args.pilot_steps),
                                output=st.Output(points=10))
    t0 = time.perf_counter()
    st.simulate(short.lineages()["distilled"], reps=args.pilot_reps, seed=0, progress=False)
    t_pilot = time.perf_counter() - t0
    per_rep_step = t_pilot / (args.pilot_reps * 2 * args.pilot_steps)
    if args.no_sd_pilot:
        mc = st.simulate(short.lineages()["distilled"], reps=args.pilot_reps, seed=1, progress=False)
        m = mc["kd_student"]
        rel_sd = float(m.excess_risk_se[-1] / m.excess_risk[-1] * np.sqrt(args.pilot_reps))
        how = f"from the {args.pilot_steps}-step pilot"
        z = float("nan")
    else:
        t0 = time.perf_counter()
        mc = st.simulate(lin["distilled"], reps=args.sd_reps, seed=1, progress=False)
        t_sd = time.perf_counter() - t0
        m = mc["kd_student"]
        rel_sd = float(m.excess_risk_se[-1] / m.excess_risk[-1] * np.sqrt(args.sd_reps))
        z = float((m.excess_risk[-1] - kd_final) / m.excess_risk_se[-1])
        how = f"from {args.sd_reps} replicates at the full horizon ({t_sd:.0f} s)"
        per_rep_step = min(per_rep_step, t_sd / (args.sd_reps * 2 * T))
    reps = int(np.ceil((rel_sd / 0.01) ** 2))
    mc_seconds = reps * 2 * T * per_rep_step
    print(f"(b) Monte Carlo: {per_rep_step * 1e6:.1f} us per replicate-step; relative sd of the final "
          f"kd-student risk {rel_sd:.4f} ({how}): {reps} replicates for 1% relative SE, "
          f"~{mc_seconds:.3g} s for the kd lineage alone (~{mc_seconds / 3600:.3g} h)")
    print(f"    speed-up of the theory (predict, both lineages) over that Monte Carlo: {mc_seconds / t_pred:.3g}x")
    if np.isfinite(z):
        print(f"(c) theory {kd_final:.6f} against the {args.sd_reps}-replicate pilot {m.excess_risk[-1]:.6f} "
              f"+- {m.excess_risk_se[-1]:.6f}: z = {z:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
