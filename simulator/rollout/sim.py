"""The event loop: N engine processes and the router in a SimPy environment, `exact` or `fast`.

    sim = RolloutSimulator(scenario)              # builds the cost models and the KV-cache plan once
    result = sim.run(mode="fast", seed=0)          # samples the batch from the scenario
    result = sim.run(requests=batch.concat(carried), acceptance=chain_for_this_rl_step)

`simulate_rollout(scenario, ...)` does both. Each engine is a SimPy process that asks its Engine for the
next piece of work (one iteration in exact mode; an iteration or a stretch of iterations in fast mode),
waits that long, and commits it. Random numbers: one numpy Generator per engine and one for the batch,
all spawned from the seed, so the result does not depend on the order events interleave.
"""
from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd
import simpy

from simulator.costmodel.memory import GIB, MemoryPlan, activation_bytes, memory_plan
from simulator.costmodel.parallelism import Parallelism, check_parallelism
from simulator.costmodel.step import StepCostModel
from simulator.errors import RlsimError
from simulator.hardware import load_hardware
from simulator.model_config import load_model
from simulator.paths import hardware_dir
from simulator.rollout.costs import IterationCost
from simulator.rollout.engine import Engine, EngineLimits, IntervalLog, Requests
from simulator.rollout.progress import Acceptance
from simulator.rollout.results import RolloutResult
from simulator.rollout.router import Router
from simulator.rollout.workload import RequestBatch, sample_requests
from simulator.scenario import Scenario, resolve_path
from simulator.specdec.acceptance import AcceptanceProfile, ChainAcceptance, Source, profile_from_mean_length
from simulator.specdec.costs import DraftConfig, SpecDecodeCost

MODES = ("fast", "exact")
# the most engines one rollout simulates side by side, each with its own state and random stream (`rlsim run --set
# cluster.gpus=100000 --steps 1` on the default scenario: 7 s and 0.5 GB in all); the async pipeline samples a few
# engines of its pool instead
MAX_ENGINES = 100_000
FAST_RTOL = 0.2  # fast mode: relative change of running count / mean context between cost-model knots

_FIELD = {"tp": "engine.tensor_parallel_size", "ep": "engine.expert_parallel_size",
          "pp": "engine.pipeline_parallel_size", "dtype": "engine.dtype", "hardware": "cluster.hardware",
          "attention_backend": "engine.attention_backend", "moe_kernel": "engine.moe_kernel",
          "model": "model"}


def _remap(err: RlsimError) -> RlsimError:
    return RlsimError(err.message, _FIELD.get(err.field, err.field))


def _hardware(name: str):
    """A hardware profile; a catalogue file named like the profile is read directly (skips indexing every
    profile, which parses all of them)."""
    p = hardware_dir() / f"{str(name).lower()}.yaml"
    if p.is_file() and "/" not in str(name):
        return load_hardware(str(p), "cluster.hardware")
    return load_hardware(name, "cluster.hardware")


def vllm_batch_defaults(hw) -> tuple[int, int]:
    """(max_num_seqs, max_num_batched_tokens) vLLM picks for the offline LLM class: 1024 / 16384 on GPUs of
    70 GiB or more other than A100, else 256 / 8192 (vllm/engine/arg_utils.py, get_batch_defaults)."""
    big = hw.hbm_bytes >= 70 * GIB and "a100" not in hw.name.lower()
    return (1024, 16384) if big else (256, 8192)


def _profile(scenario: Scenario) -> AcceptanceProfile | None:
    """The acceptance profile file the scenario names (speculative.profile), if it speculates with one."""
    sp = scenario.speculative
    if sp.method == "none" or not sp.profile:
        return None
    path = resolve_path(sp.profile, scenario.base_dir, "speculative.profile")
    if not path.exists():
        raise RlsimError(f"no such file {sp.profile!r}", "speculative.profile")
    prof = AcceptanceProfile.load(path)
    # a tree drafts with an EAGLE-3 head and reads its chain acceptance; otherwise the profile must be the method's
    fits = {prof.method, "unknown"} | ({"tree"} if prof.method == "eagle3" else set())
    if sp.method not in fits:
        raise RlsimError(f"{sp.profile} was fitted for {prof.method}, not {sp.method}: give a profile fitted for "
                         f"{sp.method}, or speculative.profile=null with speculative.acceptance_length",
                         "speculative.profile")
    return prof


