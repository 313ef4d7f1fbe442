"""The training cost of routed experts against measured training-style grouped GEMMs on an H200
(calibration/h200/measured/moe_train.csv; never fitted on). The training model prices an MoE layer's forward
with the inference MoE curve and its backward as `backward_ratio` (2) forwards."""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from conftest import ROOT
from simulator.costmodel.step import StepCostModel
from simulator.training.cost import TrainSetup

DATA = pd.read_csv(ROOT / "calibration" / "h200" / "measured" / "moe_train.csv")


def _model_forward_us(shape: str, tokens: int) -> float:
    t = StepCostModel("h200", shape, tp=1, ep=1, dtype="bf16", moe_kernel="fused")
    mb = np.array([tokens])
    return t.step(mb, mb, logit_tokens=tokens).breakdown["moe"] / t.model.moe_layers * 1e6


def _measured(shape: str, tokens: int, kind: str) -> float:
    row = DATA[(DATA["shape"] == shape) & (DATA["tokens"] == tokens) & (DATA["pass"] == kind)]
    assert len(row) == 1
    return float(row["us"].iloc[0])


def test_measurements_cover_both_shapes_and_three_passes():
    assert set(DATA["shape"]) == {"qwen3-30b-a3b", "qwen3-235b-a22b"}
    assert set(DATA["pass"]) == {"fwd", "fwd_bwd", "fwd_permute"}
    assert (DATA["us"] > 0).all()


@pytest.mark.parametrize("tokens", [1024, 4096, 8192, 16384])
def test_235b_expert_forward_within_20_percent(tokens):
    model = _model_forward_us("qwen3-235b-a22b", tokens)
    assert model == pytest.approx(_measured("qwen3-235b-a22b", tokens, "fwd_permute"), rel=0.20)


@pytest.mark.xfail(strict=True, raises=AssertionError, reason="measured: for the 30B-A3B shape the inference MoE curve prices a training "
                                       "micro-batch's expert forward 1.4-1.5x the grouped GEMM + permutation "
                                       "(4K-16K tokens), and torch's grouped-GEMM backward costs 2.4-4x its forward "
                                       "where the model assumes 2x: fwd+bwd is 36% too slow for 30B and 23% too fast "
                                       "for 235B at 4K tokens")
@pytest.mark.parametrize("shape", ["qwen3-30b-a3b", "qwen3-235b-a22b"])
def test_expert_forward_backward_within_20_percent(shape):
    ratio = {f.name: f.default for f in dataclasses.fields(TrainSetup)}["backward_ratio"]
    for tokens in (4096, 8192, 16384):
        model = (1 + ratio) * _model_forward_us(shape, tokens)
        permute = _measured(shape, tokens, "fwd_permute") - _measured(shape, tokens, "fwd")
        measured = _measured(shape, tokens, "fwd_bwd") + 2 * permute
        assert model == pytest.approx(measured, rel=0.20), (tokens, model, measured)
