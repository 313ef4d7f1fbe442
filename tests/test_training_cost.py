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
