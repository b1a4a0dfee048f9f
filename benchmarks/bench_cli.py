"""End-to-end wall time of the command line as a user runs it: a fresh ``spectral-theory``
process per call, interpreter start, imports, the solve and the output file all included.

    python benchmarks/bench_cli.py            # full run (about 50 s)
    python benchmarks/bench_cli.py --quick    # smaller sizes, one repeat: a smoke run

Problem (as ``bench_renewal.py``): power-law spectrum ``lambda_i = i^-1.5``, target
``theta_i^2 = i^-2``, label noise ``sigma2 = 0.1``, Gaussian latents, batch 1, constant step
0.25, 200 log-spaced checkpoints per model; scenario files are written to a temporary folder
and each output goes to a file there (``--out``). Each command runs ``--repeats`` times
(default 3); the median is printed next to its target and the ratio (below 1 meets it).

* ``--help`` (target 0.2 s);
* ``run`` at d = 10^5, T = 10^8 (renewal): table, JSON (target 0.4 s each); JSON with the
  per-mode arrays (``--modes``, 5 x 10^5 numbers) and JSON with the ``--npz`` sidecar instead,
  for comparison (opt-in, no target);
* ``kd`` (teacher -> student on soft labels, same capacity) and ``w2s`` (teacher of capacity
  d/100 -> full-capacity student) at d = 10^5, 10^8 steps per model (target 2 s each);
* ``kd`` at d = 10^4, 10^7 steps per model (target 1 s).

The console script is the one installed next to this interpreter (``bin/spectral-theory``),
else the first on ``PATH`` (a version manager's shim on ``PATH`` adds its own start-up cost).
Each command runs once untimed first. Python's bytecode cache is on, as in a user's
installation, even where the environment turns it off (``PYTHONDONTWRITEBYTECODE``: every
import would compile its module again, about 0.1 s for this package); the cache goes to a
temporary folder (``PYTHONPYCACHEPREFIX``), not into the source tree. ``--env-as-is`` keeps
the environment unchanged.

``--against REV`` runs the same commands, in the same run, with the package as it was at git
revision ``REV`` (exported with ``git archive`` to a temporary folder and run through its own
``cli.main``, one timed run after an untimed one, at most ``--timeout`` seconds each: ``>T``
when it did not finish),
and prints the speed-up; an option that revision does not know (``--modes``, ``--npz``) is
shown as ``n/a``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROBLEM = """[problem]
spectrum = {{ kind = "powerlaw", a = 1.5, d = {d} }}
target = {{ kind = "powerlaw", b = 2.0 }}
noise = 0.1
"""
OUTPUT = """
[output]
points = 200
"""


def model(name: str, T: int, capacity: int | None = None) -> str:
    cap = f"capacity = {capacity}\n" if capacity else ""
    return f"\n[[models]]\nname = \"{name}\"\nsteps = {T}\nlr = 0.25\n{cap}"


def single_file(folder: Path, d: int, T: int) -> Path:
    path = folder / f"run_d{d}_T{T}.toml"
    path.write_text(PROBLEM.format(d=d) + model("m", T) + OUTPUT)
    return path


def transfer_file(folder: Path, d: int, T: int) -> Path:
    """Roles for ``kd`` (teacher, student) and ``w2s`` (weak, strong) in one file."""
    path = folder / f"transfer_d{d}_T{T}.toml"
    path.write_text(PROBLEM.format(d=d) + model("teacher", T) + model("student", T)
                    + model("weak", T, capacity=max(1, d // 100))
                    + '\n[transfer]\nteacher = "teacher"\nstudent = "student"\nweak = "weak"\n'
                      'strong = "student"\n' + OUTPUT)
    return path


def console_script() -> str:
    here = Path(sys.executable).parent / "spectral-theory"
    found = str(here) if here.exists() else shutil.which("spectral-theory")
    if not found:
        sys.exit("spectral-theory is not installed (README: Set-up)")
    return found


def user_env(folder: Path) -> dict[str, str]:
    """The environment with Python's bytecode cache on, kept in ``folder``."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(folder / "pycache")
    return env


def wall(cmd: list[str], repeats: int, env: dict[str, str] | None, *, timeout: float | None = None,
         warm: bool = True) -> float | None:
    """Median wall-clock seconds of ``cmd`` over ``repeats`` fresh processes, after one untimed run
    (``warm``); None when a run takes longer than ``timeout``."""
    times = []
    for k in range(repeats + int(warm)):
        t0 = time.perf_counter()
        try:
            r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
                               timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        if k or not warm:
            times.append(time.perf_counter() - t0)
        if r.returncode != 0:
            sys.exit(f"{' '.join(cmd)} failed:\n{r.stderr}")
    return statistics.median(times)


