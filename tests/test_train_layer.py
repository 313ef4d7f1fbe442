"""Training layers measured on an H200: the backward / forward ratios fitted on the operator timings, and whole
layers (never fitted on) against the training cost model."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from simulator.errors import RlsimError
from simulator.fit.fit_misc import fit_train_backward
from simulator.fit.measurements import Measurements, read_file
from simulator.hardware import load_hardware
from simulator.paths import calibration_dir
from simulator.training.cost import TrainingCostModel, TrainSetup
from simulator.validation.train_layers import measured_layers, predict_layers

MEASURED = calibration_dir() / "h200" / "measured" / "train_layer.csv"


@pytest.fixture(scope="module")
def layers():
    return predict_layers(measured_layers())


def test_profiles_carry_the_fit_of_the_measured_operators():
    m = Measurements()
    read_file(MEASURED, m)
    assert m.table("gemm").empty  # its GEMM rows (dgrad / wgrad shapes) do not join the inference GEMM fit
    c = fit_train_backward(m.table("train_layer"))
    for hw in ("h200", "h100", "b200", "gb200", "a100"):
        tb = load_hardware(hw).efficiency.train_backward
        assert (tb.gemm, tb.attention) == pytest.approx((c.gemm, c.attention), abs=1e-4), hw
    # data + weight gradients: two GEMMs of the forward's FLOPs; FlashAttention's backward: more than that
    assert 1.8 < c.gemm < 2.2 and c.attention > c.gemm


@pytest.mark.parametrize("source", ["train_layer.csv", "train_layer_heldout.csv"])
def test_whole_layers_forward_and_backward_held_out(layers, source):
    g = layers[layers["source"] == source]
    assert len(g) == 24
    for col in ("fwd_err", "bwd_err"):
        e = g[col].abs()
        assert e.median() <= 0.07 and e.max() <= 0.25, (col, e.median(), e.max())


def test_backward_grows_with_the_attention_ratio():
    hw = load_hardware("h200")
    tb = hw.efficiency.train_backward
    more = hw.model_copy(update={"efficiency": hw.efficiency.model_copy(
        update={"train_backward": tb.model_copy(update={"attention": 2 * tb.attention})})})
    mb = np.array([4096, 4096])
    f0, b0 = TrainingCostModel(hw, "qwen3-8b", TrainSetup(gpus=8)).layer_times(mb)
    f1, b1 = TrainingCostModel(more, "qwen3-8b", TrainSetup(gpus=8)).layer_times(mb)
    assert f1 == pytest.approx(f0) and b1 > b0


def test_profile_without_training_ratios_is_one_clear_error():
    hw = load_hardware("h200")
    bare = hw.model_copy(update={"efficiency": hw.efficiency.model_copy(update={"train_backward": None})})
    with pytest.raises(RlsimError, match="train_backward") as e:
        TrainingCostModel(bare, "qwen3-8b", TrainSetup(gpus=8))
    assert e.value.field == "hardware"


def test_malformed_training_layer_tables(tmp_path):
    d = pd.read_csv(MEASURED)
    bad = tmp_path / "train_layer_bad.csv"
    d.assign(phase=d["phase"].replace({"wgrad": "wgrad2"})).to_csv(bad, index=False)
    with pytest.raises(RlsimError, match="unknown phase 'wgrad2'"):
        read_file(bad, Measurements())
    no_attn = tmp_path / "train_layer_noattn.csv"
    d[d["op"] != "attention"].to_csv(no_attn, index=False)
    m = Measurements()
    read_file(no_attn, m)
    with pytest.raises(RlsimError, match="attention fwd/bwd rows"):
        fit_train_backward(m.table("train_layer"))
