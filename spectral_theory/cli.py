"""Command-line interface: ``spectral-theory run|simulate|compare|stability|kd|w2s|chain|tune|map|convert|demo``.

One handler per subcommand (``_cmd_<name>(args)``, attached to its parser with
``set_defaults(handler=...)``) computes and returns an :class:`_Output`; :func:`main` is the
one place that writes it (atomically, see :func:`_write_files`) and the one error boundary:
a :class:`SpecError` or :class:`InstabilityError`, an ``OSError`` (a path that cannot be read
or written), a decoding error, a ``MemoryError`` (and the memory budget's refusal, checked
before anything is allocated: :mod:`spectral_theory.budget`) becomes one line
``spectral-theory: error: ...`` on standard error and exit status 2, with nothing written.
Warnings (the stability policy's, ``docs/theory.md`` §5; Monte Carlo's) become one line
``spectral-theory: warning: ...`` each.

Exit status: 0 success; 1 ``stability`` found a model UNSTABLE in its final phase (the
report is printed in full); 2 an error (nothing written); 141 (128 + SIGPIPE) standard output
closed before the output was written.

Meanings shared by every subcommand: ``--method`` is the theory solver (``auto`` or a key of
``spectral_theory.solvers.METHODS``); theory or Monte Carlo is the subcommand (``run`` or
``simulate``) or ``--simulate`` (``kd``, ``w2s``, ``chain``), which takes no ``--method``.
Defaults are the Python API's: a flag left out is not passed on. Written results hold no
wall-clock timings unless ``--timings`` (identical inputs and seeds give identical files).

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

__all__ = ["main", "build_parser", "METHOD_NAMES", "API_DEFAULTS", "DEMOS", "CONVENTION_NAMES",
           "TIMING_KEYS", "EXIT_UNSTABLE", "EXIT_ERROR"]

#: the theory solvers, the keys of ``spectral_theory.solvers.METHODS`` (a literal so that the
#: parser needs no import of the solvers; ``tests/test_cli.py`` checks that the two agree)
METHOD_NAMES = ("exact", "renewal", "ode", "continuum")
#: defaults of the Python API that the help texts quote (the flags default to ``None`` and
#: are then not passed on, so the API's own defaults apply; ``tests/test_cli.py`` checks these)
API_DEFAULTS: dict[str, Any] = {"reps": 1000, "seed": 0, "grid": 21, "objective": "final",
                                "objectives": ("final", "oracle"), "z_max": 4.0}
TRANSFER_KINDS = ("kd", "w2s", "chain")
ALL_ROLES = ("teacher", "student", "weak", "strong", "base", "child")
#: ``spectral-theory demo NAME``: the names and what each shows (``spectral_theory.demo.DEMOS``,
#: a literal here so that ``--help`` imports nothing; a test checks that the two agree)
DEMOS = {
    "basic": "a distillation and a weak-to-strong comparison with their KD gain and PGR",
    "horizon": "spectral horizon expansion: distillation teaches modes the student's noisy labels cannot",
    "denoising": "spectral denoising: a strong student filters a weak teacher's SGD noise",
    "hurts": "transfer that hurts: an under-trained teacher caps the distilled student",
}
#: ``spectral_theory.conventions.CONVENTION_NAMES`` and what each pair means (checked by a test)
CONVENTION_NAMES = {
    "spectral-theory": "this project's (a, b): lambda_i = i^-a, theta_i^2 = i^-b",
    "bordelon-pehlevan": "Bordelon & Pehlevan's (a, b): the same letters swapped",
    "paquette": "Paquette et al.'s (alpha, beta): a = 2 alpha, b = 2 alpha + 2 beta",
}
#: diagnostics that are wall-clock timings: left out of written results unless ``--timings``
TIMING_KEYS = frozenset({"seconds", "mode_steps_per_second"})
EXIT_UNSTABLE = 1
EXIT_ERROR = 2
#: a theory run estimated above this many seconds (exact method) is announced on standard error
NOTE_SECONDS = 30.0


class _Output(NamedTuple):
    """What a handler produces: ``text`` for standard output or ``--out``, ``npz``, a function
    writing the ``--npz`` sidecar to a binary file (``None``: none offered), and the exit status."""

    text: str
    npz: Callable[[Any], None] | None = None
    status: int = 0


class _CLIError(Exception):
    """An error of the command line itself (a path, a flag): its message is printed as it is."""


# ---------------------------------------------------------------------------- output
def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _output_paths(args: argparse.Namespace) -> list[tuple[str, str]]:
    return [(flag, getattr(args, attr)) for flag, attr in (("--npz", "npz"), ("--out", "out"))
            if getattr(args, attr, None) is not None]


def _check_output_paths(args: argparse.Namespace) -> None:
    """Refuse, before any work, an ``--out``/``--npz`` path that cannot be written: a
    directory, a missing directory without ``--mkdir``, a path under a regular file, a
    directory without write permission, the scenario file itself, or both flags naming one file."""
    from pathlib import Path

    paths = _output_paths(args)
    scenario = getattr(args, "scenario", None)
    for flag, path in paths:
        if not path:
            raise SpecError(flag, path, "must name a file")
        target = Path(path)
        if target.is_dir():
            raise SpecError(flag, path, "is a directory: name a file")
        if scenario is not None and target.exists() and Path(scenario).exists() \
                and os.path.samefile(target, scenario):
            raise SpecError(flag, path, "is the scenario file: name another file")
        parent = target.parent
        if not parent.exists():
            existing = next(p for p in parent.parents if p.exists()) if parent.parents else Path(".")
            if not existing.is_dir():
                raise SpecError(flag, path, f"{str(existing)!r} is not a directory")
            if not getattr(args, "mkdir", False):
                raise SpecError(flag, path, f"the directory {str(parent)!r} does not exist "
                                            "(--mkdir creates it)")
            parent = existing
        elif not parent.is_dir():
            raise SpecError(flag, path, f"{str(parent)!r} is not a directory")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise SpecError(flag, path, f"cannot write in the directory {str(parent)!r} (permission denied)")
    if len(paths) == 2 and os.path.abspath(paths[0][1]) == os.path.abspath(paths[1][1]):
        raise SpecError("--out", paths[1][1], "is also the --npz file: name two files")


def _write_files(files: list[tuple[str, str, Callable[[Any], None], bool]], *, mkdir: bool = False) -> None:
    """Write every ``(flag, path, write, binary)`` atomically and all or nothing: each
    ``write(fh)`` fills a temporary file next to its path (mode ``0o666 & ~umask``, as any new
    file), and only when all are complete do they replace their paths; on any failure the
    temporary files (and directories made for them with ``mkdir``) are removed and no path is
    touched. An ``OSError`` names the flag and the path."""
    import tempfile
    from pathlib import Path

    temps: list[tuple[str, Path]] = []
    made: list[Path] = []
    mode = 0o666 & ~_umask()
    flag = path = ""
    try:
        for item in files:
            flag, path, write, binary = item  # flag and path name the file in an error
            target = Path(path)
            if mkdir and not target.parent.exists():
                missing = [p for p in (target.parent, *target.parent.parents) if not p.exists()]
                target.parent.mkdir(parents=True, exist_ok=True)
                made.extend(missing)  # deepest first
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
            temps.append((tmp, target))
            os.fchmod(fd, mode)
            with (os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8")) as fh:
                write(fh)
        for tmp, target in temps:
            flag, path = next((f, p) for f, p, *_ in files if Path(p) == target)
            os.replace(tmp, target)
    except BaseException as err:
        for tmp, _ in temps:
            Path(tmp).unlink(missing_ok=True)
        for d in made:
            try:
                d.rmdir()
            except OSError:
                pass
        if isinstance(err, OSError):
            raise _CLIError(f"{flag}: cannot write {path!r}: {err.strerror or err}") from None
        raise


def _emit(args: argparse.Namespace, out: _Output) -> None:
    """The one place that writes: ``--npz`` and ``--out`` files (all or nothing), then
    standard output when there is no ``--out``."""
    files: list[tuple[str, str, Callable[[Any], None], bool]] = []
    npz = getattr(args, "npz", None)
    if npz is not None and out.npz is not None:
        files.append(("--npz", npz, out.npz, True))
    if getattr(args, "out", None) is not None:
        files.append(("--out", args.out, lambda fh: fh.write(out.text), False))
    if files:
        _write_files(files, mkdir=getattr(args, "mkdir", False))
    if getattr(args, "out", None) is None:
        sys.stdout.write(out.text)
        sys.stdout.flush()


# ---------------------------------------------------------------------------- argument builders
def _scenario_arg(p: argparse.ArgumentParser, *, transfer: bool = False) -> None:
    p.add_argument("scenario", metavar="SCENARIO",
                   help="scenario file, .toml or .json, UTF-8 (README 'Scenario files'; every key: "
                        "docs/scenario-files.md)" + ("; its [transfer] section names the roles" if transfer else ""))


def _budget_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--max-memory", metavar="SIZE",
                   help="memory budget, e.g. 4GiB, 500M, 2e9 (bytes) or none: a run estimated to need more "
                        "is refused before anything is allocated (default: half the memory available "
                        "when the run starts)")
    p.add_argument("--max-seconds", type=float, metavar="S",
                   help="refuse a run whose estimated duration is above S seconds (the step-by-step exact "
                        "method, Monte Carlo), before it starts (default: no limit; runs estimated above "
                        "a few seconds are announced on standard error)")


def _output_args(p: argparse.ArgumentParser, formats: tuple[str, ...], default: str, *,
                 at: bool = False, modes: bool = False, timings: bool = False) -> None:
    """``--format``, ``--out``, ``--mkdir``; ``--at`` (reported steps); ``--modes``/``--npz``
    (per-mode arrays); ``--timings``."""
    p.add_argument("--format", choices=formats, default=default,
                   help=f"output format: {', '.join(formats)} (default: {default})")
    p.add_argument("--out", metavar="PATH",
                   help="write the output to this file instead of standard output (atomically; nothing "
                        "is written on error; default: standard output)")
    p.add_argument("--mkdir", action="store_true",
                   help="create the missing directories of --out/--npz paths (default: a missing "
                        "directory is an error)")
    if at:
        p.add_argument("--at", metavar="STEPS",
                       help="comma-separated steps to report, e.g. 0,10,100 (default: the file's [output]; "
                            "a step past a model's end reports its last step)")
    if modes:
        p.add_argument("--modes", action=argparse.BooleanOptionalAction, default=False,
                       help="JSON: put the per-mode arrays (d numbers each) in the output and echo "
                            "long arrays of the scenario in full (default: --no-modes)")
        p.add_argument("--npz", metavar="PATH",
                       help="also write every array (curves and per-mode) to this numpy .npz file "
                            "(default: none)")
    if timings:
        p.add_argument("--timings", action="store_true",
                       help="keep wall-clock timings ('seconds') in the JSON diagnostics (default: left "
                            "out, so identical inputs and seeds give identical files)")


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
                        "overflows is still an error; default: off)")
    g.add_argument("--strict-stability", action="store_true",
                   help="on_unstable='raise': refuse any step above the stability limit (default: "
                        "compute a schedule that returns below it, with a warning)")


def _monte_carlo_args(p: argparse.ArgumentParser, *, switch: bool = False) -> None:
    if switch:
        p.add_argument("--simulate", action="store_true",
                       help="Monte Carlo SGD instead of theory (takes no --method; default: theory)")
    p.add_argument("--reps", type=int, metavar="N",
                   help=f"Monte Carlo replicates, >= 2 (default: {API_DEFAULTS['reps']})")
    p.add_argument("--seed", type=int, metavar="N",
                   help=f"Monte Carlo random seed, >= 0: the same seed gives the same numbers "
                        f"(default: {API_DEFAULTS['seed']})")


def _progress_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar with an ETA on standard error (default: on long runs in a terminal)")


def _transfer_args(p: argparse.ArgumentParser, roles: tuple[str, ...], *, kind: bool = False,
                   generations: bool = False) -> None:
    _scenario_arg(p, transfer=True)
    for r in roles:
        p.add_argument(f"--{r}", metavar="NAME",
                       help=f"name of the [[models]] entry playing the {r} (default: [transfer] {r}, "
                            "else by position)")
    p.add_argument("--alpha", type=float,
                   help="weight of the hard label in the student's labels, in [0, 1] (default: "
                        "[transfer] alpha, else 0)")
    if kind:
        p.add_argument("--kind", choices=TRANSFER_KINDS, help="comparison (default: [transfer] kind)")
    if generations:
        p.add_argument("--generations", type=int, metavar="G",
                       help="models in the chain, generation 0 included (default: [transfer] generations, "
                            "else 2)")
    _method_arg(p)


def _help_list(items: dict[str, str]) -> str:
    return "\n".join(f"  {k:<18} {v}" for k, v in items.items())


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="spectral-theory",
        description="Exact excess-risk curves of one-pass SGD on linear regression, "
                    "for single models and teacher-student chains.",
        epilog="Exit status: 0 success; 1 'stability' found a model UNSTABLE in its final phase; "
               "2 an error (one line 'spectral-theory: error: ...'; nothing is written); 141 standard "
               "output closed before the output was written (as by '| head').",
    )
    parser.add_argument("--version", action="version", version=f"spectral-theory {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("run", help="predicted curves (theory)",
                       description="Predicted excess-risk curves of every model of the scenario (theory).")
    _scenario_arg(p)
    _output_args(p, ("table", "json", "csv"), "table", at=True, modes=True, timings=True)
    _method_arg(p)
    p.add_argument("--rtol", type=float, help="ode/continuum: local error tolerance (default: 1e-6)")
    p.add_argument("--d", dest="continuum_d", metavar="D",
                   help="continuum: number of modes, or 'inf' (default: the problem's d)")
    p.add_argument("--every-step", action="store_true",
                   help="also the excess risk at every step 0..T of every model (JSON 'curve', CSV one "
                        "row per step, --npz '<model>/curve'; default: the reported steps only)")
    p.add_argument("--record-modes", action="store_true",
                   help="also the per-mode E[e_i^2] at every reported step (JSON 'mode_curves', CSV columns "
                        "mode_1..mode_d, --npz '<model>/mode_curves'; d numbers per step; default: off)")
    _budget_args(p)
    _stability_args(p)
    p.set_defaults(handler=_cmd_run)

    p = sub.add_parser("simulate", help="Monte Carlo SGD, same output shape with standard errors",
                       description="Monte Carlo SGD on the scenario: mean excess risk, standard errors and "
                                   "bootstrap intervals at the reported steps.")
    _scenario_arg(p)
    _output_args(p, ("table", "json", "csv"), "table", at=True, modes=True, timings=True)
    _monte_carlo_args(p)
    _progress_arg(p)
    _budget_args(p)
    _stability_args(p)
    p.set_defaults(handler=_cmd_simulate)

    p = sub.add_parser("compare", help="theory against Monte Carlo: theory, MC mean, SE and z in one table",
                       description="Theory and Monte Carlo on one scenario: per model and reported step the "
                                   "theory, the Monte Carlo mean, its standard error and interval, and "
                                   "z = (MC - theory) / SE.")
    _scenario_arg(p)
    _output_args(p, ("table", "json", "csv"), "table", at=True)
    _monte_carlo_args(p)
    _method_arg(p)
    p.add_argument("--z-max", type=float, metavar="Z",
                   help=f"criterion |theory - MC| <= Z SE (the 'ok' column; default: {API_DEFAULTS['z_max']:g})")
    _progress_arg(p)
    _budget_args(p)
    _stability_args(p)
    p.set_defaults(handler=_cmd_compare)

    p = sub.add_parser("stability", help="largest stable constant step of each model",
                       description="Largest stable constant step of each model and whether its schedule "
                                   "stays below it. Exit status 1 when a model is UNSTABLE in its final "
                                   "phase (the report is printed in full), 2 on an error.")
    _scenario_arg(p)
    _budget_args(p)
    p.set_defaults(handler=_cmd_stability)

    for kind, helptext, roles in (
        ("kd", "distillation: teacher, distilled student, same student on hard labels", ("teacher", "student")),
        ("w2s", "weak-to-strong: weak teacher, strong student, strong ceiling", ("weak", "strong")),
        ("chain", "multi-generation chain (self-distillation)", ("base", "child")),
    ):
        p = sub.add_parser(kind, help=helptext, description=helptext[0].upper() + helptext[1:] + ".")
        _transfer_args(p, roles, generations=kind == "chain")
        _monte_carlo_args(p, switch=True)
        _output_args(p, ("table", "json", "csv"), "table", at=True, modes=True, timings=True)
        _progress_arg(p)
        _budget_args(p)
        _stability_args(p)
        p.set_defaults(handler=_cmd_transfer, kind=kind)

    p = sub.add_parser("tune", help="best mix weight alpha or best constant student step",
                       description="The student's risk over a grid of alpha (or of its constant step), "
                                   "refined around the best grid point.")
    _transfer_args(p, ALL_ROLES, kind=True, generations=True)
    p.add_argument("--param", choices=("alpha", "lr"), default="alpha",
                   help="what to tune: alpha (hard-label weight) or lr (the student's constant step) "
                        "(default: alpha)")
    p.add_argument("--grid", type=int, metavar="N",
                   help=f"grid points before refining, >= 3 (default: {API_DEFAULTS['grid']})")
    p.add_argument("--objective", choices=API_DEFAULTS["objectives"],
                   help="the student's final risk or its oracle-stopped risk "
                        f"(default: {API_DEFAULTS['objective']})")
    _output_args(p, ("table", "json", "csv"), "table")
    _budget_args(p)
    p.set_defaults(handler=_cmd_tune)

    p = sub.add_parser("map", help="a transfer metric over a grid of two parameters",
                       description="A transfer metric over a grid of two parameters (rows: --x, columns: --y).")
    _transfer_args(p, ALL_ROLES, kind=True, generations=True)
    p.add_argument("--x", required=True, metavar="PARAM=V1,V2,...",
                   help="first parameter and its values, e.g. teacher.capacity=50,100,200 (required)")
    p.add_argument("--y", required=True, metavar="PARAM=V1,V2,...",
                   help="second parameter and its values, e.g. student.capacity=20,50 (required)")
    p.add_argument("--metric", help="metric of the report (default: kd_gain / pgr / final_over_first)")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="processes computing rows in parallel (default: 1)")
    _output_args(p, ("table", "json", "csv"), "csv")
    _budget_args(p)
    p.set_defaults(handler=_cmd_map)

    p = sub.add_parser("convert", help="convert power-law exponents between conventions",
                       description="Convert a pair of power-law exponents between conventions:\n"
                                   + _help_list(CONVENTION_NAMES),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("x", type=float, help="first exponent (a, or alpha for paquette)")
    p.add_argument("y", type=float, help="second exponent (b, or beta for paquette)")
    p.add_argument("--from", dest="source", choices=tuple(CONVENTION_NAMES), required=True,
                   help="convention of x and y (required)")
    p.add_argument("--to", dest="target", choices=tuple(CONVENTION_NAMES), default="spectral-theory",
                   help="convention to convert to (default: spectral-theory)")
    p.set_defaults(handler=_cmd_convert)

    p = sub.add_parser("demo", help="worked examples: " + ", ".join(DEMOS) + " (default: basic)",
                       description="Worked examples (theory, a few seconds each):\n" + _help_list(DEMOS),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", nargs="?", default="basic", choices=tuple(DEMOS), metavar="NAME",
                   help="one of " + ", ".join(DEMOS) + " (default: basic)")
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
        steps = [int(v) for v in text.replace(",", " ").split()]
    except ValueError:
        steps = []
    if not steps or any(t < 0 for t in steps):
        raise SpecError("--at", text, "must be a comma-separated list of non-negative integers")
    return steps


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
    if getattr(args, "allow_unstable", False):
        return "ignore"
    return "raise" if getattr(args, "strict_stability", False) else "warn"


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


#: the largest size or step count the command line passes on: the solvers index steps and modes
#: with int64 numbers (a step count such as 1e308 is a valid integer, but no solver can count it)
MAX_SIZE = 2**62


def _check_sizes(scenario: Any) -> None:
    """A :class:`SpecError` naming the field when ``d``, a model's steps, batch or capacity, or a
    reported step is above :data:`MAX_SIZE`."""
    sizes = [("problem.spectrum.d", scenario.problem.d)]
    for m in scenario.models:
        sizes += [(f"{m.field_name}.{k}", getattr(m, k)) for k in ("steps", "batch", "capacity")]
    out = scenario.output
    sizes += [("output.at", max(out.at)) if out.at else ("output.points", out.points)]
    for name, value in sizes:
        if value is not None and value > MAX_SIZE:
            raise SpecError(name, value, f"must be at most 2^62 = {MAX_SIZE} (the solvers count steps and "
                                         "modes with int64 numbers)")


def _load(args: argparse.Namespace):
    from .spec import load_scenario

    scenario = load_scenario(args.scenario)
    _check_sizes(scenario)
    return scenario


def _budget(args: argparse.Namespace) -> tuple[int | None, str]:
    """The memory budget in bytes (``None``: no limit) and where it comes from."""
    from .budget import default_budget, format_size, parse_size

    text = getattr(args, "max_memory", None)
    if text is not None:
        try:
            size = parse_size(text)
        except ValueError:
            raise SpecError("--max-memory", text, "must be a size such as 4GiB, 500M, 2e9 (bytes) or none") from None
        return size, f"--max-memory {text}" if size is None else f"--max-memory {format_size(size)}"
    size = default_budget()
    return size, "half the available memory; --max-memory SIZE changes it"


def _check_memory(args: argparse.Namespace, est: Any, *, scenario: Any = None, method: str = "auto") -> None:
    """Refuse ``est`` if it is over the budget, with a way out that fits what makes it large:
    for per-mode arrays the continuum method (it holds no d-sized arrays; power laws, no
    explicit speeds), else fewer steps, phases, reported steps or replicates."""
    from .budget import check_budget

    budget, source = _budget(args)
    largest = est.largest()
    if "modes" in largest:
        hint = "a smaller d or fewer models would fit"
        if scenario is not None and method != "continuum":
            from .solvers.continuum import ContinuumSolver

            if ContinuumSolver().supports(scenario) is None:
                hint = (f"--method continuum computes this power-law problem on a few thousand quadrature nodes, "
                        f"whatever d is (d = {scenario.problem.d})")
    elif "phases" in largest or "step sizes" in largest:
        hint = ("fewer steps, or a schedule of fewer constant phases (constant, step_decay with a longer "
                "period, piecewise) would fit")
    elif "every-step" in largest:
        hint = "leave out --every-step (the reported steps cost nothing per step)"
    elif "reported steps" in largest:
        hint = "fewer reported steps ([output] points or at, --at) would fit"
    elif "replicate" in largest:
        hint = "fewer replicates (--reps) would fit"
    else:
        hint = ""
    check_budget(est, budget, budget_source=source, hint=hint)


def _clock(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.2g} s"
    if seconds < 5400:
        return f"{seconds / 60:.3g} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.3g} h"
    return f"{seconds / 86400:.3g} days"


def _check_time(args: argparse.Namespace, seconds: float, what: str, *, announce: bool = True) -> None:
    """Refuse a run estimated above ``--max-seconds``; announce one above :data:`NOTE_SECONDS`
    (``announce=False``: the library announces it, as Monte Carlo does)."""
    limit = getattr(args, "max_seconds", None)
    if limit is not None and seconds > limit:
        raise _CLIError(f"{what} is estimated to take about {_clock(seconds)}, over --max-seconds {limit:g}")
    if announce and seconds > NOTE_SECONDS:
        sys.stderr.write(f"spectral-theory: note: {what} will take about {_clock(seconds)}\n")


def _theory_seconds(scenario: Any, solver: Any) -> float:
    """Estimated duration of a theory run: the step-by-step solver's (the others' cost does not
    grow with the number of steps)."""
    from .budget import exact_seconds

    return exact_seconds(scenario) if solver.name == "exact" else 0.0


def _simulation_seconds(scenario: Any, reps: int, at: Any = None) -> float:
    from . import montecarlo

    estimate = getattr(montecarlo, "estimate_simulation_seconds", None)
    return 0.0 if estimate is None else float(estimate(scenario, reps, at=at))


def _finite_result(res: Any, where: str = "result") -> None:
    """Every stored array of every model finite (an overflow is an error, never inf or NaN in
    a written result)."""
    import dataclasses

    import numpy as np

    for name, m in res.models.items():
        for obj, prefix in ((m, ""), (m.modes, "modes.")):
            if obj is None:
                continue
            for f in dataclasses.fields(obj):
                v = getattr(obj, f.name)
                if not isinstance(v, np.ndarray) or v.dtype.kind not in "fc":
                    continue
                bad = ~np.isfinite(v)
                if bad.any():
                    i = int(np.flatnonzero(bad.ravel())[0])
                    raise _CLIError(f"{where} of model {name!r}: {prefix}{f.name} has a non-finite value "
                                    f"({v.ravel()[i]!r}, entry {i}): the computation overflowed")


def _drop_timings(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _drop_timings(v) for k, v in obj.items() if k not in TIMING_KEYS}
    if isinstance(obj, list):
        return [_drop_timings(v) for v in obj]
    return obj


def _abbreviate(obj: Any) -> Any:
    """Arrays longer than :data:`~spectral_theory.budget.ECHO_LIMIT` in a scenario echo, as a
    note of their length (``--modes`` echoes them in full)."""
    from .budget import ECHO_LIMIT

    if isinstance(obj, dict):
        return {k: _abbreviate(v) for k, v in obj.items()}
    if isinstance(obj, list):
        if len(obj) > ECHO_LIMIT:
            return f"<{len(obj)} numbers; --modes echoes them>"
        return [_abbreviate(v) for v in obj]
    return obj


def _json_text(doc: dict[str, Any], args: argparse.Namespace) -> str:
    """A result's JSON as written: without timings unless ``--timings``; the scenario echo's
    long arrays summarised unless ``--modes``."""
    import json

    if not getattr(args, "timings", False):
        doc = _drop_timings(doc)
    if not getattr(args, "modes", False):
        for key in ("scenario", "spec"):
            if key in doc:
                doc[key] = _abbreviate(doc[key])
    return json.dumps(doc, indent=2, allow_nan=False) + "\n"


def _fmt_csv(v: Any) -> Any:
    if v is None:
        return ""
    return f"{v:.12g}" if isinstance(v, float) else v


def _rows_csv(rows: list[dict[str, Any]], first: tuple[str, ...] = ("model", "step", "excess_risk"),
              extra: list[str] | None = None) -> str:
    """Tidy rows as CSV: the ``first`` columns, then every other column that has a value
    somewhere, then ``extra``."""
    import csv
    import io

    cols = list(first)
    for r in rows:
        for k, v in r.items():
            if k not in cols and v is not None and k not in (extra or ()):
                cols.append(k)
    cols += extra or []
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: _fmt_csv(r.get(k)) for k in cols})
    return buf.getvalue()


def _result_rows(res: Any, *, every_step: bool = False, record_modes: bool = False) -> tuple[list[dict], list[str]]:
    """A result's tidy rows; ``every_step``: one row per step 0..T of each model (the reported
    steps' columns where the step is reported); ``record_modes``: columns ``mode_1..mode_n``
    (``E[e_i^2]``) at the reported steps."""
    rows = res.rows()
    extra: list[str] = []
    if record_modes:
        n = max((m.mode_curves.shape[1] for m in res.models.values() if m.mode_curves is not None), default=0)
        extra = [f"mode_{i + 1}" for i in range(n)]
        pos = {}
        for name, m in res.models.items():
            for j, t in enumerate(m.steps.tolist()):
                pos[(name, t)] = (m, j)
        for r in rows:
            m, j = pos[(r["model"], r["step"])]
            if m.mode_curves is not None:
                r.update(zip(extra, m.mode_curves[j].tolist(), strict=False))
    if every_step:
        by_step = {(r["model"], r["step"]): r for r in rows}
        full = []
        for name, m in res.models.items():
            if m.curve is None:
                full.extend(r for r in rows if r["model"] == name)
                continue
            for t, v in enumerate(m.curve.tolist()):
                full.append(by_step.get((name, t), {"model": name, "step": t, "excess_risk": v}))
        rows = full
    return rows, extra


def _result_output(res: Any, args: argparse.Namespace, *, every_step: bool = False,
                   record_modes: bool = False) -> _Output:
    """A :class:`~spectral_theory.result.Result` in ``args.format``, with its ``.npz`` sidecar;
    notes on standard error for requested steps past a model's end."""
    from .result import as_list

    for name, past in res.diagnostics.get("steps_past_end", {}).items():
        sys.stderr.write(f"spectral-theory: note: model {name!r} trains {past['reported']} steps; "
                         f"requested step(s) {past['requested']} are past its end, so its last step "
                         f"{past['reported']} is reported in their place\n")
    _finite_result(res)
    if args.format == "json":
        doc = res.to_dict(modes=args.modes)
        if record_modes and not args.modes:
            for name, m in res.models.items():
                if m.mode_curves is not None:
                    doc["models"][name]["mode_curves"] = [as_list(r) for r in m.mode_curves]
        text = _json_text(doc, args)
    elif args.format == "csv":
        if every_step or record_modes:
            rows, extra = _result_rows(res, every_step=every_step, record_modes=record_modes)
            text = _rows_csv(rows, extra=extra)
        else:
            text = res.to_csv()
    else:
        text = res.table()
        if every_step or record_modes:
            sys.stderr.write("spectral-theory: note: the table shows the reported steps; --every-step and "
                             "--record-modes data go to --format json or csv, or --npz\n")
    return _Output(text, res.save_npz)


