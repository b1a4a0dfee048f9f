"""Derivation of the per-mode moment steps of the SGD variants from their update rules
(``docs/theory.md`` §10), the same way :mod:`spectral_theory.symbolic.recursions` derives plain
SGD's: expectations over a fresh batch at a finite symbolic dimension ``D``, latent coordinates
with free third moment, error variables independent of the batch.

Error variables of one mode ``j``: ``e_g`` (the iterate), ``e_v`` (the auxiliary sequence),
``e_a`` (the averaged iterate), ``e_p`` (the frozen parent's deployed predictor) and ``e_h``
(another frozen model). One step with symbolic coefficients ``r, p_e, p_v, h_e, h_v`` and
averaging weight ``rho``:

    y = r e_g + (1 - r) e_v;  residual of a sample: z.(y + theta) - alpha (z.theta + eps) - c z.(e_p + theta)
    e_g' = p_e e_g + (1 - p_e) e_v - h_e s_1 G_1,   e_v' = p_v e_g + (1 - p_v) e_v - h_v s_1 G_1,
    e_a' = (1 - rho) e_a + rho e_g'

(``G`` the batch-mean gradient). :func:`derive_variant_step` takes the expectations of every
product the engine tracks; :func:`check_variant_kernels` checks, symbol for symbol, that the
numeric kernels of :mod:`spectral_theory.solvers.variant_kernels` (plain arithmetic, so they
accept sympy symbols) equal them, and that plain SGD is the special case ``r = p_e = 1``,
``h_v = 0`` without averaging: the derived steps then coincide with the hard-label and
mixed-label recursions of :mod:`~spectral_theory.symbolic.recursions` exactly.
"""

from __future__ import annotations

import sympy as sp

from .common import B, alpha, kappa, require, sigma2
from .recursions import Setting, batch_expectation

__all__ = ["COEFFICIENTS", "DOCUMENT_PATH", "derive_variant_step", "check_variant_kernels", "generate_document"]

r, p_e, p_v, h_e, h_v, rho = sp.symbols("r p_e p_v h_e h_v rho")
COEFFICIENTS = (r, p_e, p_v, h_e, h_v, rho)
MODELS = ("g", "v", "a", "p", "h")


def _step(st: Setting, i: int = 1):
    th = st.theta
    G = sp.Symbol("G_1")
    c = 1 - alpha

    def resid(k: int) -> sp.Expr:
        z = [st.z(k, j) for j in st.modes]
        point = sum(zj * (th(j) + r * st.e("g", j) + (1 - r) * st.e("v", j)) for zj, j in zip(z, st.modes, strict=True))
        label = alpha * (sum(zj * th(j) for zj, j in zip(z, st.modes, strict=True)) + st.eps(k)) \
            + c * sum(zj * (th(j) + st.e("p", j)) for zj, j in zip(z, st.modes, strict=True))
        return sp.expand(point - label)

    res = resid(0)
    require(not (res.free_symbols & {th(j) for j in st.modes}), "theta survives in the residual at y")

    def grad(k: int) -> sp.Expr:
        return st.z(k, i) * resid(k)

    s1 = st.s(i)
    eg = p_e * st.e("g", i) + (1 - p_e) * st.e("v", i) - h_e * s1 * G
    ev = p_v * st.e("g", i) + (1 - p_v) * st.e("v", i) - h_v * s1 * G
    ea = (1 - rho) * st.e("a", i) + rho * eg
    return {G: grad}, eg, ev, ea


def derive_variant_step(D: int = 3) -> dict[str, sp.Expr]:
    """Expectations after one step of mode 1, at dimension ``D``: the second moments
    ``gg, gv, vv, aa, ag, av``, the cross moments ``gh, vh, ah`` with a frozen model and the
    first moments ``g, v, a`` (as ``mu theta``). :func:`~spectral_theory.symbolic.recursions.expectation`
    raises if a product of errors of two different modes survives (the averaged and auxiliary
    errors close mode by mode, like the iterate's)."""
    st = Setting(D, models=MODELS)
    grads, eg, ev, ea = _step(st)
    eh = st.e("h", 1)
    prods = {"gg": eg * eg, "gv": eg * ev, "vv": ev * ev, "aa": ea * ea, "ag": ea * eg, "av": ea * ev,
             "gh": eg * eh, "vh": ev * eh, "ah": ea * eh, "g": eg, "v": ev, "a": ea}
    return {k: batch_expectation(v, grads, st) for k, v in prods.items()}


