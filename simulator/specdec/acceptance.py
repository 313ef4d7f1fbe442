"""Acceptance models of speculative decoding: how many tokens one verify step emits.

Conventions (chain drafts, as in vLLM):
- k is the number of draft tokens proposed per verify step; one verify step emits between 1 and
  k + 1 tokens (the accepted draft tokens plus the bonus/corrected token of the target model).
- Position i = 1..k is the i-th draft token. The *conditional* rate c_i = P(draft token i accepted |
  tokens 1..i-1 accepted); the *unconditional* rate u_i = P(at least i draft tokens accepted)
  = c_1 * ... * c_i. vLLM reports u_i (its 0-based position i-1: drafts with more than i-1 accepted,
  divided by drafts); a profile stores c_i.
- Expected acceptance length tau(k) = 1 + sum_{i<=k} prod_{j<=i} c_j = 1 + sum_{i<=k} u_i (tokens per
  verify step, bonus token included); tau(0) = 1. For i.i.d. acceptance alpha:
  tau(alpha, k) = (1 - alpha^(k+1)) / (1 - alpha).

Three models:
- `ChainAcceptance`: per-position conditional rates (i.i.d. is the constant-rate case), with a stated
  extrapolation beyond the measured k; vectorised, seeded sampling of accepted counts.
- `ReplayTraces`: empirical replay of per-token `acc_len` traces (exact replay tau, and a sampler that
  draws accepted counts by replaying real traces).
- `AcceptanceProfile`: the YAML profile (rates, the k they were measured at, drafts behind them,
  source, extrapolation, drift over RL steps, online draft training).
"""
from __future__ import annotations

from typing import Annotated, Iterable, Literal, Sequence

import numpy as np
from pydantic import Field, model_validator

from simulator.errors import RlsimError
from simulator.yamlio import YamlModel

METHODS = ("eagle3", "eagle", "ngram", "mtp", "draft_model", "medusa", "tree", "suffix", "unknown")

Rate = Annotated[float, Field(ge=0.0, le=1.0)]

# ---------------------------------------------------------------------------------------------
# conversions (pure functions)
# ---------------------------------------------------------------------------------------------

MAX_EXTRAPOLATED_RATE = 0.99  # cap on an extrapolated conditional rate (keeps tau(k) bounded)
_MONOTONE_TOL = 5e-3  # reported rates are rounded (logs print 3 decimals); allow this much increase


def check_k(k, field: str = "k") -> int:
    """An integer k >= 0 (draft tokens per verify step), or an RlsimError naming `field`."""
    try:
        kk = int(k)
    except (TypeError, ValueError):
        raise RlsimError(f"must be an integer (got {k!r})", field) from None
    if kk != k or kk < 0:
        raise RlsimError(f"must be an integer >= 0 (got {k!r})", field)
    return kk


def check_rates(rates, field: str = "rates") -> np.ndarray:
    """A 1-D float array of finite rates in [0, 1], or an RlsimError naming `field`."""
    r = np.asarray(rates, dtype=float).ravel()
    for i, x in enumerate(r):
        if not np.isfinite(x) or x < 0.0 or x > 1.0:
            raise RlsimError(f"rate at position {i} is {x!r}, outside [0, 1]", field)
    return r


def conditional_from_unconditional(unconditional, field: str = "per-position rates") -> np.ndarray:
    """Conditional rates c_i = u_i / u_{i-1} (u_0 = 1) from vLLM's unconditional per-position rates.

    u_i must be in [0, 1] and non-increasing (up to rounding of `_MONOTONE_TOL`; a small increase
    gives c_i = 1). Where u_{i-1} = 0 no draft reached position i; c_i is then 0.
    """
    u = check_rates(unconditional, field)
    prev = np.concatenate(([1.0], u[:-1]))
    bad = np.nonzero(u > prev + _MONOTONE_TOL)[0]
    if bad.size:
        i = int(bad[0])
        raise RlsimError(f"unconditional per-position rates must not increase with position "
                         f"(position {i}: {u[i]:.4g} > {prev[i]:.4g})", field)
    with np.errstate(divide="ignore", invalid="ignore"):
        c = np.where(prev > 0, u / np.where(prev > 0, prev, 1.0), 0.0)
    return np.clip(c, 0.0, 1.0)


