"""Attention kernels: decode / speculative verify over a KV cache, and causal prefill (pure functions).

Every sequence is costed with its own context length (a batch of mixed contexts is costed as it is).
"""
from __future__ import annotations

import numpy as np

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
        self.phases = c.phase_sharing


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


def _brackets(grid: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices j, j + 1 and weights f with x ~ grid[j] * (1 - f) + grid[j + 1] * f, for every x (clamped to the
    grid; `_bracket` for arrays)."""
    x = np.clip(x, grid[0], grid[-1])
    if len(grid) == 1:
        z = np.zeros(x.shape, dtype=np.int64)
        return z, z, np.zeros(x.shape)
    j = np.clip(np.searchsorted(grid, x, side="right") - 1, 0, len(grid) - 2)
    return j, j + 1, (x - grid[j]) / (grid[j + 1] - grid[j])


def mixed_batch_time(p: PreparedAttention, log2_group: float, seq_bytes: np.ndarray, streams: np.ndarray,
                     ctx: np.ndarray, bandwidth: float) -> float:
    """Seconds to move the KV of a batch of mixed contexts (`phase_sharing`): the geometric mean of two limits.

    Sequence i has streams[i] KV streams (KV heads x query tiles) moving seq_bytes[i] bytes at context ctx[i].
    - phases (no overlap): sorted by stream size, phase k runs the n_k streams not yet done until the k-th
      shortest finishes, n_k x (s_k - s_(k-1)) bytes at the tables' efficiency for n_k work items at ctx_k;
    - tail bound (full overlap): the k longest sequences run as a batch of their own, each sequence's bytes at
      the efficiency for its context and the k sequences' work items; the largest over k (k = all: the batch).
    FlashAttention-3 hands its tiles to persistent CTAs in batch order, so how far the long sequences overlap the
    short ones depends on where they sit; the measured batches land between the limits."""
    n = np.broadcast_to(np.asarray(streams, dtype=float), np.shape(ctx))
    b = np.asarray(seq_bytes, dtype=float)
    order = np.argsort(b / n, kind="stable")
    b, n, c = b[order], n[order], np.asarray(ctx, dtype=float)[order]
    # rows[i, k]: 1/efficiency at the i-th work-item count of the grid and sequence k's context
    jc, jc1, wc = _brackets(p.lc, np.log2(np.maximum(c, 1.0)))
    jg, fg = _bracket(p.lg, log2_group)
    rows = 0.0
    for g, wg in ((jg, 1.0 - fg), (jg + 1, fg)):
        if wg:
            rows = rows + wg * (p.inv[g][:, jc] * (1.0 - wc) + p.inv[g][:, jc1] * wc)
    cols = np.arange(c.size)
    # no overlap: phases of the streams still running
    active = np.cumsum(n[::-1])[::-1]
    moved = active * np.diff(b / n, prepend=0.0)
    lo, hi, f = _brackets(p.li, np.log2(np.maximum(active, 1.0)))
    t_phases = float(np.dot(moved, rows[lo, cols] * (1.0 - f) + rows[hi, cols] * f))
    # full overlap: the k longest alone
    rev = cols[::-1]
    cum = np.cumsum(rows[:, rev] * b[rev], axis=1)
    lo, hi, f = _brackets(p.li, np.log2(np.maximum(np.cumsum(n[rev]), 1.0)))
    t_tail = float(np.max(cum[lo, cols] * (1.0 - f) + cum[hi, cols] * f))
    return float(np.sqrt(t_phases * t_tail)) / bandwidth


def decode_attention_time(c, peak: float, bandwidth: float, ctx, q_len,
                          q_heads: int, kv_heads: int, k_dim: int, v_dim: int | None = None,
                          kv_bytes: float = 2.0) -> float:
    """Seconds for one decode/verify attention kernel over a batch.

    c: an AttentionCurve or its PreparedAttention. ctx: KV length each sequence attends to (array);
    q_len: new query tokens per sequence (array or int). q_heads, kv_heads: per GPU. k_dim/v_dim: head dims
    of K and V (MLA: latent 576 / 512 with kv_heads 1).
    """
    p = c if isinstance(c, PreparedAttention) else PreparedAttention(c)
    ctx = np.asarray(ctx, dtype=float)
    if ctx.size == 0:
        return 0.0
    v_dim = k_dim if v_dim is None else v_dim
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
    if p.phases and ctx.size > 1 and ctx.min() != ctx.max():
        t_mem = mixed_batch_time(p, float(np.log2(group)), per_seq_bytes, per_head, ctx, bandwidth)
    elif p.cta > 0:
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


def fluid_time(size, count, aggregate: float, cap: float) -> float:
    """Seconds until every stream is done when `count[i]` streams of `size[i]` bytes share `aggregate`
    bytes/s, none faster than `cap` bytes/s (processor sharing, shortest streams finish first)."""
    order = np.argsort(size)
    s = np.asarray(size, dtype=float)[order]
    n = np.asarray(count, dtype=float)[order]
    active = np.cumsum(n[::-1])[::-1]
    ds = np.diff(s, prepend=0.0)
    return float(np.sum(ds / np.minimum(cap, aggregate / active)))


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
    return c.e_max * f ** c.hill / (f ** c.hill + c.flops_half ** c.hill)
