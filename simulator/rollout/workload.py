"""The sequences of one rollout batch: P prompts x G samples, their prompt and response lengths (tokens).

Lengths come from a `LengthDistribution` (lognormal, empirical from a file, fixed, or a mixture) through a
Gaussian copula: every prompt draws a latent z_p ~ N(0, 1), every sample z = sqrt(rho) z_p + sqrt(1 - rho) e,
and its length is the distribution's quantile at Phi(z). rho = `group_correlation` is the correlation of the
latent (log length for a lognormal) within a prompt's group. Responses are truncated at max_response_tokens;
`cap_fraction` sends that extra fraction (the top of the latent) straight to the cap. All draws use the numpy
Generator passed in (same seed, same batch).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.optimize import brentq
from scipy.special import ndtr, ndtri

from simulator.errors import RlsimError
from simulator.scenario import LengthDistribution, RolloutConfig, resolve_path


# --------------------------------------------------------------------------------------------- distributions
# the longest length a draw may take (tokens): far beyond any context, and safely inside int64 once rounded
LOG_MAX_TOKENS = 40.0


class _Dist:
    """A length distribution with a vectorised quantile function `ppf(u)` and CDF `cdf(x)` (tokens)."""

    lo: float
    hi: float

    def ppf(self, u: np.ndarray) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError

    def cdf(self, x: np.ndarray) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError


def _exp_tokens(log_length):
    """Lengths (tokens) from log lengths, kept within e^+-LOG_MAX_TOKENS."""
    return np.exp(np.clip(log_length, -LOG_MAX_TOKENS, LOG_MAX_TOKENS))


class _LogNormal(_Dist):
    def __init__(self, mu: float, sigma: float):
        self.mu, self.sigma = mu, sigma
        self.lo = float(_exp_tokens(mu - 9 * sigma))
        self.hi = float(_exp_tokens(mu + 9 * sigma))

    def ppf(self, u):
        return _exp_tokens(self.mu + self.sigma * ndtri(u))

    def cdf(self, x):
        x = np.maximum(np.asarray(x, dtype=float), 1e-300)
        if self.sigma == 0:
            return (x >= np.exp(self.mu)).astype(float)
        return ndtr((np.log(x) - self.mu) / self.sigma)


class _Empirical(_Dist):
    def __init__(self, values: np.ndarray):
        self.v = np.sort(values.astype(float))
        self.lo, self.hi = float(self.v[0]), float(self.v[-1])

    def ppf(self, u):
        i = np.minimum((np.asarray(u) * self.v.size).astype(np.int64), self.v.size - 1)
        return self.v[i]

    def cdf(self, x):
        return np.searchsorted(self.v, x, side="right") / self.v.size


class _Fixed(_Dist):
    def __init__(self, value: float):
        self.value = float(value)
        self.lo = self.hi = self.value

    def ppf(self, u):
        return np.full(np.shape(u), self.value)

    def cdf(self, x):
        return (np.asarray(x, dtype=float) >= self.value).astype(float)


class _Mixture(_Dist):
    """Quantiles by vectorised bisection (in log length) on the mixture's CDF."""

    def __init__(self, parts: list[_Dist], weights: np.ndarray):
        self.parts, self.w = parts, weights / weights.sum()
        self.lo = max(0.5, min(p.lo for p in parts)) * 0.999
        self.hi = max(p.hi for p in parts) * 1.001 + 1.0

    def cdf(self, x):
        return sum(w * p.cdf(x) for p, w in zip(self.parts, self.w))

    def ppf(self, u):
        u = np.asarray(u, dtype=float)
        lo = np.full(u.shape, np.log(self.lo))
        hi = np.full(u.shape, np.log(self.hi))
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            below = self.cdf(np.exp(mid)) < u
            lo = np.where(below, mid, lo)
            hi = np.where(below, hi, mid)
        return np.exp(hi)


