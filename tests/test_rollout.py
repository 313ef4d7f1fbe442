"""The rollout engine: fast vs exact agreement, determinism, the tail, preemption, CUDA graphs, routing,
partial rollouts, speculation."""
from __future__ import annotations

import numpy as np
import pytest

from simulator.errors import RlsimError
from simulator.rollout import RolloutSimulator, simulate_rollout
from simulator.rollout.workload import RequestBatch
from simulator.scenario import scenario_from_dict
from simulator.specdec.acceptance import ChainAcceptance

# small enough that an exact run takes well under a second
SMALL = ["rollout.prompts=8", "rollout.samples_per_prompt=8", "cluster.gpus=1", "rollout.max_response_tokens=2048",
         "engine.step_overhead_s=0.0005"]
EAGLE = ["speculative.method=eagle3", "speculative.acceptance_length=2.8"]


def _sim(*sets, base=SMALL) -> RolloutSimulator:
    return RolloutSimulator(scenario_from_dict({}, [*base, *sets]))


def _rel(a, b):
    return abs(a / b - 1.0)


# ----------------------------------------------------------------------------------------- fast vs exact
# Without speculation the lengths fix every iteration, so fast and exact differ only by fast mode's
# integration of step times: one seed each.
DETERMINISTIC = {
    "lognormal-64": [],
    "lognormal-256-on-2-engines": ["rollout.prompts=32", "cluster.gpus=2", "rollout.response_tokens.sigma=1.3"],
    "empirical-splitwise": ["rollout.response_tokens.kind=empirical",
                            "rollout.response_tokens.file=calibration/vidur/splitwise_code.csv",
                            "rollout.response_tokens.column=num_decode_tokens", "rollout.response_tokens.scale=20",
                            "rollout.prompt_tokens.kind=empirical",
                            "rollout.prompt_tokens.file=calibration/vidur/splitwise_code.csv",
                            "rollout.prompt_tokens.column=num_prefill_tokens"],
    "capped-mixture": ["rollout.cap_fraction=0.2", "rollout.response_tokens.median=300"],
    "preemption": ["rollout.prompts=16", "engine.gpu_memory_utilization=0.17", "rollout.max_response_tokens=3072"],
    "max-seqs-least-loaded": ["rollout.prompts=16", "cluster.gpus=2", "engine.max_num_seqs=24",
                              "engine.routing=least_loaded"],
    "eager-above-16-tokens": ["engine.cuda_graph_max_batch=16"],
    "moe-30b-a3b-ep2": ["model=qwen3-30b-a3b", "cluster.gpus=2", "engine.expert_parallel_size=2"],
}


@pytest.mark.parametrize("name", list(DETERMINISTIC))
def test_fast_agrees_with_exact(name):
    sim = _sim(*DETERMINISTIC[name])
    e = sim.run(mode="exact", seed=3)
    f = sim.run(mode="fast", seed=3)
    assert f.generated_tokens == e.generated_tokens and f.num_sequences == e.num_sequences
    assert _rel(f.rollout_s, e.rollout_s) < 0.01, (f.rollout_s, e.rollout_s)
    assert _rel(f.tokens_per_s, e.tokens_per_s) < 0.01
    assert f.iterations == e.iterations  # the same schedule, iteration for iteration
    assert f.preemptions == e.preemptions
    assert f.events < e.events / 5  # and fundamentally fewer events
    if name == "preemption":
        assert e.preemptions > 0


# With speculation, exact draws accepted tokens per iteration and fast draws whole decode runs: the two are
# the same random process, so they agree in distribution. Rollout time is a maximum over sequences (sd of one
# run's fast/exact ratio about 0.9% here), so the means over 8 seeds are compared.
STOCHASTIC = {
    "eagle3-k3": EAGLE,
    "eagle3-profile-k5": ["speculative.method=eagle3", "speculative.num_tokens=5",
                          "speculative.profile=workloads/acceptance/llama3.1-8b-eagle3-gsm8k.yaml"],
    "eagle3-preemption": [*EAGLE, "engine.gpu_memory_utilization=0.165", "rollout.prompts=12"],
    "eagle3-dynamic-k": ["speculative.method=eagle3", "speculative.dynamic_k=true", "rollout.prompts=6",
                         "speculative.candidate_ks=[1, 2, 4, 6]",
                         "speculative.profile=workloads/acceptance/llama3.1-8b-eagle3-gsm8k.yaml"],
    "ngram-partial-match": ["speculative.method=ngram", "speculative.num_tokens=4",
                            "speculative.ngram_match_rate=0.7",
                            "speculative.profile=workloads/acceptance/llama3.1-8b-ngram-cnn.yaml"],
}