def unconditional_from_conditional(conditional) -> np.ndarray:
    """Unconditional rates u_i = c_1 * ... * c_i."""
    return np.cumprod(np.asarray(conditional, dtype=float))


def tau_from_conditional(conditional, k: int | None = None) -> float:
    """Expected acceptance length 1 + sum_{i<=k} prod_{j<=i} c_j (k defaults to len(conditional))."""
    c = np.asarray(conditional, dtype=float)
    k = len(c) if k is None else check_k(k)
    if k > len(c):
        raise RlsimError(f"k={k} is beyond the {len(c)} rates given", "k")
    return float(1.0 + unconditional_from_conditional(c[:k]).sum())


def tau_iid(alpha: float, k: int) -> float:
    """tau(alpha, k) = (1 - alpha^(k+1)) / (1 - alpha) = 1 + alpha + ... + alpha^k (tokens/step)."""
    k = check_k(k)
    a = float(alpha)
    if not 0.0 <= a <= 1.0:
        raise RlsimError(f"must be in [0, 1] (got {alpha!r})", "alpha")
    if a == 1.0:
        return float(k + 1)
    return float((1.0 - a ** (k + 1)) / (1.0 - a))


def alpha_from_tau(tau: float, k: int, field: str = "acceptance_length") -> float:
    """The i.i.d. per-token acceptance alpha whose tau(alpha, k) equals a bare mean acceptance length.

    Solved with scipy's brentq; tau must lie in [1, k + 1] (tau = 1 gives 0, tau = k + 1 gives 1).
    """
    k = check_k(k)
    t = float(tau)
    if not np.isfinite(t) or t < 1.0 - 1e-12 or t > k + 1 + 1e-12:
        raise RlsimError(f"mean acceptance length {tau!r} is outside [1, k+1] = [1, {k + 1}]", field)
    if k == 0 or t <= 1.0:
        return 0.0
    if t >= k + 1:
        return 1.0
    from scipy.optimize import brentq  # imported here: scipy.optimize costs ~0.4 s of start-up on every run

    return float(brentq(lambda a: tau_iid(a, k) - t, 0.0, 1.0, xtol=1e-14, rtol=1e-14))


def concave_fit(taus) -> np.ndarray:
    """Unconditional rates u_1..u_K (non-increasing, >= 0) whose chain-model curve 1 + sum_{i<=k} u_i
    is closest to measured tau(k), k = 1..K, in relative least squares (scipy nnls on u_i =
    sum_{j>=i} d_j, d >= 0). Where the measured curve is concave the fit is exact: u_i = tau(i) - tau(i-1).
    """
    t = np.asarray(taus, dtype=float)
    K = t.size
    j = np.arange(1, K + 1)
    A = np.minimum.outer(j, j).astype(float)  # tau(k) - 1 = sum_j d_j * min(j, k)
    w = 1.0 / t
    from scipy.optimize import nnls

    d, _ = nnls(A * w[:, None], (t - 1.0) * w)
    return np.clip(np.cumsum(d[::-1])[::-1], 0.0, 1.0)


# ---------------------------------------------------------------------------------------------
# the profile (YAML)
# ---------------------------------------------------------------------------------------------


class Source(YamlModel):
    """Where the numbers of a profile come from."""

    format: str = Field(description="importer format (specdecode-bench, vllm-metrics, ...) or 'published'")
    files: list[str] = Field(default_factory=list)
    sha256: list[str] | None = None
    detail: str | None = Field(None, description="how the numbers were derived, in words")


class MeasuredTau(YamlModel):
    """A mean acceptance length measured (not modelled) at one k."""

    k: int = Field(ge=0)
    tau: float = Field(ge=1.0)


