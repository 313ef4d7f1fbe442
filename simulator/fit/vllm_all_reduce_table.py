"""Published vLLM all-reduce benchmark tables -> rows `rlsim fit collectives` fits, one curve per vLLM backend.

`python -m simulator.fit.vllm_all_reduce_table RAW.csv --out FIT.csv` reads a table as
benchmarks/kernels/benchmark_device_communicators.py prints it (tp, mib, and one `<backend>_ms` column per
backend: ca_1stage, ca_2stage, symm_mem_multimem, symm_mem_two_shot, pynccl) and writes every published cell as a
row (collective vllm_<backend>, gpus, bytes, us, mode graph). pynccl cells are left out (vLLM's NCCL fallback is
costed with the profile's NCCL all-reduce), and so are the groups with fewer than MIN_SIZES published sizes: one
efficiency per group needs a few sizes (the cells left out stay in RAW.csv as held-out checks, tests/test_vllm_all_reduce.py).
Which backend vLLM picks per size is simulator/costmodel/vllm_all_reduce.py.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from simulator.costmodel.vllm_all_reduce import BACKENDS, CURVED_BACKENDS, MiB
from simulator.errors import RlsimError
from simulator.fit.measurements import _read_csv
from simulator.yamlio import write_text_atomic

MIN_SIZES = 3


def read_raw(path: str | Path) -> pd.DataFrame:
    """A published table (tp, mib, <backend>_ms; `#` lines for provenance)."""
    p = Path(path)
    if not p.is_file():
        raise RlsimError("no such file", str(p))
    raw = _read_csv(p)
    missing = {"tp", "mib"} - set(raw.columns)
    if missing:
        raise RlsimError(f"missing columns {sorted(missing)} (a vLLM all-reduce table has tp, mib, <backend>_ms)",
                         str(p))
    if not any(f"{b}_ms" in raw.columns for b in BACKENDS):
        raise RlsimError(f"no backend columns (expected some of {', '.join(b + '_ms' for b in BACKENDS)})", str(p))
    return raw


def long_rows(raw: pd.DataFrame, source: str, min_sizes: int = MIN_SIZES) -> pd.DataFrame:
    """Every published cell of the fitted backends as (collective, gpus, bytes, us, mode, source) rows."""
    out = []
    for b in CURVED_BACKENDS:
        col = f"{b}_ms"
        if col not in raw.columns:
            continue
        cells = raw[["tp", "mib", col]].dropna()
        for tp, g in cells.groupby("tp"):
            if g["mib"].nunique() < min_sizes:
                continue
            for _, r in g.iterrows():
                out.append({"collective": f"vllm_{b}", "gpus": int(tp), "bytes": int(round(float(r["mib"]) * MiB)),
                            "us": round(float(r[col]) * 1e3, 3), "mode": "graph", "source": source})
    return pd.DataFrame(out, columns=["collective", "gpus", "bytes", "us", "mode", "source"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="a published vLLM all-reduce table as rows for rlsim fit collectives")
    ap.add_argument("raw", help="published table: tp, mib and <backend>_ms columns (# lines: provenance)")
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    try:
        rows = long_rows(read_raw(a.raw), Path(a.raw).name)
    except RlsimError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    header = (f"# Written by: python -m simulator.fit.vllm_all_reduce_table {a.raw} --out {a.out}\n"
              f"# Every cell of {Path(a.raw).name} for the groups with >= {MIN_SIZES} sizes, one row per backend "
              f"(collective vllm_<backend>); microseconds per call, CUDA-graph replay.\n")
    write_text_atomic(a.out, header + rows.to_csv(index=False))
    print(f"{len(rows)} rows -> {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
