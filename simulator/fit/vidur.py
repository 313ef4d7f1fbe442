"""Convert Vidur's profiling tables (microsoft/vidur data/profiling) into rlsim measurement rows.

Compute tables give milliseconds per layer for each operator at (num_tokens, TP); the GEMM shapes follow
from the model columns. Network tables give NCCL collective times; `size` is already in bytes: Vidur's profiler
writes `"size": self._size * 2  # bytes` (vidur/profiling/collectives/collectives_wrapper.py), and read as fp16
elements the all-reduce would beat NVLink's 450 GB/s (729 GB/s) — physically impossible.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from simulator.errors import RlsimError
from simulator.fit.measurements import check_numeric, file_line, is_timing


def _col(df: pd.DataFrame, op: str, path: Path) -> pd.Series:
    """Microseconds of `op` (Vidur's median, ms); an empty cell is NaN (the row is left out), a cell that is no
    timing an error naming its line."""
    c = f"time_stats.{op}.median"
    if c not in df.columns:
        raise RlsimError(f"missing column {c}", str(path))
    v = pd.to_numeric(df[c], errors="coerce")
    bad = (v.isna() & df[c].notna()) | ~(v.isna() | is_timing(v, 1e3))
    if bad.any():
        raise RlsimError(f"column {c!r} must hold timings > 0 and at most a day, in ms (got {df[c][bad].iloc[0]!r})",
                         f"{path}:{file_line(path, int(bad.idxmax()))}")
    return v * 1000.0  # ms -> us


def vidur_compute_rows(df: pd.DataFrame, path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    need = ["n_head", "n_kv_head", "n_embd", "n_expanded_embd", "num_tokens", "num_tensor_parallel_workers"]
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise RlsimError(f"missing columns {missing}", str(path))
    df = check_numeric(df, need, path)
    tp = df["num_tensor_parallel_workers"].astype(int)
    h = df["n_embd"].astype(int)
    hd = h // df["n_head"].astype(int)
    m = df["num_tokens"].astype(int)
    ffn = df["n_expanded_embd"].astype(int)
    shapes = {
        "attn_pre_proj": ((df["n_head"] + 2 * df["n_kv_head"]) * hd // tp, h),
        "attn_post_proj": (h, df["n_head"] * hd // tp),
        "mlp_up_proj": (2 * ffn // tp, h),
        "mlp_down_proj": (h, ffn // tp),
    }
    gem = []
    for op, (n, k) in shapes.items():
        gem.append(pd.DataFrame({"op": f"vidur.{op}", "m": m, "n": n.astype(int), "k": k.astype(int),
                                 "us": _col(df, op, path), "dtype": "bf16", "source": path.name}))
    ew = [pd.DataFrame({"op": "rms_norm", "rows": m, "width": h, "us": _col(df, "input_layernorm", path),
                        "source": path.name}),
          pd.DataFrame({"op": "add", "rows": m, "width": h, "us": _col(df, "add", path), "source": path.name})]
    g = pd.concat(gem, ignore_index=True).dropna()
    g = g.groupby(["op", "m", "n", "k", "dtype", "source"], as_index=False)["us"].median()
    e = pd.concat(ew, ignore_index=True).dropna()
    e = e.groupby(["op", "rows", "width", "source"], as_index=False)["us"].median()
    return g, e


def vidur_network_rows(df: pd.DataFrame, path: Path) -> pd.DataFrame:
    df = check_numeric(df, ["num_workers", "size"], path)
    coll = df["collective"].astype(str).iloc[0]
    out = pd.DataFrame({"collective": coll, "group": df["num_workers"].astype(int),
                        "bytes": df["size"].astype(float), "us": _col(df, coll, path),
                        "devices_per_node": df.get("devices_per_node", 8), "source": path.name})
    return out.dropna()
