"""Routed mixture-of-experts MLP: expected experts touched, expert GEMMs, routing overhead; training-style
grouped-GEMM experts (pure functions)."""
from __future__ import annotations

import math

import numpy as np

from simulator.hardware import MoECurve, MoETrainCurve


def expected_experts_touched(tokens: float, experts: int, top_k: int) -> float:
    """Expected number of distinct experts that T tokens hit when each picks top_k of `experts` uniformly.

    A token misses a given expert with probability 1 - k/E, so E * (1 - (1 - k/E)^T).
    """
    if tokens <= 0:
        return 0.0
    return experts * (1.0 - (1.0 - top_k / experts) ** tokens)


def moe_rows(c: MoECurve, tokens: float, experts: int, top_k: int, local_experts: int) -> float:
    """Rows the local expert GEMMs compute: padded to the uniform capacity, or exactly the routed rows."""
    if c.reads_all_experts:
        return local_experts * max(1, math.ceil(tokens * top_k / experts))
    return tokens * top_k * local_experts / experts


def moe_time(c: MoECurve, peak: float, bandwidth: float, tokens: float, hidden: int, expert_ffn: int,
             experts: int, top_k: int, local_experts: int | None = None, w_bytes: float = 2.0,
             a_bytes: float = 2.0) -> float:
    """Seconds for routing + expert GEMMs (gate_up, act, down) of one MoE layer on one GPU.

    tokens: tokens entering the layer (all ranks); local_experts: experts held by this GPU (E / EP);
    expert_ffn: the per-GPU slice of the expert width. The router GEMM is costed separately.
    """
    if tokens <= 0:
        return 0.0
    local = experts if local_experts is None else local_experts
    rows = moe_rows(c, tokens, experts, top_k, local)
    touched = local if c.reads_all_experts else expected_experts_touched(tokens, experts, top_k) * local / experts
    flops = 2.0 * rows * 3 * hidden * expert_ffn
    bytes_ = touched * 3 * hidden * expert_ffn * w_bytes + rows * (2 * hidden + 3 * expert_ffn) * a_bytes
    tc = flops / (peak * c.c_eff)
    tm = bytes_ / (bandwidth * c.m_eff)
    routed = tokens * top_k * local / experts
    return (tc ** c.p + tm ** c.p) ** (1.0 / c.p) + c.route_s + c.route_s_per_row * routed


def moe_permute_bytes(tokens: float, hidden: int, top_k: int, a_bytes: float = 2.0) -> float:
    """HBM bytes of one permutation to expert order and back (gather tokens * top_k rows: read + write; scatter-add
    them into the tokens' rows: read the rows, read + write the output)."""
    return (3 * tokens * top_k + 2 * tokens) * hidden * a_bytes


def moe_permute_time(c: MoETrainCurve, bandwidth: float, tokens: float, hidden: int, top_k: int) -> float:
    """Seconds of one permutation to expert order and back at the curve's fraction of HBM bandwidth."""
    return moe_permute_bytes(tokens, hidden, top_k) / (bandwidth * c.permute_eff)


def moe_train_times(c: MoETrainCurve, peak: float, bandwidth: float, tokens: float, hidden: int, expert_ffn: int,
                    experts: int, top_k: int, local_experts: int | None = None) -> tuple[float, float]:
    """(forward, backward) seconds of one MoE layer's routed experts in training, on one GPU (MoETrainCurve).

    tokens: tokens of this GPU's micro-batch entering the layer; with balanced routing the GPU computes
    tokens * top_k rows over its local experts (E / EP); expert_ffn: the per-GPU slice of the expert width.
    The router GEMM and expert-parallel all-to-alls are costed elsewhere.
    """
    if tokens <= 0:
        return 0.0, 0.0
    local = experts if local_experts is None else local_experts
    rows = tokens * top_k
    m = rows / local
    x = np.log(np.asarray(c.rows_per_expert, dtype=float))
    lm = math.log(max(m, 1e-9))
    eff = float(np.interp(lm, x, c.fwd_eff))
    ratio = float(np.interp(lm, x, c.bwd_ratio))
    gemm = 2.0 * rows * 3 * hidden * expert_ffn / (peak * eff)
    permute = moe_permute_time(c, bandwidth, tokens, hidden, top_k)
    return gemm + permute, ratio * gemm + permute
