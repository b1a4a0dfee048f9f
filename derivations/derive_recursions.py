"""Derive the per-mode moment recursions and regenerate their two outputs.

    python derivations/derive_recursions.py           # write both outputs
    python derivations/derive_recursions.py --check   # exit 1 if either differs on disk

Outputs (both generated, never edited by hand):

- ``spectral_theory/_generated.py``: the numpy-ready recursions the engine calls;
- ``derivations/moment_recursions.md``: the derivation document.

Before writing, the script runs every check of the derivation: the rank-one
extraction at D = 2, 3, 4 with identical results, m3 dropping out, no surviving
cross-mode error product, equality with THEORY.md section 4, and the
fourth-moment identity. Any failure raises and nothing is written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from spectral_theory.symbolic import derive  # noqa: E402
from spectral_theory.symbolic.outputs import write_outputs  # noqa: E402


def outputs() -> dict[Path, str]:
    """Path -> generated text, for both outputs."""
    return {
        ROOT / derive.MODULE_PATH: derive.generate_module(),
        ROOT / derive.DOCUMENT_PATH: derive.generate_document(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--check",
        action="store_true",
        help="do not write; exit 1 if an output on disk differs from what would be generated",
    )
    args = parser.parse_args(argv)

    derive.verify_quartic_identity(3)
    derive.check_d_independence((2, 3, 4))
    for D in (2, 3, 4):
        derive._matches_theory_md(D)

    return write_outputs(outputs(), ROOT, check=args.check, regenerate="python derivations/derive_recursions.py")


if __name__ == "__main__":
    raise SystemExit(main())
