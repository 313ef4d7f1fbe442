"""PyTorch / vLLM profiler chrome traces: kernel events -> operator classes -> measurement rows.

GPU kernels are events with cat "kernel", ph "X", dur in microseconds (shared/formats/vllm.md). Every kernel
is mapped to an operator class by its name. When the traced model's shape is known (from the file name
`trace_<model>_b<B>_ctx<C>_ql<Q>` or from `--trace-model/--trace-batch/--trace-context/--trace-q-len`) and the
trace has the decoder-layer structure (4 GEMMs per layer plus the lm_head), each kernel also becomes a
measurement row (GEMM shapes, attention, norms, activations, copies) for the fit.
"""
from __future__ import annotations

import gzip
import json
import re
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd

from simulator.errors import RlsimError

# (class, pattern) in priority order; first match wins
KERNEL_CLASSES = [
    ("gemm_reduce", r"splitKreduce|split_k_reduce"),
    ("attention", r"flash_fwd|flash::|fmha|flashinfer|paged_attention|attention|mla|FlashAttn|xformers"),
    ("moe", r"fused_moe|moe_align|moe_sum|grouped_mm|topk|expert"),
    ("comm", r"nccl|all_reduce|allreduce|all_gather|reduce_scatter|alltoall|cross_device|custom_ar"),
    ("gemm", r"nvjet|gemm|cutlass|xmma|cublas|wgmma|s16816|_mma_|matmul|cijk"),
    ("rms_norm", r"layer_norm|rms_norm|rmsnorm|layernorm"),
    ("silu", r"silu|act_and_mul|swiglu|gelu"),
    ("add", r"CUDAFunctor_add|AddFunctor|add_kernel|fused_add"),
    ("mul", r"BinaryFunctor|MulFunctor|mul_kernel"),
    ("copy", r"direct_copy|copy_kernel|CatArrayBatchedCopy|reshape_and_cache|concat|cache_kernel|index"),
]
_COMPILED = [(c, re.compile(p, re.IGNORECASE)) for c, p in KERNEL_CLASSES]
SUMMARY_CLASS = {"gemm_reduce": "gemm", "rms_norm": "other", "silu": "other", "add": "other", "mul": "other",
                 "copy": "other"}


def classify(name: str) -> str:
    """Operator class of a kernel name: gemm, attention, moe, comm, rms_norm, silu, add, mul, copy or other."""
    for cls, pat in _COMPILED:
        if pat.search(name):
            return cls
    return "other"


def load_kernel_events(path: Path) -> list[dict]:
    """GPU kernel events of a chrome trace, sorted by start time."""
    try:
        raw = gzip.open(path, "rt").read() if path.name.endswith(".gz") else path.read_text()
        data = json.loads(raw)
    except (OSError, EOFError, UnicodeDecodeError) as e:
        raise RlsimError(f"cannot read trace ({e})", str(path)) from None
    except json.JSONDecodeError as e:
        raise RlsimError(f"malformed JSON ({e.msg}, line {e.lineno})", str(path)) from None
    events = data.get("traceEvents") if isinstance(data, dict) else data
    if not isinstance(events, list):
        raise RlsimError("no traceEvents list: not a chrome trace", str(path))
    ks = [e for e in events if isinstance(e, dict) and str(e.get("cat", "")).lower() in ("kernel", "gpu_kernel")
          and e.get("ph", "X") == "X" and "dur" in e and "ts" in e]
    if not ks:
        raise RlsimError("no GPU kernel events (cat 'kernel') in the trace", str(path))
    ks.sort(key=lambda e: float(e["ts"]))
    return ks


def _merge_split_k(ks: list[dict], classes: list[str]) -> tuple[list[dict], list[str]]:
    out, oc = [], []
    for e, c in zip(ks, classes):
        if c == "gemm_reduce" and oc and oc[-1] == "gemm":
            out[-1] = dict(out[-1], dur=float(out[-1]["dur"]) + float(e["dur"]))
            continue
        out.append(e)
        oc.append("gemm" if c == "gemm_reduce" else c)
    return out, oc


