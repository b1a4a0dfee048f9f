"""Claim files (TOML or JSON): a scenario, search settings and a list of claims, read strictly.

::

    [scenario]                      # a scenario in the scenario-file form (docs/scenario-files.md),
    [scenario.problem]              # or scenario = "path/to/file.toml" (relative to this file)
    ...
    [search]                        # optional: budget, seed, strategies, certify
    budget = 128

    [[claims]]
    name = "risk floor"
    kind = "inequality"             # inequality | equality | limit | monotone | rate
    lhs = "excess_risk"
    rhs = "sigma2*eta*tr/(2*B)"
    [claims.domain]
    eta = { lo = 0.01, hi = 0.3, log = true }

Every table is read with the project's strict rules: unknown keys are errors that list the
allowed ones, values of the wrong type are errors naming the field (``claims[0].rtol``), and
every expression goes through the safe parser (:mod:`spectral_theory.claims.expr`). Keys
of each kind: ``docs/claims.md``.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

from ..errors import SpecError
from ..spec.files import check_keys, read_scenario_file
from .claim import KINDS, Claim, Quantity
from .domain import Domain, Param
from .search import STRATEGIES

__all__ = ["load_claims", "read_claims", "ClaimFile", "FILE_KEYS", "CLAIM_KEYS", "SEARCH_KEYS"]

FILE_KEYS = frozenset({"scenario", "search", "claims"})
SEARCH_KEYS = frozenset({"budget", "seed", "strategies", "certify"})
COMMON_KEYS = frozenset({"name", "kind", "scenario", "model", "at", "method", "options", "where", "source",
                         "description", "domain", "points", "quantities", "budget", "seed", "certify"})
CLAIM_KEYS = {"inequality": COMMON_KEYS | {"lhs", "rhs", "op", "constant", "max_constant", "rtol"},
              "equality": COMMON_KEYS | {"lhs", "rhs", "rtol", "atol"},
              "limit": COMMON_KEYS | {"value", "limit", "param", "path", "values", "rtol", "atol"},
              "monotone": COMMON_KEYS | {"value", "param", "path", "values", "direction", "rtol", "atol"},
              "rate": COMMON_KEYS | {"quantity", "expected", "window", "band", "points_per_window", "param", "path",
                                     "values"}}
PARAM_KEYS = frozenset({"lo", "hi", "log", "integer", "values", "path"})
QUANTITY_KEYS = frozenset({"quantity", "model", "at", "method", "options", "set"})


class ClaimFile:
    """A read claim file: ``claims`` (Claim objects), ``search`` (settings) and per-claim
    overrides of them (``settings[name]``)."""

    def __init__(self, claims: list[Claim], search: dict[str, Any], settings: dict[str, dict[str, Any]]):
        self.claims = claims
        self.search = search
        self.settings = settings

    def options_for(self, claim: Claim) -> dict[str, Any]:
        return {**self.search, **self.settings.get(claim.name, {})}


def _search(field: str, t: Any) -> dict[str, Any]:
    check_keys(field, t, SEARCH_KEYS)
    out: dict[str, Any] = {}
    if "budget" in t:
        b = t["budget"]
        if isinstance(b, bool) or not isinstance(b, int) or not 1 <= b <= 10**6:
            raise SpecError(f"{field}.budget", b, "must be an integer in [1, 1000000] (evaluations)")
        out["budget"] = b
    if "seed" in t:
        s = t["seed"]
        if isinstance(s, bool) or not isinstance(s, int) or s < 0:
            raise SpecError(f"{field}.seed", s, "must be an integer >= 0")
        out["seed"] = s
    if "strategies" in t:
        s = t["strategies"]
        if not isinstance(s, list) or not s or any(x not in STRATEGIES for x in s):
            raise SpecError(f"{field}.strategies", s, f"must be a non-empty list of {list(STRATEGIES)}")
        out["strategies"] = tuple(s)
    if "certify" in t:
        c = t["certify"]
        if c not in (True, False, "auto"):
            raise SpecError(f"{field}.certify", c, "must be true, false or \"auto\"")
        out["certify"] = c
    return out


def _param(field: str, name: str, t: Any) -> Param:
    if isinstance(t, list):
        t = {"values": t}
    check_keys(field, t, PARAM_KEYS)
    try:
        return Param(t.get("lo"), t.get("hi"), log=t.get("log", False), integer=t.get("integer", False),
                     values=t.get("values"), path=t.get("path"), name=name)
    except SpecError as err:
        sub = err.field.split(".", 2)[-1] if err.field.count(".") >= 2 else ""
        raise SpecError(f"{field}.{sub}" if sub else field, err.value, err.allowed) from None


def _options(field: str, t: Any) -> dict[str, Any]:
    if not isinstance(t, dict):
        raise SpecError(field, t, "must be a table of solver options")
    out = {}
    for k, v in t.items():
        out[k] = None if (k == "d" and v == "inf") else v
    return out


def _quantity(field: str, t: Any) -> Any:
    if isinstance(t, (str, int, float)) and not isinstance(t, bool):
        return t  # an expression, parsed by the claim
    check_keys(field, t, QUANTITY_KEYS, {"quantity"})
    if not isinstance(t["quantity"], str):
        raise SpecError(f"{field}.quantity", t["quantity"], "must be the name of a quantity")
    s = t.get("set", {})
    if not isinstance(s, dict):
        raise SpecError(f"{field}.set", s, "must be a table of field paths and values")
    at = t.get("at")
    if at is not None and (isinstance(at, bool) or not isinstance(at, int) or at < 0):
        raise SpecError(f"{field}.at", at, "must be a step (an integer >= 0)")
    method = t.get("method")
    if method is not None and not isinstance(method, str):
        raise SpecError(f"{field}.method", method, "must be a method name")
    return Quantity(t["quantity"], model=t.get("model"), at=at, method=method,
                    options=_options(f"{field}.options", t.get("options", {})), set=dict(s))


def _scenario(field: str, value: Any, base_dir: Path) -> dict:
    if isinstance(value, str):
        path = Path(value)
        if not path.is_absolute():
            path = base_dir / path
        return read_scenario_file(path)
    if not isinstance(value, dict):
        raise SpecError(field, value, "must be a scenario table or the path of a scenario file")
    return copy.deepcopy(value)


def _claim(i: int, t: Any, scenario: dict | None, base_dir: Path) -> tuple[Claim, dict[str, Any]]:
    field = f"claims[{i}]"
    if not isinstance(t, dict):
        raise SpecError(field, t, "must be a table")
    kind = t.get("kind")
    if kind not in KINDS:
        raise SpecError(f"{field}.kind", kind, f"must be one of {list(KINDS)}")
    check_keys(field, t, CLAIM_KEYS[kind], {"name", "kind"})
    name = t["name"]
    if not isinstance(name, str) or not name:
        raise SpecError(f"{field}.name", name, "must be a non-empty string")
    scn = _scenario(f"{field}.scenario", t["scenario"], base_dir) if "scenario" in t else scenario
    if scn is None:
        raise SpecError(f"{field}.scenario", None, "is required: give [scenario] at the top or one per claim")
    dom_t = t.get("domain", {})
    if not isinstance(dom_t, dict):
        raise SpecError(f"{field}.domain", dom_t, "must be a table of parameters")
    params = {k: _param(f"{field}.domain.{k}", k, v) for k, v in dom_t.items()}
    points = t.get("points")
    if points is not None:
        if not isinstance(points, list) or not points or not all(isinstance(p, dict) for p in points):
            raise SpecError(f"{field}.points", points, "must be a non-empty list of tables (parameter values)")
        domain = Domain(params, points=tuple(points))
    else:
        domain = Domain(params)
    qt = t.get("quantities", {})
    if not isinstance(qt, dict):
        raise SpecError(f"{field}.quantities", qt, "must be a table of named quantities")
    quantities = {k: _quantity(f"{field}.quantities.{k}", v) for k, v in qt.items()}
    kw: dict[str, Any] = {k: v for k, v in t.items() if k not in
                          ("kind", "scenario", "domain", "points", "quantities", "budget", "seed", "certify",
                           "options", "points_per_window")}
    if "options" in t:
        kw["options"] = _options(f"{field}.options", t["options"])
    if "points_per_window" in t:
        kw["points"] = t["points_per_window"]
    for k in ("window", "values"):
        if k in kw and isinstance(kw[k], list):
            kw[k] = tuple(kw[k])
    _check_types(field, kw)
    cls = KINDS[kind]
    try:
        claim = cls(scenario=scn, domain=domain, quantities=quantities, **kw)
    except SpecError as err:
        f = err.field
        f = f"{field}.{f.split('.', 1)[1]}" if f.startswith(f"{name}.") else f"{field}: {f}"
        raise SpecError(f, err.value, err.allowed) from None
    settings = _search(field, {k: t[k] for k in ("budget", "seed", "certify") if k in t})
    return claim, settings


def _check_types(field: str, kw: dict[str, Any]) -> None:
    for k in ("model", "method", "op", "direction", "quantity", "param", "path", "source", "description"):
        if k in kw and kw[k] is not None and not isinstance(kw[k], str):
            raise SpecError(f"{field}.{k}", kw[k], "must be a string")
    for k in ("rtol", "atol", "band", "max_constant"):
        if k in kw and (isinstance(kw[k], bool) or not isinstance(kw[k], (int, float))
                        or not math.isfinite(kw[k])):
            raise SpecError(f"{field}.{k}", kw[k], "must be a finite number")
    if "at" in kw and (isinstance(kw["at"], bool) or not isinstance(kw["at"], int) or kw["at"] < 0):
        raise SpecError(f"{field}.at", kw["at"], "must be a step (an integer >= 0)")
    if "where" in kw and not isinstance(kw["where"], str):
        raise SpecError(f"{field}.where", kw["where"], "must be a condition string")


def read_claims(data: Any, *, base_dir: str | Path = ".") -> ClaimFile:
    """Claims from a claim file's parsed contents (module docstring)."""
    check_keys("claims file", data, FILE_KEYS, {"claims"})
    base = Path(base_dir)
    scenario = _scenario("scenario", data["scenario"], base) if "scenario" in data else None
    search = _search("search", data.get("search", {}))
    claims_t = data["claims"]
    if not isinstance(claims_t, list) or not claims_t:
        raise SpecError("claims", claims_t, "must be a non-empty list of [[claims]] tables")
    claims, settings = [], {}
    for i, t in enumerate(claims_t):
        c, s = _claim(i, t, scenario, base)
        if c.name in settings:
            raise SpecError(f"claims[{i}].name", c.name, "is the name of an earlier claim: names must differ")
        claims.append(c)
        settings[c.name] = s
    return ClaimFile(claims, search, settings)


def load_claims(path: str | Path) -> ClaimFile:
    """Read a ``.toml`` or ``.json`` claim file (UTF-8; strict, module docstring)."""
    try:
        data = read_scenario_file(path)
    except SpecError as err:
        field = "claims file" if err.field == "scenario file" else err.field
        raise SpecError(field, err.value, err.allowed) from None
    return read_claims(data, base_dir=Path(path).parent)
