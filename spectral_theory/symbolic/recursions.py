"""Derivation of the exact per-mode moment recursions from the SGD update (``docs/theory.md`` §3-4).

Model g takes one step ``phi_g <- phi_g - eta S (1/B) sum_b z_b (z_b . phi_g - l_b)`` on labels
``l = alpha y + (1 - alpha) z . phi_p``; with errors ``e_m = phi_m - theta`` the residual is
``z . (e_g - c e_p) - alpha eps``, ``c = 1 - alpha``. The derivation works at a finite symbolic
dimension ``D``: latent coordinates with ``E z = 0, E z^2 = 1, E z^3 = m3, E z^4 = kappa``
(``m3`` is kept free and must drop out), noise with ``E eps^2 = sigma2``, and error variables
of the student g, its parent p and another frozen model h, independent of the fresh sample.
The rank-one structure is extracted mechanically and checked to be the same at every D, and
the result is compared with the recursion as the specification states it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import sympy as sp

from .common import (
    EPS_MOMENTS,
    Z_MOMENTS,
    B,
    DerivationError,
    M,
    M_gg,
    M_gh,
    M_gp,
    M_ph,
    M_pp,
    U,
    alpha,
    c,
    eta,
    inv_B,
    kappa,
    m3,
    mu,
    mu_g,
    mu_p,
    noise,
    polynomial,
    require,
    sigma2,
    sum_M,
    sum_U,
    x,
)

# ---------------------------------------------------------------------------
# The symbolic setting at dimension D
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Setting:
    """Symbols of the finite-dimensional problem.

    ``D`` modes ``j = 1..D``; ``models`` are the error variables present (their
    order fixes the canonical name of a pair moment, e.g. ``M_gp_j`` not
    ``M_pg_j``); ``copies`` independent fresh samples ``(z^(k), eps^(k))``.
    """

    D: int
    models: tuple[str, ...] = ("g", "p", "h")
    copies: int = 2

    def __post_init__(self) -> None:
        if not (isinstance(self.D, int) and self.D >= 1):
            raise ValueError(f"Setting.D must be an integer >= 1, got {self.D!r}")
        if len(set(self.models)) != len(self.models) or not self.models:
            raise ValueError(f"Setting.models must be distinct names, got {self.models!r}")

    @property
    def modes(self) -> range:
        return range(1, self.D + 1)

    # fresh-sample variables -------------------------------------------------
    def z(self, k: int, j: int) -> sp.Symbol:
        """Latent coordinate j of fresh sample copy k."""
        return sp.Symbol(f"z{k}_{j}")

    def eps(self, k: int) -> sp.Symbol:
        """Label noise of fresh sample copy k."""
        return sp.Symbol(f"eps{k}")

    # state variables ----------------------------------------------------------
    def e(self, m: str, j: int) -> sp.Symbol:
        """Error of model m on mode j (random, independent of fresh samples)."""
        return sp.Symbol(f"e_{m}_{j}")

    def theta(self, j: int) -> sp.Symbol:
        return sp.Symbol(f"theta_{j}")

    def s(self, j: int) -> sp.Symbol:
        return sp.Symbol(f"s_{j}")

    def M(self, m: str, n: str, j: int) -> sp.Symbol:
        """Pair moment E[e_{m,j} e_{n,j}] (canonical order of the two models)."""
        a, b = sorted((m, n), key=self.models.index)
        return sp.Symbol(f"M_{a}{b}_{j}")

    def mu(self, m: str, j: int) -> sp.Symbol:
        """First-moment multiplier: E[e_{m,j}] = mu_{m,j} theta_j."""
        return sp.Symbol(f"mu_{m}_{j}")

    # classification -------------------------------------------------------------
    @functools.cached_property
    def _kinds(self) -> dict[sp.Symbol, tuple]:
        kinds: dict[sp.Symbol, tuple] = {}
        for k in range(self.copies):
            kinds[self.eps(k)] = ("eps", k)
            for j in self.modes:
                kinds[self.z(k, j)] = ("z", k, j)
        for m in self.models:
            for j in self.modes:
                kinds[self.e(m, j)] = ("e", m, j)
        return kinds

    def kind(self, sym: sp.Basic) -> tuple | None:
        """('z', k, j), ('eps', k), ('e', m, j), or None for a deterministic symbol."""
        return self._kinds.get(sym)

    @functools.cached_property
    def _mode_of(self) -> dict[sp.Symbol, int]:
        out: dict[sp.Symbol, int] = {}
        for j in self.modes:
            out[self.theta(j)] = j
            out[self.s(j)] = j
            for m in self.models:
                out[self.e(m, j)] = j
                out[self.mu(m, j)] = j
                for n in self.models:
                    out[self.M(m, n, j)] = j
            for k in range(self.copies):
                out[self.z(k, j)] = j
        return out

    def mode_of(self, sym: sp.Basic) -> int | None:
        """The mode index a symbol belongs to, or None for a global symbol."""
        return self._mode_of.get(sym)

    def modes_in(self, expr: sp.Expr) -> dict[int, set[sp.Symbol]]:
        """Mode-indexed symbols present in expr, grouped by mode."""
        out: dict[int, set[sp.Symbol]] = {}
        for sym in expr.free_symbols:
            j = self.mode_of(sym)
            if j is not None:
                out.setdefault(j, set()).add(sym)
        return out


# ---------------------------------------------------------------------------
# Expectation operator
# ---------------------------------------------------------------------------


def _moment(table: Mapping[int, sp.Expr], n: int, what: str) -> sp.Expr:
    require(n in table, f"E[{what}^{n}] is not in the moment table (degree too high)")
    return table[n]


def expectation(expr: sp.Expr, setting: Setting) -> sp.Expr:
    """Expectation over the fresh samples and the error state.

    Expands ``expr`` into monomials; in each monomial the factors are grouped by
    independent variable (every ``z^(k)_j`` and every ``eps^(k)`` is independent
    of all others, and the error vector is independent of all samples), each power
    of a sample variable is replaced by its moment (:data:`Z_MOMENTS`,
    :data:`EPS_MOMENTS`), and the remaining error part is replaced by

    * 1 for no error factor,
    * ``mu_{m,j} theta_j`` for a single factor ``e_{m,j}``,
    * the pair moment ``M_{mn,j}`` for ``e_{m,j} e_{n,j}`` (same mode j).

    A surviving product of errors from two different modes raises
    :class:`DerivationError`: that is the statement that off-diagonal moments
    never feed back. Error products of degree three or more also raise.
    """
    expr = sp.expand(expr)
    terms = []
    for term in sp.Add.make_args(expr):
        coeff, rest = term.as_coeff_Mul()
        value = coeff
        errors: list[tuple[str, int]] = []
        for factor in sp.Mul.make_args(rest):
            base, power = factor.as_base_exp()
            kind = setting.kind(base)
            if kind is None:
                value *= factor
                continue
            require(power.is_Integer and power > 0, f"non-polynomial power of {base}: {factor}")
            n = int(power)
            if kind[0] == "z":
                value *= _moment(Z_MOMENTS, n, "z")
            elif kind[0] == "eps":
                value *= _moment(EPS_MOMENTS, n, "eps")
            else:
                errors.extend([(kind[1], kind[2])] * n)
            if value == 0:
                break
        if value == 0:
            continue
        if len(errors) == 1:
            (m, j) = errors[0]
            value *= setting.mu(m, j) * setting.theta(j)
        elif len(errors) == 2:
            (m, j), (n, i) = errors
            require(
                i == j,
                f"a product of errors from two different modes survives: e_{m}_{j} * e_{n}_{i}"
                f" in the term {term}",
            )
            value *= setting.M(m, n, j)
        elif len(errors) > 2:
            raise DerivationError(f"error product of degree {len(errors)} in the term {term}")
        terms.append(value)
    return sp.expand(sp.Add(*terms))


def batch_expectation(
    expr: sp.Expr,
    gradients: Mapping[sp.Symbol, Callable[[int], sp.Expr]],
    setting: Setting,
    batch: sp.Expr = B,
) -> sp.Expr:
    """Expectation of a polynomial in batch-averaged gradient components.

    ``gradients`` maps a placeholder symbol ``G`` (one component of
    ``(1/B) sum_b g_b``) to a function ``k -> g^(k)``, the same component for
    fresh-sample copy ``k``. A monomial of degree one in the placeholders
    averages to the single-sample value; of degree two,
    ``G_a G_b = B^-2 sum_{b,b'} g_a^(b) g_b^(b')`` has ``B`` same-sample pairs and
    ``B(B-1)`` distinct-sample pairs, whose expectations are computed with one
    copy and with two independent copies respectively.
    """
    expr = sp.expand(expr)
    total = []
    for term in sp.Add.make_args(expr):
        placeholders: list[sp.Symbol] = []
        rest = sp.Integer(1)
        for factor in sp.Mul.make_args(term):
            base, power = factor.as_base_exp()
            if base in gradients:
                placeholders.extend([base] * int(power))
            else:
                rest *= factor
        if not placeholders:
            total.append(expectation(rest, setting))
        elif len(placeholders) == 1:
            total.append(expectation(rest * gradients[placeholders[0]](0), setting))
        elif len(placeholders) == 2:
            ga, gb = (gradients[p] for p in placeholders)
            same = expectation(rest * ga(0) * gb(0), setting)
            distinct = expectation(rest * ga(0) * gb(1), setting)
            total.append((batch * same + batch * (batch - 1) * distinct) / batch**2)
        else:
            raise DerivationError("gradient products of degree > 2 are not needed here")
    return sp.expand(sp.Add(*total))


# ---------------------------------------------------------------------------
# The SGD step
# ---------------------------------------------------------------------------


def _dot(setting: Setting, k: int, vec: Callable[[int], sp.Expr]) -> sp.Expr:
    return sp.Add(*(setting.z(k, j) * vec(j) for j in setting.modes))


def sample_residual(setting: Setting, k: int, labels: str) -> sp.Expr:
    """Residual ``z . phi_g - l`` of fresh copy k, with ``phi = theta + e``.

    ``labels`` is ``"mixed"`` (``l = alpha y + (1 - alpha) z . phi_p``) or ``"hard"``
    (``l = y``). ``theta`` cancels identically (checked by the derivations).
    """
    th = setting.theta
    y = _dot(setting, k, th) + setting.eps(k)
    pred_g = _dot(setting, k, lambda j: th(j) + setting.e("g", j))
    if labels == "hard":
        label = y
    elif labels == "mixed":
        label = alpha * y + (1 - alpha) * _dot(setting, k, lambda j: th(j) + setting.e("p", j))
    else:
        raise ValueError(f"labels must be 'mixed' or 'hard', got {labels!r}")
    return sp.expand(pred_g - label)


# ---------------------------------------------------------------------------
# Mechanical extraction of the rank-one structure
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RankOneSplit:
    """``expr = local(mode i) + scalar * sum_{j=1}^D U_j``, in generic symbols.

    ``U`` is the common combination of a mode's moments (normalised so that the
    first generic moment has coefficient 1), ``scalar`` its common coefficient,
    ``local`` the remainder, which involves mode ``i`` only.
    """

    scalar: sp.Expr
    U: sp.Expr
    local: sp.Expr


def extract_rank_one(
    expr: sp.Expr,
    setting: Setting,
    mode_moments: Callable[[int], Sequence[sp.Symbol]],
    generic: Sequence[sp.Symbol],
    i: int = 1,
) -> RankOneSplit:
    """Split the mode-i update into a mode-i part and a rank-one global sum.

    For every mode ``j != i``: the only mode-j symbols are ``mode_moments(j)``; the
    expression is linear in them with coefficients free of every mode-indexed
    symbol; normalised by the first coefficient, the combination ``U_j`` and the
    scalar are the same for every j. The global term is ``scalar * sum_j U_j``
    over all j, including i; what remains must involve mode i only.
    """
    require(setting.D >= 2, "the extraction needs at least one mode other than i")
    generic = tuple(generic)
    found: set[tuple[sp.Expr, sp.Expr]] = set()
    scalar = U = None
    for j in setting.modes:
        if j == i:
            continue
        syms = tuple(mode_moments(j))
        present = setting.modes_in(expr).get(j, set())
        require(present <= set(syms), f"unexpected mode-{j} symbols {present - set(syms)}")
        coeffs = [sp.expand(sp.diff(expr, sym)) for sym in syms]
        for sym, co in zip(syms, coeffs, strict=True):
            require(
                not setting.modes_in(co),
                f"coefficient of {sym} depends on mode-indexed symbols: {co}",
            )
        require(coeffs[0] != 0, f"mode {j} does not couple to mode {i} through {syms[0]}")
        ratios = [sp.cancel(co / coeffs[0]) for co in coeffs]
        U_j = sp.expand(sp.Add(*(r * g for r, g in zip(ratios, generic, strict=True))))
        found.add((coeffs[0], U_j))
        scalar, U = coeffs[0], U_j
    require(
        len(found) == 1,
        f"the modes j != {i} do not share one scalar and one combination: {found}",
    )
    to_mode = lambda j: dict(zip(generic, mode_moments(j), strict=True))  # noqa: E731
    total = sp.Add(*(U.subs(to_mode(j), simultaneous=True) for j in setting.modes))
    local = sp.expand(expr - scalar * total)
    others = {j for j in setting.modes_in(local) if j != i}
    require(not others, f"the remainder still involves modes {sorted(others)}")
    local_generic = sp.expand(local.subs({v: k for k, v in to_mode(i).items()}, simultaneous=True))
    return RankOneSplit(scalar=scalar, U=U, local=local_generic)


# ---------------------------------------------------------------------------
# Derivations
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class StudentRecursion:
    """Mixed-label student g (parent p, frozen h): derivation at dimension D.

    ``raw_*`` are the expectations in the D-mode symbols after ``eta = x / s_1``;
    ``same_sample`` / ``distinct_sample`` are E[g_1^2] and E[g_1 g_1'] (the
    batch pieces); ``split`` the rank-one extraction of ``raw_second``;
    ``*_contract`` the recursions in the generated functions' argument symbols.
    """

    D: int
    residual: sp.Expr
    same_sample: sp.Expr
    distinct_sample: sp.Expr
    batch_second: sp.Expr
    raw_second: sp.Expr
    raw_cross: sp.Expr
    raw_cross_parent: sp.Expr
    raw_mean: sp.Expr
    split: RankOneSplit
    residual_contract: sp.Expr
    self_contract: sp.Expr
    cross_contract: sp.Expr
    mean_contract: sp.Expr
    checks: tuple[str, ...]


@dataclass(frozen=True)
class HardRecursion:
    """A single model on hard labels (alpha = 1, no parent) at dimension D."""

    D: int
    residual: sp.Expr
    same_sample: sp.Expr
    distinct_sample: sp.Expr
    raw_second: sp.Expr
    raw_mean: sp.Expr
    split: RankOneSplit
    moment_contract: sp.Expr
    mean_contract: sp.Expr
    checks: tuple[str, ...]


def to_step_variable(expr: sp.Expr, setting: Setting, i: int = 1) -> sp.Expr:
    """Substitute ``eta = x / s_i``; check that no speed and no eta survive."""
    out = sp.expand(expr.subs(eta, x / setting.s(i)))
    speeds = {setting.s(j) for j in setting.modes}
    require(
        not (out.free_symbols & (speeds | {eta})),
        f"the mode-{i} update depends on the speeds other than through x = eta s_{i}",
    )
    return out


def _divide_by_theta(expr: sp.Expr, setting: Setting, i: int = 1) -> sp.Expr:
    out = sp.expand(sp.cancel(expr / setting.theta(i)))
    require(
        not (out.free_symbols & {setting.theta(j) for j in setting.modes}),
        f"the mean update is not proportional to theta_{i}",
    )
    return out


@functools.cache
def one_step(st: Setting, labels: str, i: int):
    """One SGD step of mode ``i`` of model g on ``labels`` ("mixed" or "hard"):
    ``({G: k -> g^(k)}, e_g,i', E[g^2] (same sample), E[g g'] (distinct samples))``,
    where ``g^(k) = z_{k,i} r_k`` is one sample's gradient component and
    ``e_g,i' = e_g,i - eta s_i G`` with ``G`` the batch mean."""
    G = sp.Symbol("G_1")

    def grad(k: int) -> sp.Expr:
        return st.z(k, i) * sample_residual(st, k, labels)

    e_new = st.e("g", i) - eta * st.s(i) * G
    return {G: grad}, e_new, expectation(grad(0) ** 2, st), expectation(grad(0) * grad(1), st)