def _read_column(path, column: str, field: str) -> np.ndarray:
    try:
        if str(path).endswith((".parquet", ".pq")):
            df = pd.read_parquet(path, columns=[column])
        else:
            df = pd.read_csv(path, usecols=[column], comment="#")
    except ValueError as e:
        raise RlsimError(f"cannot read column {column!r} of {path} ({' '.join(str(e).split())})",
                         field + ".column") from None
    except (OSError, pd.errors.ParserError) as e:
        raise RlsimError(f"cannot read {path} ({' '.join(str(e).split())})", field + ".file") from None
    v = pd.to_numeric(df[column], errors="coerce").to_numpy(dtype=float)
    if v.size == 0 or np.isnan(v).any():
        raise RlsimError(f"column {column!r} of {path} is empty or not numeric", field + ".column")
    if (v < 0).any():
        raise RlsimError(f"column {column!r} of {path} has negative lengths (min {v.min():g})", field + ".file")
    return v


def build_distribution(cfg: LengthDistribution, base_dir: str | os.PathLike | None, field: str) -> _Dist:
    """The sampler of a LengthDistribution; files are read (and checked) here. `field` names it in errors."""
    if cfg.kind == "lognormal":
        if cfg.median is not None:
            mu = float(np.log(cfg.median))
        else:
            mu = float(np.log(cfg.mean) - cfg.sigma ** 2 / 2)
        return _LogNormal(mu, float(cfg.sigma))
    if cfg.kind == "empirical":
        path = resolve_path(cfg.file, base_dir, field + ".file")
        return _Empirical(_read_column(path, cfg.column, field) * cfg.scale)
    if cfg.kind == "fixed":
        return _Fixed(cfg.value)
    w = np.asarray(cfg.weights if cfg.weights is not None else [1.0] * len(cfg.components), dtype=float)
    parts = [build_distribution(c, base_dir, f"{field}.components.{i}") for i, c in enumerate(cfg.components)]
    return _Mixture(parts, w)


def quantiles(dist: _Dist, u: np.ndarray) -> np.ndarray:
    """The distribution's lengths (tokens, not rounded) at quantiles u."""
    return dist.ppf(np.clip(u, 1e-12, 1 - 1e-12))


def sample_lengths(dist: _Dist, u: np.ndarray, minimum: int = 1, scale: float = 1.0) -> np.ndarray:
    """Integer lengths (tokens) at quantiles u, times `scale`, at least `minimum`."""
    return np.maximum(np.rint(quantiles(dist, u) * scale), minimum).astype(np.int64)


def scale_to_mean(x: np.ndarray, at_cap: np.ndarray, cap: int, minimum: int, target: float) -> float:
    """The factor s that gives lengths clip(s * x, minimum, cap) (`cap` where at_cap) the mean `target` (tokens)."""
    def mean(s: float) -> float:
        return float(np.where(at_cap, cap, np.clip(s * x, minimum, cap)).mean())

    lo, hi = 1e-9, 1.0
    while mean(hi) < target and hi < 1e12:
        hi *= 2.0
    least, most = mean(lo), mean(hi)
    if not least <= target <= most:
        word, bound = ("least", least) if target < least else ("most", most)
        raise RlsimError(f"{target:g} tokens is out of reach: scaled, this batch's lengths average at {word} "
                         f"{bound:.0f} tokens (response_tokens.min, max_response_tokens and cap_fraction bound them)",
                         "rollout.mean_response_tokens")
    return float(brentq(lambda s: mean(s) - target, lo, hi, xtol=1e-12, rtol=1e-12))


