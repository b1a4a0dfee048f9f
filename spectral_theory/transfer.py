"""Knowledge-transfer workflows (THEORY.md section 5).

Users think in comparisons. Each builder below is a frozen spec that knows
which models its comparison needs, trains them (theory or Monte Carlo) and
returns a :class:`TransferReport` with the numbers a paper reports and the
per-mode picture that explains them.

* :class:`Distillation`: a teacher (hard labels), the student on the
  teacher's labels (``alpha`` = weight of the hard label; 0 = soft labels),
  and the same student on hard labels with the same recipe.
  ``kd_gain = E_hard / E_kd`` (ratio) and ``kd_gain_difference = E_hard - E_kd``;
  ``horizon_expansion = horizon(kd_student) - horizon(hard_student)``.
* :class:`WeakToStrong`: a weak teacher, the strong student on its labels,
  and the strong ceiling (the student on hard labels with its own recipe).
  ``PGR = (E_weak - E_w2s) / (E_weak - E_ceiling)``, at the end of training
  (``pgr``) and with every model at its own oracle stopping step
  (``pgr_oracle``); student-teacher disagreement ``E||phi_w2s - phi_weak||^2``;
  the per-mode denoising profile.
* :class:`Chain`: generation 0 on hard labels, generation g on the labels of
  generation g - 1 (self-distillation; model collapse under repeated
  synthetic labels); per-generation table and growth ratios ``E_g / E_{g-1}``.

Definitions used by every report (per model, at the end of its training):

* normalised error ``n_i = M_gg,i / theta_i^2`` (undefined where ``theta_i = 0``),
  with bias and variance parts (``M^bias_i / theta_i^2``, ``M^var_i / theta_i^2``);
* spectral horizon: the largest mode index ``i`` (1-based) with ``theta_i > 0`` and
  ``n_i <= 1/2``; 0 when there is none;
* oracle stopping: the step ``argmin_t E_g(t)`` over every step ``0..T`` (theory;
  Monte Carlo reports use the reported steps only) and the risk there.

Models that do not depend on each other are trained as separate chains
("lineages": e.g. the hard-label student does not depend on the teacher), so a
:class:`~spectral_theory.engine.PrefixCache` shared across calls (tuning, maps)
never trains the same lineage prefix twice.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import minimize_scalar

from .api import predict, simulate
from .engine import PrefixCache
from .errors import SpecError
from .result import CONVENTIONS, Result, _jsonable, _list
from .spec import Model, Output, Problem, Scenario
from .stability import stability_limit

__all__ = [
    "Distillation", "WeakToStrong", "Chain", "TransferReport", "ModelSummary",
    "spectral_horizon", "evaluate", "tune_alpha", "tune_lr", "AlphaTuning", "LrTuning",
    "transfer_map", "TransferMap", "transfer_from_dict",
]


def spectral_horizon(second_moment: np.ndarray, theta2: np.ndarray, threshold: float = 0.5) -> int:
    """Largest 1-based mode index with ``theta_i > 0`` and ``M_i / theta_i^2 <= threshold`` (0 if none)."""
    t = np.asarray(theta2, dtype=float)
    m = np.asarray(second_moment, dtype=float)
    ok = (t > 0) & (m <= threshold * t)
    idx = np.flatnonzero(ok)
    return int(idx[-1] + 1) if idx.size else 0


def _renamed(model: Model, name: str, *, teacher: str | None = None, alpha: float | None = None) -> Model:
    return dataclasses.replace(model, name=name, teacher=teacher,
                               alpha=(None if teacher is None else alpha))


# ----------------------------------------------------------------------------
# specs


@dataclass(frozen=True, eq=False)
class _Transfer:
    problem: Problem

    kind = "transfer"

    def lineages(self) -> dict[str, Scenario]:  # pragma: no cover - overridden
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:  # pragma: no cover - overridden
        raise NotImplementedError

    def _scn(self, models: tuple[Model, ...], name: str) -> Scenario:
        return Scenario(self.problem, models, output=self.output, name=name)  # type: ignore[attr-defined]


@dataclass(frozen=True, eq=False)
class Distillation(_Transfer):
    """Teacher -> student distillation against the same student on hard labels."""

    teacher: Model = None  # type: ignore[assignment]
    student: Model = None  # type: ignore[assignment]
    alpha: float = 0.0
    output: Output = field(default_factory=Output)

    kind = "kd"

    def __post_init__(self):
        _check_models(self, ("teacher", "student"))
        _check_alpha(self.alpha)

    def lineages(self) -> dict[str, Scenario]:
        t = _renamed(self.teacher, "teacher")
        kd = _renamed(self.student, "kd_student", teacher="teacher", alpha=self.alpha)
        hard = _renamed(self.student, "hard_student")
        return {"distilled": self._scn((t, kd), "kd"), "hard": self._scn((hard,), "kd_hard")}

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "problem": self.problem.describe(), "teacher": self.teacher.describe(),
                "student": self.student.describe(), "alpha": self.alpha}


@dataclass(frozen=True, eq=False)
class WeakToStrong(_Transfer):
    """Weak teacher -> strong student against the strong ceiling (hard labels, student's recipe)."""

    weak: Model = None  # type: ignore[assignment]
    strong: Model = None  # type: ignore[assignment]
    alpha: float = 0.0
    output: Output = field(default_factory=Output)

    kind = "w2s"

    def __post_init__(self):
        _check_models(self, ("weak", "strong"))
        _check_alpha(self.alpha)

    def lineages(self) -> dict[str, Scenario]:
        w = _renamed(self.weak, "weak_teacher")
        s = _renamed(self.strong, "w2s_student", teacher="weak_teacher", alpha=self.alpha)
        c = _renamed(self.strong, "strong_ceiling")
        return {"transfer": self._scn((w, s), "w2s"), "ceiling": self._scn((c,), "w2s_ceiling")}

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "problem": self.problem.describe(), "weak": self.weak.describe(),
                "strong": self.strong.describe(), "alpha": self.alpha}