def derive_student_recursion(D: int = 3) -> StudentRecursion:
    """Derive the mixed-label student's mode-1 recursions at dimension D.

    Steps: residual of the update (theta cancels); mode-1 error after one step
    ``e_g1' = e_g1 - eta s_1 G_1`` with G the batch-mean gradient; expectations of
    ``e_g1'^2``, ``e_g1' e_h1`` (frozen h), ``e_g1' e_p1`` (h = p) and ``e_g1'``;
    rank-one extraction of the second moment; conversion to the contract symbols
    (``c = 1 - alpha``, ``noise = alpha^2 sigma2``, ``inv_B = 1/B``, ``M_pp``
    eliminated through ``U``).
    """
    st = Setting(D, models=("g", "p", "h"))
    checks: list[str] = []
    i = 1

    residual = sample_residual(st, 0, "mixed")
    expected = sp.expand(
        _dot(st, 0, lambda j: st.e("g", j) - (1 - alpha) * st.e("p", j)) - alpha * st.eps(0)
    )
    require(sp.expand(residual - expected) == 0, "residual is not z.(e_g - c e_p) - alpha eps")
    require(not (residual.free_symbols & {st.theta(j) for j in st.modes}), "theta survives")
    checks.append("theta cancels from the residual: r = z.(e_g - c e_p) - alpha eps")

    grads, e_new, same, distinct = one_step(st, "mixed", i)
    batch_second = sp.expand((B * same + B * (B - 1) * distinct) / B**2)

    raw_second = to_step_variable(batch_expectation(e_new**2, grads, st), st)
    raw_cross = to_step_variable(batch_expectation(e_new * st.e("h", i), grads, st), st)
    raw_cross_parent = to_step_variable(batch_expectation(e_new * st.e("p", i), grads, st), st)
    raw_mean = to_step_variable(batch_expectation(e_new, grads, st), st)
    checks.append(f"the mode-{i} update depends on eta and the speeds only through x = eta s_{i}")
    checks.append("no product of errors from two different modes survives the expectation")

    for name, e in (("second", raw_second), ("cross", raw_cross), ("mean", raw_mean)):
        require(m3 not in e.free_symbols, f"m3 survives in the {name} moment")
    require(m3 not in same.free_symbols, "m3 survives in the same-sample term")
    checks.append("m3 = E z^3 drops out of every recursion")

    # rank-one split of the second moment
    split = extract_rank_one(
        raw_second,
        st,
        lambda j: (st.M("g", "g", j), st.M("g", "p", j), st.M("p", "p", j)),
        (M_gg, M_gp, M_pp),
        i,
    )
    checks.append("every mode j != 1 enters through one scalar times one combination U_j")
    checks.append("the remainder involves mode 1 only")

    # cross and mean updates: no coupling across modes at all
    for name, e in (("cross", raw_cross), ("cross (h = p)", raw_cross_parent), ("mean", raw_mean)):
        require(
            set(st.modes_in(e)) <= {i},
            f"the {name} update couples to other modes: {st.modes_in(e)}",
        )
    checks.append("cross-moment and mean updates involve mode 1 only")

    # --- contract form -------------------------------------------------------
    def to_c(expr: sp.Expr) -> sp.Expr:
        return polynomial(expr.subs(alpha, 1 - c), "expression in c")

    residual_contract = to_c(split.U)
    # noise = alpha^2 sigma2: the noise must enter only in that combination
    sig_coeff = sp.expand(sp.diff(split.local, sigma2))
    require(sig_coeff != 0, "the noise does not enter the second moment")
    require(
        alpha not in sp.cancel(sig_coeff / alpha**2).free_symbols,
        "sigma2 does not enter only as alpha^2 sigma2",
    )
    local = to_c(sp.expand(split.local.subs(sigma2, noise / alpha**2)))
    # eliminate M_pp through U (its coefficient must be divisible by c^2)
    k_pp = sp.diff(residual_contract, M_pp)
    require(sp.expand(k_pp - c**2) == 0, f"U has M_pp coefficient {k_pp}, expected c^2")
    k_U = polynomial(sp.diff(local, M_pp) / k_pp, "coefficient of U")
    rest = sp.expand(local - k_U * residual_contract)
    require(M_pp not in rest.free_symbols, "M_pp survives outside U")
    scalar = to_c(split.scalar)
    self_contract = sp.expand((rest + k_U * U + scalar * sum_U).subs(B, 1 / inv_B))

    to_generic_1 = {st.M("g", "h", i): M_gh, st.M("p", "h", i): M_ph}
    cross_contract = to_c(raw_cross.subs(to_generic_1, simultaneous=True))
    require(cross_contract.free_symbols <= {M_gh, M_ph, x, c}, "cross step has extra symbols")
    cross_parent = to_c(
        raw_cross_parent.subs({st.M("g", "p", i): M_gh, st.M("p", "p", i): M_ph}, simultaneous=True)
    )
    require(
        sp.expand(cross_parent - cross_contract) == 0,
        "the h = p cross update differs from the generic frozen-h update",
    )
    checks.append("the cross update with h = p (M_gp) is the generic frozen-h update")

    mean_1 = _divide_by_theta(raw_mean, st, i)
    mean_contract = to_c(mean_1.subs({st.mu("g", i): mu_g, st.mu("p", i): mu_p}))
    require(mean_contract.free_symbols <= {mu_g, mu_p, x, c}, "mean step has extra symbols")

    return StudentRecursion(
        D=D,
        residual=residual,
        same_sample=same,
        distinct_sample=distinct,
        batch_second=batch_second,
        raw_second=raw_second,
        raw_cross=raw_cross,
        raw_cross_parent=raw_cross_parent,
        raw_mean=raw_mean,
        split=split,
        residual_contract=residual_contract,
        self_contract=self_contract,
        cross_contract=cross_contract,
        mean_contract=mean_contract,
        checks=tuple(checks),
    )


