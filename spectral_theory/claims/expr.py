"""Safe expressions for claims: an AST allow-list, then sympy, never ``eval``.

A claim file's bounds (``rhs = "sigma2*eta*tr/(2*B)"``) are parsed by :func:`parse`:

1. ``ast.parse(text, mode="eval")`` (parsing executes nothing); a syntax error, a text
   longer than :data:`MAX_LENGTH`, or one nested too deeply is refused;
2. every node is checked against an allow-list: numbers, names, ``+ - * / ** %``-free
   arithmetic, unary minus, calls of the allowed functions (:data:`FUNCTIONS`) by name with
   positional arguments, and (in conditions only) comparisons joined by ``and``. Attribute
   access, subscripts, imports, lambdas, comprehensions, strings, keyword arguments, starred
   arguments, names starting with ``_`` (dunders) and names outside the allowed set are
   refused with a :class:`~spectral_theory.errors.SpecError` naming the field and the reason;
3. the sympy expression is built node by node from the checked tree (``sympy.sympify`` of a
   string, which calls ``eval``, is never used). Subexpressions made only of numbers are
   folded in floating point first, and a number outside ``[1e-300, 1e300]`` (or an exponent
   above :data:`MAX_EXPONENT` in modulus) is refused, so sympy is never asked to build a huge
   exact number (``9**9**9`` would hang it).

Evaluation walks the sympy tree with a backend: floats/numpy (:func:`evaluate`) or
python-flint ``arb`` intervals (``spectral_theory.claims.certify``); ``modesum(e)`` sums
``e`` over the modes, where ``lam`` (eigenvalue), ``s`` (the model's speed), ``theta2``
(target) and ``i`` (1-based index) are per-mode symbols.
"""

from __future__ import annotations

import ast
import math
import re
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import sympy

from ..errors import SpecError

__all__ = ["Expr", "parse", "parse_condition", "from_sympy", "evaluate", "FUNCTIONS", "MODE_SYMBOLS", "MAX_LENGTH",
           "MAX_NODES", "MAX_EXPONENT"]

MAX_LENGTH = 2000
MAX_NODES = 400
MAX_DEPTH = 40
MAX_EXPONENT = 1000.0
_BIG = 1e300
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
#: per-mode symbols, allowed only inside ``modesum(...)``
MODE_SYMBOLS = ("lam", "s", "theta2", "i")

_ModeSum = sympy.Function("modesum")
#: per-mode quantities taking an integer literal mode index (1-based), e.g. ``M(1)``
INDEXED = {"M": "second moment E[e_i^2] of the claim's model at the end of its training",
           "normalised": "E[e_i^2] / theta_i^2 of the claim's model at the end",
           "mu": "first-moment multiplier mu_i (E[e_i] = mu_i theta_i) at the end"}
_INDEXED_F = {k: sympy.Function(k) for k in INDEXED}

#: allowed functions: name -> (sympy constructor, number of arguments: int or (min, max))
FUNCTIONS: dict[str, tuple[Callable[..., Any], Any]] = {
    "sqrt": (sympy.sqrt, 1), "exp": (sympy.exp, 1), "log": (sympy.log, 1), "abs": (sympy.Abs, 1),
    "sin": (sympy.sin, 1), "cos": (sympy.cos, 1), "tanh": (sympy.tanh, 1),
    "gamma": (sympy.gamma, 1), "zeta": (sympy.zeta, 1), "floor": (sympy.floor, 1),
    "ceil": (sympy.ceiling, 1), "sign": (sympy.sign, 1),
    "min": (sympy.Min, (2, 16)), "max": (sympy.Max, (2, 16)),
    "modesum": (_ModeSum, 1),
    **{k: (f, 1) for k, f in _INDEXED_F.items()},
}
_MATH_FUNCS: dict[str, Callable[..., float]] = {
    "sqrt": math.sqrt, "exp": math.exp, "log": math.log, "abs": abs, "sin": math.sin, "cos": math.cos,
    "tanh": math.tanh, "gamma": math.gamma, "floor": math.floor, "ceil": math.ceil,
    "sign": lambda v: float((v > 0) - (v < 0)), "min": min, "max": max,
}
_BINOPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "**"}
_CMP = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">="}


@dataclass(frozen=True)
class Expr:
    """A checked expression: its ``text``, the sympy ``expr`` and the names it uses."""

    text: str
    expr: Any
    names: frozenset[str]

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class Condition:
    """A checked condition: comparisons ``lhs op rhs`` joined by ``and``."""

    text: str
    parts: tuple[tuple[Expr, str, Expr], ...]

    @property
    def names(self) -> frozenset[str]:
        out: frozenset[str] = frozenset()
        for lhs, _, rhs in self.parts:
            out |= lhs.names | rhs.names
        return out

    def __str__(self) -> str:
        return self.text


