"""Attention kernels: decode / speculative verify over a KV cache, and causal prefill (pure functions).

Every sequence is costed with its own context length (a batch of mixed contexts is costed as it is; with a split
schedule, as FlashAttention-3 splits it and runs it in waves: simulator/costmodel/fa3_schedule.py).
"""
from __future__ import annotations

import numpy as np

from simulator.costmodel.bandwidth_sharing import fluid_time
from simulator.costmodel.fa3_schedule import schedule_factor
from simulator.hardware import AttentionCurve, PrefillCurve


class PreparedAttention:
    """An AttentionCurve's tables as numpy arrays, built once (the hot path reads them per step)."""

    def __init__(self, c: AttentionCurve):
        self.curve = c
        self.inv = 1.0 / np.asarray(c.eff, dtype=float)
        self.lg = np.asarray(c.log2_group, dtype=float)
        self.li = np.asarray(c.log2_items, dtype=float)
        self.lc = np.asarray(c.log2_ctx, dtype=float)
        self.oh = np.asarray(c.overhead_s, dtype=float)
        self.tile = float(c.query_tile)
        self.compute_eff = c.compute_eff
        self.reread = c.reread_per_query_head
        self.cta = c.cta_bytes_per_s
        self.split = c.split_tokens
        self.schedule = c.split_schedule
        # the tables alone, for the twin a split schedule scales
        self.plain = self if c.split_schedule is None else PreparedAttention(
            c.model_copy(update={"split_schedule": None}))


def _bracket(grid: np.ndarray, x: float) -> tuple[int, float]:
    """Index j and weight f such that x ~ grid[j] * (1 - f) + grid[j + 1] * f (clamped)."""
    n = len(grid)
    if n == 1:
        return 0, 0.0
    if x <= grid[0]:
        return 0, 0.0
    if x >= grid[-1]:
        return n - 2, 1.0
    j = int(np.searchsorted(grid, x, side="right")) - 1
    return j, (x - grid[j]) / (grid[j + 1] - grid[j])


def _interp_inv_eff(p: PreparedAttention, log2_group: float, log2_items: float,
                    log2_ctx: np.ndarray) -> tuple[np.ndarray, float]:
    """1/efficiency (time per byte) per sequence, and the overhead, interpolated in the tables."""
    jg, fg = _bracket(p.lg, log2_group)
    ji, fi = _bracket(p.li, log2_items)
    out = 0.0
    for g, wg in ((jg, 1.0 - fg), (jg + 1, fg)):
        if wg == 0.0:
            continue
        for i, wi in ((ji, 1.0 - fi), (ji + 1, fi)):
            if wi == 0.0:
                continue
            out = out + (wg * wi) * np.interp(log2_ctx, p.lc, p.inv[g, i])
    overhead = float(p.oh[jg] * (1.0 - fg) + (p.oh[jg + 1] * fg if fg else 0.0))
    return out, overhead