@functools.cache
def derive_hard_recursion(D: int = 3) -> HardRecursion:
    """Derive the hard-label single model's mode-1 recursions at dimension D."""
    st = Setting(D, models=("g",))
    checks: list[str] = []
    i = 1
    residual = sample_residual(st, 0, "hard")
    expected = sp.expand(_dot(st, 0, lambda j: st.e("g", j)) - st.eps(0))
    require(sp.expand(residual - expected) == 0, "hard residual is not z.e - eps")
    checks.append("theta cancels from the residual: r = z.e - eps")

    grads, e_new, same, distinct = one_step(st, "hard", i)
    raw_second = to_step_variable(batch_expectation(e_new**2, grads, st), st)
    raw_mean = to_step_variable(batch_expectation(e_new, grads, st), st)
    require(m3 not in raw_second.free_symbols | raw_mean.free_symbols, "m3 survives")
    checks.append("m3 = E z^3 drops out")
    checks.append("no product of errors from two different modes survives the expectation")

    split = extract_rank_one(raw_second, st, lambda j: (st.M("g", "g", j),), (M,), i)
    checks.append("every mode j != 1 enters through one scalar times M_j; remainder is mode 1 only")
    require(set(st.modes_in(raw_mean)) <= {i}, "the mean update couples modes")

    moment_contract = sp.expand(
        (split.local + split.scalar * sum_M).subs({sigma2: noise, B: 1 / inv_B})
    )
    mean_contract = sp.expand(_divide_by_theta(raw_mean, st, i).subs(st.mu("g", i), mu))
    require(mean_contract.free_symbols <= {mu, x}, "hard mean step has extra symbols")
    return HardRecursion(
        D=D,
        residual=residual,
        same_sample=same,
        distinct_sample=distinct,
        raw_second=raw_second,
        raw_mean=raw_mean,
        split=split,
        moment_contract=moment_contract,
        mean_contract=mean_contract,
        checks=tuple(checks),
    )


