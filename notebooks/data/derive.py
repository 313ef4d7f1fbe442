"""Derive the small sample traces of notebooks/02-fit-from-vllm-traces.ipynb from files already in the repo.

    python notebooks/data/derive.py        # rewrites notebooks/data/* (deterministic)

- vllm_specdecode.log: vLLM server log lines with `SpecDecoding metrics` (tests/data/acceptance/vllm_current.log,
  a test fixture in vLLM's log format: the numbers illustrate the format, they are not a measurement).
- metrics_before.prom / metrics_after.prom: two Prometheus scrapes of vLLM's /metrics around a benchmark
  (tests/data/acceptance/, the same kind of fixture).
- kernels/gemm_llama8b.csv: the Llama-3.1-8B GEMM rows of the H200 microbenchmarks
  (calibration/h200/shared/gemm.csv, measured; see its README).
- kernels/attn_packed.csv: the packed decode-attention table (calibration/h200/shared/attn_packed.csv, measured).
- kernels/trace_llama8b_b32_ctx2048_ql1.json.gz: the first forward step (129 GEMMs = 4 per layer x 32 + lm_head)
  of the PyTorch profiler trace calibration/h200/shared/trace_llama8b_b32_ctx2048_ql1.json.gz, kernel events
  only, with ph/cat/name/ts/dur kept (what `rlsim fit kernels` reads).
"""
from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent


def main() -> None:
    acc = ROOT / "tests" / "data" / "acceptance"
    shutil.copyfile(acc / "vllm_current.log", HERE / "vllm_specdecode.log")
    shutil.copyfile(acc / "metrics_before.prom", HERE / "metrics_before.prom")
    shutil.copyfile(acc / "metrics_after.prom", HERE / "metrics_after.prom")
    kd = HERE / "kernels"
    kd.mkdir(exist_ok=True)
    shared = ROOT / "calibration" / "h200" / "shared"
    lines = (shared / "gemm.csv").read_text().splitlines()
    (kd / "gemm_llama8b.csv").write_text("\n".join([lines[0]] + [x for x in lines[1:] if x.startswith("llama8b.")])
                                         + "\n")
    shutil.copyfile(shared / "attn_packed.csv", kd / "attn_packed.csv")
    name = "trace_llama8b_b32_ctx2048_ql1.json.gz"
    events = json.loads(gzip.open(shared / name, "rt").read())["traceEvents"]
    ks = sorted((e for e in events if e.get("cat") == "kernel" and e.get("ph") == "X"), key=lambda e: e["ts"])
    from simulator.fit.chrome_trace import classify
    out, gemms = [], 0
    for e in ks:
        out.append({k: e[k] for k in ("ph", "cat", "name", "ts", "dur")})
        gemms += classify(e["name"]) == "gemm"
        if gemms == 4 * 32 + 1:
            break
    raw = json.dumps({"traceEvents": out}, separators=(",", ":")).encode()
    (kd / name).write_bytes(gzip.compress(raw, mtime=0))


if __name__ == "__main__":
    main()
