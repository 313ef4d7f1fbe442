"""The rate of NeMo-RL's non-colocated weight refit, fitted on a reported refit time (pure functions).

NeMo-RL's non-colocated refit broadcasts the whole model, as the trainer's bf16 Hugging Face export, from one training
rank to every vLLM worker (`packed_broadcast_consumer` over all of `state_dict_info`, src 0, in
nemo_rl/models/generation/vllm/vllm_backend.py; FP8 generation quantizes on receipt, quantization/fp8.py
`load_weights`). So a refit moves EXPORT_BYTES_PER_PARAM x all parameters whatever the generation parallelism or
dtype, and takes the fixed refit overhead plus those bytes over the broadcast's rate.
"""
from __future__ import annotations

from simulator.errors import RlsimError

EXPORT_BYTES_PER_PARAM = 2.0  # the trainer's bf16 export


def refit_broadcast_bytes(params: float) -> float:
    """Bytes one non-colocated refit delivers to every generation GPU."""
    return EXPORT_BYTES_PER_PARAM * params


def fit_refit_broadcast_rate(params: float, seconds: float, overhead_s: float) -> float:
    """Broadcast rate (bytes/s) that makes a refit of `params` parameters take `seconds` with `overhead_s` fixed."""
    if seconds <= overhead_s:
        raise RlsimError(f"a refit of {seconds} s leaves nothing for the transfer after the {overhead_s} s overhead",
                         "pipeline.refit_overhead_s")
    return refit_broadcast_bytes(params) / (seconds - overhead_s)


def predict_refit_seconds(params: float, rate: float, overhead_s: float) -> float:
    """Seconds of a non-colocated refit of `params` parameters at `rate` bytes/s."""
    return overhead_s + refit_broadcast_bytes(params) / rate


# ---------------------------------------------------------------- the colocated refit's on-GPU copies
# The measured copies (calibration/h200/measured/refit_copy.csv): the time per byte is fitted on a dense model whose
# few large tensors keep the GPU busy, the time per tensor copy on an MoE model whose thousands of small expert
# tensors leave it waiting for the host; the other cases are held out (tests/test_refit.py).
COPY_FIT_BANDWIDTH_CASE = "qwen3-8b"
COPY_FIT_LAUNCH_CASE = "qwen3-30b-a3b-24-layers"


def hf_tensor_count(model) -> int:
    """Tensors of a model's Hugging Face export (the refit streams them one by one): per layer the attention's
    projections and norms and the MLP's (every routed expert's gate, up and down), plus embedding, final norm and
    lm_head."""
    a = model.attention
    if a.kind == "mla":
        attn = (4 if a.q_lora_rank else 2) + 3  # q_a/q_a_norm/q_b or q; kv_a, kv_a_norm, kv_b; o below
    else:
        attn = 3 + (2 if a.qk_norm else 0)
    per_layer_common = attn + 1 + 2  # + o_proj, input and post-attention norms
    total = 0
    for i in range(model.layers):
        moe = model.moe is not None and i >= model.moe.first_dense_layers
        mlp = (1 + 3 * model.moe.experts + 3 * model.moe.shared_experts) if moe else 3
        total += per_layer_common + mlp
    return total + 2 + (0 if model.tied_embeddings else 1)


def fit_refit_copy(rows, hbm_bandwidth: float) -> tuple[float, float]:
    """(HBM efficiency of the copies, seconds per tensor copy) from the measured table's two fitting cases."""
    by = {r["case"]: r for r in rows}
    for case in (COPY_FIT_BANDWIDTH_CASE, COPY_FIT_LAUNCH_CASE):
        if case not in by:
            raise RlsimError(f"the measured refit copies lack the case {case!r}", "refit_copy.csv")
    bw = by[COPY_FIT_BANDWIDTH_CASE]
    eff = float(bw["traffic_bytes"]) / (float(bw["total_s"]) * hbm_bandwidth)
    ln = by[COPY_FIT_LAUNCH_CASE]
    per_copy = float(ln["total_s"]) / (2.0 * float(ln["tensors"]))
    return eff, per_copy


def predict_copy_seconds(traffic_bytes: float, copies: float, hbm_bandwidth: float, efficiency: float,
                         per_copy_s: float) -> float:
    """Seconds of `copies` device copies moving `traffic_bytes` (read + write): the GPU's copying and the host's
    launching overlap, so the longer of the two sets the time."""
    return max(traffic_bytes / (hbm_bandwidth * efficiency), copies * per_copy_s)
