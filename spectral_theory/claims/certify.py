"""Certified witnesses: the exact per-mode recursion re-evaluated in interval arithmetic.

At one parameter point (a counterexample, or the tightest point of a claim that holds) the
claim's values are recomputed with python-flint's ``arb`` balls (midpoint-radius intervals
with rigorous rounding), independently of the floating-point solvers:

* the problem is rebuilt from its parameters, not from the float arrays: a power-law
  spectrum ``lambda_i = c i^-a`` and target ``theta_i^2 = c i^-b`` (and exponential spectra)
  are evaluated in ``arb``; array spectra, targets and speeds and every step size are the
  scenario's float64 numbers taken exactly (a constant step ``lr = 0.3`` is the double
  nearest 0.3, which is what the scenario means);
* the moment recursion of ``docs/theory.md`` §4 (first-moment multipliers and the pair
  moments of every model trained so far, mixed labels included) is written out here again,
  step by step, from the formulas of that section, not from
  ``spectral_theory/solvers/kernels.py`` nor any solver;
* stability quantities come from §5 (kernel norm ``g(1)``, the top eigenvalue of the
  second-moment map by bisection on the secular equation, the stability limit by bisection on
  ``g(1) = 1``), the risk floor from §6;
* the claim's expressions are evaluated by the same tree walker as in floating point, with
  an ``arb`` backend, and the claim's ratio becomes a ball. A ratio certainly above 1 is a
  **proof that the claim is false at that point**; certainly at most 1, a rigorous margin.

Cost: about 2 microseconds per mode and step for a hard-label model, 2.5 for a student
(pure Python over flint's C arithmetic); ``estimate_cost`` gives the figure for a claim. In
practice ``d * T`` up to ``10^6`` per model in about 2 s, ``10^7`` in under a minute
(measured in ``benchmarks/bench_claims.py`` and ``docs/claims.md``). The working precision
starts at 128 bits and doubles (to 1024) while the verdict is undecided.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import expr as ex
from .claim import FINAL, NameLookup

__all__ = ["Certificate", "CertificationError", "certify_point", "estimate_cost", "ArbContext",
           "run_recursion", "SECONDS_PER_MODE_STEP"]

#: measured cost of one mode-step of the interval recursion (student with a parent; a
#: hard-label model costs about half), for :func:`estimate_cost`
SECONDS_PER_MODE_STEP = 2.5e-6
_APPROXIMATE = ("ode", "continuum")


class CertificationError(Exception):
    """The point cannot be certified (a quantity without an interval version, an approximate
    method, a Python function that does not accept intervals)."""


def _flint():
    try:
        import flint
    except ImportError:  # pragma: no cover - the 'certified' extra
        raise CertificationError("certification needs python-flint: pip install 'spectral-theory[certified]'") from None
    return flint


@dataclass
class Certificate:
    """The interval re-evaluation of one point: ``status`` is ``"violated"`` (proved false
    there), ``"holds"`` (rigorously true there, with the margin), ``"undecided"`` or
    ``"declined"`` (not attempted: ``reason``)."""

    status: str
    params: dict = field(default_factory=dict)
    ratio: tuple[float, float] | None = None
    values: dict[str, tuple[float, float]] = field(default_factory=dict)
    prec: int = 0
    seconds: float = 0.0
    mode_steps: int = 0
    reason: str = ""
    constant: bool = False  # a claim whose constant is found: the ratio is that constant
    balls: dict[str, str] = field(default_factory=dict)  # each enclosure as arb prints it (mid +/- rad)
    op: str = "<="  # the inequality's operator (a found constant is bounded above for '>=')

    @classmethod
    def declined(cls, reason: str) -> Certificate:
        return cls(status="declined", reason=reason)

    @property
    def proves_violation(self) -> bool:
        return self.status == "violated"

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "params": self.params, "ratio": list(self.ratio) if self.ratio else None,
                "ratio_is_constant": self.constant,
                "values": {k: list(v) for k, v in self.values.items()}, "balls": dict(self.balls),
                "prec_bits": self.prec,
                "seconds": self.seconds, "mode_steps": self.mode_steps, "reason": self.reason}

    def summary(self) -> str:
        if self.status == "declined":
            return f"certificate: {self.reason}"
        head = {"violated": "CERTIFIED COUNTEREXAMPLE: the claim is false at this point",
                "holds": "certified at this point: the claim holds there",
                "undecided": "certification undecided at this point"}[self.status]
        lines = [f"certificate ({self.prec}-bit arb, {self.mode_steps} mode-steps, {self.seconds:.2f} s): {head}"]
        for k, (lo, hi) in self.values.items():
            if k in ("ratio", "constant", "largest_valid"):
                continue
            lines.append(f"  {k} in {self.balls.get(k) or f'[{lo:.17g}, {hi:.17g}]'}")
        ball = self.balls.get("ratio") or (f"[{self.ratio[0]:.17g}, {self.ratio[1]:.17g}]" if self.ratio else "")
        if self.ratio is not None and self.constant and self.op in (">=", ">"):
            big = self.balls.get("largest_valid") or ""
            lines.append(f"  largest valid constant here (lhs/rhs) in {big}: the largest constant is at most "
                         f"{self.values.get('largest_valid', (math.nan, math.nan))[1]:.6g}")
        elif self.ratio is not None and self.constant:
            lines.append(f"  constant needed here in {ball}: the smallest constant is at least "
                         f"{self.ratio[0]:.6g}")
        elif self.ratio is not None:
            lines.append(f"  ratio in {ball}"
                         + (f"; rigorous margin >= {1.0 - self.ratio[1]:.6g}" if self.status == "holds" else "")
                         + ("; > 1: the claim is false here" if self.status == "violated" else ""))
        if self.reason:
            lines.append(f"  {self.reason}")
        return "\n".join(lines)


def _bounds(x: Any) -> tuple[float, float]:
    flint = _flint()
    if not isinstance(x, flint.arb):
        v = float(x)
        return v, v
    if not x.is_finite():
        return -math.inf, math.inf
    return float(x.lower()), float(x.upper())


# ---------------------------------------------------------------------------- arb backend
class _ArbOps:
    """The :func:`spectral_theory.claims.expr.evaluate` backend in ``arb``."""

    def __init__(self):
        self.flint = _flint()
        self.arb = self.flint.arb

    def integer(self, v: int) -> Any:
        return self.arb(v)

    def rational(self, p: int, q: int) -> Any:
        return self.arb(p) / q

    def number(self, v: Any) -> Any:
        # a decimal literal of a claim (e.g. 0.2) means the double nearest it, as a parameter
        # value 0.2 and a scenario field lr = 0.2 do: one convention for every number written
        # (docs/claims.md, "Numbers"); operations on them are then exact real operations
        return self.arb(float(v))

    def number_symbol(self, name: str) -> Any:
        """pi and E as balls that contain them (not as rounded decimals)."""
        if name == "pi":
            return self.arb.pi()
        if name == "E":
            return self.arb(1).exp()
        raise CertificationError(f"the constant {name!r} has no interval version")

    def ipow(self, x: Any, n: int) -> Any:
        x = self.arb(x)
        return x**n if n >= 0 else 1 / x ** (-n)

    def pow(self, x: Any, y: Any) -> Any:
        return self.arb(x) ** self.arb(y)

    def call(self, name: str, *args: Any) -> Any:
        args = [self.arb(a) for a in args]
        if name == "abs":
            return abs(args[0])
        if name == "min":
            out = args[0]
            for a in args[1:]:
                out = out.min(a)
            return out
        if name == "max":
            out = args[0]
            for a in args[1:]:
                out = out.max(a)
            return out
        if name == "sign":
            x = args[0]
            if x > 0:
                return self.arb(1)
            if x < 0:
                return self.arb(-1)
            if x == 0:
                return self.arb(0)
            return self.arb(0, 1)
        if name == "ceil":
            return -((-args[0]).floor())
        return getattr(args[0], name)()

    def modesum(self, inner: Any, env: Any) -> Any:
        arrays = {k: env(f"mode:{k}") for k in ex.MODE_SYMBOLS}
        total = self.arb(0)
        for j in range(len(arrays["lam"])):
            def mode_env(name: str, j: int = j) -> Any:
                return arrays[name][j] if name in arrays else env(name)

            total += self.arb(inner(mode_env))
        return total

    def floor_abs(self, h: Any) -> Any:
        a = abs(self.arb(h))
        return a if a > 0 else a.max(self.arb(1e-300))

    def surely_gt(self, x: Any, y: float) -> bool:
        return bool(self.arb(x) > y)

    def surely_ge(self, x: Any, y: float) -> bool:
        return bool(self.arb(x) >= y)

    def maximum(self, xs: list) -> Any:
        """A ball enclosing the max of the balls ``xs`` (every member counts, not the midpoints)."""
        out = self.arb(xs[0])
        for x in xs[1:]:
            out = out.max(self.arb(x))
        return out

    def greater(self, x: Any, y: Any) -> bool:
        return float(self.arb(x).mid()) > float(self.arb(y).mid())

    def inf(self) -> Any:
        return self.arb.pos_inf()

    def slope(self, steps: list[int], ys: list[Any]) -> Any:
        """Least-squares slope of log y against log t, in arb (``sum w_k log y_k`` with the
        centred weights ``w_k = (X_k - mean X)/Sxx``, ``sum w_k = 0``)."""
        X = [self.arb(t).log() for t in steps]
        n = len(X)
        xm = sum(X, self.arb(0)) / n
        sxx = sum(((x - xm) ** 2 for x in X), self.arb(0))
        out = self.arb(0)
        for x, y in zip(X, ys, strict=True):
            out += (x - xm) / sxx * self.arb(y).log()
        return out


# ---------------------------------------------------------------------------- the recursion
def _problem_arrays(data: dict, d: int, arb: Any) -> tuple[list, list]:
    """Eigenvalues and theta^2 in arb from the scenario-file dict's parameters."""
    p = data["problem"]
    sp, tg = p["spectrum"], p["target"]
    if sp["kind"] == "powerlaw":
        a, c = arb(sp["a"]), arb(sp.get("scale", 1.0))
        lam = [c * arb(i) ** (-a) for i in range(1, d + 1)]
    elif sp["kind"] == "exponential":
        r, c = arb(sp["rate"]), arb(sp.get("scale", 1.0))
        lam = [c * (-(r * (i - 1))).exp() for i in range(1, d + 1)]
    else:
        lam = [arb(float(v)) for v in sp["values"]]
    if tg["kind"] == "powerlaw":
        b, c = arb(tg["b"]), arb(tg.get("scale", 1.0))
        th = [c * arb(i) ** (-b) for i in range(1, d + 1)]
    else:
        th = [arb(float(v)) for v in tg["values"]]
    return lam, th


