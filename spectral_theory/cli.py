"""Command-line interface: ``spectral-theory run|simulate|compare|stability|kd|w2s|chain|tune|map|convert|demo|check|sweep|validate-sweep``.

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
import math
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
#: ``spectral-theory figure KIND``: the kinds (``spectral_theory.figures.KINDS``, a literal here so
#: that ``--help`` imports nothing; a test checks that the two agree)
FIGURE_KINDS = {
    "curves": "excess risk against steps, one line per model; Monte Carlo markers with +-2 SE",
    "modes": "per-mode normalised error M_ii/theta_i^2 with the horizons (horizon expansion)",
    "denoising": "per-mode variance parts of weak teacher and w2s student (spectral denoising)",
    "map": "a transfer metric over two parameters, neutral contour (phase diagram)",
    "chain": "risk and horizon per generation of a chain",
    "rates": "log-log risk curve with its fitted slope and the predicted exponent",
    "stability": "final risk against the constant step size, stability limit marked",
}
#: the figure ``kd``/``w2s``/``chain --figure FILE`` draws unless ``--figure-kind`` says otherwise
TRANSFER_FIGURES = {"kd": "modes", "w2s": "denoising", "chain": "chain"}
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
    #: more files written with the others, all or nothing: ``(flag, path, write, binary)``
    files: tuple = ()


class _CLIError(Exception):
    """An error of the command line itself (a path, a flag): its message is printed as it is."""


# ---------------------------------------------------------------------------- output
def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _output_paths(args: argparse.Namespace) -> list[tuple[str, str]]:
    pairs = (("--npz", "npz"), ("--out", "out"), *getattr(args, "extra_paths", ()))
    return [(flag, getattr(args, attr)) for flag, attr in pairs if getattr(args, attr, None) is not None]


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
    seen: dict[str, str] = {}
    for flag, path in paths:
        if os.path.abspath(path) in seen:
            raise SpecError(flag, path, f"is also the {seen[os.path.abspath(path)]} file: name two files")
        seen[os.path.abspath(path)] = flag


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
    files.extend(out.files)
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


def _figure_style_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--style", choices=("default", "paper"),
                   help="default (screen) or paper (serif, 8 pt, single-column width; colour-blind-safe palette "
                        "in both) (default: default)")
    p.add_argument("--width", metavar="W",
                   help="figure width: single (3.4 in), double (7.0 in) or inches (default: the style's: 6.4 in, "
                        "paper single)")


def _transfer_figure_args(p: argparse.ArgumentParser, kind: str) -> None:
    p.add_argument("--figure", metavar="FILE",
                   help=f"also draw a figure of the report to FILE (.pdf, .png or .svg; FILE.csv and FILE.json "
                        f"beside it; default kind: {TRANSFER_FIGURES[kind]}; default: none)")
    kinds = ("curves", "modes") + (("denoising",) if kind == "w2s" else ()) + (("chain",) if kind == "chain" else ())
    p.add_argument("--figure-kind", choices=kinds,
                   help=f"the kind of --figure (default: {TRANSFER_FIGURES[kind]}; with --simulate for w2s: curves)")


def _figure_parsers(sub: Any) -> None:
    """``figure``, ``replot`` and ``gallery`` (docs/figures.md)."""
    p = sub.add_parser("figure", help="a paper figure: " + ", ".join(FIGURE_KINDS),
                       description="A figure of a scenario file (image, with its data as FILE.csv and FILE.json "
                                   "beside it):\n" + _help_list(FIGURE_KINDS)
                                   + "\ncurves and modes draw the file's models, or with --kind (or a [transfer] "
                                     "kind) the comparison's; denoising, map and chain draw a comparison.",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("figure_kind", metavar="KIND",  # checked by _cmd_figure: one error line, not usage
                   help="one of " + ", ".join(FIGURE_KINDS))
    _transfer_args(p, ALL_ROLES, kind=True, generations=True)
    _monte_carlo_args(p, switch=True)
    next(a for a in p._actions if a.dest == "simulate").help = (
        "curves, modes, chain: add Monte Carlo markers (+-2 SE) to the theory lines (takes no --method; "
        "default: theory only)")
    p.add_argument("--out", dest="figure_out", metavar="FILE",
                   help="image file, .pdf, .png or .svg (default: SCENARIO-KIND.png in the current directory)")
    p.add_argument("--mkdir", action="store_true", help="create the missing directories of --out (default: off)")
    _figure_style_args(p)
    p.add_argument("--points", type=int, metavar="N",
                   help="curves, rates: report N log-spaced steps per model (default: 80; the file's [output] "
                        "is for tables)")
    p.add_argument("--models", metavar="A,B", help="curves, modes, stability: the models drawn (default: all)")
    p.add_argument("--split", action="store_true", help="curves: also the bias (dashed) and variance (dotted) parts (default: off)")
    p.add_argument("--axis", choices=("index", "lambda"), help="modes: x axis (default: index)")
    p.add_argument("--x", metavar="PARAM=V1,V2,...", help="map: first parameter and its values (required for map)")
    p.add_argument("--y", metavar="PARAM=V1,V2,...", help="map: second parameter and its values (required for map)")
    p.add_argument("--metric", help="map: metric (default: kd_gain / pgr / final_over_first)")
    p.add_argument("--window", metavar="LO,HI", help="rates: fit window in steps (default: T/40 to T)")
    p.add_argument("--expected", type=float, metavar="E",
                   help="rates: predicted exponent (default: the bias rate -min((b-1)/a, 2-1/a) of a power law)")
    _progress_arg(p)
    _budget_args(p)
    _stability_args(p)
    p.set_defaults(handler=_cmd_figure, extra_paths=(("--out", "figure_out"),))

    p = sub.add_parser("replot", help="redraw a figure from its JSON data file (no recomputation)",
                       description="Redraw a figure from the JSON record written beside it (and its CSV), with "
                                   "other styling and without recomputing.")
    p.add_argument("data", metavar="DATA.json", help="the JSON record written beside a figure")
    p.add_argument("--out", dest="figure_out", metavar="FILE",
                   help="image file, .pdf, .png or .svg (default: DATA.png beside DATA.json)")
    p.add_argument("--mkdir", action="store_true", help="create the missing directories of --out (default: off)")
    _figure_style_args(p)
    p.add_argument("--axis", choices=("index", "lambda"), help="modes: x axis (default: the record's)")
    p.set_defaults(handler=_cmd_replot, extra_paths=(("--out", "figure_out"),))

    p = sub.add_parser("gallery", help="the standard figures with captions, into a directory",
                       description="The standard figures (horizon expansion, denoising, phase diagrams, transfer "
                                   "that hurts, a chain, scaling laws, the stability limit; with --simulate theory "
                                   "against Monte Carlo) with their data files and an index.md of captions.")
    p.add_argument("--out", dest="gallery_dir", default="gallery", metavar="DIR",
                   help="directory to write (created if missing; default: gallery)")
    p.add_argument("--formats", metavar="F1,F2",
                   help="image formats among pdf, png, svg; the first is shown in index.md (default: png)")
    p.add_argument("--only", metavar="NAME1,NAME2", help="only these figures (default: all)")
    _figure_style_args(p)
    p.add_argument("--simulate", action="store_true",
                   help="add the theory-against-Monte-Carlo figures (default: theory only)")
    p.add_argument("--reps", type=int, metavar="N", help="Monte Carlo replicates of those figures, >= 2 (default: 200)")
    p.add_argument("--seed", type=int, metavar="N", help="their random seed, >= 0 (default: 0)")
    _progress_arg(p)
    p.set_defaults(handler=_cmd_gallery)


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
        _transfer_figure_args(p, kind)
        p.set_defaults(handler=_cmd_transfer, kind=kind, extra_paths=(("--figure", "figure"),))

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

    _figure_parsers(sub)

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
    _check_parser(sub)
    _sweep_parsers(sub)
    return parser


def _check_parser(sub: Any) -> None:
    """``check CLAIMS``: the claims of a file, searched and certified (docs/claims.md)."""
    p = sub.add_parser("check", help="check the claims of a claim file (exit 0: all hold, 1: a violation)",
                       description="Try to break each claim of a claim file (TOML or JSON; docs/claims.md): "
                                   "a grid, a scrambled Sobol design, then local and global maximisation of "
                                   "the violation ratio through the fast solvers; the worst point is "
                                   "re-evaluated in interval arithmetic. Exit status: 0 every claim holds on "
                                   "the points tried, 1 a claim is violated (or undecided: no valid point), 2 bad input.")
    p.add_argument("claims", metavar="CLAIMS", help="claim file, .toml or .json (docs/claims.md)")
    p.add_argument("--format", choices=("table", "json"), default="table", help="output format (default: table)")
    p.add_argument("--out", metavar="PATH",
                   help="write the report to PATH (atomically) instead of standard output (default: standard output)")
    p.add_argument("--mkdir", action="store_true", help="create --out's missing directories (default: do not)")
    p.add_argument("--budget", type=int, metavar="N",
                   help="evaluations per claim (default: the file's [search] budget, else 200)")
    p.add_argument("--seed", type=int, metavar="S", help="seed of the Sobol design and the optimisers (default 0)")
    cert = p.add_mutually_exclusive_group()
    cert.add_argument("--certify", dest="certify", action="store_const", const=True,
                      help="always certify the worst point in interval arithmetic, an error if it cannot be "
                           "(default: certify when estimated under a minute)")
    cert.add_argument("--no-certify", dest="certify", action="store_const", const=False,
                      help="never certify (default: certify when estimated under a minute)")
    p.add_argument("--only", metavar="NAMES", help="comma-separated names of the claims to run (default: all)")
    p.add_argument("--witness-dir", metavar="DIR",
                   help="write each violated claim's witness scenario file to DIR/<claim>.json (default: none)")
    p.add_argument("--timings", action="store_true", help="keep wall-clock timings in JSON output (default: left out)")
    p.set_defaults(handler=_cmd_check, certify=None)


def _cmd_check(args: argparse.Namespace) -> _Output:
    from pathlib import Path

    from .claims.cli import run_check

    for flag, value, lo in (("--budget", args.budget, 1), ("--seed", args.seed, 0)):
        if value is not None and value < lo:
            raise SpecError(flag, value, f"must be an integer >= {lo}")
    if args.out is not None and Path(args.out).resolve() == Path(args.claims).resolve():
        raise SpecError("--out", args.out, "is the claim file: name another file")
    text, status = run_check(args)
    return _Output(text, status=status)


def _sweep_parsers(sub: Any) -> None:
    """``sweep`` and ``validate-sweep`` (``docs/sweeps.md``)."""
    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("sweep", metavar="SWEEP", help="sweep file, .toml or .json (docs/sweeps.md lists every key)")
        p.add_argument("--out-dir", metavar="DIR",
                       help="output directory (default: the file's sweep.out, else <file stem>.sweep beside it)")
        ex = p.add_mutually_exclusive_group()
        ex.add_argument("--workers", type=int, metavar="N", help="a local process pool of N processes (default: serial)")
        ex.add_argument("--cluster", metavar="local:N", help="a dask LocalCluster of N worker processes (1 thread each) on 127.0.0.1 "
                                                          "(default: none; serial)")
        ex.add_argument("--scheduler", metavar="tcp://HOST:PORT", help="an existing dask scheduler, e.g. tcp://HOST:8786 "
                                                                          "(default: none; serial)")
        p.add_argument("--no-dashboard", dest="dashboard", action="store_false",
                       help="start no dask dashboard for --cluster (default: one on a free port, its link printed)")
        p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                       help="progress bar (finished points, ETA) on standard error (default: when it is a terminal)")
        p.add_argument("--max-memory", metavar="SIZE",
                       help="each point's memory budget, e.g. 4GiB, 500M, 2e9 (bytes) or none: a point estimated "
                            "to need more is an error row (BudgetError), computed again by the next run "
                            "(default: half the memory available on the worker)")

    p = sub.add_parser("sweep", help="a design of points, computed once each, resumable, on a cluster",
                       description="Compute every point of a sweep's design (theory) that its output directory "
                                   "does not hold yet, and write the tables results.parquet (one row per point) "
                                   "and curves.parquet (or .csv). Run it again to resume an interrupted sweep.")
    common(p)
    p.add_argument("--batch-size", type=int, metavar="K", help="points per task (default: the file's, else 8)")
    p.add_argument("--format", dest="table_format", choices=("parquet", "csv"),
                   help="table format (default: the file's, else parquet when pyarrow is installed)")
    p.set_defaults(handler=_cmd_sweep)

    p = sub.add_parser("validate-sweep", help="theory against Monte Carlo for every point of a sweep, with a sign test",
                       description="Theory and Monte Carlo for every point of a sweep: a z table (per point, "
                                   "model, quantity and step), one final z per point and lineage, and the sign "
                                   "test across them. Replicates run in seed-derived blocks, so the table is the "
                                   "same on any number of workers. Exit status 1 when the validation fails.")
    common(p)
    p.add_argument("--reps", type=int, metavar="R", help="replicates per point (default: the file's [validate], else 1000)")
    p.add_argument("--block", type=int, metavar="B", help="replicates per block, dividing R (default: the file's, else 100)")
    p.add_argument("--seed", type=int, metavar="S", help="seed of the blocks' seeds (default: the file's, else 0)")
    p.add_argument("--z-max", type=float, metavar="Z",
                   help="criterion |theory - MC| <= Z SE (default: the file's, else 4)")
    p.set_defaults(handler=_cmd_validate_sweep)


def _sweep_run(args: argparse.Namespace, fn: Callable, **extra: Any) -> Any:
    """Load the sweep file, apply the flags and run ``fn`` (sweep or validate_sweep); an
    interrupted run is an error that says how to resume."""
    import dataclasses

    from .sweeps import SweepError, load_sweep

    sw = load_sweep(args.sweep)
    over = {k: v for k, v in (("batch_size", getattr(args, "batch_size", None)),
                              ("format", getattr(args, "table_format", None))) if v is not None}
    if over.get("batch_size", 1) < 1:
        raise SpecError("--batch-size", over["batch_size"], "must be an integer >= 1")
    if over.get("format") == "parquet":
        from .sweeps.spec import has_pyarrow

        if not has_pyarrow():
            raise SpecError("--format", "parquet", "needs pyarrow (pip install \".[sweeps]\"); or use --format csv")
    sw = dataclasses.replace(sw, **over)
    if args.workers is not None and args.workers < 1:
        raise SpecError("--workers", args.workers, "must be an integer >= 1")
    max_memory: Any = "worker"
    if args.max_memory is not None:
        from .budget import parse_size

        try:
            max_memory = parse_size(args.max_memory)
        except ValueError:
            raise SpecError("--max-memory", args.max_memory, "must be a size such as 4GiB, 500M, 2e9 (bytes) "
                                                             "or none") from None
    try:
        return fn(sw, out=args.out_dir, workers=args.workers, cluster=args.cluster, scheduler=args.scheduler,
                  progress=args.progress, dashboard=args.dashboard, max_memory=max_memory, **extra)
    except SweepError as err:
        raise _CLIError(f"{err}; the finished points are saved in {str(args.out_dir or sw.out)!r}: run the same "
                        "command again to resume") from None
    except ImportError as err:
        raise _CLIError(f"sweeps need the 'sweeps' extra (pip install \".[sweeps]\"): {err}") from None


def _cmd_sweep(args: argparse.Namespace) -> _Output:
    from .sweeps import sweep

    return _Output(_sweep_run(args, sweep).summary())


def _cmd_validate_sweep(args: argparse.Namespace) -> _Output:
    from .sweeps import validate_sweep

    res = _sweep_run(args, validate_sweep, **_given(args, "reps", "block", "seed", "z_max"))
    return _Output(res.summary(), status=0 if res.passed else EXIT_UNSTABLE)


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


def _load(args: argparse.Namespace):
    from .spec import load_scenario

    return load_scenario(args.scenario)


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
        if getattr(m, "momentum", None) is not None and not m.momentum.is_plain:  # docs/theory.md §10
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

    fig_kind = _transfer_figure_kind(args)
    kw = _given(args, "method", "reps", "seed", "progress")
    rep = evaluate(spec, simulate=args.simulate, on_unstable=_on_unstable(args), **kw)
    out = _transfer_output(rep, args)
    if fig_kind is None:
        return out
    theory = evaluate(spec, on_unstable=_on_unstable(args), **_given(args, "method")) if args.simulate else rep
    return out._replace(files=_transfer_figure(fig_kind, theory, rep if args.simulate else None, args))


def _transfer_figure_kind(args: argparse.Namespace) -> str | None:
    """The kind of ``--figure`` (checked before anything is computed), ``None`` without it."""
    if getattr(args, "figure", None) is None:
        if getattr(args, "figure_kind", None) is not None:
            raise SpecError("--figure-kind", args.figure_kind, "needs --figure FILE")
        return None
    kind = args.figure_kind or ("curves" if args.kind == "w2s" and args.simulate else TRANSFER_FIGURES[args.kind])
    if kind == "denoising" and args.simulate:
        raise SpecError("--figure-kind", kind, "needs the exact bias/variance split, which Monte Carlo does not have: "
                                               "draw curves or modes with --simulate")
    _check_image_path("--figure", args.figure, args)
    from .figures.style import matplotlib_module

    matplotlib_module()
    return kind


def _transfer_figure(kind: str, theory: Any, sim: Any, args: argparse.Namespace) -> tuple:
    """The image and data files of ``--figure``: the report drawn as ``kind`` (theory lines, and
    Monte Carlo markers with ``--simulate``)."""
    from .figures import kinds as K

    data = (K.denoising_data(theory) if kind == "denoising" else
            K.BUILDERS[kind](theory, sim))
    return _figure_output(K.render(data), args.figure, "--figure")


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


def _figure_writer(blob: bytes) -> Callable[[Any], None]:
    return lambda fh: fh.write(blob)


def _figure_output(fig: Any, path: str, flag: str, *, data: bool = True) -> tuple:
    """The ``(flag, path, write, binary)`` entries of a figure's image and data files."""
    from .figures import figure_files

    return tuple((flag, p, _figure_writer(blob), True) for p, blob in figure_files(fig, path, data=data).items())


