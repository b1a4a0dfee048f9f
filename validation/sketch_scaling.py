"""Compute-optimal width and steps of random-feature models on power laws (docs/sketch.md §7):
the fitted exponents of the optimal width p* and the frontier loss L* against compute C = p N,
from the annealed theory, next to the capacity-limited prediction of docs/theory.md §7.

    python -m validation.sketch_scaling      # two (a, b) cases, about 3 minutes on two cores
"""

from __future__ import annotations

import time

from spectral_theory.sketch.scaling import width_frontier

#: widths (a factor sqrt 2 apart), steps and d = 2048 modes
WIDTHS = [8, 11, 16, 23, 32, 45, 64, 90, 128, 181, 256]
CASES = [(1.5, 2.0), (1.5, 3.0)]


def main() -> int:
    print(f"{'a':>4} {'b':>4} {'alpha':>6} {'beta':>6} {'p* exp.':>8} {'pred.':>6} {'L* exp.':>8} {'pred.':>6} "
          f"{'budgets':>7} {'s':>5}")
    for a, b in CASES:
        t0 = time.perf_counter()
        r = width_frontier(a, b, widths=WIDTHS, steps=100_000, d=2048)
        f, p, q = r["fitted"], r["predicted"], r["paquette"]
        print(f"{a:>4} {b:>4} {q['alpha']:>6.3g} {q['beta']:>6.3g} {f['p']:>8.3f} {p['k']:>6.3f} "
              f"{f['loss']:>8.3f} {p['loss']:>6.3f} {int(r['interior'].sum()):>7} {time.perf_counter() - t0:>5.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
