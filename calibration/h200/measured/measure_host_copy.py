"""Measure GPU <-> host copies the way a colocated RL trainer offloads its state between generation and training.

NeMo-RL's Megatron worker moves its optimizer state, gradient buffers and parameters to the host before generation
and back after it, one tensor at a time with ``tensor.to("cpu")`` / ``tensor.to("cuda")``: every offload allocates
fresh pageable host memory. This script times that pattern and, for reference, copies into reused pinned buffers.

Modes (each a full cycle over the tensor set, timed with the device synchronised):
  d2h_pageable  [t.to("cpu") for t in gpu]            fresh pageable host tensors (the CPU copies of the previous
                                                      cycle freed first, as after a step's onload)
  h2d_pageable  [t.to("cuda") for t in cpu]           from those pageable host tensors into fresh device memory
  d2h_pinned    dst.copy_(t, non_blocking=True)       into pinned buffers allocated once, one synchronise
  h2d_pinned    t.copy_(src, non_blocking=True)       from those pinned buffers

Tensor sets: ``total_gb`` split into tensors of ``tensor_mb`` (the optimizer state of a distributed optimizer is many
shard tensors; gradient buffers are a few large ones).

Output CSV columns: mode, total_bytes, tensor_bytes, n_tensors, seconds (median over cycles), gb_per_s, cycles.

Command (the device tool's H200): python calibration/h200/measured/measure_host_copy.py host_copy.csv
"""
from __future__ import annotations

import gc
import statistics
import sys
import time

import torch

from stream_csv import write_rows  # this folder's (the script's own directory is on sys.path)

CYCLES = 3
SETS = [  # (total GB, tensor MB)
    (1, 4), (1, 64), (1, 1024),
    (4, 4), (4, 64), (4, 1024),
    (16, 16), (16, 256), (16, 2048),
]


def _sync():
    torch.cuda.synchronize()


def _timed(fn):
    _sync()
    t0 = time.perf_counter()
    out = fn()
    _sync()
    return time.perf_counter() - t0, out


def measure(total_gb: int, tensor_mb: int) -> list[dict]:
    n = max(1, (total_gb * 1024) // tensor_mb)
    numel = tensor_mb * 1024 * 1024 // 4
    gpu = [torch.empty(numel, dtype=torch.float32, device="cuda").uniform_() for _ in range(n)]
    total = sum(t.numel() * t.element_size() for t in gpu)
    times = {m: [] for m in ("d2h_pageable", "h2d_pageable", "d2h_pinned", "h2d_pinned")}
    cpu = None
    for _ in range(CYCLES + 1):  # the first cycle warms the allocators and is dropped
        cpu = None
        gc.collect()
        dt, cpu = _timed(lambda: [t.to("cpu") for t in gpu])
        times["d2h_pageable"].append(dt)
        del gpu[:]
        torch.cuda.empty_cache()
        dt, back = _timed(lambda: [c.to("cuda") for c in cpu])
        times["h2d_pageable"].append(dt)
        gpu.extend(back)
        del back
    cpu = None
    gc.collect()
    pinned = [torch.empty(numel, dtype=torch.float32, pin_memory=True) for _ in range(n)]
    for _ in range(CYCLES + 1):
        dt, _ = _timed(lambda: [p.copy_(t, non_blocking=True) for p, t in zip(pinned, gpu)])
        times["d2h_pinned"].append(dt)
        dt, _ = _timed(lambda: [t.copy_(p, non_blocking=True) for p, t in zip(pinned, gpu)])
        times["h2d_pinned"].append(dt)
    del pinned, gpu
    gc.collect()
    torch.cuda.empty_cache()
    rows = []
    for mode, ts in times.items():
        s = statistics.median(ts[1:])
        rows.append({"mode": mode, "total_bytes": total, "tensor_bytes": numel * 4, "n_tensors": n,
                     "seconds": round(s, 6), "gb_per_s": round(total / s / 1e9, 3), "cycles": CYCLES})
    return rows


def main(argv: list[str]) -> int:
    fields = ["mode", "total_bytes", "tensor_bytes", "n_tensors", "seconds", "gb_per_s", "cycles"]
    write_rows(argv[1] if len(argv) > 1 else "host_copy.csv", fields,
               (r for total_gb, tensor_mb in SETS for r in measure(total_gb, tensor_mb)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