def _kernel_values(D: int) -> dict[str, sp.Expr]:
    """The numeric kernels evaluated on symbols (the engine's order of operations). They work in
    the coordinates ``(e, d)``, ``d = e - v``: their inputs are formed from the derivation's
    ``(e, v)`` moments and their outputs mapped back (``E[e v] = E[e^2] - E[e d]``, ...)."""
    from ..solvers import variant_kernels as vk

    st = Setting(D, models=MODELS)
    c = 1 - alpha
    M = st.M

    def ed(a: str, j: int):  # E[e_a d] = E[e_a e] - E[e_a v]
        return M(a, "g", j) - M(a, "v", j)

    def point(j: int):
        Mdd = M("g", "g", j) - 2 * M("g", "v", j) + M("v", "v", j)
        return vk.point_moment(M("g", "g", j), ed("g", j), Mdd, M("g", "p", j), ed("p", j), M("p", "p", j), r, c)

    U, e_pi, d_pi = point(1)
    sum_U = sum(point(j)[0] for j in st.modes)
    x_e, x_v = h_e * st.s(1), h_v * st.s(1)
    Med1 = ed("g", 1)
    Mdd1 = M("g", "g", 1) - 2 * M("g", "v", 1) + M("v", "v", 1)
    ee, e_d, dd = vk.momentum_step(M("g", "g", 1), Med1, Mdd1, U, e_pi, d_pi, sum_U, p_e, p_v,
                                   x_e, x_v, 1 / B, kappa, alpha**2 * sigma2)
    rb = 1 - r
    pi_h = M("g", "h", 1) - rb * ed("h", 1) - c * M("p", "h", 1)
    gh, dh = vk.cross_step(M("g", "h", 1), ed("h", 1), pi_h, p_e, p_v, x_e, x_v)
    a_pi = M("g", "a", 1) - rb * ed("a", 1) - c * M("a", "p", 1)
    aa, ag, a_d = vk.average_step(M("a", "a", 1), M("g", "a", 1), ed("a", 1), a_pi, ee, e_d, p_e, p_v, x_e, x_v,
                                  rho)
    ah = (1 - rho) * M("a", "h", 1) + rho * gh
    th = st.theta(1)
    mu_d = st.mu("g", 1) - st.mu("v", 1)
    mu_pi = st.mu("g", 1) - rb * mu_d - c * st.mu("p", 1)
    mg, md = vk.mean_step(st.mu("g", 1), mu_d, mu_pi, p_e, p_v, x_e, x_v)
    ma = (1 - rho) * st.mu("a", 1) + rho * mg
    return {"gg": ee, "gv": ee - e_d, "vv": ee - 2 * e_d + dd, "aa": aa, "ag": ag, "av": ag - a_d,
            "gh": gh, "vh": gh - dh, "ah": ah, "g": mg * th, "v": (mg - md) * th, "a": ma * th}


def check_variant_kernels(D: int = 3) -> list[str]:
    """Check the numeric kernels against :func:`derive_variant_step` at dimension ``D`` (every
    expression identical after expansion), and the plain-SGD reduction; returns the checks made."""
    derived = derive_variant_step(D)
    kernels = _kernel_values(D)
    checks = []
    for k, v in derived.items():
        require(sp.expand(v - kernels[k]) == 0, f"variant kernel {k!r} differs from the derived expectation at D = {D}")
        checks.append(f"E[{k}'] equals the kernel at D = {D}")
    # plain SGD: r = p_e = 1 (v never enters), no averaging (rho = 1): the hard/mixed recursions
    from .recursions import Setting as PlainSetting
    from .recursions import one_step, to_step_variable

    st = PlainSetting(D, models=("g", "p", "h"))
    grads, e_new, _, _ = one_step(st, "mixed", 1)
    plain = to_step_variable(batch_expectation(e_new**2, grads, st), st)
    x = sp.Symbol("x")
    mine = derived["gg"].subs({r: 1, p_e: 1, h_e: x / Setting(D, models=MODELS).s(1)})
    require(sp.expand(mine - plain) == 0, "the variant step does not reduce to plain SGD's")
    checks.append(f"r = p_e = 1: E[e_g'^2] is plain SGD's mixed-label step at D = {D}")
    return checks


DOCUMENT_PATH = "derivations/variants.md"


