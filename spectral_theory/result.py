"""One result type for theory and Monte Carlo (``docs/design.md``).

:func:`spectral_theory.predict` and :func:`spectral_theory.simulate` both
return a :class:`Result`; fields a method cannot provide are ``None``
(the theory has no standard errors, Monte Carlo has no exact bias/variance
split or first-moment multipliers).
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["CONVENTIONS", "ModeProfile", "ModelResult", "Result"]

CONVENTIONS = {
    "risk": "excess risk E(phi) = sum_i (phi_i - theta_i)^2 = E[(z.phi - z.theta)^2]; "
            "not halved; total risk = noise + excess risk",
    "exponents": "lambda_i = i^-a, theta_i^2 = i^-b (spectral-theory a, b; "
                 "Bordelon-Pehlevan swap a and b; Paquette et al. a = 2 alpha, b = 2 alpha + 2 beta)",
    "lr": "batch-mean step size (batch-summed step = batch-mean step / B)",
    "steps": "each model counts its own SGD steps; step 0 is its initialisation phi = 0",
    "bias_variance": "bias = part driven by the target (noise set to 0); variance = part driven "
                     "by label noise (target set to 0); they add up to the excess risk exactly",
}


@dataclass
class ModeProfile:
    """Per-mode quantities of one model at the end of its training.

    ``second_moment[i] = E[e_i^2]`` (``M_gg,i``), its bias and variance parts,
    ``first_moment[i]`` the multiplier ``mu_i`` with ``E[e_i] = mu_i theta_i``,
    ``normalised = M_gg,i / theta_i^2`` (``nan`` where ``theta_i = 0``).
    """

    second_moment: np.ndarray
    second_moment_se: np.ndarray | None = None
    bias: np.ndarray | None = None
    variance: np.ndarray | None = None
    first_moment: np.ndarray | None = None
    theta2: np.ndarray | None = None

    @property
    def normalised(self) -> np.ndarray:
        t = np.asarray(self.theta2, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            r = np.where(t > 0, self.second_moment / np.where(t > 0, t, 1.0), np.nan)
        return np.where(np.isinf(r), np.nan, r)  # nan also where theta_i^2 is too small to divide by

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"second_moment": as_list(self.second_moment)}
        for k in ("second_moment_se", "bias", "variance", "first_moment"):
            v = getattr(self, k)
            if v is not None:
                out[k] = as_list(v)
        if self.theta2 is not None:
            out["normalised"] = as_list(self.normalised)
        return out


@dataclass
class ModelResult:
    """Curves of one model at its reported steps."""

    name: str
    steps: np.ndarray
    excess_risk: np.ndarray
    excess_risk_se: np.ndarray | None = None
    excess_risk_ci_low: np.ndarray | None = None  # Monte Carlo: bootstrap interval (Result.ci_level)
    excess_risk_ci_high: np.ndarray | None = None
    bias: np.ndarray | None = None
    variance: np.ndarray | None = None
    teacher: str | None = None
    disagreement: np.ndarray | None = None  # E||phi_g(t) - phi_teacher||^2 at steps
    disagreement_se: np.ndarray | None = None
    disagreement_ci_low: np.ndarray | None = None
    disagreement_ci_high: np.ndarray | None = None
    modes: ModeProfile | None = None  # at the end of training
    mode_curves: np.ndarray | None = None  # (len(steps), d) E[e_i^2] at steps, if recorded
    curve: np.ndarray | None = None  # excess risk at every step 0..T, if recorded
    stability_limit: float | None = None
    max_lr: float | None = None
    #: averaged models (``docs/theory.md`` §10): the last iterate's curves at ``steps``
    #: (``excess_risk``, and ``bias``/``variance`` (theory) or ``excess_risk_se`` and the bootstrap
    #: ``excess_risk_ci_low``/``excess_risk_ci_high`` (Monte Carlo))
    #: and its final per-mode ``second_moment``; the fields above are the deployed average's
    last_iterate: dict[str, np.ndarray] | None = None
    #: Monte Carlo: per-replicate values (montecarlo.Replicates), for bootstraps; not exported
    replicates: Any = field(default=None, repr=False)

    def at(self, step: int) -> float:
        """Excess risk at one reported step."""
        idx = np.flatnonzero(self.steps == step)
        if idx.size == 0:
            from .errors import UnknownNameError

            raise UnknownNameError(f"result[{self.name!r}].at", step,
                                   np.asarray(self.steps, dtype=np.int64).ravel().tolist(), "reported steps")
        return float(self.excess_risk[idx[0]])

    @property
    def final(self) -> float:
        return float(self.excess_risk[-1])

    def to_dict(self, *, modes: bool = False) -> dict[str, Any]:
        """Curves as JSON-ready lists; ``modes``: also the per-mode arrays (``modes``, ``mode_curves``)."""
        out: dict[str, Any] = {"steps": np.asarray(self.steps, dtype=np.int64).ravel().tolist(),
                               "excess_risk": as_list(self.excess_risk)}
        for k in ("excess_risk_se", "excess_risk_ci_low", "excess_risk_ci_high", "bias", "variance",
                  "disagreement", "disagreement_se", "disagreement_ci_low", "disagreement_ci_high"):
            v = getattr(self, k)
            if v is not None:
                out[k] = as_list(v)
        if self.teacher is not None:
            out["teacher"] = self.teacher
        if self.stability_limit is not None:
            # null: no limit (every speed is 0, so the model never moves and any step is stable)
            out["stability_limit"] = _num(self.stability_limit) if math.isfinite(self.stability_limit) else None
            out["max_lr"] = _num(self.max_lr)
        if self.curve is not None:
            out["curve"] = as_list(self.curve)
        if self.last_iterate is not None:
            out["last_iterate"] = {k: as_list(v) for k, v in self.last_iterate.items()
                                   if modes or k != "second_moment"}
        if modes and self.modes is not None:
            out["modes"] = self.modes.to_dict()
        if modes and self.mode_curves is not None:
            out["mode_curves"] = [as_list(r) for r in self.mode_curves]
        return out

    def arrays(self) -> dict[str, np.ndarray]:
        """Every array of this model, curves and per-mode, by name (the ``.npz`` layout of
        :meth:`Result.save_npz`, without the model prefix)."""
        out: dict[str, np.ndarray] = {"steps": np.asarray(self.steps), "excess_risk": np.asarray(self.excess_risk)}
        for k in ("excess_risk_se", "excess_risk_ci_low", "excess_risk_ci_high", "bias", "variance",
                  "disagreement", "disagreement_se", "disagreement_ci_low", "disagreement_ci_high", "curve",
                  "mode_curves"):
            v = getattr(self, k)
            if v is not None:
                out[k] = np.asarray(v)
        if self.modes is not None:
            for k in ("second_moment", "second_moment_se", "bias", "variance", "first_moment", "theta2"):
                v = getattr(self.modes, k)
                if v is not None:
                    out[f"modes/{k}"] = np.asarray(v)
            if self.modes.theta2 is not None:
                out["modes/normalised"] = self.modes.normalised
        if self.last_iterate is not None:
            for k, v in self.last_iterate.items():
                out[f"last_iterate/{k}"] = np.asarray(v)
        return out


@dataclass
class Result:
    """Theory or Monte Carlo answer for one scenario."""

    method: str
    models: dict[str, ModelResult]
    scenario: Any = None
    disagreement: dict[str, dict[str, float]] | None = None  # final pairwise E||phi_g - phi_h||^2
    reps: int | None = None
    seed: int | None = None
    ci_level: float | None = None  # Monte Carlo: level of the *_ci_low/high bootstrap intervals
    conventions: dict[str, str] = field(default_factory=lambda: dict(CONVENTIONS))
    diagnostics: dict[str, Any] = field(default_factory=dict)
    state: Any = field(default=None, repr=False)  # final per-mode state (theory), not exported

    def __getitem__(self, name: str) -> ModelResult:
        try:
            return self.models[name]
        except (KeyError, TypeError):
            from .errors import UnknownNameError

            raise UnknownNameError("result", name, list(self.models), "models") from None

    # ------------------------------------------------------------------ export
    def to_dict(self, *, modes: bool = False) -> dict[str, Any]:
        """JSON-ready contents; ``modes``: also every model's per-mode arrays (``d`` numbers
        each: opt-in, see :meth:`save_npz` for a compact binary copy)."""
        out: dict[str, Any] = {
            "method": self.method,
            "conventions": self.conventions,
            "models": {k: v.to_dict(modes=modes) for k, v in self.models.items()},
        }
        if self.reps is not None:
            out["reps"] = self.reps
            out["seed"] = self.seed
        if self.ci_level is not None:
            out["ci_level"] = self.ci_level
        if self.disagreement is not None:
            out["disagreement"] = {g: {h: _num(v) for h, v in row.items()}
                                   for g, row in self.disagreement.items()}
        if self.scenario is not None:
            out["scenario"] = self.scenario.describe()
        out["diagnostics"] = jsonable(self.diagnostics)
        return out

    def to_json(self, *, modes: bool = False, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(modes=modes), indent=indent, allow_nan=False)

    def arrays(self) -> dict[str, np.ndarray]:
        """Every array of every model, named ``"<model>/<array>"`` (per-mode ones
        ``"<model>/modes/<array>"``): what :meth:`save_npz` writes."""
        return {f"{name}/{k}": v for name, m in self.models.items() for k, v in m.arrays().items()}

    def save_npz(self, file: Any) -> None:
        """Write :meth:`arrays` as an uncompressed numpy ``.npz`` archive (``file``: a path,
        written as named, or a binary file object); ``np.load(file)[key]`` gives them back
        exactly."""
        save_npz(file, self.arrays())

    def rows(self) -> list[dict[str, Any]]:
        """Tidy rows: one per (model, step)."""
        keys = ("excess_risk", "excess_risk_se", "excess_risk_ci_low", "excess_risk_ci_high", "bias",
                "variance", "disagreement", "disagreement_se", "disagreement_ci_low", "disagreement_ci_high")
        rows = []
        for name, m in self.models.items():
            steps = np.asarray(m.steps, dtype=np.int64).ravel().tolist()
            cols = {k: (None if getattr(m, k) is None
                        else np.asarray(getattr(m, k), dtype=float).ravel().tolist()) for k in keys}
            for j, t in enumerate(steps):
                row: dict[str, Any] = {"model": name, "step": t}
                for k in keys:
                    row[k] = None if cols[k] is None else cols[k][j]
                rows.append(row)
        if any(m.last_iterate is not None for m in self.models.values()):  # averaged models (theory §10)
            k = 0
            for m in self.models.values():
                li = None if m.last_iterate is None else np.asarray(m.last_iterate["excess_risk"]).ravel().tolist()
                for j in range(np.asarray(m.steps).size):
                    rows[k]["last_iterate"] = None if li is None else li[j]
                    k += 1
        return rows

    def to_csv(self) -> str:
        rows = self.rows()
        cols = ["model", "step", "excess_risk"]
        for k in ("excess_risk_se", "excess_risk_ci_low", "excess_risk_ci_high", "bias", "variance",
                  "disagreement", "disagreement_se", "disagreement_ci_low", "disagreement_ci_high", "last_iterate"):
            if any(r.get(k) is not None for r in rows):
                cols.append(k)
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if r[k] is None else (f"{r[k]:.12g}" if isinstance(r[k], float) else r[k]))
                        for k in cols})
        return buf.getvalue()

    def table(self) -> str:
        rows = self.rows()
        for r in rows:
            r["interval"] = (None if r["excess_risk_ci_low"] is None else
                             f"[{_fmt(r['excess_risk_ci_low'])}, {_fmt(r['excess_risk_ci_high'])}]")
        cols = ["model", "step", "excess_risk"]
        for k in ("excess_risk_se", "interval", "bias", "variance", "disagreement", "last_iterate"):
            if any(r.get(k) is not None for r in rows):
                cols.append(k)
        head = {"excess_risk": "excess risk", "excess_risk_se": "s.e.", "last_iterate": "last iterate",
                "interval": f"{100 * (self.ci_level or 0.95):g}% interval",
                "disagreement": "disagr. w/ teacher"}
        cells = [[head.get(c, c) for c in cols]]
        for r in rows:
            cells.append([_fmt(r.get(c)) for c in cols])
        widths = [max(len(row[i]) for row in cells) for i in range(len(cols))]
        head_line = (f"# {self.method}" + (f", {self.reps} replicates, seed {self.seed}" if self.reps else "")
                     + "; excess risk sum_i (phi_i - theta_i)^2 (not halved)")
        spec = self.scenario.problem.describe() if self.scenario is not None else None
        if spec and spec["spectrum"]["kind"] == "powerlaw":
            head_line += f"; lambda_i = i^-a with a = {spec['spectrum']['a']:g}"
            if spec["target"]["kind"] == "powerlaw":
                head_line += f", theta_i^2 = i^-b with b = {spec['target']['b']:g}"
        lines = [head_line]
        for k, row in enumerate(cells):
            lines.append("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))))
            if k == 0:
                lines.append("  ".join("-" * w for w in widths))
        return "\n".join(lines) + "\n"


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def _num(v: Any) -> float | None | str:
    v = float(v)
    if math.isnan(v):
        return None
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return v


def as_list(a: Any) -> list:
    """``a`` flattened to a list of Python floats, with :func:`_num`'s representation of
    non-finite values (``None`` for nan, ``"inf"``/``"-inf"``); vectorised: finite arrays
    go through ``ndarray.tolist`` only, others patch their few non-finite entries."""
    arr = np.asarray(a, dtype=float).ravel()
    out = arr.tolist()
    finite = np.isfinite(arr)
    if not finite.all():
        for i in np.flatnonzero(~finite).tolist():
            out[i] = _num(out[i])
    return out


def save_npz(file: Any, arrays: dict[str, np.ndarray]) -> None:
    """``arrays`` as an uncompressed ``.npz`` archive; a path is written as named (numpy
    would otherwise append ``.npz`` to a name without it)."""
    if isinstance(file, (str, bytes)) or hasattr(file, "__fspath__"):
        with open(file, "wb") as fh:
            np.savez(fh, **arrays)
    else:
        np.savez(file, **arrays)


def jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return as_list(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return _num(obj)
    return obj
