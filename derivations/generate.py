"""Derive the recursions and the asymptotics with sympy and regenerate every generated file.

    python derivations/generate.py            # write the outputs that differ
    python derivations/generate.py --check    # write nothing; exit 1 if an output is stale
    python derivations/generate.py --only asymptotics

Outputs (generated, never edited by hand):

- ``spectral_theory/solvers/kernels.py``: the numpy recursions the solvers call;
- ``derivations/moment_recursions.md``: the derivation of the recursions;
- ``derivations/asymptotics.md``: the power-law asymptotics of the renewal equation;
- ``derivations/variants.md``: the moment steps of iterate averaging and momentum, checked
  against the numeric kernels of ``spectral_theory/solvers/variant_kernels.py``.

Every derivation step carries its own checks (the rank-one extraction at D = 2, 3, 4 with
identical results, m3 dropping out, equality with ``docs/theory.md`` §4, the fourth-moment
identity, antiderivatives by differentiation, transforms against the time-domain recursion,
...); a failed check raises and nothing is written. The outputs are deterministic.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _recursions() -> dict[str, str]:
    from spectral_theory import symbolic

    symbolic.verify_quartic_identity(3)
    symbolic.check_d_independence((2, 3, 4))
    for D in (2, 3, 4):
        symbolic.check_against_spec(D)
    return {symbolic.MODULE_PATH: symbolic.generate_module(),
            symbolic.DOCUMENT_PATH: symbolic.generate_document()}


def _asymptotics() -> dict[str, str]:
    from spectral_theory.symbolic import asymptotics

    return {asymptotics.DOCUMENT_PATH: asymptotics.generate_document()}


def _variants() -> dict[str, str]:
    from spectral_theory.symbolic import variants

    return {variants.DOCUMENT_PATH: variants.generate_document()}


#: group name -> function returning {path relative to the root: generated text}
GROUPS: dict[str, Callable[[], dict[str, str]]] = {"recursions": _recursions, "asymptotics": _asymptotics,
                                                   "variants": _variants}


def write_outputs(outputs: dict[str, str], root: Path, *, check: bool) -> int:
    """Write each ``path -> text`` that differs on disk, or with ``check`` only report it;
    returns 1 when ``check`` finds a stale file, else 0."""
    stale = []
    for rel, text in outputs.items():
        path = root / rel
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            print(f"up to date: {rel}")
        elif check:
            stale.append(rel)
            print(f"STALE: {rel} differs from the generator's output", file=sys.stderr)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "w", encoding="utf-8", newline="\n") as fh:
                fh.write(text)
            print(f"wrote: {rel}")
    if stale:
        print("run: python derivations/generate.py", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None, *, root: Path = ROOT) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 if an output on disk differs from what would be generated")
    parser.add_argument("--only", choices=sorted(GROUPS), action="append",
                        help="regenerate only this group (repeatable; default: all)")
    args = parser.parse_args(argv)
    outputs: dict[str, str] = {}
    for name in args.only or GROUPS:
        outputs.update(GROUPS[name]())
    return write_outputs(outputs, root, check=args.check)


if __name__ == "__main__":
    raise SystemExit(main())