def _speeds(model: Any, lam: list, arb: Any) -> list:
    if model.speeds is not None:
        return [arb(float(v)) for v in model.speeds]
    if model.capacity is not None:
        return [v if i < model.capacity else arb(0) for i, v in enumerate(lam)]
    return list(lam)


@dataclass
class _Run:
    """Enclosures recorded for one lineage: per model, risk and disagreement at steps, the
    final moments, the running minimum of the risk."""

    risk: dict[str, dict[int, Any]] = field(default_factory=dict)
    disagreement: dict[str, dict[int, Any]] = field(default_factory=dict)
    M: dict[str, list] = field(default_factory=dict)
    mu: dict[str, list] = field(default_factory=dict)
    oracle: dict[str, Any] = field(default_factory=dict)
    mode_steps: int = 0


def run_recursion(scenario: Any, data: dict, steps: dict[str, list[int]], *, theta_on: bool = True,
                  noise_on: bool = True, track_min: bool = False) -> _Run:
    """The §4 recursion of a chain scenario in arb (module docstring). ``steps[model]``: the
    steps at which to record its excess risk and disagreement; ``theta_on``/``noise_on``:
    the sources (bias row: noise off; variance row: target off)."""
    flint = _flint()
    arb = flint.arb
    prob = scenario.problem
    d = prob.d
    lam, th = _problem_arrays(data, d, arb)
    if not theta_on:
        th = [arb(0)] * d
    sigma2 = arb(float(prob.noise)) if noise_on else arb(0)
    kappa = arb(float(prob.kappa))
    names = [m.name for m in scenario.models]
    M: dict[tuple[str, str], list] = {}
    mu: dict[str, list] = {}
    out = _Run()
    for m in scenario.models:
        g = m.name
        p = m.teacher
        alpha = arb(1.0) if p is None else arb(float(m.alpha if m.alpha is not None else 0.0))
        c = 1 - alpha
        inv_B = 1 / arb(int(m.batch))
        noise = alpha * alpha * sigma2
        s = _speeds(m, lam, arb)
        earlier = names[: names.index(g)]
        mu[g] = [arb(-1)] * d
        M[(g, g)] = list(th)
        for h in earlier:
            M[(g, h)] = [-mh * t2 for mh, t2 in zip(mu[h], th, strict=True)]
        moving = [i for i in range(d) if s[i] != 0]
        want = set(int(t) for t in steps.get(g, []))
        rec_r: dict[int, Any] = {}
        rec_d: dict[int, Any] = {}
        mins: list[Any] = []  # the running minimum of the risk (oracle), when tracked

        def record(t: int, g: str = g, p: str | None = p, want: set = want, rec_r: dict = rec_r,
                   rec_d: dict = rec_d, mins: list = mins) -> None:
            if t in want or track_min:
                r = sum(M[(g, g)], arb(0))
                if t in want:
                    rec_r[t] = r
                    if p is not None:
                        rec_d[t] = sum((M[(g, g)][i] - 2 * M[(g, p)][i] + M[(p, p)][i] for i in range(d)), arb(0))
                if track_min:
                    mins[:] = [r if not mins else mins[0].min(r)]

        record(0)
        t = 0
        Mpp = M[(p, p)] if p is not None else None
        mup = mu[p] if p is not None else None
        const_pp = sum(Mpp, arb(0)) * c * c if p is not None else arb(0)
        for lr, length in m.phases():
            # the §4 step as the linear map it is (U substituted, coefficients per phase):
            #   M_gg' = a M_gg + 2 c x (1 - q x) M_gp + c^2 q x^2 M_pp + (x^2/B) (sum_j U_j + noise)
            #   M_gh' = (1 - x) M_gh + c x M_ph,   mu_g' = (1 - x) mu_g + c x mu_p
            # with a = 1 - 2x + q x^2 and sum_j U_j = sum M_gg - 2c sum M_gp + c^2 sum M_pp, so
            # that the balls' radii contract as the moments do (a form with M_gg twice would
            # widen them by (1 + x)^2 per step)
            x = [arb(float(lr)) * s[i] for i in moving]
            q = 1 + (kappa - 2) * inv_B
            A = [1 - 2 * xi + q * xi * xi for xi in x]
            Bc = [xi * xi * inv_B for xi in x]
            one_x = [1 - xi for xi in x]
            if p is not None:
                E = [2 * c * xi * (1 - q * xi) for xi in x]
                F = [c * c * q * xi * xi * Mpp[i] for xi, i in zip(x, moving, strict=True)]
                G = {h: [c * xi * M[(p, h)][i] for xi, i in zip(x, moving, strict=True)] for h in earlier}
                Hm = [c * xi * mup[i] for xi, i in zip(x, moving, strict=True)]
            for _ in range(int(length)):
                Mgg = M[(g, g)]
                S = sum(Mgg, arb(0))
                if p is not None:
                    Mgp = M[(g, p)]
                    S = S - 2 * c * sum(Mgp, arb(0)) + const_pp
                base = S + noise
                new_gg = list(Mgg)
                if p is None:
                    for k, i in enumerate(moving):
                        new_gg[i] = A[k] * Mgg[i] + Bc[k] * base
                else:
                    for k, i in enumerate(moving):
                        new_gg[i] = A[k] * Mgg[i] + E[k] * Mgp[i] + F[k] + Bc[k] * base
                for h in earlier:
                    Mgh = M[(g, h)]
                    new = list(Mgh)
                    if p is None:
                        for k, i in enumerate(moving):
                            new[i] = one_x[k] * Mgh[i]
                    else:
                        Gh = G[h]
                        for k, i in enumerate(moving):
                            new[i] = one_x[k] * Mgh[i] + Gh[k]
                    M[(g, h)] = new
                mug = mu[g]
                new_mu = list(mug)
                if p is None:
                    for k, i in enumerate(moving):
                        new_mu[i] = one_x[k] * mug[i]
                else:
                    for k, i in enumerate(moving):
                        new_mu[i] = one_x[k] * mug[i] + Hm[k]
                mu[g] = new_mu
                M[(g, g)] = new_gg
                t += 1
                out.mode_steps += len(moving) * (1 + len(earlier))
                record(t)
        for h in earlier:  # the symmetric entries
            M[(h, g)] = M[(g, h)]
        out.risk[g] = rec_r
        out.disagreement[g] = rec_d
        out.M[g] = M[(g, g)]
        out.mu[g] = mu[g]
        if mins:
            out.oracle[g] = mins[0]
    return out


