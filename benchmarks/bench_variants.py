"""Cost of the SGD variants (iterate averaging, momentum; docs/theory.md §10) at d = 10^5, T = 10^8.

    python benchmarks/bench_variants.py              # about two minutes
    python benchmarks/bench_variants.py --quick      # d = 10^4, T = 10^6: a smoke run
    python benchmarks/bench_variants.py --engine     # also the step engine's per-step cost

Reports, in one run, for a power-law problem (a = 1.5, b = 2, sigma^2 = 0.1) with constant
coefficients and a constant step, 200 log-spaced checkpoints:

1. ``predict`` (``auto``, which picks ``renewal``: the constant-phase fast path of
   docs/solvers/renewal.md, "SGD variants") for plain SGD and for each variant: seconds (best of
   ``--repeat``), the ratio to plain SGD's, the method, contour nodes, direct steps, and the
   part of it spent on the stability limit reported with the result (momentum: a bisection of
   O(d) exact tests);
2. the same through the CLI in a fresh process (``spectral-theory run FILE``, imports and output
   included: the path a user runs) for plain SGD and heavy-ball with a tail average;
3. with ``--engine``: the step-by-step engine's seconds per step (the difference of a 2n- and an
   n-step run, best of 3) and its T = 10^8 extrapolation, for comparison.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

import spectral_theory as st
from spectral_theory.solvers.base import model_stability_limit

VARIANTS = {
    "plain SGD": {},
    "tail average (fraction 0.5)": {"average": {"kind": "tail", "fraction": 0.5}},
    "uniform average (from step 1)": {"average": {"kind": "uniform", "start": 1}},
    "EMA (half-life 10^6)": {"average": {"kind": "ema", "half_life": 1e6}},
    "heavy-ball (beta 0.9)": {"momentum": {"kind": "heavy_ball", "beta": 0.9}},
    "Nesterov (beta 0.9)": {"momentum": {"kind": "nesterov", "beta": 0.9}},
    "accelerated SGD (Jain et al.)": {"momentum": {"kind": "accelerated", "alpha": 0.5, "beta": 0.1,
                                                   "gamma": 0.05}},
    "heavy-ball + tail average": {"momentum": {"kind": "heavy_ball", "beta": 0.9},
                                  "average": {"kind": "tail", "fraction": 0.5}},
}
LR = 0.03

CLI_FILE = """[problem]
spectrum = {{ kind = "powerlaw", a = 1.5, d = {d} }}
target = {{ kind = "powerlaw", b = 2.0 }}
noise = 0.1
[output]
points = 200
[[models]]
name = "m"
steps = {T}
lr = {lr}
{extra}
"""


def _cli_seconds(d: int, T: int, extra: str, repeat: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "s.toml")
        with open(path, "w") as fh:
            fh.write(CLI_FILE.format(d=d, T=T, lr=LR, extra=extra))
        best = float("inf")
        for _ in range(repeat):
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "spectral_theory", "run", path], check=True,
                           stdout=subprocess.DEVNULL)
            best = min(best, time.perf_counter() - t0)
        return best


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--engine", action="store_true", help="also the step engine's per-step cost")
    ap.add_argument("--steps", type=int, default=100, help="engine: steps of the shorter timed run")
    args = ap.parse_args(argv)
    d, T = (10_000, 10**6) if args.quick else (100_000, 10**8)
    prob = st.Problem(st.PowerLawSpectrum(a=1.5, d=d), st.PowerLawTarget(b=2.0), noise=0.1)
    print(f"d = {d}, T = {T:.0e}, constant step {LR}, 200 checkpoints; predict (method auto), best of "
          f"{args.repeat}:")
    print(f"{'model':32s} {'seconds':>8s} {'x plain':>8s} {'method':>8s} {'nodes':>6s} {'direct':>7s} "
          f"{'limit s':>8s} {'final risk':>11s}")
    base = None
    for name, kw in VARIANTS.items():
        scn = st.Scenario(prob, (st.Model("m", steps=T, schedule=LR, **kw),), output=st.Output(points=200))
        best, res = float("inf"), None
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            res = st.predict(scn)
            best = min(best, time.perf_counter() - t0)
        t0 = time.perf_counter()
        model_stability_limit(scn, 0)
        t_limit = time.perf_counter() - t0
        base = best if base is None else base
        diag = res.diagnostics
        assert "variant_fallbacks" not in diag, diag["variant_fallbacks"]
        print(f"{name:32s} {best:8.2f} {best / base:8.1f} {res.method:>8s} {diag.get('contour_nodes', 0):6d} "
              f"{diag.get('direct_steps', 0):7d} {t_limit:8.2f} {res['m'].excess_risk[-1]:11.4e}")
    print()
    print(f"CLI end to end (fresh process, `spectral-theory run FILE`, table output), best of {args.repeat}:")
    for name, extra in (("plain SGD", ""),
                        ("heavy-ball + tail average", 'momentum = { kind = "heavy_ball", beta = 0.9 }\n'
                                                      'average = { kind = "tail", fraction = 0.5 }')):
        print(f"{name:32s} {_cli_seconds(d, T, extra, args.repeat):8.2f} s")
    if not args.engine:
        return
    print()
    print(f"step engine (method exact), d = {d}: per step = (time of {2 * args.steps} steps - time of "
          f"{args.steps}) / {args.steps}, best of 3; T = {T:.0e} extrapolated:")
    base = None
    for name, kw in VARIANTS.items():
        def timed(n, kw=kw):
            scn = st.Scenario(prob, (st.Model("m", steps=n, schedule=LR, **kw),), output=st.Output(at=(0, n)))
            best = float("inf")
            for _ in range(3):
                t0 = time.perf_counter()
                st.predict(scn, method="exact")
                best = min(best, time.perf_counter() - t0)
            return best

        t1, t2 = timed(args.steps), timed(2 * args.steps)
        per = max(t2 - t1, 0.0) / args.steps
        base = per if base is None else base
        print(f"{name:32s} {per:10.3e} s/step {per / base if base else float('nan'):6.1f} x plain "
              f"{per * T / 86400:8.2f} days")
    assert np.isfinite(base)


if __name__ == "__main__":
    main()
