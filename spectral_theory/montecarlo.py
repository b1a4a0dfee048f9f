"""Monte Carlo SGD simulator (``docs/theory.md`` §9).

Simulates exactly what the recursion assumes: ``phi(0) = 0``; fresh i.i.d.
batches at every step of every model; latent ``z`` with independent
coordinates from the scenario's law; independent Gaussian label noise of
variance ``sigma2``; every replicate trains its own chain (its own teacher,
then its own student on that teacher). Replicates are vectorised and
processed in blocks; each block draws from its own stream spawned from
``SeedSequence(seed)``, so a run is reproducible from (scenario, reps, seed).
"""

from __future__ import annotations

import math
import sys
import time

import numpy as np

from .errors import SpecError
from .result import ModelResult, ModeProfile, Result
from .spec import Features, Scenario
from .stability import DEFAULT_ON_UNSTABLE

__all__ = ["run_monte_carlo", "sample_latent"]

_BLOCK_ELEMENTS = 2_000_000  # latent draws per step and block (memory bound)


def sample_latent(rng: np.random.Generator, features: Features, shape: tuple[int, ...]) -> np.ndarray:
    """Independent latent coordinates with mean 0, variance 1 and the law's kurtosis."""
    kind = features.kind
    if kind == "gaussian":
        return rng.standard_normal(shape)
    if kind == "rademacher":
        return np.where(rng.random(shape) < 0.5, -1.0, 1.0)
    if kind == "uniform":
        r = math.sqrt(3.0)
        return rng.uniform(-r, r, shape)
    # symmetric three-point law: P(+-sqrt(k)) = 1/(2k), P(0) = 1 - 1/k
    k = features.kappa
    u = rng.random(shape)
    p = 1.0 / k
    return np.where(u < p / 2, -math.sqrt(k), np.where(u < p, math.sqrt(k), 0.0))


