"""Claims: how fast the search catches a planted bug, against random search; the cost of
certification (docs/claims.md).

1. Planted bug: ``spectral_theory.claims.library.stability_criterion(constant=2.1)``, the
   Gaussian B = 1 stability criterion of docs/theory.md §5 with its constant 5% too large
   (``sum_i eta lambda_i / (2.1 (1 - eta lambda_i)) < 1`` claimed to imply stability), over
   ``eta`` in [1e-3, 2] (log), ``a`` in [1.1, 3], ``d`` in [2, 2000] (log, integer). For each
   seed: the number of evaluations the search (grid, Sobol, local, DE;
   ``stop_on_violation=True``) needs for its first violation, and the number random search
   (independent uniform points of the same unit cube) needs.
2. Certification cost: the interval recursion (python-flint arb, 128 bits) of a hard-label
   model and of a student, seconds per mode-step, at a few sizes (d, T).

Run: ``python benchmarks/bench_claims.py`` (about 75 s; ``--seeds N``, ``--budget N``, ``--quick``,
``--no-cost`` for the planted bug only).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from spectral_theory import claims as C  # noqa: E402
from spectral_theory.claims.claim import evaluate_point  # noqa: E402
from spectral_theory.claims.library import stability_criterion  # noqa: E402


def search_evaluations(claim, seed: int, budget: int) -> int | None:
    rep = C.check(claim, budget=budget, seed=seed, stop_on_violation=True, certify=False)
    return rep.first_violation


def random_evaluations(claim, seed: int, budget: int) -> int | None:
    rng = np.random.default_rng(seed)
    dom = claim.domain
    for n in range(1, budget + 1):
        rec = evaluate_point(claim, dom.point(rng.random(dom.dim)))
        if rec.get("inside") and not rec["holds"]:
            return n
    return None


def _stats(xs: list[int | None], budget: int) -> str:
    found = [x for x in xs if x is not None]
    missed = len(xs) - len(found)
    if not found:
        return f"none found within {budget}"
    return (f"median {statistics.median(found):g}, mean {statistics.mean(found):.1f}, max {max(found)}"
            + (f", {missed} of {len(xs)} seeds not within {budget}" if missed else ""))


def planted_bug(seeds: int, budget: int) -> None:
    claim = stability_criterion(constant=2.1)
    t0 = time.perf_counter()
    s = [search_evaluations(claim, k, budget) for k in range(seeds)]
    t1 = time.perf_counter()
    r = [random_evaluations(claim, 1000 + k, 20 * budget) for k in range(seeds)]
    t2 = time.perf_counter()
    print(f"planted bug (stability constant 2.1 instead of 2, {seeds} seeds)")
    print(f"  search        : {_stats(s, budget)}   ({t1 - t0:.1f} s)")
    print(f"  random search : {_stats(r, 20 * budget)}   ({t2 - t1:.1f} s)")
    print(f"  caught within {budget} evaluations: search {sum(x is not None for x in s)} of {seeds} seeds, "
          f"random search {sum(x is not None and x <= budget for x in r)} of {seeds}")
    fs = [x for x in s if x is not None]
    fr = [x for x in r if x is not None]
    if fs and fr:
        print(f"  random / search (medians): {statistics.median(fr) / statistics.median(fs):.1f}")
    print(f"  search evaluations per seed: {s}")
    print(f"  random evaluations per seed: {r}")


def certification_cost(sizes: list[tuple[int, int]]) -> None:
    import flint

    import spectral_theory as st
    from spectral_theory.claims.certify import run_recursion
    from spectral_theory.claims.scenarios import scenario_file_dict

    print("certification cost (arb, 128 bits)")
    print(f"  {'d':>6} {'T':>7} {'model':>8} {'mode-steps':>11} {'seconds':>8} {'us/mode-step':>13}")
    old = flint.ctx.prec
    flint.ctx.prec = 128
    try:
        for d, T in sizes:
            prob = st.Problem(st.PowerLawSpectrum(a=1.5, d=d), st.PowerLawTarget(b=2.0), noise=0.1)
            for kind in ("hard", "student"):
                models = (st.Model("t", steps=T, schedule=0.2),)
                if kind == "student":
                    models = (st.Model("t", steps=1, schedule=0.2),
                              st.Model("s", steps=T, schedule=0.2, teacher="t", alpha=0.5))
                sc = st.Scenario(prob, models, output=st.Output(at=(T,)))
                t0 = time.perf_counter()
                run = run_recursion(sc, scenario_file_dict(sc), {m.name: [m.steps] for m in models})
                sec = time.perf_counter() - t0
                n = run.mode_steps
                print(f"  {d:>6} {T:>7} {kind:>8} {n:>11.3g} {sec:>8.2f} {1e6 * sec / n:>13.2f}")
    finally:
        flint.ctx.prec = old


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--budget", type=int, default=200, help="the search's budget (default: check's default, 200)")
    ap.add_argument("--quick", action="store_true", help="5 seeds and small certification sizes")
    ap.add_argument("--no-cost", action="store_true", help="the planted bug only")
    args = ap.parse_args()
    seeds = 5 if args.quick else args.seeds
    planted_bug(seeds, args.budget)
    if args.no_cost:
        return
    print()
    sizes = [(100, 1000)] if args.quick else [(100, 1000), (1000, 1000), (100, 10000), (1000, 5000)]
    certification_cost(sizes)


if __name__ == "__main__":
    main()