def _transfer_spec(args: argparse.Namespace, kind: str | None):
    import dataclasses
    from pathlib import Path

    from .spec import Output, read_scenario_file
    from .transfer import transfer_from_dict

    data = read_scenario_file(args.scenario)
    overrides = {r: getattr(args, r, None) for r in ALL_ROLES}
    overrides["alpha"] = args.alpha
    overrides["generations"] = getattr(args, "generations", None)
    spec = transfer_from_dict(data, kind=kind, overrides=overrides, name=Path(args.scenario).stem)
    for scn in spec.lineages().values():
        _check_sizes(scn)
    at = _parse_at(getattr(args, "at", None))
    if at is not None:
        try:
            out = Output(at=tuple(at))
        except SpecError as err:
            raise SpecError(err.field.replace("output.at", "--at"), err.value, err.allowed) from None
        spec = dataclasses.replace(spec, output=out)
    return spec


# ---------------------------------------------------------------------------- handlers
def _cmd_run(args: argparse.Namespace) -> _Output:
    from .budget import theory_estimate

    options = _solver_options(args)
    scenario = _load(args)
    at = _parse_at(args.at)
    method = args.method or "auto"
    _check_memory(args, theory_estimate(scenario, method, record_modes=args.record_modes,
                                        every_step=args.every_step, at=at, what="this run"),
                  scenario=scenario, method=method)
    from .api import predict, resolve_solver

    solver, why = resolve_solver(scenario, method, options, every_step=args.every_step,
                                 record_modes=args.record_modes)
    _check_time(args, _theory_seconds(scenario, solver), f"this run ({solver.name} method, step by step)")
    res = predict(scenario, at=at, on_unstable=_on_unstable(args), record_modes=args.record_modes,
                  every_step=args.every_step, method=solver)
    res.diagnostics["method_choice"] = why
    return _result_output(res, args, every_step=args.every_step, record_modes=args.record_modes)