def _check_image_path(flag: str, path: str, args: argparse.Namespace) -> None:
    """The image suffix, and the data files beside it must not be the scenario or another output."""
    from pathlib import Path

    from .figures import image_format

    image_format(path, flag)
    scenario = getattr(args, "scenario", None) or getattr(args, "data", None)
    others = {os.path.abspath(p) for _, p in _output_paths(args) if p != path}
    for side in (Path(path).with_suffix(".csv"), Path(path).with_suffix(".json")):
        if (scenario is not None and os.path.abspath(side) == os.path.abspath(scenario)) \
                or os.path.abspath(side) in others:
            raise SpecError(flag, path, f"its data file {str(side)!r} would overwrite the input or another "
                                        "output: name another image file")


def _figure_source(args: argparse.Namespace, kind: str):
    """What a ``figure`` draws: the comparison (``--kind``, the file's ``[transfer] kind``, or
    implied by KIND) or the file's scenario; ``None`` as the comparison for a plain scenario."""
    from .spec import read_scenario_file

    implied = {"denoising": "w2s", "chain": "chain"}.get(kind)
    file_kind = None
    data = read_scenario_file(args.scenario)
    if isinstance(data.get("transfer"), dict):
        file_kind = data["transfer"].get("kind")
    if implied and args.kind not in (None, implied):
        raise SpecError("--kind", args.kind, f"a {kind} figure draws a {implied} comparison")
    comparison = implied or args.kind or (file_kind if kind in ("curves", "modes", "map") else None)
    if kind == "map" and comparison is None:  # transfer_from_dict names the missing kind
        return _transfer_spec(args, None), True
    if comparison is not None and kind not in ("rates", "stability"):
        return _transfer_spec(args, comparison), True
    if args.kind is not None:
        raise SpecError("--kind", args.kind, f"a {kind} figure draws the file's models, not a comparison")
    for flag in (*ALL_ROLES, "alpha", "generations"):
        if getattr(args, flag, None) is not None:
            raise SpecError(f"--{flag}", getattr(args, flag),
                            f"is an option of a comparison; this {kind} figure draws the file's models"
                            + (" (--kind kd|w2s|chain draws a comparison)" if kind in ("curves", "modes") else ""))
    scenario = _load(args)
    return scenario, False


