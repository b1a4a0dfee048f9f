"""Claims: statements about the quantities the calculator computes, over a parameter domain.

Kinds (``docs/claims.md``): :class:`Inequality` (``lhs <= C rhs``, ``C`` given or found),
:class:`Equality` (up to ``rtol |rhs| + atol``), :class:`Limit` (``f -> L`` as a parameter runs
through a sequence), :class:`Monotone` (in a parameter or in time) and :class:`Rate` (a log-log
slope, through :mod:`spectral_theory.analysis.rates`). Every kind reduces a parameter point to
one **ratio**: the claim holds at the point iff ``ratio <= 1`` (``< 1`` for a strict
inequality), and the search (:mod:`spectral_theory.claims.search`) maximises it.

Values are expressions (:mod:`spectral_theory.claims.expr`), numbers, :class:`Quantity`
objects or Python callables of the evaluation :class:`Context`. A context is one parameter
point: it builds the scenario (or comparison) with :mod:`spectral_theory.claims.scenarios`
and computes quantities lazily with the project's solvers (``predict``, ``evaluate``,
``stability``); the certifier answers the same names in interval arithmetic.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import InstabilityError, SpecError
from . import expr as ex
from .domain import Domain, as_domain
from .scenarios import build, resolve_path, scenario_file_dict, set_path, spec_file_dict

__all__ = ["Quantity", "NameLookup", "Context", "Claim", "Inequality", "Equality", "Limit", "Monotone", "Rate",
           "QUANTITIES", "SYMBOLS", "PointError", "KINDS"]

#: built-in quantities (computed by the solvers) and what they are
QUANTITIES = {
    "excess_risk": "E(t) of the claim's model at step t (docs/theory.md §1)",
    "risk": "sigma2 + E(t)",
    "bias": "bias part of E(t) (noise set to 0)",
    "variance": "variance part of E(t) (target set to 0)",
    "disagreement": "E||phi_model(t) - phi_teacher||^2",
    "max_excess_risk": "max of E over the model's reported steps (the scenario's output)",
    "stability_limit": "largest stable constant step of the model (docs/theory.md §5)",
    "kernel_norm": "g(1) = sum_i b_i/(1 - a_i) at the model's largest step (inf if some a_i >= 1)",
    "map_radius": "spectral radius of the second-moment map at the model's largest step",
    "risk_floor": "constant-step floor (K sigma2 + f_inf)/(1 - K) at the model's last step (§6)",
    "x_max": "max over steps and modes of eta_t s_i",
    "lam1": "largest eigenvalue", "tr": "sum of the model's speeds",
    "oracle_risk": "min_t E(t) (comparisons: the report's oracle risk of the model)",
    "oracle_step": "argmin_t E(t) (comparisons)", "horizon": "spectral horizon (comparisons, §8)",
    "final_risk": "E at the end of training (comparisons)",
}
#: symbols read from the scenario at each point
SYMBOLS = {"d": "number of modes", "sigma2": "label-noise variance", "kappa": "latent kurtosis",
           "q": "(B + kappa - 2)/B", "a": "power-law spectrum exponent", "b": "power-law target exponent",
           "eta": "the model's step size (its largest)", "B": "the model's batch", "T": "the model's steps",
           "k": "the model's capacity (d if none)", "alpha": "the model's hard-label weight", "t": "the step"}
_REPORT_MODEL = {"oracle_risk", "oracle_step", "horizon", "final_risk"}
#: the step that means "the end of each model's training"
FINAL = 10**18
#: the most mode-operations one evaluation may cost (about a minute of the step-by-step solver)
MAX_COST = 3e9


class PointError(Exception):
    """A parameter point where the claim cannot be evaluated (an invalid scenario: it is left
    out of the search and counted)."""


@dataclass(frozen=True)
class Quantity:
    """A named quantity with its own options: ``Quantity("excess_risk", model="S",
    method="continuum", options={"d": None}, set={"problem.noise": 0.0})``, or a Python
    function of the :class:`Context` (``fn``)."""

    name: str = ""
    model: str | None = None
    at: int | None = None
    method: str | None = None
    options: dict = field(default_factory=dict)
    set: dict = field(default_factory=dict)
    fn: Callable[[Any], Any] | None = None

    def __post_init__(self):
        if self.fn is None and self.name not in QUANTITIES and not self.name:
            raise SpecError("quantity", self.name, f"must be one of {sorted(QUANTITIES)} or a report metric")


def _as_value(v: Any, field_: str, names: set[str]) -> Any:
    """An expression (a string, or a sympy expression in the allowed names), a number, a
    Quantity or a callable."""
    import sympy

    if isinstance(v, sympy.Basic):
        return ex.from_sympy(v, field=field_, names=names)
    if isinstance(v, (Quantity,)) or callable(v):
        return v
    if isinstance(v, (str, int, float)) and not isinstance(v, bool):
        return ex.parse(v, field=field_, names=names)
    raise SpecError(field_, v, "must be an expression string, a sympy expression, a number, a Quantity or a callable")


class NameLookup:
    """The order in which a claim's names are answered, shared by the float :class:`Context` and
    the interval ``certify.ArbContext``: a parameter (:meth:`param`), else a claim quantity
    (:meth:`quantity`), else a built-in (:meth:`builtin`)."""

    def value(self, name: str) -> Any:
        """The value of one name at this point."""
        if name in self.params:
            return self.param(name)
        q = self.claim.quantities.get(name)
        if q is not None:
            return self.quantity(q)
        return self.builtin(name)

    def param(self, name: str) -> Any:
        return self.params[name]


class Context(NameLookup):
    """One parameter point: the scenario built there and its quantities, computed lazily.

    ``value(name)`` answers a parameter, a symbol (:data:`SYMBOLS`), a built-in quantity
    (:data:`QUANTITIES`), a metric of a comparison's report, a claim quantity or ``M(i)``;
    ``result()``/``report()`` give the solver's answers for user callables.
    """

    def __init__(self, claim: Claim, params: dict[str, Any], *, t: int | None = None,
                 extra_set: dict | None = None, cache: dict | None = None):
        self.claim = claim
        self.params = dict(params)
        self.model = claim.model
        self._t = t
        self._cache = cache if cache is not None else {}
        self.data, self.obj = claim.build_at(self.params, extra_set or {})
        self.is_transfer = not hasattr(self.obj, "models")

    # ------------------------------------------------------------------ scenario facts
    @property
    def problem(self) -> Any:
        return self.obj.problem

    def scenario_for(self, model: str | None = None) -> Any:
        """The scenario holding ``model`` (a comparison's lineage)."""
        if not self.is_transfer:
            return self.obj
        model = model or self.model
        for scn in self.obj.lineages().values():
            if any(m.name == model for m in scn.models):
                return scn
        names = [m.name for s in self.obj.lineages().values() for m in s.models]
        raise SpecError("model", model, f"must be one of the comparison's models {names}")

    def model_spec(self, model: str | None = None) -> Any:
        model = model or self.model
        scn = self.scenario_for(model)
        if model is None:
            if len(scn.models) != 1:
                raise SpecError("model", None, f"name the claim's model: one of {[m.name for m in scn.models]}")
            return scn.models[0]
        return scn.model(model)

    @property
    def t(self) -> int:
        if self._t is not None:
            return int(self._t)
        at = self.claim.at
        return int(self.model_spec().steps if at is None else at)

    def step_for(self, m: Any) -> int:
        """The step at which to read model ``m``: :attr:`t`, or the end of ``m``'s training when
        the step is the default (the claim's model's end) or :data:`FINAL`. A step given
        explicitly (``at``, a monotonicity or rate step, a quantity's ``at``) beyond ``m``'s
        training makes the point invalid: nothing is computed there (never the last step instead)."""
        t = self.t
        if t <= m.steps:
            return t
        if self._t == FINAL or (self._t is None and self.claim.at is None):
            return int(m.steps)
        raise PointError(f"step t = {t} is beyond the training of model {m.name!r} (steps = {m.steps}): "
                         "use steps within 0..T, or vary T itself")

    def at_step(self, t: int) -> Context:
        """The same point at another step (shares the computed results)."""
        c = copy.copy(self)
        c._t = int(t)
        return c

    # ------------------------------------------------------------------ solver answers
    def _steps_needed(self) -> list[int]:
        return sorted(set(int(s) for s in self.claim.steps_needed(self)) | {self.t, 0})

    def result(self, method: str | None = None, options: dict | None = None, model: str | None = None):
        """The theory :class:`~spectral_theory.result.Result` of the scenario (or the lineage of
        ``model``), at every step the claim needs."""
        from ..api import predict

        scn = self.scenario_for(model)
        method = method or self.claim.method
        key = ("result", scn.name, method, tuple(sorted((options or {}).items())))
        if key not in self._cache:
            opts = {**self.claim.options, **(options or {})} if method == self.claim.method else dict(options or {})
            try:
                self._check_cost(scn, method, opts)
                self._cache[key] = predict(scn, at=self._steps_needed(), method=method, on_unstable="ignore",
                                           record_modes=False, **opts)
            except SpecError as err:
                raise PointError(str(err)) from None
        return self._cache[key]

    def _check_cost(self, scn: Any, method: str, opts: dict) -> None:
        """A point whose solve would cost more than :data:`MAX_COST` mode-operations (``auto``
        falling back to the step-by-step solver at ``T = 10^8``, say) is refused as invalid."""
        from ..api import resolve_solver

        solver, _ = resolve_solver(scn, method, opts)
        cost = solver.cost(scn)
        if cost > MAX_COST:
            raise PointError(f"a solve by {solver.name} would cost ~{cost:.3g} mode-operations here (over "
                             f"spectral_theory.claims.claim.MAX_COST = {MAX_COST:.3g}): choose a method that "
                             "applies (renewal for long constant phases) or a smaller domain")

    def report(self, method: str | None = None):
        """The :class:`~spectral_theory.transfer.TransferReport` of a comparison."""
        from ..transfer import evaluate

        if not self.is_transfer:
            raise SpecError("quantity", "report", "the claim's scenario is not a comparison (no [transfer] kind)")
        key = ("report", method or self.claim.method)
        if key not in self._cache:
            self._cache[key] = evaluate(self.obj, method=method or self.claim.method, on_unstable="ignore")
        return self._cache[key]

    # ------------------------------------------------------------------ values
    def quantity(self, q: Any) -> Any:
        if isinstance(q, ex.Expr):
            return ex.evaluate(q, self.value)
        if isinstance(q, Quantity):
            if q.fn is not None:
                return q.fn(self)
            ctx = self
            if q.set:
                ctx = Context(self.claim, self.params, t=self._t, extra_set=q.set, cache={})
            if q.at is not None:
                ctx = ctx.at_step(q.at)
            return ctx.builtin(q.name, model=q.model, method=q.method, options=q.options)
        if callable(q):
            return q(self)
        return float(q)

    def builtin(self, name: str, *, model: str | None = None, method: str | None = None,
                options: dict | None = None) -> Any:
        """A built-in quantity or symbol (:data:`QUANTITIES`, :data:`SYMBOLS`)."""
        if name.startswith("mode:"):
            return self._mode_array(name[5:], model)
        if "(" in name:
            fname, idx = name[:-1].split("(")
            return self._indexed(fname, int(idx), model, method, options)
        prob = self.problem
        if name == "d":
            return float(prob.d)
        if name == "sigma2":
            return float(prob.noise)
        if name == "kappa":
            return float(prob.kappa)
        if name in ("a", "b"):
            owner = prob.spectrum if name == "a" else prob.target
            if not hasattr(owner, name):
                raise SpecError(name, type(owner).__name__, f"'{name}' needs a power-law {'spectrum' if name == 'a' else 'target'}")
            return float(getattr(owner, name))
        if name == "lam1":
            return float(np.max(prob.eigenvalues))
        if name == "t":
            return float(self.t)
        m = self.model_spec(model)
        if name == "B":
            return float(m.batch)
        if name == "T":
            return float(m.steps)
        if name == "k":
            return float(m.capacity if m.capacity is not None else prob.d)
        if name == "alpha":
            return float(m.alpha if m.alpha is not None else 1.0)
        if name == "q":
            return (m.batch + prob.kappa - 2.0) / m.batch
        lrs = np.array([lr for lr, _ in m.phases()], dtype=float)  # constant phases: never T numbers
        if name == "eta":
            return float(np.max(lrs)) if lrs.size else 0.0
        speeds = m.speed_profile(prob.eigenvalues)
        if name == "tr":
            return float(np.sum(speeds))
        if name == "x_max":
            return float(np.max(lrs) * np.max(speeds)) if lrs.size else 0.0
        if name in ("stability_limit", "kernel_norm", "map_radius"):
            from .. import stability as stab

            if name == "stability_limit":
                return float(stab.stability_limit(speeds, m.batch, prob.kappa))
            eta = float(np.max(lrs)) if lrs.size else 0.0
            if name == "kernel_norm":
                return float(stab.kernel_norm(eta, speeds, m.batch, prob.kappa))
            return float(stab.map_radius(eta, speeds, m.batch, prob.kappa))
        if name == "risk_floor":
            from ..analysis.asymptotics import risk_floor

            try:
                return float(risk_floor(float(lrs[-1]), speeds, prob.theta2, prob.noise, batch=m.batch,
                                        kappa=prob.kappa))
            except ValueError:
                return math.inf
        if name in ("excess_risk", "risk", "bias", "variance", "disagreement", "max_excess_risk"):
            return self._curve_value(name, model, method, options)
        if self.is_transfer:
            rep = self.report(method)
            if name in _REPORT_MODEL:
                s = rep.models[model or self.model]
                return float({"oracle_risk": s.oracle_risk, "oracle_step": s.oracle_step,
                              "horizon": s.horizon, "final_risk": s.final_risk}[name])
            if name in rep.metrics:
                v = rep.metrics[name]
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    return float(v)
                raise SpecError("quantity", name, f"the report's {name!r} is not a number")
        if name in ("oracle_risk", "oracle_step"):  # a single scenario: every step, step by step
            from ..api import predict

            scn = self.scenario_for(model)
            key = ("curve", scn.name)
            if key not in self._cache:
                try:
                    self._check_cost(scn, "exact", {})
                except SpecError as err:
                    raise PointError(str(err)) from None
                self._cache[key] = predict(scn, method="exact", every_step=True, on_unstable="ignore")
            curve = self._cache[key][m.name].curve
            return float(np.min(curve)) if name == "oracle_risk" else float(np.argmin(curve))
        raise SpecError("name", name, f"unknown quantity; built-in quantities: {sorted(QUANTITIES)}; "
                                      f"symbols: {sorted(SYMBOLS)}")

    def _curve_value(self, name: str, model: str | None, method: str | None, options: dict | None) -> float:
        m = self.model_spec(model)
        if name == "max_excess_risk":
            from ..api import predict

            scn = self.scenario_for(model)
            key = ("output", scn.name, method, tuple(sorted((options or {}).items())))
            if key not in self._cache:
                self._cache[key] = predict(scn, method=method or self.claim.method, on_unstable="ignore",
                                           **(options or (self.claim.options if method is None else {})))
            return float(np.max(self._cache[key][m.name].excess_risk))
        t = self.step_for(m)
        res = self.result(method, options, model)
        mr = res[m.name]
        idx = np.flatnonzero(np.asarray(mr.steps) == t)
        if idx.size == 0:
            raise SpecError("t", t, f"was not computed for model {m.name!r}")
        j = int(idx[0])
        if name == "excess_risk":
            return float(mr.excess_risk[j])
        if name == "risk":
            return float(mr.excess_risk[j]) + float(self.problem.noise)
        arr = getattr(mr, name)
        if arr is None:
            raise SpecError("quantity", name, f"is not available for model {m.name!r} (method {res.method})")
        return float(arr[j])

    def _indexed(self, fname: str, i: int, model: str | None, method: str | None, options: dict | None) -> float:
        m = self.model_spec(model)
        if i > self.problem.d:
            raise SpecError(f"{fname}({i})", i, f"mode index must be <= d = {self.problem.d}")
        res = self.result(method, options, model)
        prof = res[m.name].modes
        if prof is None:
            raise SpecError(f"{fname}({i})", i, f"per-mode moments are not available from method {res.method}")
        if fname == "M":
            return float(prof.second_moment[i - 1])
        if fname == "mu":
            return float(prof.first_moment[i - 1])
        return float(prof.normalised[i - 1])

    def _mode_array(self, sym: str, model: str | None) -> np.ndarray:
        prob = self.problem
        if sym == "lam":
            return prob.eigenvalues
        if sym == "theta2":
            return prob.theta2
        if sym == "i":
            return np.arange(1, prob.d + 1, dtype=float)
        return self.model_spec(model).speed_profile(prob.eigenvalues)


# ---------------------------------------------------------------------------- claims
@dataclass(frozen=True, eq=False)
class Claim:
    """Fields every claim has (keyword-only in the subclasses):

    ``name``; ``scenario``: a scenario-file dict (``[transfer]`` with a ``kind`` makes it a
    comparison), a :class:`~spectral_theory.spec.Scenario`, a comparison, or a function of the
    free parameters returning one; ``domain``; ``model`` (the model the quantities refer to);
    ``at`` (the step, default the model's last); ``method`` and ``options`` (the solver);
    ``quantities`` (extra named values: :class:`Quantity`, expressions, callables); ``where``
    (a condition restricting the domain); ``source`` (where the statement comes from).
    """

    name: str = "claim"
    scenario: Any = None
    domain: Any = None
    model: str | None = None
    at: int | None = None
    method: str = "auto"
    options: dict = field(default_factory=dict)
    quantities: dict = field(default_factory=dict)
    where: Any = None
    source: str = ""
    description: str = ""

    kind = "claim"

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise SpecError("claim.name", self.name, "must be a non-empty string")
        object.__setattr__(self, "domain", as_domain(self.domain))
        if not isinstance(self.quantities, Mapping):
            raise SpecError(f"{self.name}.quantities", self.quantities, "must map names to quantities")
        names = self.names()
        qs = {}
        for k, v in self.quantities.items():
            if not isinstance(k, str) or not k.isidentifier() or k.startswith("_"):
                raise SpecError(f"{self.name}.quantities", k, "names are identifiers not starting with '_'")
            qs[k] = _as_value(v, f"{self.name}.quantities.{k}", names) if isinstance(v, (str, int, float)) else v
        object.__setattr__(self, "quantities", qs)
        if self.where is not None and not callable(self.where):
            object.__setattr__(self, "where", ex.parse_condition(self.where, field=f"{self.name}.where",
                                                                 names=self.names()))
        if isinstance(self.scenario, (str,)):
            from ..spec import read_scenario_file

            object.__setattr__(self, "scenario", read_scenario_file(self.scenario))
        if self.at is not None and (isinstance(self.at, bool) or not isinstance(self.at, int) or self.at < 0):
            raise SpecError(f"{self.name}.at", self.at, "must be a step (an integer >= 0) or left out (the end)")
        self._check_base()

    def _check_base(self) -> None:
        """A scenario-file base is read once by the strict reader (its errors name the field),
        and every parameter's path must exist in it."""
        data = self.scenario if isinstance(self.scenario, dict) else None
        if data is None:
            return
        build(copy.deepcopy(data))
        probe = copy.deepcopy(data)
        probed = []
        for name, p in self.domain.params.items():
            path = resolve_path(name, p.path, self.model, data)
            if path is not None:
                set_path(probe, path, p.values[0] if p.values is not None else p.lo)
                probed.append((name, path))
        if probed:  # a path the strict reader does not know ('models.m.nothere') is bad input
            try:
                build(probe)
            except SpecError as err:
                if "unknown key" not in str(err):  # a valid field whose lowest value is invalid: a
                    return  # point the search counts invalid, not bad input
                names = ", ".join(f"{n} -> {pth}" for n, pth in probed)
                raise SpecError(f"{self.name}.domain", names,
                                f"the parameters' paths must be fields of the scenario, set at their lowest "
                                f"value: {err}") from None

    # ------------------------------------------------------------------ names and scenario
    def names(self) -> set[str]:
        """Every name an expression of this claim may use."""
        q = self.quantities if isinstance(self.quantities, Mapping) else {}
        return set(QUANTITIES) | set(SYMBOLS) | {"lam1", "tr"} | set(self.domain.names if isinstance(
            self.domain, Domain) else []) | set(q) | _METRIC_NAMES | set(self.extra_names())

    def extra_names(self) -> list[str]:
        return []

    def base_data(self) -> dict | None:
        """The base scenario as a scenario-file dict (``None`` for a Python builder)."""
        sc = self.scenario
        if isinstance(sc, dict):
            return sc
        if sc is None or callable(sc) and not hasattr(sc, "describe"):
            return None
        if hasattr(sc, "lineages"):
            return spec_file_dict(sc)
        return scenario_file_dict(sc)

    def paths(self) -> dict[str, str | None]:
        data = self.base_data()
        return {name: resolve_path(name, p.path, self.model, data) for name, p in self.domain.params.items()}

    def build_at(self, params: dict[str, Any], extra_set: dict) -> tuple[dict | None, Any]:
        """(scenario-file dict, Scenario or comparison) at a parameter point."""
        data = self.base_data()
        if data is None:
            if self.scenario is None:
                raise SpecError(f"{self.name}.scenario", None, "a claim needs a scenario")
            free = {k: v for k, v in params.items()}
            try:
                obj = self.scenario(**free)
            except SpecError as err:
                raise PointError(str(err)) from None
            data = spec_file_dict(obj) if hasattr(obj, "lineages") else scenario_file_dict(obj)
            if not extra_set:
                return data, obj
        data = copy.deepcopy(data)
        paths = self.paths() if self.base_data() is not None else {}
        for name, value in params.items():
            path = paths.get(name)
            if path is not None:
                set_path(data, path, value)
        for path, value in extra_set.items():
            set_path(data, path, value)
        try:
            obj = build(data)
        except SpecError as err:
            raise PointError(str(err)) from None
        return data, obj

    def steps_needed(self, ctx: Context) -> list[int]:
        return []

    def vary(self, ctx: Any, param: str, path: str | None, value: Any) -> Any:
        """The context at the same point with ``param`` set to ``value``: through ``path`` (or
        the parameter's standard name) for a scenario-file base, as an argument of a Python
        scenario builder otherwise (unless a path is given)."""
        if self.base_data() is None and path is None:
            return ctx.child({param: value}, {})
        target = resolve_path(param, path, self.model, ctx.data)
        return ctx.child({param: value}, {target: value} if target else {})

    # ------------------------------------------------------------------ evaluation
    def value_of(self, v: Any, ctx: Any) -> Any:
        if isinstance(v, ex.Expr):
            return ex.evaluate(v, ctx.value, getattr(ctx, "ops", None))
        return ctx.quantity(v)

    def outside(self, ctx: Any) -> Any:
        """``None`` inside the domain's condition, else ``c > 1`` (how far outside: the largest
        ``1 + (g - h)/|h|`` of a failed ``g <= h``)."""
        if self.where is None:
            return None
        if callable(self.where):
            ok = self.where(ctx)
            return None if ok else 2.0
        ops = getattr(ctx, "ops", ex.FLOAT_OPS)
        worst = None
        for lhs, op, rhs in self.where.parts:
            g, h = self.value_of(lhs, ctx), self.value_of(rhs, ctx)
            if op in (">", ">="):
                g, h = h, g
            c = 1.0 + (g - h) / _floor_abs(h, ops)
            fails = _gt(c, 1.0, ops) if op in ("<=", ">=") else _ge(c, 1.0, ops)
            if fails:
                worst = c if worst is None else max(worst, c)
        return worst

    def ratio(self, ctx: Any) -> tuple[Any, dict[str, Any]]:  # pragma: no cover - overridden
        raise NotImplementedError

    def holds(self, ratio: float) -> bool:
        return ratio <= 1.0

    def statement(self) -> str:  # pragma: no cover - overridden
        return self.name

    def describe(self) -> dict[str, Any]:
        out = {"name": self.name, "kind": self.kind, "statement": self.statement(),
               "domain": self.domain.describe(), "method": self.method}
        if self.model:
            out["model"] = self.model
        if self.where is not None:
            out["where"] = str(self.where) if not callable(self.where) else getattr(self.where, "__name__", "callable")
        if self.source:
            out["source"] = self.source
        return out


def _floor_abs(h: Any, ops: Any) -> Any:
    if ops is ex.FLOAT_OPS:
        return max(abs(h), 1e-300)
    return ops.floor_abs(h)


def _gt(x: Any, y: float, ops: Any) -> bool:
    return bool(x > y) if ops is ex.FLOAT_OPS else ops.surely_gt(x, y)


def _ge(x: Any, y: float, ops: Any) -> bool:
    return bool(x >= y) if ops is ex.FLOAT_OPS else ops.surely_ge(x, y)


_METRIC_NAMES = {"kd_gain", "kd_gain_difference", "kd_gain_oracle", "horizon_expansion",
                 "student_teacher_disagreement", "pgr", "pgr_oracle", "final_over_first"}


def _text(v: Any) -> str:
    if isinstance(v, ex.Expr):
        return v.text
    if isinstance(v, Quantity):
        return v.name or getattr(v.fn, "__name__", "fn")
    return getattr(v, "__name__", repr(v))


@dataclass(frozen=True, eq=False)
class Inequality(Claim):
    """``lhs op constant * rhs`` (``op`` one of ``<=``, ``<``, ``>=``, ``>``) on the domain.

    ratio: ``1 + (lhs - C rhs)/|C rhs|`` for ``<=``/``<`` (``lhs / (C rhs)`` when the bound is
    positive), ``1 + (C rhs - lhs)/|lhs|`` for ``>=``/``>``. ``constant="find"``: the claim is
    that some constant works; the report gives the smallest one the search found necessary
    (``max lhs/rhs``), a lower bound of the true constant, and the claim is violated only where
    ``lhs/rhs`` is unbounded or above ``max_constant``.
    """

    lhs: Any = None
    rhs: Any = 1.0
    op: str = "<="
    constant: Any = 1.0
    max_constant: float | None = None
    rtol: float = 1e-9

    kind = "inequality"

    def __post_init__(self):
        super().__post_init__()
        names = self.names()
        if self.lhs is None:
            raise SpecError(f"{self.name}.lhs", None, "is required")
        object.__setattr__(self, "lhs", _as_value(self.lhs, f"{self.name}.lhs", names))
        object.__setattr__(self, "rhs", _as_value(self.rhs, f"{self.name}.rhs", names))
        if self.op not in ("<=", "<", ">=", ">"):
            raise SpecError(f"{self.name}.op", self.op, "must be one of '<=', '<', '>=', '>'")
        if isinstance(self.rtol, bool) or not isinstance(self.rtol, (int, float)) or not 0 <= self.rtol < 1:
            raise SpecError(f"{self.name}.rtol", self.rtol, "must be a number in [0, 1) (round-off allowance)")
        if not (self.constant == "find" or (isinstance(self.constant, (int, float)) and not isinstance(self.constant, bool)
                                            and math.isfinite(self.constant) and self.constant > 0)):
            raise SpecError(f"{self.name}.constant", self.constant, "must be a number > 0 or 'find'")
        if self.max_constant is not None and self.op in (">=", ">"):
            raise SpecError(f"{self.name}.max_constant", self.max_constant,
                            f"applies to '<=' and '<' only; for '{self.op}' with constant = 'find' the report "
                            "gives the largest valid constant (or state the bound with constant = <number>)")

    @property
    def finds_constant(self) -> bool:
        return self.constant == "find"

    def ratio(self, ctx: Any) -> tuple[Any, dict[str, Any]]:
        ops = getattr(ctx, "ops", ex.FLOAT_OPS)
        lhs, rhs = self.value_of(self.lhs, ctx), self.value_of(self.rhs, ctx)
        info = {"lhs": lhs, "rhs": rhs}
        if self.finds_constant:
            if self.op in ("<=", "<"):
                c = lhs / rhs if _positive(rhs, ops) else (math.inf if ops is ex.FLOAT_OPS else ops.inf())
            else:  # lhs >= C rhs: C must stay below lhs/rhs; the search maximises rhs/lhs
                c = rhs / lhs if _positive(lhs, ops) else (math.inf if ops is ex.FLOAT_OPS else ops.inf())
                info["largest_valid"] = lhs / rhs if _positive(rhs, ops) else (
                    math.inf if ops is ex.FLOAT_OPS else ops.inf())
            info["constant"] = c
            if self.max_constant is None:
                return c, info  # compared with nothing: 'holds' unless infinite (see holds)
            return c / self.max_constant, info
        bound = rhs * self.constant
        if self.op in ("<=", "<"):
            r = 1.0 + (lhs - bound) / _floor_abs(bound, ops)
        else:
            r = 1.0 + (bound - lhs) / _floor_abs(lhs, ops)
        return r, info

    def holds(self, ratio: float) -> bool:
        """``ratio <= 1 + rtol`` (the round-off allowance of the floating-point search; the
        certificate compares exactly)."""
        if self.finds_constant and self.max_constant is None:
            return math.isfinite(ratio)
        if self.rtol > 0:
            return ratio <= 1.0 + self.rtol
        return ratio < 1.0 if self.op in ("<", ">") else ratio <= 1.0

    def statement(self) -> str:
        c = "C" if self.finds_constant else ("" if self.constant == 1 else f"{self.constant:g} * ")
        rhs = f"({_text(self.rhs)})" if c else _text(self.rhs)
        return f"{_text(self.lhs)} {self.op} {c}{' * ' if c == 'C' else ''}{rhs}"


def _positive(x: Any, ops: Any) -> bool:
    return bool(x > 0) if ops is ex.FLOAT_OPS else ops.surely_gt(x, 0.0)


@dataclass(frozen=True, eq=False)
class Equality(Claim):
    """``lhs == rhs`` up to ``rtol |rhs| + atol``; ratio ``|lhs - rhs| / (rtol |rhs| + atol)``."""

    lhs: Any = None
    rhs: Any = None
    rtol: float = 1e-9
    atol: float = 0.0

    kind = "equality"

    def __post_init__(self):
        super().__post_init__()
        names = self.names()
        for k in ("lhs", "rhs"):
            if getattr(self, k) is None:
                raise SpecError(f"{self.name}.{k}", None, "is required")
            object.__setattr__(self, k, _as_value(getattr(self, k), f"{self.name}.{k}", names))
        _tols(self)

    def ratio(self, ctx: Any) -> tuple[Any, dict[str, Any]]:
        ops = getattr(ctx, "ops", ex.FLOAT_OPS)
        lhs, rhs = self.value_of(self.lhs, ctx), self.value_of(self.rhs, ctx)
        tol = self.rtol * abs(rhs) + self.atol
        return abs(lhs - rhs) / _floor_abs(tol, ops), {"lhs": lhs, "rhs": rhs, "tol": tol}

    def statement(self) -> str:
        return f"{_text(self.lhs)} == {_text(self.rhs)} (rtol {self.rtol:g}, atol {self.atol:g})"


def _tols(c: Any) -> None:
    for k in ("rtol", "atol"):
        v = getattr(c, k)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not (v >= 0 and math.isfinite(v)):
            raise SpecError(f"{c.name}.{k}", v, "must be a finite number >= 0")
    if c.rtol == 0 and c.atol == 0:
        raise SpecError(f"{c.name}.rtol", c.rtol, "rtol and atol cannot both be 0")


def _sequence(c: Any) -> None:
    vals = c.values
    if isinstance(vals, (str, bytes)) or not hasattr(vals, "__len__") or len(vals) < 2:
        raise SpecError(f"{c.name}.values", vals, "must be a list of at least 2 values of the parameter")
    for v in vals:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise SpecError(f"{c.name}.values", vals, "must be finite numbers")
    object.__setattr__(c, "values", tuple(vals))
    if not isinstance(c.param, str) or not c.param:
        raise SpecError(f"{c.name}.param", c.param, "must name a parameter (or 't' for time, where allowed)")


@dataclass(frozen=True, eq=False)
class Limit(Claim):
    """``value -> limit`` as ``param`` runs through ``values`` (ordered toward the limit point):
    at the last value ``|value - limit| <= rtol |limit| + atol``; ratio: that error over the
    tolerance. The report lists the errors along the sequence and their observed order."""

    value: Any = None
    limit: Any = None
    param: str = ""
    path: str | None = None
    values: tuple = ()
    rtol: float = 1e-6
    atol: float = 0.0

    kind = "limit"

    def __post_init__(self):
        super().__post_init__()
        _sequence(self)
        names = self.names()
        for k in ("value", "limit"):
            if getattr(self, k) is None:
                raise SpecError(f"{self.name}.{k}", None, "is required")
            object.__setattr__(self, k, _as_value(getattr(self, k), f"{self.name}.{k}", names))
        _tols(self)

    def extra_names(self) -> list[str]:
        return [self.param] if isinstance(self.param, str) and self.param else []

    def sub_contexts(self, ctx: Any) -> list[Any]:
        return [self.vary(ctx, self.param, self.path, v) for v in self.values]

    def ratio(self, ctx: Any) -> tuple[Any, dict[str, Any]]:
        ops = getattr(ctx, "ops", ex.FLOAT_OPS)
        subs = self.sub_contexts(ctx)
        vals = [self.value_of(self.value, s) for s in subs]
        lim = self.value_of(self.limit, subs[-1])
        errs = [abs(v - lim) for v in vals]
        tol = self.rtol * abs(lim) + self.atol
        info = {"values": vals, "limit": lim, "errors": errs, "lhs": vals[-1], "rhs": lim}
        if ops is ex.FLOAT_OPS:  # observed order: -slope of log error against log |param| (growing values)
            x = np.abs(np.asarray(self.values, dtype=float))
            e = np.asarray(errs, dtype=float)
            ok = (e > 0) & (x > 0)
            if ok.sum() >= 2 and x[-1] > x[0]:
                with np.errstate(all="ignore"):
                    info["order"] = float(-np.polyfit(np.log(x[ok]), np.log(e[ok]), 1)[0])
        return errs[-1] / _floor_abs(tol, ops), info

    def statement(self) -> str:
        return (f"{_text(self.value)} -> {_text(self.limit)} as {self.param} runs through "
                f"{list(self.values)} (rtol {self.rtol:g}, atol {self.atol:g} at the last)")


@dataclass(frozen=True, eq=False)
class Monotone(Claim):
    """``value`` non-increasing (``direction="decreasing"``) or non-decreasing in ``param``
    (its ``values``, in order) or in time (``param="t"``: the model's steps ``values``).
    ratio: ``1 +`` the largest step in the wrong direction, beyond the allowance
    ``rtol |value| + atol``, relative to the value before it (1.38: a rise by 38%)."""

    value: Any = None
    param: str = "t"
    path: str | None = None
    values: tuple = ()
    direction: str = "decreasing"
    rtol: float = 1e-9
    atol: float = 0.0

    kind = "monotone"

    def __post_init__(self):
        super().__post_init__()
        _sequence(self)
        if self.value is None:
            raise SpecError(f"{self.name}.value", None, "is required")
        object.__setattr__(self, "value", _as_value(self.value, f"{self.name}.value", self.names()))
        if self.direction not in ("decreasing", "increasing"):
            raise SpecError(f"{self.name}.direction", self.direction, "must be 'decreasing' or 'increasing'")
        if self.param == "t" and any(v != int(v) or v < 0 for v in self.values):
            raise SpecError(f"{self.name}.values", self.values, "steps must be integers >= 0")
        _tols(self)

    def extra_names(self) -> list[str]:
        return [self.param] if isinstance(self.param, str) and self.param else []

    def steps_needed(self, ctx: Context) -> list[int]:
        return [int(v) for v in self.values] if self.param == "t" else []

    def sub_contexts(self, ctx: Any) -> list[Any]:
        if self.param == "t":
            return [ctx.at_step(int(v)) for v in self.values]
        return [self.vary(ctx, self.param, self.path, v) for v in self.values]

    def ratio(self, ctx: Any) -> tuple[Any, dict[str, Any]]:
        ops = getattr(ctx, "ops", ex.FLOAT_OPS)
        vals = [self.value_of(self.value, s) for s in self.sub_contexts(ctx)]
        sign = 1.0 if self.direction == "decreasing" else -1.0
        rs = []
        for j in range(len(vals) - 1):
            # 1 + (the step in the wrong direction beyond the tolerance) / |value before it|
            wrong = sign * (vals[j + 1] - vals[j])
            tol = self.rtol * abs(vals[j]) + self.atol
            rs.append(1.0 + (wrong - tol) / _floor_abs(vals[j], ops))
        if ops is ex.FLOAT_OPS:
            where = max(range(len(rs)), key=lambda j: rs[j])
            worst = rs[where]
        else:  # the ratio is the interval max over every pair; a midpoint only picks the pair shown
            where = 0
            for j in range(1, len(rs)):
                if ops.greater(rs[j], rs[where]):
                    where = j
            worst = ops.maximum(rs)
        info = {"values": vals, "worst_between": [self.values[where], self.values[where + 1]],
                "before": vals[where], "after": vals[where + 1]}
        return worst, info

    def statement(self) -> str:
        return f"{_text(self.value)} is {self.direction} in {self.param} over {list(self.values)}"


@dataclass(frozen=True, eq=False)
class Rate(Claim):
    """The log-log slope of ``quantity`` (``excess_risk``, ``bias`` or ``variance``) of the model
    over ``window = (t_lo, t_hi)`` (``points`` log-spaced steps) is ``expected`` within ``band``
    (:func:`spectral_theory.analysis.rates.check_rate`); ratio ``|slope - expected| / band``."""

    quantity: str = "excess_risk"
    expected: Any = None
    window: tuple = ()
    band: float = 0.05
    points: int = 40
    param: str | None = None
    path: str | None = None
    values: tuple = ()

    kind = "rate"

    def __post_init__(self):
        super().__post_init__()
        if self.quantity not in ("excess_risk", "bias", "variance"):
            raise SpecError(f"{self.name}.quantity", self.quantity, "must be 'excess_risk', 'bias' or 'variance'")
        if self.expected is None:
            raise SpecError(f"{self.name}.expected", None, "is required (an exponent, e.g. '-(b-1)/a')")
        object.__setattr__(self, "expected", _as_value(self.expected, f"{self.name}.expected", self.names()))
        if self.param is not None:
            _sequence(self)
            if any(v <= 0 for v in self.values):
                raise SpecError(f"{self.name}.values", self.values, "must be > 0 (a log-log slope)")
            return
        w = self.window
        if (not isinstance(w, (tuple, list)) or len(w) != 2 or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in w)
                or not 0 < w[0] < w[1]):
            raise SpecError(f"{self.name}.window", w, "must be [t_lo, t_hi] with 0 < t_lo < t_hi")
        object.__setattr__(self, "window", (w[0], w[1]))
        if isinstance(self.band, bool) or not isinstance(self.band, (int, float)) or not self.band > 0:
            raise SpecError(f"{self.name}.band", self.band, "must be a number > 0")
        if isinstance(self.points, bool) or not isinstance(self.points, int) or not 3 <= self.points <= 10000:
            raise SpecError(f"{self.name}.points", self.points, "must be an integer in [3, 10000]")

    def extra_names(self) -> list[str]:
        return [self.param] if isinstance(self.param, str) and self.param else []

    def window_steps(self) -> list[int]:
        if self.param is not None:
            return []
        lo, hi = self.window
        return sorted(set(int(round(v)) for v in np.geomspace(lo, hi, self.points)))

    def steps_needed(self, ctx: Context) -> list[int]:
        return self.window_steps()

    def ratio(self, ctx: Any) -> tuple[Any, dict[str, Any]]:
        ops = getattr(ctx, "ops", ex.FLOAT_OPS)
        if self.param is not None:
            steps = list(self.values)
            ys = [self.vary(ctx, self.param, self.path, v).value(self.quantity) for v in self.values]
        else:
            steps = self.window_steps()
            ys = [ctx.at_step(t).value(self.quantity) for t in steps]
        expected = self.value_of(self.expected, ctx)
        if ops is ex.FLOAT_OPS:
            from ..analysis.rates import check_rate

            rc = check_rate((np.asarray(steps, float), np.asarray(ys, float)), float(expected),
                            window=(float(steps[0]), float(steps[-1])), band=float(self.band),
                            quantity=self.quantity, model=self.model)
            slope = rc.slope
            info = {"slope": slope, "expected": expected, "stderr": rc.stderr, "r2": rc.r2,
                    "lhs": slope, "rhs": expected}
        else:
            slope = ops.slope(steps, ys)
            info = {"slope": slope, "expected": expected, "lhs": slope, "rhs": expected}
        return abs(slope - expected) / self.band, info

    def statement(self) -> str:
        if self.param is not None:
            return (f"slope of log {self.quantity} vs log {self.param} over {list(self.values)} "
                    f"== {_text(self.expected)} +- {self.band:g}")
        return (f"slope of log {self.quantity} vs log t over t in [{self.window[0]:g}, {self.window[1]:g}] "
                f"== {_text(self.expected)} +- {self.band:g}")


