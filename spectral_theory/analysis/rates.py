"""Asymptotic-rate checks by log-log slope fits (``docs/design.md``: tolerances that explain themselves, checks as public API).

``fit_loglog_slope`` fits ``log y = c + slope log t`` by least squares over a
window of ``t``; ``check_rate`` compares the fitted slope of a risk curve with
an expected exponent within a stated band and returns a tidy
:class:`RateCheck` record; ``rate_table`` renders several of them.

For a constant step ``tau = eta t``, so the slope against ``tau`` equals the
slope against the step count ``t``; windows are given in steps. For other
schedules pass ``(tau, values)`` and give the window in ``tau``.

The curves checked here are deterministic (theory), so the fit's ``stderr`` and
``r2`` measure the curvature of the curve within the window (how far it is
from a pure power law), not noise: a small ``stderr`` says the window is in the
asymptotic regime, a large one says the local slope still drifts.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

import numpy as np

__all__ = ["SlopeFit", "RateCheck", "fit_loglog_slope", "check_rate", "rate_table"]


class SlopeFit(NamedTuple):
    """Least-squares fit of ``log y`` against ``log t``: unpacks as ``slope, stderr, r2``."""

    slope: float
    stderr: float
    r2: float


def _select(t: np.ndarray, y: np.ndarray, window: tuple[float, float] | None) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(t, dtype=float).ravel()
    y = np.asarray(y, dtype=float).ravel()
    if t.shape != y.shape:
        raise ValueError(f"steps and values differ in length ({t.size} vs {y.size})")
    keep = np.isfinite(t) & np.isfinite(y) & (t > 0) & (y > 0)
    if window is not None:
        lo, hi = window
        if not (lo > 0 and hi > lo):
            raise ValueError(f"window must satisfy 0 < t_lo < t_hi, got {window!r}")
        keep &= (t >= lo) & (t <= hi)
    return t[keep], y[keep]


def fit_loglog_slope(steps: Any, values: Any, window: tuple[float, float] | None = None,
                     *, min_points: int = 3) -> SlopeFit:
    """Slope of ``log values`` against ``log steps`` over ``window = (t_lo, t_hi)`` (inclusive).

    Points with non-positive or non-finite step or value are dropped. Returns
    ``SlopeFit(slope, stderr, r2)``: ``stderr`` is the ordinary least-squares
    standard error of the slope (``nan`` with two points), ``r2`` the
    coefficient of determination. Raises ``ValueError`` if fewer than
    ``min_points`` points remain.
    """
    t, y = _select(np.asarray(steps), np.asarray(values), window)
    n = t.size
    if n < max(min_points, 2):
        raise ValueError(f"only {n} usable points in window {window!r}; need {max(min_points, 2)}")
    X, Y = np.log(t), np.log(y)
    xm, ym = X.mean(), Y.mean()
    sxx = float(np.sum((X - xm) ** 2))
    if sxx == 0:
        raise ValueError("all steps in the window are equal")
    slope = float(np.sum((X - xm) * (Y - ym)) / sxx)
    resid = Y - (ym + slope * (X - xm))
    ssr = float(np.sum(resid**2))
    sst = float(np.sum((Y - ym) ** 2))
    stderr = math.sqrt(ssr / (n - 2) / sxx) if n > 2 else math.nan
    r2 = 1.0 - ssr / sst if sst > 0 else 1.0
    return SlopeFit(slope, stderr, r2)


@dataclass(frozen=True)
class RateCheck:
    """Outcome of one rate check: fitted slope vs expected exponent within ``band``."""

    quantity: str
    model: str | None
    window: tuple[float, float]
    n_points: int
    slope: float
    stderr: float
    r2: float
    expected: float
    band: float
    passed: bool
    note: str = ""

    @property
    def deviation(self) -> float:
        """``slope - expected``."""
        return self.slope - self.expected

    def row(self) -> dict[str, Any]:
        """Tidy row (one dict) for tables and CSV."""
        out = asdict(self)
        out["window"] = f"[{self.window[0]:g}, {self.window[1]:g}]"
        out["deviation"] = self.deviation
        return out

    def __str__(self) -> str:
        status = "PASS" if self.passed else "FAIL"
        who = f"{self.model}: " if self.model else ""
        return (f"{status} {who}{self.quantity} slope {self.slope:+.4f} (stderr {self.stderr:.2g}, "
                f"r2 {self.r2:.5f}, {self.n_points} pts in t in [{self.window[0]:g}, "
                f"{self.window[1]:g}]) vs expected {self.expected:+.4f} +- {self.band:g} "
                f"(deviation {self.deviation:+.4f})" + (f"; {self.note}" if self.note else ""))


def _curve_from(obj: Any, model: str | None, quantity: str) -> tuple[np.ndarray, np.ndarray, str | None]:
    """(steps, values, model name) from a Result, a ModelResult, a (t, y) pair or an every-step array."""
    # local import keeps this module free of the engine's import cost
    from ..result import ModelResult, Result

    if isinstance(obj, Result):
        if model is None:
            if len(obj.models) != 1:
                raise ValueError(f"the result has models {sorted(obj.models)}; pass model=...")
            model = next(iter(obj.models))
        obj = obj.models[model]
    if isinstance(obj, ModelResult):
        name = obj.name
        if quantity == "excess_risk" and obj.curve is not None:
            y = np.asarray(obj.curve, dtype=float)
            return np.arange(y.size, dtype=float), y, name
        y = getattr(obj, quantity, None)
        if y is None:
            raise ValueError(f"model {name!r} has no {quantity!r} curve")
        return np.asarray(obj.steps, dtype=float), np.asarray(y, dtype=float), name
    if isinstance(obj, tuple) and len(obj) == 2:
        return np.asarray(obj[0], dtype=float), np.asarray(obj[1], dtype=float), model
    arr = np.asarray(obj, dtype=float)
    if arr.ndim == 1:
        return np.arange(arr.size, dtype=float), arr, model
    raise TypeError("expected a Result, a ModelResult, a (steps, values) pair or a 1-D every-step array")


def check_rate(result_or_curve: Any, exponent: float, window: tuple[float, float], band: float,
               *, model: str | None = None, quantity: str = "excess_risk",
               note: str = "") -> RateCheck:
    """Fit the log-log slope of a curve over ``window`` and compare it with ``exponent``.

    ``result_or_curve``: a :class:`~spectral_theory.result.Result` (``model`` picks
    the model when there are several), a ``ModelResult``, a ``(steps, values)``
    pair, or a 1-D array indexed by step (an every-step curve). ``quantity``:
    ``"excess_risk"`` (uses the every-step ``curve`` when present), ``"bias"``
    or ``"variance"``. Passes iff ``|slope - exponent| <= band``.
    """
    if not band > 0:
        raise ValueError("band must be > 0")
    t, y, name = _curve_from(result_or_curve, model, quantity)
    tt, _ = _select(t, y, window)
    fit = fit_loglog_slope(t, y, window)
    return RateCheck(quantity=quantity, model=name, window=(float(window[0]), float(window[1])),
                     n_points=int(tt.size), slope=fit.slope, stderr=fit.stderr, r2=fit.r2,
                     expected=float(exponent), band=float(band),
                     passed=bool(abs(fit.slope - exponent) <= band), note=note)


def rate_table(checks: list[RateCheck]) -> str:
    """Plain-text table of rate checks, one line per check."""
    head = ["status", "model", "quantity", "window", "pts", "slope", "stderr", "expected", "band",
            "deviation", "note"]
    rows = [head]
    for c in checks:
        rows.append(["PASS" if c.passed else "FAIL", c.model or "", c.quantity,
                     f"[{c.window[0]:g}, {c.window[1]:g}]", str(c.n_points), f"{c.slope:+.4f}",
                     f"{c.stderr:.2g}", f"{c.expected:+.4f}", f"{c.band:g}",
                     f"{c.deviation:+.4f}", c.note])
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines) + "\n"
