"""The safe expression parser of claim files (spectral_theory/claims/expr.py): an AST
allow-list, then sympy built node by node; unsafe input refused with a SpecError naming the
field, never executed, never a traceback. A hand list of unsafe expressions and a hypothesis
fuzz (random text and random token soups built from dangerous pieces)."""

from __future__ import annotations

import math
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs

from spectral_theory.claims.expr import MAX_LENGTH, evaluate, parse, parse_condition
from spectral_theory.errors import SpecError

ROOT = Path(__file__).resolve().parents[1]
CLI = "import sys; from spectral_theory.cli import main; sys.exit(main())"
NAMES = {"x", "y", "eta", "sigma2", "tr", "B", "a", "b", "excess_risk"}

UNSAFE = {
    "__import__('os').system('ls')": "attribute access",
    "__import__('os')": "dunders",
    "os.system('ls')": "attribute access",
    "().__class__.__bases__[0].__subclasses__()": "attribute access",
    "x.__class__": "attribute access",
    "import os": "not a Python-syntax",
    "from os import system": "not a Python-syntax",
    "lambda: 1": "lambda",
    "(lambda q: q)(1)": "only allowed functions",
    "[q for q in range(10)]": "comprehensions",
    "(q for q in x)": "comprehensions",
    "{q: 1 for q in x}": "comprehensions",
    "eval('1')": "calling 'eval' is not allowed",
    "exec('1')": "calling 'exec' is not allowed",
    "open('/etc/passwd')": "calling 'open' is not allowed",
    "getattr(x, 'y')": "calling 'getattr' is not allowed",
    "globals()": "calling 'globals' is not allowed",
    "breakpoint()": "calling 'breakpoint' is not allowed",
    "compile('1', '', 'eval')": "calling 'compile' is not allowed",
    "factorial(100000)": "calling 'factorial' is not allowed",
    "__builtins__": "dunders",
    "_private": "dunders",
    "9**9**9**9": "too large",
    "2**100000": "too large",
    "10**400": "too large",
    "1e400": "too large",
    "(10**300)**(10**300)": "too large",
    "x**1000000": "exponent",
    "x**(10**10)": "exponent",
    "gamma(1e10)": "too large",
    "exp(1000)": "too large",
    "'abc'": "only numbers",
    "b'x'": "only numbers",
    "f'{x}'": "JoinedStr",
    "x if y else 1": "IfExp",
    "x[0]": "subscripts",
    "{1: 2}": "Dict",
    "{1}": "Set",
    "[1]": "List",
    "(1, 2)": "Tuple",
    "(q := 1)": "NamedExpr",
    "*x": "not a Python-syntax",
    "sqrt(x=1)": "keyword arguments",
    "sqrt(*x)": "starred",
    "M(x)": "mode index",
    "M(1.5)": "mode index",
    "modesum(modesum(lam))": "cannot be nested",
    "lam": "only allowed inside modesum",
    "x and y": "comparisons belong",
    "x < 1": "comparisons belong",
    "~x": "Invert",
    "not x": "Not",
    "x @ y": "MatMult",
    "x // y": "FloorDiv",
    "x % y": "Mod",
    "x << 1": "LShift",
    "x | y": "BitOr",
    "True": "only numbers",
    "None": "only numbers",
    "...": "only numbers",
    "1/0": "division by zero",
    "(-8)**(1/3)": "negative number",
    "unknown_name": "unknown name",
    "sqrt": "is a function",
    "sqrt(1, 2)": "takes 1 argument",
    "x\x00": "NUL",
    "(" * 300 + "x" + ")" * 300: "nested",
    "x" + "+x" * 1200: "longer than",
    "-" * 500 + "x": "nested",
}


@pytest.mark.parametrize("text", list(UNSAFE), ids=[repr(k)[:40] for k in UNSAFE])
def test_unsafe_expressions_are_refused_with_a_clear_error(text):
    with pytest.raises(SpecError) as err:
        parse(text, field="claims[0].rhs", names=NAMES)
    msg = str(err.value)
    assert msg.startswith("claims[0].rhs: got ")
    assert UNSAFE[text] in msg, msg


def test_conditions_refuse_what_values_refuse_and_or():
    with pytest.raises(SpecError, match="attribute access"):
        parse_condition("x.real < 1", names=NAMES)
    with pytest.raises(SpecError, match="only 'and'"):
        parse_condition("x < 1 or y < 1", names=NAMES)
    with pytest.raises(SpecError, match="comparisons joined"):
        parse_condition("x + 1", names=NAMES)
    with pytest.raises(SpecError, match="not allowed"):
        parse_condition("x == 1", names=NAMES)
    c = parse_condition("0 < x <= 1 and y >= 2", names=NAMES)
    assert [p[1] for p in c.parts] == ["<", "<=", ">="]