def _cmd_figure(args: argparse.Namespace) -> _Output:
    """``figure KIND SCENARIO``: compute, draw, write the image and its data files."""
    import dataclasses
    from pathlib import Path

    from .budget import simulation_estimate, theory_estimate, transfer_estimate
    from .figures.style import matplotlib_module

    kind = args.figure_kind
    if kind not in FIGURE_KINDS:
        raise SpecError("KIND", kind, f"must be one of {list(FIGURE_KINDS)}")
    matplotlib_module()  # before any work: the figures extra is installed
    if args.simulate and args.method is not None:
        raise SpecError("--method", args.method, "names a theory solver; --simulate adds Monte Carlo markers to "
                                                 "the theory and takes none")
    if args.simulate and kind not in ("curves", "modes", "chain"):
        raise SpecError("--simulate", True, "Monte Carlo markers are drawn on curves, modes and chain figures")
    for flag, attr, kinds in (("--x", "x", ("map",)), ("--y", "y", ("map",)), ("--metric", "metric", ("map",)),
                              ("--window", "window", ("rates",)), ("--expected", "expected", ("rates",)),
                              ("--axis", "axis", ("modes",)), ("--points", "points", ("curves", "rates")),
                              ("--models", "models", ("curves", "modes", "stability"))):
        if getattr(args, attr) is not None and kind not in kinds:
            raise SpecError(flag, getattr(args, attr), f"is an option of a {' or '.join(kinds)} figure")
    if args.split and kind != "curves":
        raise SpecError("--split", True, "is an option of a curves figure")
    out = args.figure_out or f"{Path(args.scenario).stem}-{kind}.png"
    args.figure_out = out
    _check_output_paths(args)
    _check_image_path("--out", out, args)
    from .figures.style import check_style, check_width

    style = check_style(args.style or "default")
    width = check_width(args.width)
    points = 80 if args.points is None else args.points
    if points < 2:
        raise SpecError("--points", points, "must be an integer >= 2")
    source, is_transfer = _figure_source(args, kind)
    if kind == "rates" and args.expected is None:  # before any work: is there a predicted exponent?
        desc = source.problem.describe()
        if desc["spectrum"]["kind"] != "powerlaw" or desc["target"]["kind"] != "powerlaw":
            raise SpecError("--expected", None, "is needed: the scenario is not a power law, so there is no "
                                                "predicted exponent to compare the fitted slope with")
    method = args.method or "auto"
    reps = args.reps if args.reps is not None else API_DEFAULTS["reps"]
    if kind in ("curves", "rates"):
        from .spec import Output

        source = dataclasses.replace(source, output=Output(points=points))
    if is_transfer:
        evaluations = len(_parse_values(args.x)[1]) * len(_parse_values(args.y)[1]) if kind == "map" and args.x \
            and args.y else 1
        _check_memory(args, transfer_estimate(source, method, simulate=args.simulate, reps=reps,
                                              evaluations=evaluations, what=f"this {kind} figure"),
                      scenario=next(iter(source.lineages().values())), method=method)
        _check_time(args, evaluations * _transfer_seconds(source, method)
                    + (_transfer_seconds(source, method, True, reps) if args.simulate else 0.0),
                    f"this {kind} figure", announce=not args.simulate)
    else:
        est = theory_estimate(source, method, what=f"this {kind} figure")
        if args.simulate:
            est = est + simulation_estimate(source, reps)
        _check_memory(args, est, scenario=source, method=method)
    from .figures import kinds as K

    common = {"style": style, "width": width}
    mc = {"simulate": args.simulate, "reps": reps, **_given(args, "seed", "progress")}
    try:
        if kind == "curves":
            data = K.curves_data(source, method=method, split=args.split, models=args.models, **mc, **common)
        elif kind == "modes":
            data = K.modes_data(source, method=method, models=args.models, axis=args.axis or "index", **mc, **common)
        elif kind == "denoising":
            data = K.denoising_data(source, method=method, **common)
        elif kind == "map":
            if args.x is None or args.y is None:
                raise SpecError("--x/--y", args.x if args.x is None else args.y,
                                "a map figure needs both, e.g. --x teacher.steps=100,1000 --y noise=0.1,1")
            data = K.map_data(source, _parse_values(args.x), _parse_values(args.y), method=method,
                              progress=args.progress, **_given(args, "metric"), **common)
        elif kind == "chain":
            data = K.chain_data(source, method=method, **mc, **common)
        elif kind == "rates":
            window = None
            if args.window is not None:
                try:
                    window = tuple(float(v) for v in args.window.split(","))
                except ValueError:
                    window = ()
                if len(window) != 2 or not 0 < window[0] < window[1]:
                    raise SpecError("--window", args.window, "must be LO,HI with 0 < LO < HI (steps)")
            if args.expected is not None and not math.isfinite(args.expected):
                raise SpecError("--expected", args.expected, "must be a finite exponent")
            data = K.rates_data(source, window=window, expected=args.expected, method=method, **common)
        else:
            data = K.stability_data(source, models=args.models, method=method, progress=args.progress, **common)
    except SpecError as err:  # an option of the figure: name the flag
        if err.field not in ("models", "metric"):
            raise
        raise SpecError(f"--{err.field}", err.value, err.allowed) from None
    fig = K.render(data)
    files = _figure_output(fig, out, "--out")
    lines = [f"{kind} figure ({data.method}): wrote {', '.join(p for _, p, *_ in files)}", *K.summary(data)]
    return _Output("\n".join(lines) + "\n", files=files)


