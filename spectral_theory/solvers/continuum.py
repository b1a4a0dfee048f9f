"""Continuum limit: weighted quadrature nodes that stand for many (or infinitely many) modes,
so that the ODE solver's cost does not depend on ``d`` (``docs/solvers/continuum.md``).

``sum_i F(lambda_i, theta_i^2)`` is replaced by ``sum_n w_n F(lambda_n, theta_n^2)`` over a few
hundred nodes: for power laws (:func:`powerlaw_nodes`) exact nodes at the ends of each segment
between capacity breaks and Euler-Maclaurin-corrected Gauss panels, log-spaced, in between
(``d = None``: d = infinity, with a tail panel); for a user density
(:func:`density_nodes`) Gauss panels over its support. Node sums match the full-d sums to about
1e-9 relative (tests/test_continuum.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import cache
from typing import Any

import numpy as np

from ..errors import SpecError
from ..result import Result
from ..spec import PowerLawSpectrum, PowerLawTarget, Scenario
from .base import Solver

__all__ = [
    "ModeNodes",
    "powerlaw_nodes",
    "density_nodes",
    "continuum_nodes",
    "run_continuum",
    "mode_sum",
]


class ModeNodes(tuple):
    """``(lam, theta2, weights)``: unpacks like a tuple, plus ``index_lo``/``index_hi``
    (the range of mode indices each node stands for; ``inf`` for the infinite tail)
    and ``info`` (how the nodes were built)."""

    def __new__(cls, lam, theta2, weights, index_lo=None, index_hi=None, info=None):
        obj = super().__new__(cls, (np.asarray(lam, float), np.asarray(theta2, float),
                                    np.asarray(weights, float)))
        obj.index_lo = None if index_lo is None else np.asarray(index_lo, float)
        obj.index_hi = None if index_hi is None else np.asarray(index_hi, float)
        obj.info = dict(info or {})
        return obj

    @property
    def lam(self) -> np.ndarray:
        return self[0]

    @property
    def theta2(self) -> np.ndarray:
        return self[1]

    @property
    def weights(self) -> np.ndarray:
        return self[2]

    @property
    def size(self) -> int:
        return int(self[0].size)


# ----------------------------------------------------------------------------
# building blocks


@cache
def _gauss(order: int) -> tuple[np.ndarray, np.ndarray]:
    x, w = np.polynomial.legendre.leggauss(order)
    return x, w


@cache
def _deriv_weights(r: int, k: int, sign: int) -> np.ndarray:
    """Weights ``c_j`` with ``sum_j c_j f(x0 + sign*j) = f^(k)(x0)`` for polynomials of
    degree < r (exact rational arithmetic)."""
    xs = [Fraction(sign * j) for j in range(r)]
    # solve V^T c = k! e_k, V[j, m] = x_j^m
    A = [[xs[j] ** m for j in range(r)] for m in range(r)]
    rhs = [Fraction(math.factorial(k)) if m == k else Fraction(0) for m in range(r)]
    n = r
    for col in range(n):
        piv = next(i for i in range(col, n) if A[i][col] != 0)
        A[col], A[piv] = A[piv], A[col]
        rhs[col], rhs[piv] = rhs[piv], rhs[col]
        for i in range(n):
            if i != col and A[i][col] != 0:
                f = A[i][col] / A[col][col]
                A[i] = [a - f * b for a, b in zip(A[i], A[col], strict=True)]
                rhs[i] -= f * rhs[col]
    return np.array([float(rhs[i] / A[i][i]) for i in range(n)])


# Euler-Maclaurin: B_{2k}/(2k)! for k = 1, 2, 3
_EM = ((1, 1.0 / 12.0), (3, -1.0 / 720.0), (5, 1.0 / 30240.0))


def _log_panels(lo: float, hi: float, per_efold: float, order: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights of ``int_lo^hi f(u) du`` (Gauss-Legendre in log u on panels)."""
    if hi <= lo:
        return np.zeros(0), np.zeros(0)
    x, w = _gauss(order)
    L0, L1 = math.log(lo), math.log(hi)
    n_pan = max(1, math.ceil((L1 - L0) * per_efold / order))
    edges = np.linspace(L0, L1, n_pan + 1)
    half = 0.5 * np.diff(edges)
    mid = 0.5 * (edges[1:] + edges[:-1])
    v = (mid[:, None] + half[:, None] * x[None, :]).ravel()
    u = np.exp(v)
    wt = (half[:, None] * w[None, :]).ravel() * u
    return u, wt


