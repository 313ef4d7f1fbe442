"""The 235B projection (`rlsim validate --only projection`): what rlsim projects for Qwen3-235B-A22B on 512 and
2,048 GB200 and why; no published figures to compare, so the checks are on the table's own consistency."""
from __future__ import annotations

import pytest

from conftest import ROOT
from simulator.pipeline.run import run_pipeline
from simulator.rollout.sim import RolloutSimulator
from simulator.scenario import load_scenario
from simulator.validation.published import projection_235b

SCEN = ROOT / "workloads/scenarios"


@pytest.fixture(scope="module")
def table():
    return projection_235b(splits=(0.5,))  # the shipped split only: one run a row


def test_every_case_is_projected_against_synchronous_autoregressive_rl(table):
    assert len(table) == 8
    for gpus, g in table.groupby("gpus"):
        by = {(r.mode, r.speculation): r for r in g.itertuples()}
        base = by[("sync", "ar")].step_s
        for r in g.itertuples():
            assert r.speedup_vs_sync_ar == pytest.approx(base / r.step_s)
        assert by[("sync", "ar")].speedup_vs_sync_ar == 1.0
        # speculation, async RL and both: each helps, both together the most
        assert by[("sync", "eagle3")].step_s < base and by[("async", "ar")].step_s < base
        both = by[("async", "eagle3")].speedup_vs_sync_ar
        assert both > by[("sync", "eagle3")].speedup_vs_sync_ar and both > by[("async", "ar")].speedup_vs_sync_ar


def test_the_table_says_what_bounds_each_step(table):
    for r in table.itertuples():
        if r.mode == "sync":
            assert r.generation_gpus == r.gpus and r.bound.startswith("sequential")
            assert r.exposed_generation_s == pytest.approx(r.generation_s)
        else:
            assert r.generation_gpus == r.gpus // 2
            waits = r.exposed_generation_s > 0.05 * r.step_s
            assert r.bound.startswith("generation-bound" if waits else "training-bound")


def test_its_engines_span_two_trays_and_one_tray_would_be_faster():
    """TP 8 (NeMo-RL's 235B layout on GB200) crosses two 4-GPU trays: NCCL and the fitted cross-host cost per
    iteration; TP 4 fits the FP8 weights on one tray (the README's 246 s against 358 s on 512 GPUs)."""
    name = SCEN / "qwen3-235b-a22b-gb200x512-sync-ar.yaml"
    tp8, tp4 = load_scenario(name), load_scenario(name, ["engine.tensor_parallel_size=4"])
    assert RolloutSimulator(tp8).cross_host and not RolloutSimulator(tp4).cross_host
    step = {tp: run_pipeline(s).summary()["total_step_time"] for tp, s in ((8, tp8), (4, tp4))}
    assert step[4] < 0.8 * step[8]
