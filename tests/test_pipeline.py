"""The RL pipeline: modes, timers, placement, bad input, determinism."""
from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import ROOT, assert_one_line_error, run_cli
from simulator.errors import RlsimError
from simulator.pipeline.collector import cosimulate_async, sample_engines
from simulator.pipeline.run import batch_stream, run_pipeline
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
    r = simulate(_costs(100, 30), True)
    assert all(s["total_step_time"] == pytest.approx(0.5 + 2 + 100 + 1 + 10 + 20) for s in r.steps)
    # the reward is scored inside NeMo-RL's generation timer (run_multi_turn_rollout calls the environment)
    assert all(s["generation"] == s["exposed_generation"] == 101 and s["idle/refit_bubble"] == 0 for s in r.steps)


def test_sync_separate_pools_wait_for_each_other():
    r = simulate(_costs(100, 30), False)
    s = r.steps[-1]
    assert s["idle/buffer_starvation"] == pytest.approx(100 + 1)  # training waits for the scored rollouts
    assert s["idle/refit_bubble"] == pytest.approx(0.5 + 30)  # generation waits for the new weights


def test_sync_separate_pools_bubble_is_the_training_steps_own():
    """The generation pool's wait while step i trains is step i's refit bubble, the last step's included."""
    r = simulate([StepCosts(generation_s=10, reward_s=0, logprob_s=2, train_s=3, refit_s=1)] * 3, False)
    assert [s["idle/refit_bubble"] for s in r.steps] == pytest.approx([5, 5, 5])
    idle = [(e["start"], e["end"], e["step"]) for e in r.events if e["name"] == "idle: waiting for weights"]
    assert idle == [(10, 15, 0), (26, 31, 1), (42, 47, 2)]  # each inside its own step's 16 s window


def _cosim(train_s, age=1, in_flight=True, n=6, seed=3):
    """Co-simulated async GRPO on a small pool: 8 prompts x 8 samples per step on 2 engines."""
    scn = scenario_from_dict({}, ["rollout.prompts=8", "rollout.samples_per_prompt=8", "cluster.gpus=2",
                                  "engine.max_num_seqs=16", "rollout.max_response_tokens=2048"])
    sim = RolloutSimulator(scn)
    P = scn.rollout.prompts
    rng = np.random.default_rng(seed)
    batches = [sample_requests(scn.rollout, rng) for _ in range(n + age)]
    stream = batch_stream(batches, P)
    _, engines, _ = sim.build_engines(stream, mode="fast", seed=seed, acceptance=None)
    costs = [StepCosts(generation_s=0, reward_s=0.1, logprob_s=train_s / 3, train_s=2 * train_s / 3, refit_s=0.5)
             for _ in range(n)]
    run, col = cosimulate_async(engines, stream, costs, sample_engines(sim.num_engines, P), age, in_flight)
    alone = [sim.run(b, mode="fast", seed=seed).rollout_s for b in batches[:n]]
    return run, col, alone


@pytest.mark.parametrize("age,in_flight", [(1, True), (1, False), (2, True), (0, False)])
def test_collector_gates_batches_by_weight_version_and_caps_groups_in_flight(age, in_flight):
    """NeMo-RL's collector: batch j starts once weights of version j - age exist (after step j - age - 1 and its
    refit), at most prompts x age groups are in flight, none starts during a refit (nor, without in-flight
    weight updates, does the refit start before every group in flight is done), and step j trains only once
    batch j is complete."""
    run, col, _ = _cosim(train_s=3.0, age=age, in_flight=in_flight)
    ends = [s["end"] for s in run.steps]
    for g, b in enumerate(col.batch_of_group):
        if b > age and b - age - 1 < len(ends):
            assert col.admit_s[g] >= ends[b - age - 1] - 1e-9
    limit = 8 * max(age, 1)
    started = ~np.isnan(col.admit_s)
    for t in col.admit_s[started]:
        live = (col.admit_s <= t) & ~(col.done_s <= t)
        assert live.sum() <= limit
    for r0, r1 in col.refits:
        assert not ((col.admit_s > r0 + 1e-9) & (col.admit_s < r1 - 1e-9)).any()
        if not in_flight:
            assert not ((col.admit_s < r0) & (col.done_s > r0 + 1e-9)).any()
    waits = [e for e in run.events if e["name"] == "idle: waiting for rollouts"]
    for e in waits:
        assert e["end"] >= col.ready_s[e["step"]] - 1e-9
    assert all(s["total_step_time"] > 0 for s in run.steps)


