"""Exponent conventions for power-law problems (``docs/theory.md`` §1).

This project: ``lambda_i = i^-a``, ``theta_i^2 = i^-b`` where ``theta_i = sqrt(lambda_i) w*_i``.

* Bordelon & Pehlevan swap the letters: their ``(a, b)`` is our ``(b, a)``.
* Paquette et al.: ``lambda_j = j^(-2 alpha)``, ``w*_j = j^(-beta)``, so
  ``a = 2 alpha`` and ``b = 2 alpha + 2 beta``.
"""

from __future__ import annotations

from .errors import SpecError

__all__ = ["from_bordelon_pehlevan", "to_bordelon_pehlevan", "from_paquette", "to_paquette", "convert",
           "CONVENTION_NAMES"]


def from_bordelon_pehlevan(a_bp: float, b_bp: float) -> tuple[float, float]:
    """Bordelon-Pehlevan ``(a, b)`` -> this project's ``(a, b)``."""
    return float(b_bp), float(a_bp)


def to_bordelon_pehlevan(a: float, b: float) -> tuple[float, float]:
    """This project's ``(a, b)`` -> Bordelon-Pehlevan ``(a, b)``."""
    return float(b), float(a)


def from_paquette(alpha: float, beta: float) -> tuple[float, float]:
    """Paquette et al. ``(alpha, beta)`` -> this project's ``(a, b) = (2 alpha, 2 alpha + 2 beta)``."""
    return 2.0 * alpha, 2.0 * alpha + 2.0 * beta


def to_paquette(a: float, b: float) -> tuple[float, float]:
    """This project's ``(a, b)`` -> Paquette et al. ``(alpha, beta) = (a/2, (b - a)/2)``."""
    return a / 2.0, (b - a) / 2.0


_FROM = {"spectral-theory": lambda x, y: (float(x), float(y)),
         "bordelon-pehlevan": from_bordelon_pehlevan, "paquette": from_paquette}
_TO = {"spectral-theory": lambda x, y: (float(x), float(y)),
       "bordelon-pehlevan": to_bordelon_pehlevan, "paquette": to_paquette}


#: the convention names :func:`convert` takes
CONVENTION_NAMES = tuple(_FROM)


def convert(x: float, y: float, *, source: str, target: str) -> tuple[float, float]:
    """Convert an exponent pair between the conventions ``"spectral-theory"`` (this project's
    ``(a, b)``), ``"bordelon-pehlevan"`` (their ``(a, b)``) and ``"paquette"`` (their
    ``(alpha, beta)``); ``x``, ``y`` are finite numbers. Unknown names or non-numbers are a
    :class:`SpecError` naming the field and what is allowed."""
    from .spec.validate import finite

    if not isinstance(source, str) or source not in _FROM:
        raise SpecError("source", source, f"must be one of {list(_FROM)}")
    if not isinstance(target, str) or target not in _TO:
        raise SpecError("target", target, f"must be one of {list(_TO)}")
    x, y = finite("x", x), finite("y", y)
    return _TO[target](*_FROM[source](x, y))
