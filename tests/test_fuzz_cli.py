"""Fuzz the command line with random scenario files (issue 8, item 7).

Each example writes one scenario file, TOML or JSON, built from a strategy that mixes valid
sections (tiny problems: ``d <= 12``, ``steps <= 40``; models may carry ``average`` and
``momentum`` tables of every kind, coefficients up to ``1e308``) with mutations: unknown keys, wrong
types, deleted keys, extreme numbers (``1e308``, ``-0.0``, ``nan``, ``inf``, ``"inf"``,
``10**30``), huge ``d`` (which must be refused before anything is allocated), huge step
counts, empty tables, values wrapped in lists or tables, truncated text, stray bytes and
other encodings. It runs one subcommand on it (``run``, ``run --method continuum``, ``run
--every-step``, ``run --modes``, ``simulate`` and ``compare`` with 3 replicates, ``stability``,
``kd``, ``w2s``, ``chain``) through
:func:`spectral_theory.cli.main` in-process, with ``--out`` into an empty directory and a
memory budget of 512 MiB and a time budget of 2 s (``--max-seconds``: a run estimated
longer is refused). The only allowed outcomes:

* exit 0, the output file holds JSON whose numbers are all finite, nothing else is written;
* exit 2, one line ``spectral-theory: error: ...`` on standard error (besides warnings and
  notes), nothing written;
* ``stability`` only: exit 1 (a model UNSTABLE in its final phase), its report on stdout.

No traceback, no exception out of ``main``, no example over :data:`TIME_LIMIT` seconds.

Examples: ``5 x`` the hypothesis profile's ``max_examples`` (500 in CI, derandomized by the
``ci`` profile of ``conftest.py``, about 25 s; 2000 with ``--hypothesis-profile long``), or
``FUZZ_EXAMPLES=N``.
"""

from __future__ import annotations

import copy
import json
import math
import os
import signal
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as hs

from spectral_theory.cli import main
from spectral_theory.errors import SpecError

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES") or 5 * settings.default.max_examples)
#: seconds one example may take (a run that is not refused must be quick at these sizes)
TIME_LIMIT = 30

# ---------------------------------------------------------------------------- valid-ish parts
small_float = hs.floats(min_value=0.01, max_value=3.0, allow_nan=False)
lr_float = hs.floats(min_value=1e-3, max_value=0.8, allow_nan=False)
dims = hs.integers(min_value=1, max_value=12)


@hs.composite
def problems(draw) -> dict[str, Any]:
    d = draw(dims)
    kind = draw(hs.sampled_from(["powerlaw", "powerlaw", "exponential", "array"]))
    if kind == "powerlaw":
        spectrum = {"kind": "powerlaw", "a": draw(small_float), "d": d}
    elif kind == "exponential":
        spectrum = {"kind": "exponential", "rate": draw(small_float), "d": d}
    else:
        vals = sorted(draw(hs.lists(hs.floats(min_value=0.0, max_value=1.0), min_size=d, max_size=d)),
                      reverse=True)
        spectrum = {"kind": "array", "values": vals}
    if draw(hs.booleans()):
        target = {"kind": "powerlaw", "b": draw(small_float)}
    else:
        target = {"kind": "array", "values": draw(hs.lists(hs.floats(0.0, 2.0), min_size=d, max_size=d))}
    p: dict[str, Any] = {"spectrum": spectrum, "target": target}
    if draw(hs.booleans()):
        p["noise"] = draw(hs.floats(0.0, 2.0))
    feat = draw(hs.sampled_from([None, "gaussian", "rademacher", "uniform", "kurtosis"]))
    if feat == "kurtosis":
        p["kurtosis"] = draw(hs.floats(1.0, 6.0))
    elif feat is not None:
        p["features"] = feat
    return p