def test_async_pace_is_set_by_the_slower_side():
    """Slow training hides generation (the step is the training side plus the refit); fast training leaves the
    trainer waiting for rollouts, and the step is then longer than its training side."""
    slow, _, alone = _cosim(train_s=4 * 60.0)
    s = slow.steps[-1]
    assert s["total_step_time"] == pytest.approx(0.1 + 4 * 60.0 + 0.5, rel=0.01)
    assert s["exposed_generation"] == pytest.approx(0.1, abs=1e-6) and max(alone) < 60  # the last score only
    fast, _, _ = _cosim(train_s=1.0)
    f = fast.steps[-1]
    assert f["exposed_generation"] > 1.0 and f["total_step_time"] > 0.1 + 1.0 + 0.5 + 1.0


def test_stragglers_decode_beside_the_next_batch():
    """With 1-step-off generation the next batch starts while this one's stragglers still run, so a batch takes
    longer than it would alone on the engines (what the co-simulation adds over pricing batches alone)."""
    run, col, alone = _cosim(train_s=1.0)
    lat = np.array([s["generation"] - 0.1 for s in run.steps])  # the generation timer ends with the last score
    assert lat[0] == pytest.approx(alone[0], rel=0.02)  # batch 0 starts on idle engines
    assert np.mean(lat[2:] / np.array(alone[2:])) > 1.05, (lat, alone)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_reward_is_generation_time_and_only_the_last_score_is_left_on_the_asyncllm_path(mode):
    """NeMo-RL scores samples inside the rollout: the vllm.LLM path the whole batch after generation (samples /
    workers scores in a row), the AsyncLLM path each sample as it finishes, leaving one score after the last."""
    sets = ["reward.s_per_sample=0.02", "reward.workers=4", f"pipeline.mode={mode}", "pipeline.colocated=false"]
    scn = load_scenario(None, sets)
    samples = scn.rollout.prompts * scn.rollout.samples_per_prompt
    batch = run_pipeline(load_scenario(None, sets + ["reward.per_sample=false"]), steps=4).steady
    each = run_pipeline(load_scenario(None, sets + ["reward.per_sample=true"]), steps=4).steady
    left = 0.02 * (samples / 4 - 1)
    assert batch["generation"] - each["generation"] == pytest.approx(left, rel=1e-6)
    if mode == "sync":  # async: the trainer's side may hide part of it
        assert batch["total_step_time"] - each["total_step_time"] == pytest.approx(left, rel=1e-6)
    unset = run_pipeline(scn, steps=4).steady  # the default: per sample in async mode, the whole batch in sync
    assert unset["generation"] == pytest.approx((each if mode == "async" else batch)["generation"], rel=1e-9)


def test_staleness_zero_async_is_no_faster_than_sync():
    sets = ["pipeline.colocated=false", "rollout.prompts=16"]
    a = run_pipeline(load_scenario(None, sets + ["pipeline.mode=async", "pipeline.max_staleness=0"]), steps=4)
    s = run_pipeline(load_scenario(None, sets), steps=4)
    assert a.steady["total_step_time"] >= s.steady["total_step_time"] * 0.97


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


