"""Stability of the moment recursion for a constant step (THEORY.md section 4).

For a model with speeds ``s``, batch ``B`` and latent kurtosis ``kappa``, a
constant step ``eta`` gives per-mode step ``x_i = eta s_i`` and, per mode with
``s_i > 0``,

* mean and cross moments: factor ``1 - x_i``;
* second moment: ``M_i <- a_i M_i + b_i (sum_j M_j + ...)`` with
  ``a_i = (1 - x_i)^2 + x_i^2 (kappa - 2)/B = 1 - 2 x_i + q x_i^2``,
  ``q = (B + kappa - 2)/B`` and ``b_i = x_i^2 / B``.

The linear map ``diag(a) + b 1^T`` has eigenvalues that interlace the ``a_i``
plus one root ``z* > max a_i`` of the secular equation
``sum_i b_i / (z - a_i) = 1``. Hence the recursion is stable iff

1. ``|1 - x_i| < 1``  (i.e. ``x_i < 2``),
2. ``|a_i| < 1``, and
3. ``F = sum_i b_i / (1 - a_i) = sum_i x_i / (B (2 - q x_i)) < 1``,

where ``F`` is the l1 norm of the renewal kernel ``k_n = sum_i b_i a_i^n``
when all ``a_i >= 0``. For ``B = 1``, ``kappa = 3``, ``s = lambda``, condition 3
reads ``sum_i eta lambda_i / (2 (1 - eta lambda_i)) < 1``. Every condition has
the form ``eta < limit``, so the stable steps form an interval ``(0, eta_max)``.
Modes with ``s_i = 0`` never move and do not enter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq

__all__ = ["StabilityReport", "kernel_norm", "stability_limit", "check_step"]


@dataclass(frozen=True)
class StabilityReport:
    eta: float
    limit: float
    kernel_norm: float
    max_mode_factor: float
    stable: bool

    @property
    def margin(self) -> float:
        """``limit / eta``: above 1 is stable."""
        return self.limit / self.eta if self.eta > 0 else math.inf


def _q(batch: int, kappa: float) -> float:
    return (batch + kappa - 2.0) / batch


def kernel_norm(eta: float, speeds: np.ndarray, batch: int, kappa: float) -> float:
    """``sum_i b_i / (1 - a_i)`` over moving modes (inf where some ``a_i >= 1``)."""
    x = eta * speeds[speeds > 0]
    q = _q(batch, kappa)
    denom = batch * (2.0 - q * x)
    if np.any(denom <= 0):
        return math.inf
    return float(np.sum(x / denom))


def _mode_bound(batch: int, kappa: float) -> float:
    """Largest per-mode step ``x`` allowed by conditions 1 and 2."""
    q = _q(batch, kappa)
    bound = 2.0  # |1 - x| < 1
    if q > 0:
        bound = min(bound, 2.0 / q)  # a < 1
    if q < 0.5:
        bound = min(bound, 2.0 / (1.0 + math.sqrt(1.0 - 2.0 * q)))  # a > -1
    return bound


def stability_limit(speeds: np.ndarray, batch: int, kappa: float) -> float:
    """Largest stable constant step ``eta_max`` (batch-mean convention); stable iff eta < eta_max."""
    speeds = np.asarray(speeds, dtype=float)
    moving = speeds[speeds > 0]
    if moving.size == 0:
        return math.inf
    smax = float(moving.max())
    eta_bound = _mode_bound(batch, kappa) / smax
    below = eta_bound * (1.0 - 1e-13)
    if kernel_norm(below, moving, batch, kappa) < 1.0:
        return eta_bound
    return float(brentq(lambda e: kernel_norm(e, moving, batch, kappa) - 1.0, 0.0, below,
                        xtol=1e-300, rtol=4 * np.finfo(float).eps, maxiter=500))


def check_step(eta: float, speeds: np.ndarray, batch: int, kappa: float,
               limit: float | None = None) -> StabilityReport:
    """Stability report for one constant step."""
    speeds = np.asarray(speeds, dtype=float)
    moving = speeds[speeds > 0]
    if limit is None:
        limit = stability_limit(speeds, batch, kappa)
    if moving.size:
        x = eta * moving
        a = 1.0 - 2.0 * x + _q(batch, kappa) * x * x
        factor = float(max(np.max(np.abs(a)), np.max(np.abs(1.0 - x))))
    else:
        factor = 1.0
    knorm = kernel_norm(eta, moving, batch, kappa)
    return StabilityReport(eta=float(eta), limit=float(limit), kernel_norm=knorm,
                           max_mode_factor=factor, stable=bool(eta < limit))
