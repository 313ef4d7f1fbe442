"""vLLM's exposed CPU seconds per scheduled sequence per iteration, from calibration/vllm_cpu measurements.

The table (calibration/vllm_cpu/measure_vllm_cpu.py) has one row per (multiprocessing, async_scheduling, batch):
`exposed_cpu_s` = the iteration's wall time beyond the stand-in GPU step (seconds). Without async scheduling that
time grows linearly with the batch (scheduler, KV-block bookkeeping, output and logprob objects, run serially with
the GPU step); with it, the CPU work overlaps the GPU step and stays exposed only where it outlasts the step.
`fit_vllm_cpu` returns the line through the rows of one engine mode: intercept (s, the batch-independent part that
the engine's `step_overhead_s` already covers) and slope (s per sequence, `engine.cpu_s_per_seq`).

A host's Python speed moves these seconds between sessions (calibration/vllm_cpu/README.md), so two vLLM
versions are compared only within one session, their runs interleaved (`vllm_versions_ab.csv`): `version_ratio`
is the ratio of their slopes there, which carries one version's measured slope over to the other.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from simulator.errors import RlsimError
from simulator.tableio import read_csv_table

COLUMNS = ("multiprocessing", "async_scheduling", "batch", "exposed_cpu_s")
MIN_BATCH = 16  # the line is fitted where the per-sequence part dominates (batch 1 is the fixed part alone)


@dataclass(frozen=True)
class VllmCpuFit:
    intercept_s: float
    s_per_seq: float
    max_rel_residual: float  # largest |fit - measured| / measured over the fitted rows
    rows: int


def read_vllm_cpu_table(path: str | Path) -> pd.DataFrame:
    """The measured table; one error line naming the file if it is missing, unreadable or lacks a column."""
    return read_csv_table(path, COLUMNS, "vLLM CPU timings", str(path))


def fit_vllm_cpu(df: pd.DataFrame, multiprocessing: bool, async_scheduling: bool) -> VllmCpuFit:
    """Least-squares line exposed_cpu_s = intercept + s_per_seq * batch over the rows of one engine mode with
    batch >= MIN_BATCH."""
    rows = df[(df["multiprocessing"] == int(multiprocessing)) & (df["async_scheduling"] == int(async_scheduling))
              & (df["batch"] >= MIN_BATCH)]
    if len(rows) < 2:
        raise RlsimError(f"need two batch sizes >= {MIN_BATCH} for multiprocessing={int(multiprocessing)} "
                         f"async_scheduling={int(async_scheduling)}", "batch")
    b = rows["batch"].to_numpy(float)
    y = rows["exposed_cpu_s"].to_numpy(float)
    slope, icpt = np.polyfit(b, y, 1)
    pred = icpt + slope * b
    return VllmCpuFit(float(icpt), float(slope), float(np.max(np.abs(pred - y) / y)), int(len(rows)))


def read_version_table(path: str | Path) -> pd.DataFrame:
    """A table of several vLLM versions measured in one session (a `vllm` column of version strings)."""
    df = read_csv_table(path, COLUMNS + ("vllm",), "vLLM CPU timings", str(path))
    df["vllm"] = df["vllm"].astype(str)
    return df


def version_ratio(df: pd.DataFrame, version: str, reference: str, multiprocessing: bool) -> float:
    """Slope of `version` over slope of `reference` (synchronous scheduling, one process mode), each fitted on all of
    its rows of the table (every interleaved round pooled)."""
    slopes = []
    for v in (version, reference):
        rows = df[df["vllm"] == v]
        if rows.empty:
            raise RlsimError(f"no rows of vLLM {v} (the table has {', '.join(sorted(set(df['vllm'])))})", "vllm")
        slopes.append(fit_vllm_cpu(rows, multiprocessing, async_scheduling=False).s_per_seq)
    return slopes[0] / slopes[1]