def _cmd_simulate(args: argparse.Namespace) -> _Output:
    from .budget import simulation_estimate

    scenario = _load(args)
    at = _parse_at(args.at)
    reps = args.reps if args.reps is not None else API_DEFAULTS["reps"]
    _check_memory(args, simulation_estimate(scenario, reps, at=at, what="this simulation"))
    _check_time(args, _simulation_seconds(scenario, reps, at), "this simulation", announce=False)
    from .api import simulate

    res = simulate(scenario, at=at, progress=args.progress, on_unstable=_on_unstable(args),
                   **_given(args, "reps", "seed"))
    return _result_output(res, args)


def _cmd_compare(args: argparse.Namespace) -> _Output:
    from .analysis import checks
    from .budget import simulation_estimate, theory_estimate

    scenario = _load(args)
    at = _parse_at(args.at)
    method = args.method or "auto"
    reps = args.reps if args.reps is not None else API_DEFAULTS["reps"]
    _check_memory(args, theory_estimate(scenario, method, at=at, what="this comparison")
                  + simulation_estimate(scenario, reps, at=at), scenario=scenario, method=method)
    from .api import resolve_solver

    _check_time(args, _theory_seconds(scenario, resolve_solver(scenario, method, {})[0])
                + _simulation_seconds(scenario, reps, at), "this comparison")
    kw = dict(at=at, method=method, progress=args.progress, on_unstable=_on_unstable(args),
              **_given(args, "reps", "seed", "z_max"))
    compare = getattr(checks, "compare", None)
    if compare is None:  # pragma: no cover - older analysis.checks
        kw.pop("on_unstable")
        kw.setdefault("reps", API_DEFAULTS["reps"])
        kw.setdefault("seed", API_DEFAULTS["seed"])
        chk = checks.check_against_simulation(scenario, name=scenario.name, **kw)
    else:
        chk = compare(scenario, **kw)
    if args.format == "json":
        import json

        doc = chk.to_dict() if hasattr(chk, "to_dict") else {"rows": chk.rows}
        return _Output(json.dumps(doc, indent=2, allow_nan=False) + "\n")
    if args.format == "csv":
        return _Output(chk.to_csv() if hasattr(chk, "to_csv") else _rows_csv(chk.rows, first=("model", "step")))
    return _Output(chk.table())


