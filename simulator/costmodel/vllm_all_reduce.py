"""Which backend a vLLM engine's tensor-parallel all-reduce runs on (pure functions).

vLLM (v0.11 on, PyTorch symmetric memory on by default) tries, for a TP group of 2, 4, 6 or 8 GPUs of one node:
its custom all-reduce while the message is below min(8 MiB, CUSTOM_ALL_REDUCE_MAX_SIZES[cc][ws]) (the one-stage
kernel for ws = 2, for ws <= 4 below 512 KiB and for ws <= 8 below 256 KiB, else the two-stage one), then
symmetric memory below SYMM_MEM_ALL_REDUCE_MAX_SIZES[cc][ws] (multimem for the world sizes of
_WORLD_SIZES_MULTIMEM, else two-shot), then NCCL. A group across nodes, or of another size, runs NCCL.
Tables: vllm/distributed/device_communicators/all_reduce_utils.py (vllm-project/vllm @00d618aab604),
symm_mem.py (@00859a52088e), csrc/custom_all_reduce.cuh; every gate is strict (size < max).
"""
from __future__ import annotations

MiB = 1 << 20
KiB = 1 << 10
CA_DEFAULT_MAX = 8 * MiB
CUSTOM_ALL_REDUCE_MAX_SIZES = {"9.0": {2: 64 * MiB, 4: 32 * MiB, 6: MiB // 2, 8: MiB // 4},
                               "10.0": {2: 2 * MiB, 4: 2 * MiB, 6: 1 * MiB, 8: 1 * MiB}}
SYMM_MEM_ALL_REDUCE_MAX_SIZES = {"9.0": {2: 64 * MiB, 4: 32 * MiB, 6: 64 * MiB, 8: 64 * MiB},
                                 "10.0": {2: 8 * MiB, 4: 32 * MiB, 6: 128 * MiB, 8: 128 * MiB}}
WORLD_SIZES_MULTIMEM = {"9.0": (4, 6, 8), "10.0": (6, 8)}
CA_WORLD_SIZES = (2, 4, 6, 8)
BACKENDS = ("ca_1stage", "ca_2stage", "symm_mem_multimem", "symm_mem_two_shot", "pynccl")
CURVED_BACKENDS = BACKENDS[:-1]  # each has its own curve; vLLM's NCCL fallback is priced with NCCL's


def dispatched_backend(cc: str | None, world_size: int, nbytes: float, one_node: bool = True) -> str:
    """The backend of a `nbytes` all-reduce over a `world_size`-GPU TP group on GPUs of compute capability `cc`.

    Without symmetric-memory tables for `cc` (an A100, say) the custom all-reduce keeps its 8 MiB limit."""
    if not one_node or world_size not in CA_WORLD_SIZES:
        return "pynccl"
    ca_max = min(CA_DEFAULT_MAX, CUSTOM_ALL_REDUCE_MAX_SIZES.get(cc, {}).get(world_size, CA_DEFAULT_MAX))
    if nbytes < ca_max:
        one = world_size == 2 or (world_size <= 4 and nbytes < 512 * KiB) or (world_size <= 8 and nbytes < 256 * KiB)
        return "ca_1stage" if one else "ca_2stage"
    if nbytes < SYMM_MEM_ALL_REDUCE_MAX_SIZES.get(cc, {}).get(world_size, 0):
        return "symm_mem_multimem" if world_size in WORLD_SIZES_MULTIMEM[cc] else "symm_mem_two_shot"
    return "pynccl"