def _drifting_profile(tmp_path, decay):
    from simulator.specdec.acceptance import AcceptanceProfile, Drift
    prof = AcceptanceProfile.load("workloads/acceptance/paper-qwen3-8b-eagle3-rl-think.yaml")
    prof = prof.model_copy(update={"drift": Drift(decay_per_step=decay, source="test")})
    path = tmp_path / "drift.yaml"
    prof.save(path)
    return prof, path


@pytest.mark.parametrize("in_flight", [True, False])
def test_async_acceptance_drifts_with_the_weight_version(tmp_path, in_flight):
    """Async batch j is generated with weights of version j - 1 (1-off; in-flight updates may move a sequence to
    version j mid-way), so its mean acceptance lies between the profile's tau at RL steps j - 1 and j, and falls
    step by step as the rates decay."""
    prof, path = _drifting_profile(tmp_path, 0.08)
    sets = ["speculative.method=eagle3", f"speculative.profile={path}", "pipeline.mode=async",
            "pipeline.colocated=false", "pipeline.max_staleness=1", "rollout.prompts=16",
            f"pipeline.in_flight_weight_updates={str(in_flight).lower()}"]
    r = run_pipeline(load_scenario(None, sets), steps=5)
    acc = r.steps["mean_acceptance_length"].to_numpy()
    tau = [prof.model(rl_step=v).tau(3) for v in range(5)]
    assert tau[4] < tau[0] - 0.3  # the drift is large enough to see
    for j in range(2, 5):
        assert tau[j] - 0.05 <= acc[j] <= tau[j - 1] + 0.05, (j, acc, tau)
    assert acc[4] < acc[2] - 0.1
    assert not any("drift" in n for n in r.notes)