@dataclass(frozen=True, eq=False)
class Chain(_Transfer):
    """``generations`` models: g0 = ``base`` on hard labels, g1.. = ``child`` on the parent's labels."""

    base: Model = None  # type: ignore[assignment]
    child: Model | None = None
    generations: int = 2
    alpha: float = 0.0
    output: Output = field(default_factory=Output)

    kind = "chain"

    def __post_init__(self):
        _check_models(self, ("base",))
        if self.child is not None and not isinstance(self.child, Model):
            raise SpecError("transfer.child", self.child, "must be a Model")
        g = self.generations
        if isinstance(g, bool) or not isinstance(g, (int, np.integer)) or g < 1:
            raise SpecError("transfer.generations", g, "must be an integer >= 1 (models in the chain, "
                                                      "generation 0 included)")
        _check_alpha(self.alpha)

    def lineages(self) -> dict[str, Scenario]:
        child = self.child if self.child is not None else self.base
        models = [_renamed(self.base, "g0")]
        for g in range(1, self.generations):
            models.append(_renamed(child, f"g{g}", teacher=f"g{g - 1}", alpha=self.alpha))
        return {"chain": self._scn(tuple(models), "chain")}

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "problem": self.problem.describe(), "base": self.base.describe(),
                "child": (self.child or self.base).describe(), "generations": int(self.generations),
                "alpha": self.alpha}


def _check_models(spec: Any, names: Sequence[str]) -> None:
    if not isinstance(spec.problem, Problem):
        raise SpecError("problem", spec.problem, "must be a Problem")
    for n in names:
        if not isinstance(getattr(spec, n), Model):
            raise SpecError(f"transfer.{n}", getattr(spec, n), "must be a Model")
    if isinstance(spec.output, dict):
        object.__setattr__(spec, "output", Output(**spec.output))
    # speed profiles must fit the problem
    for n in names:
        getattr(spec, n).speed_profile(spec.problem.eigenvalues)


