"""The numpy module generated from the derived recursions: arrangement of each expression,
common-subexpression elimination and a small deterministic emitter (ruff-compatible spacing)."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import sympy as sp

from .common import (
    CONTRACT,
    SCALAR_ARGS,
    DerivationError,
    M,
    M_gg,
    M_gh,
    U,
    inv_B,
    mu,
    mu_g,
    require,
    x,
)
from .recursions import derive_hard_recursion, derive_student_recursion

# ---------------------------------------------------------------------------
# Numeric arrangement and code generation
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CodegenFunction:
    """One generated function: contract expression, arrangement, and emitted body."""

    name: str
    args: tuple[sp.Symbol, ...]
    expr: sp.Expr  # the derived recursion in contract symbols (expanded)
    temporaries: tuple[tuple[sp.Symbol, sp.Expr], ...]  # named groupings, in order
    result: sp.Expr  # arranged result in terms of args and temporaries
    formula: tuple[str, ...]  # readable formula for the docstring, as signed terms
    summary: str
    target: str  # name of the returned quantity


def _arrange_linear(expr: sp.Expr, lead: sp.Symbol) -> sp.Expr:
    """``a0 + a1 x`` -> ``a0 (1 - x) + x (a0 + a1)`` (convex-combination form)."""
    a1, a0 = sp.Poly(expr, x).all_coeffs()
    require(sp.expand(a0 - lead) == 0, f"a mode that does not move must keep {lead}")
    return a0 * (1 - x) + x * sp.expand(a0 + a1)


def _arrange_quadratic(
    expr: sp.Expr, lead: sp.Symbol, bracket_name: str
) -> tuple[tuple[tuple[sp.Symbol, sp.Expr], ...], sp.Expr]:
    """``a0 + a1 x + a2 x^2`` -> ``a0 (1-x)^2 + x (b1 + x (b20 + inv_B * bracket))``.

    ``b1 = a1 + 2 a0`` and ``b2 = a2 - a0 = b20 + inv_B * bracket``; the bracket
    (the batch-fluctuation term) is collected in the array moment and named.
    """
    a2, a1, a0 = sp.Poly(expr, x).all_coeffs()
    require(sp.expand(a0 - lead) == 0, f"a mode that does not move must keep {lead}")
    b1 = sp.expand(a1 + 2 * a0)
    b2 = sp.expand(a2 - a0)
    q1, q0 = sp.Poly(b2, inv_B).all_coeffs()
    arrays = sorted(q1.free_symbols - SCALAR_ARGS, key=sp.default_sort_key)
    bracket = sp.collect(q1, arrays)
    name = sp.Symbol(bracket_name)
    result = a0 * (1 - x) ** 2 + x * (b1 + x * (q0 + inv_B * name))
    return ((name, bracket),), result


def _formula(expr: sp.Expr, *, prefer: Sequence[sp.Symbol] = ()) -> tuple[str, ...]:
    """A readable one-line formula in ascending powers of x, coefficients factored."""
    parts = sp.collect(sp.expand(expr), x, evaluate=False)
    out: list[str] = []
    for power in sorted(parts, key=lambda p: sp.degree(p, x)):
        coeff = parts[power]
        if inv_B in coeff.free_symbols:
            q1, q0 = sp.Poly(coeff, inv_B).all_coeffs()
            coeff = q0 + inv_B * sp.collect(q1, list(prefer))
            number, rest = sp.Integer(1), coeff
        else:
            number, rest = sp.factor_terms(coeff).as_coeff_Mul()
        if rest.is_Add and _emit(rest).startswith("-"):
            number, rest = -number, sp.expand(-rest)
        factors = [] if abs(number) == 1 else [_emit(abs(number))]
        factors += [] if power == 1 else [_emit(power)]
        if rest != 1 or not factors:
            factors.append(f"({_emit(rest)})" if rest.is_Add and factors else _emit(rest))
        body = " * ".join(factors)
        if not out:
            out.append(f"-{body}" if number < 0 else body)
        else:
            out.append(f"- {body}" if number < 0 else f"+ {body}")
    return tuple(out)


@functools.cache
def codegen_functions() -> tuple[CodegenFunction, ...]:
    """The six generated functions, arranged and verified equal to the derivation."""
    s = derive_student_recursion(3)
    h = derive_hard_recursion(3)
    specs = []

    def add(name, target, expr, temps, result, summary, prefer=()):
        full = result.subs({t: e for t, e in reversed(temps)})
        require(sp.expand(full - expr) == 0, f"arranged {name} differs from the derivation")
        specs.append(
            CodegenFunction(
                name=name,
                args=CONTRACT[name],
                expr=expr,
                temporaries=tuple(temps),
                result=result,
                formula=_formula(expr, prefer=prefer),
                summary=summary,
                target=target,
            )
        )

    add(
        "residual_moment",
        "U",
        s.residual_contract,
        (),
        s.residual_contract,
        "Second moment of the residual error e_g - c e_p of one mode.",
    )
    temps, res = _arrange_quadratic(s.self_contract, M_gg, "fluct")
    add(
        "self_moment_step",
        "M_gg'",
        s.self_contract,
        temps,
        res,
        "New M_gg of the student g after one SGD step on mixed labels.",
        prefer=(U,),
    )
    add(
        "cross_moment_step",
        "M_gh'",
        s.cross_contract,
        (),
        _arrange_linear(s.cross_contract, M_gh),
        "New M_gh between the student g and a frozen model h (h = p included).",
    )
    add(
        "mean_step",
        "mu_g'",
        s.mean_contract,
        (),
        _arrange_linear(s.mean_contract, mu_g),
        "New first-moment multiplier mu_g of the student g.",
    )
    temps, res = _arrange_quadratic(h.moment_contract, M, "fluct")
    add(
        "hard_moment_step",
        "M'",
        h.moment_contract,
        temps,
        res,
        "New M of a single model after one SGD step on hard labels.",
        prefer=(M,),
    )
    add(
        "hard_mean_step",
        "mu'",
        h.mean_contract,
        (),
        _arrange_linear(h.mean_contract, mu),
        "New first-moment multiplier mu of a single model on hard labels.",
    )
    return tuple(specs)


# --- a small deterministic emitter (ruff/black-compatible spacing) ----------


def _is_scalar(e: sp.Expr) -> bool:
    syms = e.free_symbols
    return bool(syms) and syms <= SCALAR_ARGS


def _is_monomial(e: sp.Expr) -> bool:
    return not any(isinstance(a, sp.Add) for a in sp.preorder_traversal(e))


def _add_key(term: sp.Expr):
    # scalar-only terms, then numbers, then (signed multiples of) single array
    # symbols, positive first -- so that e.g. ``U - M_gg`` is formed before anything
    # is added to it --, then other monomials by degree, then compound terms.
    negative = bool(term.could_extract_minus_sign())
    if term.is_Number:
        return (1, 0, negative, sp.default_sort_key(term))
    if _is_scalar(term):
        return (0, 0, negative, sp.default_sort_key(term))
    if term.as_coeff_Mul()[1].is_Symbol:
        return (2, 0, negative, sp.default_sort_key(term))
    if _is_monomial(term):
        degree = sp.Poly(term, *sorted(term.free_symbols, key=sp.default_sort_key)).total_degree()
        return (3, degree, negative, sp.default_sort_key(term))
    return (4, 0, negative, sp.default_sort_key(term))


def _mul_key(f: sp.Expr):
    base = f.as_base_exp()[0]
    if _is_scalar(f):
        group = 0
    elif base.is_Symbol:
        group = 1
    else:
        group = 2
    return (group, sp.default_sort_key(f))


def _simple(e: sp.Expr) -> bool:
    return e.is_Symbol or (e.is_Integer and e >= 0)


def _emit(e: sp.Expr) -> str:
    """Python source for e: products of scalar arguments first, ``(U - M_gg)``-style
    groupings kept (monomials before compound terms, positive before negative)."""
    if e.is_Symbol:
        return e.name
    if e.is_Integer:
        return str(int(e))
    if e.is_Rational:
        return f"({e.p} / {e.q})"
    if e.is_Add:
        terms = sorted(sp.Add.make_args(e), key=_add_key)
        out = ""
        for n, t in enumerate(terms):
            neg = t.could_extract_minus_sign()
            body = _emit(-t) if neg else _emit(t)
            if n == 0:
                out = f"-{_wrap_unary(-t)}" if neg else body
            else:
                out += f" - {body}" if neg else f" + {body}"
        return out
    if e.is_Mul:
        coeff, rest = e.as_coeff_Mul()
        if coeff.is_negative:
            return f"-{_wrap_unary(-e)}"
        factors = sorted(sp.Mul.make_args(rest), key=_mul_key)
        parts = [] if coeff == 1 else [_emit(coeff)]
        for f in factors:
            s = _emit(f)
            parts.append(f"({s})" if f.is_Add else s)
        return " * ".join(parts)
    if e.is_Pow:
        base, power = e.as_base_exp()
        require(power.is_Integer and power > 0, f"unsupported power in codegen: {e}")
        bs = _emit(base)
        if not _simple(base):
            return f"({bs}) ** {int(power)}"
        return f"{bs}**{int(power)}"
    raise DerivationError(f"cannot emit {e!r}")


def _wrap_unary(e: sp.Expr) -> str:
    s = _emit(e)
    return f"({s})" if e.is_Add else s


_CSE_PREFIX = "t"


def function_source(fn: CodegenFunction) -> str:
    args = ", ".join(a.name for a in fn.args)
    names = [t for t, _ in fn.temporaries]
    exprs = [e for _, e in fn.temporaries] + [fn.result]
    replacements, reduced = sp.cse(
        exprs, symbols=sp.numbered_symbols(_CSE_PREFIX), optimizations=None
    )
    lines = [f"def {fn.name}({args}):"]
    doc = [f'    """{fn.summary}', ""]
    line = f"    {fn.target} = {fn.formula[0]}"
    for term in fn.formula[1:]:
        if len(line) + 1 + len(term) > 88:
            doc.append(line)
            line = "        " + term
        else:
            line += " " + term
    doc.append(line)
    lines += doc + ['    """']
    for sym, e in replacements:
        lines.append(f"    {sym.name} = {_emit(e)}")
    for sym, e in zip(names, reduced[:-1], strict=True):
        lines.append(f"    {sym.name} = {_emit(e)}")
    lines.append(f"    return {_emit(reduced[-1])}")
    for line in lines:
        require(len(line) <= 100, f"generated line too long: {line}")
    return "\n".join(lines)


