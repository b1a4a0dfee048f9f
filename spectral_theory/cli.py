"""Command-line interface: ``spectral-theory run|simulate|stability|kd|w2s|chain|tune|map|demo``.

One handler per subcommand (``_cmd_<name>(args)``, attached to its parser with
``set_defaults(handler=...)``) computes and returns an :class:`_Output`; :func:`main` is the
one place that writes it (atomically, see :func:`_write_file`) and the one error boundary
(:class:`SpecError` and :class:`InstabilityError` become ``spectral-theory: error: ...``,
exit status 2); warnings (the stability policy's, ``docs/theory.md`` §5) become one line
``spectral-theory: warning: ...`` each on standard error.

Meanings shared by every subcommand: ``--method`` is the theory solver (``auto`` or a key of
``spectral_theory.solvers.METHODS``); theory or Monte Carlo is the subcommand (``run`` or
``simulate``) or ``--simulate`` (``kd``, ``w2s``, ``chain``), which takes no ``--method``.
Defaults are the Python API's: a flag left out is not passed on.

Building the parser imports neither numpy nor the solvers (``--help`` stays fast): the
handlers import what they need.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import Any, NamedTuple

from .errors import InstabilityError, SpecError

__all__ = ["main", "build_parser", "METHOD_NAMES", "API_DEFAULTS"]

#: the theory solvers, the keys of ``spectral_theory.solvers.METHODS`` (a literal so that the
#: parser needs no import of the solvers; ``tests/test_cli.py`` checks that the two agree)
METHOD_NAMES = ("exact", "renewal", "ode", "continuum")
#: defaults of the Python API that the help texts quote (the flags default to ``None`` and
#: are then not passed on, so the API's own defaults apply; ``tests/test_cli.py`` checks these)
API_DEFAULTS: dict[str, Any] = {"reps": 1000, "seed": 0, "grid": 21, "objective": "final",
                                "objectives": ("final", "oracle")}
TRANSFER_KINDS = ("kd", "w2s", "chain")
ALL_ROLES = ("teacher", "student", "weak", "strong", "base", "child")
DEMOS = ("basic", "horizon", "denoising", "hurts")


class _Output(NamedTuple):
    """What a handler produces: ``text`` for standard output or ``--out``, and ``npz``,
    a function writing the ``--npz`` sidecar to a binary file (``None``: none offered)."""

    text: str
    npz: Callable[[Any], None] | None = None


# ---------------------------------------------------------------------------- output
def _write_file(path: str, write: Callable[[Any], None], *, binary: bool = False) -> None:
    """Write ``path`` atomically: ``write(fh)`` fills a temporary file next to it, which then
    replaces ``path``; on any failure the temporary file is removed and ``path`` is untouched
    (nothing half-written)."""
    import tempfile
    from pathlib import Path

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb" if binary else "w") as fh:
            write(fh)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _emit(args: argparse.Namespace, out: _Output) -> None:
    """The one place that writes: the ``--npz`` sidecar first, then the text (stdout or ``--out``)."""
    npz = getattr(args, "npz", None)
    if npz is not None and out.npz is not None:
        _write_file(npz, out.npz, binary=True)
    if getattr(args, "out", None) is None:
        sys.stdout.write(out.text)
    else:
        _write_file(args.out, lambda fh: fh.write(out.text))


# ---------------------------------------------------------------------------- argument builders
def _scenario_arg(p: argparse.ArgumentParser, *, transfer: bool = False) -> None:
    p.add_argument("scenario", help="scenario file (.toml or .json)"
                   + ("; [transfer] names the roles" if transfer else ""))


def _output_args(p: argparse.ArgumentParser, formats: tuple[str, ...], default: str, *,
                 at: bool = False, modes: bool = False) -> None:
    """``--format``, ``--out``; ``--at`` (reported steps); ``--modes``/``--npz`` (per-mode arrays)."""
    p.add_argument("--format", choices=formats, default=default, help=f"output format (default: {default})")
    p.add_argument("--out", metavar="PATH", help="write to this file instead of standard output")
    if at:
        p.add_argument("--at", help="comma-separated steps to report (overrides [output] at)")
    if modes:
        p.add_argument("--modes", action=argparse.BooleanOptionalAction, default=False,
                       help="put the per-mode arrays (d numbers each) in JSON output (default: off; "
                            "--no-modes is the default)")
        p.add_argument("--npz", metavar="PATH",
                       help="also write every array (curves and per-mode) to this numpy .npz file")


def _method_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--method", choices=("auto", *METHOD_NAMES),
                   help="theory solver (default: auto, the cheapest exact one; the output names what ran)")


def _stability_args(p: argparse.ArgumentParser) -> None:
    """The stability policy's flags (theory and Monte Carlo alike; docs/theory.md §5). Without
    either, a schedule above its limit for some steps is computed with a warning, and one whose
    final constant phase is above the limit is an error."""
    g = p.add_mutually_exclusive_group()
    g.add_argument("--allow-unstable", action="store_true",
                   help="on_unstable='ignore': integrate steps above the stability limit without a "
                        "warning, a final unstable phase included (exact, but diverging; a risk that "
                        "overflows is still an error)")
    g.add_argument("--strict-stability", action="store_true",
                   help="on_unstable='raise': refuse any step above the stability limit (default: "
                        "compute a schedule that returns below it, with a warning)")


def _monte_carlo_args(p: argparse.ArgumentParser, *, switch: bool = False) -> None:
    if switch:
        p.add_argument("--simulate", action="store_true",
                       help="Monte Carlo instead of theory (takes no --method)")
    p.add_argument("--reps", type=int, help=f"Monte Carlo replicates (default {API_DEFAULTS['reps']})")
    p.add_argument("--seed", type=int, help=f"Monte Carlo random seed (default {API_DEFAULTS['seed']})")


def _transfer_args(p: argparse.ArgumentParser, roles: tuple[str, ...], *, kind: bool = False,
                   generations: bool = False) -> None:
    _scenario_arg(p, transfer=True)
    for r in roles:
        p.add_argument(f"--{r}", help=f"name of the [[models]] entry playing the {r}")
    p.add_argument("--alpha", type=float, help="weight of the hard label in the student's labels")
    if kind:
        p.add_argument("--kind", choices=TRANSFER_KINDS, help="comparison (default: [transfer] kind)")
    if generations:
        p.add_argument("--generations", type=int, help="models in the chain, generation 0 included")
    _method_arg(p)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spectral-theory",
        description="Exact excess-risk curves of one-pass SGD on linear regression, "
                    "for single models and teacher-student chains.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="predicted curves (theory)")
    _scenario_arg(p)
    _output_args(p, ("json", "csv", "table"), "table", at=True, modes=True)
    _method_arg(p)
    p.add_argument("--rtol", type=float, help="ode/continuum: local error tolerance (default 1e-6)")
    p.add_argument("--d", dest="continuum_d", help="continuum: number of modes, or 'inf' (default: the problem's d)")
    _stability_args(p)
    p.set_defaults(handler=_cmd_run)

    p = sub.add_parser("simulate", help="Monte Carlo SGD, same output shape with standard errors")
    _scenario_arg(p)
    _output_args(p, ("json", "csv", "table"), "table", at=True, modes=True)
    _monte_carlo_args(p)
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar on standard error (default: on long runs in a terminal)")
    _stability_args(p)
    p.set_defaults(handler=_cmd_simulate)

    p = sub.add_parser("stability", help="largest stable constant step of each model")
    _scenario_arg(p)
    p.set_defaults(handler=_cmd_stability)

    for kind, helptext, roles in (
        ("kd", "distillation: teacher, distilled student, same student on hard labels", ("teacher", "student")),
        ("w2s", "weak-to-strong: weak teacher, strong student, strong ceiling", ("weak", "strong")),
        ("chain", "multi-generation chain (self-distillation)", ("base", "child")),
    ):
        p = sub.add_parser(kind, help=helptext)
        _transfer_args(p, roles, generations=kind == "chain")
        _monte_carlo_args(p, switch=True)
        _output_args(p, ("json", "table"), "table", modes=True)
        p.set_defaults(handler=_cmd_transfer, kind=kind)

    p = sub.add_parser("tune", help="best mix weight alpha or best constant student step")
    _transfer_args(p, ALL_ROLES, kind=True, generations=True)
    p.add_argument("--param", choices=("alpha", "lr"), default="alpha", help="what to tune (default: alpha)")
    p.add_argument("--grid", type=int, help=f"grid points before refining (default {API_DEFAULTS['grid']})")
    p.add_argument("--objective", choices=API_DEFAULTS["objectives"],
                   help=f"the student's final risk or its oracle-stopped risk (default {API_DEFAULTS['objective']})")
    _output_args(p, ("json", "table"), "table")
    p.set_defaults(handler=_cmd_tune)

    p = sub.add_parser("map", help="a transfer metric over a grid of two parameters")
    _transfer_args(p, ALL_ROLES, kind=True, generations=True)
    p.add_argument("--x", required=True, help="PARAM=V1,V2,... e.g. teacher.capacity=50,100,200")
    p.add_argument("--y", required=True, help="PARAM=V1,V2,... e.g. student.capacity=20,50")
    p.add_argument("--metric", help="default: kd_gain / pgr / final_over_first")
    p.add_argument("--workers", type=int, default=1, help="processes computing rows in parallel (default 1)")
    _output_args(p, ("json", "csv"), "csv")
    p.set_defaults(handler=_cmd_map)

    p = sub.add_parser("demo", help="worked examples: basic (default), horizon, denoising, hurts")
    p.add_argument("name", nargs="?", default="basic", choices=DEMOS)
    p.set_defaults(handler=_cmd_demo)
    return parser


# ---------------------------------------------------------------------------- helpers
def _given(args: argparse.Namespace, *names: str) -> dict[str, Any]:
    """The flags among ``names`` that were given (not ``None``), for the API's keywords: a flag
    left out is not passed on, so the API's default applies."""
    return {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}


