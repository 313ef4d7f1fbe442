"""Read kernel measurements into typed tables, recognising each file by its columns.

Formats (see calibration/h200/shared/README.md and calibration/vidur/README.md):
- gemm: op,m,n,k,us (dtype fp8 when the file name says fp8)
- attention: batch,q_len,ctx,hq,hkv,d,us (backend from the file name: sdpa_gqa, vllm_fa3, prefill, else packed)
- moe: tokens,experts,topk,hidden,inter,us [impl] (no impl: the expert GEMMs alone, batched over every expert)
- vLLM fused-MoE kernel: shape,tokens,experts,topk,hidden,inter,config,...,us (config tuned | default: vLLM's
  tile-config file or its default tiles; the two expert launches alone), read as impl vllm_fused_<config>
- moe training: shape,tokens,experts,topk,hidden,inter,pass,us (pass fwd | fwd_bwd | fwd_permute)
- training layer: shape,tokens,seq_len,op,phase,us (per-operator forward / backward of a dense training layer;
  op `layer` rows are whole layers, kept for validation)
- elementwise: op,rows,width,us; graph overhead: n_kernels,us
- Vidur per-operator tables (time_stats.<op>.median in ms per layer, by num_tokens and TP) and NCCL tables
- PyTorch/vLLM profiler chrome traces (.json / .json.gz), see chrome_trace.py
Validation-only tables (whole-model steps, EAGLE heads) are recognised and set aside, never fitted on.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from simulator.errors import RlsimError

GEMM_COLS = {"op", "m", "n", "k", "us"}
ATTN_COLS = {"batch", "q_len", "ctx", "hq", "hkv", "d", "us"}
MOE_COLS = {"tokens", "experts", "topk", "hidden", "inter", "us"}
EW_COLS = {"op", "rows", "width", "us"}
GRAPH_COLS = {"n_kernels", "us"}
STEP_COLS = {"model", "batch", "q_len", "ctx", "us"}
HOST_COPY_COLS = {"mode", "total_bytes", "tensor_bytes", "seconds"}
TRAIN_LAYER_COLS = {"shape", "tokens", "seq_len", "op", "phase", "us"}
TRAIN_PHASES = ("fwd", "bwd", "dgrad", "wgrad", "fwd_bwd")
HOST_COPY_MODES = ("d2h_pageable", "h2d_pageable", "d2h_pinned", "h2d_pinned")
REFIT_COPY_COLS = {"case", "tensors", "traffic_bytes", "total_s"}  # refit's IPC copies (simulator/fit/refit.py)
TIME_COLS = {"us", "seconds", "total_s"}
BYTE_COLS = {"bytes", "size", "total_bytes", "tensor_bytes", "traffic_bytes"}  # Vidur: size
MAX_DIM = 2**31 - 1  # a kernel's sizes and counts: int32, the most a CUDA kernel's shape arguments hold
MAX_BYTES = 2**53  # a byte count: the largest whole number a double holds exactly
MAX_TIMING_S = 86400.0  # one timed kernel, copy or collective: a day is no measurement of one


@dataclass
class Measurements:
    """Everything read, as DataFrames with times in microseconds."""

    gemm: list[pd.DataFrame] = field(default_factory=list)  # op,m,n,k,us,dtype,source
    attention: list[pd.DataFrame] = field(default_factory=list)  # +backend
    prefill: list[pd.DataFrame] = field(default_factory=list)
    attention_mixed: list[pd.DataFrame] = field(default_factory=list)  # kind,batch,q_len,hq,hkv,d,ctx_list,us
    # a decode/verify backend's batches of mixed contexts (dist,batch,q_len,hq,hkv,d,ctx_list,us,backend): they
    # fit that backend's split-KV schedule (`split_schedule`); dist <name>_mean rows are uniform twins
    attention_varlen: list[pd.DataFrame] = field(default_factory=list)
    moe: list[pd.DataFrame] = field(default_factory=list)  # +impl ("experts" for expert-GEMM-only rows)
    moe_train: list[pd.DataFrame] = field(default_factory=list)  # +pass (fwd, fwd_bwd, fwd_permute)
    elementwise: list[pd.DataFrame] = field(default_factory=list)
    host_copy: list[pd.DataFrame] = field(default_factory=list)  # mode,total_bytes,tensor_bytes,seconds
    train_layer: list[pd.DataFrame] = field(default_factory=list)  # shape,tokens,seq_len,op,phase,us
    refit_copy: list[pd.DataFrame] = field(default_factory=list)  # not a kernel: fits pipeline.refit_* keys
    graph: list[pd.DataFrame] = field(default_factory=list)
    network: list[pd.DataFrame] = field(default_factory=list)  # collective,group,bytes,us,source
    eager_launch_s: list[float] = field(default_factory=list)
    eager_steps: list[pd.DataFrame] = field(default_factory=list)  # whole-model steps launched eagerly (fit)
    validation: list[str] = field(default_factory=list)
    device: dict = field(default_factory=dict)
    traces: list[dict] = field(default_factory=list)  # per-trace class summaries
    sources: list[str] = field(default_factory=list)

    def table(self, name: str) -> pd.DataFrame:
        parts = getattr(self, name)
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        df = pd.read_csv(path, comment="#")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise RlsimError(f"not a readable CSV ({' '.join(str(e).split())[:120]})", str(path)) from None
    if df.empty:
        raise RlsimError("no rows", str(path))
    return df


def data_lines(path: Path) -> list[int]:
    """The line numbers of a CSV's data rows, in order (blank lines, '#' comment lines and the header skipped)."""
    with open(path, errors="replace") as f:
        lines = [n for n, text in enumerate(f, 1) if text.strip() and not text.lstrip().startswith("#")]
    return lines[1:]


