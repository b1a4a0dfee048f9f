"""``python -m validation [--tier quick|long] [--only NAME]``: theory vs Monte Carlo z-score tables."""

from __future__ import annotations

import argparse
import sys
import time
import warnings

from spectral_theory.analysis.checks import check_against_simulation, sign_test

from .suite import TIERS


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m validation")
    p.add_argument("--tier", choices=sorted(TIERS), default="quick")
    p.add_argument("--only", action="append", help="run only this configuration (repeatable)")
    args = p.parse_args(argv)
    names = [c.name for c in TIERS[args.tier]]
    unknown = [n for n in args.only or [] if n not in names]
    if unknown:
        p.error(f"--only {unknown[0]!r}: no such configuration in the {args.tier} tier; choose from {names}")
    configs = [c for c in TIERS[args.tier] if not args.only or c.name in args.only]
    finals, failed = [], []
    summary = []
    t0 = time.perf_counter()
    for c in configs:
        with warnings.catch_warnings():  # the table marks heavy-tailed rows; the text follows it
            warnings.simplefilter("ignore", RuntimeWarning)
            chk = check_against_simulation(c.build(), reps=c.reps, seed=c.seed, name=c.name)
        sys.stdout.write(chk.table())
        for w in chk.warnings:
            sys.stdout.write(f"warning: {w}\n")
        sys.stdout.write("\n")
        sys.stdout.flush()
        finals.append(chk.final_z)
        covered = sum(bool(r["covered"]) for r in chk.rows)
        summary.append((c.name, c.covers, chk.max_abs_z, chk.final_z, chk.passed, chk.seconds["monte_carlo"],
                        f"{covered}/{len(chk.rows)}"))
        if not chk.passed:
            failed.append(c.name)
    st_ = sign_test(finals)
    sys.stdout.write(f"# summary ({args.tier} tier, {time.perf_counter() - t0:.1f} s)\n")
    for name, covers, mz, fz, ok, sec, cov in summary:
        sys.stdout.write(f"{name:<22} max|z| {mz:5.2f}  final z {fz:+5.2f}  {'pass' if ok else 'FAIL'}  "
                         f"intervals cover {cov:>5}  ({sec:.1f} s MC)  {covers}\n")
    sys.stdout.write(f"sign test over final z: {st_['positive']} positive, {st_['negative']} negative, "
                     f"p = {st_['p_value']:.3g} ({'no systematic sign' if st_['p_value'] >= 0.01 else 'SYSTEMATIC SIGN'})\n")
    ok = not failed and st_["p_value"] >= 0.01
    sys.stdout.write("validation " + ("PASSED" if ok else f"FAILED: {failed}") + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