def _cmd_stability(args: argparse.Namespace) -> _Output:
    from .budget import stability_estimate
    from .solvers.base import guard_model

    scenario = _load(args)
    _check_memory(args, stability_estimate(scenario))
    lines, status = [], 0
    for m in scenario.models:
        phases = m.phases()
        check = guard_model(m, scenario.problem.eigenvalues, scenario.problem.kappa, "ignore")
        mx = max((lr for lr, _ in phases), default=0.0)
        if not check.unstable:
            verdict = "stable"
        elif check.final is None:
            verdict = (f"above the limit at steps {check.ranges_text()} (peak growth factor "
                       f"{check.growth_text()}), then below: computed with a warning")
        else:
            status = EXIT_UNSTABLE
            per_step = getattr(m, "momentum", None) is not None and not m.momentum.constant
            verdict = (f"UNSTABLE ({'every step from' if per_step else 'the final constant phase, from'} step "
                       f"{check.final[0]} to the end{'' if per_step else ','} is above the limit: an error unless "
                       "--allow-unstable)")
        limit = (f"largest stable constant step {check.limit:.6g} (batch-mean)" if check.limit < float("inf")
                 else "no stability limit (every speed is 0: the model never moves)")
        if getattr(m, "momentum", None) is not None and not m.momentum.is_plain:  # docs/theory.md §11
            limit = (f"{limit} with {m.momentum.kind} momentum" if m.momentum.constant else
                     "per-step momentum coefficients: each step's map tested exactly")
        lines.append(f"{m.name}: {limit}; largest step used {mx:.6g}: {verdict}\n")
    return _Output("".join(lines), status=status)