@pytest.mark.parametrize("name", list(STOCHASTIC))
def test_fast_agrees_with_exact_with_speculation(name):
    sim = _sim(*STOCHASTIC[name])
    seeds = range(8)
    ex = [sim.run(mode="exact", seed=s) for s in seeds]
    fa = [sim.run(mode="fast", seed=s) for s in seeds]
    for key in ("rollout_s", "tokens_per_s", "mean_acceptance_length"):
        me = np.mean([getattr(r, key) for r in ex])
        mf = np.mean([getattr(r, key) for r in fa])
        assert _rel(mf, me) < 0.01, (key, mf, me)
    assert all(f.generated_tokens == e.generated_tokens for e, f in zip(ex, fa))
    assert np.mean([r.mean_acceptance_length for r in ex]) > 1.2
    if name == "eagle3-preemption":
        assert min(r.preemptions for r in ex) > 0 and min(r.preemptions for r in fa) > 0


def test_dynamic_k_changes_k_with_the_batch():
    sim = _sim(*STOCHASTIC["eagle3-dynamic-k"])
    for mode in ("exact", "fast"):
        iv = sim.run(mode=mode).intervals
        iv = iv[iv.decode_seqs > 0]
        ks = iv.groupby("k")["running"].mean()
        assert len(ks) >= 2, ks  # a larger k once few sequences are left
        assert ks.index[np.argmax(ks.to_numpy())] < ks.index[np.argmin(ks.to_numpy())]


# ----------------------------------------------------------------------------------------- properties
def test_same_seed_same_result_other_seed_other_result():
    sim = _sim(*EAGLE)
    for mode in ("exact", "fast"):
        a, b, c = sim.run(mode=mode, seed=5), sim.run(mode=mode, seed=5), sim.run(mode=mode, seed=6)
        assert a.rollout_s == b.rollout_s and a.requests.equals(b.requests) and a.intervals.equals(b.intervals)
        assert c.rollout_s != a.rollout_s
    # a fresh simulator (fresh caches) gives the same too
    assert _sim(*EAGLE).run(seed=5).rollout_s == sim.run(seed=5).rollout_s


def test_tokens_are_conserved_and_the_tables_are_consistent():
    r = _sim("rollout.prompts=16", "cluster.gpus=2").run(mode="fast")
    q = r.requests
    assert r.generated_tokens == int((q.response_tokens - q.generated_before).sum()) == int(q.generated_tokens.sum())
    assert (q.status == "completed").all() and r.carried.size == 0
    assert (q.start_s <= q.first_token_s).all() and (q.first_token_s <= q.finish_s).all()
    assert q.finish_s.max() == pytest.approx(r.rollout_s)
    assert set(q.engine) == {0, 1} and (q.decode_steps == q.response_tokens - 1).all()  # no speculation
    iv = r.intervals
    assert iv.iterations.sum() == r.iterations
    assert iv.groupby("engine").apply(lambda d: (d.end_s - d.start_s).sum(), include_groups=False).to_numpy() == \
        pytest.approx(r.engine_busy_s)
    assert iv.generated_tokens.sum() == pytest.approx(r.generated_tokens, rel=1e-3)


def test_the_tail_grows_with_the_spread_of_lengths():
    """Same mean response length; a heavier tail leaves fewer sequences running longer (lower tokens/s)."""
    out = {}
    for sigma in (0.3, 1.5):
        mean = 800.0
        sim = _sim("rollout.prompts=16", "rollout.response_tokens.median=null", f"rollout.response_tokens.sigma={sigma}",
                   f"rollout.response_tokens.mean={mean}", "rollout.max_response_tokens=20000")
        out[sigma] = sim.run(mode="fast")
    narrow, wide = out[0.3], out[1.5]
    assert wide.tail_s / wide.rollout_s > 2 * narrow.tail_s / narrow.rollout_s
    assert wide.tokens_per_s < 0.7 * narrow.tokens_per_s
    # in the tail the engine runs few sequences: the last 10% of the time averages under 10% of the batch
    iv = wide.intervals
    late = iv[iv.start_s > 0.9 * wide.rollout_s]
    assert np.average(late.running, weights=late.end_s - late.start_s) < 0.1 * wide.num_sequences


def test_preemption_when_the_kv_cache_is_small():
    big = _sim("rollout.prompts=16").run(mode="fast")
    small_sim = _sim("rollout.prompts=16", "engine.gpu_memory_utilization=0.17")
    small = small_sim.run(mode="fast")
    assert big.preemptions == 0 and small.preemptions > 0
    assert small_sim.num_blocks * 16 < 100_000
    q = small.requests
    pre = q[q.preemptions > 0]
    assert len(pre) > 0 and (pre.prefill_tokens > pre.prompt_tokens).all()  # recompute re-prefills
    assert (q.status == "completed").all() and small.generated_tokens == big.generated_tokens
    assert small.rollout_s > big.rollout_s


