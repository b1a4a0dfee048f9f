"""Command-line interface: ``spectral-theory run|simulate|stability|demo``."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from .api import METHODS, predict, simulate
from .errors import InstabilityError, SpecError
from .result import Result
from .spec import load_scenario

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
                   help="solver (default: auto, the cheapest exact one; it reports its choice)")
    p.add_argument("--rtol", type=float, help="ode/continuum: local error tolerance (default 1e-6)")
    p.add_argument("--d", dest="continuum_d", help="continuum: number of modes, or 'inf' (default: the problem's d)")
    p = sub.add_parser("simulate", help="Monte Carlo SGD, same output shape with standard errors")
    _common(p)
    p.add_argument("--reps", type=int, default=1000, help="replicates (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar on standard error (default: on long runs in a terminal)")
    p = sub.add_parser("stability", help="largest stable constant step of each model")
    p.add_argument("scenario")
    for kind, helptext, roles in (
        ("kd", "distillation: teacher, distilled student, same student on hard labels", ("teacher", "student")),
        ("w2s", "weak-to-strong: weak teacher, strong student, strong ceiling", ("weak", "strong")),
        ("chain", "multi-generation chain (self-distillation)", ("base", "child")),
    ):
        p = sub.add_parser(kind, help=helptext)
        _transfer_args(p, roles)
        if kind == "chain":
            p.add_argument("--generations", type=int, help="models in the chain, generation 0 included")
        p.add_argument("--simulate", action="store_true", help="Monte Carlo instead of theory")
        p.add_argument("--reps", type=int, default=1000)
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--format", choices=("json", "table"), default="table")
        p.add_argument("--out")
        p.add_argument("--no-modes", action="store_true", help="leave per-mode arrays out of JSON")
    p = sub.add_parser("tune", help="best mix weight alpha or best constant student step")
    _transfer_args(p, ("teacher", "student", "weak", "strong", "base", "child"))
    p.add_argument("--kind", choices=("kd", "w2s", "chain"), help="comparison (default: [transfer] kind)")
    p.add_argument("--generations", type=int)
    p.add_argument("--param", choices=("alpha", "lr"), default="alpha")
    p.add_argument("--grid", type=int, default=21)
    p.add_argument("--objective", choices=("final", "oracle"), default="final")
    p.add_argument("--format", choices=("json", "table"), default="table")
    p.add_argument("--out")
    p = sub.add_parser("map", help="a transfer metric over a grid of two parameters")
    _transfer_args(p, ("teacher", "student", "weak", "strong", "base", "child"))
    p.add_argument("--kind", choices=("kd", "w2s", "chain"))
    p.add_argument("--generations", type=int)
    p.add_argument("--x", required=True, help="PARAM=V1,V2,... e.g. teacher.capacity=50,100,200")
    p.add_argument("--y", required=True, help="PARAM=V1,V2,... e.g. student.capacity=20,50")
    p.add_argument("--metric", help="default: kd_gain / pgr / final_over_first")
    p.add_argument("--workers", type=int, default=1, help="processes computing rows in parallel (default 1)")
    p.add_argument("--format", choices=("json", "csv"), default="csv")
    p.add_argument("--out")
    p = sub.add_parser("demo", help="worked examples: basic (default), horizon, denoising, hurts")
    p.add_argument("name", nargs="?", default="basic", choices=("basic", "horizon", "denoising", "hurts"))
    return parser


def _transfer_args(p: argparse.ArgumentParser, roles) -> None:
    p.add_argument("scenario", help="scenario file (.toml or .json); [transfer] names the roles")
    for r in roles:
        p.add_argument(f"--{r}", help=f"name of the [[models]] entry playing the {r}")
    p.add_argument("--alpha", type=float, help="weight of the hard label in the student's labels")


def _parse_values(text: str) -> tuple[str, list]:
    if "=" not in text:
        raise SpecError("--x/--y", text, "must look like PARAM=V1,V2,...")
    name, _, vals = text.partition("=")
    out: list = []
    for v in vals.split(","):
        v = v.strip()
        try:
            out.append(int(v))
        except ValueError:
            try:
                out.append(float(v))
            except ValueError:
                raise SpecError("--x/--y", text, "values must be numbers") from None
    if not out:
        raise SpecError("--x/--y", text, "must list at least one value")
    return name.strip(), out


def _transfer(args, kind: str | None):
    from .spec import read_scenario_file
    from .transfer import transfer_from_dict

    data = read_scenario_file(args.scenario)
    roles = ("teacher", "student", "weak", "strong", "base", "child")
    overrides = {r: getattr(args, r, None) for r in roles}
    overrides["alpha"] = args.alpha
    overrides["generations"] = getattr(args, "generations", None)
    return transfer_from_dict(data, kind=kind, overrides=overrides, name=Path(args.scenario).stem)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "demo":
            from .demo import demo_text, demonstration_text

            sys.stdout.write(demo_text() if args.name == "basic" else demonstration_text(args.name))
            return 0
        if args.command in ("kd", "w2s", "chain"):
            from .transfer import evaluate

            rep = evaluate(_transfer(args, args.command), simulate=args.simulate, reps=args.reps,
                           seed=args.seed)
            _write(rep.to_json(modes=not args.no_modes) + "\n" if args.format == "json" else rep.table(),
                   args.out)
            return 0
        if args.command == "tune":
            import json

            from .transfer import tune_alpha, tune_lr

            spec = _transfer(args, args.kind)
            fn = tune_alpha if args.param == "alpha" else tune_lr
            tun = fn(spec, grid=args.grid, objective=args.objective)
            text = json.dumps(tun.to_dict(), indent=2) + "\n" if args.format == "json" else tun.table()
            _write(text, args.out)
            return 0
        if args.command == "map":
            import json

            from .transfer import transfer_map

            spec = _transfer(args, args.kind)
            if args.workers < 1:
                raise SpecError("--workers", args.workers, "must be an integer >= 1")
            if args.workers == 1:
                mp = transfer_map(spec, _parse_values(args.x), _parse_values(args.y), metric=args.metric)
            else:
                from concurrent.futures import ProcessPoolExecutor

                with ProcessPoolExecutor(max_workers=args.workers) as pool:
                    mp = transfer_map(spec, _parse_values(args.x), _parse_values(args.y), metric=args.metric,
                                      executor=pool)
            _write(mp.to_csv() if args.format == "csv" else json.dumps(mp.to_dict(), indent=2) + "\n", args.out)
            return 0
        scenario = load_scenario(args.scenario)
        if args.command == "stability":
            from .solvers.base import model_stability_limit
            from .stability import is_stable

            for i, m in enumerate(scenario.models):
                lim = model_stability_limit(scenario, i)
                s = m.speed_profile(scenario.problem.eigenvalues)
                lrs = {lr for lr, _ in m.phases()}
                mx = max(lrs, default=0.0)
                ok = all(is_stable(lr, s, m.batch, scenario.problem.kappa) for lr in lrs)
                verdict = "stable" if ok else "UNSTABLE"
                sys.stdout.write(f"{m.name}: largest stable constant step {lim:.6g} "
                                 f"(batch-mean); largest step used {mx:.6g}: {verdict}\n")
            return 0
        on_unstable = "warn" if args.allow_unstable else "raise"
        at = _parse_at(args.at)
        if args.command == "run":
            options = {}
            if args.rtol is not None:
                if args.method not in ("ode", "continuum"):
                    raise SpecError("--rtol", args.rtol, "is an option of --method ode or continuum")
                options["rtol"] = args.rtol
            if args.continuum_d is not None:
                if args.method != "continuum":
                    raise SpecError("--d", args.continuum_d, "is an option of --method continuum")
                if args.continuum_d.lower() in ("inf", "infinity"):
                    options["d"] = None
                else:
                    try:
                        options["d"] = int(args.continuum_d)
                    except ValueError:
                        raise SpecError("--d", args.continuum_d, "must be a positive integer or 'inf'") from None
            res = predict(scenario, at=at, method=args.method, on_unstable=on_unstable, **options)
        else:
            res = simulate(scenario, at=at, reps=args.reps, seed=args.seed,
                           progress=args.progress, on_unstable=on_unstable)
        for name, steps in res.diagnostics.get("steps_not_reported", {}).items():
            sys.stderr.write(f"spectral-theory: note: model {name!r} trains fewer steps than {steps[0]}; "
                             f"steps {steps} are not reported for it\n")
        _write(_render(res, args.format, not args.no_modes), args.out)
        return 0
    except (SpecError, InstabilityError) as err:
        sys.stderr.write(f"spectral-theory: error: {err}\n")
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
