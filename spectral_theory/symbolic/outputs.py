"""Writing (or checking) generated files, shared by the scripts under ``derivations/``."""

from __future__ import annotations

import sys
from pathlib import Path


def write_outputs(outputs: dict[Path, str], root: Path, *, check: bool, regenerate: str) -> int:
    """Write each ``path -> text`` that differs on disk, or with ``check`` only report it.

    Returns the exit status: 1 when ``check`` finds a stale file (the message says to run
    ``regenerate``), else 0.
    """
    stale = []
    for path, text in outputs.items():
        rel = path.relative_to(root)
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            print(f"up to date: {rel}")
            continue
        if check:
            stale.append(rel)
            print(f"STALE: {rel} differs from the generator's output", file=sys.stderr)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "w", encoding="utf-8", newline="\n") as fh:
                fh.write(text)
            print(f"wrote: {rel}")
    if stale:
        print(f"run: {regenerate}", file=sys.stderr)
        return 1
    return 0
