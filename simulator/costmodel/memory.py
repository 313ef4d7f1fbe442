"""GPU memory of one model replica: weights, KV cache per token, activation workspace (bytes, per GPU)."""
from __future__ import annotations

import math
from dataclasses import dataclass

from simulator.costmodel.parallelism import Parallelism
from simulator.errors import RlsimError
from simulator.hardware import DTYPE_BYTES, HardwareProfile
from simulator.model_config import ModelConfig

GIB = float(1 << 30)


def weight_bytes_per_gpu(model: ModelConfig, par: Parallelism, w_bytes: float = 2.0) -> float:
    """Weights on the most loaded GPU: layers split over pp stages, dense parts over tp, experts over ep*tp;
    the embedding and lm_head are vocabulary-parallel over tp (both counted, as on a 1-stage replica)."""
    stage_layers = math.ceil(model.layers / par.pp)
    frac = stage_layers / model.layers
    dense = model.dense_layers * model.layer_params(False) if model.dense_layers else 0
    moe_layers = model.moe_layers
    moe_non_expert = moe_experts = 0
    if moe_layers:
        per_layer = model.layer_params(True)
        experts = model.moe.experts * model.expert_params()
        moe_non_expert = moe_layers * (per_layer - experts)
        moe_experts = moe_layers * experts
    layers = (dense + moe_non_expert) / par.tp + moe_experts / (par.tp * par.ep)
    return (layers * frac + (model.embedding_params() + model.draft_extra_params()) / par.tp) * w_bytes


def kv_heads_per_gpu(model: ModelConfig, tp: int) -> int:
    a = model.attention
    if a.kind == "mla":
        return 1  # the latent is replicated across tensor-parallel ranks
    return max(1, a.kv_heads // tp)


def kv_bytes_per_token(model: ModelConfig, par: Parallelism, kv_bytes: float = 2.0) -> float:
    """KV-cache bytes one token of context occupies on one GPU (its stage's layers, its KV heads)."""
    a = model.attention
    stage_layers = math.ceil(model.layers / par.pp)
    if a.kind == "mla":
        per_layer = a.kv_cache_elems_per_token
    else:
        per_layer = 2 * kv_heads_per_gpu(model, par.tp) * a.head_dim
    return stage_layers * per_layer * kv_bytes


def activation_bytes(model: ModelConfig, par: Parallelism, tokens: int, logit_tokens: int,
                     a_bytes: float = 2.0) -> float:
    """Peak activation workspace of one forward step on one GPU: the widest intermediate of a layer
    (qkv, MLP gate_up or the routed expert rows) plus the residual stream, and fp32 logits."""
    h = model.hidden
    widest = (model.attention.q_dim + 2 * model.attention.kv_cache_elems_per_token) / par.tp
    if model.dense_layers:
        widest = max(widest, 2 * model.dense_ffn / par.tp)
    if model.is_moe:
        widest = max(widest, model.moe.top_k * (h + 2 * model.moe.expert_ffn / par.tp))
    per_token = (3 * h + widest) * a_bytes
    vocab = model.draft.draft_vocab if (model.draft and model.draft.draft_vocab) else model.vocab
    return tokens * per_token + logit_tokens * vocab / par.tp * 4.0


@dataclass(frozen=True)
class MemoryPlan:
    """Bytes per GPU."""

    capacity: float
    weights: float
    kv_per_token: float
    activations: float

    @property
    def kv_capacity_bytes(self) -> float:
        return max(0.0, self.capacity - self.weights - self.activations)

    @property
    def kv_capacity_tokens(self) -> int:
        return int(self.kv_capacity_bytes // self.kv_per_token) if self.kv_per_token > 0 else 0


def memory_plan(hw: HardwareProfile, model: ModelConfig, par: Parallelism, dtype: str = "bf16",
                kv_dtype: str = "bf16", max_tokens: int = 8192, utilization: float = 0.9,
                extra_weight_bytes: float = 0.0) -> MemoryPlan:
    """What is left for the KV cache after weights and workspace, vLLM-style (`utilization` of HBM)."""
    w = weight_bytes_per_gpu(model, par, DTYPE_BYTES[dtype]) + extra_weight_bytes
    act = activation_bytes(model, par, max_tokens, max_tokens)
    return MemoryPlan(capacity=hw.hbm_bytes * utilization, weights=w,
                      kv_per_token=kv_bytes_per_token(model, par, DTYPE_BYTES[kv_dtype]), activations=act)


def check_batch_fits(plan: MemoryPlan, kv_tokens: float, field: str = "batch",
                     weights_field: str | None = None) -> None:
    """RlsimError saying by how much a batch with `kv_tokens` tokens of context overflows the GPU; weights that
    alone overflow it name `weights_field` (the parallelism), the rest `field`."""
    if plan.weights > plan.capacity and weights_field:
        raise RlsimError(f"weights alone need {plan.weights / GIB:.1f} GiB per GPU, more than the "
                         f"{plan.capacity / GIB:.1f} GiB usable: raise the parallelism", weights_field)
    need = plan.weights + plan.activations + kv_tokens * plan.kv_per_token
    if need > plan.capacity:
        raise RlsimError(
            f"does not fit in GPU memory: needs {need / GIB:.1f} GiB per GPU (weights {plan.weights / GIB:.1f} + "
            f"KV cache {kv_tokens * plan.kv_per_token / GIB:.1f} + activations {plan.activations / GIB:.1f}) but "
            f"{plan.capacity / GIB:.1f} GiB are usable; {(need - plan.capacity) / GIB:.1f} GiB too many", field)
