"""One forward step of a batch of sequences: time and breakdown by operator class.

A step is one forward pass of a batch; each sequence brings its own (new tokens, context length), where
the context is the KV length its attention reads (cached tokens plus the new ones). The layer is the
kernel sequence of a vLLM-style decoder layer (and of the calibration harness's `Layer`): RMSNorm, qkv GEMM,
KV-cache write, attention, o GEMM, residual add, RMSNorm, MLP (gate_up GEMM, SiLU, mul, down GEMM) or a
routed MoE, residual add; then a final RMSNorm and the lm_head over the tokens that need logits.

Everything that depends only on the number of tokens is cached per token count, so a prediction costs a
few numpy operations over the sequences (see benchmarks/step_speed.py).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from simulator.costmodel.attention import PreparedAttention, decode_attention_time, prefill_attention_time
from simulator.costmodel.collectives import collective_time
from simulator.costmodel.elementwise import elementwise_time
from simulator.costmodel.gemm import correction_fn, gemm_time
from simulator.costmodel.memory import kv_heads_per_gpu
from simulator.costmodel.moe import moe_time
from simulator.costmodel.parallelism import Parallelism, check_parallelism
from simulator.errors import RlsimError
from simulator.hardware import DTYPE_BYTES, HardwareProfile, load_hardware
from simulator.model_config import ModelConfig, load_model

CLASSES = ("gemm", "attention", "moe", "comm", "other")
# a sequence with more new tokens than this runs the prefill attention kernel; up to it, decode/verify
DECODE_MAX_Q = 32


@dataclass(frozen=True)
class StepResult:
    """time_s: the step's latency (seconds); breakdown: seconds by operator class; kernels: launches."""

    time_s: float
    breakdown: dict = field(default_factory=dict)
    kernels: int = 0


@dataclass(frozen=True)
class _Gemm:
    name: str
    n: int
    k: int
    count: int  # per forward
    rows: str  # "tokens", "logits" or "tokens_x_heads"
    cls: str = "gemm"


