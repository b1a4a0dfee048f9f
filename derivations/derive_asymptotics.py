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
from spectral_theory.symbolic.outputs import write_outputs  # noqa: E402


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
    return write_outputs(outputs(root), root, check=args.check, regenerate="python derivations/derive_asymptotics.py")


if __name__ == "__main__":
    raise SystemExit(main())