_MODULE_HEADER = '''\
# GENERATED by derivations/generate.py -- DO NOT EDIT.
# Regenerate with `python derivations/generate.py`; tests/test_symbolic.py
# checks that this file is byte-identical to what the generator produces.
"""Exact per-mode moment recursions of one-pass minibatch SGD (``docs/theory.md`` §4).

Derived symbolically by ``spectral_theory.symbolic.recursions`` (see
derivations/moment_recursions.md). Every function is plain arithmetic, so every
argument may be a Python float or a numpy array (they broadcast); no numpy call
is made and nothing is imported. Argument names:

- ``x = eta * s_i``: the per-mode step (step size times the mode's speed);
- ``c = 1 - alpha``: the weight of the parent's prediction in the labels;
- ``inv_B = 1 / B``: inverse batch size; ``kappa = E z^4``;
- ``noise``: ``alpha**2 * sigma2`` for the student, ``sigma2`` for a hard-label model;
- ``M_mn``: pair moments E[e_m e_n] of one mode; ``mu_m``: first-moment multipliers;
- ``U``: the residual moment of the same mode; ``sum_U`` / ``sum_M``: sums over all modes.

Arrangement: the moment steps use the form ``lead * (1 - x) ** 2 + x * (...)``,
the linear steps ``lead * (1 - x) + x * (...)``, so that the lead moment is never
first added to and then cancelled against terms of its own size (its term
vanishes exactly at ``x = 1``, and the student step reduces exactly to the
hard-label step at ``c = 0``, where ``U - M_gg`` is exactly 0). Products of
the (typically scalar) arguments ``c, inv_B, kappa, noise, sum_U, sum_M`` are
formed before an array factor enters.
"""

__all__ = [
'''


def generate_module() -> str:
    """Source of ``spectral_theory/solvers/kernels.py`` (deterministic)."""
    fns = codegen_functions()
    parts = [_MODULE_HEADER]
    parts.append("".join(f'    "{fn.name}",\n' for fn in fns) + "]\n")
    for fn in fns:
        parts.append("\n\n" + function_source(fn) + "\n")
    return "".join(parts)


