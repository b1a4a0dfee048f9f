"""Derive the power-law asymptotics of the renewal equation and regenerate their document.

    python derivations/derive_asymptotics.py           # write derivations/asymptotics.md
    python derivations/derive_asymptotics.py --check   # exit 1 if the file on disk differs

Output (generated, never edited by hand): ``derivations/asymptotics.md``, from
``spectral_theory/symbolic/asymptotics.py``. Every derivation step carries its
own checks (substitution, antiderivative by differentiation, agreement with
THEORY.md's incomplete-gamma formula, the z-transform against the time-domain
recursion, the final value against the steady state, ...); a failed check
raises and nothing is written. The output is deterministic.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from spectral_theory.symbolic import asymptotics  # noqa: E402


def outputs(root: Path = ROOT) -> dict[Path, str]:
    """Path -> generated text."""
    return {root / asymptotics.DOCUMENT_PATH: asymptotics.generate_document()}


def main(argv: list[str] | None = None, *, root: Path = ROOT) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--check",
        action="store_true",
        help="do not write; exit 1 if the output on disk differs from what would be generated",
    )
    args = parser.parse_args(argv)
    stale = []
    for path, text in outputs(root).items():
        rel = path.relative_to(root)
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            print(f"up to date: {rel}")
            continue
        if args.check:
            stale.append(rel)
            print(f"STALE: {rel} differs from the generator's output", file=sys.stderr)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "w", encoding="utf-8", newline="\n") as fh:
                fh.write(text)
            print(f"wrote: {rel}")
    if stale:
        print("run: python derivations/derive_asymptotics.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