def _transfer_output(rep: Any, args: argparse.Namespace) -> _Output:
    for r in rep.results.values():
        _finite_result(r, "report")
    if args.format == "json":
        return _Output(_json_text(rep.to_dict(modes=args.modes), args), rep.save_npz)
    if args.format == "csv":
        rows = [row for r in rep.results.values() for row in r.rows()]
        return _Output(_rows_csv(rows), rep.save_npz)
    return _Output(rep.table(), rep.save_npz)


def _transfer_seconds(spec: Any, method: str, simulate: bool = False, reps: int = 1000) -> float:
    """Estimated duration of one evaluation of a comparison (every lineage)."""
    from .api import resolve_solver

    total = 0.0
    for scn in spec.lineages().values():
        if simulate:
            total += _simulation_seconds(scn, reps)
        else:
            total += _theory_seconds(scn, resolve_solver(scn, method, {})[0])
    return total


def _cmd_transfer(args: argparse.Namespace) -> _Output:
    """``kd``, ``w2s``, ``chain``: one comparison, by theory or (``--simulate``) Monte Carlo."""
    from .budget import transfer_estimate

    if args.simulate and args.method is not None:
        raise SpecError("--method", args.method,
                        "names a theory solver; --simulate (Monte Carlo) takes none: give one or the other")
    spec = _transfer_spec(args, args.kind)
    method = args.method or "auto"
    reps = args.reps if args.reps is not None else API_DEFAULTS["reps"]
    _check_memory(args, transfer_estimate(spec, method, simulate=args.simulate, reps=reps,
                                          what=f"this {args.kind} comparison"),
                  scenario=None if args.simulate else next(iter(spec.lineages().values())), method=method)
    _check_time(args, _transfer_seconds(spec, method, args.simulate, reps), f"this {args.kind} comparison",
                announce=not args.simulate)
    from .transfer import evaluate

    kw = _given(args, "method", "reps", "seed", "progress")
    rep = evaluate(spec, simulate=args.simulate, on_unstable=_on_unstable(args), **kw)
    return _transfer_output(rep, args)