class _Refused(Exception):
    pass


def _fail(field: str, text: str, why: str) -> SpecError:
    return SpecError(field, text, f"unsafe or invalid expression: {why}")


def _tree(field: str, text: Any) -> ast.AST:
    if isinstance(text, bool) or not isinstance(text, (str, int, float)):
        raise SpecError(field, text, "must be an expression (a string) or a number")
    if isinstance(text, (int, float)):
        text = repr(text)
    if len(text) > MAX_LENGTH:
        raise _fail(field, text, f"longer than {MAX_LENGTH} characters")
    if "\x00" in text:
        raise _fail(field, text, "contains a NUL character")
    try:
        with warnings.catch_warnings():  # e.g. "invalid decimal literal": the error says it
            warnings.simplefilter("ignore")
            return ast.parse(text.strip(), mode="eval")
    except SyntaxError as err:
        raise _fail(field, text, f"not a Python-syntax arithmetic expression ({err.msg})") from None
    except (RecursionError, MemoryError, ValueError):
        raise _fail(field, text, "nested too deeply") from None


class _Builder:
    """Checks one tree against the allow-list and builds the sympy expression."""

    def __init__(self, field: str, text: str, names: Iterable[str] | None):
        self.field, self.text = field, text
        self.allowed = None if names is None else set(names)
        self.used: set[str] = set()
        self.count = 0
        self.in_modesum = False

    def refuse(self, why: str) -> _Refused:
        return _Refused(why)

    def build(self, node: ast.AST, depth: int = 0) -> tuple[Any, float | None]:
        """(sympy expression, its float value when it is made of numbers only, else None)."""
        self.count += 1
        if self.count > MAX_NODES:
            raise self.refuse(f"more than {MAX_NODES} nodes")
        if depth > MAX_DEPTH:
            raise self.refuse(f"nested deeper than {MAX_DEPTH}")
        if isinstance(node, ast.Constant):
            v = node.value
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise self.refuse(f"only numbers are allowed as constants, not {type(v).__name__} {v!r}")
            if not math.isfinite(float(v)) or abs(v) > _BIG:
                raise self.refuse(f"number {v!r} is too large (at most {_BIG:g})")
            if isinstance(v, float) and (v == 0.0 or abs(v) < 1.0 / _BIG):
                seg = ast.get_source_segment(self.text.strip(), node) or ""
                if any(ch in "123456789" for ch in seg.lower().split("e")[0]):  # 1e-400 read as 0
                    raise self.refuse(f"number {seg} is too small (at least {1.0 / _BIG:g} in modulus, or 0)")
            return (sympy.Integer(v) if isinstance(v, int) else sympy.Float(repr(v))), float(v)
        if isinstance(node, ast.Name):
            return self.name(node.id), None
        if isinstance(node, ast.UnaryOp):
            if isinstance(node.op, ast.USub):
                e, v = self.build(node.operand, depth + 1)
                return -e, (None if v is None else -v)
            if isinstance(node.op, ast.UAdd):
                return self.build(node.operand, depth + 1)
            raise self.refuse(f"the operator {type(node.op).__name__} is not allowed")
        if isinstance(node, ast.BinOp):
            op = _BINOPS.get(type(node.op))
            if op is None:
                raise self.refuse(f"the operator {type(node.op).__name__} is not allowed "
                                  "(allowed: + - * / **)")
            (x, xv), (y, yv) = self.build(node.left, depth + 1), self.build(node.right, depth + 1)
            if op == "**" and yv is not None and abs(yv) > MAX_EXPONENT:
                raise self.refuse(f"exponent {yv:g} is too large (at most {MAX_EXPONENT:g} in modulus)")
            if xv is not None and yv is not None:
                return self.fold(op, x, xv, y, yv)
            return _apply(op, x, y), None
        if isinstance(node, ast.Call):
            return self.call(node, depth)
        if isinstance(node, ast.Attribute):
            raise self.refuse(f"attribute access ('.{node.attr}') is not allowed")
        if isinstance(node, (ast.Lambda,)):
            raise self.refuse("lambda is not allowed")
        if isinstance(node, (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
            raise self.refuse("comprehensions are not allowed")
        if isinstance(node, ast.Subscript):
            raise self.refuse("subscripts ([...]) are not allowed")
        if isinstance(node, (ast.Compare, ast.BoolOp)):
            raise self.refuse("comparisons belong in a condition ('where'), not in a value")
        raise self.refuse(f"{type(node).__name__} is not allowed")

    def fold(self, op: str, x: Any, xv: float, y: Any, yv: float) -> tuple[Any, float]:
        try:
            v = {"+": lambda: xv + yv, "-": lambda: xv - yv, "*": lambda: xv * yv,
                 "/": lambda: xv / yv, "**": lambda: float(xv) ** float(yv)}[op]()
        except ZeroDivisionError:
            raise self.refuse("division by zero") from None
        except OverflowError:
            raise self.refuse("a number is too large") from None
        if isinstance(v, complex):
            raise self.refuse("a power of a negative number with a fractional exponent")
        underflow = v == 0 and xv != 0 and (op in ("/", "**") or (op == "*" and yv != 0))
        if not math.isfinite(v) or abs(v) > _BIG or (v != 0 and abs(v) < 1.0 / _BIG) or underflow:
            raise self.refuse(f"a number is out of range ({v:g}; allowed 1e-300..1e300 in modulus)")
        if op == "**" and not (y.is_Integer and abs(int(y)) <= 64):
            return sympy.Float(v), v  # never an exact root or a large exact power of numbers
        return _apply(op, x, y), v

    def name(self, name: str) -> Any:
        if name.startswith("_") or not _NAME.match(name):
            raise self.refuse(f"the name {name!r} is not allowed (names start with a letter; no dunders)")
        if name in FUNCTIONS:
            raise self.refuse(f"{name!r} is a function: call it, e.g. {name}(x)")
        if name in MODE_SYMBOLS:
            if not self.in_modesum:
                raise self.refuse(f"the per-mode symbol {name!r} is only allowed inside modesum(...)")
        elif self.allowed is not None and name not in self.allowed:
            raise self.refuse(f"unknown name {name!r}; allowed names: {sorted(self.allowed)}")
        self.used.add(name)
        return sympy.Symbol(name)

    def call(self, node: ast.Call, depth: int) -> tuple[Any, float | None]:
        if not isinstance(node.func, ast.Name):
            if isinstance(node.func, ast.Attribute):
                raise self.refuse(f"attribute access ('.{node.func.attr}') is not allowed")
            raise self.refuse("only allowed functions may be called, by name")
        fname = node.func.id
        if fname.startswith("_"):
            raise self.refuse(f"the name {fname!r} is not allowed (names start with a letter; no dunders)")
        if fname not in FUNCTIONS:
            raise self.refuse(f"calling {fname!r} is not allowed; allowed functions: {sorted(FUNCTIONS)}")
        if node.keywords:
            raise self.refuse("keyword arguments are not allowed")
        if any(isinstance(a, ast.Starred) for a in node.args):
            raise self.refuse("starred arguments are not allowed")
        ctor, nargs = FUNCTIONS[fname]
        lo, hi = (nargs, nargs) if isinstance(nargs, int) else nargs
        if not lo <= len(node.args) <= hi:
            raise self.refuse(f"{fname}() takes {lo if lo == hi else f'{lo} to {hi}'} argument(s), "
                              f"got {len(node.args)}")
        if fname in INDEXED:
            arg = node.args[0]
            if not (isinstance(arg, ast.Constant) and type(arg.value) is int and 1 <= arg.value <= 2**62):
                raise self.refuse(f"{fname}() takes a mode index: an integer literal >= 1")
            self.used.add(f"{fname}({arg.value})")
            return ctor(sympy.Integer(arg.value)), None
        if fname == "modesum":
            if self.in_modesum:
                raise self.refuse("modesum() cannot be nested")
            self.in_modesum = True
            try:
                inner, _ = self.build(node.args[0], depth + 1)
            finally:
                self.in_modesum = False
            self.used.add("modesum")
            return ctor(inner), None
        built = [self.build(a, depth + 1) for a in node.args]
        args = [b[0] for b in built]
        vals = [b[1] for b in built]
        if all(v is not None for v in vals) and fname in _MATH_FUNCS:
            try:
                v = float(_MATH_FUNCS[fname](*vals))
            except (ValueError, OverflowError, ZeroDivisionError):
                raise self.refuse(f"{fname}{tuple(vals)} is undefined or too large") from None
            if not math.isfinite(v) or abs(v) > _BIG:
                raise self.refuse(f"{fname}{tuple(vals)} is too large")
            return sympy.Float(v), v
        if all(v is not None for v in vals):  # zeta of numbers: evaluate numerically, bounded
            if fname == "zeta" and not vals[0] > 1.0:
                raise self.refuse(f"zeta({vals[0]:g}) is outside the allowed range (argument > 1)")
            return ctor(*args), None
        return ctor(*args), None


def _apply(op: str, x: Any, y: Any) -> Any:
    if op == "+":
        return x + y
    if op == "-":
        return x - y
    if op == "*":
        return x * y
    if op == "/":
        return x / y
    return sympy.Pow(x, y)


def _run(field: str, text: str, node: ast.AST, names: Iterable[str] | None) -> Expr:
    b = _Builder(field, text, names)
    try:
        expr, _ = b.build(node)
    except _Refused as why:
        raise _fail(field, text, str(why)) from None
    except RecursionError:
        raise _fail(field, text, "nested too deeply") from None
    for num in expr.atoms(sympy.Number):  # products sympy folded around a name (eta*1e-200*1e-200)
        if num != 0 and not (1.0 / _BIG <= abs(float(num)) <= _BIG):
            raise _fail(field, text, f"a number is out of range ({float(num):g} as a double; allowed "
                                     "1e-300..1e300 in modulus)")
    return Expr(text=text, expr=expr, names=frozenset(b.used))


def parse(text: Any, *, field: str = "expression", names: Iterable[str] | None = None) -> Expr:
    """A checked expression (module docstring); ``names``: the allowed free names (``None``:
    any name that passes the name rules). Numbers are accepted as they are."""
    tree = _tree(field, text)
    text = text if isinstance(text, str) else repr(text)
    return _run(field, text, tree.body, names)  # type: ignore[attr-defined]


_SYMPY_FUNCS = {"Abs": "abs", "ceiling": "ceil", "Min": "min", "Max": "max", "sqrt": "sqrt", "exp": "exp",
                "log": "log", "sin": "sin", "cos": "cos", "tanh": "tanh", "gamma": "gamma", "zeta": "zeta",
                "floor": "floor", "sign": "sign", "modesum": "modesum", **{k: k for k in INDEXED}}


def from_sympy(expr: Any, *, field: str = "expression", names: Iterable[str] | None = None) -> Expr:
    """A sympy expression given in Python (trusted: not parsed from text), checked: its free
    symbols must be allowed names (per-mode symbols only inside ``modesum``) and its functions
    among those the evaluators support."""
    allowed = None if names is None else set(names)
    used: set[str] = set()

    def walk(e: Any, in_sum: bool) -> None:
        if e.is_Symbol:
            if e.name in MODE_SYMBOLS and not in_sum:
                raise SpecError(field, str(expr), f"the per-mode symbol {e.name!r} is only allowed inside modesum(...)")
            if e.name not in MODE_SYMBOLS and allowed is not None and e.name not in allowed:
                raise SpecError(field, str(expr), f"unknown name {e.name!r}; allowed names: {sorted(allowed)}")
            used.add(e.name)
            return
        if e.is_Number or e.is_NumberSymbol:
            return
        if not (e.is_Add or e.is_Mul or e.is_Pow):
            name = type(e).__name__
            if name not in _SYMPY_FUNCS:
                raise SpecError(field, str(expr), f"the sympy function {name} cannot be evaluated; allowed: "
                                                  f"{sorted(_SYMPY_FUNCS)}")
            if name in INDEXED:
                used.add(f"{name}({int(e.args[0])})")
                return
            if name == "modesum":
                used.add("modesum")
                for a in e.args:
                    walk(a, True)
                return
        for a in e.args:
            walk(a, in_sum)

    walk(expr, False)
    return Expr(text=str(expr), expr=expr, names=frozenset(used))


def parse_condition(text: Any, *, field: str = "where", names: Iterable[str] | None = None) -> Condition:
    """A checked condition: one or more comparisons (``<``, ``<=``, ``>``, ``>=``, chained
    ``a < b <= c`` included) joined by ``and``."""
    if not isinstance(text, str):
        raise SpecError(field, text, "must be a condition (a string such as 'eta*lam1 < 1')")
    tree = _tree(field, text).body  # type: ignore[attr-defined]
    nodes = tree.values if isinstance(tree, ast.BoolOp) and isinstance(tree.op, ast.And) else [tree]
    parts = []
    for node in nodes:
        if isinstance(node, ast.BoolOp):
            raise _fail(field, text, "only 'and' may join comparisons")
        if not isinstance(node, ast.Compare):
            raise _fail(field, text, "a condition is comparisons joined by 'and' (e.g. 'eta*lam1 < 1')")
        left = node.left
        for op, right in zip(node.ops, node.comparators, strict=True):
            sym = _CMP.get(type(op))
            if sym is None:
                raise _fail(field, text, f"the comparison {type(op).__name__} is not allowed (< <= > >=)")
            parts.append((_run(field, text, left, names), sym, _run(field, text, right, names)))
            left = right
    return Condition(text=text, parts=tuple(parts))


# ---------------------------------------------------------------------------- evaluation
def evaluate(expr: Any, env: Callable[[str], Any], ops: Any = None) -> Any:
    """Value of a sympy expression built by :func:`parse`: ``env(name)`` gives each free
    name's value (``"M(3)"`` for indexed quantities; ``"modesum"`` is evaluated through
    ``ops.modesum(inner, evaluate_inner)``), ``ops`` the arithmetic backend (default floats)."""
    ops = ops or FLOAT_OPS
    return _eval(expr.expr if isinstance(expr, Expr) else expr, env, ops)


def _eval(e: Any, env: Callable[[str], Any], ops: Any) -> Any:
    if e.is_Symbol:
        return env(e.name)
    if e.is_Integer:
        return ops.integer(int(e))
    if e.is_Rational:
        return ops.rational(int(e.p), int(e.q))
    if e.is_Float:
        return ops.number(e)
    if e.is_NumberSymbol and hasattr(ops, "number_symbol"):  # pi, E as balls in certificates
        return ops.number_symbol(str(e))
    if e.is_Number or e.is_NumberSymbol:  # pi, E: from sympy expressions given in Python
        return ops.number(sympy.Float(e, 30))
    if e.is_Add:
        out = _eval(e.args[0], env, ops)
        for a in e.args[1:]:
            out = out + _eval(a, env, ops)
        return out
    if e.is_Mul:
        out = _eval(e.args[0], env, ops)
        for a in e.args[1:]:
            out = out * _eval(a, env, ops)
        return out
    if e.is_Pow:
        base, ex = e.args
        if ex.is_Integer:
            return ops.ipow(_eval(base, env, ops), int(ex))
        if ex == sympy.Rational(1, 2):
            return ops.call("sqrt", _eval(base, env, ops))
        return ops.pow(_eval(base, env, ops), _eval(ex, env, ops))
    name = type(e).__name__
    if name == "modesum":
        return ops.modesum(lambda mode_env: _eval(e.args[0], mode_env, ops), env)
    if name in INDEXED:
        return env(f"{name}({int(e.args[0])})")
    names = {"Abs": "abs", "ceiling": "ceil", "Min": "min", "Max": "max"}
    fname = names.get(name, name)
    if fname not in FUNCTIONS:
        raise TypeError(f"cannot evaluate {e}")
    return ops.call(fname, *[_eval(a, env, ops) for a in e.args])


class _FloatOps:
    """Float/numpy backend of :func:`evaluate`."""

    @staticmethod
    def integer(v: int) -> float:
        return float(v)

    @staticmethod
    def rational(p: int, q: int) -> float:
        return p / q

    @staticmethod
    def number(v: Any) -> float:
        return float(v)

    @staticmethod
    def ipow(x: Any, n: int) -> Any:
        import numpy as np

        with np.errstate(all="ignore"):
            return np.power(np.asarray(x, dtype=float), float(n)) if n < 0 else x**n

    @staticmethod
    def pow(x: Any, y: Any) -> Any:
        import numpy as np

        with np.errstate(all="ignore"):
            return np.power(np.asarray(x, dtype=float), y)

    @staticmethod
    def call(name: str, *args: Any) -> Any:
        import numpy as np
        from scipy import special

        f = {"sqrt": np.sqrt, "exp": np.exp, "log": np.log, "abs": np.abs, "sin": np.sin, "cos": np.cos,
             "tanh": np.tanh, "gamma": special.gamma, "zeta": special.zeta, "floor": np.floor,
             "ceil": np.ceil, "sign": np.sign}.get(name)
        with np.errstate(all="ignore"):
            if name == "min":
                return np.minimum.reduce(np.broadcast_arrays(*args))
            if name == "max":
                return np.maximum.reduce(np.broadcast_arrays(*args))
            return f(*args)

    @staticmethod
    def modesum(inner: Callable[[Callable[[str], Any]], Any], env: Callable[[str], Any]) -> float:
        import numpy as np

        arrays = {k: np.asarray(env(f"mode:{k}"), dtype=float) for k in MODE_SYMBOLS}

        def mode_env(name: str) -> Any:
            return arrays[name] if name in arrays else env(name)

        with np.errstate(all="ignore"):
            vals = np.broadcast_to(np.asarray(inner(mode_env), dtype=float), arrays["lam"].shape)
        return float(np.sum(vals))


FLOAT_OPS = _FloatOps()
