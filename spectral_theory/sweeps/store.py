"""The output directory of a sweep: crash-safe part files keyed by content hashes, and the
tables assembled from them (``docs/sweeps.md``, "Output directory").

* ``parts/<batch hash>.json``: the rows of one finished batch (``{point hash: row}`` and the
  curve rows), written by the driver as results arrive: to a temporary file in the same
  directory, flushed and fsynced, then renamed (an atomic replace), so a part file is whole
  or absent. Only ``*.json`` files of ``parts/`` are read (temporary files are named
  ``.tmp-*`` and removed on the next start); a part that cannot be parsed is renamed
  ``*.corrupt`` and its points are computed again.
* ``results.parquet`` (or ``.csv``), ``curves.parquet`` (or ``.csv``) and ``manifest.json``:
  assembled from the parts for the current design, one row per design point, written
  atomically too.
* ``.lock``: an advisory lock (``flock``) held while a driver writes the directory; a second
  driver on the same directory is refused. The kernel releases it when a driver dies.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from pathlib import Path
from typing import Any

from ..errors import SpecError

__all__ = ["Store", "atomic_write", "read_table", "RESULT_FIRST"]

#: the leading columns of a results table (after the design fields come these)
RESULT_FIRST = ("status", "error_type", "error", "method", "warnings")


def atomic_write(path: Path, write: Any, *, binary: bool = False) -> None:
    """Write ``path`` whole or not at all: ``write(fh)`` into a temporary file beside it,
    flush, fsync, rename over ``path``, fsync the directory."""
    path = Path(path)
    tmp = path.parent / f".tmp-{path.name}-{os.getpid()}"
    try:
        with open(tmp, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8"})) as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    with contextlib.suppress(OSError):
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _json_default(v: Any) -> Any:
    raise TypeError(f"not JSON serialisable: {type(v).__name__}")


class Store:
    """One sweep's output directory (module docstring); ``with Store(path) as st: ...`` holds
    its lock."""

    def __init__(self, root: str | Path, fmt: str = "parquet", subdir: str = "parts"):
        self.root = Path(root)
        self.fmt = fmt
        self.parts = self.root / subdir
        self._lock_fh: Any = None

    # ------------------------------------------------------------------ lock
    def __enter__(self) -> Store:
        import fcntl

        if self.root.exists() and not self.root.is_dir():
            raise SpecError("sweep output directory", str(self.root), "is not a directory")
        #: the directories this run creates (removed again if it fails before writing anything)
        self._created = [p for p in (*reversed(self.parts.parents), self.parts) if not p.exists()]
        self.parts.mkdir(parents=True, exist_ok=True)
        fh = open(self.root / ".lock", "a+")  # noqa: SIM115 - held until __exit__
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.close()
            raise SpecError("sweep output directory", str(self.root),
                            "is being written by another sweep (its .lock is held); wait for it or use "
                            "another directory") from None
        self._lock_fh = fh
        for stale in self.parts.glob(".tmp-*"):  # left by a driver killed while writing
            with contextlib.suppress(OSError):
                stale.unlink()
        for stale in self.root.glob(".tmp-*"):
            with contextlib.suppress(OSError):
                stale.unlink()
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        if exc_type is not None and self._created and not any(self.parts.iterdir()):
            # a run that failed before saving anything leaves no directory behind
            with contextlib.suppress(OSError):
                (self.root / ".lock").unlink()
            for p in reversed(self._created):
                with contextlib.suppress(OSError):
                    p.rmdir()
        if self._lock_fh is not None:
            self._lock_fh.close()
            self._lock_fh = None

    # ------------------------------------------------------------------ parts
    def write_part(self, name: str, doc: dict[str, Any]) -> None:
        """Write one part file atomically (``doc``: JSON-ready; NaN allowed)."""
        text = json.dumps(doc, allow_nan=True, default=_json_default, separators=(",", ":"))
        atomic_write(self.parts / f"{name}.json", lambda fh: fh.write(text))

    def read_parts(self) -> list[dict[str, Any]]:
        """Every whole part file (module docstring), in name order."""
        docs = []
        for p in sorted(self.parts.glob("*.json")):
            try:
                doc = json.loads(p.read_text(encoding="utf-8"))
                if not isinstance(doc, dict):
                    raise ValueError("not an object")
            except (ValueError, UnicodeDecodeError) as err:
                import warnings

                warnings.warn(f"sweep part file {str(p)!r} cannot be read ({err}); renamed to "
                              f"{p.name}.corrupt, its points are computed again", RuntimeWarning, stacklevel=2)
                with contextlib.suppress(OSError):
                    p.rename(p.with_name(p.name + ".corrupt"))
                continue
            docs.append(doc)
        return docs

    # ------------------------------------------------------------------ tables
    def table_path(self, stem: str) -> Path:
        return self.root / f"{stem}.{self.fmt}"

    def write_table(self, stem: str, df: Any) -> Path:
        """Write a DataFrame as ``<stem>.parquet`` (or ``.csv``) atomically, removing the
        other format's stale copy."""
        path = self.table_path(stem)
        if self.fmt == "parquet":
            atomic_write(path, lambda fh: df.to_parquet(fh, index=False), binary=True)
        else:
            atomic_write(path, lambda fh: df.to_csv(fh, index=False, float_format=None, lineterminator="\n"))
        other = self.root / f"{stem}.{'csv' if self.fmt == 'parquet' else 'parquet'}"
        with contextlib.suppress(OSError):
            other.unlink()
        return path

    def remove_table(self, stem: str) -> None:
        """Remove ``<stem>.parquet`` and ``<stem>.csv`` (a table the current sweep does not
        write, left by an earlier sweep in the same directory)."""
        for ext in ("parquet", "csv"):
            with contextlib.suppress(FileNotFoundError):
                (self.root / f"{stem}.{ext}").unlink()

    def write_manifest(self, doc: dict[str, Any]) -> None:
        text = json.dumps(doc, indent=2, allow_nan=False, default=str) + "\n"
        atomic_write(self.root / "manifest.json", lambda fh: fh.write(text))


