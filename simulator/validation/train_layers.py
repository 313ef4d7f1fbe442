"""Whole dense training layers measured on an H200 (calibration/h200/measured/train_layer.csv's `layer` rows and
heldout/train_layer_heldout.csv), never fitted on, against the training cost model's per-layer forward and backward
(the step model's kernels plus the profile's measured backward ratios, which only the operator rows fit)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from simulator.hardware import load_hardware
from simulator.paths import calibration_dir
from simulator.training.cost import TrainingCostModel, TrainSetup

# measure_train_layer.py's shape names -> rlsim's model catalogue
MODEL_OF_SHAPE = {"llama-3.1-8b": "llama-3.1-8b", "qwen3-8b": "qwen3-8b", "qwen3-32b": "qwen3-32b",
                  "qwen3-32b-tp4": "qwen3-32b", "llama-3.1-70b-tp4": "llama-3.1-70b", "qwen3-1.7b": "qwen3-1.7b"}


def measured_layers(paths: list[Path] | None = None) -> pd.DataFrame:
    """One row per measured layer: shape, tp, tokens, seq_len, fwd_us, bwd_us, source."""
    d = calibration_dir() / "h200" / "measured"
    paths = paths or [d / "train_layer.csv", d / "heldout" / "train_layer_heldout.csv"]
    rows = pd.concat([pd.read_csv(p).assign(source=p.name) for p in paths], ignore_index=True)
    rows = rows[rows["op"] == "layer"]
    return (rows.pivot_table(index=["source", "shape", "tp", "tokens", "seq_len"], columns="phase", values="us")
            .reset_index().rename(columns={"fwd": "fwd_us", "bwd": "bwd_us", "fwd_bwd": "fwd_bwd_us"}))


def predict_layers(df: pd.DataFrame, hardware: str = "h200") -> pd.DataFrame:
    """Adds pred_fwd_us, pred_bwd_us and their relative errors to a table of measured layers."""
    hw = load_hardware(hardware)
    models: dict = {}
    fwd, bwd = [], []
    for r in df.itertuples():
        key = (r.shape, r.tp)
        if key not in models:
            # pipeline and data parallelism shard the weights and optimizer state (the memory check), not a
            # layer's kernels
            setup = TrainSetup(gpus=256 * int(r.tp), tp=int(r.tp), pp=4)
            models[key] = TrainingCostModel(hw, MODEL_OF_SHAPE[r.shape], setup)
        f, b = models[key].layer_times(np.full(int(r.tokens) // int(r.seq_len), int(r.seq_len)))
        fwd.append(f * 1e6)
        bwd.append(b * 1e6)
    out = df.copy()
    out["pred_fwd_us"], out["pred_bwd_us"] = fwd, bwd
    out["fwd_err"] = out["pred_fwd_us"] / out["fwd_us"] - 1
    out["bwd_err"] = out["pred_bwd_us"] / out["bwd_us"] - 1
    return out