def _cmd_tune(args: argparse.Namespace) -> _Output:
    import json

    from .budget import transfer_estimate

    spec = _transfer_spec(args, args.kind)
    grid = args.grid if args.grid is not None else API_DEFAULTS["grid"]
    method = args.method or "auto"
    _check_memory(args, transfer_estimate(spec, method, evaluations=max(int(grid), 3) + 30,
                                          what="this tuning"),
                  scenario=next(iter(spec.lineages().values())), method=method)
    _check_time(args, (max(int(grid), 3) + 15) * _transfer_seconds(spec, method), "this tuning")
    from .transfer import tune_alpha, tune_lr

    fn = tune_alpha if args.param == "alpha" else tune_lr
    tun = fn(spec, **_given(args, "grid", "objective", "method"))
    if args.format == "json":
        return _Output(json.dumps(tun.to_dict(), indent=2, allow_nan=False) + "\n")
    if args.format == "csv":
        rows = [{args.param: float(x), "risk": float(r)} for x, r in zip(tun.values, tun.risks, strict=True)]
        return _Output(_rows_csv(rows, first=(args.param, "risk")))
    return _Output(tun.table())


def _map_table(mp: Any) -> str:
    """A map as a grid: one row per x value, one column per y value."""
    head = [f"{mp.x_param} \\ {mp.y_param}", *(f"{y:g}" for y in mp.ys)]
    cells = [head] + [[f"{x:g}", *(f"{v:.6g}" for v in row)] for x, row in zip(mp.xs, mp.values, strict=True)]
    widths = [max(len(r[i]) for r in cells) for i in range(len(head))]
    lines = [f"# {mp.metric} over {mp.x_param} (rows) and {mp.y_param} (columns)"
             + (f" ({mp.method})" if getattr(mp, "method", "") else "")]
    for k, r in enumerate(cells):
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths,
                                                                                                 strict=True))))
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines) + "\n"


