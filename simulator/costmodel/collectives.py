"""Collective communication: latency + bandwidth with a size-dependent efficiency (pure functions).

Algorithm bytes per GPU (NCCL's bus-bandwidth convention): all-reduce 2(n-1)/n * size, all-gather and
reduce-scatter (n-1)/n * size (size = the full output / input), all-to-all (n-1)/n * size, send/recv size.
"""
from __future__ import annotations

from simulator.hardware import CollectiveCurve, HardwareProfile, Link

ALGO_FACTOR = {
    "all_reduce": lambda n: 2.0 * (n - 1) / n,
    "all_gather": lambda n: (n - 1) / n,
    "reduce_scatter": lambda n: (n - 1) / n,
    "all_to_all": lambda n: (n - 1) / n,
    "send_recv": lambda n: 1.0,
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


def collective_time(hw: HardwareProfile, op: str, size_bytes: float, group: int, span: int | None = None) -> float:
    """Seconds for collective `op` over `group` GPUs on `size_bytes` (the per-GPU buffer).

    span: how many GPUs the participants are spread over (a model replica's size); the collective runs over
    NVLink when that fits one scale-up domain, else over the scale-out network.
    """
    if group <= 1 or size_bytes <= 0:
        return 0.0
    link_name, link = link_for(hw, max(group, span or group))
    curve: CollectiveCurve | None = hw.efficiency.collectives.get(link_name, {}).get(op)
    algo = ALGO_FACTOR[op](group) * size_bytes
    if curve is None:
        lat, eff_max, half = link.latency_s, DEFAULT_EFF_MAX, DEFAULT_HALF_BYTES
    else:
        lat, eff_max, half = curve.latency_s, curve.eff_max, curve.half_bytes
    return lat + algo / (link.bandwidth * eff_max * algo / (algo + half))
