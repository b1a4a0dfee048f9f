"""Exact-engine throughput and Monte Carlo cost at equal statistical accuracy.

    python benchmarks/bench_engine.py            # full run (about a minute)
    python benchmarks/bench_engine.py --quick    # smaller sizes, a smoke run

Reports (one run, side by side):
1. the exact engine's throughput in mode-steps per second (d x T / seconds) for
   a single hard-label model and for a teacher -> student pair, at d = 10^2,
   10^4, 10^6 (best of 3 repeats);
2. the Monte Carlo simulator's cost to reach a 1% relative standard error on
   the final excess risk of a reference scenario, extrapolated from a pilot
   run (cost is linear in replicates; the SE scales as R^-1/2), against the
   exact engine's cost for the same scenario: the ratio MC / theory.
"""

from __future__ import annotations

import argparse
import time

import spectral_theory as st


def _scenario(d: int, steps: int, chain: bool) -> st.Scenario:
    prob = st.Problem(st.PowerLawSpectrum(a=1.5, d=d), st.PowerLawTarget(b=2.0), noise=0.1)
    models = [st.Model("t", steps=steps, schedule=0.2)]
    if chain:
        models.append(st.Model("s", steps=steps, schedule=0.2, teacher="t", alpha=0.3))
    return st.Scenario(prob, tuple(models), output=st.Output(at=(0, steps)))


def best_of(fn, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def throughput(quick: bool) -> None:
    sizes = [(100, 20_000), (10_000, 2_000), (1_000_000, 20)] if not quick else \
        [(100, 2_000), (10_000, 200), (1_000_000, 4)]
    print("## exact engine throughput (mode-steps per second, best of 3)")
    print(f"{'d':>9} {'T':>7} {'single model':>14} {'teacher->student':>17}")
    for d, T in sizes:
        row = []
        for chain in (False, True):
            sc = _scenario(d, T, chain)
            sec = best_of(lambda sc=sc: st.predict(sc, method="exact"))
            work = d * T * len(sc.models)
            row.append(work / sec)
        print(f"{d:>9d} {T:>7d} {row[0]:>14.3e} {row[1]:>17.3e}")


def mc_equal_accuracy(quick: bool) -> None:
    d, T, pilot = (100, 1000, 400) if not quick else (50, 300, 200)
    sc = _scenario(d, T, chain=False)
    t0 = time.perf_counter()
    th = st.predict(sc, method="exact")
    t_theory = time.perf_counter() - t0
    t0 = time.perf_counter()
    mc = st.simulate(sc, reps=pilot, seed=0, progress=False)
    t_pilot = time.perf_counter() - t0
    m = mc["t"]
    rel = float(m.excess_risk_se[-1] / m.excess_risk[-1])
    reps_needed = pilot * (rel / 0.01) ** 2
    t_mc = t_pilot * reps_needed / pilot
    print(f"\n## Monte Carlo at 1% relative SE vs exact engine (d = {d}, T = {T}, B = 1)")
    print(f"pilot: {pilot} replicates in {t_pilot:.2f} s, relative SE {rel:.3%} "
          f"(theory {th['t'].final:.5g}, MC {m.final:.5g} +- {m.excess_risk_se[-1]:.2g})")
    print(f"replicates for 1% relative SE: {reps_needed:.0f}; MC cost {t_mc:.2f} s")
    print(f"exact engine: {t_theory:.4f} s;  ratio MC / theory = {t_mc / t_theory:.1f}x")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    throughput(args.quick)
    mc_equal_accuracy(args.quick)


if __name__ == "__main__":
    main()
