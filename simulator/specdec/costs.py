"""Draft and verify step costs of speculative decoding, through the cost model (seconds).

One engine iteration with speculation = draft (k proposals per sequence) + verify (one target forward with
k+1 new tokens per sequence, or the tree size) + rejection sampling + the serving framework's CPU/launch work on
the speculative path (`iteration_overhead_s` per iteration, `draft_step_overhead_s` per GPU draft step: fitted
to vLLM's measured time per output token by simulator/fit/spec_overhead.py; 0 unless given). Definitions, per sequence: `cached` is
the number of tokens already in the target's KV cache; the verify step attends over cached + k + 1.

Mechanisms (`method`):
- none: plain autoregressive decoding (one target step with one new token).
- eagle3: a draft head (one decoder layer over fused target hidden states, its own lm_head) run k times in a
  chain; its first step also covers the tokens accepted in the last verify (q = accepted), later steps q = 1.
- eagle: an EAGLE-1/2 head (fc over [token embedding, feature] at every step, the target's full lm_head); same
  chain.
- mtp: the target's multi-token-prediction module(s), one layer + the shared lm_head per step; same chain.
- draft_model: a separate small model with its own KV cache and tensor parallelism; same chain.
- ngram: prompt/history lookup on the CPU (a per-sequence CPU cost, no GPU work); sequences without a match
  propose nothing and verify one token.
- tree: a draft tree of `tree_tokens` nodes built in `tree_depth` draft steps of `tree_width` nodes each;
  the verify scores every node. Its acceptance is the acceptance model's at `tree_depth`: a tau measured with
  that tree (an EAGLE-3 chain's profile gives the chain's, a lower bound: width adds cost, not acceptance).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from simulator.costmodel.elementwise import elementwise_time
from simulator.costmodel.step import StepCostModel
from simulator.errors import RlsimError
from simulator.model_config import ModelConfig, load_model, model_names

Method = Literal["none", "eagle3", "eagle", "mtp", "draft_model", "ngram", "tree"]
METHODS = ("none", "eagle3", "eagle", "mtp", "draft_model", "ngram", "tree")

# CPU cost of one n-gram lookup over a sequence's history (suffix matching over a few thousand tokens).
# Source: vLLM's n-gram proposer runs a KMP/numba lookup per request; order of tens of microseconds.
# An assumption, stated in the scenario; set `ngram_s_per_seq` to a measured value.
NGRAM_S_PER_SEQ = 20e-6


@dataclass(frozen=True)
class DraftConfig:
    """What drafts and how: method, draft model (catalogue name), its TP, tree shape, n-gram costs."""

    method: str = "none"
    draft_model: str | None = None
    draft_tp: int = 1
    tree_tokens: int = 0
    tree_depth: int = 0
    tree_width: int = 0
    ngram_s_per_seq: float = NGRAM_S_PER_SEQ
    ngram_match_rate: float = 1.0
    iteration_overhead_s: float = 0.0  # framework CPU/launch seconds per speculative iteration
    draft_step_overhead_s: float = 0.0  # framework CPU/launch seconds per GPU draft step


@dataclass(frozen=True)
class SpecIterationCost:
    """Seconds of one speculative iteration: draft + verify + rejection sampling (+ CPU draft) + overhead."""

    time_s: float
    draft_s: float
    verify_s: float
    sampling_s: float
    overhead_s: float = 0.0
    breakdown: dict = field(default_factory=dict)


def find_draft_head(target: ModelConfig, kind: str) -> ModelConfig:
    """The catalogue draft head (EAGLE-3 or MTP) whose target is `target`."""
    for name in model_names():
        m = load_model(name)
        if m.draft is not None and m.draft.kind == kind and m.draft.target.lower() == target.name.lower():
            return m
    raise RlsimError(f"no {kind} draft head for {target.name} in the model catalogue (add one YAML file to "
                     "workloads/models)", "speculative.draft_model")


class SpecDecodeCost:
    """Iteration costs of one engine replica with a given speculative-decoding mechanism."""

    def __init__(self, target: StepCostModel, draft: DraftConfig):
        if draft.method not in METHODS:
            raise RlsimError(f"unknown method {draft.method!r} ({', '.join(METHODS)})", "speculative.method")
        self.target = target
        self.cfg = draft
        self.method = draft.method
        self.draft_first: StepCostModel | None = None
        self.draft_next: StepCostModel | None = None
        hw, tm = target.hw, target.model
        if draft.method in ("eagle3", "eagle", "mtp", "tree"):
            kind = draft.method if draft.method in ("eagle", "mtp") else "eagle3"
            head = load_model(draft.draft_model, "speculative.draft_model") if draft.draft_model \
                else find_draft_head(tm, kind)
            tp = target.par.tp if head.attention.heads % target.par.tp == 0 else 1
            # the draft's layers share the engine's KV-cache config (vLLM: one kv_cache_dtype for every layer)
            kw = dict(tp=tp, dtype=target.dtype, kv_dtype=target.kv_dtype, attention_backend=None,
                      all_reduce=target.all_reduce)
            self.draft_first = StepCostModel(hw, head, **kw)
            # later chain steps: EAGLE-3 feeds its own feature back (no fc over target states); EAGLE-1 fuses
            # the new token's embedding at every step (fc kept)
            kinds = head.draft.kind if head.draft else "mtp"
            later = {"eagle3": ("fc",), "eagle": ()}.get(kinds, ("eh_proj",))
            self.draft_next = StepCostModel(hw, head, exclude_ops=later, **kw)
        elif draft.method == "draft_model":
            if not draft.draft_model:
                raise RlsimError("draft_model needs speculative.draft_model (a catalogue model)",
                                 "speculative.draft_model")
            dm = load_model(draft.draft_model, "speculative.draft_model")
            self.draft_first = self.draft_next = StepCostModel(hw, dm, tp=draft.draft_tp, dtype=target.dtype,
                                                                kv_dtype=target.kv_dtype, all_reduce=target.all_reduce)
        if draft.method == "tree" and (draft.tree_tokens < 1 or draft.tree_depth < 1):
            raise RlsimError("tree needs tree_tokens >= 1 and tree_depth >= 1", "speculative.tree_tokens")
        vocab = tm.vocab
        self._vocab_local = int(np.ceil(vocab / target.par.tp))
        self._ew = hw.efficiency.elementwise

    # -------------------------------------------------------------- pieces
    def verify_tokens(self, k: int) -> int:
        """New target tokens per sequence in a verify step."""
        if self.method == "tree":
            return self.cfg.tree_tokens + 1
        return k + 1

    def draft_steps(self, k: int) -> int:
        """GPU draft forwards per iteration (0 for n-gram lookups and plain decoding)."""
        if self.method in ("none", "ngram") or k == 0:
            return 0
        return max(self.cfg.tree_depth, 1) if self.method == "tree" else k

    def overhead_time(self, k: int) -> float:
        """Framework seconds of one speculative iteration beyond the GPU kernels (0 without speculation)."""
        if self.method == "none" or k == 0:
            return 0.0
        return self.cfg.iteration_overhead_s + self.draft_steps(k) * self.cfg.draft_step_overhead_s

    def draft_time(self, cached: np.ndarray, k: int, accepted: np.ndarray | float | None = None) -> float:
        """Seconds for the k draft steps of every sequence (GPU; plus CPU lookups for n-gram)."""
        n = cached.size
        if n == 0 or self.method == "none" or k == 0:
            return 0.0
        if self.method == "ngram":
            return self.cfg.ngram_s_per_seq * n
        if self.method == "tree":
            w, depth = max(self.cfg.tree_width, 1), self.cfg.tree_depth
            t = self.draft_first.step_time(np.ones(n, dtype=np.int64), cached + 1)
            for d in range(1, depth):
                t += self.draft_next.step_time(np.full(n, w, dtype=np.int64), cached + 1 + d * w)
            return t
        # chain: first step covers the tokens accepted in the last verify, then k-1 single-token steps
        a = np.maximum(1, np.rint(np.broadcast_to(1.0 if accepted is None else accepted, cached.shape))
                       ).astype(np.int64)
        t = self.draft_first.step_time(a, cached + a)
        if k > 1:
            # the k-1 single-token steps differ by one token of context each: cost them at their mean context
            # (the cost is linear in context to first order)
            mid = cached + a + np.int64(k // 2)
            t += (k - 1) * self.draft_next.step_time(np.ones(n, dtype=np.int64), mid)
        return t

    def verify_time(self, cached: np.ndarray, k: int | np.ndarray) -> float:
        """Seconds for the target forward over k+1 (or tree) new tokens per sequence."""
        if cached.size == 0:
            return 0.0
        q = np.broadcast_to(np.asarray(self.verify_tokens(k) if np.ndim(k) == 0 else np.asarray(k) + 1),
                            cached.shape).astype(np.int64)
        return self.target.step_time(q, cached + q)

    def sampling_time(self, n_seqs: int, k: int) -> float:
        """Rejection sampling over the target's k+1 distributions per sequence (softmax + accept/resample):
        memory-bound passes over fp32 logits of the local vocabulary."""
        if n_seqs == 0 or self.method == "none" or k == 0:
            return 0.0
        rows = n_seqs * self.verify_tokens(k)
        return 2 * elementwise_time(self._ew["mul"], self.target.bw, "mul", rows, self._vocab_local, 4.0)

    def iteration(self, cached: np.ndarray, k: int, accepted: np.ndarray | float | None = None) -> SpecIterationCost:
        """One iteration for a batch of sequences with `cached` tokens each, proposing k per sequence."""
        cached = np.asarray(cached, dtype=np.int64)
        if self.method == "none" or k == 0:
            v = self.target.step_time(np.ones(cached.size, dtype=np.int64), cached + 1) if cached.size else 0.0
            return SpecIterationCost(v, 0.0, v, 0.0, 0.0, {"verify": v})
        d = self.draft_time(cached, k, accepted)
        if self.method == "ngram" and self.cfg.ngram_match_rate < 1.0:
            # sequences without an n-gram match verify one token; costed as a mixed batch
            n_match = int(round(cached.size * self.cfg.ngram_match_rate))
            q = np.ones(cached.size, dtype=np.int64)
            q[:n_match] = k + 1
            v = self.target.step_time(q, cached + q)
            s = self.sampling_time(n_match, k)
        else:
            v = self.verify_time(cached, k)
            s = self.sampling_time(cached.size, k)
        o = self.overhead_time(k)
        return SpecIterationCost(d + v + s + o, d, v, s, o, {"draft": d, "verify": v, "sampling": s, "overhead": o})

    def draft_weight_bytes(self) -> float:
        """Weights of the draft on each GPU of the engine (bytes)."""
        from simulator.costmodel.memory import weight_bytes_per_gpu
        if self.draft_first is None:
            return 0.0
        return weight_bytes_per_gpu(self.draft_first.model, self.draft_first.par, self.draft_first.w_bytes)

    def draft_kv_bytes_per_token(self) -> float:
        from simulator.costmodel.memory import kv_bytes_per_token
        if self.draft_first is None:
            return 0.0
        return kv_bytes_per_token(self.draft_first.model, self.draft_first.par, self.draft_first.kv_bytes)


def best_k(taus: dict[int, float], iteration_s) -> tuple[int, dict]:
    """The candidate k with the most expected tokens per second per sequence, tau(k) / iteration_s(k) (seconds),
    and every candidate's rate; ties (within 1e-12) go to the smaller k, as vLLM's dynamic speculation picks it.
    taus: expected acceptance length per candidate k (tau(0) = 1)."""
    rates, best, best_rate = {}, None, -1.0
    for k in sorted(taus):
        t = iteration_s(k)
        rates[k] = taus[k] / t if t > 0 else 0.0
        if rates[k] > best_rate * (1 + 1e-12):
            best, best_rate = k, rates[k]
    return int(best), rates


def goodput_optimal_k(spec: SpecDecodeCost, taus: dict[int, float], cached: np.ndarray) -> tuple[int, dict]:
    """The k maximising expected tokens per iteration / iteration time for this batch, on the kernels and the
    draft's stated framework costs (best_k); rates in tokens per second for the whole batch."""
    best, rates = best_k(taus, lambda k: spec.iteration(cached, k, accepted=taus[k] if k else None).time_s)
    return best, {k: cached.size * r for k, r in rates.items()}
