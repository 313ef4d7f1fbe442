"""Training-side costs of one GRPO step (seconds): policy/reference logprobs, policy training, weight refit.

Forward passes reuse the calibrated step model (simulator.costmodel.step) on packed micro-batches under the
training tensor/expert parallelism, with logits for every token. A backward pass costs the hardware profile's
measured backward / forward ratios (`efficiency.train_backward`): the GEMMs' data + weight gradients (about 2x their
forward, also applied to the elementwise kernels) and the causal attention's backward (about 3.2x its forward on
the H200); activation recompute adds forwards; the distributed optimizer's gradient
reduce-scatter and parameter all-gather run over the data-parallel group, partly hidden behind the backward pass;
the Adam step is memory-bound. Routed MoE experts, where the hardware profile has a training curve
(`efficiency.moe_train`, fitted on measured grouped GEMMs), are priced with it instead: grouped-GEMM forward and
backward at their measured efficiencies (the backward is not 2 forwards there) plus the permutation to expert
order and back. What the kernel model does not see (data loading, kernel gaps between layers,
load imbalance of packed micro-batches, stragglers) is one `framework_efficiency` factor on the compute, stated
and calibrated in the scenario.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from simulator.costmodel.collectives import collective_time
from simulator.costmodel.moe import moe_train_times
from simulator.costmodel.parallelism import Parallelism, check_parallelism
from simulator.costmodel.step import StepCostModel
from simulator.errors import RlsimError, check_at_least
from simulator.hardware import HardwareProfile, load_hardware
from simulator.model_config import ModelConfig, load_model

# bytes per parameter the Adam step reads and writes with fp32 master weights and moments:
# read fp32 param, fp32 grad, m, v (16 B); write fp32 param, m, v and the bf16 copy (14 B)
ADAM_BYTES_PER_PARAM = 30.0


@dataclass(frozen=True)
class TrainSetup:
    """Training parallelism and knobs. gpus = tp * pp * cp * ep_dp... (dp derived)."""

    gpus: int
    tp: int = 1
    pp: int = 1
    cp: int = 1
    ep: int = 1
    etp: int = 1  # expert tensor parallelism (Megatron's expert_tensor_parallel_size; NeMo-RL's default 1)
    dtype: str = "bf16"
    micro_batch_tokens: int = 8192  # packed tokens per micro-batch per GPU (sequence packing)
    recompute: str = "none"  # none | selective | full
    grad_sync_exposed: float = 0.2  # fraction of the gradient reduce-scatter + all-gather not hidden
    framework_efficiency: float = 1.0  # multiplies compute time by 1/efficiency (calibrated, stated)
    logprob_framework_efficiency: float = 1.0
    moe_layer_overhead_s: float = 0.0  # seconds per routed-MoE layer per training micro-batch (fwd + bwd), fitted

    @property
    def dp(self) -> int:
        return self.gpus // (self.tp * self.pp * self.cp)


@dataclass(frozen=True)
class TrainCost:
    """Seconds by part; total_s is their sum."""

    total_s: float
    parts: dict = field(default_factory=dict)


def check_setup(model: ModelConfig, s: TrainSetup, prefix: str = "training.") -> None:
    check_at_least(s.gpus, 1, prefix + "gpus")
    per = s.tp * s.pp * s.cp
    if s.gpus % per:
        name = "tensor_parallel_size" if s.gpus % s.tp else ("pipeline_parallel_size" if s.gpus % (s.tp * s.pp)
                                                             else "context_parallel_size")
        raise RlsimError(f"tp x pp x cp = {s.tp} x {s.pp} x {s.cp} does not divide the {s.gpus} training GPUs",
                         prefix + name)
    if s.ep > 1 and (s.tp * s.cp * s.dp) % s.ep:
        # Megatron's MoE parallel folding: expert parallelism spans the tensor x context x data-parallel ranks
        raise RlsimError(f"ep={s.ep} does not divide the tensor x context x data-parallel ranks "
                         f"({s.tp * s.cp * s.dp})", prefix + "expert_parallel_size")
    if s.etp < 1 or (s.tp * s.cp * s.dp) % (s.etp * s.ep):
        raise RlsimError(f"etp x ep = {s.etp} x {s.ep} does not divide the tensor x context x data-parallel ranks "
                         f"({s.tp * s.cp * s.dp})", prefix + "expert_tensor_parallel_size")
    if s.recompute not in ("none", "selective", "full"):
        raise RlsimError(f"unknown recompute {s.recompute!r} (none, selective, full)", prefix + "activation_recompute")
    if not 0 < s.framework_efficiency <= 1 or not 0 < s.logprob_framework_efficiency <= 1:
        raise RlsimError("must be in (0, 1]", prefix + "framework_efficiency")
    try:
        check_parallelism(model, Parallelism(s.tp, 1, s.pp))
        if s.ep > 1 and (not model.is_moe or model.moe.experts % s.ep):
            check_parallelism(model, Parallelism(1, s.ep, 1))
        if s.etp > 1 and (not model.is_moe or model.moe.expert_ffn % s.etp):
            raise RlsimError(f"etp={s.etp} does not divide the experts' width" if model.is_moe
                             else f"etp={s.etp} needs a model with experts ({model.name} has none)", "etp")
    except RlsimError as e:
        names = {"tp": "tensor_parallel_size", "ep": "expert_parallel_size", "pp": "pipeline_parallel_size",
                 "etp": "expert_tensor_parallel_size"}
        raise RlsimError(e.message, prefix + names.get(e.field, str(e.field))) from None


def _local_params(model: ModelConfig, s: TrainSetup) -> tuple[float, float]:
    """(non-expert, routed-expert) parameters on one training GPU: non-expert weights over tp x pp, routed experts
    over etp x ep x pp (Megatron's parallel folding), embeddings over tp."""
    frac = math.ceil(model.layers / s.pp) / model.layers
    experts = model.moe_layers * model.moe.experts * model.expert_params() if model.is_moe else 0
    rest = model.total_params() - experts - model.embedding_params()
    return rest / s.tp * frac + model.embedding_params() / s.tp, experts / (s.ep * s.etp) * frac


def train_params_per_gpu(model: ModelConfig, s: TrainSetup) -> float:
    """Parameters on one training GPU (see _local_params)."""
    return sum(_local_params(model, s))


def optimizer_params_per_gpu(model: ModelConfig, s: TrainSetup) -> float:
    """Parameters whose optimizer state one training GPU holds under Megatron's distributed optimizer: its
    non-expert weights sharded over the data x context-parallel ranks, its routed experts over the expert-data-
    parallel ranks (tp x cp x dp / (etp x ep): the ranks holding the same experts)."""
    dense, experts = _local_params(model, s)
    return dense / max(s.dp * s.cp, 1) + experts / max(s.tp * s.cp * s.dp // (max(s.ep, 1) * s.etp), 1)


def check_memory(hw: HardwareProfile, model: ModelConfig, s: TrainSetup, prefix: str = "training.") -> None:
    """Weights and gradients (bf16) of a GPU's shard plus its share of the distributed optimizer's state (fp32
    master weights and two moments: 12 bytes per parameter of its optimizer shard) must fit in memory,
    leaving 10% for activations (activation memory depends on recompute and is not modelled further)."""
    local = train_params_per_gpu(model, s)
    need = local * 4.0 + 12.0 * optimizer_params_per_gpu(model, s)
    if need > 0.9 * hw.hbm_bytes:
        raise RlsimError(f"the model does not fit for training: {need / 2**30:.0f} GiB per GPU of weights, gradients "
                         f"and optimizer state > {0.9 * hw.hbm_bytes / 2**30:.0f} GiB (90% of HBM); raise tensor, "
                         f"pipeline or expert parallelism, or add GPUs", prefix + "gpus")


def _host_rates(hw: HardwareProfile) -> tuple[float, float, float]:
    """(pageable device-to-host, pageable host-to-device, pinned) bytes/s: the fitted host-copy rates, else the
    datasheet host link for all three."""
    c = hw.efficiency.host_copy
    return (c.pageable_d2h, c.pageable_h2d, c.pinned_eff * hw.host_bandwidth) if c else (hw.host_bandwidth,) * 3


def colocated_offload_time(hw: HardwareProfile, model: ModelConfig, s: TrainSetup,
                           optimizer_bytes_per_param: float) -> TrainCost:
    """Seconds per RL step a colocated trainer spends moving its state off the GPU before generation and back
    after it, as NeMo-RL's Megatron worker does (workloads/published/nemo_rl_recipes.md sec. 4b): the optimizer
    state of its shard tensor by tensor into fresh pageable host memory and back (`optimizer_bytes_per_param`
    bytes per parameter of the shard), the bf16 parameters to reused pinned buffers and back. Gradient buffers
    are freed and re-allocated, not copied. The offload parts run in NeMo-RL's refit (before generation), the
    onload parts in its logprob/training preparation (after it)."""
    d2h, h2d, pinned = _host_rates(hw)
    opt = optimizer_bytes_per_param * optimizer_params_per_gpu(model, s)
    par = 2.0 * train_params_per_gpu(model, s)
    parts = {"optimizer_offload": opt / d2h, "params_offload": par / pinned,
             "optimizer_onload": opt / h2d, "params_onload": par / pinned}
    return TrainCost(sum(parts.values()), parts)


def engine_sleep_copy_time(hw: HardwareProfile, engine_weight_bytes: float) -> float:
    """Seconds of one copy of a vLLM engine's weights (`engine_weight_bytes` per GPU) between the GPU and pinned host
    memory: vLLM's sleep at level 1 backs the weights up to a pinned CPU tensor (CuMemAllocator) and its wake-up
    copies them back, once each per colocated RL step."""
    return engine_weight_bytes / _host_rates(hw)[2]


def reference_swap_time(hw: HardwareProfile, model: ModelConfig, s: TrainSetup) -> float:
    """Seconds per RL step to swap the reference weights into the training model for the reference logprobs and
    back (NeMo-RL's use_reference_model): one copy of the bf16 weights to pinned host memory, two copies from it."""
    return 3 * 2.0 * train_params_per_gpu(model, s) / _host_rates(hw)[2]


def pack(seq_lens: np.ndarray, capacity: int) -> list[np.ndarray]:
    """First-fit-decreasing packing of sequences into micro-batches of at most `capacity` tokens (longer
    sequences get a micro-batch of their own)."""
    bins: list[list[int]] = []
    room: list[int] = []
    for L in sorted((int(x) for x in seq_lens), reverse=True):
        for i, r in enumerate(room):
            if L <= r:
                bins[i].append(L)
                room[i] -= L
                break
        else:
            bins.append([L])
            room.append(max(capacity - L, 0))
    return [np.array(b, dtype=np.int64) for b in bins]


class TrainingCostModel:
    """Costs of the training-side stages for one model on one GPU type."""

    def __init__(self, hardware: HardwareProfile | str, model: ModelConfig | str, setup: TrainSetup):
        self.hw = load_hardware(hardware)
        self.model = load_model(model)
        check_setup(self.model, setup)
        self.s = setup
        # one pipeline stage's forward is the full model's forward / pp (layers split evenly); routed experts run
        # as grouped GEMMs over the rows routed to them (Megatron's grouped GEMM: the fused-MoE curve), their
        # expert-parallel all-to-alls are added per micro-batch
        self.fwd = StepCostModel(self.hw, self.model, tp=setup.tp, ep=1, pp=1, dtype=setup.dtype,
                                 moe_kernel="fused" if self.model.is_moe else None)
        self.backward = self.hw.efficiency.train_backward
        if self.backward is None:
            raise RlsimError(f"profile {self.hw.name} has no training backward ratios (efficiency.train_backward)",
                             "hardware")
        check_memory(self.hw, self.model, setup)

    # ------------------------------------------------------------------ pieces
    def _split(self, seq_lens: np.ndarray) -> list[np.ndarray]:
        """Micro-batches of one data-parallel rank (sequences dealt round-robin, then packed)."""
        s = self.s
        lens = np.asarray(seq_lens, dtype=np.int64)
        if s.cp > 1:
            lens = np.ceil(lens / s.cp).astype(np.int64)
        order = np.argsort(-lens, kind="stable")
        mine = lens[order][:: max(s.dp, 1)]  # the most loaded rank: the longest sequence lands on it
        return pack(mine, s.micro_batch_tokens)

    def forward_time(self, mb: np.ndarray) -> tuple[float, dict]:
        """One micro-batch's forward over every layer (s), with the attention share, the routed experts'
        training forward and backward (`experts_fwd`, `experts_bwd`, when the profile has a training MoE curve)
        and, for MoE models, the expert collectives (`expert_comm`: dispatch + combine all-to-alls, and the
        expert-tensor-parallel gather / reduce-scatter).

        `mb`: this GPU's packed sequence lengths (already split over context parallelism). Expert layers follow
        Megatron-Core's MoE parallel folding and alltoall dispatcher: sequence parallelism (required for MoE with
        TP > 1) leaves each GPU 1/TP of the micro-batch's tokens, which it sends to their experts over an
        expert-parallel group of EP GPUs spaced ETP apart; an expert-tensor-parallel group (ETP GPUs) gathers what
        its members received and runs it through experts 1/ETP wide, then reduce-scatters the result."""
        r = self.fwd.step(mb, mb, logit_tokens=int(mb.sum()))
        t = r.time_s
        bd = dict(r.breakdown)
        m, s = self.model, self.s
        if s.cp > 1:
            # ring attention: a rank's L/cp queries attend over the whole causal context (1/cp of the sequence's
            # attention), where the step model priced a sequence of L/cp tokens alone (1/cp^2)
            extra = (s.cp - 1) * float(bd["attention"])
            t += extra
            bd["attention"] = float(bd["attention"]) + extra
        curve = self.hw.efficiency.moe_train
        tokens = float(mb.sum())
        local_tokens = tokens / s.tp
        if m.is_moe and curve is not None:
            mo = m.moe
            # replace what the step model priced (the inference curve over all tokens, experts split over tp, every
            # expert local at ep=1) with the training curve: this GPU's 1/tp of the tokens, full-width experts,
            # balanced routing over its E / EP experts
            inference = self.fwd.routed_expert_time(tokens)
            f, b = moe_train_times(curve, self.fwd.peak, self.fwd.bw, local_tokens * s.etp, m.hidden,
                                   mo.expert_ffn // s.etp, mo.experts, mo.top_k, mo.experts // s.ep)
            t += m.moe_layers * (f - inference)
            bd["experts_fwd"], bd["experts_bwd"] = m.moe_layers * f, m.moe_layers * b
        if m.is_moe and s.ep > 1:
            # dispatch and combine: every local token to its top_k experts (Megatron's alltoall dispatcher)
            size = local_tokens * m.moe.top_k * m.hidden * 2.0
            a2a = 2 * m.moe_layers * collective_time(self.hw, "all_to_all", size, s.ep, s.ep * s.etp)
            t += a2a
            bd["expert_comm"] = a2a
        if m.is_moe and s.etp > 1:
            # all-gather the received rows over the expert-tensor-parallel group, reduce-scatter the outputs
            rows = local_tokens * m.moe.top_k * s.etp * m.hidden * 2.0
            ag = m.moe_layers * (collective_time(self.hw, "all_gather", rows, s.etp)
                                 + collective_time(self.hw, "reduce_scatter", rows, s.etp))
            t += ag
            bd["expert_comm"] = bd.get("expert_comm", 0.0) + ag
        return t, bd

    def backward_time(self, fwd: float, attn: float, experts_fwd: float = 0.0, experts_bwd: float = 0.0,
                      comm: float = 0.0) -> float:
        """Seconds of the backward of a forward of `fwd` seconds, of which `attn` attention, `experts_fwd` routed
        experts (whose backward, `experts_bwd`, the training MoE curve prices) and `comm` expert collectives (the
        backward moves gradients of the same size): the rest at the profile's GEMM ratio, attention at its own."""
        b = self.backward
        return b.gemm * (fwd - attn - experts_fwd - comm) + b.attention * attn + experts_bwd + comm

    def layer_times(self, mb: np.ndarray) -> tuple[float, float]:
        """(forward, backward) seconds of one dense transformer layer over a packed micro-batch `mb` (sequence
        lengths) on one GPU: its kernels under the tensor parallelism, without collectives or the lm_head, as
        calibration/h200/measured/measure_train_layer.py times them."""
        if self.model.is_moe:
            raise RlsimError(f"{self.model.name}: layer_times prices dense layers only", "model")
        one = self.model.model_copy(update={"layers": 1})
        mb = np.asarray(mb, dtype=np.int64)
        r = StepCostModel(self.hw, one, tp=self.s.tp, dtype=self.s.dtype).step(mb, mb, logit_tokens=0)
        fwd = r.time_s - float(r.breakdown["comm"])
        return fwd, self.backward_time(fwd, float(r.breakdown["attention"]))

    def logprob_time(self, seq_lens: np.ndarray, passes: int = 2) -> TrainCost:
        """Policy and reference logprobs: `passes` forward passes over every sequence (no backward)."""
        mbs = self._split(seq_lens)
        fwd = sum(self.forward_time(mb)[0] for mb in mbs) / self.s.pp
        bubble = fwd / max(len(mbs), 1) * (self.s.pp - 1) if self.s.pp > 1 else 0.0
        t = passes * (fwd + bubble) / self.s.logprob_framework_efficiency
        return TrainCost(t, {"forward": passes * fwd, "pipeline_bubble": passes * bubble})

    def train_time(self, seq_lens: np.ndarray, optimizer_steps: int = 1) -> TrainCost:
        """Forward + backward over every sequence, gradient sync and optimizer step(s)."""
        s, m = self.s, self.model
        mbs = self._split(seq_lens)
        fwd = attn = xf = xb = comm = 0.0
        for mb in mbs:
            t, bd = self.forward_time(mb)
            fwd += t
            attn += bd["attention"]
            xf += bd.get("experts_fwd", 0.0)
            xb += bd.get("experts_bwd", 0.0)
            comm += bd.get("expert_comm", 0.0)
        fwd, attn, xf, xb, comm = fwd / s.pp, attn / s.pp, xf / s.pp, xb / s.pp, comm / s.pp
        bwd = self.backward_time(fwd, attn, xf, xb, comm)
        recompute = {"none": 0.0, "selective": attn, "full": fwd}[s.recompute]
        compute = (fwd + bwd + recompute) / s.framework_efficiency
        # 1F1B: each optimizer step's micro-batches fill and drain the pipeline once, (pp - 1) micro-batch times
        flushes = min(max(optimizer_steps, 1), max(len(mbs), 1))
        bubble = compute / max(len(mbs), 1) * (s.pp - 1) * flushes if s.pp > 1 else 0.0
        # distributed optimizer: reduce-scatter bf16 gradients, all-gather bf16 parameters, over dp
        local_params = train_params_per_gpu(m, s)
        grad = 0.0
        if s.dp > 1:
            grad = (collective_time(self.hw, "reduce_scatter", 2 * local_params, s.dp, s.gpus)
                    + collective_time(self.hw, "all_gather", 2 * local_params, s.dp, s.gpus))
        exposed = s.grad_sync_exposed * grad * optimizer_steps
        adam = optimizer_steps * ADAM_BYTES_PER_PARAM * optimizer_params_per_gpu(m, s) / (
            self.hw.hbm_bandwidth * self.hw.efficiency.elementwise["mul"].eff)
        moe_fixed = moe_layer_overhead(m, s, len(mbs))
        total = compute + bubble + exposed + adam + moe_fixed
        return TrainCost(total, {"forward": fwd, "backward": bwd, "recompute": recompute,
                                 "framework_overhead": compute - (fwd + bwd + recompute), "pipeline_bubble": bubble,
                                 "grad_sync": exposed, "optimizer": adam, "moe_layer_overhead": moe_fixed})


def moe_layer_overhead(model: ModelConfig, s: TrainSetup, micro_batches: int) -> float:
    """Seconds a pipeline stage spends beyond its kernels in routed-MoE layers over one training pass: the fixed
    `s.moe_layer_overhead_s` per MoE layer (moe_layers / pp on a stage) per micro-batch (forward + backward).

    What it stands for: Megatron-Core's MoE layer around its grouped GEMMs (router, token permutation, the
    dispatcher's token-count synchronisations with the host, uneven routing across expert-parallel ranks), which
    the kernel model does not see. Fitted on a published stage time (simulator/fit/moe_training.py)."""
    if not model.is_moe or s.moe_layer_overhead_s == 0.0:
        return 0.0
    return s.moe_layer_overhead_s * micro_batches * model.moe_layers / s.pp


# NeMo-RL's trainer exports bf16 Hugging Face weights for every refit; FP8 engines quantize what they receive
# (nemo_rl/models/generation/vllm/quantization/fp8.py::load_weights, read at xiuhu17/RL @ab4e0a54)
EXPORT_BYTES_PER_PARAM = 2.0


def refit_broadcast_seconds(params: float, bytes_per_s: float) -> float:
    """Seconds for NeMo-RL's non-colocated refit to deliver the whole bf16 export of `params` parameters to every
    generation GPU (`packed_broadcast_consumer` over all of `state_dict_info`, src 0, vllm_backend.py) at
    `bytes_per_s`, whatever the generation parallelism or dtype."""
    return EXPORT_BYTES_PER_PARAM * params / bytes_per_s


def refit_copy_seconds(traffic_bytes: float, copies: float, hbm_bandwidth: float, efficiency: float,
                       per_copy_s: float) -> float:
    """Seconds of `copies` device copies moving `traffic_bytes` (read + write): the GPU's copying and the host's
    launching overlap, so the longer of the two sets the time."""
    return max(traffic_bytes / (hbm_bandwidth * efficiency), copies * per_copy_s)


def refit_time(hw: HardwareProfile, model: ModelConfig, colocated: bool, train: TrainSetup, gen_tp: int,
               gen_ep: int, gen_gpus: int, dtype_bytes: float = 2.0, overhead_s: float = 0.0,
               ipc_efficiency: float = 0.5, network_efficiency: float = 0.8,
               draft_params: float = 0.0, broadcast_bytes_per_s: float | None = None,
               copy_overhead_s: float = 0.0) -> TrainCost:
    """Weight refit from training to generation (s), as NeMo-RL does it (constants fitted in simulator/fit/refit.py).

    Colocated: every GPU packs the trainer's whole bf16 export into its CUDA-IPC buffer, tensor by tensor, and the
    engine beside it copies its shard of each tensor into its weights in the generation dtype (`dtype_bytes`); the
    copies run at `ipc_efficiency` of HBM bandwidth unless the host's `copy_overhead_s` per tensor copy is the longer
    (measured: calibration/h200/measured/refit_copy.csv). The trainer's own gathers of the export are not priced. Not
    colocated: the whole bf16 export is broadcast to every generation GPU, at `broadcast_bytes_per_s` (fitted on a
    reported refit) or, without it, at `network_efficiency` of the link the two pools share. `overhead_s`: fixed
    cost of the refit (engine wake-up, KV-cache re-allocation, bookkeeping), from the scenario.
    """
    params = model.total_params() + draft_params
    if colocated:
        # an engine GPU holds 1/tp of the dense weights and 1/(tp * ep) of the routed experts
        experts = model.moe_layers * model.moe.experts * model.expert_params() if model.is_moe else 0
        shard = (params - experts) / gen_tp + experts / (gen_tp * max(gen_ep, 1))
        traffic = 2 * EXPORT_BYTES_PER_PARAM * params + (EXPORT_BYTES_PER_PARAM + dtype_bytes) * shard
        t = refit_copy_seconds(traffic, 2 * model.hf_tensor_count(), hw.hbm_bandwidth, ipc_efficiency,
                               copy_overhead_s)
        return TrainCost(t + overhead_s, {"copy": t, "overhead": overhead_s})
    if broadcast_bytes_per_s is not None:
        t = refit_broadcast_seconds(params, broadcast_bytes_per_s)
    else:
        link = hw.scale_out if gen_gpus + train.gpus > hw.scale_up.domain_size else hw.scale_up
        t = refit_broadcast_seconds(params, link.bandwidth * network_efficiency) + link.latency_s
    return TrainCost(t + overhead_s, {"transfer": t, "overhead": overhead_s})