def read_trace(path: Path, m, attention_backend: str = "packed", shape: dict | None = None) -> None:
    """Add the trace's class summary to `m` and, when its shape is known, its kernels as measurement rows."""
    from simulator.fit.measurements import parse_trace_shape
    ks = load_kernel_events(path)
    classes = [classify(str(e.get("name", ""))) for e in ks]
    ks, classes = _merge_split_k(ks, classes)
    totals = defaultdict(float)
    for e, c in zip(ks, classes):
        totals[SUMMARY_CLASS.get(c, c)] += float(e["dur"])
    shp = dict(parse_trace_shape(path.name))
    shp.update({k: v for k, v in (shape or {}).items() if v is not None})
    summary = {"file": path.name, "kernels": len(ks), "class_us": dict(totals), "shape": shp, "rows": 0}
    m.traces.append(summary)
    if not {"model", "batch", "context", "q_len"} <= shp.keys():
        summary["note"] = "shape unknown: class summary only"
        return
    from simulator.model_config import load_model
    try:
        model = load_model(shp["model"], field=f"{path.name}: model")
    except RlsimError:
        summary["note"] = f"unknown model {shp['model']!r}: class summary only"
        return
    _rows_from_layers(path, m, model, shp, ks, classes, attention_backend, summary)


def _rows_from_layers(path, m, model, shp, ks, classes, backend, summary) -> None:
    a = model.attention
    if model.is_moe or a.kind != "gqa":
        summary["note"] = "per-kernel rows only for dense GQA layers: class summary only"
        return
    b, ql, ctx = shp["batch"], shp["q_len"], shp["context"]
    T, h, d = b * ql, model.hidden, a.head_dim
    gem = [e for e, c in zip(ks, classes) if c == "gemm"]
    per_step = 4 * model.layers + 1
    if len(gem) % per_step:
        summary["note"] = f"{len(gem)} GEMMs is not a multiple of {per_step} (4 per layer + lm_head): summary only"
        return
    steps = len(gem) // per_step
    names = ["qkv", "o", "gate_up", "down"]
    shapes = {"qkv": ((a.heads + 2 * a.kv_heads) * d, h), "o": (h, a.heads * d), "gate_up": (2 * model.ffn, h),
              "down": (h, model.ffn), "lm_head": (model.vocab, h)}
    durs = defaultdict(list)
    for i, e in enumerate(gem):
        j = i % per_step
        durs["lm_head" if j == per_step - 1 else names[j % 4]].append(float(e["dur"]))
    src = f"trace:{path.name}"
    rows = [{"op": f"trace.{op}", "m": T, "n": shapes[op][0], "k": shapes[op][1], "us": float(np.median(v)),
             "dtype": "bf16", "source": src} for op, v in durs.items()]
    m.gemm.append(pd.DataFrame(rows))
    ew = defaultdict(list)
    copies = [float(e["dur"]) for e, c in zip(ks, classes) if c == "copy"]
    per_layer_copies = 4 if ql > 1 else 2
    for i, du in enumerate(copies):
        width = a.kv_heads * d if (i % per_layer_copies) < 2 else a.heads * d
        ew[("copy", width)].append(du)
    for e, c in zip(ks, classes):
        if c in ("rms_norm", "add"):
            ew[(c, h)].append(float(e["dur"]))
        elif c in ("silu", "mul"):
            ew[(c, model.ffn)].append(float(e["dur"]))
    m.elementwise.append(pd.DataFrame([{"op": op, "rows": T, "width": w, "us": float(np.median(v)), "source": src}
                                       for (op, w), v in ew.items()]))
    att = [float(e["dur"]) for e, c in zip(ks, classes) if c == "attention"]
    if att:
        m.attention.append(pd.DataFrame([{"batch": b, "q_len": ql, "ctx": ctx, "hq": a.heads, "hkv": a.kv_heads,
                                          "d": d, "us": float(np.median(att)), "backend": backend,
                                          "source": src}]))
    # eager launch cost: the traced steps were not graph-captured; span per kernel bounds the launch rate
    span = float(ks[-1]["ts"]) + float(ks[-1]["dur"]) - float(ks[0]["ts"])
    busy = sum(float(e["dur"]) for e in ks)
    if span > busy:
        m.eager_launch_s.append(span / len(ks) * 1e-6)
    summary["rows"] = len(rows) + len(ew) + (1 if att else 0)
    summary["steps"] = steps
