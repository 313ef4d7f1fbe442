"""The RL pipeline: modes, timers, placement, bad input, determinism."""
from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import assert_one_line_error, run_cli
from simulator.errors import RlsimError
from simulator.pipeline.run import batch_finish_s, batch_stream, full_load_batch_s, run_pipeline
from simulator.pipeline.sim import TIMERS, StepCosts, simulate
from simulator.rollout import RolloutSimulator
from simulator.rollout.workload import sample_requests
from simulator.scenario import load_scenario, scenario_from_dict

KEYS = ["total_step_time", "generation", "exposed_generation", "policy_and_reference_logprobs", "policy_training",
        "weight_sync", "idle/buffer_starvation", "idle/refit_bubble", "rollout_tokens_per_s", "tokens_per_s_per_gpu"]


def _costs(gen, train, n=6):
    return [StepCosts(generation_s=gen, reward_s=1, logprob_s=train / 3, train_s=2 * train / 3, refit_s=2, data_s=0.5)
            for _ in range(n)]


def test_sync_colocated_is_the_sum_of_its_stages():
    r = simulate(_costs(100, 30), "sync", True)
    assert all(s["total_step_time"] == pytest.approx(0.5 + 2 + 100 + 1 + 10 + 20) for s in r.steps)
    assert all(s["exposed_generation"] == 100 and s["idle/refit_bubble"] == 0 for s in r.steps)


def test_sync_separate_pools_wait_for_each_other():
    r = simulate(_costs(100, 30), "sync", False)
    s = r.steps[-1]
    assert s["idle/buffer_starvation"] == pytest.approx(100)  # training waits for the rollouts
    assert s["idle/refit_bubble"] == pytest.approx(0.5 + 1 + 30)  # generation waits for the new weights


@pytest.mark.parametrize("gen,train", [(100, 30), (30, 100)])
def test_async_overlaps_generation_and_training(gen, train):
    r = simulate(_costs(gen, train, 8), "async", False, max_staleness=1, in_flight=True)
    steady = r.steps[-1]["total_step_time"]
    # the slower of the two sides sets the pace; the faster one is hidden
    assert steady == pytest.approx(max(gen, 0.5 + 1 + train) + 2, rel=0.02)
    if gen > train:
        assert r.steps[-1]["exposed_generation"] > 0
    else:
        assert r.steps[-1]["exposed_generation"] == pytest.approx(0)


def test_staleness_zero_async_is_no_faster_than_sync():
    a = simulate(_costs(100, 30, 6), "async", False, max_staleness=0, in_flight=False)
    s = simulate(_costs(100, 30, 6), "sync", False)
    assert a.steps[-1]["total_step_time"] >= s.steps[-1]["total_step_time"] - 1e-6


def test_run_default_scenario_outputs_every_timer():
    res = run_pipeline(load_scenario(), steps=2)
    out = res.summary()
    for k in KEYS:
        assert k in out and np.isfinite(out[k])
    assert out["total_step_time"] >= out["generation"] > 0
    assert set(TIMERS) <= set(res.steps.columns)
    assert res.trace()["traceEvents"]


def test_speculation_and_async_change_the_step():
    base = run_pipeline(load_scenario(), steps=2).summary()
    spec = run_pipeline(load_scenario(None, ["speculative.method=eagle3"]), steps=2).summary()
    asyn = run_pipeline(load_scenario(None, ["pipeline.mode=async", "pipeline.colocated=false"]), steps=4).summary()
    assert spec["generation"] < base["generation"] and spec["mean_acceptance_length"] > 1.5
    assert spec["policy_training"] == pytest.approx(base["policy_training"], rel=0.05)
    assert asyn["generation_gpus"] == 4 and asyn["training_gpus"] == 4


def test_colocated_runs_pay_the_state_offload_and_every_run_the_reference_swap():
    colo = run_pipeline(load_scenario(), steps=1).steps["training_detail"].iloc[0]
    apart = run_pipeline(load_scenario(None, ["pipeline.mode=async", "pipeline.colocated=false"]),
                         steps=3).steps["training_detail"].iloc[-1]
    assert colo["state_offload"] > 0 and colo["state_onload"] > 0 and colo["reference_swap"] > 0
    assert apart["state_offload"] == 0 and apart["state_onload"] == 0 and apart["reference_swap"] > 0
    off = run_pipeline(load_scenario(None, ["pipeline.offload_optimizer=false"]), steps=1).summary()
    on = run_pipeline(load_scenario(), steps=1).summary()
    assert on["weight_sync"] - off["weight_sync"] == pytest.approx(colo["state_offload"])
    assert on["policy_training"] - off["policy_training"] == pytest.approx(colo["state_onload"])


def test_same_seed_same_result():
    a = run_pipeline(load_scenario(None, ["speculative.method=eagle3"]), steps=2, seed=7).summary()
    b = run_pipeline(load_scenario(None, ["speculative.method=eagle3"]), steps=2, seed=7).summary()
    assert a == b