def export_revision(rev: str, folder: Path, env: dict[str, str] | None) -> list[str]:
    """The package at git revision ``rev`` exported to ``folder`` and byte-compiled (as an
    installation would be); the command prefix that runs its command line."""
    root = Path(__file__).resolve().parent.parent
    folder.mkdir()
    archive = subprocess.run(["git", "-C", str(root), "archive", rev, "spectral_theory"], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(folder)], check=True, env=env)
    code = (f"import sys; sys.path.insert(0, {str(folder)!r}); "
            "from spectral_theory.cli import main; sys.exit(main(sys.argv[1:]))")
    return [sys.executable, "-c", code]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smaller sizes, one repeat (smoke run)")
    ap.add_argument("--repeats", type=int, help="runs per command, median reported (default 3; 1 with --quick)")
    ap.add_argument("--env-as-is", action="store_true",
                    help="keep the environment as it is (default: bytecode cache on, in a temporary folder)")
    ap.add_argument("--against", metavar="REV", help="also run every command with the package at git revision REV")
    ap.add_argument("--timeout", type=float, default=60.0,
                    help="seconds allowed per command of --against (default 60)")
    args = ap.parse_args()
    repeats = args.repeats or (1 if args.quick else 3)
    exe = console_script()
    (d_big, T_big), (d_small, T_small) = ((10**3, 10**5), (10**2, 10**4)) if args.quick else \
        ((10**5, 10**8), (10**4, 10**7))
    print(f"# {exe}; median of {repeats} run(s) each after one untimed run; "
          + ("environment as it is" if args.env_as_is else "bytecode cache on")
          + ("; --quick: smaller sizes, targets do not apply" if args.quick else ""))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        env = None if args.env_as_is else user_env(folder)
        run = str(single_file(folder, d_big, T_big))
        pair = str(transfer_file(folder, d_big, T_big))
        small = str(transfer_file(folder, d_small, T_small))
        out = ["--out", str(folder / "out")]
        cases = [
            ("--help", ["--help"], 0.2),
            (f"run d={d_big:.0e} T={T_big:.0e}, table", ["run", run, *out], 0.4),
            (f"run d={d_big:.0e} T={T_big:.0e}, JSON", ["run", run, "--format", "json", *out], 0.4),
            (f"run d={d_big:.0e} T={T_big:.0e}, JSON --modes", ["run", run, "--format", "json", "--modes", *out],
             None),
            (f"run d={d_big:.0e} T={T_big:.0e}, JSON --npz", ["run", run, "--format", "json", *out, "--npz",
                                                                str(folder / "out.npz")], None),
            (f"kd d={d_big:.0e} T={T_big:.0e} per model", ["kd", pair, *out], 2.0),
            (f"w2s d={d_big:.0e} T={T_big:.0e} per model", ["w2s", pair, *out], 2.0),
            (f"kd d={d_small:.0e} T={T_small:.0e} per model", ["kd", small, *out], 1.0),
        ]
        old = export_revision(args.against, folder / "against", env) if args.against else None
        width = max(len(c[0]) for c in cases)
        head = f"{'command':<{width}}  {'seconds':>8}  {'target':>7}  {'ratio':>6}"
        if old:
            head += f"  {args.against[:10]:>10}  {'speed-up':>8}"
        print(head)
        for name, argv, target in cases:
            s = wall([exe, *argv], repeats, env)
            tgt, ratio = ("-", "-") if target is None or args.quick else (f"{target:g} s", f"{s / target:.2f}")
            line = f"{name:<{width}}  {s:>8.3f}  {tgt:>7}  {ratio:>6}"
            if old:
                if "--modes" in argv or "--npz" in argv:
                    line += f"  {'n/a':>10}  {'-':>8}"
                else:
                    before = wall([*old, *argv], 1, env, timeout=args.timeout)
                    line += (f"  {'>' + format(args.timeout, 'g'):>10}  {'>' + format(args.timeout / s, '.0f'):>8}"
                             if before is None else f"  {before:>10.3f}  {before / s:>8.1f}")
            print(line, flush=True)


if __name__ == "__main__":
    main()