def _generic_kernels() -> dict[str, sp.Expr]:
    """The kernels on generic one-mode symbols (``U`` and ``sum_U`` kept as symbols), in the
    coordinates ``(e, d)`` they use."""
    from ..solvers import variant_kernels as vk

    Mee, Med, Mdd, A, Ae, Ad, U, sU, e_pi, d_pi, a_pi, x_e, x_v, noise, inv_B = sp.symbols(
        "M_ee M_ed M_dd M_aa M_ae M_ad U sum_U E_epi E_dpi E_api x_e x_v noise inv_B")
    ee, ed, dd = vk.momentum_step(Mee, Med, Mdd, U, e_pi, d_pi, sU, p_e, p_v, x_e, x_v, inv_B, kappa, noise)
    aa, ae, ad = vk.average_step(A, Ae, Ad, a_pi, ee, ed, p_e, p_v, x_e, x_v, rho)
    return {"E[e'^2]": ee, "E[e'd']": ed, "E[d'^2]": dd, "E[a'^2]": aa, "E[a'e']": ae,
            "E[a'd']": ad}


def generate_document() -> str:
    """Markdown of ``derivations/variants.md`` (deterministic): the update, the per-mode steps
    and the checks, each made while generating."""
    from .common import document_header

    checks = check_variant_kernels(2) + check_variant_kernels(3)
    lines = document_header(
        "Moment steps of the SGD variants: averaging and momentum",
        "spectral_theory/symbolic/variants.py",
        "Specification: `docs/theory.md` §10; reference: `docs/variants.md`. The numeric steps are "
        "`spectral_theory/solvers/variant_kernels.py`, checked here symbol for symbol against the "
        "expectation of the literal update.")
    lines += [
        "",
        "## 1. The update",
        "",
        "Mode errors: iterate $e$, auxiliary $v$, averaged $a$, frozen parent $e_p$ and frozen $e_h$. "
        "One step, with the residual $\\pi = y - c\\,e_p$ at the gradient point $y = r e + (1 - r) v$ and "
        "the batch-mean gradient $G$ of the mode at $y$:",
        "",
        "$$e' = p_e e + (1 - p_e) v - x_e G, \\qquad v' = p_v e + (1 - p_v) v - x_v G, \\qquad "
        "a' = (1 - \\rho) a + \\rho e'.$$",
        "",
        "Given the state, $E[G] = \\pi$ and $E[G^2] = Q = U + \\frac{1}{B}\\big(\\text{noise} + \\sum_j U_j "
        "+ (\\kappa - 2) U\\big)$ with $U = E[\\pi^2]$ (so the only coupling of the modes is $\\sum_j U_j$).",
        "",
        "## 2. The per-mode steps (as the kernels compute them)",
        "",
        "The kernels work in the coordinates $(e, d)$, $d = e - v$ ($d = 0$ at the start), in which "
        "$\\pi = e - (1 - r)d - c\\,e_p$, $e' = e - (1 - p_e)d - x_e G$ and "
        "$d' = (p_e - p_v)d - (x_e - x_v)G$: a slow mode's step is then $E[e^2]$ plus small "
        "corrections, where in $(e, v)$ it is a sum of $O(1)$ terms that cancel. "
        "With $E_{e\\pi} = E[e\\pi]$, $E_{d\\pi} = E[d\\pi]$, $E_{a\\pi} = E[a\\pi]$:",
        "",
    ]
    names = {sp.Symbol("E_epi"): r"E_{e\pi}", sp.Symbol("E_dpi"): r"E_{d\pi}", sp.Symbol("E_api"): r"E_{a\pi}",
             sp.Symbol("inv_B"): r"\tfrac{1}{B}", sp.Symbol("sum_U"): r"\textstyle\sum_j U_j",
             sp.Symbol("noise"): r"\mathrm{noise}"}
    for name, expr in _generic_kernels().items():
        expr = sp.expand(sp.nsimplify(sp.expand(expr)))
        moments = [q for q in sorted(expr.free_symbols, key=sp.default_sort_key) if q.name.startswith(("M_", "E_"))]
        collected = sp.collect(expr, moments, sp.factor)
        lines += [f"- ${name}$:", "", f"  $$ {sp.latex(collected, symbol_names=names)} $$", ""]
    lines += ["## 3. Checks made while generating this file", ""]
    lines += [f"- {c}" for c in checks]
    lines += ["", "Every expectation is taken by `spectral_theory.symbolic.recursions.expectation` "
              "(latent third moment kept free; a surviving product of errors of two different modes "
              "raises), so the steps close mode by mode at every finite dimension checked.", ""]
    return "\n".join(lines)
