"""Cost of the deterministic-equivalent ODE and of the continuum (weighted-node) solver.

    python benchmarks/bench_continuum.py            # full run (a few minutes)
    python benchmarks/bench_continuum.py --quick    # smaller sizes, a smoke run

Reports (one run, side by side):
1. the ODE (spectral_theory.solvers.ode.run_ode, rtol 1e-6) at T = 10^4, 10^6, 10^8 steps
   for a constant step, step decay (halving every T / log2 T steps) and a
   polynomial decay (T <= 10^6): grid points and seconds, on the full d = 1000
   problem and on d = infinity continuum nodes, showing logarithmic growth in T
   (log^2 T for step decay, whose log2 T jumps each restart the multi-scale
   relaxation); the exact engine's
   cost at T = 10^4 for scale, and the ODE's discrepancy there against the
   stated bound 0.5 * max(eta s) * max_t E;
2. the continuum solver (power-law nodes) against the full-d ODE at d = 10^5
   (a in {1.5, 2}, b in {1.5, 2.5}) and d = 10^6 (a = 1.5, b = 2.5), teacher ->
   student with capacity 300: seconds, node counts and the largest relative
   difference of the risk curves; and the d = infinity curve's distance to the
   finite-d ones.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

import spectral_theory as st
from spectral_theory.solvers.continuum import run_continuum
from spectral_theory.solvers.exact import run_exact
from spectral_theory.solvers.ode import ODE_ERROR_CONSTANT, run_ode
from spectral_theory.spec import log_steps


def _problem(d: int, a: float = 1.5, b: float = 2.0) -> st.Problem:
    return st.Problem(st.PowerLawSpectrum(a=a, d=d), st.PowerLawTarget(b=b), noise=0.1)


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def ode_vs_T(quick: bool) -> None:
    d = 300 if quick else 1000
    Ts = (10**4, 10**6) if quick else (10**4, 10**6, 10**8)
    prob = _problem(d)
    print(f"## ODE cost against T (a = 1.5, b = 2, sigma2 = 0.1, lr 0.2, rtol 1e-6, "
          f"50 log-spaced reported steps); full d = {d} and d = infinity (continuum nodes)")
    print(f"{'schedule':>12} {'T':>8} {'points d=' + str(d):>14} {'rej.':>5} {'seconds':>8} "
          f"{'points d=inf':>13} {'rej.':>5} {'seconds':>8}")
    for kind in ("constant", "step_decay", "polynomial"):
        for T in Ts:
            if kind == "constant":
                sched = 0.2
            elif kind == "step_decay":
                sched = st.StepDecay(0.2, 0.5, st.halving_every(T))
            else:
                if T > 10**7:
                    print(f"{kind:>12} {T:>8.0e}   (skipped: a smooth schedule is materialised per step, "
                          "O(T) memory)")
                    continue
                sched = st.Polynomial(0.2, 100.0, 1.0)
            sc = st.Scenario(prob, (st.Model("m", steps=T, schedule=sched),))
            at = {"m": log_steps(T, 50)}
            res, sec = _timed(lambda sc=sc, at=at: run_ode(sc, at=at))
            inf, sec_inf = _timed(lambda sc=sc, at=at: run_continuum(sc, at=at, d=None))
            print(f"{kind:>12} {T:>8.0e} {res.diagnostics['grid_points']:>14d} "
                  f"{res.diagnostics['rejected_steps']:>5d} {sec:>8.2f} "
                  f"{inf.diagnostics['grid_points']:>13d} {inf.diagnostics['rejected_steps']:>5d} "
                  f"{sec_inf:>8.2f}", flush=True)
    # exact engine at T = 1e4 for scale, and the ODE's discrepancy against the stated bound
    T = 10**4
    sc = st.Scenario(prob, (st.Model("m", steps=T, schedule=0.2),))
    at = {"m": log_steps(T, 50)}
    ex, sec_ex = _timed(lambda: run_exact(sc, at=at))
    od, sec_od = _timed(lambda: run_ode(sc, at=at))
    x = od.diagnostics["max_eta_s"]["m"]
    gap = float(np.max(np.abs(ex["m"].excess_risk - od["m"].excess_risk)))
    rel = float(np.max(np.abs(od["m"].excess_risk / ex["m"].excess_risk - 1)))
    bound = ODE_ERROR_CONSTANT * x * float(ex["m"].excess_risk.max())
    print(f"exact engine, constant, T = 1e4: {sec_ex:.2f} s (ODE {sec_od:.2f} s; the engine is "
          f"linear in T: ~{sec_ex * 1e4:.0f} s at T = 1e8)")
    print(f"ODE vs exact at T = 1e4: max |dE| = {gap:.3e} <= bound {bound:.3e} "
          f"(C_measured = {gap / (x * ex['m'].excess_risk.max()):.3f}, x_max = {x:.3g}); "
          f"max pointwise relative {rel:.3e}")


def continuum_vs_full(quick: bool) -> None:
    sizes = (10**4, 10**5) if quick else (10**5, 10**6)
    T = 10**5 if not quick else 10**4
    print(f"\n## continuum nodes vs full-d ODE (teacher -> student, capacity 300, alpha 0.2, "
          f"T = {T:.0e}, lr 0.25, rtol 1e-6)")
    print(f"{'a':>4} {'b':>4} {'d':>8} {'full s':>8} {'nodes':>6} {'cont. s':>8} {'speed-up':>9} "
          f"{'max rel diff':>13} {'d=inf vs d':>11}")
    if quick:
        runs = [(1.5, 2.5, d) for d in sizes]
    else:  # the (a, b) grid at d = 1e5, one pair at d = 1e6
        runs = [(a, b, sizes[0]) for a in (1.5, 2.0) for b in (1.5, 2.5)] + [(1.5, 2.5, sizes[1])]
    for a, b, d in runs:
        models = (st.Model("t", steps=T, schedule=0.25),
                  st.Model("s", steps=T, schedule=0.25, teacher="t", capacity=300, alpha=0.2))
        sc = st.Scenario(_problem(d, a, b), models)
        at = {m.name: log_steps(T, 30) for m in models}
        full, sec_full = _timed(lambda sc=sc, at=at: run_ode(sc, at=at))
        cont, sec_cont = _timed(lambda sc=sc, at=at: run_continuum(sc, at=at))
        inf = run_continuum(sc, at=at, d=None)
        diff = max(float(np.max(np.abs(cont[n].excess_risk / full[n].excess_risk - 1)))
                   for n in ("t", "s"))
        dinf = max(float(np.max(np.abs(inf[n].excess_risk / full[n].excess_risk - 1)))
                   for n in ("t", "s"))
        print(f"{a:>4} {b:>4} {d:>8.0e} {sec_full:>8.2f} {cont.diagnostics['nodes']['nodes']:>6d} "
              f"{sec_cont:>8.2f} {sec_full / sec_cont:>8.0f}x {diff:>13.2e} {dinf:>11.2e}", flush=True)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    t0 = time.perf_counter()
    ode_vs_T(args.quick)
    continuum_vs_full(args.quick)
    print(f"\ntotal {time.perf_counter() - t0:.0f} s; load average {' '.join(f'{v:.1f}' for v in _load())}")


def _load() -> tuple[float, ...]:
    try:
        import os

        return os.getloadavg()
    except (OSError, AttributeError):  # pragma: no cover
        return (math.nan,)


if __name__ == "__main__":
    main()
