"""Whole-model step times measured on an H200 (never fitted on) against the calibrated step model."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from simulator.costmodel.step import StepCostModel
from simulator.validation.steps import measured_steps, predict_steps


@pytest.fixture(scope="module")
def pred():
    return predict_steps(measured_steps())


def test_whole_model_median_error_within_5_percent(pred):
    assert len(pred) >= 300
    assert pred["err"].abs().median() <= 0.05
    for (model, impl), g in pred.groupby(["model", "moe_impl"]):
        assert g["err"].abs().median() <= 0.06, (model, impl)


def test_calibration_beats_the_datasheet_roofline(pred):
    # the reference point: an uncalibrated roofline misses by about 48% (median)
    assert pred["roofline_err"].abs().median() > 0.3
    assert pred["err"].abs().median() < pred["roofline_err"].abs().median() / 5


def test_eagle3_head_steps_held_out():
    from simulator.paths import calibration_dir
    e = pd.read_csv(calibration_dir() / "h200" / "shared" / "eagle.csv")
    sm = StepCostModel("h200", "eagle3-llama-3.1-8b")
    p = np.array([sm.step_time(np.full(r.batch, r.q_len), np.full(r.batch, r.ctx)) * 1e6 for r in e.itertuples()])
    assert np.median(np.abs(p / e["us"].to_numpy() - 1)) <= 0.06