# ---------------------------------------------------------------------------- contexts
class ArbContext(NameLookup):
    """The interval twin of :class:`spectral_theory.claims.claim.Context`: the same names, as
    ``arb`` balls, from :func:`run_recursion` and §5-§6 formulas."""

    def __init__(self, claim: Any, params: dict, *, t: int | None = None, extra_set: dict | None = None,
                 shared: dict | None = None):
        from .claim import Context, PointError

        self.claim = claim
        self.ops = _ArbOps()
        self.arb = self.ops.arb
        self.params = dict(params)
        self._t = t
        self.model = claim.model
        self._shared = shared if shared is not None else {"runs": {}, "mode_steps": 0}
        try:
            self.float_ctx = Context(claim, params, t=t, extra_set=extra_set, cache={})
        except PointError as err:
            raise CertificationError(f"the point is not a valid scenario: {err}") from None
        self.data, self.obj = self.float_ctx.data, self.float_ctx.obj
        self.is_transfer = self.float_ctx.is_transfer
        self._steps_cache: dict[str, list[int]] | None = None

    @property
    def t(self) -> int:
        return self.float_ctx.at_step(self._t).t if self._t is not None else self.float_ctx.t

    def at_step(self, t: int) -> ArbContext:
        c = ArbContext.__new__(ArbContext)
        c.__dict__.update(self.__dict__)
        c._t = int(t)
        c.float_ctx = self.float_ctx.at_step(t)
        return c

    def child(self, params: dict, extra: dict) -> ArbContext:
        merged = {**self.params, **params}
        return ArbContext(self.claim, merged, t=self._t, extra_set={k: v for k, v in extra.items() if k},
                          shared={"runs": {}, "mode_steps": 0, "parent": self._shared})

    # ------------------------------------------------------------------ values
    def param(self, name: str) -> Any:
        v = self.params[name]
        return v if isinstance(v, str) else self.arb(float(v))

    def quantity(self, q: Any) -> Any:
        from .claim import Quantity

        if isinstance(q, ex.Expr):
            return ex.evaluate(q, self.value, self.ops)
        if isinstance(q, Quantity):
            if q.fn is not None:
                return self._call(q.fn)
            if q.method in _APPROXIMATE or q.options:
                raise CertificationError(f"quantity {q.name!r} uses method {q.method!r} {q.options or ''}: an "
                                         "approximation of the recursion, with no interval version")
            ctx = self
            if q.set:
                ctx = self.child({}, dict(q.set))
            if q.at is not None:
                ctx = ctx.at_step(q.at)
            return ctx.builtin(q.name, model=q.model)
        if callable(q):
            return self._call(q)
        return self.arb(float(q))

    def _call(self, fn: Any) -> Any:
        try:
            v = fn(self)
        except CertificationError:
            raise
        except Exception as err:  # noqa: BLE001 - a user function that needs floats
            raise CertificationError(f"the function {getattr(fn, '__name__', fn)!r} cannot be evaluated in "
                                     f"interval arithmetic ({type(err).__name__}: {err})") from None
        if not isinstance(v, self.arb):
            try:
                v = self.arb(v)
            except Exception:  # noqa: BLE001
                raise CertificationError(f"the function {getattr(fn, '__name__', fn)!r} returned {v!r}, "
                                         "not a number") from None
        return v

    def result(self, *a: Any, **k: Any) -> Any:
        raise CertificationError("a Python function that reads ctx.result() has no interval version; "
                                 "use ctx.value(name)")

    def report(self, *a: Any, **k: Any) -> Any:
        raise CertificationError("a Python function that reads ctx.report() has no interval version; "
                                 "use ctx.value(name)")

    def _lineage_data(self, scn: Any) -> dict:
        return self.data

    def _run(self, model: str | None, rows: str = "full", track_min: bool = False) -> tuple[_Run, Any]:
        scn = self.float_ctx.scenario_for(model)
        key = (scn.name, rows, track_min)
        runs = self._shared["runs"]
        if key not in runs:
            if self.claim.method in _APPROXIMATE or self.claim.options:
                raise CertificationError(f"the claim's method {self.claim.method!r} {self.claim.options or ''} "
                                         "is an approximation of the recursion: nothing to certify against")
            steps = self._steps(scn)
            runs[key] = run_recursion(scn, self.data, steps, theta_on=rows != "variance",
                                      noise_on=rows != "bias", track_min=track_min)
            shared = self._shared
            while shared is not None:  # a child's runs count in the certificate of its parent
                shared["mode_steps"] += runs[key].mode_steps
                shared = shared.get("parent")
        return runs[key], scn

    def _steps(self, scn: Any) -> dict[str, list[int]]:
        from ..api import resolve_at

        need = set(int(s) for s in self.claim.steps_needed(self.float_ctx)) | {0}
        out = {}
        at = resolve_at(scn, None)
        for m in scn.models:
            st = set(min(s, m.steps) for s in need) | {m.steps} | set(int(v) for v in at[m.name])
            if self.claim.at is not None:
                st.add(min(self.claim.at, m.steps))
            out[m.name] = sorted(st)
        return out

    def _step_for(self, m: Any) -> int:
        from .claim import PointError

        try:
            return self.float_ctx.step_for(m)
        except PointError as err:
            raise CertificationError(str(err)) from None

    def builtin(self, name: str, *, model: str | None = None) -> Any:
        arb = self.arb
        if name.startswith("mode:"):
            return self._mode(name[5:], model)
        if "(" in name:
            fname, idx = name[:-1].split("(")
            run, scn = self._run(model)
            m = self.float_ctx.model_spec(model)
            i = int(idx) - 1
            if fname == "M":
                return run.M[m.name][i]
            if fname == "mu":
                return run.mu[m.name][i]
            th = self._mode("theta2", model)[i]
            return run.M[m.name][i] / th
        if name in ("d", "sigma2", "kappa", "B", "T", "k", "alpha", "q", "t", "eta"):
            if name == "q":
                m = self.float_ctx.model_spec(model)
                return (arb(int(m.batch)) + arb(float(self.obj.problem.kappa)) - 2) / m.batch
            return arb(float(self.float_ctx.builtin(name, model=model)))
        if name in ("a", "b"):
            return arb(float(self.float_ctx.builtin(name)))
        if name == "lam1":
            lam = self._mode("lam", model)
            out = lam[0]
            for v in lam[1:]:
                out = out.max(v)
            return out
        if name == "tr":
            return sum(self._mode("s", model), arb(0))
        if name == "x_max":
            s = self._mode("s", model)
            smax = s[0]
            for v in s[1:]:
                smax = smax.max(v)
            return arb(float(self.float_ctx.builtin("eta", model=model))) * smax
        if name in ("kernel_norm", "map_radius", "stability_limit", "risk_floor"):
            return self._stability(name, model)
        if name in ("excess_risk", "risk", "bias", "variance", "disagreement"):
            rows = {"bias": "bias", "variance": "variance"}.get(name, "full")
            run, scn = self._run(model, rows)
            m = self.float_ctx.model_spec(model)
            t = self._step_for(m)
            if name == "disagreement":
                if m.teacher is None:
                    raise CertificationError(f"model {m.name!r} has no teacher: no disagreement")
                return run.disagreement[m.name][t]
            v = run.risk[m.name][t]
            return v + arb(float(self.obj.problem.noise)) if name == "risk" else v
        if name == "max_excess_risk":
            run, scn = self._run(model)
            m = self.float_ctx.model_spec(model)
            from ..api import resolve_at

            steps = resolve_at(scn, None)[m.name]
            out = None
            for st in steps:
                v = run.risk[m.name][int(st)]
                out = v if out is None else out.max(v)
            return out
        if name == "oracle_risk":
            run, scn = self._run(model, track_min=True)
            return run.oracle[self.float_ctx.model_spec(model).name]
        if self.is_transfer:
            return self._metric(name)
        raise CertificationError(f"the quantity {name!r} has no interval version")

    def _final(self, model: str) -> Any:
        return self.at_step(FINAL).builtin("excess_risk", model=model)

    def _metric(self, name: str) -> Any:
        kind = self.obj.kind
        if name == "final_risk":
            return self._final(self.model)
        if kind == "kd" and name in ("kd_gain", "kd_gain_difference"):
            hard, kd = self._final("hard_student"), self._final("kd_student")
            return hard / kd if name == "kd_gain" else hard - kd
        if kind == "w2s" and name == "pgr":
            w, s, c = self._final("weak_teacher"), self._final("w2s_student"), self._final("strong_ceiling")
            return (w - s) / (w - c)
        if kind == "chain" and name == "final_over_first":
            return self._final(f"g{self.obj.generations - 1}") / self._final("g0")
        if name == "student_teacher_disagreement":
            student = {"kd": "kd_student", "w2s": "w2s_student"}.get(kind)
            if student:
                return self.at_step(FINAL).builtin("disagreement", model=student)
        raise CertificationError(f"the report metric {name!r} has no interval version")

    def _mode(self, sym: str, model: str | None) -> list:
        key = ("modes", model)
        cache = self._shared.setdefault("arrays", {})
        if key not in cache:
            arb = self.arb
            d = self.obj.problem.d
            lam, th = _problem_arrays(self.data, d, arb)
            m = self.float_ctx.model_spec(model)
            cache[key] = {"lam": lam, "theta2": th, "i": [arb(i) for i in range(1, d + 1)],
                          "s": _speeds(m, lam, arb)}
        return cache[key][sym]

    def _stability(self, name: str, model: str | None) -> Any:
        arb = self.arb
        m = self.float_ctx.model_spec(model)
        B = arb(int(m.batch))
        kappa = arb(float(self.obj.problem.kappa))
        q = (B + kappa - 2) / B
        s = [v for v in self._mode("s", model) if v != 0]
        lrs = np.array([lr for lr, _ in m.phases()], dtype=float)
        eta = arb(float(lrs.max() if name != "risk_floor" else lrs[-1])) if len(lrs) else arb(0)

        def g(e: Any) -> Any:  # g(1) = sum x/(B (2 - q x)) (§5, condition 2)
            tot = arb(0)
            for v in s:
                den = B * (2 - q * e * v)
                if not den > 0:
                    return arb.pos_inf()
                tot += e * v / den
            return tot

        if name == "kernel_norm":
            return g(eta)
        if name == "risk_floor":
            K = g(eta)
            if not K < 1:
                raise CertificationError("the step is not certainly stable: no floor")
            th = self._mode("theta2", model)
            f_inf = sum((th[i] for i, v in enumerate(self._mode("s", model)) if v == 0), arb(0))
            return (f_inf + K * arb(float(self.obj.problem.noise))) / (1 - K)
        if float(q.mid()) < 0.5:
            raise CertificationError("B = 1 with kurtosis < 1.5: condition 3 of §5 (the bottom eigenvalue) "
                                     "has no interval version here")
        smax = s[0]
        for v in s[1:]:
            smax = smax.max(v)
        xbound = arb(2).min(2 / q)  # x < 2 and a_i < 1 (§5, conditions 1-2)
        if name == "map_radius":
            # top eigenvalue of diag(a) + b 1^T: the root of sum b_i/(z - a_i) = 1 above max a_i
            xs = [eta * v for v in s]
            a = [1 - 2 * x + q * x * x for x in xs]
            b = [x * x / B for x in xs]
            amax = a[0]
            for v in a[1:]:
                amax = amax.max(v)

            def sec(z: Any) -> Any:
                return sum((bi / (z - ai) for ai, bi in zip(a, b, strict=True)), arb(0))

            lo_f = float(amax.upper())
            while not arb(lo_f) > amax:  # the double of the upper end may round below it
                lo_f = math.nextafter(lo_f, math.inf)
            lo = arb(lo_f)
            s_lo = sec(lo)
            if s_lo <= 1:  # the root lies in [max a_i, lo]: a ball of a few ulps
                return arb.union(amax, lo)
            if not s_lo > 1:
                raise CertificationError("map_radius: the secular equation's sign at the top of the diagonal "
                                         "is undecided at this precision")
            step = arb(1)
            hi = lo + step
            while not sec(hi) < 1:
                step *= 2
                hi = lo + step
            for _ in range(200):
                mid = (arb(float(lo.mid())) + arb(float(hi.mid()))) / 2
                mid = arb(float(mid.mid()))
                val = sec(mid) if mid > amax else arb.pos_inf()
                if val > 1:
                    lo = mid
                elif val < 1:
                    hi = mid
                else:
                    break
                if float(hi.mid()) - float(lo.mid()) <= 1e-15 * abs(float(hi.mid())):
                    break
            top = arb.union(lo, hi)
            return top
        # stability_limit: the end of the interval where g(1) < 1 and x < xbound
        ebound = xbound / smax
        below = arb(float(ebound.lower()) * (1 - 1e-15))
        g_below = g(below)
        if g_below < 1:  # g(1) < 1 up to the bound: the limit is in [below, ebound]
            return arb.union(below, ebound)
        # bisection between g(0) = 0 < 1 and g(hi) > 1; while no hi is known to have g > 1 (g(below)
        # undecided), the upper end of the enclosure is the bound itself (the limit never exceeds it)
        hi_ok = bool(g_below > 1)
        lo, hi = arb(0), below
        for _ in range(200):
            mid = arb(float(((lo + hi) / 2).mid()))
            val = g(mid)
            if val < 1:
                lo = mid
            elif val > 1:
                hi, hi_ok = mid, True
            else:
                break
            if float(hi.mid()) - float(lo.mid()) <= 1e-16 * float(hi.mid()):
                break
        return arb.union(lo, hi if hi_ok else ebound)


