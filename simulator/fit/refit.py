"""Weight-refit constants fitted on data (pure functions); the refit's cost itself is
simulator/training/cost.py::refit_time.

- The non-colocated broadcast's rate, on a reported refit time: a refit takes the fixed refit overhead plus the whole
  bf16 export over the broadcast's rate (`refit_broadcast_seconds`).
- The colocated CUDA-IPC copies' HBM efficiency and host seconds per tensor copy, on the H200 measurements
  (calibration/h200/measured/refit_copy.csv; `refit_copy_seconds`).
"""
from __future__ import annotations

from simulator.errors import RlsimError
from simulator.training.cost import EXPORT_BYTES_PER_PARAM, refit_broadcast_seconds


def fit_refit_broadcast_rate(params: float, seconds: float, overhead_s: float) -> float:
    """Broadcast rate (bytes/s) that makes a refit of `params` parameters take `seconds` with `overhead_s` fixed."""
    if seconds <= overhead_s:
        raise RlsimError(f"a refit of {seconds} s leaves nothing for the transfer after the {overhead_s} s overhead",
                         "pipeline.refit_overhead_s")
    return EXPORT_BYTES_PER_PARAM * params / (seconds - overhead_s)


def predict_refit_seconds(params: float, rate: float, overhead_s: float) -> float:
    """Seconds of a non-colocated refit of `params` parameters at `rate` bytes/s."""
    return overhead_s + refit_broadcast_seconds(params, rate)


# ---------------------------------------------------------------- the colocated refit's on-GPU copies
# The measured copies (calibration/h200/measured/refit_copy.csv): the time per byte is fitted on a dense model whose
# few large tensors keep the GPU busy, the time per tensor copy on an MoE model whose thousands of small expert
# tensors leave it waiting for the host; the other cases are held out (tests/test_refit.py).
COPY_FIT_BANDWIDTH_CASE = "qwen3-8b"
COPY_FIT_LAUNCH_CASE = "qwen3-30b-a3b-24-layers"


def fit_refit_copy(rows, hbm_bandwidth: float) -> tuple[float, float]:
    """(HBM efficiency of the copies, seconds per tensor copy) from the measured table's two fitting cases."""
    by = {r["case"]: r for r in rows}
    for case in (COPY_FIT_BANDWIDTH_CASE, COPY_FIT_LAUNCH_CASE):
        if case not in by:
            raise RlsimError(f"the measured refit copies lack the case {case!r}", "refit_copy.csv")
    bw = by[COPY_FIT_BANDWIDTH_CASE]
    eff = float(bw["traffic_bytes"]) / (float(bw["total_s"]) * hbm_bandwidth)
    ln = by[COPY_FIT_LAUNCH_CASE]
    per_copy = float(ln["total_s"]) / (2.0 * float(ln["tensors"]))
    return eff, per_copy
