"""The RL pipeline as SimPy processes on GPU pools: generation and training, sync or async.

Stage durations per RL step come in precomputed (`StepCosts`); this module only decides when each stage runs,
who waits for whom, and records NeMo-RL's timers and a timeline.

- sync, colocated: one pool alternates: data, weight refit (prepare_for_generation), generation, reward,
  logprobs, training.
- sync, not colocated: generation waits for the new weights; training waits for the rollouts; the generation pool
  idles during training (refit bubble) and the training pool during generation (buffer starvation).
- async (not colocated): generation of step j may start once weights of version >= j - max_staleness exist, so it
  overlaps training of earlier steps. Generation is continuous, as NeMo-RL's trajectory collector is: the pool
  starts the next batch after `generation_busy_s` (its throughput-bound time per batch), while the current
  batch's stragglers run on; a batch is ready `generation_s` after it started. After each training step the weights are refit into the generation pool: after the generations in
  flight finish, or in flight (pausing them) with `in_flight_weight_updates`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import simpy

TIMERS = ("total_step_time", "generation", "exposed_generation", "policy_and_reference_logprobs",
          "policy_training", "weight_sync", "idle/buffer_starvation", "idle/refit_bubble")


@dataclass(frozen=True)
class StepCosts:
    """Seconds of each stage of one RL step, and its token counts."""

    generation_s: float  # from the start of the step's rollout until its last sequence finishes
    reward_s: float
    logprob_s: float
    train_s: float
    refit_s: float  # weight transfer into the generation engines (both pools busy)
    data_s: float = 0.0
    generated_tokens: int = 0
    total_tokens: int = 0  # prompt + response tokens of the step's samples
    mean_acceptance_length: float = 1.0
    generation_busy_s: float | None = None  # async: when the generation pool can start the next batch (the
    # batch's stragglers run on beside it); None = generation_s


@dataclass
class PipelineRun:
    steps: list[dict] = field(default_factory=list)  # per RL step: timers and markers
    events: list[dict] = field(default_factory=list)  # timeline: pool, name, start, end, step


def simulate(costs: list[StepCosts], mode: str, colocated: bool, max_staleness: int = 1,
             in_flight: bool = False) -> PipelineRun:
    """Run the RL steps through the pipeline and return per-step timers and the timeline."""
    env = simpy.Environment()
    run = PipelineRun()
    n = len(costs)
    rec = [dict.fromkeys(TIMERS, 0.0) for _ in range(n)]

    def event(pool, name, start, end, step):
        if end > start:
            run.events.append({"pool": pool, "name": name, "start": start, "end": end, "step": step})

    if mode == "sync" and colocated:
        def one_pool():
            for i, c in enumerate(costs):
                t0 = env.now
                yield from _stages(env, rec[i], event, "cluster", i,
                                   [("data", c.data_s, None), ("weight_sync", c.refit_s, "weight_sync"),
                                    ("generation", c.generation_s, "generation")] + _training_stages(c)[1:])
                rec[i]["exposed_generation"] = c.generation_s
                rec[i]["total_step_time"] = env.now - t0
                rec[i]["end"] = env.now
        env.process(one_pool())
        env.run()
    else:
        _two_pools(env, costs, rec, event, mode, max_staleness, in_flight)
    for i, c in enumerate(costs):
        rec[i]["generation"] = c.generation_s
        rec[i]["step"] = i
    run.steps = rec
    return run


def _training_stages(c: StepCosts) -> list[tuple]:
    """(name, seconds, timer) of the stages after generation: data, reward, logprobs, training."""
    return [("data", c.data_s, None), ("reward", c.reward_s, None),
            ("logprobs", c.logprob_s, "policy_and_reference_logprobs"), ("training", c.train_s, "policy_training")]


def _stages(env, rec: dict, event, pool: str, step: int, stages: list[tuple]):
    """Run stages one after another on a pool, recording each on the timeline and in its timer."""
    for name, d, timer in stages:
        s = env.now
        yield env.timeout(d)
        event(pool, name, s, env.now, step)
        if timer:
            rec[timer] += d


def _two_pools(env, costs, rec, event, mode, max_staleness, in_flight):
    n = len(costs)
    stale = 0 if mode == "sync" else max_staleness
    # the generation pool keeps producing for later steps (as a longer run would): no end-of-run artefact
    gen_costs = costs + [costs[-1]] * stale
    published = {"version": 0}
    new_version = env.event()
    rollouts = simpy.Store(env)
    gen = {"running": None, "done": env.event(), "paused": False, "resume": env.event(), "refits": [],
           "pauses": [], "in_flight": 0}
    current = {"step": 0}  # trainer step in progress, to attribute generation-pool idle time

    def generator():
        for j, c in enumerate(gen_costs):
            need = max(0, j - stale)
            while published["version"] < need or gen["paused"]:
                s = env.now
                yield new_version if published["version"] < need else gen["resume"]
                # the weight transfer itself is weight_sync, not idle
                busy = sum(max(0.0, min(b, env.now) - max(a, s)) for a, b in gen["refits"])
                if current["step"] < n:
                    rec[current["step"]]["idle/refit_bubble"] += env.now - s - busy
                event("generation", "idle: waiting for weights", s, env.now, j)
            s = env.now
            gen["in_flight"] += 1
            env.process(ready(j, s, c.generation_s))
            remaining = c.generation_s if (mode == "sync" or c.generation_busy_s is None) else c.generation_busy_s
            gen["running"] = j
            while remaining > 1e-12:
                t_start = env.now
                try:
                    yield env.timeout(remaining)
                    remaining = 0.0
                except simpy.Interrupt as intr:
                    remaining -= env.now - t_start
                    p = env.now
                    yield env.timeout(intr.cause)  # in-flight weight update: the rollout pauses for the refit
                    event("generation", "weight_sync (in flight)", p, env.now, j)
            gen["running"] = None
            event("generation", f"generation step {j}", s, env.now, j)

    def ready(j, start, latency):
        """Batch j is ready `latency` after it started, plus any in-flight weight-update pauses meanwhile."""
        target = start + latency
        while True:
            paused = sum(max(0.0, min(b, env.now) - max(a, start)) for a, b in gen["pauses"])
            wait = target + paused - env.now
            if wait <= 1e-12:
                break
            yield env.timeout(wait)
        gen["in_flight"] -= 1
        if gen["in_flight"] == 0:
            done, gen["done"] = gen["done"], env.event()
            done.succeed()
        yield rollouts.put(j)

    gen_proc = env.process(generator())

    def trainer():
        nonlocal new_version
        t_prev = 0.0
        for i, c in enumerate(costs):
            current["step"] = i
            s = env.now
            yield rollouts.get()
            wait = env.now - s
            rec[i]["idle/buffer_starvation"] += wait
            rec[i]["exposed_generation"] += wait
            event("training", "idle: waiting for rollouts", s, env.now, i)
            yield from _stages(env, rec[i], event, "training", i, _training_stages(c))
            s4 = env.now
            if in_flight and gen["running"] is not None:
                gen_proc.interrupt(c.refit_s)
                gen["pauses"] = gen["pauses"][-8:] + [(env.now, env.now + c.refit_s)]
            elif gen["in_flight"] > 0:
                # prepare_for_refit: no new rollouts start; wait for the generations in flight to finish
                gen["paused"] = True
                yield gen["done"]
                rec[i]["exposed_generation"] += env.now - s4
                event("training", "idle: waiting for generation to pause", s4, env.now, i)
            else:
                gen["paused"] = True
            s5 = env.now
            yield env.timeout(c.refit_s)
            gen["refits"] = gen["refits"][-4:] + [(s5, env.now)]
            event("training", "weight_sync", s5, env.now, i)
            event("generation", "weight_sync", s5, env.now, i)
            rec[i]["weight_sync"] += c.refit_s
            published["version"] = i + 1
            if gen["paused"]:
                gen["paused"] = False
                r, gen["resume"] = gen["resume"], env.event()
                r.succeed()
            ev, new_version = new_version, env.event()
            ev.succeed()
            rec[i]["total_step_time"] = env.now - t_prev
            rec[i]["end"] = env.now
            t_prev = env.now

    env.process(trainer())
    env.run()