@dataclass(frozen=True)
class QuarticIdentity:
    """E[z z^T A z z^T] for a symbolic symmetric n x n matrix A."""

    n: int
    A: sp.Matrix
    expectation: sp.Matrix
    diagonal_rule: sp.Matrix  # tr(A) + (kappa - 1) A_ii, as a column


@functools.cache
def verify_quartic_identity(n: int = 3) -> QuarticIdentity:
    """Check diag E[z z^T A z z^T] = tr(A) + (kappa - 1) A_ii (and off-diagonal 2 A_il)."""
    st = Setting(n, models=("g",), copies=1)
    A = sp.Matrix(n, n, lambda r, q: sp.Symbol(f"A_{min(r, q) + 1}{max(r, q) + 1}"))
    z = sp.Matrix([st.z(0, j) for j in st.modes])
    quad = sp.expand((z.T * A * z)[0, 0])
    E = sp.Matrix(n, n, lambda r, q: expectation(z[r] * z[q] * quad, st))
    rule = sp.Matrix([A.trace() + (kappa - 1) * A[r, r] for r in range(n)])
    for r in range(n):
        require(sp.expand(E[r, r] - rule[r]) == 0, f"diagonal entry {r + 1} fails: {E[r, r]}")
        for q in range(n):
            if q != r:
                require(sp.expand(E[r, q] - 2 * A[r, q]) == 0, f"entry ({r + 1},{q + 1}) fails")
    require(not any(m3 in e.free_symbols for e in E), "m3 survives in E[z z^T A z z^T]")
    return QuarticIdentity(n=n, A=A, expectation=E, diagonal_rule=rule)