def _cmd_map(args: argparse.Namespace) -> _Output:
    import json

    from .budget import transfer_estimate

    spec = _transfer_spec(args, args.kind)
    if args.workers < 1:
        raise SpecError("--workers", args.workers, "must be an integer >= 1")
    x, y = _parse_values(args.x), _parse_values(args.y)
    method = args.method or "auto"
    _check_memory(args, transfer_estimate(spec, method, evaluations=len(x[1]) * len(y[1]), what="this map"),
                  scenario=next(iter(spec.lineages().values())), method=method)
    _check_time(args, len(x[1]) * len(y[1]) * _transfer_seconds(spec, method) / max(args.workers, 1), "this map")
    from .transfer import transfer_map

    kw = _given(args, "metric", "method")
    if args.workers == 1:
        mp = transfer_map(spec, x, y, **kw)
    else:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=args.workers) as pool:
            mp = transfer_map(spec, x, y, executor=pool, **kw)
    if args.format == "csv":
        return _Output(mp.to_csv())
    if args.format == "json":
        return _Output(json.dumps(mp.to_dict(), indent=2, allow_nan=False) + "\n")
    return _Output(_map_table(mp))


def _cmd_convert(args: argparse.Namespace) -> _Output:
    from .conventions import convert

    x, y = convert(args.x, args.y, source=args.source, target=args.target)
    names = {"paquette": ("alpha", "beta")}.get(args.target, ("a", "b"))
    return _Output(f"{args.target}: {names[0]} = {x:.12g}, {names[1]} = {y:.12g}\n")


