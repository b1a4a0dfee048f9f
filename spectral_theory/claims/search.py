"""The search that tries to break a claim, cheapest strategy first, and its report.

Strategies (each evaluation is one parameter point through the fast solvers):

* ``grid``: the domain's corners and centre (every point of a finite domain that fits the
  budget);
* ``sobol``: a scrambled Sobol design (``scipy.stats.qmc.Sobol``), a power of two points
  (at most 35% of the budget and :data:`SOBOL_PER_DIM` per dimension);
* ``local``: bounded Nelder-Mead maximisations of the ratio from the best points so far
  (multistart, ``scipy.optimize.minimize``);
* ``de``: ``scipy.optimize.differential_evolution`` seeded with the best points so far.

All work in the unit cube of the domain (:mod:`spectral_theory.claims.domain`) and share one
cache, so a point (after rounding integers) is evaluated once. The search maximises the
claim's ratio (``docs/claims.md``): points outside the claim's ``where`` condition score
``1/c < 1`` (``c``: how far outside), so the maximiser is drawn to the boundary of the
condition but never counts an excluded point as a violation.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import SpecError
from .claim import Claim, evaluate_point

__all__ = ["ClaimReport", "check", "check_all", "STRATEGIES", "DEFAULT_BUDGET"]

STRATEGIES = ("grid", "sobol", "local", "de")
DEFAULT_BUDGET = 200
#: at most this many Sobol points per dimension (a power of two below it)
SOBOL_PER_DIM = 16
#: share of the budget each strategy may use (what one leaves, the next takes)
_SHARES = {"grid": 0.15, "sobol": 0.35, "local": 0.3, "de": 1.0}


class _Done(Exception):
    pass


@dataclass
class ClaimReport:
    """What checking one claim found (``docs/claims.md``, "Reports")."""

    claim: str
    kind: str
    statement: str
    verdict: str  # "holds" | "violated" | "undecided"
    points: int
    invalid: int
    excluded: int
    strategies: dict[str, int]
    worst: dict[str, Any] | None
    margin: float | None
    seconds: float
    budget: int
    first_violation: int | None = None
    constant: dict[str, Any] | None = None
    witness: dict | None = None
    certificate: Any = None
    source: str = ""
    #: "search" (the floating-point search) or "certificate" (a certified counterexample at the
    #: worst point overruled a search that saw the claim hold within its round-off allowance)
    verdict_from: str = "search"
    errors: list[str] = field(default_factory=list)

    @property
    def violated(self) -> bool:
        return self.verdict == "violated"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready contents."""
        out = {k: getattr(self, k) for k in ("claim", "kind", "statement", "verdict", "points", "invalid",
                                             "excluded", "strategies", "worst", "margin", "seconds", "budget",
                                             "first_violation", "constant", "source", "verdict_from")}
        out["errors"] = self.errors[:5]
        out["witness"] = self.witness
        out["certificate"] = self.certificate.to_dict() if self.certificate is not None else None
        return _jsonable(out)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False)

    def witness_text(self) -> str | None:
        """The witness point as a scenario file (JSON), or None."""
        from .scenarios import witness_text

        return None if self.witness is None else witness_text(self.witness)

    def summary(self) -> str:
        """A few lines: verdict, worst point, margin, search effort, certificate."""
        lines = [f"{self.claim}: {self.verdict.upper()}  ({self.kind}: {self.statement})"]
        if self.verdict_from == "certificate":
            lines.append("  verdict from the certificate: the floating-point search saw the claim hold "
                         "(within its round-off allowance), the interval re-evaluation proves it false")
        if self.worst is not None:
            params = ", ".join(f"{k}={_fmt(v)}" for k, v in self.worst["params"].items())
            lines.append(f"  worst ratio {_fmt(self.worst['ratio'])} at {params or 'the only point'}"
                         + _info_text(self.worst.get("info", {})))
        if self.constant is not None:
            if self.constant.get("bound") == "C <=":
                lines.append(f"  largest constant found: C <= {_fmt(self.constant['value'])} (min lhs/rhs: "
                             "the claim holds on the points tried for every C up to it)")
            else:
                lines.append(f"  smallest constant found: C >= {_fmt(self.constant['value'])} (max lhs/rhs)")
        if self.margin is not None:
            lines.append(f"  margin {_fmt(self.margin)} (1 - worst ratio)")
        strat = ", ".join(f"{k} {v}" for k, v in self.strategies.items())
        lines.append(f"  {self.points} points ({strat}); {self.invalid} invalid, {self.excluded} outside "
                     f"'where'; {self.seconds:.2f} s" + (f"; first violation at evaluation {self.first_violation}"
                                                         if self.first_violation else ""))
        if self.errors:
            more = f" (and {len(self.errors) - 1} other reasons)" if len(self.errors) > 1 else ""
            lines.append(f"  invalid points, e.g.: {self.errors[0]}{more}")
        if self.certificate is not None:
            lines.append("  " + self.certificate.summary().replace("\n", "\n  "))
        return "\n".join(lines) + "\n"