# ---------------------------------------------------------------------------
# The recursion as the specification states it (the target of the comparison)
# ---------------------------------------------------------------------------


def spec_student_recursion(D: int = 3) -> dict[str, sp.Expr]:
    """``docs/theory.md`` §4 for the mode-1 update of a mixed-label student, in D-mode symbols."""
    st = Setting(D, models=("g", "p", "h"))
    cc = 1 - alpha
    xx = eta * st.s(1)

    def Uj(j: int) -> sp.Expr:
        return st.M("g", "g", j) - 2 * cc * st.M("g", "p", j) + cc**2 * st.M("p", "p", j)

    Mgg, Mgp = st.M("g", "g", 1), st.M("g", "p", 1)
    second = (
        Mgg
        - 2 * xx * (Mgg - cc * Mgp)
        + xx**2
        * (
            Uj(1)
            + (sp.Add(*(Uj(j) for j in st.modes)) + (kappa - 2) * Uj(1) + alpha**2 * sigma2) / B
        )
    )
    cross = st.M("g", "h", 1) - xx * (st.M("g", "h", 1) - cc * st.M("p", "h", 1))
    th = st.theta(1)
    mean = (st.mu("g", 1) - xx * (st.mu("g", 1) - cc * st.mu("p", 1))) * th
    return {
        name: to_step_variable(e, st)
        for name, e in (("second", second), ("cross", cross), ("mean", mean))
    }


