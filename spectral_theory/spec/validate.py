"""Field checks shared by every specification object: each returns the value converted,
or raises :class:`~spectral_theory.errors.SpecError` naming the field, the value and what is
allowed."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..errors import SpecError

__all__ = ["finite", "integer", "array", "MAX_SIZE"]

#: the largest size or step count a scenario may give (d, steps, batch, capacity, reported steps,
#: schedule periods and lengths): step indices and sizes are int64 numbers in every solver
MAX_SIZE = 2**62


def finite(field_: str, value: Any, *, lo: float | None = None, lo_open: bool = False,
            hi: float | None = None, hi_open: bool = False) -> float:
    """Return ``value`` as float after checking it is a finite real in range."""
    allowed = "must be a finite real number"
    parts = []
    if lo is not None:
        parts.append(f"{'>' if lo_open else '>='} {lo:g}")
    if hi is not None:
        parts.append(f"{'<' if hi_open else '<='} {hi:g}")
    if parts:
        allowed += " " + " and ".join(parts)
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise SpecError(field_, value, allowed)
    try:
        v = float(value)
    except OverflowError:  # an integer beyond the float range
        raise SpecError(field_, value, allowed) from None
    if not math.isfinite(v):
        raise SpecError(field_, value, allowed)
    if lo is not None and (v < lo or (lo_open and v == lo)):
        raise SpecError(field_, value, allowed)
    if hi is not None and (v > hi or (hi_open and v == hi)):
        raise SpecError(field_, value, allowed)
    return v


def integer(field_: str, value: Any, *, lo: int | None = None, hi: int | None = None) -> int:
    """Return ``value`` as int after checking it is an integer (an integral float is accepted) in range."""
    allowed = "must be an integer"
    if lo is not None:
        allowed += f" >= {lo}"
    if hi is not None:
        bound = f"2^62 = {hi} (the solvers count steps and modes with int64 numbers)" if hi == MAX_SIZE else hi
        allowed += f" and <= {bound}" if lo is not None else f" <= {bound}"
    if isinstance(value, bool):
        raise SpecError(field_, value, allowed)
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        value = int(value)
    if not isinstance(value, (int, np.integer)):
        raise SpecError(field_, value, allowed)
    v = int(value)
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        raise SpecError(field_, value, allowed)
    return v


def array(field_: str, values: Any, *, nonneg: bool = True, min_len: int = 1) -> np.ndarray:
    """A read-only 1-D float array of finite values (``>= 0`` with ``nonneg``); the error names the bad entry."""
    allowed = (f"must be a {'non-empty ' if min_len >= 1 else ''}1-D array of finite real numbers"
               + (" >= 0" if nonneg else ""))
    try:
        arr = np.array(values, dtype=float)
    except (TypeError, ValueError, OverflowError):  # OverflowError: an integer beyond the float range
        raise SpecError(field_, values, allowed) from None
    if arr.ndim != 1 or arr.size < min_len:
        raise SpecError(field_, values, allowed)
    bad = ~np.isfinite(arr)
    if nonneg:
        bad |= arr < 0
    if bad.any():
        i = int(np.argmax(bad))
        raise SpecError(f"{field_}[{i}]", float(arr[i]), allowed)
    arr.setflags(write=False)
    return arr
