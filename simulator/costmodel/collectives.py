"""Collective communication: latency + bandwidth with a size-dependent efficiency (pure functions).

Algorithm bytes per GPU (NCCL's bus-bandwidth convention): all-reduce 2(n-1)/n * size, all-gather and
reduce-scatter (n-1)/n * size (size = the full output / input), all-to-all (n-1)/n * size (size = the
per-GPU send buffer), send/recv size. The latency grows with the ring steps (LATENCY_STEPS).

`vllm_all_reduce` is the tensor-parallel all-reduce of a vLLM engine: vLLM dispatches it by size to its custom
all-reduce (one- or two-stage, over CUDA IPC) or to PyTorch symmetric memory (NVLink multicast or two-shot) within a
node, and to NCCL beyond them (costmodel/vllm_all_reduce.py). Each of those backends has its own curve (op
`vllm_<backend>`), fitted on vLLM's published benchmark timings (calibration/collectives/README.md), with NCCL
all-reduce's byte convention (2(n-1)/n x size; the fitted efficiency absorbs what each algorithm really moves) and a
latency that grows with the n-1 peers each one synchronises with. Where vLLM runs NCCL, or the profile has no curve for the
backend, the NCCL all-reduce curve prices it.
"""
from __future__ import annotations

import math
from functools import lru_cache

from simulator.costmodel.vllm_all_reduce import CURVED_BACKENDS, dispatched_backend
from simulator.hardware import CollectiveCurve, HardwareProfile, Link

NCCL_ALGO_FACTOR = {
    "all_reduce": lambda n: 2.0 * (n - 1) / n,
    "all_gather": lambda n: (n - 1) / n,
    "reduce_scatter": lambda n: (n - 1) / n,
    "all_to_all": lambda n: (n - 1) / n,
    "send_recv": lambda n: 1.0,
}
NCCL_OPS = tuple(NCCL_ALGO_FACTOR)  # what NCCL (and measure_nccl.py) runs
VLLM_OPS = tuple(f"vllm_{b}" for b in CURVED_BACKENDS)  # vLLM's own all-reduce kernels, NCCL's byte convention
ALGO_FACTOR = {**NCCL_ALGO_FACTOR, **dict.fromkeys(VLLM_OPS, NCCL_ALGO_FACTOR["all_reduce"])}

# ring steps of the latency term: a ring all-reduce is a reduce-scatter then an all-gather (2(n-1) steps);
# all-to-all exchanges with n-1 peers; a send/recv is one message.
LATENCY_STEPS = {
    "all_reduce": lambda n: 2.0 * (n - 1),
    "all_gather": lambda n: float(n - 1),
    "reduce_scatter": lambda n: float(n - 1),
    "all_to_all": lambda n: float(n - 1),
    "send_recv": lambda n: 1.0,
    **dict.fromkeys(VLLM_OPS, lambda n: float(n - 1)),  # one kernel synchronising with n-1 peers
}

# used when a profile has no fitted curve for a collective: the link's own latency, and NCCL rings reaching
# about 80% of the link bandwidth for large messages (half of that at 1 MiB). An assumption, not a fit.
DEFAULT_EFF_MAX = 0.8
DEFAULT_HALF_BYTES = float(1 << 20)


def link_for(hw: HardwareProfile, group: int) -> tuple[str, Link]:
    """The link a group of `group` GPUs talks over: NVLink if it fits one scale-up domain."""
    if group <= hw.scale_up.domain_size:
        return "scale_up", hw.scale_up
    return "scale_out", hw.scale_out


def group_efficiency(curve: CollectiveCurve, group: int) -> float:
    """eff_max for `group` GPUs: `group_eff` interpolated linearly in log2(group), clamped to the measured range."""
    ge = curve.group_eff
    if not ge:
        return curve.eff_max
    if group in ge:
        return ge[group]
    keys = sorted(ge)
    if group <= keys[0]:
        return ge[keys[0]]
    if group >= keys[-1]:
        return ge[keys[-1]]
    hi = next(k for k in keys if k > group)
    lo = max(k for k in keys if k < group)
    w = (math.log2(group) - math.log2(lo)) / (math.log2(hi) - math.log2(lo))
    return ge[lo] + w * (ge[hi] - ge[lo])