class StepCostModel:
    """Step-time predictor for one model replica on one GPU type under a parallelism and dtype."""

    def __init__(self, hardware: HardwareProfile | str, model: ModelConfig | str, tp: int = 1, ep: int = 1,
                 pp: int = 1, dtype: str = "bf16", kv_dtype: str = "bf16", attention_backend: str | None = None,
                 moe_kernel: str | None = None, exclude_ops: tuple[str, ...] = (),
                 verify_attention_backend: str | None = None, all_reduce: str = "nccl"):
        """exclude_ops: GEMMs to leave out by name (e.g. an EAGLE head's `fc` after its first draft step).
        verify_attention_backend: the kernel that sequences with 2..32 new tokens (speculative verify) run on,
        when the engine routes them apart from single-token decodes (default: the same as decode).
        all_reduce: the tensor-parallel all-reduce, "nccl" (Megatron's) or "vllm" (a vLLM engine's dispatch to its
        custom / symmetric-memory all-reduce within a node; costmodel/collectives.py)."""
        self.hw = load_hardware(hardware)
        self.model = load_model(model)
        self.par = Parallelism(tp, ep, pp)
        check_parallelism(self.model, self.par)
        if dtype not in ("bf16", "fp8", "fp4"):
            raise RlsimError(f"unknown dtype {dtype!r} (bf16, fp8, fp4)", "dtype")
        self.dtype = dtype
        self.peak = self.hw.peak(dtype)
        self.peak_bf16 = self.hw.peak("bf16")
        self.bw = self.hw.hbm_bandwidth
        self.w_bytes = DTYPE_BYTES[dtype]
        if kv_dtype not in DTYPE_BYTES:
            raise RlsimError(f"unknown KV-cache dtype {kv_dtype!r} ({', '.join(DTYPE_BYTES)})", "kv_dtype")
        self.kv_dtype, self.kv_bytes = kv_dtype, DTYPE_BYTES[kv_dtype]
        eff = self.hw.efficiency
        self.gemm_curve = self.hw.gemm_curve(dtype)
        backend = attention_backend or self.hw.attention_backend
        if backend not in eff.attention:
            raise RlsimError(f"profile {self.hw.name} has no attention backend {backend!r} "
                             f"(has {', '.join(eff.attention) or 'none'})", "attention_backend")
        self.attn_curve = eff.attention[backend]
        self._attn = PreparedAttention(self.attn_curve)
        self._attn_verify = None
        if verify_attention_backend and verify_attention_backend != backend:
            if verify_attention_backend not in eff.attention:
                raise RlsimError(f"profile {self.hw.name} has no attention backend {verify_attention_backend!r} "
                                 f"(has {', '.join(eff.attention)})", "verify_attention_backend")
            self._attn_verify = PreparedAttention(eff.attention[verify_attention_backend])
        self.prefill_curve = eff.prefill
        self.moe_curve = None
        if self.model.is_moe:
            mk = moe_kernel or self.hw.moe_kernel
            if mk not in eff.moe:
                raise RlsimError(f"profile {self.hw.name} has no MoE kernel {mk!r} (has {', '.join(eff.moe)})",
                                 "moe_kernel")
            self.moe_curve = eff.moe[mk]
        for op in ("rms_norm", "add", "silu", "mul", "copy"):
            if op not in eff.elementwise:
                raise RlsimError(f"profile {self.hw.name} lacks the elementwise curve {op!r}", "hardware")
        if all_reduce not in ("nccl", "vllm"):
            raise RlsimError(f"unknown all-reduce {all_reduce!r} (nccl, vllm)", "all_reduce")
        self.all_reduce = all_reduce
        self.exclude_ops = tuple(exclude_ops)
        self._build()
        self._tok_cache: dict[tuple[int, int], tuple[float, dict, int]] = {}

    # ------------------------------------------------------------------ structure
    def _build(self) -> None:
        m, tp, a = self.model, self.par.tp, self.model.attention
        h = m.hidden
        self.stage_layers = m.layers  # latency of a step covers every stage
        self.hq = a.heads // tp
        self.hkv = kv_heads_per_gpu(m, tp)
        if a.kind == "mla":
            self.k_dim, self.v_dim = a.kv_lora_rank + a.qk_rope_head_dim, a.kv_lora_rank
            self.kv_write_elems = a.kv_lora_rank + a.qk_rope_head_dim
            self.head_elems = self.hq * a.v_head_dim
        else:
            self.k_dim = self.v_dim = a.head_dim
            self.kv_write_elems = 2 * self.hkv * a.head_dim
            self.head_elems = self.hq * a.head_dim
        gemms: list[_Gemm] = []
        L = m.layers
        if a.kind == "mla":
            qn = a.qk_nope_head_dim + a.qk_rope_head_dim
            if a.q_lora_rank:
                gemms += [_Gemm("q_a", a.q_lora_rank, h, L, "tokens"),
                          _Gemm("q_b", self.hq * qn, a.q_lora_rank, L, "tokens")]
            else:
                gemms.append(_Gemm("q", self.hq * qn, h, L, "tokens"))
            gemms += [_Gemm("kv_a", a.kv_lora_rank + a.qk_rope_head_dim, h, L, "tokens"),
                      # absorbed decode: q_nope -> latent and latent -> v, per head
                      _Gemm("w_uk", a.kv_lora_rank, a.qk_nope_head_dim, L, "tokens_x_heads"),
                      _Gemm("w_uv", a.v_head_dim, a.kv_lora_rank, L, "tokens_x_heads"),
                      _Gemm("o", h, self.hq * a.v_head_dim, L, "tokens")]
        else:
            qkv_in = h * (m.draft.attn_input_multiple if m.draft else 1)
            gemms += [_Gemm("qkv", (self.hq + 2 * self.hkv) * a.head_dim, qkv_in, L, "tokens"),
                      _Gemm("o", h, self.hq * a.head_dim, L, "tokens")]
        if m.dense_layers:
            f = m.dense_ffn // tp
            gemms += [_Gemm("gate_up", 2 * f, h, m.dense_layers, "tokens"),
                      _Gemm("down", h, f, m.dense_layers, "tokens")]
        if m.moe_layers:
            mo = m.moe
            gemms.append(_Gemm("router", mo.experts, h, m.moe_layers, "tokens", "moe"))
            if mo.shared_experts:
                sf = mo.shared_experts * (mo.shared_ffn or mo.expert_ffn) // tp
                gemms += [_Gemm("shared_gate_up", 2 * sf, h, m.moe_layers, "tokens", "moe"),
                          _Gemm("shared_down", h, sf, m.moe_layers, "tokens", "moe")]
        if m.draft is not None and m.draft.kind in ("eagle3", "eagle"):
            gemms.append(_Gemm("fc", h, m.draft.fused_hidden_states * h, 1, "tokens"))
        elif m.draft is not None and m.draft.kind == "mtp":
            gemms.append(_Gemm("eh_proj", h, 2 * h, 1, "tokens"))
        vocab = m.draft.draft_vocab if (m.draft and m.draft.draft_vocab) else m.vocab
        gemms.append(_Gemm("lm_head", math.ceil(vocab / tp), h, 1, "logits"))
        self.gemms = [g for g in gemms if g.name not in self.exclude_ops]
        self._corr = {g.name: correction_fn(self.gemm_curve, g.n, g.k) for g in self.gemms}
        self.vocab_local = math.ceil(vocab / tp)
        # elementwise kernels per layer: (op, elements per token)
        f_local = (m.dense_ffn // tp) if m.dense_layers else 0
        self.ew_dense = [("rms_norm", h), ("rms_norm", h), ("add", h), ("add", h), ("silu", f_local),
                         ("mul", f_local)]
        self.ew_moe = [("rms_norm", h), ("rms_norm", h), ("add", h), ("add", h)]
        if m.moe and m.moe.shared_experts:
            sf = m.moe.shared_experts * (m.moe.shared_ffn or m.moe.expert_ffn) // tp
            self.ew_moe += [("silu", sf), ("mul", sf)]
        self.kernels_per_layer = 13 if a.kind == "gqa" else 16
        # kernels of a routed MoE block besides the router GEMM (the profile's count for its implementation)
        self.moe_kernels = 0 if self.moe_curve is None else self.moe_curve.kernels
        # attention half (norm, qkv, 2 KV writes, attention, o, add, norm, add, router) + the MoE block
        self.kernels_per_moe_layer = 10 + self.moe_kernels + (4 if (m.moe and m.moe.shared_experts) else 0)

    def routed_expert_time(self, tokens: float) -> float:
        """Seconds of one MoE layer's routed experts (routing + expert GEMMs) for `tokens` new tokens."""
        m, par = self.model, self.par
        mo = m.moe
        return moe_time(self.moe_curve, self.peak, self.bw, tokens, m.hidden, mo.expert_ffn // par.tp, mo.experts,
                        mo.top_k, mo.experts // par.ep, self.w_bytes)

    # ------------------------------------------------------------------ token-count-dependent part
    def _token_part(self, tokens: int, logit_tokens: int) -> tuple[float, dict, int]:
        """(time, breakdown, kernels) of everything that depends only on the token counts."""
        key = (tokens, logit_tokens)
        hit = self._tok_cache.get(key)
        if hit is not None:
            return hit
        m, par, hw = self.model, self.par, self.hw
        bd = dict.fromkeys(CLASSES, 0.0)
        t_local = math.ceil(tokens / par.ep)  # attention and dense parts are data-parallel over ep groups
        logit_local = math.ceil(logit_tokens / par.ep)  # and so is the lm_head
        for g in self.gemms:
            rows = {"tokens": t_local, "logits": logit_local, "tokens_x_heads": t_local * self.hq}[g.rows]
            if rows <= 0:
                continue
            t = float(gemm_time(self.gemm_curve, self.peak, self.bw, rows, g.n, g.k,
                                self.w_bytes, 2.0, self._corr[g.name]))
            bd[g.cls] += g.count * t
        ew = self.hw.efficiency.elementwise
        layer_other = 0.0

        def ew_ops(ops, count):
            nonlocal layer_other
            for op, w in ops:
                if w:
                    t = float(elementwise_time(ew[op], self.bw, op, t_local, w))
                    layer_other += count * t

        if t_local > 0:
            if m.dense_layers:
                ew_ops(self.ew_dense, m.dense_layers)
            if m.moe_layers:
                ew_ops(self.ew_moe, m.moe_layers)
            # KV-cache write (K and V, or the MLA latent)
            n_writes = 1 if m.attention.kind == "mla" else 2
            ew_ops([("copy", self.kv_write_elems // n_writes)] * n_writes, m.layers)
        if logit_local > 0:
            t = float(elementwise_time(ew["rms_norm"], self.bw, "rms_norm", logit_local, m.hidden))
            layer_other += t
        bd["other"] += layer_other
        if m.moe_layers and tokens > 0:
            bd["moe"] += m.moe_layers * self.routed_expert_time(tokens)
        # communication (one kernel per collective)
        span = par.gpus
        act = t_local * m.hidden * 2.0

        def comm(op, size, group, count):
            bd["comm"] += count * collective_time(hw, op, size, group, span)

        if par.tp > 1:
            comm("vllm_all_reduce" if self.all_reduce == "vllm" else "all_reduce", act, par.tp, 2 * m.layers)
            if logit_local:
                comm("all_gather", logit_local * self.vocab_local * par.tp * 2.0, par.tp, 1)
        if par.ep > 1 and m.moe_layers:
            comm("all_to_all", act * m.moe.top_k, par.ep, 2 * m.moe_layers)
        if par.pp > 1:
            comm("send_recv", act, 2, par.pp - 1)
        kernels = m.dense_layers * self.kernels_per_layer + m.moe_layers * self.kernels_per_moe_layer + 2
        res = (sum(bd.values()), bd, kernels)
        self._tok_cache[key] = res
        return res

    # ------------------------------------------------------------------ public
    def step(self, new_tokens, context, logit_tokens: int | None = None, cuda_graph: bool = True) -> StepResult:
        """Time (s) and breakdown of one forward step.

        new_tokens: new tokens per sequence (1 for decode, k+1 for a speculative verify, a prompt chunk for
        prefill); context: KV length each sequence attends to, new tokens included. logit_tokens: rows of
        the lm_head (default: every new token of decode/verify sequences, the last one of a prefill chunk).
        cuda_graph=False adds the eager launch cost where it exceeds the GPU time of the kernels.
        """
        q = new_tokens if isinstance(new_tokens, np.ndarray) else np.asarray(new_tokens, dtype=np.int64)
        c = context if isinstance(context, np.ndarray) else np.asarray(context, dtype=np.int64)
        q, c = q.ravel(), c.ravel()
        if q.shape != c.shape:
            if q.size == 1:
                q = np.full(c.shape, int(q[0]), dtype=np.int64)
            else:
                raise RlsimError(f"{q.size} new-token counts for {c.size} contexts", "batch")
        if q.size and (q.min() < 1 or (c < q).any()):  # noqa: SIM102
            raise RlsimError("every sequence needs new_tokens >= 1 and context >= new_tokens", "batch")
        tokens = int(q.sum())
        qmax = int(q.max()) if q.size else 0
        all_decode = qmax <= DECODE_MAX_Q
        if all_decode:
            qd, cd, qp = q, c, None
        else:
            dec = q <= DECODE_MAX_Q
            qd, cd, qp, cp = q[dec], c[dec], q[~dec], c[~dec]
        if logit_tokens is None:
            logit_tokens = tokens if all_decode else int(qd.sum()) + int(qp.size)
        _, bd_tok, kernels = self._token_part(tokens, int(logit_tokens))
        bd = dict(bd_tok)
        m, ep = self.model, self.par.ep
        attn = 0.0
        if qd.size:
            if ep > 1:  # each expert-parallel group attends over its share of the sequences
                qd, cd = qd[::ep], cd[::ep]
            if self._attn_verify is not None and qmax > 1:
                one = qd == 1
                for sel, kern in ((one, self._attn), (~one, self._attn_verify)):
                    if sel.any():
                        qs, cs = qd[sel], cd[sel]
                        attn += decode_attention_time(kern, self.peak_bf16, self.bw, cs,
                                                      int(qs[0]) if int(qs.min()) == int(qs.max()) else qs,
                                                      self.hq, self.hkv, self.k_dim, self.v_dim, self.kv_bytes,
                                                      cuda_graph)
            else:
                uniform_q = int(qd.min()) == int(qd.max())
                attn += decode_attention_time(self._attn, self.peak_bf16, self.bw, cd,
                                              int(qd[0]) if uniform_q else qd, self.hq, self.hkv, self.k_dim,
                                              self.v_dim, self.kv_bytes, cuda_graph)
            if qmax > 1:  # query packing and output reshape copies of verify steps
                rows = float(qd[qd > 1].sum())
                if rows:
                    bd["other"] += m.layers * 2 * elementwise_time(self.hw.efficiency.elementwise["copy"], self.bw,
                                                                   "copy", rows, self.head_elems)
        if qp is not None and qp.size:
            if self.prefill_curve is None:
                raise RlsimError(f"profile {self.hw.name} has no prefill attention curve", "hardware")
            if ep > 1:
                qp, cp = qp[::ep], cp[::ep]
            attn += prefill_attention_time(self.prefill_curve, self.peak_bf16, qp, cp, self.hq, self.k_dim,
                                           self.v_dim)
        bd["attention"] += m.layers * attn
        total = sum(bd.values())
        if not cuda_graph:
            # launches are asynchronous: the CPU runs ahead of the GPU, so an eager step is bound by the CPU's
            # launch rate or by the GPU, which also pays a gap per kernel that a CUDA graph would hide
            eff = self.hw.efficiency
            n = kernels + (2 * m.layers if qmax > 1 else 0)
            eager = max(n * eff.eager_launch_s, total + n * eff.eager_gap_s)
            bd["other"] += eager - total
            total = eager
        if not math.isfinite(total):
            raise RlsimError(f"the predicted step time is not finite: a number of profile {self.hw.name} or model "
                             f"{m.name} overflows", "hardware")
        return StepResult(total, bd, kernels)

    def step_time(self, new_tokens, context, logit_tokens: int | None = None, cuda_graph: bool = True) -> float:
        """Seconds for one forward step (see `step`)."""
        return self.step(new_tokens, context, logit_tokens, cuda_graph).time_s
