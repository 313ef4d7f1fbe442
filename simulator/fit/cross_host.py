"""The further cost per iteration of a vLLM engine whose GPUs span hosts (`engine.cross_host_step_overhead_s`),
fitted on a published generation time.

An engine whose tensor-parallel group crosses hosts (TP 16 on 8-GPU HGX servers, TP 8 on the 4-GPU compute trays
of a GB200 NVL72 rack) already pays NCCL instead of vLLM's custom all-reduce in the kernel model
(simulator/costmodel/vllm_all_reduce.py). What else it pays per iteration is not measured here: candidates are the
executor's control plane across hosts (vLLM's Ray executor sends each iteration's scheduler output to the remote
workers over Ray compiled-graph channels, not shared memory; vllm-project/vllm#36836) and collective latency across
hosts beyond the NCCL curves. Both are a fixed time per iteration, which the published 235B runs support: on
H100 the rlsim steps of the TP-16 rows on 128 and 256 GPUs were 33 and 36 s short, nearly the same on both sizes
although generation is 18% shorter on 256 GPUs, and the generation of those rows is bound by the longest
response's ~8,000 decode iterations.

`fit_cross_host_step_overhead` returns the seconds per iteration that make one scenario's simulated generation equal
a published one (the generation is linear in it: two runs), to be checked on runs it was not fitted on.
"""
from __future__ import annotations

from collections.abc import Callable

from simulator.fit.linear_cost import fit_linear_cost

FIELD = "engine.cross_host_step_overhead_s"


def fit_cross_host_step_overhead(generation_s: Callable[[float], float], published_s: float) -> float:
    """Seconds per engine iteration that make `generation_s(overhead)` (the simulated generation timer of one RL
    step, seconds) equal `published_s`; at least 0. One error line if the scenario's engines stay within a host."""
    return fit_linear_cost(generation_s, published_s, FIELD, hint=" (do its engines span hosts?)")
