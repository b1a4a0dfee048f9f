"""The annealed (deterministic-equivalent) prediction of a sketched model against the average of
quenched predictions over 50 Gaussian sketches, at three sizes d (p = d/2): docs/sketch.md §5.

    python -m validation.sketch_annealed            # d = 250, 500, 1000 (about a minute)
    python -m validation.sketch_annealed --d 100 200 400
"""

from __future__ import annotations

import argparse
import time

import spectral_theory as st
from spectral_theory.sketch.annealed import compare_with_quenched


def scenario(d: int, ratio: float = 0.5, seed: int = 0) -> st.Scenario:
    """lambda_i = i^-1.5, theta_i^2 = i^-1.5, noise 0.1; a Gaussian sketch of width p = ratio d;
    constant step 0.3 for 3000 steps."""
    prob = st.Problem(st.PowerLawSpectrum(a=1.5, d=d), st.PowerLawTarget(b=1.5), noise=0.1)
    m = st.Model("m", steps=3000, schedule=0.3, features=st.RandomFeatures(max(1, int(ratio * d)), seed=seed))
    return st.Scenario(prob, (m,), output=st.Output(at=(10, 100, 1000, 3000)))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--d", type=int, nargs="+", default=[250, 500, 1000])
    ap.add_argument("--sketches", type=int, default=50)
    args = ap.parse_args(argv)
    print(f"{'d':>6} {'p':>5} {'step':>6} {'annealed':>10} {'mean of quenched':>17} {'SE':>9} {'rel. error':>10} {'z':>6}")
    for d in args.d:
        t0 = time.perf_counter()
        rec = compare_with_quenched(scenario(d), sketches=args.sketches)
        for k, t in enumerate(rec["steps"]):
            print(f"{d:>6} {d // 2:>5} {int(t):>6} {rec['annealed'][k]:>10.5f} {rec['quenched_mean'][k]:>17.5f} "
                  f"{rec['quenched_se'][k]:>9.5f} {rec['relative_error'][k]:>10.4f} {rec['z'][k]:>6.2f}")
        print(f"   d = {d}: max |relative error| {rec['max_relative_error']:.4f} "
              f"({time.perf_counter() - t0:.1f} s, {args.sketches} sketches)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