# ---------------------------------------------------------------------------- certification
#: cost of one mode-step at 256, 512 and 1024 bits relative to 128 (measured: 1.6, 3.1, 3.7
#: and 8.3 microseconds), for the precision reruns of an undecided certificate
PREC_FACTORS = {128: 1.0, 256: 2.0, 512: 2.5, 1024: 5.5}


def _prec_factor(prec: int) -> float:
    return PREC_FACTORS.get(prec, max(1.0, prec / 128 * 0.7))


def _scenario_work(ctx: Any) -> int:
    """Mode-steps of one run of the recursion over every model of ``ctx``'s scenario (or of
    every lineage of its comparison): model ``j`` of a chain carries ``1 + j`` pair rows."""
    scns = list(ctx.obj.lineages().values()) if ctx.is_transfer else [ctx.obj]
    work = 0
    for scn in scns:
        for j, m in enumerate(scn.models):
            moving = int((m.speed_profile(scn.problem.eigenvalues) > 0).sum())
            work += int(m.steps) * moving * (1 + j)
    return work


def _names_used(claim: Any) -> set[str]:
    """Every name the claim's values and quantities mention (to count the recursion's runs)."""
    from .claim import Quantity

    out: set[str] = set()
    vals = [getattr(claim, k, None) for k in ("lhs", "rhs", "value", "limit", "expected")]
    vals += list(claim.quantities.values())
    for v in vals:
        if isinstance(v, ex.Expr):
            out |= set(v.names)
        elif isinstance(v, Quantity):
            out.add(v.name)
        elif callable(v):
            out.add("<callable>")
    if getattr(claim, "kind", "") == "rate":
        out.add(claim.quantity)
    if claim.where is not None and not callable(claim.where):
        out |= set(claim.where.names)
    return out


