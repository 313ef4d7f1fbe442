"""Accepted tokens per verify step: per-iteration draws (exact mode) and whole decode runs (fast mode).

`Acceptance` wraps a ChainAcceptance for one draft method: the k the acceptance model is read at (a tree
is read at its depth), n-gram sequences without a match (they emit one token), and the expected length
tau(k). `decode_steps` draws how many verify iterations a sequence needs to emit its remaining tokens in
one go: exactly (cumulative sums of `sample_steps`) for short remainders; for long ones the sum of the
first M steps is drawn from its normal limit (M iid steps, mean M tau, variance M var) and the last few
standard deviations of tokens exactly, so the count keeps its discreteness where it matters (the end).
"""
from __future__ import annotations

import numpy as np

from simulator.specdec.acceptance import ChainAcceptance

Z_EXACT = 4.0  # standard deviations of the token sum drawn exactly at the end of a run
MIN_BULK = 32  # runs of fewer steps are drawn exactly throughout


class Acceptance:
    """Acceptance of one draft method (None: plain decoding, one token per iteration)."""

    def __init__(self, chain: ChainAcceptance | None, method: str = "none", tree_depth: int = 0,
                 match_rate: float = 1.0):
        self.method = method
        self.tree_depth = tree_depth
        if chain is not None and method == "ngram" and match_rate < 1.0:
            c = chain.conditional(max(chain.k_measured, 1)).copy()
            c[0] *= match_rate  # no match: the step emits only the target's own token
            chain = ChainAcceptance(c, chain.extrapolation)
        self.chain = chain
        self._stats: dict[int, tuple[float, float]] = {}

    def k_accept(self, k: int) -> int:
        """Draft positions the acceptance model is read at for k (a tree: its depth)."""
        if self.chain is None or k <= 0:
            return 0
        return self.tree_depth if self.method == "tree" else int(k)

    def stats(self, k: int) -> tuple[float, float]:
        """(mean, variance) of the tokens one verify step emits."""
        ka = self.k_accept(k)
        hit = self._stats.get(ka)
        if hit is None:
            if ka == 0:
                hit = (1.0, 0.0)
            else:
                p = self.chain.pmf(ka)
                v = np.arange(1, ka + 2, dtype=float)
                mean = float(p @ v)
                hit = (mean, max(float(p @ (v * v)) - mean * mean, 0.0))
            self._stats[ka] = hit
        return hit

    def tau(self, k: int) -> float:
        return self.stats(k)[0]

    def sample(self, rng: np.random.Generator, k: int, n: int) -> np.ndarray:
        """Tokens each of n sequences emits in one verify step (1..k+1)."""
        ka = self.k_accept(k)
        if ka == 0:
            return np.ones(n, dtype=np.int64)
        return self.chain.sample(rng, ka, size=n)

    def decode_steps(self, rng: np.random.Generator, k: int, remaining: np.ndarray) -> np.ndarray:
        """Verify iterations each sequence needs to emit `remaining` (>= 1) more tokens, one iteration
        emitting min(A, tokens left) with A drawn from the acceptance model."""
        r = np.asarray(remaining, dtype=np.int64)
        ka = self.k_accept(k)
        if ka == 0 or r.size == 0:
            return r.copy()
        tau, var = self.stats(k)
        steps = np.zeros(r.size, dtype=np.int64)
        left = r.copy()
        sd = np.sqrt(r * var / tau)
        bulk = np.floor((r - Z_EXACT * sd - (ka + 1)) / tau).astype(np.int64)
        use = bulk >= MIN_BULK
        if use.any():
            m = bulk[use]
            s = np.rint(tau * m + np.sqrt(var * m) * rng.standard_normal(m.size)).astype(np.int64)
            s = np.clip(s, m, r[use] - 1)
            steps[use] = m
            left[use] -= s
        idx = np.arange(r.size)
        while idx.size:
            lv = left[idx]
            h = int(min(lv.max(), np.ceil(lv.max() / tau * 1.25) + 4))
            cum = np.cumsum(self.chain.sample_steps(rng, ka, h, size=idx.size), axis=1)
            hit = cum >= lv[:, None]
            done = hit[:, -1]
            steps[idx[done]] += np.argmax(hit[done], axis=1) + 1
            nd = ~done
            steps[idx[nd]] += h
            left[idx[nd]] -= cum[nd, -1]
            idx = idx[nd]
        return steps
