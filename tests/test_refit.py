"""Weight refit (simulator/training/cost.py::refit_time, simulator/fit/refit.py): NeMo-RL's non-colocated refit
broadcasts the whole bf16 model to every vLLM worker; its rate is fitted on one reported refit and checked on another
that the fit never saw (workloads/published/nemo_rl_refit_reports.csv)."""
from __future__ import annotations

import pandas as pd
import pytest

from conftest import ROOT
from simulator.errors import RlsimError
from simulator.fit.refit import (COPY_FIT_BANDWIDTH_CASE, COPY_FIT_LAUNCH_CASE, fit_refit_broadcast_rate,
                                 fit_refit_copy, predict_refit_seconds)
from simulator.hardware import load_hardware
from simulator.model_config import load_model
from simulator.pipeline.run import run_pipeline
from simulator.scenario import load_scenario
from simulator.training.cost import TrainSetup, refit_copy_seconds, refit_time

COPIES = pd.read_csv(ROOT / "calibration" / "h200" / "measured" / "refit_copy.csv")
REPORTS = pd.read_csv(ROOT / "workloads" / "published" / "nemo_rl_refit_reports.csv", comment="#")
PAPER_SCENARIO = ROOT / "workloads" / "scenarios" / "qwen3-8b-rl-think-gb200x32.yaml"
OVERHEAD_S = load_scenario(PAPER_SCENARIO).pipeline.refit_overhead_s


def _reported(model: str, code: str = "after") -> float:
    return float(REPORTS[(REPORTS["model"] == model) & (REPORTS["code"] == code)]["seconds"].iloc[0])


def test_rate_fitted_on_qwen3_235b_predicts_the_deepseek_v3_refit():
    """Fitted on the Qwen3-235B refit (5.5 s), the rate predicts the DeepSeek-V3 refit of the same PR (14 s) within
    10%: the refit grows with the whole model's bytes (2.85x the parameters), as a broadcast of every weight does."""
    rate = fit_refit_broadcast_rate(load_model("qwen3-235b-a22b").total_params(), _reported("qwen3-235b-a22b"),
                                    OVERHEAD_S)
    pred = predict_refit_seconds(load_model("deepseek-v3").total_params(), rate, OVERHEAD_S)
    assert pred == pytest.approx(_reported("deepseek-v3"), rel=0.10), pred
    # the same holds for the pre-overlap code of the PR (13 s -> 34 s), fitted and checked the same way
    before = fit_refit_broadcast_rate(load_model("qwen3-235b-a22b").total_params(),
                                      _reported("qwen3-235b-a22b", "before"), OVERHEAD_S)
    pred_b = predict_refit_seconds(load_model("deepseek-v3").total_params(), before, OVERHEAD_S)
    assert pred_b == pytest.approx(_reported("deepseek-v3", "before"), rel=0.15), pred_b


def test_non_colocated_refit_sends_the_whole_bf16_model_whatever_the_generation_setup():
    """Every vLLM worker receives every weight (its loader keeps its shard), in bf16 even for FP8 generation."""
    hw, m = load_hardware("h100"), load_model("qwen3-235b-a22b")
    s = TrainSetup(gpus=128, tp=4, pp=8, ep=16)
    kw = dict(hw=hw, model=m, colocated=False, train=s, gen_gpus=128, broadcast_bytes_per_s=1e11)
    tp8 = refit_time(gen_tp=8, gen_ep=1, **kw).total_s
    assert refit_time(gen_tp=1, gen_ep=1, **kw).total_s == pytest.approx(tp8)
    assert refit_time(gen_tp=8, gen_ep=1, dtype_bytes=1.0, **kw).total_s == pytest.approx(tp8)
    assert tp8 == pytest.approx(2 * m.total_params() / 1e11)
    # without a fitted rate: the shared network link at the configured efficiency
    link = refit_time(hw, m, False, s, 8, 1, 128, network_efficiency=0.8).parts["transfer"]
    assert link == pytest.approx(2 * m.total_params() / (hw.scale_out.bandwidth * 0.8), rel=1e-3)


def test_async_scenarios_carry_the_fitted_rate_and_pay_it():
    scn = load_scenario(ROOT / "workloads" / "scenarios" / "nemo-rl-qwen3-235b-a22b-h100x256-1-off.yaml")
    rate = fit_refit_broadcast_rate(load_model("qwen3-235b-a22b").total_params(), _reported("qwen3-235b-a22b"),
                                    scn.pipeline.refit_overhead_s)
    assert scn.pipeline.refit_broadcast_bytes_per_s == pytest.approx(rate, rel=1e-3)
    assert "nemo_rl_refit_reports.csv" in scn.sources["pipeline.refit_broadcast_bytes_per_s"]
    small = load_scenario(None, ["pipeline.mode=async", "pipeline.colocated=false", "rollout.prompts=16",
                                 f"pipeline.refit_broadcast_bytes_per_s={rate}"])
    out = run_pipeline(small, steps=3).summary()
    assert out["weight_sync"] == pytest.approx(2 * load_model("qwen3-8b").total_params() / rate, rel=1e-3)


def test_bad_refit_inputs_name_the_field():
    with pytest.raises(RlsimError) as e:
        fit_refit_broadcast_rate(1e9, 0.5, 0.854)
    assert e.value.field == "pipeline.refit_overhead_s"
    with pytest.raises(RlsimError) as e:
        load_scenario(None, ["pipeline.refit_broadcast_bytes_per_s=-1"])
    assert "pipeline.refit_broadcast_bytes_per_s" in str(e.value.field)