def test_response_growth_lengthens_later_steps():
    r = run_pipeline(load_scenario(None, ["pipeline.response_growth_per_step=0.3"]), steps=3)
    t = r.steps["mean_response_tokens"].to_numpy()
    assert t[2] > t[0] * 1.3


@pytest.mark.parametrize("sets,field", [
    (["pipeline.mode=async"], "pipeline.colocated"),
    (["pipeline.colocated=false", "pipeline.generation_gpus=9"], "pipeline.generation_gpus"),
    (["pipeline.mode=async", "pipeline.colocated=false", "pipeline.max_staleness=-1"], "pipeline.max_staleness"),
    (["training.tensor_parallel_size=3"], "training.tensor_parallel_size"),
])
def test_impossible_pipelines_name_the_field(sets, field):
    with pytest.raises(RlsimError) as e:
        run_pipeline(load_scenario(None, sets), steps=1)
    assert str(e.value).startswith(field)


def test_model_that_does_not_fit_for_training():
    with pytest.raises(RlsimError) as e:
        run_pipeline(scenario_from_dict({"model": "qwen3-32b", "cluster": {"hardware": "h100", "gpus": 8},
                                         "engine": {"tensor_parallel_size": 2}}), steps=1)
    assert "training" in str(e.value)


def test_run_cli_json_and_trace(tmp_path):
    trace = tmp_path / "t.json"
    p = run_cli("run", "--steps", "2", "--json", "--trace", str(trace))
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    for k in KEYS:
        assert k in out
    ev = json.loads(trace.read_text())["traceEvents"]
    assert any(e.get("ph") == "X" for e in ev)


def test_run_cli_takes_several_overrides_per_set():
    """`--set a=1 b=2` and `--set a=1 --set b=2` are the same run; a scenario path after --set is named."""
    sets = ["pipeline.mode=async", "pipeline.colocated=false", "pipeline.generation_gpus=4"]
    one = run_cli("run", "--steps", "3", "--json", "--set", *sets)
    each = run_cli("run", "--steps", "3", "--json", *[a for k in sets for a in ("--set", k)])
    assert one.returncode == 0 and each.returncode == 0, one.stderr + each.stderr
    a, b = json.loads(one.stdout), json.loads(each.stdout)
    assert a == b and a["mode"] == "async" and a["generation_gpus"] == 4
    assert_one_line_error(run_cli("run", "--set", "pipeline.steps=2", "workloads/scenarios/default.yaml"),
                          "--set", "before --set")


def test_run_cli_bad_input():
    assert_one_line_error(run_cli("run", "--set", "pipeline.mode=async"), "pipeline.colocated")
    assert_one_line_error(run_cli("run", "--set", "pipline.mode=async"), "pipeline.mode")
    assert_one_line_error(run_cli("run", "nope.yaml"), "nope.yaml")
    stray = run_cli("run", "workloads/scenarios/default.yaml", "extra.yaml")
    assert_one_line_error(stray, "unrecognized arguments: extra.yaml")
    assert stray.stderr.startswith("rlsim: error: unrecognized"), stray.stderr


def test_async_pool_time_per_batch_is_the_full_load_rate_of_a_long_stream():
    """The async generation pool's time per batch (run.full_load_batch_s, from a two-batch stream) matches the
    steady rate of a ten-batch stream of the same batches; the spacing of the two batches' last finishes does
    not (the first batch's stragglers finish late, beside the second batch's work)."""
    scn = scenario_from_dict({}, ["rollout.prompts=16", "rollout.samples_per_prompt=16", "cluster.gpus=2",
                                  "engine.max_num_seqs=32", "engine.routing=least_loaded",
                                  "rollout.max_response_tokens=4096", "rollout.response_tokens.sigma=0.9"])
    sim = RolloutSimulator(scn)
    P = scn.rollout.prompts
    est_err, naive_err = [], []
    for seed in (5, 6, 7):
        rng = np.random.default_rng(seed)
        batches = [sample_requests(scn.rollout, rng) for _ in range(10)]
        tokens = [int(b.response_tokens.sum()) for b in batches]
        r10 = batch_finish_s(sim.run(batch_stream(batches, P), mode="fast", seed=0).requests, P, 10)
        steady_rate = sum(tokens[2:8]) / (r10[7] - r10[1])  # tokens/s away from the start and the drain
        two = sim.run(batch_stream(batches[:2], P), mode="fast", seed=0)
        est = full_load_batch_s(two.intervals, tokens[0], 32, 2)
        est_err.append(abs(est * steady_rate / tokens[0] - 1))
        naive_err.append(abs(np.diff(batch_finish_s(two.requests, P, 2))[0] * steady_rate / tokens[0] - 1))
        assert full_load_batch_s(two.intervals, tokens[0], 10_000, 2) is None  # never full: no estimate
    assert max(est_err) < 0.08, est_err
    assert np.mean(naive_err) > 3 * np.mean(est_err), (naive_err, est_err)
