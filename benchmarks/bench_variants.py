"""Cost of the SGD variants (iterate averaging, momentum; docs/theory.md §10) at d = 10^5.

    python benchmarks/bench_variants.py            # about a minute
    python benchmarks/bench_variants.py --quick    # a smoke run

Reports, in one run, for a power-law problem at d = 10^5 with constant coefficients:

1. the plain-SGD figure at T = 10^8: the renewal solver (what ``auto`` picks), measured;
2. the exact step-by-step engine (the only method that integrates the variants; the renewal,
   ODE and continuum methods decline them, see docs/variants.md) for plain SGD, tail averaging,
   heavy-ball, Nesterov, accelerated SGD and heavy-ball with tail averaging: the fixed cost (the
   stability check) and seconds per step at d = 10^5, its ratio to plain SGD's step, and the time
   T = 10^8 steps would take, extrapolated linearly (the engine's cost is exactly linear in T:
   one fixed sequence of array operations per step). The T = 10^8 figures of the variants are
   extrapolations, not runs: at ~10^-3 s per step they are days. (No constant-phase fast path
   exists for the variants, docs/variants.md; on a loaded machine the per-step difference can be
   lost in the fixed cost's noise: such a row says so instead of printing a number.)
   The last column is the ratio the CLI's time estimate (``budget.variant_step_factor``,
   ``--max-seconds``) assumes, to compare with the measured one.
3. the stability check of a momentum model at d = 10^5 (the O(d) exact test, kappa >= 2).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import spectral_theory as st
from spectral_theory.budget import variant_step_factor
from spectral_theory.spec.variants import Momentum
from spectral_theory.stability_momentum import momentum_limit

VARIANTS = {
    "plain SGD": {},
    "tail average (fraction 0.5)": {"average": {"kind": "tail", "fraction": 0.5}},
    "heavy-ball (beta 0.9)": {"momentum": {"kind": "heavy_ball", "beta": 0.9}},
    "Nesterov (beta 0.9)": {"momentum": {"kind": "nesterov", "beta": 0.9}},
    "accelerated SGD (Jain et al.)": {"momentum": {"kind": "accelerated", "alpha": 0.5, "beta": 0.1,
                                                   "gamma": 0.05}},
    "heavy-ball + tail average": {"momentum": {"kind": "heavy_ball", "beta": 0.9},
                                  "average": {"kind": "tail", "fraction": 0.5}},
}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--steps", type=int, default=200)
    args = ap.parse_args(argv)
    d = 10_000 if args.quick else 100_000
    steps = 20 if args.quick else args.steps
    T_big = 10**8
    prob = st.Problem(st.PowerLawSpectrum(a=1.5, d=d), st.PowerLawTarget(b=2.0), noise=0.1)

    plain_big = st.Scenario(prob, (st.Model("m", steps=T_big, schedule=0.03),),
                            output=st.Output(points=200))
    t0 = time.perf_counter()
    r = st.predict(plain_big)
    t_plain_big = time.perf_counter() - t0
    print(f"plain SGD, d = {d}, T = 10^8, 200 checkpoints, method {r.method}: {t_plain_big:.3f} s (measured)")
    print()
    print(f"exact engine, d = {d}, constant step 0.03; per step = (time of {2 * steps} steps - time of "
          f"{steps}) / {steps}, best of 3 (the fixed cost, e.g. the stability check, cancels):")
    print(f"{'variant':32s} {'fixed s':>8s} {'s/step':>10s} {'x plain':>8s} {'T = 10^8 (extrapolated)':>26s} {'est. x':>7s}")
    base = None

    def timed(kw, n):
        scn = st.Scenario(prob, (st.Model("m", steps=n, schedule=0.03, **kw),), output=st.Output(at=(0, n)))
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            st.predict(scn, method="exact")
            best = min(best, time.perf_counter() - t0)
        return best

    for name, kw in VARIANTS.items():
        t1, t2 = timed(kw, steps), timed(kw, 2 * steps)
        per = max(t2 - t1, 0.0) / steps
        base = per if base is None else base
        total = per * T_big
        est = variant_step_factor(st.Model("m", steps=1, schedule=0.03, **kw))
        if t2 - t1 < 0.2 * t1:  # the step cost is lost in the fixed cost's noise (a loaded machine)
            print(f"{name:32s} {t1:8.2f} {'(noise: the fixed cost varied more than the steps cost; '}"
                  f"rerun with a larger --steps) {est:7.1f}")
            base = None if name == "plain SGD" else base
            continue
        print(f"{name:32s} {t1 - per * steps:8.2f} {per:10.3e} {per / base:8.2f} {total:18.3e} s = "
              f"{total / 86400:5.1f} days {est:7.1f}")
    print()
    lam = prob.eigenvalues
    t0 = time.perf_counter()
    lim = momentum_limit(Momentum("heavy_ball", beta=0.9), lam, 1, 3.0)
    print(f"largest stable step of heavy-ball (beta 0.9, B = 1) at d = {d}: {lim:.6g} "
          f"({time.perf_counter() - t0:.2f} s; plain SGD's limit {st.stability_limit(lam, 1, 3.0):.6g})")
    assert np.isfinite(lim)


if __name__ == "__main__":
    main()