def file_line(path: Path, row: int) -> int:
    """The line of the file that holds data row `row` (0-based); 0 when there is no such row."""
    lines = data_lines(path)
    return lines[row] if row < len(lines) else 0


def is_timing(v: pd.Series, per_second: float) -> pd.Series:
    """Which cells are a measured timing in units of 1/`per_second` s: > 0 and at most a day."""
    return (v > 0) & (v <= MAX_TIMING_S * per_second)


def check_numeric(df: pd.DataFrame, cols, path: Path) -> pd.DataFrame:
    """`df` with `cols` as numbers; a word, an empty or NaN cell, or a size, count or timing out of range
    (TIME_COLS, BYTE_COLS, the rest sizes and counts), is an RlsimError naming the file's line."""
    for c in cols:
        v = pd.to_numeric(df[c], errors="coerce")
        bad = v.isna() & df[c].notna()
        if bad.any():
            line = file_line(path, int(bad.idxmax()))
            raise RlsimError(f"column {c!r} has a non-number {df[c][bad].iloc[0]!r}", f"{path}:{line}")
        if v.isna().any():  # an empty cell, or one pandas reads as missing (nan, NA, ...): no measurement
            line = file_line(path, int(v.isna().idxmax()))
            raise RlsimError(f"column {c!r} has an empty or NaN cell", f"{path}:{line}")
        df[c] = v
    for c in cols:  # sizes, counts and times: a zero, a negative or an infinity is not a measurement
        v = df[c]
        if c in TIME_COLS:
            per_second = 1e6 if c == "us" else 1.0
            bad, what = ~is_timing(v, per_second), f"timings > 0 and at most a day ({MAX_TIMING_S * per_second:g} {c})"
        else:
            most = MAX_BYTES if c in BYTE_COLS else MAX_DIM
            bad, what = ~((v >= 1) & (v <= most) & (v % 1 == 0)), f"whole numbers in 1..{most}"
        if bad.any():
            line = file_line(path, int(bad.idxmax()))
            raise RlsimError(f"column {c!r} must hold {what} (got {float(v[bad].iloc[0]):g})", f"{path}:{line}")
    return df


def check_labels(df: pd.DataFrame, col: str, allowed, path: Path) -> None:
    """An RlsimError naming the file when column `col` holds a label outside `allowed`."""
    bad = set(df[col]) - set(allowed)
    if bad:
        raise RlsimError(f"unknown {col} {sorted(map(str, bad))[0]!r} ({', '.join(allowed)})", str(path))


def attention_backend_of(file_name: str, default: str = "packed") -> str:
    """The attention kernel a decode/verify table measured, from its file name: `sdpa` -> sdpa_gqa (SDPA over
    expanded heads), `vllm_fa3` -> vllm_fa3 (vLLM's own FlashAttention 3 over a paged cache), else `default`."""
    if "sdpa" in file_name:
        return "sdpa_gqa"
    return "vllm_fa3" if "vllm_fa3" in file_name else default