KINDS = {"inequality": Inequality, "equality": Equality, "limit": Limit, "monotone": Monotone, "rate": Rate}


def _child(self: Context, params: dict, extra: dict) -> Context:
    """A context at the same point with some parameters and fields changed (limits, monotonicity)."""
    merged = {**self.params, **params}
    extra_set = {k: v for k, v in extra.items() if k is not None}
    c = Context(self.claim, merged, t=self._t, extra_set=extra_set, cache={})
    return c


Context.child = _child  # type: ignore[attr-defined]


def evaluate_point(claim: Claim, params: dict[str, Any]) -> dict[str, Any]:
    """One parameter point: ``{"params", "ratio", "holds", "inside", "info"}``, or
    ``{"params", "error"}`` for an invalid scenario there. An overflow of the recursion (an
    unstable run) is reported as ``ratio = inf`` with its message."""
    with np.errstate(all="ignore"):  # an overflow at a huge step is an infinite ratio, not a warning
        return _evaluate_point(claim, params)


def _evaluate_point(claim: Claim, params: dict[str, Any]) -> dict[str, Any]:
    try:
        ctx = Context(claim, params)
        out = claim.outside(ctx)
        if out is not None:
            return {"params": params, "inside": False, "outside": float(out), "ratio": None}
        r, info = claim.ratio(ctx)
        r = float(r)
        if math.isnan(r):
            return {"params": params, "error": "the claim's value is NaN here (an undefined expression)"}
        return {"params": params, "inside": True, "ratio": r, "holds": claim.holds(r), "info": _floats(info)}
    except (PointError, SpecError) as err:  # invalid here: a mode index above this d, ...
        return {"params": params, "error": str(err)}
    except InstabilityError as err:
        return {"params": params, "inside": True, "ratio": math.inf, "holds": False,
                "info": {"overflow": str(err)}}
    except (OverflowError, MemoryError) as err:  # a size too large for this machine (the memory
        # budget's refusal is a MemoryError too): this point is invalid, the search goes on
        what = "out of memory" if isinstance(err, MemoryError) else "overflow"
        return {"params": params, "error": f"{what} here: {err}" if str(err) else what}


def _floats(info: dict) -> dict:
    out = {}
    for k, v in info.items():
        if isinstance(v, (list, tuple)):
            out[k] = [float(x) for x in v]
        elif isinstance(v, (int, float, np.floating, np.integer)):
            out[k] = float(v)
        else:
            out[k] = v
    return out