def _cmd_demo(args: argparse.Namespace) -> _Output:
    from .demo import demo_text, demonstration_text

    return _Output(demo_text() if args.name == "basic" else demonstration_text(args.name))


# ---------------------------------------------------------------------------- entry point
#: numpy's floating-point warnings ("overflow encountered in multiply", ...)
_NUMPY_FP = ("overflow encountered", "underflow encountered", "invalid value encountered",
             "divide by zero encountered")


def _report_warnings(caught: list, *, error: bool = False) -> None:
    """Each distinct warning as one line ``spectral-theory: warning: ...`` on standard error
    (no Python source lines). ``error``: the run ends with an error, which says what went wrong;
    numpy's floating-point warnings on the way to it (an overflow the error reports) are left out."""
    seen: set[str] = set()
    for w in caught:
        text = " ".join(str(w.message).split())
        if error and text.startswith(_NUMPY_FP):
            continue
        if text not in seen:
            seen.add(text)
            sys.stderr.write(f"spectral-theory: warning: {text}\n")
    caught.clear()


def _message(err: BaseException) -> str:
    """The one line an error becomes (paths and sizes named)."""
    from .budget import BudgetError

    if isinstance(err, (SpecError, InstabilityError, BudgetError, _CLIError)):
        text = str(err)
    elif isinstance(err, MemoryError):
        text = ("out of memory" + (f": {err}" if str(err) else "")
                + " (a smaller problem, --method continuum for power laws, or fewer replicates)")
    elif isinstance(err, OSError):
        where = f" {err.filename!r}" if err.filename is not None else ""
        text = f"cannot access{where}: {err.strerror or err}"
    elif isinstance(err, UnicodeError):
        text = f"text encoding: {err}"
    else:  # pragma: no cover - not caught
        text = str(err)
    return " ".join(text.split())


#: what the boundary turns into ``spectral-theory: error: ...`` (exit status 2)
_HANDLED = (SpecError, InstabilityError, _CLIError, MemoryError, OSError, UnicodeError)


def main(argv: list[str] | None = None) -> int:
    import warnings

    args = build_parser().parse_args(argv)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            _check_output_paths(args)
            out = args.handler(args)
            _report_warnings(caught)
            _emit(args, out)
        except BrokenPipeError:  # standard output closed early (e.g. piped into head)
            try:
                sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - no flush error at exit
            except OSError:
                pass
            return 141
        except _HANDLED as err:
            _report_warnings(caught, error=True)
            sys.stderr.write(f"spectral-theory: error: {_message(err)}\n")
            return EXIT_ERROR
    return out.status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
