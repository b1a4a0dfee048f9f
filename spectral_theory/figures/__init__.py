"""Paper figures (``docs/figures.md``): seven kinds, each drawn from a tidy data file.

Every public figure function returns a matplotlib ``Figure`` (drawn into ``ax`` when one is
given) whose ``spectral_data`` is the :class:`FigureData` it was drawn from:

* :func:`curves` (excess risk against steps; Monte Carlo markers with ``±2`` SE; oracle stops),
* :func:`modes` (per-mode normalised error, horizons: spectral horizon expansion),
* :func:`denoising` (per-mode variance parts of weak teacher and strong student),
* :func:`phase_map` (kind ``map``: a transfer metric over two parameters, neutral contour),
* :func:`chain` (risk and horizon per generation),
* :func:`rates` (log-log slopes against predicted exponents),
* :func:`stability` (final risk against the step size, stability limit marked).

:func:`save` writes the image (PDF, PNG or SVG, from the suffix) with ``NAME.csv`` and
``NAME.json`` beside it; :func:`replot` redraws from the JSON record with other styling and
no recomputation; :func:`build_gallery` builds the standard set with captions. Figures are
drawn on ``matplotlib.figure.Figure`` objects (no pyplot, no display: headless), and
matplotlib is imported only when a figure is drawn.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

from ..errors import SpecError

__all__ = ["KINDS", "FORMATS", "FigureData", "curves", "modes", "denoising", "phase_map", "chain", "rates",
           "stability", "render", "save", "figure_files", "image_bytes", "replot", "read_data", "build_gallery",
           "GALLERY"]

#: image formats by suffix
FORMATS = ("pdf", "png", "svg")

_LAZY = {**dict.fromkeys(("curves", "modes", "denoising", "phase_map", "chain", "rates", "stability", "render",
                          "KINDS", "BUILDERS", "NEUTRAL"), "kinds"),
         **dict.fromkeys(("FigureData", "read_data"), "data"),
         **dict.fromkeys(("build_gallery", "GALLERY"), "gallery")}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def image_format(path: str | os.PathLike, field: str = "path") -> str:
    """The image format of ``path`` from its suffix (a :class:`SpecError` for another suffix)."""
    fmt = Path(path).suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise SpecError(field, str(path), f"must end in one of {['.' + f for f in FORMATS]} (the image format)")
    return fmt


def _data_of(fig: Any) -> Any:
    data = getattr(fig, "spectral_data", None)
    if data is None:
        raise SpecError("figure", type(fig).__name__, "must be a Figure returned by spectral_theory.figures")
    return data


def image_bytes(fig: Any, fmt: str) -> bytes:
    """``fig`` rendered as ``fmt`` (``pdf``, ``png``, ``svg``) with its style's settings and no
    creation date (identical inputs give identical files)."""
    import io

    from .style import matplotlib_module, rc_params

    matplotlib = matplotlib_module()

    if fmt not in FORMATS:
        raise SpecError("format", fmt, f"must be one of {list(FORMATS)}")
    meta = {"pdf": {"CreationDate": None, "Producer": None}, "svg": {"Date": None}, "png": {"Software": None}}[fmt]
    import logging

    # fontTools (font subsetting for PDF) warns about the fonts' own old timestamps
    logging.getLogger("fontTools").setLevel(logging.ERROR)
    buf = io.BytesIO()
    with matplotlib.rc_context(rc_params(_data_of(fig).options.get("style", "default"))):
        fig.savefig(buf, format=fmt, metadata=meta)
    return buf.getvalue()


def figure_files(fig: Any, path: str | os.PathLike, *, data: bool = True) -> dict[str, bytes]:
    """``{path: contents}`` of a figure's files: the image at ``path`` (format from its suffix)
    and, with ``data``, ``NAME.csv`` and ``NAME.json`` beside it (:mod:`.data`)."""
    from .data import data_texts

    fmt = image_format(path)
    out = {str(path): image_bytes(fig, fmt)}
    if data:
        out.update({p: t.encode("utf-8") for p, t in data_texts(_data_of(fig), path).items()})
    return out


def write_atomically(files: dict[str, bytes]) -> None:
    """Write every ``{path: bytes}`` all or nothing: temporary files beside each path, renamed
    only when all are complete (removed on any failure)."""
    import tempfile

    temps: list[tuple[str, str]] = []
    try:
        for path, blob in files.items():
            target = Path(path)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
            temps.append((tmp, path))
            mask = os.umask(0)
            os.umask(mask)
            os.fchmod(fd, 0o666 & ~mask)
            with os.fdopen(fd, "wb") as fh:
                fh.write(blob)
        for tmp, path in temps:
            os.replace(tmp, path)
    except BaseException:
        for tmp, _ in temps:
            Path(tmp).unlink(missing_ok=True)
        raise


def save(fig: Any, path: str | os.PathLike, *, data: bool = True) -> list[str]:
    """Write ``fig`` to ``path`` (PDF, PNG or SVG from the suffix) and its data files beside it
    (``NAME.csv``, ``NAME.json``; ``data=False``: the image only), atomically; returns the
    paths written."""
    files = figure_files(fig, path, data=data)
    write_atomically(files)
    return list(files)


def replot(record: str | os.PathLike, *, ax: Any = None, **overrides: Any):
    """Redraw a figure from its JSON record (and the CSV beside it) without recomputing;
    ``overrides`` change the drawing options (``style="paper"``, ``width="double"``, the kind's
    own such as ``axis="lambda"``). Returns the ``Figure``."""
    from .data import read_data
    from .kinds import render

    data = read_data(record)
    try:
        return render(data, ax, **overrides)
    except SpecError:
        raise
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as err:  # an edited record
        what = f"no {err}" if isinstance(err, KeyError) else str(err).splitlines()[0] if str(err) else ""
        raise SpecError("figure data", str(record),
                        f"cannot be drawn as a {data.kind} figure: its annotations, options or rows do not fit "
                        f"together ({type(err).__name__}: {what}); draw it again with the figure command") from None
