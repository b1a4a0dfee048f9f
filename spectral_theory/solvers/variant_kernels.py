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

These expressions are checked against the expectation of the literal update computed by sympy
at finite symbolic dimension (``tests/test_variants_symbolic.py``) and against the dense
reference (``tests/reference_variants.py``).
"""

from __future__ import annotations

__all__ = ["point_moment", "momentum_step", "cross_step", "mean_step", "average_step"]


def point_moment(Mee, Mev, Mvv, Mep, Mvp, Mpp, r, c):
    """``U = E[pi^2]``, ``E[e pi]``, ``E[v pi]`` for ``pi = r e + (1 - r) v - c e_p``."""
    rb = 1.0 - r
    if r == 1.0:  # heavy-ball: the gradient is taken at the iterate (no array operation for rb = 0)
        e_pi, v_pi = Mee, Mev
    else:
        e_pi = r * Mee + rb * Mev
        v_pi = r * Mev + rb * Mvv
    if c != 0.0:
        e_pi = e_pi - c * Mep
        v_pi = v_pi - c * Mvp
        U = r * e_pi + rb * v_pi - c * (r * Mep + rb * Mvp - c * Mpp)
    else:
        U = r * e_pi + rb * v_pi
    return U, e_pi, v_pi


def momentum_step(Mee, Mev, Mvv, U, e_pi, v_pi, sum_U, p_e, p_v, x_e, x_v, inv_B, kappa, noise):
    """New ``(E[e^2], E[e v], E[v^2])`` of one mode after one step (module docstring)."""
    qe, qv = 1.0 - p_e, 1.0 - p_v
    Q = U + inv_B * (noise + sum_U + (kappa - 2.0) * U)
    eh_pi = p_e * e_pi + qe * v_pi
    ee = p_e * p_e * Mee + 2.0 * p_e * qe * Mev + qe * qe * Mvv
    if p_v == 1.0 and isinstance(x_v, float) and x_v == 0.0:
        # v' = e (heavy-ball, Nesterov): the same values with fewer array operations
        ev = p_e * Mee + qe * Mev
        return ee - 2.0 * x_e * eh_pi + x_e * x_e * Q, ev - x_e * e_pi, Mee
    vh_pi = p_v * e_pi + qv * v_pi
    ev = p_e * p_v * Mee + (p_e * qv + qe * p_v) * Mev + qe * qv * Mvv
    vv = p_v * p_v * Mee + 2.0 * p_v * qv * Mev + qv * qv * Mvv
    return (ee - 2.0 * x_e * eh_pi + x_e * x_e * Q,
            ev - x_e * vh_pi - x_v * eh_pi + x_e * x_v * Q,
            vv - 2.0 * x_v * vh_pi + x_v * x_v * Q)


def cross_step(Xe, Xv, pi_h, p_e, p_v, x_e, x_v):
    """New ``(E[e e_h], E[v e_h])`` with a frozen model ``h``; ``pi_h = E[pi e_h]``."""
    return (p_e * Xe + (1.0 - p_e) * Xv - x_e * pi_h,
            p_v * Xe + (1.0 - p_v) * Xv - x_v * pi_h)


def mean_step(mu_e, mu_v, mu_pi, p_e, p_v, x_e, x_v):
    """New first-moment multipliers ``(mu_e, mu_v)``; ``mu_pi = r mu_e + (1 - r) mu_v - c mu_p``."""
    return (p_e * mu_e + (1.0 - p_e) * mu_v - x_e * mu_pi,
            p_v * mu_e + (1.0 - p_v) * mu_v - x_v * mu_pi)


def average_step(A, Ae, Av, a_pi, Mee_new, Mev_new, p_e, p_v, x_e, x_v, rho):
    """New ``(E[a^2], E[a e], E[a v])`` of the averaged error ``a`` after one step, from the old
    ``A = E[a^2]``, ``Ae = E[a e]``, ``Av = E[a v]``, ``a_pi = E[a pi]`` and the new
    ``E[e^2]``, ``E[e v]``: ``a' = (1 - rho) a + rho e'`` and ``E[a e'] = p_e Ae + (1 - p_e) Av
    - x_e E[a pi]`` (the gradient noise has mean zero given the past)."""
    a_e = p_e * Ae + (1.0 - p_e) * Av - x_e * a_pi
    a_v = p_v * Ae + (1.0 - p_v) * Av - x_v * a_pi
    keep = 1.0 - rho
    return (keep * keep * A + rho * (2.0 * keep * a_e + rho * Mee_new),
            keep * a_e + rho * Mee_new,
            keep * a_v + rho * Mev_new)