def _check_alpha(alpha: Any) -> None:
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.integer, np.floating)) \
            or not math.isfinite(float(alpha)) or not 0.0 <= float(alpha) <= 1.0:
        raise SpecError("transfer.alpha", alpha, "must be a number in [0, 1] (weight of the hard label)")


# ----------------------------------------------------------------------------
# reports


@dataclass
class ModelSummary:
    """One model of a comparison: final and oracle risk, horizon, per-mode profile."""

    name: str
    final_risk: float
    final_bias: float | None
    final_variance: float | None
    oracle_step: int
    oracle_risk: float
    horizon: int
    normalised: np.ndarray
    normalised_bias: np.ndarray | None
    normalised_variance: np.ndarray | None
    final_se: float | None = None
    oracle_over: str = "every step"

    def to_dict(self, *, modes: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "final_risk": self.final_risk, "final_bias": self.final_bias,
            "final_variance": self.final_variance, "oracle_step": self.oracle_step,
            "oracle_risk": self.oracle_risk, "oracle_over": self.oracle_over, "horizon": self.horizon,
        }
        if self.final_se is not None:
            out["final_se"] = self.final_se
        if modes:
            out["normalised_error"] = _list(self.normalised)
            if self.normalised_bias is not None:
                out["normalised_bias"] = _list(self.normalised_bias)
                out["normalised_variance"] = _list(self.normalised_variance)
        return out


@dataclass
class TransferReport:
    kind: str
    method: str
    spec: Any
    models: dict[str, ModelSummary]
    metrics: dict[str, Any]
    profiles: dict[str, np.ndarray]
    results: dict[str, Result]
    conventions: dict[str, str] = field(default_factory=lambda: dict(CONVENTIONS))

    def __getitem__(self, key: str) -> Any:
        return self.metrics[key]

    def to_dict(self, *, modes: bool = True) -> dict[str, Any]:
        out = {"kind": self.kind, "method": self.method, "metrics": _jsonable(self.metrics),
               "models": {k: v.to_dict(modes=modes) for k, v in self.models.items()},
               "curves": {name: m.to_dict(modes=False) for r in self.results.values()
                          for name, m in r.models.items()},
               "conventions": self.conventions, "spec": self.spec.describe()}
        for m in out["curves"].values():
            m.pop("curve", None)
        if modes:
            out["profiles"] = {k: _list(v) for k, v in self.profiles.items()}
        return out

    def to_json(self, *, modes: bool = True) -> str:
        return json.dumps(self.to_dict(modes=modes), indent=2, allow_nan=False)

    def table(self) -> str:
        lines = [f"# {self.kind} ({self.method}); excess risk sum_i (phi_i - theta_i)^2, not halved"]
        head = f"{'model':<16} {'final risk':>12} {'bias':>11} {'variance':>11} {'oracle step':>12} " \
               f"{'oracle risk':>12} {'horizon':>8}"
        lines += [head, "-" * len(head)]
        for name, m in self.models.items():
            fin = f"{m.final_risk:.6g}" + (f"+-{m.final_se:.1g}" if m.final_se else "")
            lines.append(f"{name:<16} {fin:>12} {_f(m.final_bias):>11} {_f(m.final_variance):>11} "
                         f"{m.oracle_step:>12d} {m.oracle_risk:>12.6g} {m.horizon:>8d}")
        lines.append("")
        for k, v in self.metrics.items():
            if isinstance(v, list):
                lines.append(f"{k:<28} " + " ".join(_f(x) for x in v))
            elif not isinstance(v, dict):
                lines.append(f"{k:<28} {_f(v)}")
        return "\n".join(lines) + "\n"


def _f(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, (float, np.floating)):
        return f"{v:.6g}"
    return str(v)


