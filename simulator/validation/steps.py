"""Whole-model step times measured on an H200 (calibration/h200/measured/steps*.csv), never fitted on, against
the step model's predictions; and a datasheet roofline without calibration for comparison."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from simulator.costmodel.step import StepCostModel
from simulator.hardware import load_hardware
from simulator.model_config import load_model
from simulator.paths import calibration_dir

MOE_IMPL = {"bmm": "padded_bmm", "grouped": "grouped", "dense": None}


def measured_steps(paths: list[Path] | None = None) -> pd.DataFrame:
    paths = paths or [p for p in sorted((calibration_dir() / "h200" / "measured").glob("steps*.csv"))
                      if "eager" not in p.name]
    return pd.concat([pd.read_csv(p).assign(source=p.name) for p in paths], ignore_index=True)


def predict_steps(df: pd.DataFrame, hardware: str = "h200") -> pd.DataFrame:
    """Adds pred_us, roofline_us and their relative errors to a table of measured steps."""
    models: dict = {}
    pred, roof = [], []
    hw = load_hardware(hardware)
    for r in df.itertuples():
        key = (r.model, r.moe_impl)
        if key not in models:
            models[key] = StepCostModel(hw, r.model, moe_kernel=MOE_IMPL.get(r.moe_impl))
        sm = models[key]
        pred.append(sm.step_time(np.full(r.batch, r.q_len), np.full(r.batch, r.ctx)) * 1e6)
        roof.append(datasheet_roofline(hw, r.model, r.batch, r.q_len, r.ctx) * 1e6)
    out = df.copy()
    out["pred_us"], out["roofline_us"] = pred, roof
    out["err"] = out["pred_us"] / out["us"] - 1
    out["roofline_err"] = out["roofline_us"] / out["us"] - 1
    return out


def datasheet_roofline(hw, model_name: str, batch: int, q_len: int, ctx: int) -> float:
    """Seconds by the plain datasheet roofline: every GEMM and attention at max(FLOPs/peak, bytes/bandwidth),
    every expert's weights read once per MoE layer, no efficiencies, no overheads."""
    m = load_model(model_name)
    a = m.attention
    T = batch * q_len
    peak, bw = hw.peak("bf16"), hw.hbm_bandwidth
    shapes = [((a.heads + 2 * a.kv_heads) * a.head_dim, m.hidden), (m.hidden, a.heads * a.head_dim)]
    if m.is_moe:
        shapes.append((m.moe.experts, m.hidden))
    else:
        shapes += [(2 * m.ffn, m.hidden), (m.hidden, m.ffn)]
    t = 0.0
    for n, k in shapes:
        t += m.layers * max(2 * T * n * k / peak, 2 * (n * k + T * (n + k)) / bw)
    if m.is_moe:
        e = m.moe
        t += m.layers * max(2 * T * e.top_k * 3 * m.hidden * e.expert_ffn / peak,
                            2 * e.experts * 3 * m.hidden * e.expert_ffn / bw)
    kv = batch * ctx * a.kv_heads * a.head_dim * 2 * 2
    t += m.layers * max(4 * batch * q_len * ctx * a.heads * a.head_dim / peak, kv / bw)
    t += max(2 * T * m.vocab * m.hidden / peak, 2 * m.vocab * m.hidden / bw)
    return t


def summary(pred: pd.DataFrame) -> pd.DataFrame:
    g = pred.groupby(["model", "moe_impl"])
    return pd.DataFrame({"n": g.size(), "median_abs_err": g["err"].apply(lambda e: e.abs().median()),
                         "max_abs_err": g["err"].apply(lambda e: e.abs().max()),
                         "roofline_median_abs_err": g["roofline_err"].apply(lambda e: e.abs().median())})
