"""FlashAttention-3's split-KV schedule of a decode/verify batch on persistent CTAs (pure functions, seconds).

The attention tables describe batches whose sequences share one context, with the work spread evenly over the GPU;
a batch costs what its uniform twin (the same sequences at their mean context) costs there, times
`schedule_factor`: how much longer its work items take when FA3 splits them and hands them to its persistent CTAs
in whole waves (hardware.SplitSchedule).
"""
from __future__ import annotations

import heapq
import math

import numpy as np

from simulator.costmodel.bandwidth_sharing import fluid_time
from simulator.hardware import SplitSchedule


def split_counts(s: SplitSchedule, ctx: np.ndarray, kv_heads: int, graph: bool) -> np.ndarray:
    """KV splits per sequence: FA3's dynamic split (flash_prepare_scheduler.cu) when vLLM replays the batch in a
    CUDA graph (`graph`; vLLM caps the splits at `max_splits` there); otherwise one split once the batch has at
    least `ctas` (sequence, KV head) pairs, else the dynamic rule as well (an approximation of FA3's heuristic)."""
    blocks = np.ceil(ctx / s.block_tokens)
    if not graph and ctx.size * kv_heads >= s.ctas:
        return np.ones_like(blocks)
    per_cta = math.ceil(s.split_margin * kv_heads * float(blocks.sum()) / s.ctas)
    return np.clip(np.ceil(blocks / max(per_cta, 1)), 1, s.max_splits)


def _rates(s: SplitSchedule, hbm_bandwidth: float) -> tuple[float, float]:
    """Bytes/s the running CTAs share, and each one's when all `ctas` run."""
    aggregate = s.bandwidth_fraction * hbm_bandwidth
    return aggregate, min(s.cta_bytes_per_s, aggregate / s.ctas)


def _running_at_last_start(work: np.ndarray, count: np.ndarray, ctas: int) -> tuple[float, np.ndarray, np.ndarray]:
    """List scheduling, in order, of count[i] items of work[i] bytes on `ctas` CTAs. Every running CTA moves
    bytes at the same rate, so the schedule in bytes per CTA does not depend on the rate. Returns the bytes per CTA
    moved when the last item starts and the (end, count) of the items running from then on."""
    if float(count.sum()) <= ctas:
        return 0.0, work, count
    works, counts = work.tolist(), count.astype(np.int64).tolist()
    heap: list[tuple[float, int]] = []
    push, pop = heapq.heappush, heapq.heappop
    free, now, i, left, n = ctas, 0.0, 0, counts[0], len(works)
    while True:
        while free and i < n:
            k = min(free, left)
            push(heap, (now + works[i], k))
            free -= k
            left -= k
            if not left:
                i += 1
                left = counts[i] if i < n else 0
        if i >= n:
            break
        now, k = pop(heap)
        free += k
        while heap and heap[0][0] == now:
            free += pop(heap)[1]
    return now, np.array([e for e, _ in heap]), np.array([k for _, k in heap], dtype=float)


def schedule_time(s: SplitSchedule, hbm_bandwidth: float, ctx: np.ndarray, kv_heads: int, bytes_per_token: float,
                  graph: bool) -> float:
    """Seconds FA3 takes over the batch (ctx: KV length per sequence; bytes_per_token: K and V of one KV head;
    graph: replayed in a CUDA graph)."""
    splits = split_counts(s, ctx, kv_heads, graph)
    aggregate, saturated = _rates(s, hbm_bandwidth)
    work = ctx * bytes_per_token / splits + s.item_s * saturated
    count = kv_heads * splits
    started, ends, counts = _running_at_last_start(work, count, s.ctas)
    # until the last item starts every CTA runs; then the running items drain, sharing the bandwidth
    t = started / saturated + fluid_time(ends, counts, aggregate, s.cta_bytes_per_s, started)
    return t + s.fixed_s + (s.combine_s if splits.max() > 1 else 0.0)


def uniform_times(s: SplitSchedule, hbm_bandwidth: float, batch: int, ctx: float, kv_heads: int,
                  bytes_per_token: float, graph: bool) -> tuple[float, float]:
    """Seconds FA3 takes over `batch` sequences at one context, in closed form: in whole waves of `ctas` equal
    items (`schedule_time` of the batch), and with the work spread evenly over the CTAs instead (what the attention
    tables, interpolated between measured batch sizes, describe once divided by the waves)."""
    split = float(split_counts(s, np.full(batch, ctx), kv_heads, graph)[0])
    aggregate, saturated = _rates(s, hbm_bandwidth)
    work = ctx * bytes_per_token / split + s.item_s * saturated
    items = int(batch * kv_heads * split)
    waves = (items - 1) // s.ctas
    last = items - waves * s.ctas
    combine = s.combine_s if split > 1 else 0.0
    in_waves = waves * work / saturated + work / min(s.cta_bytes_per_s, aggregate / last) + s.fixed_s + combine
    if items <= s.ctas:
        return in_waves, in_waves
    return in_waves, items * work / (s.ctas * saturated) + s.fixed_s + combine


def schedule_factor(s: SplitSchedule, hbm_bandwidth: float, ctx: np.ndarray, kv_heads: int, bytes_per_token: float,
                    graph: bool) -> float:
    """The batch's schedule time over its uniform twin's (the same sequences at their mean context) with the work
    spread evenly: the factor on the tables' price of the twin (an equal-context batch: its whole-wave factor)."""
    in_waves, balanced = uniform_times(s, hbm_bandwidth, ctx.size, float(ctx.mean()), kv_heads, bytes_per_token, graph)
    if ctx.min() == ctx.max():
        return in_waves / balanced
    return schedule_time(s, hbm_bandwidth, ctx, kv_heads, bytes_per_token, graph) / balanced
