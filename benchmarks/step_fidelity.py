"""Fidelity of the calibrated GPU cost model, printed as figures:
- cross-validation of the kernel fits on the shared H200 data (fit on a part, predict the rest),
- whole-model H200 step times (calibration/h200/measured/steps*.csv, never fitted on), with the datasheet roofline,
- EAGLE-3 head steps (shared eagle.csv, never fitted on),
- whole dense training layers, forward and backward (calibration/h200/measured/train_layer.csv and
  heldout/train_layer_heldout.csv, never fitted on: the backward ratios come from their operator rows).

    python benchmarks/step_fidelity.py
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from simulator.costmodel.step import StepCostModel
from simulator.fit.fit_attention import cross_validate_attention
from simulator.fit.fit_gemm import cross_validate
from simulator.fit.measurements import Measurements, read_file
from simulator.paths import calibration_dir
from simulator.validation.steps import measured_steps, predict_steps, summary
from simulator.validation.train_layers import measured_layers, predict_layers


def _fmt(e) -> str:
    e = np.abs(np.asarray(e))
    return f"n={e.size:4d}  median {100 * np.median(e):5.2f}%  p90 {100 * np.percentile(e, 90):5.2f}%  " \
           f"worst {100 * e.max():6.2f}%"


def main() -> None:
    shared = calibration_dir() / "h200" / "shared"
    m = Measurements()
    for f in sorted(shared.iterdir()):
        if f.suffix in (".csv", ".gz", ".json"):
            read_file(f, m)
    g = m.table("gemm")
    print("Cross-validation on ../shared/calibration/h200 (5 folds, rows held out):")
    bf = g[g["dtype"] == "bf16"].reset_index(drop=True)
    f8 = g[g["dtype"] == "fp8"].reset_index(drop=True)
    print("  gemm bf16            ", _fmt(cross_validate(bf, 989e12, 4.8e12)))
    print("  gemm fp8             ", _fmt(cross_validate(f8, 1979e12, 4.8e12, 1.0, 1.5)))
    print("  gemm bf16 (shape out)", _fmt(cross_validate(bf, 989e12, 4.8e12, by_shape=True)))
    a = m.table("attention")
    for backend, reread in (("packed", False), ("sdpa_gqa", True)):
        rows = a[a["backend"] == backend].reset_index(drop=True)
        print(f"  attention {backend:10s} ", _fmt(cross_validate_attention(rows, 4.8e12, 989e12, reread)))
    p = predict_steps(measured_steps())
    print("\nWhole-model H200 steps (held out; batch 1-256, context 1k-16k, q_len 1 and 4, packed attention):")
    with pd.option_context("display.width", 160):
        print((summary(p) * [1, 100, 100, 100]).round(2).rename(columns=lambda c: c.replace("abs_err", "err %")))
    print("  all:", _fmt(p["err"]), "| datasheet roofline median "
          f"{100 * p['roofline_err'].abs().median():.1f}%")
    e = pd.read_csv(shared / "eagle.csv")
    sm = StepCostModel("h200", "eagle3-llama-3.1-8b")
    pe = np.array([sm.step_time(np.full(r.batch, r.q_len), np.full(r.batch, r.ctx)) * 1e6 for r in e.itertuples()])
    print("\nEAGLE-3 head for Llama-3.1-8B (shared eagle.csv, held out):", _fmt(pe / e["us"].to_numpy() - 1))
    tl = predict_layers(measured_layers())
    print("\nWhole training layers on an H200 (6 dense shapes, TP 1 and 4, packed micro-batches of 4K-16K tokens):")
    for src, g in tl.groupby("source"):
        print(f"  {src:24s} forward ", _fmt(g["fwd_err"]), f" mean {100 * g['fwd_err'].mean():+5.1f}%")
        print(f"  {src:24s} backward", _fmt(g["bwd_err"]), f" mean {100 * g['bwd_err'].mean():+5.1f}%")


if __name__ == "__main__":
    main()