@pytest.mark.parametrize("sets,field", [
    (["pipeline.mode=async"], "pipeline.colocated"),
    (["pipeline.colocated=false", "pipeline.generation_gpus=9"], "pipeline.generation_gpus"),
    (["pipeline.mode=async", "pipeline.colocated=false", "pipeline.max_staleness=-1"], "pipeline.max_staleness"),
    (["training.tensor_parallel_size=3"], "training.tensor_parallel_size"),
    (["pipeline.mode=async", "pipeline.colocated=false", "rollout.partial.token_budget=100000"], "rollout.partial"),
    (["pipeline.mode=async", "pipeline.colocated=false", "pipeline.cosim_engines=0"], "pipeline.cosim_engines"),
    (["training.expert_tensor_parallel_size=2"], "training.expert_tensor_parallel_size"),  # a dense model
    (["training.expert_tensor_parallel_size=0"], "training.expert_tensor_parallel_size"),
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
    assert_one_line_error(run_cli("run", "--seed", "-1"), "--seed", "non-negative integer")
    stray = run_cli("run", "workloads/scenarios/default.yaml", "extra.yaml")
    assert_one_line_error(stray, "unrecognized arguments: extra.yaml")
    assert stray.stderr.startswith("rlsim: error: unrecognized"), stray.stderr


def test_colocated_engines_back_their_weights_up_to_pinned_host_memory_at_sleep_level_1():
    """NeMo-RL's vLLM sleeps at level 1: the weights go to pinned host memory after generation (in its generation
    timer) and come back at the wake-up before the refit (in weight_sync), one copy of the engine's weights each."""
    scn = load_scenario()
    one = run_pipeline(scn, steps=1)
    two = run_pipeline(load_scenario(None, ["pipeline.engine_sleep_level=2"]), steps=1)
    d = one.steps["training_detail"].iloc[0]
    sim = RolloutSimulator(scn)
    hw = sim.hw
    expect = sim.memory.weights / (hw.efficiency.host_copy.pinned_eff * hw.host_bandwidth)
    assert d["engine_sleep"] == pytest.approx(expect) and d["engine_wake"] == pytest.approx(expect) and expect > 0.05
    a, b = one.summary(), two.summary()
    assert a["generation"] - b["generation"] == pytest.approx(expect)
    assert a["weight_sync"] - b["weight_sync"] == pytest.approx(expect)
    assert two.steps["training_detail"].iloc[0]["engine_sleep"] == 0.0
    apart = run_pipeline(load_scenario(None, ["pipeline.mode=async", "pipeline.colocated=false"]),
                         steps=3).steps["training_detail"].iloc[-1]
    assert apart["engine_sleep"] == 0.0 and apart["engine_wake"] == 0.0


def test_a_trajectory_age_past_the_run_is_the_same_run_as_the_run_length():
    """Staleness >= the run's steps lets the initial weights generate every batch already: 10^9 runs (it once built
    a stream of 10^9 batches) and gives the same steps as a staleness equal to the run's length."""
    sets = ["pipeline.mode=async", "pipeline.colocated=false", "pipeline.warmup_steps=1"]
    at_len = run_pipeline(load_scenario(None, [*sets, "pipeline.max_staleness=3"]), steps=3).summary()
    huge = run_pipeline(load_scenario(None, [*sets, "pipeline.max_staleness=1000000000"]), steps=3).summary()
    one = run_pipeline(load_scenario(None, [*sets, "pipeline.max_staleness=1"]), steps=3).summary()
    assert huge == at_len and huge["total_step_time"] != one["total_step_time"]


def _summary(*sets, steps=1):
    return run_pipeline(scenario_from_dict({}, ["rollout.prompts=8", "rollout.samples_per_prompt=8", *sets]),
                        steps=steps).summary()


def test_acceptance_profiles_online_training_cost_is_paid_once(tmp_path):
    """A profile whose online draft training holds its rates states its cost per RL step; the step pays it,
    unless the scenario prices the draft's training itself (training.draft.enabled)."""
    import yaml
    prof = yaml.safe_load((ROOT / "workloads/acceptance/paper-qwen3-8b-eagle3-rl-think.yaml").read_text())
    prof["online_training"] = {"enabled": True, "held_fraction": 0.9, "cost_s_per_step": 100.0}
    path = tmp_path / "held.yaml"
    path.write_text(yaml.safe_dump(prof))
    spec = ["speculative.method=eagle3", "speculative.num_tokens=3"]
    base = _summary(*spec, f"speculative.profile={ROOT / 'workloads/acceptance/paper-qwen3-8b-eagle3-rl-think.yaml'}")
    held = _summary(*spec, f"speculative.profile={path}")
    assert held["policy_training"] == pytest.approx(base["policy_training"] + 100.0)
    both = _summary(*spec, f"speculative.profile={path}", "training.draft.enabled=true")
    assert both["policy_training"] < base["policy_training"] + 100.0


def test_overflowing_inputs_and_shrinking_lengths_are_one_clear_error():
    with pytest.raises(RlsimError, match="not finite") as e:
        _summary("reward.s_per_sample=1e308")
    assert e.value.field == "reward"
    with pytest.raises(RlsimError) as e:
        _summary("pipeline.response_growth_per_step=-1.5")
    assert e.value.field == "pipeline.response_growth_per_step"


def test_run_header_says_how_it_speculates():
    out = run_cli("run", "--steps", "1", "--set", "rollout.prompts=8", "speculative.method=eagle3",
                  "speculative.dynamic_k=true").stdout.splitlines()[0]
    assert "eagle3 dynamic k in {0, 1, 2, 3, 4, 5}" in out
    out = run_cli("run", "--steps", "1", "--set", "rollout.prompts=8", "speculative.method=tree",
                  "speculative.tree_depth=3", "speculative.tree_tokens=8").stdout.splitlines()[0]
    assert "tree of 8 tokens, depth 3" in out


def test_more_warm_up_steps_than_the_run_says_so():
    scn = scenario_from_dict({}, ["rollout.prompts=8", "pipeline.warmup_steps=10"])
    res = run_pipeline(scn, steps=3)
    assert res.summary()["steady_state_steps"] == 1
    assert any("10 warm-up steps asked of a 3-step run" in n for n in res.notes)
