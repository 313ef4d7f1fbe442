"""Dense training costs: context-parallel attention and pipeline fill/drain (simulator.training.cost)."""
from __future__ import annotations

import numpy as np
import pytest

from simulator.training.cost import TrainingCostModel, TrainSetup


def test_context_parallel_attention_is_a_share_of_the_whole_sequence():
    """Ring attention: a rank's L/cp queries attend over the whole causal context, 1/cp of the sequence's attention
    (not the (1/cp)^2 of an L/cp-token sequence alone)."""
    full = TrainingCostModel("h200", "llama-3.1-8b", TrainSetup(gpus=8, cp=1, micro_batch_tokens=32768))
    half = TrainingCostModel("h200", "llama-3.1-8b", TrainSetup(gpus=8, cp=2, micro_batch_tokens=32768))
    a_full = full.forward_time(np.array([32768]))[1]["attention"]
    a_half = half.forward_time(np.array([16384]))[1]["attention"]
    assert 0.4 < a_half / a_full < 0.65


def test_every_optimizer_step_pays_its_own_pipeline_fill_and_drain():
    tc = TrainingCostModel("h200", "llama-3.1-8b", TrainSetup(gpus=8, pp=2, micro_batch_tokens=4096))
    lens = np.full(256, 2048)
    one = tc.train_time(lens, optimizer_steps=1).parts["pipeline_bubble"]
    four = tc.train_time(lens, optimizer_steps=4).parts["pipeline_bubble"]
    assert four == pytest.approx(4 * one)


def test_fp8_training_speeds_the_gemms_and_nothing_else():
    """training.dtype fp8 (Megatron's fp8_cfg, the H100 FP8 NeMo-RL row): the linear layers run on the measured FP8
    GEMM curve, attention and the elementwise kernels stay as in BF16; on Llama-3.1-8B's 3600-token micro-batch the
    GEMMs take about half as long, the whole training pass about 30% less."""
    mb = np.array([1200, 1200, 1200])
    bf16 = TrainingCostModel("h100", "llama-3.1-8b", TrainSetup(gpus=8, recompute="full"))
    fp8 = TrainingCostModel("h100", "llama-3.1-8b", TrainSetup(gpus=8, recompute="full", dtype="fp8"))
    b, f = bf16.forward_time(mb)[1], fp8.forward_time(mb)[1]
    assert f["attention"] == pytest.approx(b["attention"]) and f["other"] == pytest.approx(b["other"])
    assert 0.4 < f["gemm"] / b["gemm"] < 0.65
    lens = np.full(256, 1200)
    assert 0.6 < fp8.train_time(lens).total_s / bf16.train_time(lens).total_s < 0.8
