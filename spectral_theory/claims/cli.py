"""``spectral-theory check CLAIMS.toml``: run the claims of a file, print a table or JSON.

Exit status (``spectral_theory.cli``): 0 every claim holds on the points tried, 1 a claim is
violated (or undecided: no point of its domain could be evaluated), 2 bad input (one error line
naming the field, nothing written).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["run_check", "reports_table", "EXIT_VIOLATED"]

EXIT_VIOLATED = 1


def reports_table(reports: list[Any]) -> str:
    """One row per claim, then each claim's summary."""
    head = ["claim", "kind", "verdict", "worst ratio", "margin", "points", "certificate", "seconds"]
    rows = [head]
    for r in reports:
        worst = r.worst["ratio"] if r.worst is not None else None
        cert = r.certificate.status if r.certificate is not None else "-"
        rows.append([r.claim, r.kind, r.verdict.upper(), "-" if worst is None else f"{worst:.6g}",
                     "-" if r.margin is None else f"{r.margin:.4g}", str(r.points), cert, f"{r.seconds:.2f}"])
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    out = "\n".join(lines) + "\n\n" + "\n".join(r.summary() for r in reports)
    held = sum(r.verdict == "holds" for r in reports)
    bad = [r.claim for r in reports if r.violated]
    out += (f"\n{held} of {len(reports)} claims hold on the points tried"
            + (f"; VIOLATED: {', '.join(bad)}" if bad else "") + "\n")
    return out


def _write_witnesses(reports: list[Any], directory: str) -> list[str]:
    """Each violated claim's witness scenario as ``DIR/<claim>.json``, written atomically."""
    from ..errors import SpecError

    d = Path(directory)
    if not d.is_dir():
        raise SpecError("--witness-dir", directory, "must be an existing directory")
    written = []
    for r in reports:
        if not r.violated or r.witness is None:
            continue
        safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in r.claim)
        path = d / f"{safe}.json"
        fd, tmp = tempfile.mkstemp(dir=d, prefix=".witness-", suffix=".json")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(r.witness_text())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        written.append(str(path))
    return written


def run_check(args: argparse.Namespace) -> tuple[str, int]:
    """The text of ``check`` and its exit status (0 all hold, 1 a violation or an undecided claim)."""
    from ..errors import SpecError
    from .certify import CertificationError
    from .files import load_claims
    from .search import check

    if args.witness_dir and not Path(args.witness_dir).is_dir():
        raise SpecError("--witness-dir", args.witness_dir, "must be an existing directory")
    cf = load_claims(args.claims)
    chosen = cf.claims
    if args.only:
        names = [c.name for c in cf.claims]
        wanted = [n.strip() for n in args.only.split(",") if n.strip()]
        for n in wanted:
            if n not in names:
                raise SpecError("--only", n, f"must name claims of the file: {names}")
        chosen = [c for c in cf.claims if c.name in wanted]
    reports = []
    for c in chosen:
        opts = cf.options_for(c)
        for k in ("budget", "seed"):
            if getattr(args, k) is not None:
                opts[k] = getattr(args, k)
        if args.certify is not None:
            opts["certify"] = args.certify
        try:
            reports.append(check(c, **opts))
        except CertificationError as err:  # certify = true (flag or file) and it cannot be done
            raise SpecError("--certify" if args.certify else f"{c.name}.certify", True, f"cannot certify: {err}") from None
    if args.witness_dir:
        _write_witnesses(reports, args.witness_dir)
    status = EXIT_VIOLATED if any(r.verdict != "holds" for r in reports) else 0
    if args.format == "json":
        doc = {"claims": [r.to_dict() for r in reports], "all_hold": status == 0,
               "violated": [r.claim for r in reports if r.violated]}
        if not args.timings:
            for d in doc["claims"]:
                d.pop("seconds", None)
                if d.get("certificate"):
                    d["certificate"].pop("seconds", None)
        return json.dumps(doc, indent=2, allow_nan=False) + "\n", status
    return reports_table(reports), status