def test_cuda_graph_limit_makes_large_batches_eager():
    graphs = _sim().run(mode="fast")
    eager = _sim("engine.cuda_graph_max_batch=0").run(mode="fast")
    assert graphs.intervals.cuda_graph.any() and not eager.intervals.cuda_graph.any()
    assert eager.rollout_s > graphs.rollout_s  # small decode batches pay the launch floor
    lim = _sim("engine.cuda_graph_max_batch=32").run(mode="exact").intervals
    dec = lim[lim.prefill_tokens == 0]
    assert (dec.cuda_graph == (dec.tokens_per_iteration <= 32)).all()
    assert (~dec.cuda_graph).any() and dec.cuda_graph.any()


def test_least_loaded_routing_balances_a_batch_larger_than_the_engines_hold():
    """256 independent requests, 4 engines of 8 slots: round robin fixes 64 per engine up front; least loaded
    hands the next request to whichever engine has room, which evens out the engines' finish times."""
    sets = ["rollout.prompts=256", "rollout.samples_per_prompt=1", "cluster.gpus=4", "engine.max_num_seqs=8",
            "rollout.response_tokens.sigma=0.6"]
    rr_sim, ll_sim = _sim(*sets), _sim(*sets, "engine.routing=least_loaded")
    rr = [rr_sim.run(mode="fast", seed=s) for s in range(3)]
    ll = [ll_sim.run(mode="fast", seed=s) for s in range(3)]
    assert all(np.bincount(r.requests.engine).tolist() == [64] * 4 for r in rr)  # static split
    assert all(np.bincount(r.requests.engine).tolist() != [64] * 4 for r in ll)  # work goes where there is room
    assert np.mean([r.rollout_s for r in ll]) < 0.97 * np.mean([r.rollout_s for r in rr])
    spread = lambda rs: np.mean([np.ptp(r.engine_end_s) for r in rs])  # noqa: E731
    assert spread(ll) < 0.6 * spread(rr)
    # the router holds what the engines cannot run: no engine ever queues beyond max_num_seqs
    for r in ll:
        assert (r.intervals.running <= 8).all()