# ---------------------------------------------------------------- colocated: the CUDA-IPC copies measured on the H200
def test_measured_refit_copies_predict_the_held_out_models():
    """Fitted on Qwen3-8B (time per byte) and Qwen3-30B-A3B (time per tensor copy), the copy model predicts the
    other measured models within 10%: Llama-3.1-8B and Qwen3-32B (bandwidth-bound) and Qwen3-235B-A22B's layers
    (2,349 tensors of 12 MB: launch-bound)."""
    hbm = load_hardware("h200").hbm_bandwidth
    eff, per_copy = fit_refit_copy(COPIES.to_dict("records"), hbm)
    assert 0.5 < eff < 1.0 and 5e-6 < per_copy < 5e-5
    held = COPIES[~COPIES["case"].isin([COPY_FIT_BANDWIDTH_CASE, COPY_FIT_LAUNCH_CASE, "plain_1GiB_copy"])]
    assert len(held) == 3
    for r in held.to_dict("records"):
        pred = refit_copy_seconds(r["traffic_bytes"], 2 * r["tensors"], hbm, eff, per_copy)
        assert pred == pytest.approx(r["total_s"], rel=0.10), (r["case"], pred)
    # the per-tensor cost is what makes many-expert models slow: their measured rate is a fraction of a dense one's
    rate = COPIES.set_index("case")["gb_per_s"]
    assert rate[COPY_FIT_LAUNCH_CASE] < 0.2 * rate[COPY_FIT_BANDWIDTH_CASE]


def test_tensor_count_matches_the_measured_export():
    """The measuring script streams Llama-3.1-8B's export tensor by tensor, as ModelConfig.hf_tensor_count counts
    them."""
    n = int(COPIES.set_index("case").loc["llama-3.1-8b", "tensors"])
    assert load_model("llama-3.1-8b").hf_tensor_count() == n
    moe = load_model("qwen3-30b-a3b")
    assert moe.hf_tensor_count() > moe.layers * 3 * moe.moe.experts


def test_tensor_count_of_an_mla_model():
    """DeepSeek-V3's export per layer: q_a_proj, q_a_layernorm, q_b_proj, kv_a_proj_with_mqa, kv_a_layernorm,
    kv_b_proj, o_proj and two layer norms; 3 dense MLPs (gate, up, down) and 58 MoE layers (router, 256 routed and
    1 shared expert); embedding, final norm, lm_head."""
    m = load_model("deepseek-v3")
    assert m.hf_tensor_count() == 61 * 9 + 3 * 3 + 58 * (1 + 3 * 256 + 3) + 3


def test_colocated_refit_of_a_many_expert_model_is_bound_by_its_tensor_copies():
    scn = load_scenario(ROOT / "workloads" / "scenarios" / "nemo-rl-qwen3-30b-a3b-h100x32-on.yaml")
    p = scn.pipeline
    assert "refit_copy.csv" in scn.sources["pipeline.refit_copy_overhead_s"]
    hw, m = load_hardware("h100"), load_model("qwen3-30b-a3b")
    rf = refit_time(hw, m, True, TrainSetup(gpus=32), 2, 1, 32, ipc_efficiency=p.refit_ipc_efficiency,
                    copy_overhead_s=p.refit_copy_overhead_s)
    assert rf.parts["copy"] == pytest.approx(2 * m.hf_tensor_count() * p.refit_copy_overhead_s)
    dense = refit_time(hw, load_model("qwen3-32b"), True, TrainSetup(gpus=32), 4, 1, 32,
                       ipc_efficiency=p.refit_ipc_efficiency, copy_overhead_s=p.refit_copy_overhead_s)
    params = load_model("qwen3-32b").total_params()
    assert dense.parts["copy"] == pytest.approx((4 * params + 4 * params / 4) / (hw.hbm_bandwidth
                                                                                  * p.refit_ipc_efficiency))


def test_colocated_engine_shard_splits_only_the_experts_over_expert_parallelism():
    """An engine GPU loads 1/tp of the dense weights and 1/(tp * ep) of the routed experts (bandwidth-bound copies:
    the difference between ep 1 and ep 2 is the experts' second half alone)."""
    hw, m = load_hardware("h200"), load_model("qwen3-30b-a3b")
    setup = TrainSetup(gpus=8, ep=8)
    t = {ep: refit_time(hw, m, True, setup, 1, ep, 8, ipc_efficiency=0.5).parts["copy"] for ep in (1, 2)}
    experts = m.moe_layers * m.moe.experts * m.expert_params()
    assert t[1] - t[2] == pytest.approx((2.0 + 2.0) * experts / 2 / (hw.hbm_bandwidth * 0.5))


def test_fp4_engines_load_half_a_byte_per_weight():
    """The engine-side copy writes each weight in the generation dtype: fp4 half of fp8's bytes."""
    from simulator.scenario import scenario_from_dict
    ws = {d: run_pipeline(scenario_from_dict({}, ["cluster.hardware=b200", f"engine.dtype={d}", "rollout.prompts=8"]),
                          steps=1).summary()["weight_sync"] for d in ("bf16", "fp8", "fp4")}
    assert ws["bf16"] - ws["fp8"] == pytest.approx(2 * (ws["fp8"] - ws["fp4"]), rel=0.02)