def spec_hard_recursion(D: int = 3) -> dict[str, sp.Expr]:
    """``docs/theory.md`` §4 for a single model on hard labels, mode 1, in D-mode symbols."""
    st = Setting(D, models=("g",))
    xx = eta * st.s(1)
    M1 = st.M("g", "g", 1)
    total = sp.Add(*(st.M("g", "g", j) for j in st.modes))
    second = (1 - xx) ** 2 * M1 + xx**2 / B * ((kappa - 2) * M1 + total + sigma2)
    mean = (1 - xx) * st.mu("g", 1) * st.theta(1)
    return {"second": to_step_variable(second, st), "mean": to_step_variable(mean, st)}


def check_against_spec(D: int) -> None:
    s = derive_student_recursion(D)
    t = spec_student_recursion(D)
    for name, derived in (("second", s.raw_second), ("cross", s.raw_cross), ("mean", s.raw_mean)):
        require(sp.expand(derived - t[name]) == 0, f"student {name} moment differs from docs/theory.md §4")
    h = derive_hard_recursion(D)
    th = spec_hard_recursion(D)
    for name, derived in (("second", h.raw_second), ("mean", h.raw_mean)):
        require(sp.expand(derived - th[name]) == 0, f"hard {name} moment differs from docs/theory.md §4")


def check_d_independence(Ds: Sequence[int] = (2, 3, 4)) -> None:
    """The extracted generic recursions are identical at every dimension in ``Ds``."""
    ref_s = derive_student_recursion(Ds[0])
    ref_h = derive_hard_recursion(Ds[0])
    for D in Ds[1:]:
        s = derive_student_recursion(D)
        h = derive_hard_recursion(D)
        for name in ("residual_contract", "self_contract", "cross_contract", "mean_contract"):
            diff = sp.expand(getattr(s, name) - getattr(ref_s, name))
            require(diff == 0, f"student {name} differs between D={Ds[0]} and D={D}")
        for name in ("moment_contract", "mean_contract"):
            diff = sp.expand(getattr(h, name) - getattr(ref_h, name))
            require(diff == 0, f"hard {name} differs between D={Ds[0]} and D={D}")
        for a, b in ((s.split, ref_s.split), (h.split, ref_h.split)):
            for f in ("scalar", "U", "local"):
                diff = sp.expand(getattr(a, f) - getattr(b, f))
                require(diff == 0, f"rank-one split field {f} differs at D={D}")


