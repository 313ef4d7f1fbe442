"""The training-style MoE expert curve (efficiency.moe_train) fitted on measured grouped GEMMs on an H200
(calibration/h200/measured/moe_train.csv), checked in-sample and across expert shapes (fit on one shape, predict
the other), and the training cost model's use of it."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import ROOT
from simulator.costmodel.collectives import collective_time
from simulator.fit.fit_misc import fit_moe_train, predict_moe_train
from simulator.hardware import load_hardware
from simulator.training.cost import TrainingCostModel, TrainSetup

DATA = pd.read_csv(ROOT / "calibration" / "h200" / "measured" / "moe_train.csv").assign(source="moe_train.csv")
H200 = load_hardware("h200")
PEAK, BW = H200.peak("bf16"), H200.hbm_bandwidth


def _err(curve, rows):
    return predict_moe_train(curve, rows, PEAK, BW) / rows["us"].to_numpy() - 1


def test_measurements_cover_both_shapes_and_three_passes():
    assert set(DATA["shape"]) == {"qwen3-30b-a3b", "qwen3-235b-a22b"}
    assert set(DATA["pass"]) == {"fwd", "fwd_bwd", "fwd_permute"}
    assert (DATA["us"] > 0).all()


def test_committed_profile_carries_the_fit_and_reproduces_the_timings():
    assert H200.efficiency.moe_train is not None
    err = np.abs(_err(H200.efficiency.moe_train, DATA))
    assert np.median(err) < 0.10 and err.max() < 0.15


@pytest.mark.parametrize("fit_on, held_out", [("qwen3-235b-a22b", "qwen3-30b-a3b"),
                                              ("qwen3-30b-a3b", "qwen3-235b-a22b")])
def test_one_shape_predicts_the_other(fit_on, held_out):
    curve = fit_moe_train(DATA[DATA["shape"] == fit_on], PEAK, BW)
    err = np.abs(_err(curve, DATA[DATA["shape"] == held_out]))
    assert np.median(err) < 0.20 and err.max() < 0.30


def test_backward_costs_more_than_two_forwards_at_few_rows_per_expert():
    c = H200.efficiency.moe_train
    assert c.bwd_ratio[0] > 3.0 and c.bwd_ratio[-1] < c.bwd_ratio[0]


def test_training_model_prices_routed_experts_with_the_training_curve():
    setup = TrainSetup(gpus=8, ep=8, micro_batch_tokens=4096)
    tc = TrainingCostModel("h200", "qwen3-30b-a3b", setup)
    t, bd = tc.forward_time(np.array([4096]))
    assert bd["experts_fwd"] > 0 and bd["experts_bwd"] > bd["experts_fwd"]
    # no training curve: the inference MoE curve and a backward of the profile's GEMM backward ratio
    bare = H200.model_copy(update={"efficiency": H200.efficiency.model_copy(update={"moe_train": None})})
    t0, bd0 = TrainingCostModel(bare, "qwen3-30b-a3b", setup).forward_time(np.array([4096]))
    assert "experts_fwd" not in bd0 and t0 != pytest.approx(t)


def test_expert_parallel_all_to_all_stays_on_nvlink_within_a_node():
    one_node = TrainingCostModel("h100", "qwen3-30b-a3b", TrainSetup(gpus=32, ep=8, micro_batch_tokens=4096))
    across = TrainingCostModel("h100", "qwen3-30b-a3b", TrainSetup(gpus=32, ep=16, micro_batch_tokens=4096))
    t8, _ = one_node.forward_time(np.array([4096]))
    t16, _ = across.forward_time(np.array([4096]))
    assert t16 > 1.5 * t8  # EP 16 spans two 8-GPU nodes: the all-to-alls go over the network


def test_sequence_parallel_gpus_dispatch_their_share_of_the_micro_batch():
    """Megatron-Core's alltoall dispatcher sends each GPU's S/TP tokens (sequence parallelism), so TP 4 moves a
    quarter of TP 1's all-to-all bytes for the same micro-batch; the experts' FLOPs per GPU fall the same way."""
    tp1 = TrainingCostModel("h100", "qwen3-235b-a22b", TrainSetup(gpus=256, tp=1, pp=16, ep=16))
    tp4 = TrainingCostModel("h100", "qwen3-235b-a22b", TrainSetup(gpus=256, tp=4, pp=8, ep=16))
    mb = np.array([8192])
    _, b1 = tp1.forward_time(mb)
    _, b4 = tp4.forward_time(mb)
    assert 3.0 < b1["expert_comm"] / b4["expert_comm"] <= 4.0
    assert 3.0 < b1["experts_fwd"] / b4["experts_fwd"] < 5.0


def test_all_to_all_over_two_nodes_sends_only_the_remote_share_over_the_network():
    hw = load_hardware("h100")
    size = float(1 << 28)
    both = collective_time(hw, "all_to_all", size, 16, 16)
    # every byte on the network (what a flat model would charge) vs the 8 remote peers' 8/16 of it
    flat = collective_time(hw.model_copy(update={"scale_up": hw.scale_out}), "all_to_all", size, 16, 16)
    assert 0.45 < both / flat < 0.6
    assert both > collective_time(hw, "all_to_all", size, 8, 8)



def test_expert_tensor_parallelism_splits_expert_weights_and_adds_its_gather():
    from simulator.training.cost import _local_params
    one = TrainSetup(gpus=256, tp=4, pp=8, ep=16, etp=1)
    two = TrainSetup(gpus=256, tp=4, pp=8, ep=16, etp=2)
    m1, m2 = (TrainingCostModel("h100", "qwen3-235b-a22b", s) for s in (one, two))
    assert _local_params(m2.model, two)[1] == pytest.approx(_local_params(m1.model, one)[1] / 2)
    _, b1 = m1.forward_time(np.array([8192]))
    _, b2 = m2.forward_time(np.array([8192]))
    assert b2["expert_comm"] > b1["expert_comm"]  # + the gather / reduce-scatter over etp
    # the same GEMM FLOPs (twice the rows, half the width); the gathered rows' permutation is twice as large
    assert 1.0 < b2["experts_fwd"] / b1["experts_fwd"] < 2.0
    with pytest.raises(Exception, match="expert_tensor_parallel_size"):
        TrainingCostModel("h100", "qwen3-235b-a22b", TrainSetup(gpus=128, tp=4, pp=8, ep=16, etp=16))