def decode_attention_time(c, peak: float, bandwidth: float, ctx, q_len,
                          q_heads: int, kv_heads: int, k_dim: int, v_dim: int | None = None,
                          kv_bytes: float = 2.0, cuda_graph: bool | None = None) -> float:
    """Seconds for one decode/verify attention kernel over a batch.

    c: an AttentionCurve or its PreparedAttention. ctx: KV length each sequence attends to (array);
    q_len: new query tokens per sequence (array or int). q_heads, kv_heads: per GPU. k_dim/v_dim: head dims
    of K and V (MLA: latent 576 / 512 with kv_heads 1). cuda_graph: whether vLLM replays the batch in a CUDA graph,
    which sets FA3's KV splits (None: as the measurements ran, up to the schedule's `graph_tokens` new tokens).
    """
    p = c if isinstance(c, PreparedAttention) else PreparedAttention(c)
    ctx = np.asarray(ctx, dtype=float)
    if ctx.size == 0:
        return 0.0
    v_dim = k_dim if v_dim is None else v_dim
    if p.schedule is not None:
        # the tables price the uniform twin spread evenly over the GPU; FA3's schedule prices this batch against it
        twin = decode_attention_time(p.plain, peak, bandwidth, np.full(ctx.shape, float(ctx.mean())), q_len, q_heads,
                                     kv_heads, k_dim, v_dim, kv_bytes)
        if cuda_graph is None:  # as measured: vLLM's CUDA graphs up to `graph_tokens` new tokens
            new_tokens = float(np.sum(q_len)) if np.ndim(q_len) else float(q_len) * ctx.size
            cuda_graph = new_tokens <= p.schedule.graph_tokens
        return twin * schedule_factor(p.schedule, bandwidth, ctx, kv_heads, (k_dim + v_dim) * kv_bytes, cuda_graph)
    group = q_heads / kv_heads
    if np.ndim(q_len) == 0:
        tiles = float(np.ceil(group * q_len / p.tile))
        reread = group if (q_len >= 2 and p.reread) else 1.0
        per_head = kv_heads * tiles * reread
        items = per_head * ctx.size
    else:
        ql = np.asarray(q_len, dtype=float)
        tiles = np.ceil(group * ql / p.tile)
        reread = np.where((ql >= 2) & p.reread, group, 1.0)
        per_head = kv_heads * tiles * reread
        items = float(per_head.sum())
    per_seq_bytes = ctx * ((k_dim + v_dim) * kv_bytes * kv_heads) * reread
    inv, overhead = _interp_inv_eff(p, np.log2(group), np.log2(max(items, 1.0)), np.log2(np.maximum(ctx, 1.0)))
    total_bytes = float(per_seq_bytes.sum()) if np.ndim(per_seq_bytes) else per_seq_bytes
    t_mem = float(np.dot(per_seq_bytes, inv)) / bandwidth
    if p.cta > 0:
        # KV streams (one per sequence, KV head and query tile, in chunks when the kernel splits long
        # sequences) share the batch's aggregate bandwidth, each capped at the per-CTA rate
        chunks = np.ceil(ctx / p.split) if p.split > 0 else np.ones_like(ctx)
        streams = per_head * chunks
        t_mem = fluid_time(per_seq_bytes / streams, streams, total_bytes / t_mem, p.cta)
    if np.ndim(tiles) == 0:
        flops = 2.0 * p.tile * (k_dim + v_dim) * kv_heads * tiles * float(ctx.sum())
    else:
        flops = 2.0 * p.tile * (k_dim + v_dim) * float(np.dot(kv_heads * tiles, ctx))
    t_comp = flops / (peak * p.compute_eff)
    return overhead + max(t_mem, t_comp)


def causal_pairs(q_len, ctx):
    """(query, key) pairs a causal chunk of q_len new tokens attends to when the KV length is ctx."""
    q = np.asarray(q_len, dtype=float)
    c = np.asarray(ctx, dtype=float)
    return q * (c - q) + q * (q + 1) / 2.0


def prefill_attention_time(c: PrefillCurve, peak: float, q_len, ctx, q_heads: int,
                           k_dim: int, v_dim: int | None = None) -> float:
    """Seconds for causal (chunked) prefill attention over sequences with q_len new tokens each."""
    q = np.asarray(q_len, dtype=float)
    if q.size == 0:
        return 0.0
    v_dim = k_dim if v_dim is None else v_dim
    flops = float(np.sum(2.0 * q_heads * causal_pairs(q, ctx) * (k_dim + v_dim)))
    return c.overhead_s + flops / (peak * prefill_eff(c, flops))


def prefill_eff(c: PrefillCurve, flops):
    """Fraction of peak a causal prefill kernel of `flops` reaches (Hill curve)."""
    f = np.maximum(np.asarray(flops, dtype=float), 1.0)
    with np.errstate(over="ignore"):  # e_max f^h / (f^h + F_half^h), written so that no power overflows
        return c.e_max / (1.0 + (c.flops_half / f) ** c.hill)