def _parse_at(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(v) for v in text.replace(",", " ").split()]
    except ValueError:
        raise SpecError("--at", text, "must be a comma-separated list of non-negative integers") from None


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


def _on_unstable(args: argparse.Namespace) -> str:
    """``on_unstable`` from the stability flags (default: the API's, ``"warn"``)."""
    if args.allow_unstable:
        return "ignore"
    return "raise" if args.strict_stability else "warn"


def _solver_options(args: argparse.Namespace) -> dict[str, Any]:
    """``run``'s solver options (``--rtol``, ``--d``), each checked against ``--method``."""
    method = args.method or "auto"
    options: dict[str, Any] = {}
    if args.rtol is not None:
        if method not in ("ode", "continuum"):
            raise SpecError("--rtol", args.rtol, "is an option of --method ode or continuum")
        options["rtol"] = args.rtol
    if args.continuum_d is not None:
        if method != "continuum":
            raise SpecError("--d", args.continuum_d, "is an option of --method continuum")
        if args.continuum_d.lower() in ("inf", "infinity"):
            options["d"] = None
        else:
            try:
                options["d"] = int(args.continuum_d)
            except ValueError:
                raise SpecError("--d", args.continuum_d, "must be a positive integer or 'inf'") from None
    return options


def _result_output(res: Any, args: argparse.Namespace) -> _Output:
    """A :class:`~spectral_theory.result.Result` in ``args.format``, with its ``.npz`` sidecar;
    notes on standard error for requested steps a model does not reach."""
    for name, past in res.diagnostics.get("steps_past_end", {}).items():
        sys.stderr.write(f"spectral-theory: note: model {name!r} trains {past['reported']} steps; "
                         f"requested step(s) {past['requested']} are past its end, so its last step "
                         f"{past['reported']} is reported in their place\n")
    if args.format == "json":
        text = res.to_json(modes=args.modes) + "\n"
    elif args.format == "csv":
        text = res.to_csv()
    else:
        text = res.table()
    return _Output(text, res.save_npz)


