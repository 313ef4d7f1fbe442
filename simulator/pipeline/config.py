"""Scenario sections of the RL pipeline: pipeline mode and placement, training, reward.

Units: seconds, tokens, GPUs. Defaults follow NeMo-RL's GRPO defaults where NeMo-RL has one
(examples/configs/grpo_math_1B.yaml; see workloads/published/nemo_rl_recipes.md) and are stated otherwise.
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from simulator.yamlio import YamlModel


class PipelineConfig(YamlModel):
    """How generation and training share the cluster, and how many RL steps to simulate."""

    mode: Literal["sync", "async"] = "sync"
    colocated: bool = True
    max_staleness: int = Field(1, ge=0, description="async: max trajectory age in steps "
                                                    "(grpo.async_grpo.max_trajectory_age_steps); also caps the prompt "
                                                    "groups in flight at prompts x max_staleness")
    in_flight_weight_updates: bool = Field(False, description="async: refit while rollouts are in flight (they pause "
                                                              "for the transfer) instead of waiting for them")
    cosim_engines: int = Field(8, ge=1, description="async: generation engines co-simulated with the collector and "
                                                     "the trainer (the pool's identical engines sampled, each with "
                                                     "its share of the prompt groups; more is slower and closer)")
    generation_gpus: int | None = Field(None, ge=1,
                                        description="not colocated: GPUs of the generation pool (default: half)")
    steps: int = Field(5, ge=1, description="RL steps to simulate")
    warmup_steps: int | None = Field(None, ge=0, description="steps left out of the steady-state means (default: "
                                     "staleness+1 in async, 0 in sync)")
    data_s: float = Field(0.0, ge=0, description="data loading / processing per step (s)")
    refit_overhead_s: float = Field(0.0, ge=0, description="fixed cost of a weight refit: engine wake-up, "
                                                           "KV-cache re-allocation, bookkeeping (s)")
    refit_ipc_efficiency: float = Field(0.5, gt=0, le=1, description="colocated refit: fraction of HBM bandwidth "
                                                                     "the CUDA-IPC weight copies reach")
    refit_copy_overhead_s: float = Field(0.0, ge=0, description="colocated refit: host seconds per tensor copy "
                                                                "(pack and load each copy every tensor of the export)")
    refit_network_efficiency: float = Field(0.8, gt=0, le=1, description="non-colocated refit: fraction of link "
                                                                         "bandwidth of the NCCL broadcast (when "
                                                                         "refit_broadcast_bytes_per_s is not set)")
    refit_broadcast_bytes_per_s: float | None = Field(None, gt=0, description="non-colocated refit: bytes/s at which "
                                                      "the whole bf16 model reaches every generation GPU (fitted on a "
                                                      "reported refit: simulator/fit/refit.py)")
    offload_optimizer: bool = Field(True, description="colocated: optimizer state leaves the GPU during generation")
    offload_optimizer_bytes_per_param: float = Field(
        10.0, gt=0, description="colocated: optimizer-state bytes moved per parameter of the GPU's optimizer shard "
                                "(NeMo-RL issue #3976: 4.94 GB for Qwen2.5-0.5B's 494M parameters, i.e. fp32 exp_avg "
                                "and exp_avg_sq plus the 16-bit remainder of the fp32 master weights)")
    engine_sleep_level: Literal[0, 1, 2] = Field(
        1, description="colocated: the vLLM sleep level between generation and training (NeMo-RL's vllm_worker.py "
                       "sleeps at level 1: the engine's weights are copied to pinned host memory after generation "
                       "and back before the refit; 2 discards them, 0 does not sleep)")
    response_growth_per_step: float = Field(0.0, gt=-1.0, description="relative growth of response lengths per RL "
                                            "step (lengths scale by (1 + growth)^step; > -1)")
    distinct_rollouts: int = Field(2, ge=0, description="when nothing changes between steps (no length growth, no "
                                                        "acceptance drift), simulate at most this many rollouts and "
                                                        "reuse them in turn (0: simulate every step)")


class DraftTrainingConfig(YamlModel):
    """Online training of the draft (EAGLE-3 head) on the verifier's hidden states during RL."""

    enabled: bool = False
    cost_fraction: float = Field(0.0, ge=0, description="extra training time as a fraction of the policy training "
                                                        "time; 0 = costed from the draft's FLOPs")


class TrainingConfig(YamlModel):
    """Megatron training of the policy (and the reference/policy logprob passes)."""

    gpus: int | None = Field(None, ge=1,
                             description="training GPUs (default: cluster.gpus when colocated, else the rest)")
    tensor_parallel_size: int = Field(1, ge=1)
    pipeline_parallel_size: int = Field(1, ge=1)
    context_parallel_size: int = Field(1, ge=1)
    expert_parallel_size: int = Field(1, ge=1)
    expert_tensor_parallel_size: int = Field(1, ge=1, description="Megatron's expert_tensor_parallel_size "
                                             "(NeMo-RL's default 1: full-width experts)")
    dtype: Literal["bf16", "fp8"] = "bf16"
    global_batch_size: int = Field(512, ge=1, description="samples per optimizer step (policy.train_global_batch_size)")
    micro_batch_tokens: int = Field(4096, ge=1, description="packed tokens per training micro-batch")
    logprob_micro_batch_tokens: int = Field(8192, ge=1)
    activation_recompute: Literal["none", "selective", "full"] = "none"
    reference_logprobs: bool = Field(True, description="KL to a reference policy: a second logprob forward")
    framework_efficiency: float = Field(1.0, gt=0, le=1)
    logprob_framework_efficiency: float = Field(1.0, gt=0, le=1)
    grad_sync_exposed: float = Field(0.2, ge=0, le=1)
    moe_layer_overhead_s: float = Field(0.0, ge=0, description="seconds a routed-MoE layer costs per training "
                                        "micro-batch (forward + backward) beyond its kernels (fitted: "
                                        "simulator/fit/moe_training.py)")
    draft: DraftTrainingConfig = DraftTrainingConfig()


class RewardConfig(YamlModel):
    """Reward computation (math verification on CPU workers)."""

    s_per_sample: float = Field(0.0, ge=0, description="CPU seconds to score one sample")
    workers: int = Field(8, ge=1, description="parallel reward workers (NeMo-RL math env: 8)")
    fixed_s: float = Field(0.0, ge=0, description="seconds per RL step beyond the samples' scoring")
    per_sample: bool | None = Field(
        None, description="each sample is scored as it finishes, beside the generation, leaving only the last "
                          "sample's score after it (NeMo-RL's AsyncLLM rollout path: async GRPO, and sync runs with "
                          "vllm_cfg.async_engine); false: the whole batch after generation (the vllm.LLM path); "
                          "default: true in async mode")