def online_draft_training_s(scenario: Scenario) -> float:
    """Seconds of online draft training per RL step that the scenario's acceptance profile states
    (online_training.cost_s_per_step when enabled), 0 without one."""
    prof = _profile(scenario)
    return prof.online_training.cost_s_per_step if prof is not None and prof.online_training.enabled else 0.0


def build_acceptance(scenario: Scenario, rl_step: int = 0) -> ChainAcceptance | None:
    """The scenario's acceptance model: speculative.profile, or speculative.acceptance_length at num_tokens."""
    sp = scenario.speculative
    if sp.method == "none":
        return None
    prof = _profile(scenario)
    if prof is not None:
        return prof.model(rl_step=rl_step)
    if sp.acceptance_length is not None:
        k = sp.tree_depth if sp.method == "tree" else sp.num_tokens
        if k < 1:
            raise RlsimError("needs speculative.num_tokens >= 1 to convert", "speculative.acceptance_length")
        prof = profile_from_mean_length(sp.acceptance_length, k, method=sp.method,
                                        source=Source(format="scenario", detail="speculative.acceptance_length"))
        return prof.model(rl_step=rl_step)
    raise RlsimError(f"is required for method {sp.method} (or speculative.acceptance_length)",
                     "speculative.profile")


class RolloutSimulator:
    """A scenario's engines, ready to simulate rollout batches (build once, run per RL step)."""

    def __init__(self, scenario: Scenario, fast_rtol: float = FAST_RTOL):
        self.scenario = sc = scenario
        e, sp = sc.engine, sc.speculative
        try:
            hw = _hardware(sc.cluster.hardware)
            model = load_model(sc.model, "model")
            par = Parallelism(e.tensor_parallel_size, e.expert_parallel_size, e.pipeline_parallel_size)
            check_parallelism(model, par)
            kv_dtype = "bf16" if e.kv_cache_dtype == "auto" else e.kv_cache_dtype  # vLLM: auto = bf16 here
            target = StepCostModel(hw, model, tp=par.tp, ep=par.ep, pp=par.pp, dtype=e.dtype, kv_dtype=kv_dtype,
                                   attention_backend=e.attention_backend,
                                   moe_kernel=e.moe_kernel if model.is_moe else None,
                                   verify_attention_backend=e.verify_attention_backend, all_reduce=e.all_reduce)
        except RlsimError as err:
            raise _remap(err) from None
        self.hw, self.model, self.par = hw, model, par
        self.num_engines = sc.num_engines
        draft = DraftConfig(method=sp.method, draft_model=sp.draft_model, draft_tp=sp.draft_tensor_parallel_size,
                            tree_tokens=sp.tree_tokens, tree_depth=sp.tree_depth, tree_width=sp.tree_width,
                            ngram_s_per_seq=sp.ngram_s_per_seq, ngram_match_rate=sp.ngram_match_rate,
                            iteration_overhead_s=e.spec_iteration_overhead_s,
                            draft_step_overhead_s=e.draft_step_overhead_s)
        spec = SpecDecodeCost(target, draft)
        self.cross_host = par.gpus > hw.host_gpus()
        overhead = e.step_overhead_s + (e.cross_host_step_overhead_s if self.cross_host else 0.0)
        self.cost = IterationCost(spec, e.cuda_graph_max_batch, overhead, e.cpu_s_per_seq, e.async_scheduling)
        d_seqs, d_tokens = vllm_batch_defaults(hw)
        self.max_num_seqs = e.max_num_seqs or d_seqs
        self.max_num_batched_tokens = e.max_num_batched_tokens or d_tokens
        if self.max_num_batched_tokens < self.max_num_seqs:  # vLLM's SchedulerConfig refuses it too
            raise RlsimError(f"{self.max_num_batched_tokens} must be >= max_num_seqs ({self.max_num_seqs}), as vLLM "
                             "requires", "engine.max_num_batched_tokens")
        # k: fixed, or the candidates of dynamic speculation
        self.k = sp.num_tokens if sp.method != "none" else 0
        if sp.method == "tree":
            self.k = max(sp.tree_depth, 1)
        self.candidate_ks = sorted(set(sp.candidate_ks)) if (sp.dynamic_k and sp.method != "none") else None
        ks = self.candidate_ks or [self.k]
        vt_max = max(self.cost.verify_tokens(k) for k in ks)
        self.notes: list[str] = []
        cap = min(self.max_num_seqs, self.max_num_batched_tokens // vt_max)
        if cap < 1:
            raise RlsimError(f"{self.max_num_batched_tokens} tokens per step cannot hold one sequence's "
                             f"{vt_max} verify tokens", "engine.max_num_batched_tokens")
        if cap < self.max_num_seqs:
            self.notes.append(f"running sequences capped at {cap} = max_num_batched_tokens / {vt_max} verify "
                              "tokens, so that every running sequence decodes each iteration")
        # KV cache: what is left after weights (target + draft) and the activation workspace
        # vLLM's memory profile runs max_num_batched_tokens through the model but computes logits only for
        # the sampled positions (one per sequence, 1 + k with speculation), not for every token
        base = memory_plan(hw, model, par, e.dtype, kv_dtype, max_tokens=self.max_num_batched_tokens,
                           utilization=e.gpu_memory_utilization, extra_weight_bytes=spec.draft_weight_bytes())
        logit_rows = min(self.max_num_batched_tokens, cap * vt_max)
        plan = MemoryPlan(capacity=base.capacity, weights=base.weights, kv_per_token=base.kv_per_token,
                          activations=activation_bytes(model, par, self.max_num_batched_tokens, logit_rows))
        self.memory = plan
        kv_tok = plan.kv_per_token + spec.draft_kv_bytes_per_token()
        if plan.weights > plan.capacity or plan.kv_capacity_bytes <= 0:
            # what would fit at vLLM's highest sensible utilization is the utilization's fault, not the layout's
            low_util = plan.weights + plan.activations < 0.95 * hw.hbm_bytes
            raise RlsimError(
                f"{model.name} does not fit on {par.gpus} x {hw.name}: weights {plan.weights / GIB:.1f} GiB + "
                f"workspace {plan.activations / GIB:.1f} GiB per GPU, {plan.capacity / GIB:.1f} GiB usable at "
                f"gpu_memory_utilization {e.gpu_memory_utilization} (raise "
                + ("gpu_memory_utilization)" if low_util else "tensor/expert parallelism)"),
                "engine.gpu_memory_utilization" if low_util else "engine.tensor_parallel_size")
        self.num_blocks = int(plan.kv_capacity_bytes // (kv_tok * e.block_size))
        if self.num_blocks < 1:
            raise RlsimError("no room for a single KV-cache block", "engine.gpu_memory_utilization")
        # expert parallelism runs attention data-parallel: each of the ep ranks schedules its own sequences with
        # vLLM's per-rank limits and holds their KV cache; one scheduler over the pooled ranks stands in for them
        ep = par.ep
        self.limits = EngineLimits(max_num_seqs=cap * ep, max_num_batched_tokens=self.max_num_batched_tokens * ep,
                                   chunked_prefill=e.enable_chunked_prefill, block_size=e.block_size,
                                   num_blocks=self.num_blocks * ep)
        self.vt_max = vt_max
        self.fast_rtol = fast_rtol
        self._acceptance = {}

    # ------------------------------------------------------------------ inputs
    def acceptance(self, rl_step: int = 0) -> ChainAcceptance | None:
        if rl_step not in self._acceptance:
            self._acceptance[rl_step] = build_acceptance(self.scenario, rl_step)
        return self._acceptance[rl_step]

    def sample_requests(self, seed: int | None = None) -> RequestBatch:
        """The scenario's batch (P x G sequences) for a seed (default: scenario.seed)."""
        ss = np.random.SeedSequence(self.scenario.seed if seed is None else seed)
        return sample_requests(self.scenario.rollout, np.random.default_rng(ss.spawn(1)[0]),
                               self.scenario.base_dir)

    def check_requests(self, batch: RequestBatch) -> None:
        """Every sequence must fit an engine alone (KV blocks; the token budget without chunked prefill)."""
        if not batch.size:
            raise RlsimError("no sequences to roll out", "rollout.prompts")
        la = self.vt_max - 1
        # vLLM refuses a max_model_len (prompt + max_tokens) its KV cache cannot hold
        longest = max(int((batch.prompt_tokens + batch.response_tokens).max()),
                      int(batch.prompt_tokens.max()) + self.scenario.rollout.max_response_tokens)
        need = math.ceil((longest - 1 + self.vt_max + la) / self.limits.block_size)
        if need > self.num_blocks:
            # the prompt alone (and its first token) cannot fit: the prompt length is what to lower
            prompt = int(batch.prompt_tokens.max())
            alone = math.ceil((prompt + self.vt_max + la) / self.limits.block_size) > self.num_blocks
            raise RlsimError(f"a sequence of {longest} tokens ({prompt} of prompt) needs {need} KV-cache blocks but "
                             f"an engine holds {self.num_blocks} ({self.num_blocks * self.limits.block_size} tokens); "
                             "lower it or raise the engine's parallelism",
                             "rollout.prompt_tokens" if alone else "rollout.max_response_tokens")
        if not self.limits.chunked_prefill and longest - 1 > self.max_num_batched_tokens:
            raise RlsimError(f"without chunked prefill a sequence of {longest} tokens needs "
                             f"max_num_batched_tokens >= {longest - 1}", "engine.max_num_batched_tokens")

    def engine_acceptance(self, chain: ChainAcceptance | None) -> Acceptance:
        """The engines' view of an acceptance model under this scenario's draft method."""
        sp = self.scenario.speculative
        return Acceptance(chain, sp.method, sp.tree_depth, sp.ngram_match_rate)

    # ------------------------------------------------------------------ run
    def build_engines(self, batch: RequestBatch, *, mode: str, seed: int, acceptance: ChainAcceptance | None
                      ) -> tuple[Requests, list[Engine], IntervalLog]:
        """The per-sequence state of `batch` and this scenario's engines over it, empty (nothing routed yet),
        with one random stream per engine spawned from `seed`."""
        if mode not in MODES:
            raise RlsimError(f"unknown mode {mode!r} ({', '.join(MODES)})", "--mode")
        self.check_requests(batch)
        if self.num_engines > MAX_ENGINES:
            raise RlsimError(f"{self.num_engines:,} data-parallel engines is more than rlsim simulates side by side "
                             f"(at most {MAX_ENGINES:,})", "cluster.gpus")
        sp = self.scenario.speculative
        if sp.method != "none" and acceptance is None:
            raise RlsimError("an acceptance model is needed", "speculative.profile")
        acc = self.engine_acceptance(acceptance)
        partial = self.scenario.rollout.partial
        reqs = Requests(batch, partial.max_tokens_per_sequence if partial else None)
        log = IntervalLog()
        rngs = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(self.num_engines + 1)[1:]]
        k_cache: dict = {}
        engines = [Engine(i, self.limits, self.cost, reqs, acc, rngs[i], fast=mode == "fast", k=self.k,
                          candidate_ks=self.candidate_ks, log=log, rtol=self.fast_rtol, k_cache=k_cache)
                   for i in range(self.num_engines)]
        return reqs, engines, log

    def run(self, requests: RequestBatch | None = None, *, mode: str = "fast", seed: int | None = None,
            acceptance: ChainAcceptance | None = None, rl_step: int = 0) -> RolloutResult:
        """Simulate one rollout step. requests: the batch (default: sampled from the scenario with `seed`),
        carried partial sequences included; acceptance: this step's acceptance model (default: the
        scenario's at `rl_step`)."""
        wall0 = time.perf_counter()
        sc = self.scenario
        seed = sc.seed if seed is None else int(seed)
        batch = requests if requests is not None else self.sample_requests(seed)
        reqs, engines, log = self.build_engines(batch, mode=mode, seed=seed,
                                                acceptance=acceptance if acceptance is not None
                                                else self.acceptance(rl_step))
        router = Router(sc.engine.routing, engines, batch.prompt_tokens, self.limits.max_num_seqs)
        env = simpy.Environment()

        def engine_process(eng: Engine):
            while True:
                router.feed(eng)
                if not eng.has_work():
                    return
                dt = eng.prepare(env.now, router.pending())
                yield env.timeout(dt)
                eng.commit(env.now)

        for eng in engines:
            env.process(engine_process(eng))
        env.run()
        return self._result(batch, reqs, engines, log, mode, seed, time.perf_counter() - wall0)

    # ------------------------------------------------------------------ result
    def _result(self, batch, reqs: Requests, engines, log: IntervalLog, mode, seed, wall) -> RolloutResult:
        sc = self.scenario
        intervals = pd.DataFrame(log.columns())
        if not intervals.empty:
            intervals = intervals.sort_values(["start_s", "engine"], kind="stable").reset_index(drop=True)
        end = np.array([e.end_s for e in engines])
        busy = np.array([e.busy_s for e in engines])
        finish = reqs.finish_s.copy()
        g_end = reqs.g.copy()
        steps = reqs.steps.astype(float)
        dec_tokens = reqs.dec_tokens.astype(float)
        rollout_s = float(end.max()) if end.size else 0.0
        partial = sc.rollout.partial
        budget = partial.token_budget if partial else None
        notes = list(self.notes)
        if budget is not None:
            cut = _budget_cut(reqs, budget, intervals, end)
            if cut is not None:
                t_stop, g_cut, rollout_s, end = cut
                busy = np.minimum(busy, end)  # engines run without idling from t = 0 until they stop
                stopped = ~(finish <= t_stop)
                frac = np.where(g_end > reqs.g_in, (g_cut - reqs.g_in) / np.maximum(g_end - reqs.g_in, 1), 1.0)
                steps = np.where(stopped, steps * frac, steps)
                dec_tokens = np.where(stopped, dec_tokens * frac, dec_tokens)
                finish = np.where(stopped, np.nan, finish)
                g_end = np.where(stopped, g_cut, g_end)
                if not intervals.empty:
                    intervals = intervals[intervals["start_s"] < t_stop].reset_index(drop=True)
                    stop_e = end[intervals["engine"].to_numpy()]
                    intervals["end_s"] = np.minimum(intervals["end_s"].to_numpy(), stop_e)
                notes.append(f"partial rollout: token budget {budget} reached at {t_stop:.3f} s")
        generated = g_end - reqs.g_in
        completed = (g_end >= reqs.R) & ~np.isnan(finish)
        carried_mask = ~completed
        carried = batch.subset(carried_mask)
        carried.generated = np.minimum(g_end[carried_mask], reqs.R[carried_mask] - 1)
        total_steps = float(steps.sum())
        mean_acc = float(dec_tokens.sum() / total_steps) if total_steps > 0 else 1.0
        # the tail: from the moment 90% of the batch had finished (none if the step stopped before)
        fin = np.sort(np.where(np.isnan(finish), np.inf, finish))
        t90 = fin[max(int(math.ceil(0.9 * fin.size)) - 1, 0)] if fin.size else np.inf
        tail = float(rollout_s - t90) if np.isfinite(t90) else 0.0
        status = np.where(completed, "completed", np.where(np.isnan(finish), "stopped", "budget"))
        requests = pd.DataFrame({
            "request": np.arange(reqs.n), "prompt_id": batch.prompt_id, "sample": batch.sample,
            "engine": reqs.engine, "start_s": reqs.start_s, "first_token_s": reqs.first_token_s,
            "finish_s": finish, "prompt_tokens": reqs.P, "response_tokens": reqs.R,
            "generated_before": reqs.g_in, "generated_tokens": generated,
            "decode_steps": np.rint(steps).astype(np.int64),
            "accepted_tokens": np.rint(dec_tokens - steps).astype(np.int64),
            "preemptions": reqs.preemptions, "prefill_tokens": reqs.prefill_tokens,
            "truncated": batch.truncated, "finished": completed, "status": status})
        trunc = batch.stats.get("truncated_fraction", float(batch.truncated.mean()) if batch.size else 0.0)
        return RolloutResult(
            mode=mode, seed=seed, rollout_s=rollout_s, generated_tokens=int(generated.sum()),
            num_sequences=reqs.n, completed_sequences=int(completed.sum()), mean_acceptance_length=mean_acc,
            engines=self.num_engines, gpus_per_engine=self.par.gpus, engine_busy_s=busy, engine_end_s=end,
            iterations=int(sum(e.iterations for e in engines)), events=int(sum(e.events for e in engines)),
            preemptions=int(sum(e.preemptions for e in engines)), prefill_tokens=int(reqs.prefill_tokens.sum()),
            kv_blocks_per_engine=self.limits.num_blocks, block_size=self.limits.block_size,
            max_num_seqs=self.limits.max_num_seqs, truncated_fraction=float(trunc), tail_s=tail,
            requests=requests, intervals=intervals, carried=carried, wall_s=wall, notes=notes, name=sc.name)


def _generated_at(reqs: Requests, runs, t: float) -> np.ndarray:
    """Tokens each sequence has generated by time t (linear within each recorded decode run)."""
    ids, ta, tb, dg = runs
    span = tb - ta
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(span > 0, np.clip((t - ta) / span, 0.0, 1.0), (t >= ta).astype(float))
    return reqs.g_in + np.floor(np.bincount(ids, weights=frac * dg, minlength=reqs.n) + 1e-9).astype(np.int64)


def _budget_cut(reqs: Requests, budget: int, intervals: pd.DataFrame, end: np.ndarray):
    """Where a global token budget stops the step: (stop time, tokens per sequence then, rollout time,
    per-engine stop times), or None when the batch ends within the budget. Engines finish the iteration
    in flight at the stop time."""
    if not reqs.runs:
        return None
    runs = tuple(np.concatenate([r[i] for r in reqs.runs]) for i in range(4))
    total = float((runs[3]).sum())
    if total <= budget:
        return None
    lo, hi = 0.0, float(end.max())
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if float((_generated_at(reqs, runs, mid) - reqs.g_in).sum()) >= budget:
            hi = mid
        else:
            lo = mid
    t_stop = hi
    g_cut = _generated_at(reqs, runs, t_stop)
    stop = np.minimum(end, t_stop)
    if not intervals.empty:
        iv = intervals[(intervals["start_s"] <= t_stop) & (intervals["end_s"] > t_stop)]
        for e, s0, st, e1 in zip(iv["engine"], iv["start_s"], iv["step_s"], iv["end_s"]):
            n_it = math.ceil((t_stop - s0) / st - 1e-9) if st > 0 else 0
            stop[int(e)] = min(float(e1), s0 + n_it * st)
    return t_stop, g_cut, float(stop.max()), stop


def simulate_rollout(scenario: Scenario, *, mode: str = "fast", seed: int | None = None,
                     requests: RequestBatch | None = None, acceptance: ChainAcceptance | None = None,
                     rl_step: int = 0) -> RolloutResult:
    """Build the scenario's engines and simulate one rollout step (see RolloutSimulator.run)."""
    return RolloutSimulator(scenario).run(requests, mode=mode, seed=seed, acceptance=acceptance, rl_step=rl_step)