@hs.composite
def schedules(draw, steps: int) -> dict[str, Any]:
    kind = draw(hs.sampled_from(["step_decay", "piecewise", "geometric", "polynomial", "warmup_decay", "array"]))
    lr = draw(lr_float)
    if kind == "step_decay":
        return {"kind": kind, "lr": lr, "factor": draw(hs.floats(0.1, 1.0)), "every": draw(hs.integers(1, 10))}
    if kind == "piecewise" and steps >= 2:
        a = draw(hs.integers(1, steps - 1))
        return {"kind": kind, "lrs": [lr, draw(lr_float)], "lengths": [a, steps - a]}
    if kind == "piecewise":
        return {"kind": kind, "lrs": [lr], "lengths": [steps]}
    if kind == "geometric":
        return {"kind": kind, "lr": lr, "factor": draw(hs.floats(0.5, 1.0))}
    if kind == "polynomial":
        return {"kind": kind, "lr": lr, "t0": draw(hs.floats(1.0, 50.0)), "power": draw(hs.floats(0.1, 2.0))}
    if kind == "warmup_decay":
        return {"kind": kind, "lr": lr, "warmup": draw(hs.integers(1, 10)), "t0": draw(hs.floats(1.0, 50.0)),
                "power": draw(hs.floats(0.1, 2.0))}
    return {"kind": "array", "values": draw(hs.lists(lr_float, min_size=steps, max_size=steps))}


@hs.composite
def averages(draw, steps: int) -> dict[str, Any]:
    """An ``average`` table (issue 13): every kind, valid values (mutations make them invalid)."""
    kind = draw(hs.sampled_from(["uniform", "tail", "tail", "ema", "ema", "weights"]))
    if kind == "uniform":
        return {"kind": kind, "start": draw(hs.integers(0, steps))}
    if kind == "tail":
        return ({"kind": kind, "fraction": draw(hs.floats(0.01, 1.0))} if draw(hs.booleans())
                else {"kind": kind, "last": draw(hs.integers(1, steps + 1))})
    if kind == "ema":
        return ({"kind": kind, "decay": draw(hs.floats(0.0, 0.99))} if draw(hs.booleans())
                else {"kind": kind, "half_life": draw(hs.floats(0.5, 50.0))})
    return {"kind": kind, "values": draw(hs.lists(hs.floats(0.0, 2.0), min_size=steps + 1, max_size=steps + 1))}


#: momentum coefficients from tame to past the float range (issue 13: 1e300 coefficients raised
#: numpy's LinAlgError in the stability test)
MOMENTUM_COEF = hs.one_of(hs.floats(-2.0, 2.0), hs.sampled_from([0.0, 1.0, 1e10, 1e300, 1e308, -1e300]))


@hs.composite
def momenta(draw, steps: int) -> dict[str, Any]:
    """A ``momentum`` table (issue 13): every kind, constant or per-step coefficients."""
    kind = draw(hs.sampled_from(["heavy_ball", "nesterov", "accelerated", "general"]))

    def coef(strategy):
        if steps and draw(hs.integers(0, 4)) == 0:
            return draw(hs.lists(strategy, min_size=steps, max_size=steps))
        return draw(strategy)

    if kind in ("heavy_ball", "nesterov"):
        return {"kind": kind, "beta": coef(hs.floats(0.0, 0.99))}
    if kind == "accelerated":
        return {"kind": kind, "alpha": coef(hs.floats(0.01, 1.0)), "beta": coef(hs.floats(0.0, 1.0)),
                "gamma": coef(hs.one_of(hs.floats(0.0, 5.0), hs.sampled_from([1e200, 1e308])))}
    return {"kind": kind, **{k: coef(MOMENTUM_COEF) for k in ("r", "p_e", "p_v", "k_v")}}