class _Progress:
    def __init__(self, total: int, enabled: bool):
        self.total = max(total, 1)
        self.enabled = enabled
        self.done = 0
        self.last = -1
        self.t0 = time.perf_counter()

    def advance(self, n: int, label: str) -> None:
        if not self.enabled:
            return
        self.done += n
        pct = int(100 * self.done / self.total)
        if pct != self.last:
            self.last = pct
            el = time.perf_counter() - self.t0
            eta = el * (self.total - self.done) / self.done if self.done else 0.0
            bar = "#" * (pct // 4)
            sys.stderr.write(f"\rsimulate [{bar:<25}] {pct:3d}% {label}  {el:6.1f}s, ~{eta:6.1f}s left")
            sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")
            sys.stderr.flush()


def run_monte_carlo(
    scenario: Scenario,
    *,
    at: dict[str, np.ndarray],
    reps: int,
    seed: int,
    progress: bool | None = None,
    on_unstable: str = DEFAULT_ON_UNSTABLE,
) -> Result:
    if isinstance(reps, bool) or not isinstance(reps, (int, np.integer)) or reps < 2:
        raise SpecError("reps", reps, "must be an integer >= 2 (standard errors need two replicates)")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise SpecError("seed", seed, "must be a non-negative integer")
    prob = scenario.problem
    lam = prob.eigenvalues
    d = lam.size
    theta = np.sqrt(prob.theta2)
    sigma = math.sqrt(prob.noise)
    models = scenario.models
    G = len(models)
    idx = {m.name: i for i, m in enumerate(models)}
    speeds = [m.speed_profile(lam) for m in models]
    etas = [m.step_sizes() for m in models]
    from .solvers.base import guard_chain

    checked: dict = {}
    checks = guard_chain(scenario, on_unstable, checked)
    limits = [c.limit for c in checks]

    max_batch = max(m.batch for m in models)
    block = max(1, min(reps, _BLOCK_ELEMENTS // max(1, max_batch * d)))
    n_blocks = -(-reps // block)
    streams = np.random.SeedSequence(int(seed)).spawn(n_blocks)

    ck = [np.asarray(at[m.name], dtype=np.int64) for m in models]
    risk = [np.empty((c.size, reps)) for c in ck]
    dis = [np.empty((c.size, reps)) if m.teacher is not None else None for m, c in zip(models, ck, strict=True)]
    final_sq_sum = [np.zeros(d) for _ in models]
    final_sq_sq = [np.zeros(d) for _ in models]
    pair_dis = np.zeros((G, G, reps))
    total_work = sum(m.steps for m in models) * n_blocks
    if progress is None:
        progress = sys.stderr.isatty() and reps * d * sum(m.steps * m.batch for m in models) > 5e8
    bar = _Progress(total_work, bool(progress))
    t_start = time.perf_counter()

    for bi in range(n_blocks):
        rng = np.random.default_rng(streams[bi])
        r0 = bi * block
        R = min(block, reps - r0)
        cols = slice(r0, r0 + R)
        phis: list[np.ndarray] = []
        for gi, m in enumerate(models):
            s = speeds[gi]
            eta = etas[gi]
            B = m.batch
            alpha = float(m.alpha)
            c = 1.0 - alpha
            parent = phis[idx[m.teacher]] if m.teacher is not None else None
            # label residual direction: z.(phi_g - c phi_p - alpha theta) - alpha eps
            offset = -alpha * theta if parent is None else -c * parent - alpha * theta
            phi = np.zeros((R, d))
            k = 0
            T = m.steps
            chunk = max(1, T // 100)
            for t in range(T + 1):
                while k < ck[gi].size and ck[gi][k] == t:
                    e = phi - theta
                    risk[gi][k, cols] = np.einsum("rd,rd->r", e, e)
                    if parent is not None:
                        diff = phi - parent
                        dis[gi][k, cols] = np.einsum("rd,rd->r", diff, diff)
                    k += 1
                if t == T:
                    break
                z = sample_latent(rng, prob.features, (R, B, d))
                v = phi + offset
                resid = np.einsum("rbd,rd->rb", z, v)
                if sigma > 0 and alpha != 0.0:
                    resid -= alpha * sigma * rng.standard_normal((R, B))
                grad = np.einsum("rbd,rb->rd", z, resid)
                phi -= (eta[t] / B) * s * grad
                if (t + 1) % chunk == 0:
                    if not np.all(np.isfinite(phi)):
                        raise checks[gi].error(t, float(eta[t]), "the simulated weights overflowed")
                    bar.advance(chunk, f"block {bi + 1}/{n_blocks} model {m.name!r}")
            bar.advance(T % chunk, "")
            if not np.all(np.isfinite(phi)):
                raise checks[gi].error(T, float(eta[-1]) if T else 0.0, "the simulated weights overflowed")
            bad = ~np.all(np.isfinite(risk[gi][:, cols]), axis=1)
            if bad.any():
                j = int(np.argmax(bad))
                raise checks[gi].error(int(ck[gi][j]), float(eta[max(int(ck[gi][j]) - 1, 0)]) if T else 0.0,
                                       "the simulated risk overflowed to a non-finite value")
            e2 = (phi - theta) ** 2
            final_sq_sum[gi] += e2.sum(axis=0)
            final_sq_sq[gi] += (e2 * e2).sum(axis=0)
            phis.append(phi)
        for g in range(G):
            for h in range(g + 1, G):
                diff = phis[g] - phis[h]
                pair_dis[g, h, cols] = pair_dis[h, g, cols] = np.einsum("rd,rd->r", diff, diff)
    bar.close()

    def mean_se(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return x.mean(axis=-1), x.std(axis=-1, ddof=1) / math.sqrt(reps)

    results: dict[str, ModelResult] = {}
    for gi, m in enumerate(models):
        mean, se = mean_se(risk[gi])
        dmean, dse = mean_se(dis[gi]) if dis[gi] is not None else (None, None)
        sm = final_sq_sum[gi] / reps
        var = np.maximum(final_sq_sq[gi] / reps - sm * sm, 0.0) * reps / (reps - 1)
        results[m.name] = ModelResult(
            name=m.name, steps=ck[gi], excess_risk=mean, excess_risk_se=se,
            teacher=m.teacher, disagreement=dmean, disagreement_se=dse,
            modes=ModeProfile(second_moment=sm, second_moment_se=np.sqrt(var / reps),
                              theta2=np.array(prob.theta2)),
            stability_limit=limits[gi], max_lr=float(etas[gi].max()) if m.steps else 0.0,
        )
    names = [m.name for m in models]
    disagreement = {names[g]: {names[h]: float(pair_dis[g, h].mean()) for h in range(G)} for g in range(G)}
    elapsed = time.perf_counter() - t_start
    work = reps * d * sum(m.steps * m.batch for m in models)
    return Result(
        method="monte_carlo", models=results, scenario=scenario, disagreement=disagreement,
        reps=int(reps), seed=int(seed),
        diagnostics={"seconds": elapsed, "sample_coordinates": work, "blocks": n_blocks,
                     "block_size": block, "noise_law": "gaussian", **checked},
    )