# --------------------------------------------------------------------------------------------- batch
@dataclass
class RequestBatch:
    """Sequences of one rollout step (one entry per sequence, tokens).

    response_tokens: the length the response will have when it ends (EOS or the cap), counted from its
    first token; generated: tokens produced in earlier RL steps (partial rollouts carried over; 0 when
    fresh). The step generates response_tokens - generated more tokens unless a partial-rollout budget stops
    it first. truncated: the response is cut by max_response_tokens.
    """

    prompt_id: np.ndarray
    sample: np.ndarray
    prompt_tokens: np.ndarray
    response_tokens: np.ndarray
    generated: np.ndarray = None
    truncated: np.ndarray = None
    stats: dict = field(default_factory=dict)

    def __post_init__(self):
        n = len(self.prompt_tokens)
        for name in ("prompt_id", "sample", "prompt_tokens", "response_tokens"):
            setattr(self, name, np.asarray(getattr(self, name), dtype=np.int64).ravel())
        self.generated = np.zeros(n, dtype=np.int64) if self.generated is None else \
            np.asarray(self.generated, dtype=np.int64).ravel()
        self.truncated = np.zeros(n, dtype=bool) if self.truncated is None else \
            np.asarray(self.truncated, dtype=bool).ravel()
        for name in ("prompt_id", "sample", "response_tokens", "generated", "truncated"):
            if len(getattr(self, name)) != n:
                raise RlsimError(f"{len(getattr(self, name))} entries for {n} sequences", f"requests.{name}")
        if n and (self.prompt_tokens.min() < 1 or self.response_tokens.min() < 1):
            raise RlsimError("every sequence needs prompt_tokens >= 1 and response_tokens >= 1", "requests")
        if n and ((self.generated < 0).any() or (self.generated >= self.response_tokens).any()):
            raise RlsimError("generated must be within [0, response_tokens)", "requests.generated")

    @property
    def size(self) -> int:
        return int(self.prompt_tokens.size)

    def concat(self, other: "RequestBatch") -> "RequestBatch":
        cat = {n: np.concatenate((getattr(self, n), getattr(other, n)))
               for n in ("prompt_id", "sample", "prompt_tokens", "response_tokens", "generated", "truncated")}
        return RequestBatch(**cat)

    def subset(self, mask) -> "RequestBatch":
        return RequestBatch(**{n: getattr(self, n)[mask] for n in
                               ("prompt_id", "sample", "prompt_tokens", "response_tokens", "generated",
                                "truncated")})

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame({"prompt_id": self.prompt_id, "sample": self.sample,
                             "prompt_tokens": self.prompt_tokens, "response_tokens": self.response_tokens,
                             "generated": self.generated, "truncated": self.truncated})


def sample_requests(cfg: RolloutConfig, rng: np.random.Generator,
                    base_dir: str | os.PathLike | None = None) -> RequestBatch:
    """Sample the P x G sequences of a rollout batch (prompt-major order: prompt 0's samples first)."""
    P, G = cfg.prompts, cfg.samples_per_prompt
    pdist = build_distribution(cfg.prompt_tokens, base_dir, "rollout.prompt_tokens")
    rdist = build_distribution(cfg.response_tokens, base_dir, "rollout.response_tokens")
    prompt_len = sample_lengths(pdist, rng.random(P), cfg.prompt_tokens.min)
    rho = cfg.group_correlation
    z = np.sqrt(rho) * rng.standard_normal(P)[:, None] + np.sqrt(1.0 - rho) * rng.standard_normal((P, G))
    u = ndtr(z).ravel()
    capped = u > 1.0 - cfg.cap_fraction if cfg.cap_fraction > 0 else np.zeros(u.shape, dtype=bool)
    u_body = np.where(capped, 0.5, u / (1.0 - cfg.cap_fraction))
    cap = cfg.max_response_tokens
    scale = 1.0
    if cfg.mean_response_tokens is not None:
        scale = scale_to_mean(quantiles(rdist, u_body), capped, cap, cfg.response_tokens.min,
                              cfg.mean_response_tokens)
    raw = np.where(capped, cap, sample_lengths(rdist, u_body, cfg.response_tokens.min, scale))
    response = np.minimum(raw, cap)
    truncated = raw >= cap
    stats = {"truncated_fraction": float(truncated.mean()),
             "mean_prompt_tokens": float(prompt_len.mean()),
             "mean_response_tokens": float(response.mean())}
    return RequestBatch(prompt_id=np.repeat(np.arange(P), G), sample=np.tile(np.arange(G), P),
                        prompt_tokens=np.repeat(prompt_len, G), response_tokens=response,
                        truncated=truncated, stats=stats)