def read_file(path: str | Path, m: Measurements, attention_backend: str = "packed",
              trace_shape: dict | None = None) -> None:
    """Read one measurement file into `m`; RlsimError naming the file when it is not a known format."""
    p = Path(path)
    if not p.is_file():
        raise RlsimError("no such file", str(p))
    name = p.name.lower()
    m.sources.append(str(p))
    if name.endswith((".json.gz", ".json")) and not name.startswith("device"):
        from simulator.fit.chrome_trace import read_trace
        read_trace(p, m, attention_backend, trace_shape)
        return
    if name.startswith("device") and name.endswith(".json"):
        try:
            m.device = json.loads(p.read_text())
        except json.JSONDecodeError as e:
            raise RlsimError(f"malformed JSON ({e.msg}, line {e.lineno})", str(p)) from None
        return
    if not name.endswith(".csv"):
        raise RlsimError("unknown measurement format (expected a kernel CSV, a device.json or a chrome trace "
                         ".json/.json.gz)", str(p))
    df = _read_csv(p)
    cols = set(df.columns)
    src = p.name
    if "time_stats.attn_pre_proj.median" in cols:
        from simulator.fit.vidur import vidur_compute_rows
        g, ew = vidur_compute_rows(df, p)
        m.gemm.append(g)
        m.elementwise.append(ew)
    elif any(c.startswith("time_stats.") for c in cols) and {"num_workers", "size", "collective"} <= cols:
        from simulator.fit.vidur import vidur_network_rows
        m.network.append(vidur_network_rows(df, p))
    elif HOST_COPY_COLS <= cols:
        df = check_numeric(df, ["total_bytes", "tensor_bytes", "seconds"], p)
        check_labels(df, "mode", HOST_COPY_MODES, p)
        m.host_copy.append(df[list(HOST_COPY_COLS)].assign(source=src))
    elif TRAIN_LAYER_COLS <= cols:
        df = check_numeric(df, ["tokens", "seq_len", "us"], p)
        check_labels(df, "phase", TRAIN_PHASES, p)
        m.train_layer.append(df[list(TRAIN_LAYER_COLS)].assign(source=src))
    elif REFIT_COPY_COLS <= cols:
        m.refit_copy.append(check_numeric(df, ["tensors", "traffic_bytes", "total_s"], p).assign(source=src))
    elif {"collective", "gpus", "bytes", "us"} <= cols:
        df = check_numeric(df, ["gpus", "bytes", "us"], p)
        m.network.append(pd.DataFrame({"collective": df["collective"], "group": df["gpus"], "bytes": df["bytes"],
                                       "us": df["us"], "source": src}))
    elif STEP_COLS <= cols and "eager_fit" in name:
        m.eager_steps.append(check_numeric(df, ["batch", "q_len", "ctx", "us"], p).assign(source=src))
    elif STEP_COLS <= cols:
        m.validation.append(str(p))
    elif ATTN_COLS - {"ctx"} | {"ctx_list", "dist"} <= cols:
        df = check_numeric(df, ["batch", "q_len", "hq", "hkv", "d", "us"], p)
        m.attention_varlen.append(df.assign(source=src, backend=attention_backend_of(name, attention_backend)))
    elif ATTN_COLS - {"ctx"} | {"ctx_list", "kind"} <= cols:
        df = check_numeric(df, ["batch", "q_len", "hq", "hkv", "d", "us"], p)
        m.attention_mixed.append(df.assign(source=src))
    elif GEMM_COLS <= cols:
        df = check_numeric(df, ["m", "n", "k", "us"], p)
        dtype = "fp8" if "fp8" in name else (df["dtype"] if "dtype" in cols else "bf16")
        m.gemm.append(df[["op", "m", "n", "k", "us"]].assign(dtype=dtype, source=src))
    elif ATTN_COLS <= cols:
        df = check_numeric(df, ["batch", "q_len", "ctx", "hq", "hkv", "d", "us"], p)
        df = df[list(ATTN_COLS)].assign(source=src)
        if "prefill" in name or (df["q_len"] == df["ctx"]).all():
            m.prefill.append(df)
        else:
            m.attention.append(df.assign(backend=attention_backend_of(name, attention_backend)))
    elif MOE_COLS | {"pass"} <= cols:
        df = check_numeric(df, ["tokens", "experts", "topk", "hidden", "inter", "us"], p)
        check_labels(df, "pass", ("fwd", "fwd_bwd", "fwd_permute"), p)
        m.moe_train.append(df[list(MOE_COLS) + ["pass"]].assign(source=src))
    elif MOE_COLS | {"config"} <= cols:
        df = check_numeric(df, ["tokens", "experts", "topk", "hidden", "inter", "us"], p)
        check_labels(df, "config", ("tuned", "default"), p)
        m.moe.append(df[list(MOE_COLS)].assign(impl="vllm_fused_" + df["config"], source=src))
    elif MOE_COLS <= cols:
        df = check_numeric(df, ["tokens", "experts", "topk", "hidden", "inter", "us"], p)
        impl = df["impl"] if "impl" in cols else "experts"
        m.moe.append(df[list(MOE_COLS)].assign(impl=impl, source=src))
    elif EW_COLS <= cols:
        df = check_numeric(df, ["rows", "width", "us"], p)
        m.elementwise.append(df[list(EW_COLS)].assign(source=src))
    elif GRAPH_COLS <= cols:
        m.graph.append(check_numeric(df, ["n_kernels", "us"], p))
    elif {"model", "batch", "q_len", "ctx"} <= cols:
        m.validation.append(str(p))
    else:
        raise RlsimError(f"unrecognised columns {sorted(cols)[:8]}; expected one of the kernel table formats "
                         "(see `rlsim fit kernels --help`)", str(p))


def parse_trace_shape(name: str) -> dict:
    """batch / context / q_len from a trace file name such as trace_llama8b_b32_ctx2048_ql4.json.gz."""
    out = {}
    for key, pat in (("batch", r"_b(\d+)"), ("context", r"_ctx(\d+)"), ("q_len", r"_ql(\d+)")):
        mm = re.search(pat, name)
        if mm:
            out[key] = int(mm.group(1))
    mm = re.match(r"trace_([a-z0-9.\-]+?)_b\d+", name)
    if mm:
        out["model"] = mm.group(1)
    return out
