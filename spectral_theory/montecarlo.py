"""Monte Carlo SGD simulator (``docs/theory.md`` §9, ``docs/montecarlo.md``).

Simulates exactly what the recursion assumes: ``phi(0) = 0``; fresh i.i.d.
batches at every step of every model; latent ``z`` with independent
coordinates from the scenario's law; independent Gaussian label noise of
variance ``sigma2``; every replicate trains its own chain (its own teacher,
then its own student on that teacher). Replicates are vectorised and
processed in blocks; each block draws from its own stream spawned from
``SeedSequence(seed)``, so a run is reproducible from (scenario, reps, seed).

Uncertainty (``docs/montecarlo.md``, "Uncertainty"): at every reported step the mean, its
standard error (exactly 0 where every replicate has the same value, e.g. step 0) and a
studentized bootstrap interval over replicates (:func:`mean_interval`, level
:data:`CI_LEVEL`); a :class:`HeavyTailWarning` where the replicates are too skewed for the
normal interval at this replicate count (:func:`skewness_check`). The per-replicate values
are kept (:class:`Replicates`) for the bootstraps of derived quantities (transfer reports).
Overflow anywhere is an :class:`~spectral_theory.errors.InstabilityError`, never a
non-finite number in a result. :func:`estimate_simulation_seconds` predicts the run time.
"""

from __future__ import annotations

import math
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from .errors import SpecError
from .result import ModelResult, ModeProfile, Result
from .spec import Features, Scenario
from .stability import DEFAULT_ON_UNSTABLE, user_stacklevel

__all__ = ["run_monte_carlo", "sample_latent", "estimate_simulation_seconds", "mean_interval",
           "skewness_check", "bootstrap_means", "Replicates", "Progress", "HeavyTailWarning",
           "CI_LEVEL", "BOOTSTRAP_RESAMPLES", "MAX_REPLICATE_MODES", "NOTE_SECONDS", "announce"]

_BLOCK_ELEMENTS = 2_000_000  # latent draws per step and block (memory bound)

#: level of every bootstrap interval of a Monte Carlo result or report
CI_LEVEL = 0.95
#: bootstrap resamples (over replicates) behind every interval
BOOTSTRAP_RESAMPLES = 2000
#: per-replicate per-mode squared errors at the end of training (``reps * d * models`` floats,
#: 80 MB) are kept up to this many numbers; beyond it the bootstrap of horizons is not available
MAX_REPLICATE_MODES = 10_000_000
#: a simulation estimated to take longer than this many seconds is announced on standard error
NOTE_SECONDS = 5.0
#: bootstrap resampling weights: at most this many (resample, replicate) counts at once
_BOOT_ELEMENTS = 4_000_000
#: spawn key of the bootstrap stream (block streams use keys 0, 1, ..., far below it)
_BOOT_KEY = 2**31

#: calibrated cost model of :func:`estimate_simulation_seconds` (``docs/montecarlo.md``, "Cost"),
#: seconds: per latent coordinate drawn and used (``reps * d * batch`` per step), by law, ...
COST_PER_COORDINATE = {"gaussian": 2.05e-8, "rademacher": 1.35e-8, "uniform": 0.95e-8, "kurtosis": 1.45e-8}
#: ... per replicate and step ...
COST_PER_REPLICATE_STEP = 1.13e-7
#: ... per step and block of replicates (Python and numpy call overhead) ...
COST_PER_STEP = 3.8e-5
#: ... per bootstrap resample and replicate (drawing the resample) ...
COST_PER_RESAMPLE = 3.0e-8
#: ... and per resample, replicate and reported value
COST_PER_BOOTSTRAP = 5.0e-10


class HeavyTailWarning(RuntimeWarning):
    """The replicates of a Monte Carlo quantity are too skewed for the normal interval (mean
    +- z SE) at this replicate count (:func:`skewness_check`); the bootstrap interval is the
    one to read, and more replicates are needed for a trustworthy standard error."""


@dataclass
class Replicates:
    """Per-replicate values of one simulated model (the input of every bootstrap).

    ``excess_risk`` and ``disagreement`` (with the teacher): shape ``(len(steps), reps)``;
    ``final_sq_error``: ``(phi_i - theta_i)^2`` at the end of training, shape ``(reps, d)``, or
    ``None`` when ``reps * d * models`` exceeds :data:`MAX_REPLICATE_MODES` (then per-mode
    bootstraps, such as a horizon's interval, are not available). ``seed``: the run's seed
    (bootstrap streams are spawned from it)."""

    steps: np.ndarray
    excess_risk: np.ndarray
    disagreement: np.ndarray | None
    final_sq_error: np.ndarray | None
    seed: int


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


