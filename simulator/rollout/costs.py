"""Seconds of one engine iteration for the batch as it is: the cost-model layer of the rollout engine.

An iteration = one target forward over every scheduled sequence (decode/verify tokens and prefill chunks
together, each sequence with its own context) + the draft steps and rejection sampling of the decoding
sequences under speculation (with the framework's speculative-path overheads) + a fixed CPU cost
(`step_overhead_s`) + a CPU cost per scheduled sequence (`cpu_s_per_seq`), which vLLM's async scheduling
overlaps with the GPU work (the iteration then takes the longer of the two). A batch of more tokens than the largest
captured CUDA graph runs eagerly (StepCostModel adds the kernel-launch floor).

Drafting covers the decoding sequences only (a draft head's pass over fresh prefill tokens is left out).
"""
from __future__ import annotations

import numpy as np

from simulator.specdec.costs import SpecDecodeCost, best_k

_EMPTY = np.zeros(0, dtype=np.int64)

# grid of the attention-like part of decode iterations (fast mode): running counts 1..16 then x1.15 steps;
# mean cached contexts from 16 tokens in x1.25 steps
N_DENSE, N_FACTOR, C_MIN, C_FACTOR = 16, 1.15, 16.0, 1.25


class IterationCost:
    """Iteration times of one engine (pure given its inputs; caches the batch-size-only part)."""

    def __init__(self, spec: SpecDecodeCost, cuda_graph_max_tokens: int, step_overhead_s: float = 0.0,
                 cpu_s_per_seq: float = 0.0, async_scheduling: bool = False):
        self.spec = spec
        self.target = spec.target
        self.method = spec.method
        self.graph_max = int(cuda_graph_max_tokens)
        self.overhead = float(step_overhead_s)
        self.per_seq = float(cpu_s_per_seq)
        self.async_scheduling = bool(async_scheduling)
        self.match_rate = spec.cfg.ngram_match_rate if spec.method == "ngram" else 1.0
        self._floor: dict[tuple, np.ndarray] = {}
        self._ngrid: dict[int, np.ndarray] = {}
        self._rho: dict[tuple, np.ndarray] = {}

    def speculating(self, k: int) -> bool:
        return self.method != "none" and k > 0

    def verify_tokens(self, k: int) -> int:
        """New target tokens per decoding sequence in one iteration (1 without speculation)."""
        return self.spec.verify_tokens(k) if self.speculating(k) else 1

    def lookahead(self, k: int) -> int:
        """KV slots reserved per decoding sequence beyond its verify tokens (vLLM's lookahead slots)."""
        return self.verify_tokens(k) - 1

    def graph(self, tokens: int) -> bool:
        """Whether a step of `tokens` new tokens replays a captured CUDA graph."""
        return tokens <= self.graph_max

    def time(self, dec_cached: np.ndarray, k: int, pre_cached: np.ndarray = _EMPTY,
             pre_chunk: np.ndarray = _EMPTY, accepted=None) -> float:
        """Seconds of one iteration.

        dec_cached: tokens in the KV cache of each decoding sequence; k: draft tokens per decoding
        sequence; pre_cached / pre_chunk: KV tokens and new prompt tokens of each prefill chunk;
        accepted: tokens each decoding sequence accepted in its previous iteration (the draft's first step
        re-reads them; default the expected value).
        """
        n = dec_cached.size
        spec = self.speculating(k) and n > 0
        vt = self.verify_tokens(k)
        q_dec = np.full(n, vt, dtype=np.int64)
        n_match = n
        if spec and self.match_rate < 1.0:  # n-gram: sequences without a match verify one token
            n_match = int(round(n * self.match_rate))
            q_dec[n_match:] = 1
        if pre_chunk.size:
            q = np.concatenate((q_dec, pre_chunk))
            ctx = np.concatenate((dec_cached + q_dec, pre_cached + pre_chunk))
        else:
            q, ctx = q_dec, dec_cached + q_dec
        if spec and accepted is not None and np.ndim(accepted) == 0:
            accepted = spread(n, float(accepted))
        gpu = 0.0
        if q.size:
            gpu += self.target.step_time(q, ctx, cuda_graph=self.graph(int(q.sum())))
        if spec:
            gpu += (self.spec.draft_time(dec_cached, k, accepted) + self.spec.sampling_time(n_match, k)
                    + self.spec.overhead_time(k))
        cpu = self.per_seq * q.size
        return float(self.overhead + (max(gpu, cpu) if self.async_scheduling else gpu + cpu))

    def floor(self, n: int, k: int, accepted=None) -> float:
        """Seconds of an all-decode iteration of n sequences with empty caches: the part of the iteration
        time that depends on the batch size only (cached per n, k and accepted)."""
        return float(self.floors(np.array([n]), k, accepted)[0])

    def floors(self, ns: np.ndarray, k: int, accepted=None) -> np.ndarray:
        """`floor` for an array of running counts."""
        key = (k, None if accepted is None else round(float(accepted), 9))
        arr = self._floor.get(key)
        top = int(ns.max())
        if arr is None or arr.size <= top:
            grown = np.full(max(top + 1, 2 * (0 if arr is None else arr.size)), np.nan)
            if arr is not None:
                grown[:arr.size] = arr
            arr = self._floor[key] = grown
        vals = arr[ns]
        if np.isnan(vals).any():
            for v in np.unique(ns[np.isnan(vals)]):
                arr[v] = self.time(np.zeros(int(v), dtype=np.int64), k, accepted=accepted)
            vals = arr[ns]
        return vals


    # ------------------------------------------------------------------ fast mode's reference grid
    def _n_grid(self, k: int) -> np.ndarray:
        g = self._ngrid.get(k)
        if g is None:
            pts = set(range(1, N_DENSE + 1))
            x = float(N_DENSE)
            while x < 1 << 17:
                x *= N_FACTOR
                pts.add(int(round(x)))
            star = self.graph_max // self.verify_tokens(k)  # largest batch on a CUDA graph, and one more
            if star >= 1:
                pts |= {star, star + 1}
            g = self._ngrid[k] = np.array(sorted(pts), dtype=np.int64)
        return g

    def rho_grid(self, ns: np.ndarray, cs: np.ndarray, k: int, accepted=None) -> np.ndarray:
        """rho of all-decode batches of n sequences that all have c cached tokens: (iteration time - floor) /
        (n c), seconds per cached token, interpolated bilinearly in (log n, log c) on a grid filled on demand.
        Grid points never straddle the CUDA-graph limit."""
        G = self._n_grid(k)
        ns = np.asarray(ns, dtype=np.int64)
        i = np.clip(np.searchsorted(G, ns, side="right") - 1, 0, G.size - 2)
        n_lo, n_hi = G[i], G[i + 1]
        wn = np.clip(np.log(ns / n_lo) / np.log(n_hi / n_lo), 0.0, 1.0)
        cpos = np.log(np.maximum(np.asarray(cs, dtype=float), C_MIN) / C_MIN) / np.log(C_FACTOR)
        j = np.floor(cpos).astype(np.int64)
        wc = cpos - j
        key = (k, None if accepted is None else round(float(accepted), 9))
        tab = self._rho.get(key)
        need_j = int(j.max()) + 2
        if tab is None or tab.shape[1] < need_j:
            grown = np.full((G.size, max(need_j, 8)), np.nan)
            if tab is not None:
                grown[:, :tab.shape[1]] = tab
            tab = self._rho[key] = grown
        for a, b in ((i, j), (i, j + 1), (i + 1, j), (i + 1, j + 1)):
            miss = np.isnan(tab[a, b])
            if miss.any():
                for ia, jb in set(zip(a[miss].tolist(), b[miss].tolist())):
                    n, c = int(G[ia]), int(round(C_MIN * C_FACTOR ** jb))
                    f = self.time(np.full(n, c, dtype=np.int64), k, accepted=accepted)
                    tab[ia, jb] = (f - self.floor(n, k, accepted)) / (n * c)
        lo = tab[i, j] * (1 - wc) + tab[i, j + 1] * wc
        hi = tab[i + 1, j] * (1 - wc) + tab[i + 1, j + 1] * wc
        return lo * (1 - wn) + hi * wn


def spread(n: int, mean: float) -> np.ndarray:
    """n integers (floor or ceil of `mean`) that sum to round(n * mean): an expected accepted count per sequence
    that keeps the batch's total (the draft's first step reads each sequence's accepted tokens)."""
    lo = int(np.floor(mean))
    extra = int(round(n * (mean - lo)))
    out = np.full(n, lo, dtype=np.int64)
    out[:extra] += 1
    return np.maximum(out, 1)


def choose_k(cost: IterationCost, taus: dict[int, float], dec_cached: np.ndarray) -> int:
    """Goodput-optimal k for this batch (specdec.costs.best_k) on the engine's iteration time, CPU overhead and
    the CUDA-graph limit included."""
    return best_k(taus, lambda k: cost.time(dec_cached, k, accepted=taus[k] if k else None))[0]