def frame(rows: list[dict[str, Any]], first: list[str]) -> Any:
    """A DataFrame of ``rows`` with the columns ``first`` leading (then every other column in
    order of first appearance); a column whose values are all integers (or missing) is a
    nullable ``Int64``, one of numbers ``float64`` (missing: NaN), of booleans ``boolean``,
    anything else strings (lists and tables as JSON text, missing as "")."""
    import pandas as pd

    cols: dict[str, None] = dict.fromkeys(first)
    for r in rows:
        for k in r:
            cols.setdefault(k, None)
    data: dict[str, Any] = {}

    def missing(v: Any) -> bool:
        return v is None or (isinstance(v, float) and math.isnan(v))

    for c in cols:
        vals = [r.get(c) for r in rows]
        present = [v for v in vals if not missing(v)]
        if present and all(isinstance(v, bool) for v in present):
            data[c] = pd.array([None if missing(v) else v for v in vals], dtype="boolean")
        elif present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
            data[c] = pd.array([None if missing(v) else v for v in vals], dtype="Int64")
        elif present and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
            data[c] = pd.array([math.nan if missing(v) else float(v) for v in vals], dtype="float64")
        elif not present and c not in first:
            data[c] = pd.array([math.nan] * len(vals), dtype="float64")
        else:
            data[c] = pd.array(["" if missing(v) else (v if isinstance(v, str) else json.dumps(v, sort_keys=True))
                                for v in vals], dtype=object)
    return pd.DataFrame(data, columns=list(cols))


def column_types(df: Any) -> dict[str, str]:
    """``{column: "Int64" | "float64" | "boolean" | "object"}`` (the manifest's record, so that
    a CSV table reads back with its types)."""
    out = {}
    for c, t in df.dtypes.items():
        name = str(t)
        out[c] = name if name in ("Int64", "float64", "boolean") else "object"
    return out


def read_table(path: str | Path, stem: str = "results") -> Any:
    """A results table as a pandas DataFrame: ``path`` is a sweep's output directory (its
    ``<stem>.parquet`` or ``<stem>.csv``) or a table file. CSV files are read with the
    column types of ``manifest.json`` (integers as nullable ``Int64``) and exact floats."""
    import pandas as pd

    path = Path(path)
    manifest: dict[str, Any] = {}
    if path.is_dir():
        mpath = path / "manifest.json"
        if mpath.is_file():
            manifest = json.loads(mpath.read_text(encoding="utf-8"))
        for ext in ("parquet", "csv"):
            if (path / f"{stem}.{ext}").is_file():
                path = path / f"{stem}.{ext}"
                break
        else:
            raise SpecError("sweep output directory", str(path), f"holds no {stem}.parquet or {stem}.csv "
                                                                 "(has the sweep run?)")
    elif (path.parent / "manifest.json").is_file():
        manifest = json.loads((path.parent / "manifest.json").read_text(encoding="utf-8"))
    if not path.is_file():
        raise SpecError("sweep table", str(path), "must be an existing .parquet or .csv file or a sweep directory")
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    types = manifest.get("columns", {}).get(stem, {})
    # exact floats: pandas 3 parses them exactly by default (and deprecates the option)
    exact = {} if int(pd.__version__.split(".")[0]) >= 3 else {"float_precision": "round_trip"}
    df = pd.read_csv(path, **exact, keep_default_na=False,
                     na_values={c: [""] for c, t in types.items() if t != "object"},
                     dtype={c: ("Int64" if t == "Int64" else "boolean" if t == "boolean" else
                                "float64" if t == "float64" else object) for c, t in types.items()})
    return df