def _tail_panel(U: float, beta: float, order: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights of ``int_U^inf f(u) du`` via ``w = (u/U)^(1-beta)`` in (0, 1]."""
    x, w = _gauss(order)
    t = 0.5 * (x + 1.0)
    u = U * t ** (-1.0 / (beta - 1.0))
    wt = 0.5 * w * U / (beta - 1.0) * t ** (-beta / (beta - 1.0))
    return u, wt


def _segment(L: int, H: float, left: int, foot: int, per_efold: float, order: int,
             u_max: float, beta: float):
    """Nodes (u, weight, lo, hi) for ``sum_{i=L}^{H} f(i)`` (H may be inf)."""
    finite = math.isfinite(H)
    if finite:
        H = int(H)
        n_modes = H - L + 1
        if n_modes <= left + foot + 2 * order:
            u = np.arange(L, H + 1, dtype=float)
            return u, np.ones_like(u), u.copy(), u.copy()
    A = L + left - 1
    lf = np.arange(L, A + 1, dtype=float)
    lw = np.ones_like(lf)
    lw[-1] -= 0.5
    r = min(foot, left)
    for k, coef in _EM:
        dw = _deriv_weights(r, k, -1)  # at A from A, A-1, ..., A-r+1
        lw[-1: -r - 1: -1] -= coef * dw
    us, ws, los, his = [lf], [lw], [lf], [lf]
    if finite:
        Bn = H - foot + 1
        rf = np.arange(Bn, H + 1, dtype=float)
        rw = np.ones_like(rf)
        rw[0] -= 0.5
        for k, coef in _EM:
            dw = _deriv_weights(foot, k, +1)  # at Bn from Bn, Bn+1, ...
            rw[:foot] += coef * dw
        pu, pw = _log_panels(float(A), float(Bn), per_efold, order)
        us += [pu, rf]
        ws += [pw, rw]
        los += [np.full(pu.size, A + 1.0), rf]
        his += [np.full(pu.size, Bn - 1.0), rf]
    else:
        top = max(u_max, 4.0 * A)
        pu, pw = _log_panels(float(A), top, per_efold, order)
        tu, tw = _tail_panel(top, beta, order)
        us += [pu, tu]
        ws += [pw, tw]
        los += [np.full(pu.size + tu.size, A + 1.0)]
        his += [np.full(pu.size + tu.size, math.inf)]
    return (np.concatenate(us), np.concatenate(ws), np.concatenate(los), np.concatenate(his))


# ----------------------------------------------------------------------------
# public node builders


def powerlaw_nodes(
    a: float,
    b: float,
    *,
    d: int | None = None,
    head: int = 64,
    foot: int = 8,
    per_efold: float = 8.0,
    order: int = 8,
    lam_scale: float = 1.0,
    theta_scale: float = 1.0,
    breaks: Sequence[int] = (),
    u_max: float = 1e12,
) -> ModeNodes:
    """Quadrature nodes for ``lambda_i = lam_scale i^-a``, ``theta_i^2 = theta_scale i^-b``.

    ``d = None`` is ``d = infinity`` (needs ``a > 1`` and ``b > 1``). ``head``
    leading modes are exact; ``breaks`` are mode indices ``k`` after which the
    quadrature restarts (give every capacity of the models), so a model with
    ``capacity = k`` sees whole nodes. See the module docstring for the rule and
    its accuracy.
    """
    a = float(a)
    b = float(b)
    if not a > 0:
        raise SpecError("a", a, "must be > 0")
    if d is None and not (a > 1 and b > 1):
        raise SpecError("d", d, "d = infinity needs a > 1 and b > 1 (convergent mode sums)")
    if d is not None:
        if isinstance(d, bool) or int(d) != d or d < 1:
            raise SpecError("d", d, "must be None (infinity) or an integer >= 1")
        d = int(d)
    if head < 1 or foot < 2 or order < 2 or per_efold <= 0:
        raise SpecError("head/foot/order/per_efold", (head, foot, order, per_efold),
                        "need head >= 1, foot >= 2, order >= 2, per_efold > 0")
    head = max(int(head), int(foot))
    top = math.inf if d is None else d
    cuts = sorted({int(k) for k in breaks if 1 <= int(k) < top})
    bounds = []
    start = 1
    for k in cuts:
        bounds.append((start, k))
        start = k + 1
    bounds.append((start, top))
    beta = min(b, 2.0 * a)
    parts = []
    for j, (L, H) in enumerate(bounds):
        left = head if j == 0 else foot
        parts.append(_segment(L, H, left, foot, per_efold, order, u_max, beta))
    u = np.concatenate([p[0] for p in parts])
    w = np.concatenate([p[1] for p in parts])
    lo = np.concatenate([p[2] for p in parts])
    hi = np.concatenate([p[3] for p in parts])
    order_idx = np.argsort(u, kind="stable")
    u, w, lo, hi = u[order_idx], w[order_idx], lo[order_idx], hi[order_idx]
    lam = lam_scale * u ** (-a)
    theta2 = theta_scale * u ** (-b)
    info = {"kind": "powerlaw", "a": a, "b": b, "d": d, "head": head, "foot": foot,
            "per_efold": per_efold, "order": order, "breaks": cuts, "u_max": u_max,
            "nodes": int(u.size)}
    return ModeNodes(lam, theta2, w, lo, hi, info)


def density_nodes(
    density: Callable[[np.ndarray], np.ndarray],
    lam_min: float,
    lam_max: float,
    *,
    target: Callable[[np.ndarray], np.ndarray],
    per_efold: float = 8.0,
    order: int = 8,
    nodes: int | None = None,
) -> ModeNodes:
    """Quadrature nodes for a spectral density ``rho(lambda)`` (modes per unit lambda,
    mass = d) on ``[lam_min, lam_max]`` and per-mode target ``theta2(lambda)``.

    Gauss-Legendre in ``log lambda`` on panels (``order`` points each, ``per_efold``
    points per e-fold of lambda); ``nodes`` (optional) fixes the total number
    instead. Nodes are returned by decreasing lambda; ``index_lo/index_hi`` give
    the counting function ``N(lambda) = int_lambda^lam_max rho`` at each node's
    panel edges (a capacity cut must fall on a panel edge).
    """
    lam_min, lam_max = float(lam_min), float(lam_max)
    if not (0 < lam_min < lam_max and math.isfinite(lam_max)):
        raise SpecError("lam_min/lam_max", (lam_min, lam_max), "need 0 < lam_min < lam_max < inf")
    x, w = _gauss(order)
    L0, L1 = math.log(lam_min), math.log(lam_max)
    if nodes is not None:
        n_pan = max(1, int(nodes) // order)
    else:
        n_pan = max(1, math.ceil((L1 - L0) * per_efold / order))
    edges = np.linspace(L0, L1, n_pan + 1)
    half = 0.5 * np.diff(edges)
    mid = 0.5 * (edges[1:] + edges[:-1])
    lam = np.exp((mid[:, None] + half[:, None] * x[None, :]).ravel())
    rho = np.asarray(density(lam), dtype=float)
    th2 = np.asarray(target(lam), dtype=float)
    if rho.shape != lam.shape or th2.shape != lam.shape:
        raise SpecError("density/target", "<callable>", "must map an array of lambdas to an array of the same shape")
    if np.any(rho < 0) or np.any(th2 < 0) or not np.all(np.isfinite(rho * th2)):
        raise SpecError("density/target", "<callable>", "must be finite and >= 0 on [lam_min, lam_max]")
    wt = (half[:, None] * w[None, :]).ravel() * lam * rho
    # counting function at panel edges (from the top)
    mass = (half[:, None] * w[None, :] * (lam * rho).reshape(n_pan, order)).sum(axis=1)
    above = np.concatenate([np.cumsum(mass[::-1])[::-1][1:], [0.0]])  # N at each panel's upper edge
    lo = np.repeat(above, order)
    hi = np.repeat(above + mass, order)
    idx = np.argsort(-lam, kind="stable")
    info = {"kind": "density", "lam_min": lam_min, "lam_max": lam_max, "order": order,
            "panels": n_pan, "nodes": int(lam.size), "mass": float(wt.sum())}
    return ModeNodes(lam[idx], th2[idx], wt[idx], lo[idx], hi[idx], info)


def mode_sum(nodes: ModeNodes, f: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> float:
    """``sum_n w_n f(lambda_n, theta2_n)``: the nodes' approximation of ``sum_i f(lambda_i, theta_i^2)``."""
    lam, th2, w = nodes
    return float(np.dot(w, f(lam, th2)))


def continuum_nodes(scenario: Scenario, *, d: Any = "problem", **options: Any) -> ModeNodes:
    """Power-law nodes for a scenario whose problem has a :class:`PowerLawSpectrum` and a
    :class:`PowerLawTarget`: ``d = "problem"`` (the problem's own d), an integer, or
    ``None`` (infinity). Every model capacity becomes a break."""
    prob = scenario.problem
    if not isinstance(prob.spectrum, PowerLawSpectrum) or not isinstance(prob.target, PowerLawTarget):
        raise SpecError("problem", prob.describe()["spectrum"]["kind"],
                        "the continuum solver needs a power-law spectrum and a power-law target "
                        "(use density_nodes and run_ode(..., modes=...) otherwise)")
    for m in scenario.models:
        if m.speeds is not None:
            raise SpecError(f"{m.field_name}.speeds", "<array>",
                            "explicit per-mode speeds cannot be mapped to continuum nodes; use capacity")
    dd = prob.d if d == "problem" else d
    if dd is not None and (isinstance(dd, bool) or not isinstance(dd, (int, np.integer)) or dd < 1):
        raise SpecError("d", d, "must be 'problem', a positive integer, or None (d = infinity)")
    breaks = tuple(sorted({m.capacity for m in scenario.models if m.capacity is not None}))
    if dd is not None:
        for m in scenario.models:
            if m.capacity is not None and m.capacity > dd:
                raise SpecError(f"{m.field_name}.capacity", m.capacity, f"must be <= d = {dd}")
    return powerlaw_nodes(prob.spectrum.a, prob.target.b, d=dd, lam_scale=prob.spectrum.scale,
                          theta_scale=prob.target.scale, breaks=breaks, **options)


def run_continuum(scenario: Scenario, *, at: dict[str, np.ndarray], d: Any = "problem",
                  node_options: dict[str, Any] | None = None, **ode_options: Any) -> Result:
    """The ODE solver on continuum nodes (cost independent of d); ``d=None`` is d = infinity.

    ``node_options`` go to :func:`powerlaw_nodes`, ``ode_options`` to
    :func:`spectral_theory.solvers.ode.run_ode`. Per-mode outputs (``modes``,
    ``mode_curves``) are per node.
    """
    from .ode import run_ode

    nodes = continuum_nodes(scenario, d=d, **(node_options or {}))
    res = run_ode(scenario, at=at, modes=nodes, **ode_options)
    res.method = "continuum"
    res.diagnostics["nodes"] = nodes.info
    res.scenario = ComputedScenario(scenario, nodes.info["d"])
    return res


class ComputedScenario:
    """The scenario as the continuum solver computed it: everything as ``scenario`` except the
    number of modes, ``d`` (``None``: infinity), which :meth:`describe` (the JSON echo of a
    result) reports as computed, ``"inf"`` for d = infinity."""

    def __init__(self, scenario: Scenario, d: int | None):
        self.scenario = scenario
        self.d = d

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("scenario", "d"):
            raise AttributeError(name)
        return getattr(self.scenario, name)

    def describe(self) -> dict[str, Any]:
        out = self.scenario.describe()
        out["problem"]["spectrum"]["d"] = "inf" if self.d is None else int(self.d)
        return out


@dataclass(frozen=True)
class ContinuumSolver(Solver):
    """The ODE on quadrature nodes over the spectral measure: cost independent of ``d``
    (``d=None``: d = infinity). Power-law spectrum and target, capacities (no explicit
    speeds). Node sums match the full-d sums to ~1e-9 (``docs/solvers/continuum.md``).
    Options: ``d``, ``node_options`` (for :func:`powerlaw_nodes`) and the ODE's."""

    d: Any = "problem"
    node_options: Any = None
    rtol: float = 1e-6
    atol: float = 1e-10
    jump_tol: float = 1e-2
    max_points: int = 10_000_000

    name = "continuum"
    exact = False

    def supports(self, scenario, *, every_step=False, record_modes=False):
        from .base import variant_reason

        if (reason := variant_reason(scenario, self.name)) is not None:
            return reason
        p = scenario.problem
        if not isinstance(p.spectrum, PowerLawSpectrum) or not isinstance(p.target, PowerLawTarget):
            return "needs a power-law spectrum and a power-law target"
        if any(m.speeds is not None for m in scenario.models):
            return "explicit per-mode speeds cannot be mapped to continuum nodes"
        return None

    def cost(self, scenario, *, every_step=False):
        return float(300 * 1000 * len(scenario.models))

    def _solve(self, scenario, *, at, record_modes, every_step, on_unstable, cache):
        return run_continuum(scenario, at=at, d=self.d, node_options=self.node_options,
                             record_modes=record_modes, every_step=every_step, on_unstable=on_unstable,
                             rtol=self.rtol, atol=self.atol, jump_tol=self.jump_tol,
                             max_points=self.max_points)