def estimate_cost(claim: Any, params: dict) -> dict[str, Any]:
    """Estimated cost of certifying ``claim`` at ``params``: ``mode_steps`` of the interval
    recursion at 128 bits and ``seconds`` (times :data:`SECONDS_PER_MODE_STEP`), and
    ``seconds_max`` with every precision rerun to 1024 bits (:data:`PREC_FACTORS`).

    Counted from the scenarios the certificate will run, built at the point: each value of a
    limit, monotonicity or rate parameter (with its own ``T`` and ``d``), each quantity with
    ``set = {...}`` (its own scenario), and one run per row the claim reads (full, bias row,
    variance row, the running minimum of ``oracle_risk``)."""
    from .claim import SYMBOLS, Context, PointError, Quantity

    try:
        ctx = Context(claim, params)
        if getattr(claim, "param", None) not in (None, "t") and getattr(claim, "values", ()):
            ctxs = [claim.vary(ctx, claim.param, claim.path, v) for v in claim.values]
        else:
            ctxs = [ctx]
        names = _names_used(claim)
        rows = sum(1 for r in ("bias", "variance", "oracle_risk") if r in names)
        # the full row: the risk and what is made of it; names that need no run (symbols, §5-§6
        # stability quantities, parameters) do not count
        free = set(SYMBOLS) | {"lam1", "tr", "x_max", "kernel_norm", "map_radius", "stability_limit",
                               "risk_floor", "modesum", "lam", "theta2", "s", "i"} | set(claim.domain.names)
        rows += 1 if names - {"bias", "variance", "oracle_risk"} - free else 0
        rows = max(rows, 1)
        work = 0
        for c in ctxs:
            work += rows * _scenario_work(c)
            for q in claim.quantities.values():
                if isinstance(q, Quantity) and q.set and q.fn is None:
                    work += _scenario_work(c.child({}, dict(q.set)))
    except (PointError, CertificationError, ValueError, OverflowError, MemoryError) as err:
        return {"seconds": 0.0, "seconds_max": 0.0, "why": str(err), "mode_steps": 0}
    except Exception as err:  # noqa: BLE001 - a Python scenario builder or quantity that fails here
        return {"seconds": 0.0, "seconds_max": 0.0, "why": f"{type(err).__name__}: {err}", "mode_steps": 0}
    seconds = work * SECONDS_PER_MODE_STEP
    return {"seconds": seconds, "seconds_max": seconds * sum(PREC_FACTORS.values()), "mode_steps": int(work),
            "why": f"{work:.3g} mode-steps of the interval recursion ({len(ctxs)} scenario(s), {rows} row(s))"}


