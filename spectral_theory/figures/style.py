"""Figure styles: the ``default`` screen style and the ``paper`` style (``docs/figures.md``).

Both use the Okabe-Ito palette (distinguishable under the common colour-vision
deficiencies; Okabe & Ito 2008) and axis labels that name the project's conventions
(``docs/conventions.md``): the excess risk is not halved, step sizes are batch-mean, each
model counts its own steps. ``paper`` sets serif text with Computer-Modern mathtext at 8 pt
and the single-column (3.4 in) or double-column (7.0 in) width of two-column journals.
Matplotlib is imported by the functions that draw, never by this module.
"""

from __future__ import annotations

from typing import Any

from ..errors import SpecError

__all__ = ["STYLES", "WIDTHS", "PALETTE", "LABELS", "rc_params", "figure_size", "check_style", "check_width",
           "colour", "matplotlib_module"]

#: Okabe-Ito colour-blind-safe palette (black last: used for references and limits)
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000")

#: figure widths in inches: a column of a two-column journal and the full text width
WIDTHS = {"single": 3.4, "double": 7.0}

_COMMON: dict[str, Any] = {
    "axes.prop_cycle": None,  # set in rc_params (needs matplotlib's cycler)
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.frameon": False,
    "savefig.bbox": "tight",
    "savefig.pad_inches": 0.02,
    "svg.hashsalt": "spectral-theory",  # deterministic SVG ids
    "pdf.fonttype": 42,  # TrueType fonts in PDF (editable, accepted by publishers)
    "ps.fonttype": 42,
    "image.cmap": "viridis",
}

#: the styles: rcParams beyond :data:`_COMMON`, the default width (a key of :data:`WIDTHS` or
#: inches) and the aspect ratio height / width
STYLES: dict[str, dict[str, Any]] = {
    "default": {"rc": {"font.size": 10, "axes.titlesize": 10, "legend.fontsize": 8, "figure.dpi": 100,
                       "savefig.dpi": 150, "lines.linewidth": 1.6, "lines.markersize": 5},
                "width": 6.4, "aspect": 0.66},
    "paper": {"rc": {"font.family": "serif", "font.serif": ["DejaVu Serif", "Times New Roman", "Times"],
                     "mathtext.fontset": "cm", "font.size": 8, "axes.titlesize": 8, "axes.labelsize": 8,
                     "legend.fontsize": 7, "xtick.labelsize": 7, "ytick.labelsize": 7,
                     "lines.linewidth": 1.2, "lines.markersize": 3.5, "axes.linewidth": 0.6,
                     "xtick.major.width": 0.6, "ytick.major.width": 0.6, "figure.dpi": 100,
                     "savefig.dpi": 300},
              "width": "single", "aspect": 0.75},
}

#: axis labels naming the conventions (docs/conventions.md)
LABELS = {
    "step": r"SGD step $t$ (each model counts its own)",
    "risk": r"excess risk $\mathcal{E}$ (not halved)",
    "final_risk": r"final excess risk $\mathcal{E}(T)$ (not halved)",
    "normalised": r"normalised error $M_{ii}/\theta_i^2$",
    "mode": r"mode index $i$ ($\lambda_i$ decreasing)",
    "lambda": r"eigenvalue $\lambda_i$",
    "variance_part": r"variance part of $M_{ii}$ (label-noise driven)",
    "lr": r"constant step size $\eta$ (batch-mean)",
    "generation": r"generation $g$",
    "horizon": r"spectral horizon (modes with $M_{ii}/\theta_i^2 \leq 1/2$)",
}


def matplotlib_module() -> Any:
    """matplotlib, or a :class:`SpecError` saying how to install it (the ``figures`` extra)."""
    try:
        import matplotlib
    except ImportError:
        raise SpecError("figures", "matplotlib", "is not installed: figures need the figures extra, "
                                                 "pip install 'spectral-theory[figures]' (or matplotlib >= 3.8)") from None
    return matplotlib


def check_style(style: Any) -> str:
    """``style`` if it names a style of :data:`STYLES`, else a :class:`SpecError`."""
    if not isinstance(style, str) or style not in STYLES:
        raise SpecError("style", style, f"must be one of {sorted(STYLES)}")
    return style


def check_width(width: Any) -> float | None:
    """A figure width: ``None`` (the style's), ``"single"``/``"double"`` or inches in (0, 40]."""
    if width is None:
        return None
    if isinstance(width, str):
        if width in WIDTHS:
            return WIDTHS[width]
        try:
            width = float(width)
        except ValueError:
            raise SpecError("width", width, f"must be one of {sorted(WIDTHS)} or a width in inches") from None
    if isinstance(width, bool) or not isinstance(width, (int, float)) or not 0 < width <= 40:
        raise SpecError("width", width, f"must be one of {sorted(WIDTHS)} or a width in inches in (0, 40]")
    return float(width)


def figure_size(style: str, width: Any = None, aspect: float | None = None) -> tuple[float, float]:
    """(width, height) in inches for a figure of ``style``."""
    s = STYLES[check_style(style)]
    w = check_width(width)
    if w is None:
        w = WIDTHS[s["width"]] if isinstance(s["width"], str) else float(s["width"])
    return w, w * (aspect if aspect is not None else s["aspect"])


def rc_params(style: str) -> dict[str, Any]:
    """The rcParams of ``style`` (imports matplotlib's cycler)."""
    from cycler import cycler

    rc = dict(_COMMON)
    rc["axes.prop_cycle"] = cycler(color=list(PALETTE))
    rc.update(STYLES[check_style(style)]["rc"])
    return rc


def colour(k: int) -> str:
    """The ``k``-th colour of the palette (black left for references)."""
    return PALETTE[k % (len(PALETTE) - 1)]