def curve_time(curve: CollectiveCurve, bandwidth: float, op: str, algo_bytes: float, group: int) -> float:
    """Seconds for `algo_bytes` algorithm bytes per GPU under a fitted curve."""
    lat = curve.latency_s + curve.latency_per_step_s * LATENCY_STEPS[op](group)
    eff = group_efficiency(curve, group)
    if curve.half_bytes <= 0:
        ramp = 1.0
    else:
        h = curve.hill
        ramp = 1.0 / (1.0 + (curve.half_bytes / algo_bytes) ** h)  # = B^h / (B^h + half^h)
    return lat + algo_bytes / (bandwidth * eff * ramp)


def collective_time(hw: HardwareProfile, op: str, size_bytes: float, group: int, span: int | None = None) -> float:
    """Seconds for collective `op` over `group` GPUs on `size_bytes` (the per-GPU buffer).

    span: how many GPUs the participants are spread over (a model replica's size); the collective runs over
    NVLink when that fits one scale-up domain, else over the scale-out network.
    """
    if group <= 1 or size_bytes <= 0:
        return 0.0
    spread = max(group, span or group)
    if op == "vllm_all_reduce":
        op, spread = _vllm_op(hw, size_bytes, group, spread)
    if op == "all_to_all" and spread > hw.scale_up.domain_size:
        return _split_all_to_all(hw, size_bytes, group, spread)
    link_name, link = link_for(hw, spread)
    return curve_time(_curve(hw, link_name, link, op), link.bandwidth, op, ALGO_FACTOR[op](group) * size_bytes, group)


def vllm_backend(hw: HardwareProfile, size_bytes: float, group: int) -> str:
    """The backend vLLM runs this TP all-reduce on: its custom all-reduce and symmetric memory only within one host
    (a TP group across the compute trays of an NVL72 rack runs NCCL over NVLink)."""
    return dispatched_backend(hw.compute_capability, group, size_bytes, one_node=group <= hw.host_gpus())


def _vllm_op(hw: HardwareProfile, size_bytes: float, group: int, spread: int) -> tuple[str, int]:
    op = "vllm_" + vllm_backend(hw, size_bytes, group)
    if op in hw.efficiency.collectives.get("scale_up", {}):
        return op, group  # within one node, whatever else the replica spans
    return "all_reduce", spread


def _curve(hw: HardwareProfile, link_name: str, link: Link, op: str) -> CollectiveCurve:
    curve: CollectiveCurve | None = hw.efficiency.collectives.get(link_name, {}).get(op)
    return curve if curve is not None else _default_curve(link.latency_s)


def _split_all_to_all(hw: HardwareProfile, size_bytes: float, group: int, spread: int) -> float:
    """An all-to-all whose `group` GPUs are spread evenly over several scale-up domains: each GPU's share for
    peers in its own domain crosses NVLink while the rest crosses the network, at the same time (the slower
    part sets the time)."""
    domains = math.ceil(spread / hw.scale_up.domain_size)
    local_peers = max(group / domains - 1.0, 0.0)
    remote_peers = group - 1.0 - local_peers
    t = 0.0
    for name, link, peers in (("scale_up", hw.scale_up, local_peers), ("scale_out", hw.scale_out, remote_peers)):
        if peers > 0:
            t = max(t, curve_time(_curve(hw, name, link, "all_to_all"), link.bandwidth, "all_to_all",
                                  peers / group * size_bytes, group))
    return t


@lru_cache(maxsize=64)
def _default_curve(latency_s: float) -> CollectiveCurve:
    return CollectiveCurve(latency_s=latency_s, eff_max=DEFAULT_EFF_MAX, half_bytes=DEFAULT_HALF_BYTES,
                           fit_note="default: no fitted curve (assumption)")
