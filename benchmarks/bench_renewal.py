"""The renewal (contour) solver ``spectral_theory.solvers.renewal`` against the exact engine.

    python benchmarks/bench_renewal.py            # full run (about a minute on one core)
    python benchmarks/bench_renewal.py --quick    # smaller sizes, a smoke run

Problem: power-law spectrum ``lambda_i = i^-1.5``, target ``theta_i^2 = i^-2``,
label noise ``sigma2 = 0.1``, Gaussian latents, batch 1, step 0.25 (about half
the stability limit 0.52), 200 log-spaced checkpoints per model. Reports, in
one run (best of 3 repeats, wall-clock and process CPU seconds):

(a) d = 10^5, T = 10^8, constant and step-decay (halving every T / log2 T steps,
    ``schedules.halving_every``) schedules;
(b) the same at T = 10^4, and the ratio cost(T = 10^8) / cost(T = 10^4);
(c) speed-up over ``solvers.exact.run_exact`` at d = 10^4, T = 10^6 (constant step):
    the engine is timed on a shorter run and extrapolated linearly (its cost is
    exactly linear in T, one O(d) step per step), the fast solver runs the full
    10^6 steps; the two are also compared on the short run (relative gap);
(d) distillation (teacher -> student on soft labels, alpha = 0, same capacity) and
    weak-to-strong (teacher of capacity d/100 -> full-capacity student, alpha = 0)
    at d = 10^5, T = 10^8 steps per model;
(e) speed-up over Monte Carlo at 1% relative standard error of the final excess
    risk, d = 10^3, T = 10^4: a pilot Monte Carlo run gives seconds per replicate
    and the relative SE, the replicates needed scale as (SE / 1%)^2 and the cost
    linearly in replicates; against the fast solver on the same scenario.

Set OPENBLAS_NUM_THREADS=1 (done below before numpy is imported) for one core.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

import spectral_theory as st  # noqa: E402
from spectral_theory.solvers import renewal  # noqa: E402
from spectral_theory.solvers.exact import run_exact  # noqa: E402
from spectral_theory.spec import (  # noqa: E402
    StepDecay,
    halving_every,
    log_steps,  # noqa: E402
)

LR = 0.25
POINTS = 200


def problem(d: int) -> st.Problem:
    return st.Problem(st.PowerLawSpectrum(a=1.5, d=d), st.PowerLawTarget(b=2.0), noise=0.1)


def schedule(kind: str, T: int):
    return LR if kind == "constant" else StepDecay(LR, 0.5, halving_every(T))


def timed(fn, repeats: int = 3) -> tuple[float, float, object]:
    """Best wall-clock and best CPU seconds over ``repeats`` calls, and the last result."""
    wall = cpu = float("inf")
    out = None
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        wall = min(wall, time.perf_counter() - w0)
        cpu = min(cpu, time.process_time() - c0)
    return wall, cpu, out


def run_single(d: int, T: int, kind: str, repeats: int):
    sc = st.Scenario(problem(d), (st.Model("m", steps=T, schedule=schedule(kind, T)),))
    at = {"m": log_steps(T, POINTS)}
    return timed(lambda: renewal.run_renewal(sc, at=at), repeats)


def part_ab(d: int, T_big: int, T_small: int, repeats: int) -> None:
    print(f"## (a, b) single model, d = {d:.0e}, {POINTS} log-spaced checkpoints "
          f"(best of {repeats}; seconds)")
    print(f"{'schedule':>11} {'T':>7} {'wall':>8} {'cpu':>8} {'phases':>7} {'nodes':>6} "
          f"{'final risk':>11} {'consistency':>12}")
    for kind in ("constant", "step-decay"):
        cost = {}
        for T in (T_big, T_small):
            wall, cpu, res = run_single(d, T, kind, repeats)
            cost[T] = cpu
            dg = res.diagnostics
            print(f"{kind:>11} {T:>7.0e} {wall:>8.3f} {cpu:>8.3f} "
                  f"{dg['phases_contour'] + dg['phases_direct']:>7d} {dg['contour_nodes']:>6d} "
                  f"{res['m'].final:>11.4e} {dg['consistency']:>12.1e}")
        print(f"{kind:>11} cost(T={T_big:.0e}) / cost(T={T_small:.0e}) = "
              f"{cost[T_big] / cost[T_small]:.2f} (cpu)")


def part_c(d: int, T: int, T_short: int) -> None:
    print(f"\n## (c) speed-up over run_exact, d = {d:.0e}, T = {T:.0e}, constant step")
    sc_short = st.Scenario(problem(d), (st.Model("m", steps=T_short, schedule=LR),))
    at_short = {"m": log_steps(T_short, POINTS)}
    w_ex, c_ex, ex = timed(lambda: run_exact(sc_short, at=at_short), 1)
    _, _, fa = timed(lambda: renewal.run_renewal(sc_short, at=at_short), 1)
    gap = float(np.max(np.abs(fa["m"].excess_risk - ex["m"].excess_risk) / ex["m"].excess_risk))
    per_step = c_ex / T_short
    sc = st.Scenario(problem(d), (st.Model("m", steps=T, schedule=LR),))
    at = {"m": log_steps(T, POINTS)}
    w_fa, c_fa, _ = timed(lambda: renewal.run_renewal(sc, at=at), 3)
    print(f"run_exact: {T_short} steps in {c_ex:.2f} s cpu ({w_ex:.2f} s wall) -> "
          f"{per_step * T:.1f} s for T = {T:.0e} (linear extrapolation)")
    print(f"renewal  : T = {T:.0e} in {c_fa:.3f} s cpu ({w_fa:.3f} s wall)")
    print(f"speed-up : {per_step * T / c_fa:.0f}x (cpu); largest relative gap on the "
          f"{T_short}-step run: {gap:.1e}")


def part_d(d: int, T: int, repeats: int) -> None:
    print(f"\n## (d) transfer scenarios through the fast path, d = {d:.0e}, T = {T:.0e} per model")
    prob = problem(d)
    cases = {
        "distillation": (st.Model("teacher", steps=T, schedule=LR),
                         st.Model("student", steps=T, schedule=LR, teacher="teacher", alpha=0.0)),
        "weak-to-strong": (st.Model("weak", steps=T, schedule=LR, capacity=max(1, d // 100)),
                           st.Model("strong", steps=T, schedule=LR, teacher="weak", alpha=0.0)),
    }
    for name, models in cases.items():
        sc = st.Scenario(prob, models)
        at = {m.name: log_steps(T, POINTS) for m in models}
        wall, cpu, res = timed(lambda sc=sc, at=at: renewal.run_renewal(sc, at=at), repeats)
        s = models[1].name
        print(f"{name:>15}: {wall:.3f} s wall, {cpu:.3f} s cpu; final risk {models[0].name} "
              f"{res[models[0].name].final:.4e}, {s} {res[s].final:.4e}, "
              f"disagreement {res[s].disagreement[-1]:.4e}")


def part_e(d: int, T: int, pilot: int) -> None:
    print(f"\n## (e) speed-up over Monte Carlo at 1% relative SE, d = {d:.0e}, T = {T:.0e}, constant step")
    sc = st.Scenario(problem(d), (st.Model("m", steps=T, schedule=LR),), output=st.Output(at=(0, T)))
    w_fa, c_fa, th = timed(lambda: st.predict(sc, method="renewal"), 3)
    w_mc, c_mc, mc = timed(lambda: st.simulate(sc, reps=pilot, seed=0, progress=False), 1)
    m = mc["m"]
    rel = float(m.excess_risk_se[-1] / m.excess_risk[-1])
    need = pilot * (rel / 0.01) ** 2
    mc_cost = w_mc * need / pilot
    print(f"pilot Monte Carlo: {pilot} replicates in {w_mc:.2f} s wall; relative SE {rel:.2%} "
          f"(MC {m.final:.5g} +- {m.excess_risk_se[-1]:.2g}, theory {th['m'].final:.5g})")
    print(f"replicates for 1% relative SE: {need:.0f} -> {mc_cost:.1f} s; renewal solver {w_fa:.4f} s wall")
    print(f"speed-up over Monte Carlo: {mc_cost / w_fa:.3g}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smaller sizes (smoke run)")
    args = ap.parse_args()
    if args.quick:
        part_ab(d=10**4, T_big=10**6, T_small=10**3, repeats=1)
        part_c(d=10**3, T=10**5, T_short=500)
        part_d(d=10**4, T=10**6, repeats=1)
        part_e(d=200, T=2000, pilot=50)
    else:
        part_ab(d=10**5, T_big=10**8, T_small=10**4, repeats=3)
        part_c(d=10**4, T=10**6, T_short=5000)
        part_d(d=10**5, T=10**8, repeats=3)
        part_e(d=10**3, T=10**4, pilot=64)


if __name__ == "__main__":
    main()
