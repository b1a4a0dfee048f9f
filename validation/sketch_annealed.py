"""The annealed (deterministic-equivalent) prediction of a sketched model against the average of
quenched (exact, fixed-sketch) predictions over many Gaussian sketches: docs/sketch.md §5.

    python -m validation.sketch_annealed                               # d = 50, 100, 200, 400; p = d/2; 300 sketches
    python -m validation.sketch_annealed --d 200 --ratio 0.1 0.25 1 2  # other widths at d = 200
    python -m validation.sketch_annealed --a 1.1 --b 2.0               # a second spectrum
    python -m validation.sketch_annealed --d 1000 --sketches 50 --steps 3000

The step size is the same for every sketch (the annealed prediction is of one scenario): a
fraction (``--fraction``, default 0.5) of the *smallest* stability limit over the sketches used,
so that no sketch is unstable (a fixed step such as 0.3 is beyond the limit of some sketches at
small d). Per reported step: the annealed risk, the mean of the quenched risks over the sketches,
its standard error over sketches, the relative error and z = (annealed - mean) / SE. A bias is
resolved where |z| is large; where |z| < 2 the measured error is at the level of the
sketch-average noise and only bounds the bias.
"""

from __future__ import annotations

import argparse
import time

import spectral_theory as st
from spectral_theory.sketch.annealed import compare_with_quenched
from spectral_theory.spec.sketch import sketched_speeds
from spectral_theory.stability import stability_limit


def safe_lr(d: int, p: int, *, a: float = 1.5, sketches: int = 300, first_seed: int = 0,
            fraction: float = 0.5) -> float:
    """``fraction`` times the smallest stability limit (batch 1, Gaussian data) over the
    sketches ``first_seed, ..., first_seed + sketches - 1`` of width ``p`` on ``lambda_i = i^-a``."""
    lam = st.Problem(st.PowerLawSpectrum(a=a, d=d), st.PowerLawTarget(b=1.0)).eigenvalues
    lims = [stability_limit(sketched_speeds(st.RandomFeatures(p, seed=first_seed + k), lam), 1, 3.0)
            for k in range(sketches)]
    return fraction * float(min(lims))


def scenario(d: int, ratio: float = 0.5, *, a: float = 1.5, b: float = 1.5, lr: float = 0.2,
             steps: int = 1000, seed: int = 0) -> st.Scenario:
    """``lambda_i = i^-a``, ``theta_i^2 = i^-b``, noise 0.1; a Gaussian sketch of width
    ``p = ratio d``; constant step ``lr`` for ``steps`` steps, reported at 10, 100, ..., steps."""
    prob = st.Problem(st.PowerLawSpectrum(a=a, d=d), st.PowerLawTarget(b=b), noise=0.1)
    m = st.Model("m", steps=steps, schedule=lr, features=st.RandomFeatures(max(1, int(round(ratio * d))), seed=seed))
    at = sorted({t for t in (10, 100, 1000, 3000, 10000) if t < steps} | {steps})
    return st.Scenario(prob, (m,), output=st.Output(at=tuple(at)))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--d", type=int, nargs="+", default=[50, 100, 200, 400])
    ap.add_argument("--ratio", type=float, nargs="+", default=[0.5], help="p / d")
    ap.add_argument("--a", type=float, default=1.5)
    ap.add_argument("--b", type=float, default=1.5)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--sketches", type=int, default=300)
    ap.add_argument("--fraction", type=float, default=0.5, help="step = fraction x smallest stability limit")
    args = ap.parse_args(argv)
    print(f"# lambda_i = i^-{args.a:g}, theta_i^2 = i^-{args.b:g}, noise 0.1, {args.steps} steps, "
          f"{args.sketches} Gaussian sketches per row; step = {args.fraction:g} x the smallest stability limit")
    print(f"{'d':>6} {'p':>5} {'lr':>7} {'step':>6} {'annealed':>10} {'mean quenched':>14} {'SE':>9} "
          f"{'rel. error':>10} {'rel. SE':>8} {'z':>6}")
    for d in args.d:
        for ratio in args.ratio:
            p = max(1, int(round(ratio * d)))
            t0 = time.perf_counter()
            lr = safe_lr(d, p, a=args.a, sketches=args.sketches, fraction=args.fraction)
            rec = compare_with_quenched(scenario(d, ratio, a=args.a, b=args.b, lr=lr, steps=args.steps),
                                        sketches=args.sketches)
            for k, t in enumerate(rec["steps"]):
                print(f"{d:>6} {p:>5} {lr:>7.4f} {int(t):>6} {rec['annealed'][k]:>10.5f} "
                      f"{rec['quenched_mean'][k]:>14.5f} {rec['quenched_se'][k]:>9.5f} "
                      f"{rec['relative_error'][k]:>10.4f} {rec['quenched_se'][k] / rec['quenched_mean'][k]:>8.4f} "
                      f"{rec['z'][k]:>6.2f}", flush=True)
            print(f"   d = {d}, p = {p}: max |relative error| {rec['max_relative_error']:.4f} "
                  f"({time.perf_counter() - t0:.1f} s)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