def test_allowed_expressions_evaluate_correctly():
    env = {"eta": 0.3, "sigma2": 0.1, "tr": 2.5, "B": 4.0, "a": 1.5, "b": 2.0, "x": 2.0, "y": -1.0}
    lam = np.arange(1, 11, dtype=float) ** -1.5
    th = np.arange(1, 11, dtype=float) ** -2.0

    def get(name):
        if name.startswith("mode:"):
            return {"lam": lam, "theta2": th, "s": lam, "i": np.arange(1, 11.0)}[name[5:]]
        return env[name]

    cases = {
        "sigma2*eta*tr/(2*B)": 0.1 * 0.3 * 2.5 / 8,
        "-min((b - 1)/a, 2 - 1/a)": -min(1 / 1.5, 2 - 1 / 1.5),
        "max(x, y, 3)": 3.0,
        "sqrt(x) + exp(y) - log(x) + abs(y)": math.sqrt(2) + math.exp(-1) - math.log(2) + 1,
        "x**-2 + x**0.5 + 2**x": 0.25 + math.sqrt(2) + 4.0,
        "modesum(eta*lam/(2*(1 - eta*lam)))": float(np.sum(0.3 * lam / (2 * (1 - 0.3 * lam)))),
        "modesum(theta2*i)": float(np.sum(th * np.arange(1, 11))),
        "gamma(x + 1) * zeta(x)": 2.0 * math.pi**2 / 6,
        "10**300 / 10**299": 10.0,
        "1e-300 * 1e300": 1.0,
    }
    for text, want in cases.items():
        e = parse(text, names=set(env))
        assert float(evaluate(e, get)) == pytest.approx(want, rel=1e-12), text


# ---------------------------------------------------------------------------- fuzz
PIECES = ["__import__", "__class__", "os", "system", ".", "(", ")", "[", "]", "{", "}", ",", ":", "lambda",
          "for", "in", "if", "else", "import", "x", "y", "eta", "sqrt", "exp", "min", "modesum", "lam", "M",
          "**", "*", "+", "-", "/", "//", "%", "@", "<", "<=", "and", "or", "not", "9", "99", "1e308",
          "0.5", "'s'", '"', "\\", "\n", "#", ";", "=", ":=", "yield", "await", "eval", "open", "getattr",
          "_", "__", "...", "True", "None", "@x", "f'", "b'", "*", "1", "0", " "]


def _check_one(text: str) -> None:
    start = time.perf_counter()
    try:
        e = parse(text, field="f", names=NAMES)
    except SpecError as err:
        assert str(err).startswith("f: got ")
    else:
        assert e.names <= NAMES | {"modesum"} | {n for n in e.names if n.startswith("M(")}
    assert time.perf_counter() - start < 2.0


@settings(max_examples=200, deadline=None)
@given(hs.text(max_size=120))
def test_fuzz_random_text_is_parsed_or_refused(text):
    _check_one(text)


@settings(max_examples=200, deadline=None)
@given(hs.lists(hs.sampled_from(PIECES), min_size=1, max_size=30))
def test_fuzz_token_soups_are_parsed_or_refused(tokens):
    _check_one("".join(tokens))
    _check_one(" ".join(tokens))


@settings(max_examples=120, deadline=None)
@given(hs.recursive(hs.sampled_from(["x", "y", "9", "99", "0.5", "1e300", "eta"]),
                    lambda kids: hs.one_of(
                        hs.tuples(kids, hs.sampled_from(["**", "*", "+", "-", "/"]), kids).map(
                            lambda t: f"({t[0]}{t[1]}{t[2]})"),
                        hs.tuples(hs.sampled_from(["sqrt", "exp", "gamma", "log", "abs"]), kids).map(
                            lambda t: f"{t[0]}({t[1]})")),
                    max_leaves=12))
def test_fuzz_nested_arithmetic_never_hangs_sympy(text):
    _check_one(text)


def test_length_limit_is_stated():
    with pytest.raises(SpecError, match=f"longer than {MAX_LENGTH}"):
        parse("1" + "+1" * MAX_LENGTH)


def test_unsafe_expression_in_a_claim_file_is_one_error_line(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('[scenario]\nproblem = { spectrum = { kind = "powerlaw", a = 1.5, d = 10 }, '
                 'target = { kind = "powerlaw", b = 2.0 } }\nmodels = [{ name = "m", steps = 10, lr = 0.1 }]\n'
                 '[[claims]]\nname = "bad"\nkind = "inequality"\nmodel = "m"\nlhs = "excess_risk"\n'
                 'rhs = "__import__(\'os\').system(\'touch pwned\')"\n')
    proc = subprocess.run([sys.executable, "-c", CLI, "check", str(f)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("spectral-theory: error: claims[0].rhs: got ")
    assert "Traceback" not in proc.stderr and "attribute access" in lines[0]
    assert not (ROOT / "pwned").exists() and not (tmp_path / "pwned").exists()