def _summary(res: Result, name: str, theta2: np.ndarray) -> ModelSummary:
    m = res.models[name]
    if m.curve is not None:
        j = int(np.argmin(m.curve))
        oracle_step, oracle_risk, over = j, float(m.curve[j]), "every step"
    else:
        j = int(np.argmin(m.excess_risk))
        oracle_step, oracle_risk, over = int(m.steps[j]), float(m.excess_risk[j]), "reported steps"
    t = np.asarray(theta2, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        norm = lambda v: None if v is None else np.where(t > 0, v / np.where(t > 0, t, 1.0), np.nan)  # noqa: E731
        prof = m.modes
        return ModelSummary(
            name=name, final_risk=float(m.excess_risk[-1]),
            final_bias=None if m.bias is None else float(m.bias[-1]),
            final_variance=None if m.variance is None else float(m.variance[-1]),
            oracle_step=oracle_step, oracle_risk=oracle_risk,
            horizon=spectral_horizon(prof.second_moment, t),
            normalised=norm(prof.second_moment), normalised_bias=norm(prof.bias),
            normalised_variance=norm(prof.variance),
            final_se=None if m.excess_risk_se is None else float(m.excess_risk_se[-1]), oracle_over=over,
        )


def evaluate(
    spec: Distillation | WeakToStrong | Chain,
    *,
    method: str = "theory",
    reps: int = 1000,
    seed: int = 0,
    cache: PrefixCache | None = None,
    progress: bool | None = False,
    solver: str = "auto",
) -> TransferReport:
    """Train every model the comparison needs and compute its metrics.

    ``method="theory"`` (exact recursion; oracle stopping over every step) or
    ``"simulate"`` (Monte Carlo with ``reps`` replicates and ``seed``; each
    lineage gets its own seed ``seed + k``; oracle over the reported steps).
    Every model also reports its last step, whatever the spec's output says.
    ``solver``: the theory method (:func:`spectral_theory.predict`'s ``method``).
    """
    if method not in ("theory", "simulate"):
        raise SpecError("method", method, "must be 'theory' or 'simulate'")
    results: dict[str, Result] = {}
    for k, (lname, scn) in enumerate(spec.lineages().items()):
        at = _with_final(scn)
        if method == "theory":
            results[lname] = predict(scn, at=at, every_step=True, cache=cache, method=solver)
        else:
            results[lname] = simulate(scn, at=at, reps=reps, seed=seed + k, progress=progress)
    theta2 = spec.problem.theta2
    summaries = {name: _summary(r, name, theta2) for r in results.values() for name in r.models}
    metrics, profiles = _METRICS[spec.kind](spec, results, summaries)
    methods = sorted({r.method for r in results.values()})
    return TransferReport(kind=spec.kind, method="+".join(methods),
                          spec=spec, models=summaries, metrics=metrics, profiles=profiles, results=results)


def _with_final(scn: Scenario) -> list[int] | None:
    """Reported steps of the scenario plus every model's last step (as one list)."""
    out = scn.output
    steps: set[int] = set()
    for m in scn.models:
        steps.update(int(t) for t in out.steps_for(m.steps))
        steps.add(m.steps)
    return sorted(steps)


def _ratio_se(num: ModelSummary, den: ModelSummary) -> float | None:
    """Delta-method SE of num/den for independent estimates (separate lineages)."""
    if num.final_se is None or den.final_se is None:
        return None
    r = num.final_risk / den.final_risk
    return abs(r) * math.hypot(num.final_se / num.final_risk, den.final_se / den.final_risk)


def _kd_metrics(spec, results, s):
    t, kd, hard = s["teacher"], s["kd_student"], s["hard_student"]
    metrics = {
        "teacher_risk": t.final_risk, "kd_risk": kd.final_risk, "hard_risk": hard.final_risk,
        "kd_gain": hard.final_risk / kd.final_risk,
        "kd_gain_difference": hard.final_risk - kd.final_risk,
        "kd_gain_oracle": hard.oracle_risk / kd.oracle_risk,
        "teacher_horizon": t.horizon, "kd_horizon": kd.horizon, "hard_horizon": hard.horizon,
        "horizon_expansion": kd.horizon - hard.horizon,
        "student_teacher_disagreement": results["distilled"].disagreement["kd_student"]["teacher"],
    }
    se = _ratio_se(hard, kd)
    if se is not None:
        metrics["kd_gain_se"] = se
    profiles = {"kd_normalised": kd.normalised, "hard_normalised": hard.normalised,
                "teacher_normalised": t.normalised}
    return metrics, profiles


def _w2s_metrics(spec, results, s):
    w, st_, c = s["weak_teacher"], s["w2s_student"], s["strong_ceiling"]
    den = w.final_risk - c.final_risk
    den_o = w.oracle_risk - c.oracle_risk
    metrics = {
        "weak_risk": w.final_risk, "w2s_risk": st_.final_risk, "ceiling_risk": c.final_risk,
        "pgr": (w.final_risk - st_.final_risk) / den if den != 0 else math.nan,
        "pgr_oracle": (w.oracle_risk - st_.oracle_risk) / den_o if den_o != 0 else math.nan,
        "w2s_oracle_step": st_.oracle_step,
        "student_teacher_disagreement": results["transfer"].disagreement["w2s_student"]["weak_teacher"],
        "weak_horizon": w.horizon, "w2s_horizon": st_.horizon, "ceiling_horizon": c.horizon,
    }
    profiles: dict[str, np.ndarray] = {}
    mt = results["transfer"].models["weak_teacher"].modes
    ms = results["transfer"].models["w2s_student"].modes
    if mt.variance is not None and ms.variance is not None:
        tv, sv = mt.variance, ms.variance
        noisy = (tv > mt.bias) & (tv > 0)  # the teacher's error there is mostly noise
        denoised = noisy & (sv < tv)
        metrics.update({
            "teacher_noisy_modes": int(noisy.sum()),
            "denoised_modes": int(denoised.sum()),
            "teacher_variance_on_noisy_modes": float(tv[noisy].sum()),
            "student_variance_on_noisy_modes": float(sv[noisy].sum()),
            "teacher_variance": float(tv.sum()), "student_variance": float(sv.sum()),
        })
        profiles = {"teacher_variance": tv, "student_variance": sv,
                    "teacher_bias": mt.bias, "student_bias": ms.bias,
                    "teacher_noisy": noisy.astype(float)}
    else:  # Monte Carlo: no source split; per-mode second moments only
        profiles = {"teacher_second_moment": mt.second_moment, "student_second_moment": ms.second_moment}
    return metrics, profiles


def _chain_metrics(spec, results, s):
    names = [f"g{g}" for g in range(spec.generations)]
    risks = [s[n].final_risk for n in names]
    res = results["chain"]
    metrics = {
        "generation_risk": risks,
        "generation_growth": [risks[g] / risks[g - 1] for g in range(1, len(risks))],
        "generation_horizon": [s[n].horizon for n in names],
        "generation_oracle_risk": [s[n].oracle_risk for n in names],
        "parent_disagreement": [res.disagreement[names[g]][names[g - 1]] for g in range(1, len(names))],
        "final_over_first": risks[-1] / risks[0],
    }
    profiles = {f"{n}_normalised": s[n].normalised for n in names}
    return metrics, profiles


_METRICS: dict[str, Callable] = {"kd": _kd_metrics, "w2s": _w2s_metrics, "chain": _chain_metrics}


# ----------------------------------------------------------------------------
# tuning


@dataclass
class AlphaTuning:
    alphas: np.ndarray
    risks: np.ndarray
    best_alpha: float
    best_risk: float
    objective: str
    cache_hits: int
    cache_misses: int

    def to_dict(self) -> dict[str, Any]:
        return {"alphas": _list(self.alphas), "risks": _list(self.risks), "best_alpha": self.best_alpha,
                "best_risk": self.best_risk, "objective": self.objective,
                "cache": {"hits": self.cache_hits, "misses": self.cache_misses}}


def _student_name(spec) -> str:
    return {"kd": "kd_student", "w2s": "w2s_student"}.get(spec.kind) or f"g{spec.generations - 1}"


def _student_risk(spec, cache: PrefixCache, objective: str) -> float:
    name = _student_name(spec)
    for scn in spec.lineages().values():
        if name in [m.name for m in scn.models]:
            r = predict(scn, at=[scn.model(name).steps], every_step=objective == "oracle", cache=cache)
            m = r.models[name]
            return float(m.curve.min()) if objective == "oracle" else float(m.excess_risk[-1])
    raise KeyError(name)  # pragma: no cover


def tune_alpha(spec: Distillation | WeakToStrong | Chain, *, grid: int = 21, objective: str = "final",
               xatol: float = 1e-4, cache: PrefixCache | None = None) -> AlphaTuning:
    """Best hard-label weight ``alpha`` in [0, 1] for the student's risk.

    Evaluates the student's final (``objective="final"``) or oracle
    (``"oracle"``) risk on a uniform grid of ``grid`` alphas (the risk curve),
    then refines around the best grid point with a bounded scalar search
    (Brent) to ``xatol``. The teacher is trained once (shared prefix).
    """
    if objective not in ("final", "oracle"):
        raise SpecError("objective", objective, "must be 'final' or 'oracle'")
    if isinstance(grid, bool) or not isinstance(grid, int) or grid < 3:
        raise SpecError("grid", grid, "must be an integer >= 3")
    cache = cache if cache is not None else PrefixCache()
    f = lambda a: _student_risk(dataclasses.replace(spec, alpha=float(a)), cache, objective)  # noqa: E731
    alphas = np.linspace(0.0, 1.0, grid)
    risks = np.array([f(a) for a in alphas])
    j = int(np.argmin(risks))
    lo, hi = alphas[max(j - 1, 0)], alphas[min(j + 1, grid - 1)]
    opt = minimize_scalar(f, bounds=(lo, hi), method="bounded", options={"xatol": xatol})
    best_a, best_r = (float(opt.x), float(opt.fun)) if opt.fun < risks[j] else (float(alphas[j]), float(risks[j]))
    return AlphaTuning(alphas, risks, best_a, best_r, objective, cache.hits, cache.misses)


@dataclass
class LrTuning:
    lrs: np.ndarray
    risks: np.ndarray
    best_lr: float
    best_risk: float
    stability_limit: float
    objective: str

    def to_dict(self) -> dict[str, Any]:
        return {"lrs": _list(self.lrs), "risks": _list(self.risks), "best_lr": self.best_lr,
                "best_risk": self.best_risk, "stability_limit": self.stability_limit,
                "objective": self.objective}


def tune_lr(spec: Distillation | WeakToStrong | Chain, *, grid: int = 25, objective: str = "final",
            lo_fraction: float = 1e-3, cache: PrefixCache | None = None) -> LrTuning:
    """Best constant step size of the student (batch-mean), in ``(0, stability limit)``.

    Grid in log-space on ``[lo_fraction, 0.999] x limit``, then a bounded
    scalar search in log(lr) around the best grid point. For a chain, the
    child recipe (every generation after the first) is tuned.
    """
    if objective not in ("final", "oracle"):
        raise SpecError("objective", objective, "must be 'final' or 'oracle'")
    field_ = {"kd": "student", "w2s": "strong", "chain": "child"}[spec.kind]
    student = getattr(spec, field_) or spec.base  # chain without child: the base recipe
    s = student.speed_profile(spec.problem.eigenvalues)
    limit = stability_limit(s, student.batch, spec.problem.kappa)
    if student.lr_convention == "sum":
        limit /= student.batch
    cache = cache if cache is not None else PrefixCache()

    def f(loglr: float) -> float:
        m = dataclasses.replace(student, schedule=float(math.exp(loglr)))
        return _student_risk(dataclasses.replace(spec, **{field_: m}), cache, objective)

    grid_lr = np.geomspace(lo_fraction * limit, 0.999 * limit, grid)
    risks = np.array([f(math.log(v)) for v in grid_lr])
    j = int(np.argmin(risks))
    lo, hi = math.log(grid_lr[max(j - 1, 0)]), math.log(grid_lr[min(j + 1, grid - 1)])
    opt = minimize_scalar(f, bounds=(lo, hi), method="bounded", options={"xatol": 1e-4})
    if opt.fun < risks[j]:
        best, best_r = float(math.exp(opt.x)), float(opt.fun)
    else:
        best, best_r = float(grid_lr[j]), float(risks[j])
    return LrTuning(grid_lr, risks, best, best_r, limit, objective)


# ----------------------------------------------------------------------------
# maps


def _set_param(spec: Any, path: str, value: Any) -> Any:
    """A copy of ``spec`` with the parameter at ``path`` set to ``value``.

    Paths: ``alpha``, ``generations``, ``<model>.<field>`` for a model field of the
    spec (``teacher.capacity``, ``student.steps``, ``weak.capacity``, ``strong.schedule``;
    ``<model>.lr`` sets a constant step), ``spectrum.<field>`` (``spectrum.a``),
    ``target.<field>`` (``target.b``), ``noise``.
    """
    head, _, tail = path.partition(".")
    if not tail:
        if head == "noise":
            return dataclasses.replace(spec, problem=dataclasses.replace(spec.problem, noise=value))
        if head in ("alpha", "generations"):
            return dataclasses.replace(spec, **{head: value})
    elif head in ("spectrum", "target"):
        sub = getattr(spec.problem, head)
        if not dataclasses.is_dataclass(sub) or tail not in {f.name for f in dataclasses.fields(sub)}:
            raise SpecError("map parameter", path, f"{type(sub).__name__} has no field {tail!r}")
        return dataclasses.replace(spec, problem=dataclasses.replace(
            spec.problem, **{head: dataclasses.replace(sub, **{tail: value})}))
    elif isinstance(getattr(spec, head, None), Model):
        model = getattr(spec, head)
        if tail == "lr":
            tail, value = "schedule", float(value)
        if tail not in {f.name for f in dataclasses.fields(model)}:
            raise SpecError("map parameter", path, f"Model has no field {tail!r}")
        return dataclasses.replace(spec, **{head: dataclasses.replace(model, **{tail: value})})
    raise SpecError("map parameter", path,
                    "must be 'alpha', 'generations', 'noise', 'spectrum.<field>', 'target.<field>' "
                    "or '<model>.<field>' for a model of the spec")


@dataclass
class TransferMap:
    x_param: str
    y_param: str
    xs: list
    ys: list
    metric: str
    values: np.ndarray  # (len(xs), len(ys))
    cache_hits: int
    cache_misses: int

    def to_dict(self) -> dict[str, Any]:
        return {"x": self.x_param, "y": self.y_param, "xs": list(self.xs), "ys": list(self.ys),
                "metric": self.metric, "values": [_list(r) for r in self.values],
                "cache": {"hits": self.cache_hits, "misses": self.cache_misses}}

    def to_csv(self) -> str:
        lines = [f"{self.x_param},{self.y_param},{self.metric}"]
        for i, x in enumerate(self.xs):
            for j, y in enumerate(self.ys):
                lines.append(f"{x},{y},{self.values[i, j]:.12g}")
        return "\n".join(lines) + "\n"


def _map_row(spec, xp: str, xv: Any, yp: str, ys: Sequence, metric: str,
             cache: PrefixCache | None) -> tuple[list[float], int, int]:
    """One row of a map (fixed x): values over ``ys``, and the cache's hits and misses."""
    cache = cache if cache is not None else PrefixCache()
    h0, m0 = cache.hits, cache.misses
    sx = _set_param(spec, xp, xv)
    row = []
    for yv in ys:
        rep = evaluate(_set_param(sx, yp, yv), cache=cache)
        if metric not in rep.metrics:
            raise SpecError("metric", metric, f"must be one of {sorted(rep.metrics)}")
        row.append(float(rep.metrics[metric]))
    return row, cache.hits - h0, cache.misses - m0


def transfer_map(spec: Distillation | WeakToStrong | Chain, x: tuple[str, Sequence], y: tuple[str, Sequence],
                 *, metric: str | None = None, cache: PrefixCache | None = None,
                 executor: Any = None) -> TransferMap:
    """A metric (default: ``kd_gain`` for distillation, ``pgr`` for weak-to-strong,
    ``final_over_first`` for chains) over a grid of two parameters (see ``_set_param``).

    Work shared by grid points (a teacher shared by a row, a hard-label student
    shared by a column) is done once, through a shared :class:`PrefixCache`.
    ``executor``: anything with ``submit(fn, *args)`` returning futures with ``result()``
    (a :class:`concurrent.futures.ProcessPoolExecutor`, or a ``dask.distributed.Client``
    with the ``sweeps`` extra) computes the rows in parallel, each with its own cache
    (work is then shared within a row only).
    """
    metric = metric or {"kd": "kd_gain", "w2s": "pgr", "chain": "final_over_first"}[spec.kind]
    (xp, xs), (yp, ys) = x, y
    if executor is None:
        cache = cache if cache is not None else PrefixCache()
        rows = [_map_row(spec, xp, xv, yp, ys, metric, cache) for xv in xs]
    else:
        if cache is not None:
            raise SpecError("cache", "PrefixCache", "cannot be shared with an executor's workers")
        futures = [executor.submit(_map_row, spec, xp, xv, yp, list(ys), metric, None) for xv in xs]
        rows = [f.result() for f in futures]
    vals = np.array([r[0] for r in rows], dtype=float).reshape(len(xs), len(ys))
    return TransferMap(xp, yp, list(xs), list(ys), metric, vals, sum(r[1] for r in rows),
                       sum(r[2] for r in rows))


# ----------------------------------------------------------------------------
# scenario files


def transfer_from_dict(data: dict[str, Any], *, kind: str | None = None, overrides: dict[str, Any] | None = None,
                       name: str = "scenario") -> Distillation | WeakToStrong | Chain:
    """A transfer spec from a scenario file's contents: ``[transfer]`` names the roles of
    the ``[[models]]`` (defaults: the first model is the teacher/weak/base, the second the
    student/strong/child). ``kind`` and ``overrides`` (e.g. from CLI flags) take precedence."""
    from .io import scenario_from_dict

    t = dict(data.get("transfer", {}))
    t.update({k: v for k, v in (overrides or {}).items() if v is not None})
    kind = kind or t.get("kind")
    if kind not in ("kd", "w2s", "chain"):
        raise SpecError("transfer.kind", kind, "must be 'kd', 'w2s' or 'chain'")
    base = {k: v for k, v in data.items() if k != "transfer"}
    scn = scenario_from_dict(base, name=name)
    models = {m.name: m for m in scn.models}
    order = [m.name for m in scn.models]

    def pick(role: str, default_index: int) -> Model:
        if role in t:
            if t[role] not in models:
                raise SpecError(f"transfer.{role}", t[role], f"must name one of the models {order}")
            return models[t[role]]
        if default_index >= len(order):
            raise SpecError(f"transfer.{role}", None, f"is required (the file lists {len(order)} model(s))")
        return models[order[default_index]]

    alpha = t.get("alpha", 0.0)
    if kind == "kd":
        return Distillation(scn.problem, teacher=pick("teacher", 0), student=pick("student", 1), alpha=alpha,
                            output=scn.output)
    if kind == "w2s":
        return WeakToStrong(scn.problem, weak=pick("weak", 0), strong=pick("strong", 1), alpha=alpha,
                            output=scn.output)
    base_m = pick("base", 0)
    child = pick("child", 1) if ("child" in t or len(order) > 1) else None
    return Chain(scn.problem, base=base_m, child=child, generations=t.get("generations", 2), alpha=alpha,
                 output=scn.output)
