"""The synchronous RL pipeline as SimPy processes on GPU pools: generation and training.

Stage durations per RL step come in precomputed (`StepCosts`); this module only decides when each stage runs,
who waits for whom, and records NeMo-RL's timers and a timeline.

- sync, colocated: one pool alternates: data, weight refit (prepare_for_generation), generation, reward,
  logprobs, training. The reward runs inside NeMo-RL's `generation` timer (run_multi_turn_rollout calls the
  environment before it returns), so that timer counts it.
- sync, not colocated: generation waits for the new weights; training waits for the rollouts; the generation pool
  idles during training (refit bubble) and the training pool during generation (buffer starvation).
Async runs are co-simulated with the generation engines and NeMo-RL's trajectory collector
(pipeline/collector.py), which reuses this module's stages.
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
    reward_s: float  # the reward computation left after the last sequence finishes (NeMo-RL's generation timer)
    logprob_s: float
    train_s: float
    refit_s: float  # weight transfer into the generation engines (both pools busy)
    data_s: float = 0.0
    generated_tokens: int = 0
    total_tokens: int = 0  # prompt + response tokens of the step's samples
    mean_acceptance_length: float = 1.0


@dataclass
class PipelineRun:
    steps: list[dict] = field(default_factory=list)  # per RL step: timers and markers
    events: list[dict] = field(default_factory=list)  # timeline: pool, name, start, end, step


def simulate(costs: list[StepCosts], colocated: bool) -> PipelineRun:
    """Run synchronous RL steps through the pipeline and return per-step timers and the timeline (async runs are
    co-simulated with the engines: pipeline/collector.py)."""
    env = simpy.Environment()
    run = PipelineRun()
    n = len(costs)
    rec = [dict.fromkeys(TIMERS, 0.0) for _ in range(n)]

    def event(pool, name, start, end, step):
        if end > start:
            run.events.append({"pool": pool, "name": name, "start": start, "end": end, "step": step})

    if colocated:
        def one_pool():
            for i, c in enumerate(costs):
                t0 = env.now
                yield from run_stages(env, rec[i], event, "cluster", i,
                                   [("data", c.data_s, None), ("weight_sync", c.refit_s, "weight_sync"),
                                    *rollout_stages(c)] + training_stages(c)[1:])
                rec[i]["exposed_generation"] = c.generation_s + c.reward_s
                rec[i]["total_step_time"] = env.now - t0
                rec[i]["end"] = env.now
        env.process(one_pool())
        env.run()
    else:
        _two_pools(env, costs, rec, event)
    for i, c in enumerate(costs):
        rec[i]["generation"] = c.generation_s + c.reward_s
        rec[i]["step"] = i
    run.steps = rec
    return run


def rollout_stages(c: StepCosts) -> list[tuple]:
    """(name, seconds, timer) of the rollout: generation, then the reward of what it generated, both in NeMo-RL's
    generation timer."""
    return [("generation", c.generation_s, "generation"), ("reward", c.reward_s, "generation")]


def training_stages(c: StepCosts) -> list[tuple]:
    """(name, seconds, timer) of the stages after the rollout: data, logprobs, training."""
    return [("data", c.data_s, None),
            ("logprobs", c.logprob_s, "policy_and_reference_logprobs"), ("training", c.train_s, "policy_training")]


def run_stages(env, rec: dict, event, pool: str, step: int, stages: list[tuple]):
    """Run stages one after another on a pool, recording each on the timeline and in its timer."""
    for name, d, timer in stages:
        s = env.now
        yield env.timeout(d)
        event(pool, name, s, env.now, step)
        if timer:
            rec[timer] += d


def _two_pools(env, costs, rec, event):
    """Synchronous, not colocated: generation of step j waits for the weights of step j - 1; training waits for
    the rollouts."""
    n = len(costs)
    published = {"version": 0}
    new_version = env.event()
    rollouts = simpy.Store(env)

    def wait_for_weights(version: int):
        """Idle until the trainer publishes `version`; the wait is step version - 1's refit bubble (the
        generation pool waits while that step trains), up to the start of its weight transfer."""
        s = env.now
        while published["version"] < version:
            yield new_version
        if env.now > s:
            idle_end = env.now - costs[version - 1].refit_s
            rec[version - 1]["idle/refit_bubble"] += idle_end - s
            event("generation", "idle: waiting for weights", s, idle_end, version - 1)

    def generator():
        for j, c in enumerate(costs):
            if j:
                yield from wait_for_weights(j)
            s = env.now
            yield env.timeout(c.generation_s)
            event("generation", f"generation step {j}", s, env.now, j)
            s = env.now
            yield env.timeout(c.reward_s)
            event("generation", "reward", s, env.now, j)
            yield rollouts.put(j)
        yield from wait_for_weights(n)  # the last step's bubble: its training and refit still follow

    env.process(generator())

    def trainer():
        nonlocal new_version
        t_prev = 0.0
        for i, c in enumerate(costs):
            s = env.now
            yield rollouts.get()
            wait = env.now - s
            rec[i]["idle/buffer_starvation"] += wait
            rec[i]["exposed_generation"] += wait
            event("training", "idle: waiting for rollouts", s, env.now, i)
            yield from run_stages(env, rec[i], event, "training", i, training_stages(c))
            s5 = env.now
            yield env.timeout(c.refit_s)
            event("training", "weight_sync", s5, env.now, i)
            event("generation", "weight_sync", s5, env.now, i)
            rec[i]["weight_sync"] += c.refit_s
            published["version"] = i + 1
            ev, new_version = new_version, env.event()
            ev.succeed()
            rec[i]["total_step_time"] = env.now - t_prev
            rec[i]["end"] = env.now
            t_prev = env.now

    env.process(trainer())
    env.run()