class Extrapolation(YamlModel):
    """Conditional rates beyond the measured k.

    model 'geometric': c_{K+j} = rate * decay^j for j >= 1 (K = k_measured); decay = 1 holds the rate
    constant (i.i.d. tail). model 'none': asking for k > K is an error.
    """

    model: Literal["geometric", "none"] = "geometric"
    rate: Rate | None = None
    decay: float = Field(1.0, ge=0.0, le=1.0)
    source: str | None = None

    @model_validator(mode="after")
    def _rate_needed(self):
        if self.model == "geometric" and self.rate is None:
            raise ValueError("extrapolation model 'geometric' needs a rate")
        return self


class Drift(YamlModel):
    """Acceptance decay over RL training: each RL step multiplies every conditional rate by
    (1 - decay_per_step) as the policy moves away from the draft's training data."""

    decay_per_step: float = Field(0.0, ge=0.0, lt=1.0)
    source: str = "default: no drift"


class OnlineTraining(YamlModel):
    """Online draft training during RL: holds the conditional rates at `held_fraction` of the fitted
    level (drift stops there), at `cost_s_per_step` seconds of draft training added to every RL step's policy
    training (unless the scenario prices the draft's training itself: training.draft.enabled)."""

    enabled: bool = False
    held_fraction: float = Field(1.0, ge=0.0, le=1.0)
    cost_s_per_step: float = Field(0.0, ge=0.0)
    source: str = "default: no online draft training"


class AcceptanceProfile(YamlModel):
    """Acceptance of one draft method on one workload: conditional rates per position 1..k_measured."""

    name: str | None = None
    method: str = "unknown"
    k_measured: int = Field(ge=1)
    conditional_rates: list[Rate]
    num_drafts: float | None = Field(None, ge=0.0)
    num_drafts_per_position: list[Annotated[float, Field(ge=0.0)]] | None = None
    measured_tau: list[MeasuredTau] | None = None
    source: Source
    extrapolation: Extrapolation
    drift: Drift = Field(default_factory=Drift)
    online_training: OnlineTraining = Field(default_factory=OnlineTraining)

    @model_validator(mode="after")
    def _consistent(self):
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)} (got {self.method!r})")
        if len(self.conditional_rates) != self.k_measured:
            raise ValueError(f"conditional_rates has {len(self.conditional_rates)} entries but "
                             f"k_measured is {self.k_measured}")
        if self.num_drafts_per_position is not None and len(self.num_drafts_per_position) != self.k_measured:
            raise ValueError("num_drafts_per_position needs one entry per position (k_measured)")
        return self

    def model(self, rl_step: int = 0) -> "ChainAcceptance":
        """The sampling/tau model of this profile at RL step `rl_step` (drift applied)."""
        return ChainAcceptance.from_profile(self, rl_step=rl_step)


def drift_factor(profile: AcceptanceProfile, step: int) -> float:
    """Multiplier on every conditional rate after `step` RL steps (drift, held by online training)."""
    step = check_k(step, "rl_step")
    f = (1.0 - profile.drift.decay_per_step) ** step
    if profile.online_training.enabled:
        f = max(f, profile.online_training.held_fraction)
    return float(f)


def rates_at_step(profile: AcceptanceProfile, step: int) -> np.ndarray:
    """Conditional rates (positions 1..k_measured) at RL step `step` (step 0 = as fitted)."""
    return np.asarray(profile.conditional_rates, dtype=float) * drift_factor(profile, step)


def profile_at_step(profile: AcceptanceProfile, step: int) -> AcceptanceProfile:
    """A copy of `profile` whose rates (and extrapolation rate) are those of RL step `step`."""
    f = drift_factor(profile, step)
    if f == 1.0:
        return profile
    ex = profile.extrapolation
    new_ex = ex.model_copy(update={"rate": None if ex.rate is None else ex.rate * f})
    return profile.model_copy(update={
        "conditional_rates": [float(x) for x in rates_at_step(profile, step)],
        "extrapolation": new_ex,
        "measured_tau": None,  # measurements describe step 0
    })


