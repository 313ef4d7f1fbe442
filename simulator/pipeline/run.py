"""One RL run: per RL step, simulate the rollout, cost the training-side stages, and run the pipeline.

    result = run_pipeline(load_scenario("workloads/scenarios/qwen3-8b-rl-think-gb200x32.yaml"), steps=5)

Placement: colocated runs put generation and training on every GPU of the cluster; otherwise the generation pool
has `pipeline.generation_gpus` GPUs and training the rest (or `training.gpus`). Per step, response lengths grow by
`pipeline.response_growth_per_step` and the acceptance follows its profile's drift (and online draft training).
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from simulator.errors import RlsimError, check_at_least
from simulator.hardware import DTYPE_BYTES
from simulator.pipeline.config import PipelineConfig, RewardConfig, TrainingConfig
from simulator.pipeline.collector import cosimulate_async, sample_engines
from simulator.pipeline.sim import TIMERS, StepCosts, simulate
from simulator.rollout.sim import RolloutSimulator, build_acceptance, online_draft_training_s
from simulator.rollout.workload import RequestBatch, sample_requests
from simulator.scenario import Scenario
from simulator.training.cost import (TrainingCostModel, TrainSetup, colocated_offload_time, engine_sleep_copy_time,
                                     reference_swap_time, refit_time)

OUTPUT_KEYS = TIMERS + ("rollout_tokens_per_s", "tokens_per_s_per_gpu")


@dataclass
class PipelineResult:
    """Per-step timers (NeMo-RL names, seconds) and throughput, their steady-state means, and the timeline."""

    steps: pd.DataFrame
    steady: dict
    events: list[dict]
    placement: dict
    notes: list[str] = field(default_factory=list)
    wall_s: float = 0.0

    def summary(self) -> dict:
        out = {k: float(self.steady[k]) for k in OUTPUT_KEYS}
        out.update({k: float(self.steady[k]) for k in ("mean_acceptance_length", "generated_tokens",
                                                        "samples") if k in self.steady})
        out["steps"] = int(len(self.steps))
        out["steady_state_steps"] = int(self.steady["n"])
        out.update(self.placement)
        return out

    def trace(self) -> dict:
        """Chrome/Perfetto trace: one process per GPU pool; async batches in flight together on separate threads."""
        pools = sorted({e["pool"] for e in self.events})
        ev = [{"name": "process_name", "ph": "M", "pid": i, "args": {"name": f"{p} GPUs"}} for i, p in enumerate(pools)]
        for e in self.events:
            ev.append({"name": e["name"], "ph": "X", "pid": pools.index(e["pool"]), "tid": e.get("lane", 0),
                       "ts": e["start"] * 1e6, "dur": (e["end"] - e["start"]) * 1e6, "args": {"rl_step": e["step"]}})
        return {"traceEvents": ev, "displayTimeUnit": "ms"}


def placement(scn: Scenario) -> tuple[int, int]:
    """(generation GPUs, training GPUs)."""
    p = scn.pipeline or PipelineConfig()
    t = scn.training or TrainingConfig()
    gpus = scn.cluster.gpus
    if p.mode == "async" and p.colocated:
        raise RlsimError("async RL needs separate generation and training GPUs (set pipeline.colocated: false)",
                         "pipeline.colocated")
    if p.colocated:
        if t.gpus is not None and t.gpus != gpus:
            raise RlsimError(f"colocated training uses every GPU of the cluster ({gpus})", "training.gpus")
        return gpus, gpus
    gen = p.generation_gpus if p.generation_gpus is not None else gpus // 2
    if gen < 1 or gen >= gpus:
        raise RlsimError(f"{gen} generation GPUs out of {gpus}: both pools need at least one GPU",
                         "pipeline.generation_gpus")
    train = t.gpus if t.gpus is not None else gpus - gen
    if gen + train > gpus:
        raise RlsimError(f"{gen} generation + {train} training GPUs exceed the cluster's {gpus}", "training.gpus")
    return gen, train


def _grow(batch: RequestBatch, factor: float, cap: int) -> RequestBatch:
    if factor == 1.0:
        return batch
    raw = np.maximum(1, np.rint(batch.response_tokens * factor)).astype(np.int64)
    resp = np.minimum(raw, cap)
    return RequestBatch(prompt_id=batch.prompt_id, sample=batch.sample, prompt_tokens=batch.prompt_tokens,
                        response_tokens=resp, truncated=batch.truncated | (raw >= cap))


def run_pipeline(scn: Scenario, steps: int | None = None, seed: int | None = None,
                 rollout_mode: str = "fast") -> PipelineResult:
    """Simulate `steps` RL steps of the scenario (default: pipeline.steps)."""
    t0 = time.perf_counter()
    p = scn.pipeline or PipelineConfig()
    tr = scn.training or TrainingConfig()
    rw = scn.reward or RewardConfig()
    n_steps = steps if steps is not None else p.steps
    check_at_least(n_steps, 1, "--steps")
    seed = scn.seed if seed is None else seed
    gen_gpus, train_gpus = placement(scn)
    gen_scn = scn.model_copy(update={"cluster": scn.cluster.model_copy(update={"gpus": gen_gpus})})
    gen_scn = gen_scn.with_base_dir(scn.base_dir)
    sim = RolloutSimulator(gen_scn)
    setup = TrainSetup(gpus=train_gpus, tp=tr.tensor_parallel_size, pp=tr.pipeline_parallel_size,
                       cp=tr.context_parallel_size, ep=tr.expert_parallel_size,
                       etp=tr.expert_tensor_parallel_size, dtype=tr.dtype,
                       micro_batch_tokens=tr.micro_batch_tokens, recompute=tr.activation_recompute,
                       grad_sync_exposed=tr.grad_sync_exposed, framework_efficiency=tr.framework_efficiency,
                       logprob_framework_efficiency=tr.logprob_framework_efficiency,
                       moe_layer_overhead_s=tr.moe_layer_overhead_s)
    try:
        train_model = TrainingCostModel(sim.hw, sim.model, setup)
        logprob_model = TrainingCostModel(sim.hw, sim.model, TrainSetup(**{**setup.__dict__,
                                          "micro_batch_tokens": tr.logprob_micro_batch_tokens}))
    except RlsimError as e:
        raise RlsimError(e.message, "training." + str(e.field).removeprefix("training.")) from None
    draft_params = 0.0
    if sim.cost.spec.draft_first is not None:  # a GPU draft (head or model): none and n-gram have none
        draft_params = float(sim.cost.spec.draft_first.model.total_params())
    train_draft = tr.draft.enabled and draft_params > 0
    # the acceptance profile's own price of the online draft training that holds its rates, unless the scenario
    # prices the draft's training itself
    profile_draft_s = 0.0 if train_draft else online_draft_training_s(scn)
    rng = np.random.default_rng(seed)
    drifts = _drifts(scn)
    static = p.response_growth_per_step == 0 and not drifts and scn.rollout.partial is None
    n_sim = min(n_steps, p.distinct_rollouts) if (static and p.distinct_rollouts) else n_steps
    batches = []
    for i in range(n_sim):
        b = sample_requests(scn.rollout, np.random.default_rng(rng.integers(2**63)), scn.base_dir)
        batches.append(_grow(b, (1.0 + p.response_growth_per_step) ** i, scn.rollout.max_response_tokens))
    if p.mode == "async":
        if scn.rollout.partial is not None:
            raise RlsimError("partial rollouts are simulated in sync mode only", "rollout.partial")
        # generation is co-simulated with the trainer below; here only each step's sequences (all finish)
        per_step = [(math.nan, _finished_requests(b), [], math.nan, 0, 0) for b in batches]
        cosim_seed = int(rng.integers(2**31))
    else:
        # one rollout per RL step (batch-synchronous): its duration is the step's generation latency
        per_step = _sync_rollouts(sim, batches, scn, rollout_mode, rng)
    notes_pre = []
    if static and len(per_step) < n_steps:
        per_step = [per_step[i % len(per_step)] for i in range(n_steps)]
        notes_pre = [f"{n_sim} distinct rollouts reused over {n_steps} steps (nothing changes between steps; "
                     "pipeline.distinct_rollouts)"]
    costs, rows = [], []
    notes: list[str] = list(notes_pre)
    # trainer-state moves per step (the same every step): the reference-weight swap of the reference logprobs, and
    # for colocated runs the offload before generation (in the refit) and the onload after it (before training)
    moves = {"reference_swap": reference_swap_time(train_model.hw, train_model.model, train_model.s)
             if tr.reference_logprobs else 0.0, "state_offload": 0.0, "state_onload": 0.0,
             "engine_sleep": 0.0, "engine_wake": 0.0}
    if p.colocated and p.offload_optimizer:
        off = colocated_offload_time(train_model.hw, train_model.model, train_model.s,
                                     p.offload_optimizer_bytes_per_param).parts
        moves["state_offload"] = off["optimizer_offload"] + off["params_offload"]  # NeMo-RL: prepare_for_generation
        moves["state_onload"] = off["optimizer_onload"] + off["params_onload"]  # NeMo-RL: logprob/training prep
    if p.colocated and p.engine_sleep_level == 1:
        # vLLM's sleep backs the weights up to the host (NeMo-RL's finish_generation, in its generation timer) and
        # the wake-up copies them back (prepare_for_generation, before the refit overwrites them)
        moves["engine_sleep"] = moves["engine_wake"] = engine_sleep_copy_time(sim.hw, sim.memory.weights)
    per_sample_reward = rw.per_sample if rw.per_sample is not None else p.mode == "async"
    for i, (gen_s, req, res_notes, mean_acc, carried_n, preempt) in enumerate(per_step):
        done = req[req["finished"]]
        lens = (done["prompt_tokens"] + done["response_tokens"]).to_numpy(dtype=np.int64)
        generated = int(req["generated_tokens"].sum())
        samples = int(len(lens))
        total_tokens = int(lens.sum())
        # the scoring left once the last sequence finishes: one sample's, or the whole batch's on the workers
        reward_s = rw.fixed_s + rw.s_per_sample * (1 if per_sample_reward else samples / rw.workers)
        opt_steps = max(1, math.ceil(samples / tr.global_batch_size))
        lp = logprob_model.logprob_time(lens, passes=2 if tr.reference_logprobs else 1)
        lp_s = lp.total_s + moves["reference_swap"]
        tt = train_model.train_time(lens, optimizer_steps=opt_steps)
        train_s = tt.total_s
        if train_draft:
            frac = tr.draft.cost_fraction or draft_params / sim.model.active_params()
            train_s *= 1.0 + frac
        train_s += profile_draft_s
        rf = refit_time(sim.hw, sim.model, p.colocated, setup, sim.par.tp, sim.par.ep, gen_gpus,
                        dtype_bytes=DTYPE_BYTES[scn.engine.dtype], overhead_s=p.refit_overhead_s,
                        ipc_efficiency=p.refit_ipc_efficiency, network_efficiency=p.refit_network_efficiency,
                        draft_params=draft_params if train_draft else 0.0,
                        broadcast_bytes_per_s=p.refit_broadcast_bytes_per_s,
                        copy_overhead_s=p.refit_copy_overhead_s)
        refit_s = rf.total_s + moves["state_offload"] + moves["engine_wake"]
        train_s += moves["state_onload"]
        # (async runs' generation is co-simulated later: NaN until then)
        for stage, sec, key in (("generation", gen_s, "engine"), ("reward", reward_s, "reward"),
                                ("logprobs", lp_s, "training"), ("training", train_s, "training"),
                                ("weight refit", refit_s, "pipeline"), ("data", p.data_s, "pipeline.data_s")):
            if math.isinf(sec):
                raise RlsimError(f"step {i}'s {stage} time is not finite: an input under {key} overflows", key)
        costs.append(StepCosts(generation_s=gen_s + moves["engine_sleep"], reward_s=reward_s, logprob_s=lp_s,
                               train_s=train_s, refit_s=refit_s, data_s=p.data_s, generated_tokens=generated,
                               total_tokens=total_tokens, mean_acceptance_length=mean_acc))
        rows.append({"samples": samples, "generated_tokens": generated, "mean_acceptance_length": mean_acc,
                     "mean_response_tokens": float(done["response_tokens"].mean()) if samples else 0.0,
                     "carried_sequences": carried_n, "preemptions": preempt,
                     "training_detail": {**{k: float(v) for k, v in tt.parts.items()}, **moves}})
        notes += [n for n in res_notes if n not in notes]
    if p.mode == "async":
        run, sample, per_batch = _cosimulate(sim, gen_scn, batches, costs, p, rollout_mode, cosim_seed,
                                             drifts)
        for row, (acc, pre) in zip(rows, per_batch):
            row["mean_acceptance_length"], row["preemptions"] = acc, pre
        if sample.engines < sample.pool_engines:
            notes.append(f"async generation co-simulated on {sample.engines} of the {sample.pool_engines} engines "
                         f"with {sample.groups} of each step's {sample.prompts} prompt groups "
                         "(pipeline.cosim_engines)")
    else:
        run = simulate(costs, p.colocated)
    df = pd.DataFrame([{**{k: s[k] for k in TIMERS}, **r} for s, r in zip(run.steps, rows)])
    df.insert(0, "step", range(n_steps))
    all_gpus = scn.cluster.gpus
    df["rollout_tokens_per_s"] = [c.generated_tokens / g if g else 0.0 for c, g in zip(costs, df["generation"])]
    df["tokens_per_s_per_gpu"] = [c.total_tokens / t / all_gpus if t else 0.0
                                  for c, t in zip(costs, df["total_step_time"])]
    warm = p.warmup_steps if p.warmup_steps is not None else (p.max_staleness + 1 if p.mode == "async" else 0)
    if warm > n_steps - 1 and n_steps > 1:
        notes.append(f"{warm} warm-up steps asked of a {n_steps}-step run: only the last step is reported as the "
                     f"steady state (run at least {warm + 1} steps, --steps)")
    warm = min(warm, n_steps - 1)
    steady_rows = df.iloc[warm:]
    steady = {k: float(steady_rows[k].mean()) for k in OUTPUT_KEYS + ("mean_acceptance_length",
                                                                      "generated_tokens", "samples")}
    steady["n"] = len(steady_rows)
    place = {"generation_gpus": gen_gpus, "training_gpus": train_gpus, "cluster_gpus": all_gpus,
             "mode": p.mode, "colocated": p.colocated}
    return PipelineResult(df, steady, run.events, place, notes, time.perf_counter() - t0)


def _sync_rollouts(sim, batches, scn, mode, rng):
    """One rollout per RL step; unfinished partial rollouts carry over to the next step."""
    out, carried = [], None
    for i, batch in enumerate(batches):
        if carried is not None and carried.size:
            batch = carried.concat(batch)
        res = sim.run(batch, mode=mode, seed=int(rng.integers(2**31)), acceptance=build_acceptance(scn, rl_step=i),
                      rl_step=i)
        carried = res.carried if res.carried.size else None
        out.append((res.rollout_s, res.requests, res.notes, res.mean_acceptance_length, res.carried.size,
                    res.preemptions))
    return out


def _drifts(scn) -> bool:
    """Whether the acceptance changes between RL steps (a drifting profile)."""
    if scn.speculative.method == "none":
        return False
    a0, a1 = build_acceptance(scn, rl_step=0), build_acceptance(scn, rl_step=1)
    k = max(scn.speculative.num_tokens, scn.speculative.tree_depth, 1)
    return a0 is not None and a1 is not None and abs(a0.tau(k) - a1.tau(k)) > 1e-12


def _cosimulate(sim, gen_scn, batches, costs, p, mode, seed, drifts):
    """Async GRPO: the sampled generation engines, NeMo-RL's trajectory collector and the trainer in one
    simulation (pipeline/collector.py); batch j of the stream is step j's (steps beyond the run repeat the last
    step's batch, as a longer run would keep generating). A drifting acceptance follows the weight version."""
    # a trajectory age beyond the run's steps lets the initial weights generate every batch already: the same run
    age = min(p.max_staleness, len(costs))
    P = gen_scn.rollout.prompts
    sample = sample_engines(sim.num_engines, P, p.cosim_engines)
    ssim = sim  # the whole pool, or a smaller copy of it
    if sample.engines < sample.pool_engines:
        sub = gen_scn.model_copy(update={
            "cluster": gen_scn.cluster.model_copy(update={"gpus": sample.engines * gen_scn.gpus_per_engine}),
            "engine": gen_scn.engine.model_copy(update={"data_parallel_size": None})})
        ssim = RolloutSimulator(sub.with_base_dir(gen_scn.base_dir))
    n = len(costs)
    pick = [j % len(batches) if j < n else (n - 1) % len(batches) for j in range(n + age)]
    parts = [batches[j].subset(batches[j].prompt_id < sample.groups) for j in pick]
    stream = batch_stream(parts, P)
    reqs, engines, _ = ssim.build_engines(stream, mode=mode, seed=seed, acceptance=build_acceptance(gen_scn, 0))
    acceptance_at = None
    if drifts:  # weight version v decodes with RL step v's acceptance (v = 0: the engines' own)
        by_version = {0: (engines[0].acc, engines[0].k_cache)}

        def acceptance_at(v: int):
            if v not in by_version:
                by_version[v] = (ssim.engine_acceptance(ssim.acceptance(v)), {})
            return by_version[v]
    run, _ = cosimulate_async(engines, stream, costs, sample, age, p.in_flight_weight_updates, acceptance_at)
    batch_of = stream.prompt_id // P
    per_batch = []
    for j in range(n):  # mean acceptance length, and preemptions scaled from the sampled engines to the pool
        m = batch_of == j
        steps = float(reqs.steps[m].sum())
        acc = float(reqs.dec_tokens[m].sum()) / steps if steps > 0 else 1.0
        per_batch.append((acc, int(round(reqs.preemptions[m].sum() * sample.pool_engines / sample.engines))))
    return run, sample, per_batch


def _finished_requests(b: RequestBatch) -> pd.DataFrame:
    """A batch's sequences as a rollout's request table when every one runs to its end."""
    return pd.DataFrame({"prompt_tokens": b.prompt_tokens, "response_tokens": b.response_tokens,
                         "generated_tokens": b.response_tokens - b.generated, "finished": True})


def batch_stream(batches: list[RequestBatch], prompts_per_batch: int) -> RequestBatch:
    """The batches as one request stream in order, batch j's prompt ids offset by j * prompts_per_batch."""
    out = None
    for j, b in enumerate(batches):
        part = dataclasses.replace(b, prompt_id=b.prompt_id + j * prompts_per_batch)
        out = part if out is None else out.concat(part)
    return out