def test_blocked_routing_keeps_prompt_groups_whole_and_lengthens_the_synchronous_tail():
    """NeMo-RL's synchronous vLLM generate shards the batch in contiguous blocks (workloads/published/
    nemo_rl_recipes.md sec. 5c): each engine takes whole prompt groups, so with lengths correlated within a group
    the engines' loads differ more than when a group's samples spread over the engines."""
    sets = ["rollout.prompts=16", "rollout.samples_per_prompt=8", "cluster.gpus=4", "rollout.group_correlation=0.8"]
    blocked = [_sim(*sets, "engine.routing=blocked").run(mode="fast", seed=s) for s in range(4)]
    rr = [_sim(*sets).run(mode="fast", seed=s) for s in range(4)]
    for r in blocked:
        req = r.requests
        assert np.bincount(req.engine).tolist() == [32] * 4
        assert (req.groupby("prompt_id").engine.nunique() == 1).all()  # a group never splits
        assert (req.engine.to_numpy() == req.prompt_id.to_numpy() // 4).all()  # in batch order
    for r in rr:
        assert (r.requests.groupby("prompt_id").engine.nunique() == 4).all()
    spread = lambda rs: np.mean([np.ptp(r.engine_end_s) / r.rollout_s for r in rs])  # noqa: E731
    assert spread(blocked) > 1.5 * spread(rr)
    assert np.mean([r.rollout_s for r in blocked]) > np.mean([r.rollout_s for r in rr])
    # with independent lengths the two splits are statistically alike: the difference is the correlation
    ind = [s.replace("0.8", "0.0") for s in sets]
    b0 = np.mean([_sim(*ind, "engine.routing=blocked").run(mode="fast", seed=s).rollout_s for s in range(4)])
    r0 = np.mean([_sim(*ind).run(mode="fast", seed=s).rollout_s for s in range(4)])
    assert abs(b0 / r0 - 1) < 0.1


def test_partial_rollout_token_budget_carries_unfinished_sequences():
    full = _sim("rollout.prompts=16").run(mode="fast")
    budget = full.generated_tokens // 3
    sim = _sim("rollout.prompts=16", f"rollout.partial.token_budget={budget}")
    for mode in ("fast", "exact"):
        r = sim.run(mode=mode)
        assert r.generated_tokens == pytest.approx(budget, rel=0.002)
        assert r.rollout_s < 0.6 * full.rollout_s
        assert 0 < r.carried.size < r.num_sequences and r.completed_sequences == r.num_sequences - r.carried.size
        assert (r.carried.generated > 0).any() and (r.carried.generated < r.carried.response_tokens).all()
    # a next step without a budget finishes the carried sequences: all tokens of the batch, none twice
    nxt = _sim("rollout.prompts=16").run(requests=r.carried, mode="fast")
    total = r.generated_tokens + nxt.generated_tokens
    assert total == full.generated_tokens
    assert nxt.prefill_tokens >= int((r.carried.prompt_tokens + r.carried.generated).sum())  # KV rebuilt


def test_partial_rollout_per_sequence_budget():
    r = _sim("rollout.prompts=16", "rollout.partial.max_tokens_per_sequence=500").run(mode="fast")
    q = r.requests
    assert q.generated_tokens.max() == 500
    assert ((q.response_tokens > 500) == (q.status != "completed")).all()
    assert (r.carried.generated == 500).all()
    assert (q.finished == (q.status == "completed")).all() and q.finished.sum() == r.completed_sequences


def test_per_step_acceptance_override():
    sim = _sim("rollout.prompts=16", *EAGLE)
    lo = sim.run(acceptance=ChainAcceptance.iid(0.3))
    hi = sim.run(acceptance=ChainAcceptance.iid(0.9))
    assert hi.mean_acceptance_length > lo.mean_acceptance_length + 1
    assert hi.rollout_s < lo.rollout_s


def test_speculation_speeds_up_a_small_batch_and_costs_kv():
    plain = _sim("rollout.prompts=4")
    spec = _sim("rollout.prompts=4", *EAGLE)
    a, b = plain.run(), spec.run()
    assert b.mean_acceptance_length == pytest.approx(2.8, rel=0.05)
    assert 1.3 < a.rollout_s / b.rollout_s < 2.8
    assert spec.num_blocks < plain.num_blocks  # draft weights and KV take memory


def test_requests_from_the_caller_with_carried_tokens():
    batch = RequestBatch(prompt_id=[0, 0, 1], sample=[0, 1, 0], prompt_tokens=[100, 100, 50],
                         response_tokens=[300, 200, 400], generated=[100, 0, 399])
    r = simulate_rollout(scenario_from_dict({}, SMALL), requests=batch, mode="exact")
    q = r.requests
    assert list(q.generated_tokens) == [200, 200, 1]
    assert list(q.prefill_tokens) == [200, 100, 449]  # prompt + tokens generated before


def test_expert_parallel_engine_pools_its_ranks_limits_and_kv_cache():
    """Expert parallelism runs attention data-parallel: each of an engine's ep ranks schedules up to max_num_seqs
    of its own sequences and keeps their KV cache, so the engine holds ep times one rank's."""
    sets = ["model=qwen3-30b-a3b", "cluster.gpus=2", "engine.max_num_seqs=64", "engine.max_num_batched_tokens=4096"]
    ep2 = RolloutSimulator(scenario_from_dict({}, [*sets, "engine.expert_parallel_size=2"]))
    tp2 = RolloutSimulator(scenario_from_dict({}, [*sets, "engine.tensor_parallel_size=2"]))
    assert ep2.limits.max_num_seqs == 2 * tp2.limits.max_num_seqs == 128
    assert ep2.limits.max_num_batched_tokens == 2 * 4096
    assert ep2.limits.num_blocks == 2 * ep2.num_blocks
    # each rank holds every KV head of its own sequences: about as many tokens in all as TP 2's shared cache
    assert 0.8 < ep2.limits.num_blocks / tp2.limits.num_blocks < 1.25


def test_a_profile_fitted_for_another_method_is_one_clear_error():
    """Switching speculative.method must not keep another drafter's acceptance (the default scenario's profile is
    EAGLE-3's); a tree reads its EAGLE-3 head's chain acceptance."""
    from pathlib import Path

    from simulator.rollout.sim import build_acceptance
    from simulator.scenario import load_scenario
    default = Path(__file__).parents[1] / "workloads/scenarios/default.yaml"
    for method in ("ngram", "mtp", "draft_model"):
        with pytest.raises(RlsimError, match="fitted for eagle3") as e:
            build_acceptance(load_scenario(default, [f"speculative.method={method}"]))
        assert e.value.field == "speculative.profile"
    assert build_acceptance(load_scenario(default, ["speculative.method=tree", "speculative.tree_depth=3"]))
    alone = load_scenario(default, ["speculative.method=ngram", "speculative.profile=null",
                                    "speculative.acceptance_length=1.8", "speculative.num_tokens=3"])
    assert build_acceptance(alone).tau(3) == pytest.approx(1.8, rel=1e-3)