def fit_extrapolation(conditional, reach=None) -> Extrapolation:
    """Fit the 'geometric' extrapolation to measured conditional rates.

    Weighted least squares of log c_i on i over positions with c_i > 0, weight = reach_i (the
    fraction of drafts that reached position i, i.e. u_{i-1}); decay = exp(slope) clipped to <= 1;
    rate = the fitted c at K, capped at the largest measured c_i and at MAX_EXTRAPOLATED_RATE (so that
    tau stays bounded as k grows when rates rise with position, as for n-gram drafts). One usable
    position: the last rate, held constant.
    """
    c = check_rates(conditional, "conditional_rates")
    K = len(c)
    if K == 0:
        raise RlsimError("no rates to extrapolate from", "conditional_rates")
    w = np.concatenate(([1.0], unconditional_from_conditional(c)[:-1])) if reach is None else np.asarray(reach, float)
    i = np.arange(1, K + 1, dtype=float)
    m = (c > 0) & (w > 0)
    how = "geometric continuation of the conditional rates beyond k_measured"
    if m.sum() < 2:
        return Extrapolation(model="geometric", rate=float(c[-1]), decay=1.0,
                             source=f"{how}: fewer than 2 positive rates, held constant at c_K")
    slope, icept = np.polyfit(i[m], np.log(c[m]), 1, w=np.sqrt(w[m]))
    decay = float(min(1.0, np.exp(slope)))
    rate = float(min(np.exp(icept + slope * K), c.max(), MAX_EXTRAPOLATED_RATE))
    return Extrapolation(model="geometric", rate=round(rate, 6), decay=round(decay, 6),
                         source=f"{how}: weighted log-linear fit over positions 1..{K} "
                                f"(weights = fraction of drafts reaching each position)")


def profile_from_conditional(conditional, *, method: str, source: Source, name: str | None = None,
                             num_drafts: float | None = None, num_drafts_per_position=None,
                             measured_tau: Iterable[tuple[int, float]] | None = None,
                             extrapolation: Extrapolation | None = None) -> AcceptanceProfile:
    """A profile from conditional rates (extrapolation fitted unless given)."""
    c = check_rates(conditional, "conditional_rates")
    if c.size == 0:
        raise RlsimError("no per-position rates", "conditional_rates")
    data = {
        "name": name, "method": method, "k_measured": int(c.size),
        "conditional_rates": [round(float(x), 6) for x in c],
        "num_drafts": None if num_drafts is None else float(num_drafts),
        "num_drafts_per_position": None if num_drafts_per_position is None
        else [float(x) for x in num_drafts_per_position],
        "measured_tau": None if measured_tau is None
        else [{"k": int(k), "tau": round(float(t), 6)} for k, t in measured_tau],
        "source": source.to_dict(),
        "extrapolation": (extrapolation or fit_extrapolation(c)).to_dict(),
    }
    return AcceptanceProfile.from_dict({k: v for k, v in data.items() if v is not None}, source=name)


def profile_from_unconditional(unconditional, **kw) -> AcceptanceProfile:
    """A profile from vLLM-style unconditional per-position rates u_i (see `profile_from_conditional`)."""
    return profile_from_conditional(conditional_from_unconditional(unconditional), **kw)


def profile_from_mean_length(tau: float, k: int, *, method: str, source: Source, name: str | None = None,
                             num_drafts: float | None = None) -> AcceptanceProfile:
    """An i.i.d. profile from a bare mean acceptance length `tau` measured at `k` (k >= 1).

    alpha solves tau(alpha, k) = tau; every conditional rate, and the extrapolation, is alpha.
    """
    k = check_k(k, "k")
    if k < 1:
        raise RlsimError("a mean acceptance length needs k >= 1 to convert", "k")
    a = alpha_from_tau(tau, k)
    ex = Extrapolation(model="geometric", rate=round(a, 6), decay=1.0,
                       source="i.i.d.: the same per-token rate alpha at every position")
    return profile_from_conditional([a] * k, method=method, source=source, name=name, num_drafts=num_drafts,
                                    measured_tau=[(k, tau)], extrapolation=ex)