def certify_point(claim: Any, params: dict, *, prec: int = 128, max_prec: int = 1024,
                  max_seconds: float | None = None) -> Certificate:
    """Re-evaluate ``claim`` at ``params`` in interval arithmetic (module docstring): a
    :class:`Certificate` whose status is ``violated`` (proved), ``holds`` (rigorous at the
    point) or ``undecided`` (the enclosure straddles the bound at ``max_prec`` bits). Raises
    :class:`CertificationError` when some value has no interval version. ``max_seconds``: no
    precision rerun that would end past it (estimated from the first pass and
    :data:`PREC_FACTORS`); the certificate is then ``undecided`` and says so."""
    flint = _flint()
    start = time.perf_counter()
    old = flint.ctx.prec
    first, prec0 = None, prec
    try:
        while True:
            flint.ctx.prec = prec
            ctx = ArbContext(claim, params)
            inside = _inside(claim, ctx)
            if inside is False:
                cert = Certificate(status="undecided", params=dict(params), prec=prec,
                                   reason="the point is not certainly inside the claim's 'where' condition")
            else:
                r, info = claim.ratio(ctx)
                r = flint.arb(r)
                strict = getattr(claim, "op", "<=") in ("<", ">")
                finds = getattr(claim, "finds_constant", False) and getattr(claim, "max_constant", None) is None
                if finds:
                    status = "holds" if r.is_finite() else "undecided"
                elif (r >= 1) if strict else (r > 1):
                    status = "violated"
                elif (r < 1) if strict else (r <= 1):
                    status = "holds"
                else:
                    status = "undecided"
                values = {k: _bounds(v) for k, v in info.items()
                          if isinstance(v, flint.arb) or isinstance(v, (int, float))}
                balls = {k: v.str(20, radius=True) for k, v in {**info, "ratio": r}.items()
                         if isinstance(v, flint.arb)}
                cert = Certificate(status=status, params=dict(params), ratio=_bounds(r), values=values, prec=prec,
                                   constant=finds, balls=balls, op=getattr(claim, "op", "<="))
            cert.mode_steps = ctx._shared["mode_steps"]
            elapsed = time.perf_counter() - start
            first = elapsed if first is None else first
            if cert.status != "undecided" or prec >= max_prec:
                cert.seconds = elapsed
                return cert
            # the next pass costs the first one scaled by the cost of a mode-step at its precision
            nxt = elapsed + first * _prec_factor(prec * 2) / _prec_factor(prec0)
            if max_seconds is not None and nxt > max_seconds:
                cert.seconds = elapsed
                cert.reason = (f"undecided at {prec} bits; a rerun at {prec * 2} bits (about {nxt - elapsed:.0f} s) "
                               f"would pass the time allowed ({max_seconds:g} s): pass certify=True to force")
                return cert
            prec *= 2
    finally:
        flint.ctx.prec = old


def _inside(claim: Any, ctx: ArbContext) -> bool | None:
    """True when the point is certainly inside the claim's condition (None: no condition)."""
    if claim.where is None:
        return None
    if callable(claim.where):
        raise CertificationError("a Python 'where' function has no interval version")
    for lhs, op, rhs in claim.where.parts:
        g, h = claim.value_of(lhs, ctx), claim.value_of(rhs, ctx)
        ok = {"<": g < h, "<=": g <= h, ">": g > h, ">=": g >= h}[op]
        if not ok:
            return False
    return True