def _cmd_replot(args: argparse.Namespace) -> _Output:
    """``replot DATA.json``: redraw from the data files, nothing recomputed."""
    from pathlib import Path

    from .figures import replot
    from .figures.data import read_data
    from .figures.style import check_style, check_width

    data = read_data(args.data)
    out = args.figure_out or str(Path(args.data).with_suffix(".png"))
    args.figure_out = out
    _check_output_paths(args)
    from .figures import image_format

    image_format(out, "--out")
    if os.path.abspath(out) == os.path.abspath(args.data):
        raise SpecError("--out", out, "is the data file: name an image file")
    overrides = {}
    if args.style is not None:
        overrides["style"] = check_style(args.style)
    if args.width is not None:
        overrides["width"] = check_width(args.width)
    if args.axis is not None:
        if data.kind != "modes":
            raise SpecError("--axis", args.axis, f"is an option of a modes figure; this is a {data.kind} figure")
        overrides["axis"] = args.axis
    fig = replot(args.data, **overrides)
    files = _figure_output(fig, out, "--out", data=False)
    return _Output(f"replotted the {data.kind} figure of {args.data} (no recomputation): wrote {out}\n",
                   files=files)


def _cmd_gallery(args: argparse.Namespace) -> _Output:
    """``gallery --out DIR``: every standard figure, its data and ``index.md``."""
    from pathlib import Path

    from .figures.gallery import MC_REPS, build_gallery
    from .figures.style import matplotlib_module

    matplotlib_module()
    out = Path(args.gallery_dir)
    if out.exists() and not out.is_dir():
        raise SpecError("--out", args.gallery_dir, "is not a directory: the gallery writes a directory of files")
    parent = out.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise SpecError("--out", args.gallery_dir, f"lies under {str(parent)!r}, which is not a directory")
    from .figures import FORMATS
    from .figures.gallery import select_entries
    from .figures.style import check_style, check_width

    formats = [f.strip().lower().lstrip(".") for f in (args.formats or "png").split(",")]
    if not formats or any(f not in FORMATS for f in formats) or len(set(formats)) != len(formats):
        raise SpecError("--formats", args.formats, f"must be one or more of {list(FORMATS)}, each once")
    try:
        check_style(args.style or "default")
        check_width(args.width)
        select_entries(args.only, args.simulate)
    except SpecError as err:
        raise SpecError(f"--{err.field}", err.value, err.allowed) from None
    if args.reps is not None and args.reps < 2:
        raise SpecError("--reps", args.reps, "must be an integer >= 2")
    if args.seed is not None and args.seed < 0:
        raise SpecError("--seed", args.seed, "must be an integer >= 0")
    files = build_gallery(out, formats=formats, simulate=args.simulate,
                          reps=args.reps if args.reps is not None else MC_REPS,
                          seed=args.seed if args.seed is not None else 0, only=args.only,
                          style=args.style or "default", width=args.width, progress=args.progress, write=False)
    entries = tuple(("--out", p, _figure_writer(blob), True) for p, blob in files.items())
    images = sum(1 for p in files if not p.endswith((".csv", ".json", ".md")))
    args.mkdir = True  # the directory is created if missing (and removed again if writing fails)
    return _Output(f"gallery: wrote {images} images, their data files and {out / 'index.md'}\n", files=entries)


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