def expected_acceptance_length(profile: AcceptanceProfile, ks, rl_step: int = 0):
    """(tau per k, extrapolated flag per k) for a profile at RL step `rl_step`."""
    m = profile.model(rl_step)
    ks = [check_k(k, "k") for k in np.atleast_1d(ks)]
    return m.taus(ks), np.array([m.extrapolated(k) for k in ks], dtype=bool)


# ---------------------------------------------------------------------------------------------
# the chain model (sampling)
# ---------------------------------------------------------------------------------------------


class ChainAcceptance:
    """Per-position conditional acceptance c_1..c_K with a stated extrapolation beyond K.

    `sample` draws one verify step's emitted tokens (1..k+1) per sequence by inverse CDF on the
    survival function S_i = u_i (count >= i+1 iff U < u_i, U ~ Uniform[0,1)); vectorised over
    sequences and per-sequence k.
    """

    def __init__(self, conditional_rates, extrapolation: Extrapolation | None = None):
        self.c = check_rates(conditional_rates, "conditional_rates")
        if self.c.size == 0:
            raise RlsimError("no per-position rates", "conditional_rates")
        self.extrapolation = extrapolation or fit_extrapolation(self.c)

    @classmethod
    def iid(cls, alpha: float) -> "ChainAcceptance":
        """i.i.d. per-token acceptance alpha at every position."""
        a = float(check_rates([alpha], "alpha")[0])
        return cls([a], Extrapolation(model="geometric", rate=a, decay=1.0, source="i.i.d."))

    @classmethod
    def from_profile(cls, profile: AcceptanceProfile, rl_step: int = 0) -> "ChainAcceptance":
        p = profile_at_step(profile, rl_step) if rl_step else profile
        return cls(p.conditional_rates, p.extrapolation)

    @property
    def k_measured(self) -> int:
        return int(self.c.size)

    def extrapolated(self, k: int) -> bool:
        """Whether tau(k) uses positions beyond the measured ones."""
        return check_k(k) > self.k_measured

    def conditional(self, k: int) -> np.ndarray:
        """Conditional rates of positions 1..k (extrapolated beyond k_measured)."""
        k = check_k(k)
        if k <= self.k_measured:
            return self.c[:k].copy()
        ex = self.extrapolation
        if ex.model == "none":
            raise RlsimError(f"k={k} is beyond the measured k={self.k_measured} and the profile has "
                             "no extrapolation model", "k")
        j = np.arange(1, k - self.k_measured + 1, dtype=float)
        return np.concatenate((self.c, np.clip(ex.rate * ex.decay ** j, 0.0, 1.0)))

    def unconditional(self, k: int) -> np.ndarray:
        """P(at least i draft tokens accepted), i = 1..k."""
        return unconditional_from_conditional(self.conditional(k))

    def tau(self, k: int) -> float:
        """Expected tokens per verify step (bonus included) with k draft tokens; tau(0) = 1."""
        return float(1.0 + self.unconditional(k).sum())

    def taus(self, ks) -> np.ndarray:
        ks = [check_k(k) for k in np.atleast_1d(ks)]
        if not ks:
            return np.zeros(0)
        cum = np.concatenate(([1.0], 1.0 + np.cumsum(self.unconditional(max(ks)))))
        return cum[ks]

    def pmf(self, k: int) -> np.ndarray:
        """P(emitted = n) for n = 1..k+1 (array of length k+1)."""
        s = np.concatenate(([1.0], self.unconditional(k), [0.0]))
        return s[:-1] - s[1:]

    def sample(self, rng: np.random.Generator, k, size=None) -> np.ndarray:
        """Emitted tokens (1..k+1) of one verify step for each sequence.

        k: an int (then `size` sequences, default one scalar) or an int array of per-sequence k
        (0 allowed: emits 1). Returns int64 of k's shape (or `size`).
        """
        return self._draw(rng, k, size, None)

    def sample_steps(self, rng: np.random.Generator, k, n_steps: int, size=None) -> np.ndarray:
        """Emitted tokens of `n_steps` independent verify steps per sequence: shape (*shape, n_steps)."""
        return self._draw(rng, k, size, check_k(n_steps, "n_steps"))

    def _draw(self, rng, k, size, n_steps):
        karr = np.asarray(k)
        if not np.issubdtype(karr.dtype, np.integer):
            if karr.size and not np.all(np.mod(karr, 1) == 0):
                raise RlsimError("k must be integers", "k")
            karr = karr.astype(np.int64)
        if karr.size and karr.min() < 0:
            raise RlsimError(f"must be >= 0 (got {int(karr.min())})", "k")
        if karr.ndim == 0:
            shape = () if size is None else tuple(np.atleast_1d(size))
            scalar_k = int(karr)
        else:
            if size is not None and tuple(np.atleast_1d(size)) != karr.shape:
                raise RlsimError("size must match the shape of a per-sequence k array", "size")
            shape, scalar_k = karr.shape, None
        out_shape = shape + (() if n_steps is None else (n_steps,))
        kmax = scalar_k if scalar_k is not None else (int(karr.max()) if karr.size else 0)
        counts = np.ones(out_shape, dtype=np.int64)
        if kmax == 0:
            return counts
        surv = self.unconditional(kmax)
        u = rng.random(out_shape)
        kb = None if scalar_k is not None else (karr if n_steps is None else karr[..., None])
        for i in range(kmax):
            hit = u < surv[i]
            if kb is not None:
                hit &= kb > i
            counts += hit
        return counts


