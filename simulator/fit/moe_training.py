"""The fixed cost of a routed-MoE layer per training micro-batch (`training.moe_layer_overhead_s`), fitted on a
published policy-training stage time.

The kernel model prices Megatron-Core's MoE layer as its grouped GEMMs, permutation and all-to-alls; NeMo-RL's
published stage times of MoE runs are several times longer (B200, Qwen3-30B-A3B: 56.85 s of policy training where
the kernels come to about 10 s). `fit_moe_layer_overhead` returns the seconds per MoE layer per micro-batch that
close that gap for one scenario (the stage is linear in it: two runs), to be checked on runs it was not fitted on.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from simulator.errors import RlsimError
from simulator.fit.linear_cost import fit_linear_cost
from simulator.tableio import read_csv_table

STAGE_COLUMNS = ("system", "model", "recipe", "gpus", "stage", "seconds")


def read_stage_reports(path: str | Path) -> pd.DataFrame:
    """Published per-stage times (workloads/published/nemo_rl_stage_reports.csv); one error line if malformed."""
    return read_csv_table(path, STAGE_COLUMNS, "published stage times", str(path))


def stage_seconds(df: pd.DataFrame, system: str, model: str, stage: str, gpus: int | None = None) -> float:
    """The published seconds of one stage (of the run on `gpus` GPUs where the report has several)."""
    rows = df[(df["system"] == system) & (df["model"] == model) & (df["stage"] == stage)]
    if gpus is not None:
        rows = rows[rows["gpus"] == gpus]
    if len(rows) != 1:
        raise RlsimError(f"no single {stage} row for {system} {model}{f' on {gpus}' if gpus else ''}", "stage")
    return float(rows["seconds"].iloc[0])


def fit_moe_layer_overhead(policy_training_s, published_s: float) -> float:
    """Seconds per MoE layer per training micro-batch that make `policy_training_s(overhead)` (the simulated
    policy_training stage of one step, seconds) equal `published_s`; at least 0."""
    return fit_linear_cost(policy_training_s, published_s, "training.moe_layer_overhead_s", hint=" (no MoE layers?)")