@hs.composite
def models(draw, d: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i in range(draw(hs.sampled_from([1, 2, 2, 3]))):
        steps = draw(hs.integers(0, 40))
        m: dict[str, Any] = {"name": draw(hs.sampled_from(["m", "teacher", "student", "big", "small", "g",
                                                          "caf\u00e9", "a b"])) + str(i), "steps": steps}
        if draw(hs.booleans()):
            m["lr"] = draw(lr_float)
        else:
            m["schedule"] = draw(schedules(steps))
        if draw(hs.booleans()):
            m["batch"] = draw(hs.integers(1, 4))
        if draw(hs.booleans()):
            m["capacity"] = draw(hs.integers(1, d))
        if draw(hs.integers(0, 3)) == 0:
            m["average"] = draw(averages(steps))
        if draw(hs.integers(0, 3)) == 0:
            m["momentum"] = draw(momenta(steps))
        if out and draw(hs.booleans()):
            m["teacher"] = draw(hs.sampled_from([o["name"] for o in out]))
            if draw(hs.booleans()):
                m["alpha"] = draw(hs.floats(0.0, 1.0))
        out.append(m)
    return out


@hs.composite
def scenarios(draw) -> dict[str, Any]:
    prob = draw(problems())
    d = prob["spectrum"].get("d", len(prob["spectrum"].get("values", [])) or 1)
    data: dict[str, Any] = {"problem": prob, "models": draw(models(d))}
    if draw(hs.booleans()):
        if draw(hs.booleans()):
            data["output"] = {"at": sorted(draw(hs.lists(hs.integers(0, 50), min_size=1, max_size=5)))}
        else:
            data["output"] = {"points": draw(hs.integers(2, 20))}
    if draw(hs.booleans()):
        names = [m["name"] for m in data["models"]]
        t: dict[str, Any] = {"kind": draw(hs.sampled_from(["kd", "kd", "w2s", "chain"]))}
        if len(names) >= 2:
            t.update(teacher=names[0], student=names[1])
        if draw(hs.booleans()):
            t["alpha"] = draw(hs.floats(0.0, 1.0))
        data["transfer"] = t
    return data


# ---------------------------------------------------------------------------- mutations
WEIRD = [None, True, False, 0, -1, -0.0, 1e308, -1e308, 1e-320, 10**30, 2**63, 10**400, math.nan, math.inf,
         -math.inf, "nan", "inf", "-inf", "", "x", "1.5", [], {}, [1, "a"], {"kind": "powerlaw"}, [[]],
         1e9, 2.5, "\u00e9\u00df", 123456789012]
HUGE_D = [10**9, 1e9, 10**12, 10**30, 2**63, 4e9]
HUGE_STEPS = [10**5, 10**6, 10**9, 10**12, 1e10, 2**62]


def _paths(obj: Any, prefix: tuple = ()) -> list[tuple]:
    """Paths to every value in a nested dict/list."""
    out = [prefix] if prefix else []
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _paths(v, (*prefix, i))
    return out


def _parent(obj: Any, path: tuple) -> Any:
    for k in path[:-1]:
        obj = obj[k]
    return obj


@hs.composite
def mutated(draw) -> dict[str, Any]:
    data = draw(scenarios())
    for _ in range(draw(hs.sampled_from([0, 0, 0, 0, 1, 1, 2, 3]))):
        paths = _paths(data)
        op = draw(hs.sampled_from(["weird", "weird", "unknown", "delete", "wrap", "empty", "huge_d",
                                   "huge_steps"]))
        if op == "huge_d":
            spec = data.get("problem", {}).get("spectrum") if isinstance(data.get("problem"), dict) else None
            if isinstance(spec, dict) and "d" in spec:
                spec["d"] = draw(hs.sampled_from(HUGE_D))
            continue
        if op == "huge_steps":
            ms = data.get("models")
            if isinstance(ms, list) and ms and isinstance(ms[0], dict):
                m = ms[draw(hs.integers(0, len(ms) - 1))]
                if isinstance(m, dict):
                    m["steps"] = draw(hs.sampled_from(HUGE_STEPS))
            continue
        if op == "unknown" or not paths:
            tables = [p for p in [(), *paths] if isinstance(_parent(data, (*p, None)) if p else data, dict)]
            where = draw(hs.sampled_from(tables))
            target = data
            for k in where:
                target = target[k]
            target[draw(hs.sampled_from(["alpah", "teachr", "kind2", "lr ", "D", "extra"]))] = copy.deepcopy(
                draw(hs.sampled_from(WEIRD)))
            continue
        path = draw(hs.sampled_from(paths))
        parent = _parent(data, path)
        key = path[-1]
        if op == "weird":
            parent[key] = copy.deepcopy(draw(hs.sampled_from(WEIRD)))  # WEIRD's lists are shared
        elif op == "delete":
            del parent[key]
        elif op == "wrap":
            parent[key] = draw(hs.sampled_from([[parent[key]], {"value": parent[key]}]))
        else:
            parent[key] = draw(hs.sampled_from([{}, []]))
    return data


# ---------------------------------------------------------------------------- writers
def _toml_key(k: Any) -> str:
    k = str(k)
    return k if k and all(c.isascii() and (c.isalnum() or c in "_-") for c in k) else json.dumps(k)


def _toml_value(v: Any) -> str | None:
    """Inline TOML (``None``: TOML has no null, the key is left out)."""
    if v is None:
        return None
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        items = [x for x in (_toml_value(x) for x in v) if x is not None]
        return "[" + ", ".join(items) + "]"
    if isinstance(v, dict):
        items = [f"{_toml_key(k)} = {x}" for k, x in ((k, _toml_value(x)) for k, x in v.items()) if x is not None]
        return "{ " + ", ".join(items) + " }" if items else "{}"
    return json.dumps(str(v))


def to_toml(data: dict[str, Any]) -> str:
    lines: list[str] = []
    tables: list[str] = []
    for k, v in data.items():
        if isinstance(v, dict):
            body = [f"{_toml_key(kk)} = {x}" for kk, x in ((kk, _toml_value(x)) for kk, x in v.items()) if x is not None]
            tables.append(f"[{_toml_key(k)}]\n" + "\n".join(body))
        elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            for item in v:
                body = [f"{_toml_key(kk)} = {x}" for kk, x in ((kk, _toml_value(x)) for kk, x in item.items())
                        if x is not None]
                tables.append(f"[[{_toml_key(k)}]]\n" + "\n".join(body))
        else:
            x = _toml_value(v)
            if x is not None:
                lines.append(f"{_toml_key(k)} = {x}")
    return "\n".join(lines + tables) + "\n"


def to_json(data: dict[str, Any]) -> str:
    def clean(v):  # beyond float range: as JSON writes it (a long integer), the reader decides
        if isinstance(v, dict):
            return {str(k): clean(x) for k, x in v.items()}
        if isinstance(v, list):
            return [clean(x) for x in v]
        return v

    return json.dumps(clean(data), allow_nan=True)  # NaN / Infinity tokens included


@hs.composite
def files(draw) -> tuple[str, bytes]:
    data = draw(mutated())
    suffix = draw(hs.sampled_from([".toml", ".json"]))
    text = to_toml(data) if suffix == ".toml" else to_json(data)
    enc = draw(hs.sampled_from(["utf-8"] * 20 + ["utf-16", "latin-1", "utf-8-sig", "garbage", "truncate"]))
    if enc == "garbage":
        i = draw(hs.integers(0, len(text)))
        raw = text.encode()[:i] + draw(hs.sampled_from([b"\xff\xfe", b"\x00", b"\xc3", b"\x80abc", b"]]"])) \
            + text.encode()[i:]
    elif enc == "truncate":
        raw = text.encode()[: draw(hs.integers(0, len(text)))]
    else:
        raw = text.encode(enc, errors="replace")
    return suffix, raw


COMMANDS = [["run"], ["kd"], ["simulate"], ["stability"], ["run", "--method", "continuum"], ["run", "--every-step"],
            ["run", "--modes"], ["kd", "--modes"], ["simulate", "--modes"], ["w2s"], ["chain"], ["compare"]]


# ---------------------------------------------------------------------------- checks
#: keys whose string values are names (of models, roles), not numbers written as strings
NAME_KEYS = {"name", "teacher", "student", "weak", "strong", "base", "child", "model", "kind", "method"}


def _finite_json(obj: Any, where: str = "") -> None:
    if isinstance(obj, dict):
        for k, v in obj.items():
            _finite_json(v, f"{where}.{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            _finite_json(v, f"{where}[{i}]")
    elif isinstance(obj, float):
        assert math.isfinite(obj), where
    elif isinstance(obj, str) and where.rsplit(".", 1)[-1] not in NAME_KEYS:  # a model may be named 'inf'
        assert obj not in ("inf", "-inf", "nan", "NaN"), f"{where} = {obj!r}"


class _Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise _Timeout(f"an example ran over {TIME_LIMIT} s")


def check_cli(suffix: str, raw: bytes, command: list[str], capsys) -> tuple[int, str]:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        scen = tmp / f"scenario{suffix}"
        scen.write_bytes(raw)
        outdir = tmp / "out"
        outdir.mkdir()
        out = outdir / "result.json"
        argv = [*command, str(scen), "--max-memory", "512MiB", "--max-seconds", "2"]
        if command[0] in ("simulate", "compare"):
            argv += ["--reps", "3", "--seed", "1", "--no-progress"]
        if command[0] != "stability":
            argv += ["--format", "json", "--out", str(out)]
        old = signal.signal(signal.SIGALRM, _alarm)
        signal.alarm(TIME_LIMIT)
        try:
            code = main(argv)
        finally:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, old)
        cap = capsys.readouterr()
        assert "Traceback" not in cap.err, cap.err
        assert "encountered in" not in cap.err, cap.err  # numpy's floating-point warnings, raw
        lines = [x for x in cap.err.splitlines()
                 if not x.startswith(("spectral-theory: warning: ", "spectral-theory: note: "))]
        written = sorted(p.name for p in outdir.iterdir())
        if code == 2:
            assert len(lines) == 1 and lines[0].startswith("spectral-theory: error: "), cap.err
            assert written == [] and cap.out == ""
        elif code == 1:
            assert command[0] == "stability" and "UNSTABLE" in cap.out, (code, cap.err)
        else:
            assert code == 0, (code, cap.err)
            assert lines == [], cap.err
            if command[0] == "stability":
                assert cap.out and written == []
            else:
                assert written == ["result.json"] and cap.out == ""
                _finite_json(json.loads(out.read_text(), parse_constant=lambda c: pytest.fail(c)))
        return code, lines[0] if lines else ""


@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(file=files(), command=hs.sampled_from(COMMANDS))
def test_fuzz_cli(file, command, capsys):
    suffix, raw = file
    code, line = check_cli(suffix, raw, command, capsys)
    event(f"{command[0]}: exit {code}" + (f" ({line.split(':')[2].strip()})" if code == 2 else ""))


@pytest.mark.parametrize("d", ["1e9", "1000000000000", "1" + "0" * 30])
@pytest.mark.parametrize("command", [["run"], ["simulate"], ["stability"], ["kd"], ["run", "--every-step"]])
def test_huge_d_is_refused_quickly(d, command, capsys):
    """The huge-d class of the fuzz, every time: refused before allocating (the run would need
    at least one d-sized array, 7.45 GiB at d = 1e9)."""
    import tracemalloc

    text = (f'[problem]\nspectrum = {{ kind = "powerlaw", a = 1.5, d = {d} }}\ntarget = {{ kind = "powerlaw", b = 2 }}\n'
            '[[models]]\nname = "t"\nsteps = 10\nlr = 0.1\n[[models]]\nname = "s"\nsteps = 10\nlr = 0.1\n'
            'teacher = "t"\n')
    tracemalloc.start()
    try:
        code, line = check_cli(".toml", text.encode(), command, capsys)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # beyond int64 the size check names the field; below it, the memory estimate refuses the run
    assert code == 2 and ("problem.spectrum.d" in line and "2^62" in line if int(float(d)) > 2**62
                          else "memory" in line), line
    assert peak < 50 * 2**20


# ---------------------------------------------------------------------------- classes the fuzz found
SMALL = ('[problem]\nspectrum = {{ kind = "array", values = {spectrum} }}\ntarget = {{ kind = "array", values = {target} }}\n'
         '[[models]]\nname = "t"\nsteps = 5\nlr = 0.5\n[[models]]\nname = "s"\nsteps = 5\nlr = 0.5\nteacher = "t"\n'
         '[transfer]\nteacher = "t"\nstudent = "s"\nbase = "t"\nchild = "s"\n')


@pytest.mark.parametrize("command", [["run"], ["run", "--modes"], ["kd", "--modes"], ["chain"], ["stability"]])
@pytest.mark.parametrize("spectrum, target", [
    ("[1.0, 5e-324, 0.0]", "[1.0, 0.5, 0.25]"),       # a subnormal eigenvalue (speed)
    ("[1.0, 1e-200, 0.0]", "[1.0, 0.5, 0.25]"),       # a speed whose square underflows
    ("[1.0, 0.5, 0.25]", "[1.0, 2.2e-311, 0.0]"),     # a subnormal target: normalised error overflows
    ("[1.0, 0.5, 0.25]", "[0.0, 0.0, 0.0]"),          # zero target, zero noise: every risk is 0
])
def test_tiny_and_zero_inputs(spectrum, target, command, capsys):
    """Subnormal or underflowing per-mode values and all-zero risks: finite results (ratios over
    a zero risk and normalised errors that overflow are null, 'undefined'), no raw numpy
    warning, no ZeroDivisionError."""
    code, _ = check_cli(".toml", SMALL.format(spectrum=spectrum, target=target).encode(), command, capsys)
    assert code == 0


def test_zero_risk_ratios_are_null(capsys, tmp_path):
    from spectral_theory.spec import read_scenario_file
    from spectral_theory.transfer import evaluate, transfer_from_dict

    p = tmp_path / "z.toml"
    p.write_text(SMALL.format(spectrum="[1.0, 0.5, 0.25]", target="[0.0, 0.0, 0.0]"))
    rep = evaluate(transfer_from_dict(read_scenario_file(p), kind="kd"))
    assert math.isnan(rep["kd_gain"]) and rep.to_dict()["metrics"]["kd_gain"] is None
    rep = evaluate(transfer_from_dict(read_scenario_file(p), kind="chain"))
    assert rep.to_dict()["metrics"]["final_over_first"] is None


@pytest.mark.parametrize("tiny", [1e-20, 1e-155, 1e-200, 1e-310, 5e-324])
@pytest.mark.parametrize("batch, kappa", [(1, 3.0), (1, 1.0), (2, 1.2)])
def test_map_radius_with_underflowing_speeds_is_the_dense_radius(tiny, batch, kappa):
    """A mode too slow for x^2 to register keeps its own eigenvalue (a_i = 1) and does not make
    the secular equation divide by zero; the bottom eigenvalue at round-off distance of a pole
    is that pole (it was the other end of the interval)."""
    import warnings

    import numpy as np

    from spectral_theory.stability import map_radius, stability_limit

    s = np.array([1.0, tiny, 0.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        limit = stability_limit(s, batch, kappa)
        for eta in (0.5 * limit, 1.5 * limit):
            x = eta * s
            dense = np.diag(1 - 2 * x + (batch + kappa - 2) / batch * x * x) + np.outer(x * x / batch, np.ones(3))
            assert map_radius(eta, s, batch, kappa) == pytest.approx(max(abs(np.linalg.eigvals(dense))), rel=1e-12)
        assert stability_limit(np.array([tiny, tiny / 2]), batch, kappa) > 1e19


BIG = "1" + "0" * 400  # an integer beyond the float range


@pytest.mark.parametrize("problem, model, fragment", [
    (f'spectrum = {{ kind = "powerlaw", a = {BIG}, d = 3 }}', "lr = 0.1", "spectrum.a"),
    ('spectrum = { kind = "powerlaw", a = 1e400, d = 3 }', "lr = 0.1", "spectrum.a"),
    ('spectrum = { kind = "powerlaw", a = 1.5, d = 3 }', f"schedule = {{ kind = 'array', values = [{BIG}] }}",
     "schedule.values"),
    ('spectrum = { kind = "array", values = [1, 0.5, 0.1] }', "lr = 0.1", "target.values"),
])
def test_numbers_beyond_the_float_range_are_errors(problem, model, fragment, capsys):
    target = f"[1, {BIG}, 0]" if fragment == "target.values" else "[1, 0.5, 0.25]"
    text = (f'[problem]\n{problem}\ntarget = {{ kind = "array", values = {target} }}\n'
            f'[[models]]\nname = "m"\nsteps = 1\n{model}\n')
    code, line = check_cli(".toml", text.encode(), ["run"], capsys)
    assert code == 2 and fragment in line, line
    from spectral_theory.transfer.specs import _check_alpha

    with pytest.raises(SpecError):
        _check_alpha(int(BIG))


def test_auto_counts_the_per_step_overhead():
    """A long run on few modes is not 'cheap' for the step-by-step solver: auto takes renewal."""
    import spectral_theory as st
    from spectral_theory.solvers import choose

    prob = st.Problem(st.PowerLawSpectrum(a=1.5, d=2), st.PowerLawTarget(b=2.0), noise=0.1)
    sc = st.Scenario(prob, (st.Model("m", steps=10**6, schedule=0.2),))
    assert choose(sc)[0].name == "renewal"
    small = st.Scenario(prob, (st.Model("m", steps=1000, schedule=0.2),))
    assert choose(small)[0].name == "exact"


def test_infinite_stability_limit_is_null(capsys, tmp_path):
    text = SMALL.format(spectrum="[0.0, 0.0, 0.0]", target="[1.0, 0.5, 0.25]").encode()
    code, _ = check_cli(".toml", text, ["run"], capsys)
    assert code == 0
    code, _ = check_cli(".toml", text, ["stability"], capsys)
    assert code == 0


@pytest.mark.parametrize("spectrum, target, code", [
    ('{ kind = "exponential", rate = 1e308, d = 3 }', '{ kind = "powerlaw", b = 1.0 }', 0),   # rate * i overflows
    ('{ kind = "powerlaw", a = 1.5, d = 3 }', '{ kind = "powerlaw", b = -1000.0 }', 2),    # theta_i^2 = inf
])
def test_extreme_spectrum_and_target_parameters(spectrum, target, code, capsys):
    text = f"[problem]\nspectrum = {spectrum}\ntarget = {target}\n[[models]]\nname = \"m\"\nsteps = 3\nlr = 0.5\n"
    got, line = check_cli(".toml", text.encode(), ["run"], capsys)
    assert got == code and (code == 0 or "target.b" in line), line


@pytest.mark.parametrize("schedule, code", [
    ('{ kind = "step_decay", lr = 0.5, factor = 10.0, every = 1 }', 2),   # grows past the float range
    ('{ kind = "geometric", lr = 0.5, factor = 10.0 }', 2),
    ('{ kind = "polynomial", lr = 0.5, t0 = 1.0, power = 123456789012 }', 0),  # decays to steps of 0
    ('{ kind = "warmup_decay", lr = 0.5, warmup = 2, t0 = 1.0, power = 1e12 }', 0),
    ('{ kind = "geometric", lr = 0.5, factor = 1e-300 }', 0),
])
@pytest.mark.parametrize("command", [["run"], ["stability"], ["simulate"]])
def test_schedules_past_the_float_range(schedule, code, command, capsys):
    text = ('[problem]\nspectrum = { kind = "powerlaw", a = 1.5, d = 3 }\ntarget = { kind = "powerlaw", b = 2 }\n'
            f'[[models]]\nname = "m"\nsteps = 400\nschedule = {schedule}\n')
    got, line = check_cli(".toml", text.encode(), command, capsys)
    assert got == code and (code == 0 or "models['m'].schedule" in line and "overflow" in line), line


@pytest.mark.parametrize("values, lr", [("[1e308]", "0.5"), ("[1.0, 0.5]", "1e300"), ("[1e200, 1.0]", "1e-100")])
@pytest.mark.parametrize("command", [["run"], ["stability"]])
def test_extreme_step_times_speed(values, lr, command, capsys):
    """eta * s near the float range's top: the growth factor is inf (never nan), no numpy warning."""
    text = (f'[problem]\nspectrum = {{ kind = "array", values = {values} }}\ntarget = {{ kind = "powerlaw", b = 2 }}\n'
            f'[[models]]\nname = "m"\nsteps = 3\nlr = {lr}\n')
    code, line = check_cli(".toml", text.encode(), command, capsys)
    assert code in (1, 2) and "nan" not in line


def test_an_error_leaves_out_numpy_floating_point_warnings(capsys, tmp_path):
    p = tmp_path / "u.toml"
    p.write_text('[problem]\nspectrum = { kind = "powerlaw", a = 1.5, d = 20 }\ntarget = { kind = "powerlaw", b = 2 }\n'
                 '[[models]]\nname = "m"\nsteps = 5000\nlr = 2.0\n')
    for method in ("exact", "ode"):
        code = main(["run", str(p), "--allow-unstable", "--method", method])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and "overflowed" in err and "encountered" not in err, err


@pytest.mark.parametrize("momentum", [
    '{ kind = "general", r = 1e300, p_e = 1.0, p_v = 1.0, k_v = 1e300 }',
    '{ kind = "accelerated", alpha = 1e-300, beta = 1.0, gamma = 1e308 }',
    '{ kind = "general", r = 1e200, p_e = 1e308, p_v = 1.0, k_v = 1.0 }',
])
@pytest.mark.parametrize("command", [["run"], ["stability"], ["kd"], ["run", "--allow-unstable"]])
def test_momentum_coefficients_past_the_float_range(momentum, command, capsys):
    """Momentum coefficients whose moments map overflows a float (issue 13 review): unstable, one
    clear line (no numpy LinAlgError traceback, no 'factor 10^inf')."""
    text = ('[problem]\nspectrum = { kind = "powerlaw", a = 1.5, d = 20 }\ntarget = { kind = "powerlaw", b = 2 }\n'
            f'noise = 0.1\n[[models]]\nname = "t"\nsteps = 50\nlr = 1e10\nmomentum = {momentum}\n'
            '[[models]]\nname = "s"\nsteps = 50\nlr = 0.1\nteacher = "t"\n')
    code, line = check_cli(".toml", text.encode(), command, capsys)
    if command[0] == "stability":
        assert code == 1  # check_cli: 'UNSTABLE' in the report
    else:
        assert code == 2 and "models['t" in line and "overflow" in line, line
        assert "10^inf" not in line and "nan" not in line, line


@pytest.mark.parametrize("line, field", [("steps = 1e+308", "steps"), ("steps = 4611686018427387905", "steps"),
                                         ("batch = 1e300", "batch")])
@pytest.mark.parametrize("command", [["run"], ["stability"], ["run", "--method", "ode"], ["kd"]])
def test_sizes_beyond_int64_are_errors(line, field, command, capsys):
    """Step counts and sizes the solvers cannot count with int64 numbers: one error naming the
    field (a step count of 1e308 overflowed auto's cost estimate and the ODE's step arrays)."""
    body = "steps = 3\nlr = 0.5\n" if field != "steps" else "lr = 0.5\n"
    text = ('[problem]\nspectrum = { kind = "powerlaw", a = 1.0, d = 2 }\ntarget = { kind = "powerlaw", b = 2 }\n'
            f'[[models]]\nname = "m"\n{line}\n{body}[[models]]\nname = "s"\nsteps = 3\nlr = 0.5\n')
    code, msg = check_cli(".toml", text.encode(), command, capsys)
    assert code == 2 and f".{field}" in msg and "4611686018427387904" in msg, msg


@pytest.mark.parametrize("make", [
    lambda st: st.Model("m", steps=10**19), lambda st: st.Model("m", steps=1e308),
    lambda st: st.Model("m", steps=3, batch=2**63), lambda st: st.PowerLawSpectrum(a=1.5, d=10**30),
    lambda st: st.Output(at=[0, 2**64]), lambda st: st.StepDecay(lr=0.1, factor=0.5, every=2**70),
])
def test_sizes_beyond_int64_are_refused_by_the_api(make):
    """The same bound where the specs are built, so a Python caller gets it too (steps = 10**19
    wrapped around to a negative int64 step index in the reported grid)."""
    import spectral_theory as st

    with pytest.raises(st.SpecError, match=r"<= 2\^62 = 4611686018427387904"):
        make(st)