def _transfer_spec(args: argparse.Namespace, kind: str | None):
    from pathlib import Path

    from .spec import read_scenario_file
    from .transfer import transfer_from_dict

    data = read_scenario_file(args.scenario)
    overrides = {r: getattr(args, r, None) for r in ALL_ROLES}
    overrides["alpha"] = args.alpha
    overrides["generations"] = getattr(args, "generations", None)
    return transfer_from_dict(data, kind=kind, overrides=overrides, name=Path(args.scenario).stem)


# ---------------------------------------------------------------------------- handlers
def _cmd_run(args: argparse.Namespace) -> _Output:
    from .api import predict
    from .spec import load_scenario

    options = _solver_options(args)
    scenario = load_scenario(args.scenario)
    res = predict(scenario, at=_parse_at(args.at), on_unstable=_on_unstable(args),
                  **_given(args, "method"), **options)
    return _result_output(res, args)


def _cmd_simulate(args: argparse.Namespace) -> _Output:
    from .api import simulate
    from .spec import load_scenario

    scenario = load_scenario(args.scenario)
    res = simulate(scenario, at=_parse_at(args.at), progress=args.progress, on_unstable=_on_unstable(args),
                   **_given(args, "reps", "seed"))
    return _result_output(res, args)


def _cmd_stability(args: argparse.Namespace) -> _Output:
    from .spec import load_scenario
    from .stability import guard_steps

    scenario = load_scenario(args.scenario)
    lines = []
    for m in scenario.models:
        phases = m.phases()
        check = guard_steps(m.name, phases, m.speed_profile(scenario.problem.eigenvalues), m.batch,
                            scenario.problem.kappa, on_unstable="ignore")
        mx = max((lr for lr, _ in phases), default=0.0)
        if not check.unstable:
            verdict = "stable"
        elif check.final is None:
            verdict = (f"above the limit at steps {check.ranges_text()} (peak growth factor "
                       f"{check.growth_text()}), then below: computed with a warning")
        else:
            verdict = (f"UNSTABLE (the final constant phase, from step {check.final[0]}, is above the "
                       "limit: an error unless --allow-unstable)")
        lines.append(f"{m.name}: largest stable constant step {check.limit:.6g} "
                     f"(batch-mean); largest step used {mx:.6g}: {verdict}\n")
    return _Output("".join(lines))