# ---------------------------------------------------------------------------------------------
# empirical replay of per-token traces
# ---------------------------------------------------------------------------------------------


class ReplayTraces:
    """Per-token `acc_len` traces: acc_len[p] = tokens a verify step starting at output position p
    emits with an unbounded draft (bonus included). With k draft tokens a step at p emits
    n = min(acc_len[p], k + 1, L - p) (never beyond the end of the sequence) and the next starts at p + n.
    """

    def __init__(self, traces: Sequence[Sequence[int]]):
        arrs = [np.asarray(t, dtype=np.int64).ravel() for t in traces]
        arrs = [a for a in arrs if a.size]
        if not arrs:
            raise RlsimError("no tokens in the traces", "traces")
        for j, a in enumerate(arrs):
            if a.min() < 1:
                raise RlsimError(f"acc_len must be >= 1 (request {j})", "traces")
        self.lengths = np.array([a.size for a in arrs], dtype=np.int64)
        self.offsets = np.concatenate(([0], np.cumsum(self.lengths)[:-1])).astype(np.int64)
        capped = [np.minimum(a, a.size - np.arange(a.size)) for a in arrs]
        self.flat = np.concatenate(capped)

    @property
    def n_requests(self) -> int:
        return int(self.lengths.size)

    @property
    def n_tokens(self) -> int:
        return int(self.lengths.sum())

    def steps(self, ks) -> np.ndarray:
        """Exact verify-step count of a replay of every trace, for each k in `ks` (all k in one pass)."""
        ks = np.array([check_k(k) for k in np.atleast_1d(ks)], dtype=np.int64)
        nk, nr = ks.size, self.n_requests
        pos = np.repeat(self.offsets, nk)
        end = np.repeat(self.offsets + self.lengths, nk)
        cap = np.tile(ks + 1, nr)
        kid = np.tile(np.arange(nk), nr)
        steps = np.zeros(nk, dtype=np.int64)
        flat = self.flat
        while pos.size:
            pos = pos + np.minimum(flat[pos], cap)
            steps += np.bincount(kid, minlength=nk)
            keep = pos < end
            if not keep.all():
                pos, end, cap, kid = pos[keep], end[keep], cap[keep], kid[keep]
        return steps

    def taus(self, ks) -> np.ndarray:
        """Replay tau(k) = tokens emitted / verify steps, for each k."""
        return self.n_tokens / self.steps(ks)

    def tau(self, k: int) -> float:
        return float(self.taus([k])[0])

    def start(self, rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
        """(trace index, position 0) for `size` sequences, traces drawn uniformly with replacement."""
        return rng.integers(0, self.n_requests, size=size), np.zeros(size, dtype=np.int64)

    def emitted(self, trace: np.ndarray, pos: np.ndarray, k) -> np.ndarray:
        """Tokens a verify step at (trace, pos) emits with k (scalar or per-sequence) draft tokens."""
        trace = np.asarray(trace, dtype=np.int64)
        pos = np.asarray(pos, dtype=np.int64)
        if np.any(pos >= self.lengths[trace]) or np.any(pos < 0):
            raise RlsimError("position beyond the end of its trace", "pos")
        return np.minimum(self.flat[self.offsets[trace] + pos], np.asarray(k, dtype=np.int64) + 1)

    def advance(self, rng: np.random.Generator, trace, pos, k):
        """One verify step for every sequence: (emitted, new trace, new pos). A sequence whose trace
        ends continues at position 0 of a new trace drawn uniformly."""
        n = self.emitted(trace, pos, k)
        pos = np.asarray(pos, dtype=np.int64) + n
        trace = np.array(trace, dtype=np.int64, copy=True)
        done = pos >= self.lengths[trace]
        if done.any():
            trace[done] = rng.integers(0, self.n_requests, size=int(done.sum()))
            pos[done] = 0
        return n, trace, pos

    def sample_steps(self, rng: np.random.Generator, k, n_steps: int, size: int | None = None) -> np.ndarray:
        """Emitted tokens of `n_steps` consecutive verify steps for each of `size` sequences (or one
        per entry of a per-sequence k array), replaying real traces: shape (n_seq, n_steps)."""
        karr = np.asarray(k, dtype=np.int64)
        n = int(size) if karr.ndim == 0 else int(karr.size)
        if karr.size and karr.min() < 0:
            raise RlsimError(f"must be >= 0 (got {int(karr.min())})", "k")
        trace, pos = self.start(rng, n)
        out = np.empty((n, check_k(n_steps, "n_steps")), dtype=np.int64)
        for s in range(n_steps):
            out[:, s], trace, pos = self.advance(rng, trace, pos, karr)
        return out


def replay_tau(traces: Sequence[Sequence[int]], k: int) -> float:
    """Exact replay tau(k) of per-token acc_len traces (see `ReplayTraces`)."""
    return ReplayTraces(traces).tau(k)


def unconditional_from_replay(replay: ReplayTraces, k_max: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Effective unconditional per-position rates of a chain verifier, from exact replays.

    A real depth-k verifier does not start at every position: it starts where its previous step
    ended, so which positions it visits (and how runs of easy tokens are split) depends on k, and
    sequence ends cap what a step emits. Counting acc_len over all positions, or over the starts of
    one depth's replay, misses this (measured on the shipped traces: up to 97% and 18% error on
    tau(7) for n-gram). Instead u_i is the marginal gain of the i-th draft token,
    u_i = tau_replay(i) - tau_replay(i-1), tau_replay(i) = tokens / verify steps of an exact depth-i
    replay (tau_replay(0) = 1), so 1 + sum_{i<=k} u_i reproduces every replay tau(k), k <= k_max.
    Where the replay curve is not concave (small traces, noisy tails) u would increase somewhere and
    no chain model fits exactly; then u is the closest non-increasing fit (`concave_fit`).

    Returns (u, replay tau for k = 1..k_max, verify steps for k = 1..k_max).
    """
    k_max = check_k(k_max, "k")
    if k_max < 1:
        raise RlsimError("must be >= 1", "k")
    ks = np.arange(0, k_max + 1)
    steps = replay.steps(ks)
    taus = replay.n_tokens / steps
    u = concave_fit(taus[1:])
    return u, taus[1:], steps[1:]