def _info_text(info: dict) -> str:
    if "overflow" in info:
        return f" (the recursion overflows: {info['overflow']})"
    if "worst_between" in info:  # monotone: the pair of values in the wrong order
        a, b = info["worst_between"]
        return f" (value {_fmt(info['before'])} at {_fmt(a)}, then {_fmt(info['after'])} at {_fmt(b)})"
    keys = [k for k in ("slope", "expected", "largest_valid" if "largest_valid" in info else "constant") if k in info]
    keys = keys or [k for k in ("lhs", "rhs") if k in info and not isinstance(info[k], list)]
    if not keys:
        return ""
    return " (" + ", ".join(f"{k} {_fmt(info[k])}" for k in keys) + ")"


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        v = float(obj)
        return v if math.isfinite(v) else ("inf" if v > 0 else "-inf" if v < 0 else "nan")
    if isinstance(obj, (np.integer,)):
        return int(obj)
    return obj


class _Search:
    def __init__(self, claim: Claim, budget: int, seed: int, stop_on_violation: bool, progress: Any):
        self.claim, self.budget, self.seed = claim, budget, seed
        self.stop = stop_on_violation
        self.cache: dict[tuple, dict] = {}
        self.order: list[dict] = []
        self.counts: dict[str, int] = {}
        self.first_violation: int | None = None
        self.progress = progress

    def key(self, params: dict) -> tuple:
        return tuple((k, params[k]) for k in sorted(params))

    def eval(self, params: dict, strategy: str) -> dict:
        k = self.key(params)
        if k in self.cache:
            return self.cache[k]
        if len(self.order) >= self.budget:
            raise _Done
        rec = evaluate_point(self.claim, params)
        rec["strategy"] = strategy
        rec["index"] = len(self.order) + 1
        self.cache[k] = rec
        self.order.append(rec)
        self.counts[strategy] = self.counts.get(strategy, 0) + 1
        if self.progress is not None:
            self.progress.update(1)
        if rec.get("inside") and not rec.get("holds", True) and self.first_violation is None:
            self.first_violation = rec["index"]
            if self.stop:
                raise _Done
        return rec

    def score(self, rec: dict) -> float:
        """What the maximisers maximise (finite)."""
        if "error" in rec:
            return -1e300
        if not rec["inside"]:
            return 1.0 / rec["outside"] if rec["outside"] > 0 else -1e300
        r = rec["ratio"]
        return 1e300 if r == math.inf else float(r)

    def objective(self, u: np.ndarray, strategy: str) -> float:
        u = np.clip(np.asarray(u, dtype=float), 0.0, 1.0)
        return -self.score(self.eval(self.claim.domain.point(u), strategy))

    def best(self, n: int) -> list[dict]:
        recs = [r for r in self.order if "error" not in r]
        return sorted(recs, key=self.score, reverse=True)[:n]

    def left(self) -> int:
        return self.budget - len(self.order)

    # ------------------------------------------------------------------ strategies
    def grid(self, cap: int) -> None:
        dom = self.claim.domain
        if dom.points is not None or dom.size <= max(cap, self.left()):  # a finite domain that fits: all of it
            for p in dom.enumerate():
                self.eval(p, "grid")
            return
        pts = [dom.point([0.5] * dom.dim)]
        if dom.dim <= 6:
            pts += dom.grid(2)
        for p in pts[:cap]:
            self.eval(p, "grid")

    def sobol(self, cap: int) -> None:
        from scipy.stats import qmc

        dom = self.claim.domain
        if dom.dim == 0 or cap < 1:
            return
        cap = min(cap, SOBOL_PER_DIM * dom.dim)  # enough to seed the maximisers; they do the rest
        m = max(0, int(math.floor(math.log2(cap))))
        sampler = qmc.Sobol(d=dom.dim, scramble=True, seed=self.seed)
        for u in sampler.random_base2(m):
            self.eval(dom.point(u), "sobol")

    def local(self, cap: int) -> None:
        from scipy.optimize import minimize

        dom = self.claim.domain
        if dom.dim == 0:
            return
        stop_at = len(self.order) + cap
        starts = self.best(3)
        for rec in starts:
            if len(self.order) >= stop_at:
                break
            u0 = dom.unit(rec["params"])
            left = stop_at - len(self.order)
            simplex = [u0] + [np.clip(u0 + 0.15 * np.eye(dom.dim)[j] * (1 if u0[j] < 0.85 else -1), 0, 1)
                              for j in range(dom.dim)]
            minimize(self.objective, u0, args=("local",), method="Nelder-Mead", bounds=[(0, 1)] * dom.dim,
                     options={"maxfev": max(left // max(len(starts), 1), dom.dim + 2), "xatol": 1e-4,
                              "fatol": 1e-12, "initial_simplex": np.array(simplex)})

    def de(self, cap: int) -> None:
        from scipy.optimize import differential_evolution

        dom = self.claim.domain
        if dom.dim == 0 or cap < 4:
            return
        pop = max(5, min(15, cap // max(dom.dim, 1) // 4))
        n_pop = pop * dom.dim
        init = [dom.unit(r["params"]) for r in self.best(n_pop)]
        rng = np.random.default_rng(self.seed)
        while len(init) < n_pop:
            init.append(rng.random(dom.dim))
        init_arr = np.clip(np.array(init[:n_pop]), 0.0, 1.0)
        if n_pop < 5:
            return
        differential_evolution(self.objective, [(0, 1)] * dom.dim, args=("de",), init=init_arr,
                               maxiter=max(1, math.ceil(cap / n_pop)), seed=self.seed, polish=False, tol=0,
                               updating="immediate")


def check(claim: Claim, *, budget: int = DEFAULT_BUDGET, seed: int = 0, strategies: Any = STRATEGIES,
          certify: bool | str = "auto", stop_on_violation: bool = False, progress: Any = None,
          certify_options: dict | None = None) -> ClaimReport:
    """Try to break ``claim`` with at most ``budget`` evaluations (module docstring) and report.

    ``certify``: re-evaluate the worst point (the counterexample, or the tightest point of a
    claim that holds) in interval arithmetic (:mod:`spectral_theory.claims.certify`); ``"auto"``
    certifies when its first pass is estimated under about a minute (and raises the precision
    only while the next pass fits in it), ``True`` always (an error if it cannot), ``False``
    never. A certified counterexample makes the verdict ``violated`` even where the float
    search saw the claim hold within its round-off allowance (``verdict_from``). ``stop_on_violation``: stop at the first violation (the report's
    ``first_violation`` is its evaluation number either way).
    """
    if not isinstance(claim, Claim):
        raise SpecError("claim", claim, "must be a Claim (Inequality, Equality, Limit, Monotone, Rate)")
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise SpecError("budget", budget, "must be an integer >= 1 (evaluations)")
    if isinstance(strategies, str):
        strategies = (strategies,)
    for s in strategies:
        if s not in STRATEGIES:
            raise SpecError("strategies", s, f"must be among {list(STRATEGIES)}")
    if certify not in (True, False, "auto"):
        raise SpecError("certify", certify, "must be True, False or 'auto'")
    start = time.perf_counter()
    srch = _Search(claim, budget, seed, stop_on_violation, progress)
    try:
        for s in strategies:
            cap = srch.left() if s == strategies[-1] else max(1, int(round(_SHARES[s] * budget)))
            cap = min(cap, srch.left())
            getattr(srch, s)(cap)
    except _Done:
        pass
    seconds = time.perf_counter() - start
    return _report(claim, srch, budget, seconds, certify, certify_options or {})


def _report(claim: Claim, srch: _Search, budget: int, seconds: float, certify: Any,
            certify_options: dict) -> ClaimReport:
    recs = srch.order
    inside = [r for r in recs if r.get("inside")]
    errors = [r for r in recs if "error" in r]
    excluded = [r for r in recs if "error" not in r and not r.get("inside")]
    worst = max(inside, key=lambda r: r["ratio"]) if inside else None
    violated = any(not r["holds"] for r in inside)
    verdict = "violated" if violated else ("holds" if inside else "undecided")
    constant = None
    if getattr(claim, "finds_constant", False) and inside:
        if claim.op in ("<=", "<"):  # the smallest valid constant is at least max lhs/rhs
            cw = max(inside, key=lambda r: r["info"].get("constant", -math.inf))
            constant = {"value": cw["info"].get("constant"), "params": cw["params"], "bound": "C >="}
        else:  # lhs >= C rhs: the largest valid constant is at most min lhs/rhs
            cw = min(inside, key=lambda r: r["info"].get("largest_valid", math.inf))
            constant = {"value": cw["info"].get("largest_valid"), "params": cw["params"], "bound": "C <="}
    margin = None
    if worst is not None and math.isfinite(worst["ratio"]) and not getattr(claim, "finds_constant", False):
        margin = 1.0 - worst["ratio"]
    w = None
    witness = None
    if worst is not None:
        w = {"params": worst["params"], "ratio": worst["ratio"], "info": worst["info"],
             "strategy": worst["strategy"], "evaluation": worst["index"]}
        try:
            data, _ = claim.build_at(worst["params"], {})
            witness = data
        except Exception:  # noqa: BLE001 - a witness file is a convenience
            witness = None
    rep = ClaimReport(claim=claim.name, kind=claim.kind, statement=claim.statement(), verdict=verdict,
                      points=len(recs), invalid=len(errors), excluded=len(excluded),
                      strategies=dict(srch.counts), worst=w, margin=margin, seconds=seconds, budget=budget,
                      first_violation=srch.first_violation, constant=constant, witness=witness,
                      source=claim.source, errors=sorted({r["error"] for r in errors}))
    if worst is not None and certify is not False:
        from .certify import CertificationError, certify_point, estimate_cost

        est = estimate_cost(claim, worst["params"])
        limit = certify_options.get("max_seconds", 60.0)
        if certify is True or est["seconds"] <= limit:
            opts = {k: v for k, v in certify_options.items() if k != "max_seconds"}
            if certify == "auto":  # no precision rerun past the time allowed
                opts["max_seconds"] = limit
            try:
                rep.certificate = certify_point(claim, worst["params"], **opts)
            except CertificationError as err:
                if certify is True:
                    raise
                from .certify import Certificate

                rep.certificate = Certificate.declined(str(err))
        else:
            from .certify import Certificate

            rep.certificate = Certificate.declined(
                f"not certified: estimated {est['seconds']:.0f} s ({est['why']}); pass certify=True to force")
        if rep.certificate.status == "violated" and rep.verdict != "violated":
            # a proof beats the floating-point search (its allowance rtol, its rounding)
            rep.verdict, rep.verdict_from = "violated", "certificate"
            rep.margin = None
    return rep


def check_all(claims: list[Claim], **kw: Any) -> list[ClaimReport]:
    """:func:`check` for each claim."""
    return [check(c, **kw) for c in claims]
