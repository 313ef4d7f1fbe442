"""GPU hardware profiles: datasheet peaks, links, and the fitted efficiency curves of the cost model.

A profile is one YAML file in `hardware_profiles/` (found by name or alias, case-insensitively).
Base profiles (`hardware_profiles/base/*.yaml`) carry only datasheet numbers; `rlsim fit kernels`
adds the fitted `efficiency` section and writes the calibrated profile. Units: FLOP/s, bytes, bytes/s,
seconds. `sources` maps a field path to where its number came from.
"""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from simulator.catalogue import Catalogue
from simulator.errors import FIELD_MARK, RlsimError
from simulator.paths import hardware_dir
from simulator.yamlio import YamlModel

Dtype = Literal["bf16", "fp8", "fp4"]
DTYPE_BYTES = {"bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "fp4": 0.5}
Positive = Annotated[float, Field(gt=0)]  # an efficiency, a rate, a peak: zero or less would divide by zero
NonNegative = Annotated[float, Field(ge=0)]  # seconds, bytes, penalties
Count = Annotated[int, Field(ge=1)]
NonNegativeCount = Annotated[int, Field(ge=0)]


def _check_axis(name: str, values: list[float]) -> None:
    """An interpolation axis: at least one value, strictly increasing (numpy's interp assumes it)."""
    if not values or any(b <= a for a, b in zip(values, values[1:])):
        raise ValueError(f"{FIELD_MARK}{name}: must be a non-empty, strictly increasing list (got {values})")


def _check_len(name: str, values: list, n: int, of: str) -> None:
    if len(values) != n:
        raise ValueError(f"{FIELD_MARK}{name}: needs {n} entries, one per {of} (got {len(values)})")


class Link(YamlModel):
    """A network: bandwidth per GPU per direction (bytes/s), latency of one message (s)."""

    bandwidth: float = Field(gt=0)
    latency_s: float = Field(ge=0)
    domain_size: int = Field(1, ge=1, description="GPUs reachable over this link (NVLink domain)")


class GemmShapeCorrection(YamlModel):
    """Measured/curve time ratio for one measured GEMM shape, by rows m (log-interpolated)."""

    n: Count
    k: Count
    m: list[Count]
    log_ratio: list[float]

    @model_validator(mode="after")
    def _table(self) -> GemmShapeCorrection:
        _check_axis("m", self.m)
        _check_len("log_ratio", self.log_ratio, len(self.m), "m")
        return self


class GemmCurve(YamlModel):
    """GEMM time for y[m,n] = x[m,k] @ W[n,k]^T (seconds).

    t_c = FLOPs / (peak * c_max * m/(m+m_half) * n/(n+n_half) * k/(k+k_half))
    t_m = bytes / (bandwidth * m_eff) * (1 + n_pen/n) * (1 + k_pen/k) + mem_latency_s
    t   = (t_c^p + t_m^p)^(1/p) + overhead_s, times exp(correction) for measured shapes (the nearest
    measured shapes, weighted, for others). p -> infinity is the plain roofline max.
    """

    c_max: Positive
    m_half: NonNegative
    n_half: NonNegative
    k_half: NonNegative
    m_eff: Positive
    n_pen: NonNegative
    k_pen: NonNegative
    mem_latency_s: NonNegative
    p: Positive
    overhead_s: NonNegative
    shapes: list[GemmShapeCorrection] = []
    neighbours: Count = 3
    fit_note: str = ""


class SplitSchedule(YamlModel):
    """How FlashAttention-3 (vLLM's fork, Hopper) splits the KV of a decode/verify batch and schedules the tiles.

    From the kernel's source (vllm-project/flash-attention, hopper/: flash_prepare_scheduler.cu, tile_scheduler.hpp):
    a sequence of ctx tokens has ceil(ctx / block_tokens) KV blocks; when vLLM replays a CUDA graph (at most
    `graph_tokens` new tokens in the batch) FA3 gives it clamp(ceil(blocks / per_cta), 1, max_splits) splits, with
    per_cta = ceil(split_margin x kv heads x the batch's blocks / ctas); above that vLLM lets the kernel choose, and
    a batch of at least `ctas` (sequence, KV head) pairs gets one split. Work items (sequence, KV head, split) go in
    batch order to `ctas` persistent CTAs, each taking the next item when it is free; the running CTAs share
    `bandwidth_fraction` of HBM bandwidth, none faster than `cta_bytes_per_s`; an item costs `item_s` beyond its
    bytes, the kernel `fixed_s`, and the combine kernel of split outputs `combine_s`. Fitted on measured mixed
    batches against their uniform twins; the tables it scales are fitted on equal-context timings divided by their
    whole-wave factors (simulator/fit/fit_attention.py::fit_scheduled_attention)."""

    ctas: Count = 132  # persistent CTAs, one per SM (H100/H200 SXM: 132 SMs)
    block_tokens: Count = 128  # kBlockN of the paged decode kernel
    max_splits: Count = 32  # vLLM's flash_attn_max_num_splits_for_cuda_graph
    split_margin: Positive = 1.1  # FA3's headroom on the blocks per CTA
    graph_tokens: NonNegativeCount = 512  # vLLM's largest CUDA-graph batch (tokens) at which it caps splits
    bandwidth_fraction: Positive  # of HBM bandwidth, shared by the running CTAs
    cta_bytes_per_s: Positive  # the most one CTA streams
    item_s: NonNegative  # seconds per work item beyond its bytes
    fixed_s: NonNegative  # seconds per kernel
    combine_s: NonNegative  # seconds of the combine kernel when any sequence splits
    fit_note: str = ""


class AttentionCurve(YamlModel):
    """Decode/verify attention over a paged or dense KV cache (seconds).

    Per sequence i: bytes_i = kv heads x ctx_i x (K dim + V dim) x dtype bytes, multiplied by (q heads / kv heads)
    when q_len >= 2 and the backend reads K/V once per query head (`reread_per_query_head`, SDPA's GQA path).
    Work items = sequences x kv heads x query tiles. The achieved fraction of HBM bandwidth comes from tables over
    log2(work items) x log2(ctx), one per GQA group size (q heads / kv heads), interpolated (bilinear in each
    table, linear in log2 group between tables, clamped at the edges):
    t = overhead_s + sum_i bytes_i / (bandwidth * eff(group, items, ctx_i)), bounded below by the compute time of
    the padded query tiles at `compute_eff` of peak. With `cta_bytes_per_s` set, the KV streams (one per sequence,
    KV head and query tile; in chunks of `split_tokens` when the kernel splits long sequences) share that aggregate
    bandwidth, none faster than `cta_bytes_per_s` (the critical path of mixed-context batches). With
    `split_schedule`, the tables describe equal-context batches with the work spread evenly over the GPU, and a
    batch costs its uniform twin's price (the same sequences at their mean context) times how much longer its work
    items take as FlashAttention-3 splits them and runs them in whole waves of its persistent CTAs (`SplitSchedule`).
    """

    overhead_s: list[NonNegative]  # per group
    log2_group: list[float]
    log2_items: list[float]
    log2_ctx: list[float]
    eff: list[list[list[Positive]]]  # [group][items][ctx]
    query_tile: Count = 128
    compute_eff: Positive = 0.35
    reread_per_query_head: bool = False
    cta_bytes_per_s: NonNegative = 0.0
    split_tokens: NonNegativeCount = 0
    split_schedule: SplitSchedule | None = None
    fit_note: str = ""

    @model_validator(mode="after")
    def _tables(self) -> AttentionCurve:
        for name in ("log2_group", "log2_items", "log2_ctx"):
            _check_axis(name, getattr(self, name))
        groups, items, ctx = len(self.log2_group), len(self.log2_items), len(self.log2_ctx)
        _check_len("overhead_s", self.overhead_s, groups, "log2_group")
        _check_len("eff", self.eff, groups, "log2_group")
        for table in self.eff:
            _check_len("eff", table, items, "log2_items")
            for row in table:
                _check_len("eff", row, ctx, "log2_ctx")
        return self


class PrefillCurve(YamlModel):
    """Causal prefill attention: t = overhead_s + F / (peak * eff), eff = e_max * F^g / (F^g + F_half^g)."""

    overhead_s: NonNegative
    e_max: Positive
    flops_half: NonNegative
    hill: Positive = 1.0
    fit_note: str = ""


class MoECurve(YamlModel):
    """A routed MoE MLP (router, top-k, gather, expert GEMMs, scatter), seconds.

    `reads_all_experts`: the kernel streams every local expert's weights whatever the routing (a batched GEMM
    with a uniform-routing capacity); otherwise only the expected number of distinct experts touched,
    E * (1 - (1 - k/E)^T). Expert GEMMs: roofline (t_c^p + t_m^p)^(1/p) with c_eff, m_eff; routing:
    route_s + route_s_per_row * T * k.
    """

    reads_all_experts: bool
    kernels: NonNegativeCount = 7  # kernels of the block besides the router GEMM (launches when not graph-captured)
    c_eff: Positive
    m_eff: Positive
    p: Positive
    route_s: NonNegative
    route_s_per_row: NonNegative
    fit_note: str = ""


class MoETrainCurve(YamlModel):
    """Training-style routed experts on one GPU (grouped GEMMs over rows already permuted by expert, as Megatron
    runs them), per layer, seconds, for R routed rows (tokens x top_k) and m = R / experts rows per expert:

    forward = 2 R * 3 * hidden * ffn / (peak * fwd_eff(m)); backward (data + weight gradients) = bwd_ratio(m) x
    forward; permutation (gather to expert order + scatter-add back, in the forward and again in the backward)
    = permute_bytes / (HBM bandwidth * permute_eff), permute_bytes = (3 R + 2 tokens) * hidden * 2.
    fwd_eff and bwd_ratio are tabulated at `rows_per_expert` (log-linear in m between, flat beyond).
    """

    rows_per_expert: list[float]
    fwd_eff: list[Positive]
    bwd_ratio: list[NonNegative]
    permute_eff: Positive
    fit_note: str = ""

    @model_validator(mode="after")
    def _tables(self) -> MoETrainCurve:
        _check_axis("rows_per_expert", self.rows_per_expert)
        _check_len("fwd_eff", self.fwd_eff, len(self.rows_per_expert), "rows_per_expert")
        _check_len("bwd_ratio", self.bwd_ratio, len(self.rows_per_expert), "rows_per_expert")
        return self


class TrainBackward(YamlModel):
    """A training layer's backward pass in units of its forward (seconds over seconds), per operator class:

    gemm: data + weight gradient GEMMs over the forward GEMM (also applied to the layer's elementwise kernels);
    attention: the causal attention kernel's backward over its forward (training's packed sequences).
    """

    gemm: Positive
    attention: Positive
    fit_note: str = ""


class HostCopyRates(YamlModel):
    """GPU <-> host copies as a trainer moves its state between phases, bytes/s (one direction at a time).

    pageable_d2h: tensor.to("cpu") into freshly allocated pageable host memory (the host's page faults and the
    driver's staging bound it, not the link); pageable_h2d: tensor.to("cuda") from pageable host memory;
    pinned_eff: copies between device memory and reused pinned host buffers, as a fraction of the profile's
    host_bandwidth (the link bounds them).
    """

    pageable_d2h: float = Field(gt=0)
    pageable_h2d: float = Field(gt=0)
    pinned_eff: float = Field(gt=0, le=1)
    fit_note: str = ""


class ElementwiseCurve(YamlModel):
    """A memory-bound kernel over a [rows, width] tensor (seconds).

    t = overhead_s + per_width_s * width + hbm_bytes / (bandwidth * eff) + l2_bytes / (bandwidth * eff_l2),
    where the first `l2_resident_bytes` of the traffic are served from L2 (the operands were just written by the
    previous kernel) and the rest from HBM; per_width_s is the per-row latency of row-wise kernels (norms).
    """

    overhead_s: NonNegative
    per_width_s: NonNegative = 0.0
    eff: Positive
    eff_l2: Positive = 1.0
    l2_resident_bytes: NonNegative = 0.0


class CollectiveCurve(YamlModel):
    """One collective on one link (seconds), for `group` GPUs moving algo_bytes B (costmodel/collectives.py):

    t = latency_s + latency_per_step_s * steps(group) + B / (link bandwidth * eff(group) * B^h / (B^h + half_bytes^h))

    steps: ring steps (2(n-1) all-reduce, n-1 all-gather / reduce-scatter / all-to-all, 1 send/recv); h = `hill`
    (1: the plain latency + bandwidth line; below 1: a gradual ramp to full bandwidth, as NCCL's protocols and
    channel counts change with size); eff(group) = `group_eff` at the measured group sizes (linear in log2(group)
    between them, the nearest one beyond), else eff_max. The defaults give the original three-parameter curve.
    """

    latency_s: float = Field(ge=0)
    latency_per_step_s: float = Field(0.0, ge=0)
    eff_max: float = Field(gt=0)
    half_bytes: float = Field(ge=0)
    hill: float = Field(1.0, gt=0, le=1)
    group_eff: dict[int, Positive] = {}
    fit_note: str = ""


class Efficiency(YamlModel):
    gemm: dict[str, GemmCurve] = {}  # by dtype
    attention: dict[str, AttentionCurve] = {}  # by backend
    prefill: PrefillCurve | None = None
    moe: dict[str, MoECurve] = {}  # by MoE kernel
    moe_train: MoETrainCurve | None = None  # training grouped-GEMM experts (training/cost.py)
    train_backward: TrainBackward | None = None  # backward / forward of a training layer (training/cost.py)
    host_copy: HostCopyRates | None = None  # trainer state offload/onload (pipeline/run.py)
    elementwise: dict[str, ElementwiseCurve] = {}  # rms_norm, add, silu, mul, copy
    collectives: dict[str, dict[str, CollectiveCurve]] = {}  # link -> op -> curve
    graph_kernel_s: NonNegative = 1.0e-6  # per-kernel floor inside a CUDA graph
    eager_launch_s: NonNegative = 4.0e-6  # CPU time to launch one kernel when not graph-captured
    eager_gap_s: NonNegative = 0.0  # GPU idle per kernel between eagerly launched kernels


class HardwareProfile(YamlModel):
    """One GPU model. Numbers are per GPU."""

    name: str
    aliases: list[str] = []
    derivation: str
    peak_flops: dict[str, Positive]  # dense FLOP/s by dtype
    hbm_bytes: Positive
    hbm_bandwidth: Positive  # bytes/s
    l2_bytes: NonNegative
    sm_count: Count
    compute_capability: str | None = Field(None, description="CUDA compute capability, e.g. '9.0' (vLLM picks its "
                                           "all-reduce backends by it)")
    scale_up: Link
    scale_out: Link
    gpus_per_host: int | None = Field(None, ge=1, description="GPUs under one operating system (a server or a "
                                      "compute tray); None: the scale-up domain. vLLM keeps its custom all-reduce "
                                      "and its executor's shared-memory control plane within one host")
    host_bandwidth: float = Field(gt=0, description="GPU <-> host memory, bytes/s per direction (datasheet)")
    attention_backend: str = "packed"
    moe_kernel: str = "padded_bmm"
    efficiency: Efficiency = Efficiency()
    sources: dict[str, str] = {}

    def host_gpus(self) -> int:
        """GPUs of one host: `gpus_per_host`, else the scale-up domain."""
        return self.gpus_per_host or self.scale_up.domain_size

    def peak(self, dtype: str) -> float:
        if dtype not in self.peak_flops:
            raise RlsimError(f"{self.name} has no {dtype} peak (has {', '.join(self.peak_flops)})", "dtype")
        return self.peak_flops[dtype]

    def gemm_curve(self, dtype: str) -> GemmCurve:
        curves = self.efficiency.gemm
        if dtype in curves:
            return curves[dtype]
        if "bf16" in curves:  # fall back to the bf16 efficiencies against this dtype's peak
            return curves["bf16"]
        raise RlsimError(f"profile {self.name} has no fitted GEMM efficiency; run `rlsim fit kernels`", "hardware")


_CATALOGUE = Catalogue("hardware", hardware_dir, HardwareProfile)


def hardware_names() -> list[str]:
    return _CATALOGUE.names()


def load_hardware(name_or_path: str, field: str = "hardware") -> HardwareProfile:
    """A profile by name/alias (case-insensitive) or YAML path."""
    return _CATALOGUE.load(name_or_path, field)