def _cmd_transfer(args: argparse.Namespace) -> _Output:
    """``kd``, ``w2s``, ``chain``: one comparison, by theory or (``--simulate``) Monte Carlo."""
    from .transfer import evaluate

    if args.simulate and args.method is not None:
        raise SpecError("--method", args.method,
                        "names a theory solver; --simulate (Monte Carlo) takes none: give one or the other")
    rep = evaluate(_transfer_spec(args, args.kind), simulate=args.simulate,
                   **_given(args, "method", "reps", "seed"))
    text = rep.to_json(modes=args.modes) + "\n" if args.format == "json" else rep.table()
    return _Output(text, rep.save_npz)


def _cmd_tune(args: argparse.Namespace) -> _Output:
    import json

    from .transfer import tune_alpha, tune_lr

    spec = _transfer_spec(args, args.kind)
    fn = tune_alpha if args.param == "alpha" else tune_lr
    tun = fn(spec, **_given(args, "grid", "objective", "method"))
    return _Output(json.dumps(tun.to_dict(), indent=2) + "\n" if args.format == "json" else tun.table())


def _cmd_map(args: argparse.Namespace) -> _Output:
    import json

    from .transfer import transfer_map

    spec = _transfer_spec(args, args.kind)
    if args.workers < 1:
        raise SpecError("--workers", args.workers, "must be an integer >= 1")
    x, y = _parse_values(args.x), _parse_values(args.y)
    kw = _given(args, "metric", "method")
    if args.workers == 1:
        mp = transfer_map(spec, x, y, **kw)
    else:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=args.workers) as pool:
            mp = transfer_map(spec, x, y, executor=pool, **kw)
    return _Output(mp.to_csv() if args.format == "csv" else json.dumps(mp.to_dict(), indent=2) + "\n")


def _cmd_demo(args: argparse.Namespace) -> _Output:
    from .demo import demo_text, demonstration_text

    return _Output(demo_text() if args.name == "basic" else demonstration_text(args.name))


# ---------------------------------------------------------------------------- entry point
def _report_warnings(caught: list) -> None:
    """Each distinct warning as one line ``spectral-theory: warning: ...`` on standard error
    (no Python source lines)."""
    seen: set[str] = set()
    for w in caught:
        text = " ".join(str(w.message).split())
        if text not in seen:
            seen.add(text)
            sys.stderr.write(f"spectral-theory: warning: {text}\n")


def main(argv: list[str] | None = None) -> int:
    import warnings

    args = build_parser().parse_args(argv)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            out = args.handler(args)
        except (SpecError, InstabilityError) as err:
            _report_warnings(caught)
            sys.stderr.write(f"spectral-theory: error: {err}\n")
            return 2
    _report_warnings(caught)
    try:
        _emit(args, out)
    except (SpecError, InstabilityError) as err:
        sys.stderr.write(f"spectral-theory: error: {err}\n")
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
