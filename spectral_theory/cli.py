"""Command-line interface: ``spectral-theory run|simulate|stability|demo``."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from .api import METHODS, predict, simulate
from .errors import InstabilityError, SpecError
from .io import load_scenario
from .result import Result

__all__ = ["main"]


def _write(text: str, out: str | None) -> None:
    """Print, or write ``out`` atomically (nothing half-written on failure)."""
    if out is None:
        sys.stdout.write(text)
        return
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _render(res: Result, fmt: str, modes: bool) -> str:
    if fmt == "json":
        return res.to_json(modes=modes) + "\n"
    if fmt == "csv":
        return res.to_csv()
    return res.table()


def _parse_at(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(v) for v in text.replace(",", " ").split()]
    except ValueError:
        raise SpecError("--at", text, "must be a comma-separated list of non-negative integers") from None


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("scenario", help="scenario file (.toml or .json)")
    p.add_argument("--format", choices=("json", "csv", "table"), default="table",
                   help="output format (default: table)")
    p.add_argument("--out", help="write to this file instead of standard output")
    p.add_argument("--at", help="comma-separated steps to report (overrides [output] at)")
    p.add_argument("--no-modes", action="store_true", help="leave per-mode arrays out of JSON")
    p.add_argument("--allow-unstable", action="store_true",
                   help="integrate beyond the stability limit instead of failing (exact, but diverging)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spectral-theory",
        description="Exact excess-risk curves of one-pass SGD on linear regression, "
                    "for single models and teacher-student chains.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="predicted curves (theory)")
    _common(p)
    p.add_argument("--method", default="auto", choices=("auto", *sorted(METHODS)),
                   help="solver (default: auto, which reports its choice)")
    p = sub.add_parser("simulate", help="Monte Carlo SGD, same output shape with standard errors")
    _common(p)
    p.add_argument("--reps", type=int, default=1000, help="replicates (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar on standard error (default: on long runs in a terminal)")
    p = sub.add_parser("stability", help="largest stable constant step of each model")
    p.add_argument("scenario")
    sub.add_parser("demo", help="small distillation and weak-to-strong example")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "demo":
            from .demo import demo_text

            sys.stdout.write(demo_text())
            return 0
        scenario = load_scenario(args.scenario)
        if args.command == "stability":
            from .engine import model_stability_limit

            for i, m in enumerate(scenario.models):
                lim = model_stability_limit(scenario, i)
                mx = max((lr for lr, _ in m.phases()), default=0.0)
                verdict = "stable" if mx < lim else "UNSTABLE"
                sys.stdout.write(f"{m.name}: largest stable constant step {lim:.6g} "
                                 f"(batch-mean); largest step used {mx:.6g}: {verdict}\n")
            return 0
        on_unstable = "warn" if args.allow_unstable else "raise"
        at = _parse_at(args.at)
        if args.command == "run":
            res = predict(scenario, at=at, method=args.method, on_unstable=on_unstable)
        else:
            res = simulate(scenario, at=at, reps=args.reps, seed=args.seed,
                           progress=args.progress, on_unstable=on_unstable)
        _write(_render(res, args.format, not args.no_modes), args.out)
        return 0
    except (SpecError, InstabilityError) as err:
        sys.stderr.write(f"spectral-theory: error: {err}\n")
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
