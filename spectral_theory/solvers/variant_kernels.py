"""Exact per-mode moment steps of the SGD variants (``docs/theory.md`` §10).

A model with momentum keeps two per-mode errors, ``e`` (its iterate minus ``theta``) and ``v``
(the auxiliary sequence minus ``theta``); one step (``spectral_theory.spec.variants.Momentum``) is

    y = r e + (1 - r) v,   pi = y - c e_p   (the residual at the gradient point)
    e' = p_e e + (1 - p_e) v - x_e G,   v' = p_v e + (1 - p_v) v - x_v G,

with ``x_e = h_e s_i``, ``x_v = h_v s_i`` and ``G`` the batch-mean stochastic gradient of mode
``i`` at ``y``. Given the state, ``E[G] = pi`` and
``E[G^2] = Q = U + (1/B)(noise + sum_j U_j + (kappa - 2) U)`` with ``U = E[pi^2]``: the same
expectation as for plain SGD (§4), evaluated at the point where the gradient is taken, so the
modes couple only through ``sum_j U_j``. An averaged iterate ``a' = (1 - rho) a + rho e'``
never feeds back. Every function is plain arithmetic on numpy arrays or floats.

The kernels work in the coordinates ``(e, d)``, ``d = e - v`` (``d = 0`` at the start):

    pi = e - (1 - r) d - c e_p,   e' = e - (1 - p_e) d - x_e G,   d' = (p_e - p_v) d - (x_e - x_v) G.

For a slow mode ``d`` is small and every step is ``E[e^2]`` plus small corrections; in the
coordinates ``(e, v)`` the same step is a sum of ``O(1)`` terms that cancel (heavy-ball:
``(1 + beta)^2 E[e^2] - 2 beta (1 + beta) E[e v] + beta^2 E[v^2]``), which cost ~1e-14 of
relative accuracy per step at ``beta = 0.99``, growing like ``1 / (1 - beta)^2``.

These expressions are checked against the expectation of the literal update computed by sympy
at finite symbolic dimension (``tests/test_variants_symbolic.py``; the ``(e, v)`` moments of the
derivation are ``E[e v] = E[e^2] - E[e d]``, ``E[v^2] = E[e^2] - 2 E[e d] + E[d^2]``) and against
the dense reference (``tests/reference_variants.py``).
"""

from __future__ import annotations

__all__ = ["point_moment", "momentum_step", "cross_step", "mean_step", "average_step"]


def point_moment(Mee, Med, Mdd, Mep, Mdp, Mpp, r, c):
    """``U = E[pi^2]``, ``E[e pi]``, ``E[d pi]`` for ``pi = e - (1 - r) d - c e_p``."""
    rb = 1.0 - r
    if r == 1.0:  # heavy-ball: the gradient is taken at the iterate (no array operation for rb = 0)
        e_pi, d_pi = Mee, Med
    else:
        e_pi = Mee - rb * Med
        d_pi = Med - rb * Mdd
    if c != 0.0:
        e_pi = e_pi - c * Mep
        d_pi = d_pi - c * Mdp
        U = e_pi - rb * d_pi - c * (Mep - rb * Mdp - c * Mpp)
    else:
        U = e_pi - rb * d_pi
    return U, e_pi, d_pi


def momentum_step(Mee, Med, Mdd, U, e_pi, d_pi, sum_U, p_e, p_v, x_e, x_v, inv_B, kappa, noise):
    """New ``(E[e^2], E[e d], E[d^2])`` of one mode after one step (module docstring):
    ``e' = eh - x_e G``, ``d' = dh - x_d G`` with ``eh = e - (1 - p_e) d``, ``dh = (p_e - p_v) d``,
    ``x_d = x_e - x_v``."""
    q, m = 1.0 - p_e, p_e - p_v
    x_d = x_e - x_v
    Q = U + inv_B * (noise + sum_U + (kappa - 2.0) * U)
    eh_pi = e_pi - q * d_pi
    ee = Mee - q * (2.0 * Med - q * Mdd)
    ee = ee - x_e * (2.0 * eh_pi - x_e * Q)
    dh_pi = m * d_pi
    ed = m * (Med - q * Mdd) - x_d * eh_pi - x_e * dh_pi + x_e * x_d * Q
    dd = m * (m * Mdd) - x_d * (2.0 * dh_pi - x_d * Q)
    return ee, ed, dd


def cross_step(Xe, Xd, pi_h, p_e, p_v, x_e, x_v):
    """New ``(E[e e_h], E[d e_h])`` with a frozen model ``h``; ``pi_h = E[pi e_h]``."""
    return (Xe - (1.0 - p_e) * Xd - x_e * pi_h,
            (p_e - p_v) * Xd - (x_e - x_v) * pi_h)


def mean_step(mu_e, mu_d, mu_pi, p_e, p_v, x_e, x_v):
    """New first-moment multipliers ``(mu_e, mu_d)``; ``mu_pi = mu_e - (1 - r) mu_d - c mu_p``."""
    return (mu_e - (1.0 - p_e) * mu_d - x_e * mu_pi,
            (p_e - p_v) * mu_d - (x_e - x_v) * mu_pi)


def average_step(A, Ae, Ad, a_pi, Mee_new, Med_new, p_e, p_v, x_e, x_v, rho):
    """New ``(E[a^2], E[a e], E[a d])`` of the averaged error ``a`` after one step, from the old
    ``A = E[a^2]``, ``Ae = E[a e]``, ``Ad = E[a d]``, ``a_pi = E[a pi]`` and the new
    ``E[e^2]``, ``E[e d]``: ``a' = (1 - rho) a + rho e'``, ``E[a e'] = Ae - (1 - p_e) Ad - x_e E[a pi]``
    and ``E[a d'] = (p_e - p_v) Ad - (x_e - x_v) E[a pi]`` (the gradient noise has mean zero given
    the past)."""
    a_e = Ae - (1.0 - p_e) * Ad - x_e * a_pi
    a_d = (p_e - p_v) * Ad - (x_e - x_v) * a_pi
    keep = 1.0 - rho
    return (keep * keep * A + rho * (2.0 * keep * a_e + rho * Mee_new),
            keep * a_e + rho * Mee_new,
            keep * a_d + rho * Med_new)