# ---------------------------------------------------------------------------- cost and progress
def _blocking(scenario: Scenario, reps: int) -> tuple[int, int]:
    """Replicates per block and number of blocks (``_BLOCK_ELEMENTS`` latent draws per step)."""
    d = scenario.problem.d
    max_batch = max(m.batch for m in scenario.models)
    block = max(1, min(reps, _BLOCK_ELEMENTS // max(1, max_batch * d)))
    return block, -(-reps // block)


def _step_costs(scenario: Scenario, reps: int) -> list[float]:
    """Estimated seconds of one step of each model, over all blocks."""
    d = scenario.problem.d
    c = COST_PER_COORDINATE.get(scenario.problem.features.kind, max(COST_PER_COORDINATE.values()))
    _, n_blocks = _blocking(scenario, reps)
    return [c * reps * d * m.batch + COST_PER_REPLICATE_STEP * reps + COST_PER_STEP * n_blocks
            for m in scenario.models]


def estimate_simulation_seconds(scenario: Scenario, reps: int, *, at: Sequence[int] | None = None) -> float:
    """Estimated wall time in seconds of ``simulate(scenario, reps=reps, at=at)`` on one core:
    ``sum_g T_g (c_law reps d B_g + c_rep reps + c_step blocks)`` (sampling and the two
    batched products per step) plus the bootstrap ``resamples reps (c_resample + c_value
    values)`` (``values``: the reported steps, twice for students). The constants
    (:data:`COST_PER_COORDINATE`, :data:`COST_PER_REPLICATE_STEP`, :data:`COST_PER_STEP`,
    :data:`COST_PER_RESAMPLE`, :data:`COST_PER_BOOTSTRAP`) were fitted on 36 runs
    (``docs/montecarlo.md``, "Cost"): within 30% of each on the development machine, idle or
    busy. Nothing is allocated: safe to call before deciding whether to run."""
    if not isinstance(scenario, Scenario):
        raise SpecError("scenario", scenario, "must be a Scenario object")
    if isinstance(reps, bool) or not isinstance(reps, (int, np.integer)) or reps < 1:
        raise SpecError("reps", reps, "must be a positive integer")
    from .api import resolve_at

    return _estimate(scenario, int(reps), resolve_at(scenario, at))


def _estimate(scenario: Scenario, reps: int, at: dict[str, np.ndarray]) -> float:
    sim = sum(m.steps * c for m, c in zip(scenario.models, _step_costs(scenario, reps), strict=True))
    values = sum(np.size(at[m.name]) * (2 if m.teacher is not None else 1) for m in scenario.models)
    return float(sim + BOOTSTRAP_RESAMPLES * reps * (COST_PER_RESAMPLE + COST_PER_BOOTSTRAP * values))


def _clock(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:4.1f}s"
    m, s = divmod(int(round(seconds)), 60)
    return f"{m}m{s:02d}s" if m < 60 else f"{m // 60}h{m % 60:02d}m"


def announce(seconds: float, what: str) -> None:
    """The note printed on standard error before a simulation estimated to take at least
    :data:`NOTE_SECONDS`."""
    if seconds >= NOTE_SECONDS:
        sys.stderr.write(f"spectral-theory: note: this simulation will take about {_clock(seconds).strip()} "
                         f"({what}; estimate of montecarlo.estimate_simulation_seconds)\n")
        sys.stderr.flush()


class Progress:
    """A progress bar with elapsed time and an ETA on standard error, shared by the simulations
    of one call (a transfer report's lineages). ``total``: the job's estimated seconds
    (:func:`estimate_simulation_seconds`); work is counted in the same unit, so the fraction
    done is that of the estimate and the ETA (``elapsed * remaining / done``) uses the
    measured speed. Redrawn at most every 0.2 s."""

    def __init__(self, total: float, enabled: bool, label: str = "simulate"):
        self.total = max(float(total), 1e-12)
        self.enabled = bool(enabled)
        self.label = label
        self.done = 0.0
        self.t0 = time.perf_counter()
        self._drawn = -math.inf
        self._width = 0

    def advance(self, work: float, what: str = "", *, force: bool = False) -> None:
        """Count ``work`` (estimated seconds) done and redraw (at most every 0.2 s unless
        ``force``) with ``what`` as the current phase."""
        if not self.enabled:
            return
        self.done += work
        now = time.perf_counter()
        if now - self._drawn < 0.2 and self.done < self.total and not force:
            return
        self._drawn = now
        frac = min(self.done / self.total, 1.0)
        el = now - self.t0
        eta = el * (1.0 - frac) / frac if frac > 0 else self.total
        pct = int(100 * frac)
        text = f"\r{self.label} [{'#' * (pct // 4):<25}] {pct:3d}% {what}  {_clock(el)} elapsed"
        text += f", about {_clock(eta)} left" if frac < 1.0 else ""
        pad = max(0, self._width - len(text))
        self._width = len(text)
        sys.stderr.write(text + " " * pad)
        sys.stderr.flush()

    def close(self) -> None:
        """The final line (100% and the time taken), then a newline."""
        if self.enabled and self._width:
            self.done = self.total
            self.advance(0.0, "done", force=True)
            sys.stderr.write("\n")
            sys.stderr.flush()
            self._width = 0


# ---------------------------------------------------------------------------- the bootstrap
def _counts(rng: np.random.Generator, reps: int, n: int) -> np.ndarray:
    """``n`` bootstrap resamples of ``reps`` replicates as multinomial counts, shape ``(n, reps)``."""
    idx = rng.integers(0, reps, size=(n, reps))
    idx += (np.arange(n, dtype=np.int64) * reps)[:, None]
    return np.bincount(idx.ravel(), minlength=n * reps).reshape(n, reps).astype(float)


def _boot_rng(seed: int | np.random.SeedSequence, stream: int) -> np.random.Generator:
    ss = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(
        int(seed), spawn_key=(_BOOT_KEY + stream,))
    return np.random.default_rng(ss)


def bootstrap_means(
    groups: Sequence[dict[str, np.ndarray]],
    statistic: Callable[[list[dict[str, np.ndarray]]], np.ndarray],
    *,
    seeds: Sequence[int | np.random.SeedSequence],
    resamples: int = BOOTSTRAP_RESAMPLES,
    stream: int = 0,
) -> np.ndarray:
    """Bootstrap distribution of a statistic of means over replicates.

    ``groups``: independent sets of replicates (the lineages of a transfer comparison), each a
    dict of arrays whose first axis is that group's replicates. Every resample draws each
    group's replicates with replacement from its own stream (``seeds[k]``: an int, spawned
    with key ``2**31 + stream``, or a SeedSequence), all arrays of a group with the same draw
    (so quantities of one replicate stay paired). ``statistic`` gets, per group, the dict of
    resampled means (each array with a leading resample axis ``n``) and returns an array with
    leading axis ``n``. Returns the statistic over ``resamples`` resamples. Resampled means
    are multinomial counts times the data (one matrix product per chunk of resamples)."""
    if len(groups) != len(seeds):
        raise ValueError("one seed per group")
    reps = [next(iter(g.values())).shape[0] for g in groups]
    width = max(sum(int(np.prod(a.shape[1:], dtype=np.int64)) for a in g.values()) for g in groups)
    chunk = max(1, min(resamples, _BOOT_ELEMENTS // max(max(reps), width, 1)))
    rngs = [_boot_rng(s, stream) for s in seeds]
    flat = [{k: np.ascontiguousarray(a.reshape(a.shape[0], -1)) for k, a in g.items()} for g in groups]
    out = []
    for start in range(0, resamples, chunk):
        n = min(chunk, resamples - start)
        means = []
        for g, R, rng, f in zip(groups, reps, rngs, flat, strict=True):
            w = _counts(rng, R, n) / R
            means.append({k: (w @ f[k]).reshape((n, *g[k].shape[1:])) for k in g})
        out.append(np.asarray(statistic(means)))
    return np.concatenate(out, axis=0)


def _deterministic(x: np.ndarray) -> np.ndarray:
    """Rows of ``x`` (replicates along the last axis) whose replicates are all equal."""
    return np.all(x == x[..., :1], axis=-1)


def mean_se(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, standard error (sd with ``R - 1`` over sqrt R) and the deterministic rows, along
    the last axis; computed on rows scaled by their largest magnitude (no spurious overflow);
    a deterministic row's mean is its value and its SE exactly 0."""
    x = np.asarray(x, dtype=float)
    R = x.shape[-1]
    det = _deterministic(x)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        scale = np.max(np.abs(x), axis=-1, keepdims=True)
        scale = np.where((scale > 0) & np.isfinite(scale), scale, 1.0)
        y = x / scale
        mean = y.mean(axis=-1) * scale[..., 0]
        se = y.std(axis=-1, ddof=1) * scale[..., 0] / math.sqrt(R)
    mean = np.where(det, x[..., 0], mean)
    se = np.where(det, 0.0, se)
    return mean, se, det


def mean_interval(
    x: np.ndarray,
    *,
    level: float = CI_LEVEL,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int | np.random.SeedSequence = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Studentized bootstrap (bootstrap-t) interval for the mean of each row of ``x``
    (replicates along the last axis), at ``level``.

    Each resample ``b`` gives ``t_b = (mean_b - mean) / se_b``; the interval is
    ``[mean - q_(1+level)/2(t) se, mean - q_(1-level)/2(t) se]``. Unlike the normal interval
    it is asymmetric where the replicates are skewed (a heavy right tail stretches the upper
    end), and it keeps its coverage better at small replicate counts (``docs/montecarlo.md``,
    "Uncertainty", has the measured coverage). A resample whose replicates are all equal
    (``se_b = 0``) uses ``se``. A row whose replicates are all equal gets ``[value, value]``.
    All rows share the resampled replicates (paired)."""
    x = np.asarray(x, dtype=float)
    one = x.ndim == 1
    x2 = np.atleast_2d(x)
    R = x2.shape[-1]
    if R < 2:
        raise SpecError("reps", R, "must be at least 2 for an interval")
    mean, se, det = mean_se(x2)
    lo, hi = mean.copy(), mean.copy()
    live = np.flatnonzero(~det)
    if live.size:
        xs = x2[live]
        with np.errstate(over="ignore", invalid="ignore"):
            scale = np.max(np.abs(xs), axis=-1, keepdims=True)
            u = (xs - mean[live, None]) / scale  # centred and scaled: resampled mean of u = mean_b - mean
            s = se[live] / scale[:, 0]

        def tstat(means: list[dict[str, np.ndarray]]) -> np.ndarray:
            m1, m2 = means[0]["u"], means[0]["u2"]
            sb = np.sqrt(np.maximum(m2 - m1 * m1, 0.0) * (R / (R - 1)) / R)
            sb = np.where(sb > 0, sb, s)
            return m1 / sb

        t = bootstrap_means([{"u": u.T, "u2": (u * u).T}], tstat, seeds=[seed], resamples=resamples)
        a = (1.0 - level) / 2.0
        q_lo, q_hi = np.quantile(t, [a, 1.0 - a], axis=0)
        with np.errstate(over="ignore", invalid="ignore"):  # beyond the float range: +-inf
            lo[live] = mean[live] - q_hi * se[live]
            hi[live] = mean[live] - q_lo * se[live]
    return (lo[0], hi[0]) if one else (lo, hi)


def _steps_text(steps: list[int], show: int = 6) -> str:
    head = ", ".join(map(str, steps[:show]))
    return head + (f", ... {steps[-1]}" if len(steps) > show else "")


#: Cochran's rule (Cochran 1977, *Sampling Techniques*, §2.15): the normal interval for a mean
#: needs ``R >= SKEW_RULE * G1^2`` replicates (G1: the skewness of the replicates)
SKEW_RULE = 25.0


def skewness_check(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sample skewness ``G1`` (adjusted Fisher-Pearson) of each row of ``x`` (replicates along
    the last axis) and the replicate count the normal interval needs by Cochran's rule
    ``R >= 25 G1^2`` (:data:`SKEW_RULE`; 0 where the row is deterministic). A row with
    ``R`` below it is too skewed for ``mean +- z SE`` at this replicate count: its coverage
    falls short (``docs/montecarlo.md``, "Uncertainty", has the measured shortfall)."""
    x = np.atleast_2d(np.asarray(x, dtype=float))
    R = x.shape[-1]
    det = _deterministic(x)
    g1 = np.zeros(x.shape[0])
    live = np.flatnonzero(~det)
    if live.size and R >= 3:
        xs = x[live]
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            u = (xs - xs.mean(axis=-1, keepdims=True)) / np.max(np.abs(xs), axis=-1, keepdims=True)
            m2 = (u * u).mean(axis=-1)
            m3 = (u * u * u).mean(axis=-1)
            g = m3 / m2**1.5 * math.sqrt(R * (R - 1)) / (R - 2)
        g1[live] = np.where(np.isfinite(g), g, 0.0)
    needed = np.where(det, 0.0, SKEW_RULE * g1 * g1)
    return g1, np.ceil(needed)


# ---------------------------------------------------------------------------- the simulator
def _variant_steps(model) -> tuple[np.ndarray, ...]:
    """Per-step ``(r, p_e, p_v, h_e, h_v, rho)`` of an averaged and/or momentum model
    (``spectral_theory.spec.variants``); ``rho[t]`` is the averaging weight of step ``t + 1``."""
    from .spec.variants import variant_phases

    runs = list(variant_phases(model))
    lens = [n for _, _, n in runs]
    cols = [np.repeat([c[j] for c, _, _ in runs], lens) for j in range(5)] if runs else \
        [np.zeros(0) for _ in range(5)]
    rho = model.average.mix(model.steps)[1:] if model.average is not None else np.ones(model.steps)
    return (*cols, rho)


def run_monte_carlo(
    scenario: Scenario,
    *,
    at: dict[str, np.ndarray],
    reps: int,
    seed: int,
    progress: bool | Progress | None = None,
    on_unstable: str = DEFAULT_ON_UNSTABLE,
) -> Result:
    """Simulate ``reps`` replicates (module docstring). ``progress``: ``True``/``False``, ``None``
    (a bar when standard error is a terminal and the run is estimated above 2 s) or a shared
    :class:`Progress`; unless it is ``False`` or a shared bar, a run estimated above
    :data:`NOTE_SECONDS` is announced on standard error first."""
    if isinstance(reps, bool) or not isinstance(reps, (int, np.integer)) or reps < 2:
        raise SpecError("reps", reps, "must be an integer >= 2 (standard errors need two replicates)")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise SpecError("seed", seed, "must be a non-negative integer")
    reps = int(reps)
    prob = scenario.problem
    lam = prob.eigenvalues
    d = lam.size
    theta = np.sqrt(prob.theta2)
    sigma = math.sqrt(prob.noise)
    models = scenario.models
    G = len(models)
    idx = {m.name: i for i, m in enumerate(models)}
    # a sketched model (docs/sketch.md) steps with P = A^T A, A = S Lambda^(1/2) its feature map
    fmaps = [m.features.matrix(d) * np.sqrt(lam)[None, :] if getattr(m, "features", None) is not None
             else None for m in models]
    fmaps = [f if f is None or f.shape[0] < d else f.T @ f for f in fmaps]
    speeds = [m.speed_profile(lam) if f is None else None for m, f in zip(models, fmaps, strict=True)]
    etas = [m.step_sizes() for m in models]
    from .solvers.base import guard_chain

    checked: dict = {}
    checks = guard_chain(scenario, on_unstable, checked)
    limits = [c.limit for c in checks]

    block, n_blocks = _blocking(scenario, reps)
    streams = np.random.SeedSequence(int(seed)).spawn(n_blocks)

    ck = [np.asarray(at[m.name], dtype=np.int64) for m in models]
    estimate = _estimate(scenario, reps, {m.name: c for m, c in zip(models, ck, strict=True)})
    step_cost = _step_costs(scenario, reps)
    if isinstance(progress, Progress):
        bar = progress
    else:
        if progress is not False:
            announce(estimate, f"{reps} replicates, d = {d}, {sum(m.steps for m in models)} steps "
                               f"over {G} model{'s' if G > 1 else ''}")
        if progress is None:
            progress = sys.stderr.isatty() and estimate > 2.0
        bar = Progress(estimate, bool(progress))
    risk = [np.empty((c.size, reps)) for c in ck]
    # SGD variants (docs/theory.md §10): per-step coefficients, averaging weights, last-iterate risk
    variant = [_variant_steps(m) if m.is_variant else None for m in models]
    last = [np.empty((c.size, reps)) if m.average is not None else None for m, c in zip(models, ck, strict=True)]
    dis = [np.empty((c.size, reps)) if m.teacher is not None else None for m, c in zip(models, ck, strict=True)]
    keep_modes = reps * d * G <= MAX_REPLICATE_MODES
    final_sq = [np.empty((reps, d)) for _ in models] if keep_modes else None
    # streaming per-mode moments when the replicates are not kept (Chan et al.'s pairwise update)
    f_n, f_mean, f_m2 = 0, [np.zeros(d) for _ in models], [np.zeros(d) for _ in models]
    f_min, f_max = [np.full(d, np.inf) for _ in models], [np.full(d, -np.inf) for _ in models]
    pair_dis = np.zeros((G, G, reps))
    t_start = time.perf_counter()

    def overflow(gi: int, t: int, why: str):
        T = models[gi].steps
        lr = float(etas[gi][min(max(t - 1, 0), T - 1)]) if T else 0.0
        return checks[gi].error(t, lr, why)

    def sq_norm(a: np.ndarray) -> np.ndarray:
        """Squared norm of each row; one value for all rows when the rows are identical (a
        deterministic quantity: every replicate gets the same number, bit for bit)."""
        if bool(np.all(a == a[:1])):  # (a one-replicate block too: the same number in every block)
            v = a[0]
            return np.full(a.shape[0], float(v @ v))
        return np.einsum("rd,rd->r", a, a)

    with np.errstate(over="ignore", invalid="ignore"):
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
                var = variant[gi]
                aux = np.zeros((R, d)) if var is not None else None  # momentum's auxiliary sequence
                avg = np.zeros((R, d)) if m.average is not None else None  # the running average
                dep = phi if avg is None else avg  # the predictor the model deploys
                k = 0
                T = m.steps
                chunk = max(1, T // 100)
                work = step_cost[gi] * R / reps
                for t in range(T + 1):
                    while k < ck[gi].size and ck[gi][k] == t:
                        risk[gi][k, cols] = sq_norm(dep - theta)
                        if avg is not None:
                            last[gi][k, cols] = sq_norm(phi - theta)
                        if parent is not None:
                            dis[gi][k, cols] = sq_norm(dep - parent)
                        k += 1
                    if t == T:
                        break
                    z = sample_latent(rng, prob.features, (R, B, d))
                    if var is not None:  # the gradient is taken at y = r phi + (1 - r) aux
                        r_t, pe_t, pv_t, he_t, hv_t, rho_t = (float(a[t]) for a in var)
                        v = r_t * phi + (1.0 - r_t) * aux + offset
                        resid = np.einsum("rbd,rd->rb", z, v)
                        if sigma > 0 and alpha != 0.0:
                            resid -= alpha * sigma * rng.standard_normal((R, B))
                        grad = np.einsum("rbd,rb->rd", z, resid)
                        phi, aux = (pe_t * phi + (1.0 - pe_t) * aux - (he_t / B) * s * grad,
                                    pv_t * phi + (1.0 - pv_t) * aux - (hv_t / B) * s * grad)
                        if avg is not None:
                            avg = (1.0 - rho_t) * avg + rho_t * phi
                        dep = phi if avg is None else avg
                        if (t + 1) % chunk == 0:
                            if not (np.all(np.isfinite(phi)) and np.all(np.isfinite(aux))):
                                raise overflow(gi, t + 1, "the simulated weights overflowed")
                            bar.advance(chunk * work, f"block {bi + 1}/{n_blocks} model {m.name!r}")
                        continue
                    v = phi + offset
                    resid = np.einsum("rbd,rd->rb", z, v)
                    if sigma > 0 and alpha != 0.0:
                        resid -= alpha * sigma * rng.standard_normal((R, B))
                    grad = np.einsum("rbd,rb->rd", z, resid)
                    if fmaps[gi] is not None:
                        # A (p x d), or P = A^T A (d x d) when that is smaller; small products by
                        # einsum (threaded BLAS is several times slower on them under load), large
                        # ones by BLAS (einsum's loops are ~10x slower there)
                        fm = fmaps[gi]
                        if grad.size * fm.shape[0] >= 10**7:
                            grad = grad @ fm if fm.shape[0] == fm.shape[1] else (grad @ fm.T) @ fm
                        elif fm.shape[0] == fm.shape[1]:
                            grad = np.einsum("rd,de->re", grad, fm)
                        else:
                            grad = np.einsum("rp,pd->rd", np.einsum("rd,pd->rp", grad, fm), fm)
                    else:
                        grad *= s
                    phi -= (eta[t] / B) * grad
                    if (t + 1) % chunk == 0:
                        if not np.all(np.isfinite(phi)):
                            raise overflow(gi, t + 1, "the simulated weights overflowed")
                        bar.advance(chunk * work, f"block {bi + 1}/{n_blocks} model {m.name!r}")
                bar.advance((T % chunk) * work, f"block {bi + 1}/{n_blocks} model {m.name!r}")
                if not (np.all(np.isfinite(phi)) and np.all(np.isfinite(dep))):
                    raise overflow(gi, T, "the simulated weights overflowed")
                bad = ~np.all(np.isfinite(risk[gi][:, cols]), axis=1)
                if dis[gi] is not None:
                    bad |= ~np.all(np.isfinite(dis[gi][:, cols]), axis=1)
                if bad.any():
                    raise overflow(gi, int(ck[gi][int(np.argmax(bad))]),
                                   "the simulated risk overflowed to a non-finite value")
                if last[gi] is not None:
                    bad |= ~np.all(np.isfinite(last[gi][:, cols]), axis=1)
                    if bad.any():
                        raise overflow(gi, int(ck[gi][int(np.argmax(bad))]),
                                       "the simulated risk overflowed to a non-finite value")
                e2 = (dep - theta) ** 2
                if not np.all(np.isfinite(e2)):
                    raise overflow(gi, T, "the simulated per-mode errors overflowed")
                if final_sq is not None:
                    final_sq[gi][cols] = e2
                else:
                    bm = e2.mean(axis=0)
                    bm2 = ((e2 - bm) ** 2).sum(axis=0)
                    n_new = f_n + R
                    delta = bm - f_mean[gi]
                    f_m2[gi] = f_m2[gi] + bm2 + delta * delta * (f_n * R / n_new)
                    f_mean[gi] = f_mean[gi] + delta * (R / n_new)
                    np.minimum(f_min[gi], e2.min(axis=0), out=f_min[gi])
                    np.maximum(f_max[gi], e2.max(axis=0), out=f_max[gi])
                phis.append(dep)
            f_n += R
            for g in range(G):
                for h in range(g + 1, G):
                    pair_dis[g, h, cols] = pair_dis[h, g, cols] = sq_norm(phis[g] - phis[h])
    seconds = time.perf_counter() - t_start
    bar.advance(0.0, "bootstrap intervals", force=True)

    # ------------------------------------------------------------ statistics over replicates
    # every reported quantity of every model as rows of one (rows, reps) array: one bootstrap
    # for all (the rows of a replicate stay paired)
    where: dict[tuple[int, str], slice] = {}
    rows: list[np.ndarray] = []
    off = 0
    for gi in range(G):
        for qty, arr in (("excess_risk", risk[gi]), ("disagreement", dis[gi]), ("last_iterate", last[gi])):
            if arr is not None:
                where[(gi, qty)] = slice(off, off + arr.shape[0])
                rows.append(arr)
                off += arr.shape[0]
    allx = np.concatenate(rows, axis=0)
    mean, se, _ = mean_se(allx)
    lo, hi = mean_interval(allx, seed=int(seed)) if off else (mean, mean)
    lo = np.maximum(lo, 0.0)  # a risk or a disagreement is >= 0, and so is its mean
    g1, needed = skewness_check(allx) if off else (mean, mean)

    warn_msgs = checked.setdefault("warnings", [])
    heavy: dict[str, dict] = {}
    heavy_msgs: list[str] = []
    results: dict[str, ModelResult] = {}
    for gi, m in enumerate(models):
        for qty in ("excess_risk", "disagreement", "last_iterate"):
            sl = where.get((gi, qty))
            if sl is None:
                continue
            for arr in (mean[sl], se[sl], lo[sl], hi[sl]):
                bad = ~np.isfinite(arr)
                if bad.any():
                    raise overflow(gi, int(ck[gi][int(np.argmax(bad))]),
                                   f"the simulated {qty.replace('_', ' ')} overflowed (its mean, "
                                   "standard error or interval is not finite)")
            flag = reps < needed[sl]
            if flag.any():
                steps = [int(t) for t in ck[gi][flag]]
                w = int(np.argmax(np.where(flag, needed[sl], -1.0)))
                worst = int(needed[sl][w])
                label = {"excess_risk": "excess risk", "disagreement": "disagreement with the teacher",
                         "last_iterate": "last iterate's excess risk"}[qty]
                ci_name = "last_iterate.excess_risk" if qty == "last_iterate" else qty
                heavy.setdefault(m.name, {})[qty] = {
                    "steps": steps, "skewness": [float(v) for v in g1[sl][flag]], "reps_needed": worst}
                where_text = (f"step {steps[0]}" if len(steps) == 1 else
                              f"{len(steps)} of {int(ck[gi].size)} reported steps ({_steps_text(steps)})")
                heavy_msgs.append(
                    f"model {m.name!r}: the per-replicate {label} is heavy-tailed: at {reps} replicates "
                    f"the normal interval (mean +- z s.e.) is unreliable at {where_text} (sample skewness "
                    f"up to {float(g1[sl][w]):.3g} at step {int(ck[gi][w])}; Cochran's rule R >= 25 "
                    f"skewness^2 asks for {worst} replicates), and at its other steps the tail may just "
                    f"not have been sampled; read the bootstrap intervals ({ci_name}_ci_low/high), or use "
                    "more replicates")
        if final_sq is not None:
            sm, sse, _ = mean_se(final_sq[gi].T)
        else:
            sm = f_mean[gi].copy()
            with np.errstate(over="ignore", invalid="ignore"):
                sse = np.sqrt(np.maximum(f_m2[gi], 0.0) / (reps - 1) / reps)
            det = f_min[gi] == f_max[gi]
            sm[det], sse[det] = f_min[gi][det], 0.0
        if not (np.all(np.isfinite(sm)) and np.all(np.isfinite(sse))):
            raise overflow(gi, m.steps, "the simulated per-mode errors overflowed")
        rs, ds = where[(gi, "excess_risk")], where.get((gi, "disagreement"))
        results[m.name] = ModelResult(
            name=m.name, steps=ck[gi], excess_risk=mean[rs], excess_risk_se=se[rs],
            excess_risk_ci_low=lo[rs], excess_risk_ci_high=hi[rs],
            teacher=m.teacher,
            disagreement=None if ds is None else mean[ds], disagreement_se=None if ds is None else se[ds],
            disagreement_ci_low=None if ds is None else lo[ds],
            disagreement_ci_high=None if ds is None else hi[ds],
            modes=ModeProfile(second_moment=sm, second_moment_se=sse, theta2=np.array(prob.theta2)),
            stability_limit=limits[gi], max_lr=float(etas[gi].max()) if m.steps else 0.0,
            replicates=Replicates(steps=ck[gi], excess_risk=risk[gi], disagreement=dis[gi],
                                  final_sq_error=None if final_sq is None else final_sq[gi], seed=int(seed)),
        )
        if last[gi] is not None:  # an averaged model's last iterate, in the same bootstrap as the rest
            ls = where[(gi, "last_iterate")]
            results[m.name].last_iterate = {"excess_risk": mean[ls], "excess_risk_se": se[ls],
                                            "excess_risk_ci_low": lo[ls], "excess_risk_ci_high": hi[ls]}
    if not isinstance(progress, Progress):
        bar.close()
    warn_msgs.extend(heavy_msgs)
    for msg in heavy_msgs:
        warnings.warn(msg, HeavyTailWarning, stacklevel=user_stacklevel())
    names = [m.name for m in models]
    pmean, _, _ = mean_se(pair_dis)
    if not np.all(np.isfinite(pmean)):
        raise overflow(G - 1, models[-1].steps, "the simulated pairwise disagreement overflowed")
    disagreement = {names[g]: {names[h]: float(pmean[g, h]) for h in range(G)} for g in range(G)}
    work = reps * d * sum(m.steps * m.batch for m in models)
    diagnostics = {"seconds": seconds, "estimated_seconds": estimate, "sample_coordinates": work,
                   "blocks": n_blocks, "block_size": block, "noise_law": "gaussian",
                   "interval": {"level": CI_LEVEL, "method": "studentized bootstrap (bootstrap-t) over replicates",
                                "resamples": BOOTSTRAP_RESAMPLES},
                   "replicate_modes_kept": bool(final_sq is not None), **checked}
    if heavy:
        diagnostics["heavy_tail"] = heavy
    return Result(
        method="monte_carlo", models=results, scenario=scenario, disagreement=disagreement,
        reps=reps, seed=int(seed), ci_level=CI_LEVEL, diagnostics=diagnostics,
    )
