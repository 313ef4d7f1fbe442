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
