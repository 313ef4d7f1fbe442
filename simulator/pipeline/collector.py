"""Async GRPO co-simulated: the generation engines, NeMo-RL's trajectory collector and the trainer in one SimPy
environment, so that a batch's stragglers decode beside the next batch's sequences as they do in a real run.

The collector follows NeMo-RL's `AsyncTrajectoryCollector` (nemo_rl/algorithms/async_utils.py, read at
NVIDIA-NeMo/RL @0a27b1f4; workloads/published/nemo_rl_recipes.md sec. 4):
- batch j (trained at step j) is generated with weights of version >= j - max_trajectory_age (version v exists
  once training step v - 1 has been refit; the initial weights may generate batches 0..age);
- it starts the prompt groups of one batch after another, each group's samples as separate requests sent to
  the engines in turn (`generate_async`, round-robin over the data-parallel engines), with at most
  num_prompts_per_step x max_trajectory_age groups in flight (`_inflight_sema`);
- no group starts while weights are being refit (`_refit_pause_cleared`); with in-flight weight updates the
  engines pause for the transfer and the sequences in flight resume after it, otherwise the refit first waits
  for every group in flight to finish (`prepare_for_refit`).
Acceptance that drifts over RL steps follows the weights: an engine decodes with the acceptance of RL step v
while it holds weights of version v (sequences in flight across an in-flight update switch with it).
Each sample's reward is computed as it finishes (the collector's group workers run run_async_multi_turn_rollout,
which calls the environment per sample), so only the last sample's (StepCosts.reward_s) is left once a batch's
groups are done; then the trainer takes the batch, runs logprobs and training, and refits.

Engines are sampled (`sample_engines`, pipeline.cosim_engines): with E identical data-parallel engines, n of them
are simulated with their share n/E of each batch's prompt groups and of the in-flight limit. A sample sees fewer
groups than the pool, so its stragglers are milder and its engines' loads less even: on the 235B projection
(128 engines) 8 engines put the async step 5-6% below 32 engines; on the 30B 8-off row (32 engines) 8 engines
put it 9% above all 32.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import simpy

from simulator.pipeline.sim import TIMERS, PipelineRun, StepCosts, run_stages, training_stages
from simulator.rollout.engine import Engine
from simulator.rollout.progress import Acceptance
from simulator.rollout.workload import RequestBatch


@dataclass(frozen=True)
class EngineSample:
    """How much of the generation pool the co-simulation runs: `engines` of the pool's `pool_engines`, with
    `groups` of each batch's `prompts` prompt groups."""

    engines: int
    pool_engines: int
    groups: int
    prompts: int


def sample_engines(pool_engines: int, prompts: int, max_engines: int = 8) -> EngineSample:
    """At most `max_engines` engines, with their share of the prompt groups (at least one)."""
    n = min(pool_engines, max_engines)
    return EngineSample(n, pool_engines, max(1, int(round(prompts * n / pool_engines))), prompts)


class TrajectoryCollector:
    """Starts prompt groups on the engines as NeMo-RL's collector does; reports when each batch is complete.

    Requests are one stream (`batch_stream` order): prompt_id // prompts is the batch, prompt_id the group."""

    def __init__(self, env: simpy.Environment, engines: list[Engine], prompt_id: np.ndarray,
                 prompts: int, n_batches: int, age: int, max_in_flight: int,
                 acceptance_at: Callable[[int], tuple[Acceptance, dict]] | None = None):
        self.env, self.engines = env, engines
        self.acceptance_at = acceptance_at  # weight version -> (acceptance, its dynamic-k cache); None: fixed
        self.engine_version = [0] * len(engines)  # the weight version each engine decodes with
        self.age = age
        self.max_in_flight = max_in_flight
        groups, self.group_of = np.unique(prompt_id, return_inverse=True)
        self.batch_of_group = (groups // prompts).astype(np.int64)
        order = np.argsort(self.group_of, kind="stable")
        bounds = np.searchsorted(self.group_of[order], np.arange(len(groups) + 1))
        self.members = [order[bounds[g]:bounds[g + 1]] for g in range(len(groups))]
        self.left = np.diff(bounds).astype(np.int64)  # unfinished requests per group
        self.groups_left = np.bincount(self.batch_of_group, minlength=n_batches).astype(np.int64)
        self.next_group = 0
        self.in_flight = 0
        self.version = 0
        self.refitting = False
        self.rr = 0  # the next engine in turn
        self.admit_s = np.full(len(groups), np.nan)  # when each group started (s)
        self.done_s = np.full(len(groups), np.nan)  # when its last sequence finished (s)
        self.start_s = np.full(n_batches, np.nan)
        self.ready_s = np.full(n_batches, np.nan)
        self.done = [env.event() for _ in range(n_batches)]
        self.drained = env.event()  # succeeds when no group is in flight
        self.wake = [env.event() for _ in engines]
        self.hold_until = 0.0  # engines pause until then (in-flight weight update)
        self.idle_engines = 0
        self.idle_since = 0.0
        self.idle: list[tuple[float, float]] = []  # spans when no engine had work
        self.refits: list[tuple[float, float]] = []

    def pending(self) -> bool:
        """Whether a finish may change what runs: groups wait to start, or batches to complete."""
        return self.next_group < len(self.members) or self.in_flight > 0

    def admit(self) -> None:
        """Start groups while the weights allow their batch and the in-flight limit has room."""
        while (not self.refitting and self.next_group < len(self.members)
               and self.batch_of_group[self.next_group] <= self.version + self.age
               and self.in_flight < self.max_in_flight):
            g = self.next_group
            b = self.batch_of_group[g]
            if np.isnan(self.start_s[b]):
                self.start_s[b] = self.env.now
            self.admit_s[g] = self.env.now
            for rid in self.members[g]:
                eng = self.engines[self.rr]
                self.rr = (self.rr + 1) % len(self.engines)
                eng.add(int(rid))
                if not self.wake[eng.index].triggered:
                    self.wake[eng.index].succeed()
            self.in_flight += 1
            self.next_group += 1

    def finished(self, ids: list[int]) -> None:
        """Requests that finished: close their groups and batches, then start what now may start."""
        for g in self.group_of[np.asarray(ids, dtype=np.int64)]:
            self.left[g] -= 1
            if self.left[g] == 0:
                self.in_flight -= 1
                self.done_s[g] = self.env.now
                b = self.batch_of_group[g]
                self.groups_left[b] -= 1
                if self.groups_left[b] == 0:
                    self.ready_s[b] = self.env.now
                    self.done[b].succeed()
        if self.in_flight == 0 and not self.drained.triggered:
            self.drained.succeed()
        self.admit()

    def engine_process(self, eng: Engine):
        while True:
            if self.hold_until > self.env.now:
                yield self.env.timeout(self.hold_until - self.env.now)
            if not eng.has_work():
                self.wake[eng.index] = self.env.event()
                self.idle_engines += 1
                if self.idle_engines == len(self.engines):
                    self.idle_since = self.env.now
                yield self.wake[eng.index]
                if self.idle_engines == len(self.engines) and self.env.now > self.idle_since:
                    self.idle.append((self.idle_since, self.env.now))
                self.idle_engines -= 1
                continue
            if self.acceptance_at is not None and self.engine_version[eng.index] != self.version:
                eng.set_acceptance(*self.acceptance_at(self.version))
                self.engine_version[eng.index] = self.version
            dt = eng.prepare(self.env.now, self.pending())
            yield self.env.timeout(dt)
            done = eng.commit(self.env.now)
            if done:
                self.finished(done)


def cosimulate_async(engines: list[Engine], stream: RequestBatch, costs: list[StepCosts],
                     sample: EngineSample, age: int, in_flight: bool,
                     acceptance_at: Callable[[int], tuple[Acceptance, dict]] | None = None
                     ) -> tuple[PipelineRun, TrajectoryCollector]:
    """Run len(costs) RL steps of async GRPO with the engines generating `stream` (len(costs) + age batches of
    the sampled share, in order; age 0 = on-policy on separate pools). `acceptance_at`: the engines' acceptance
    under weight version v (None: the one they were built with, throughout). Returns the run (timers and
    timeline, as `simulate`) and the collector (when each group and batch started and finished, the refit
    windows)."""
    env = simpy.Environment()
    n = len(costs)
    n_batches = n + age
    col = TrajectoryCollector(env, engines, stream.prompt_id, sample.prompts, n_batches, age,
                              max_in_flight=sample.groups * max(age, 1), acceptance_at=acceptance_at)
    run = PipelineRun()
    rec = [dict.fromkeys(TIMERS, 0.0) for _ in range(n)]

    def event(pool, name, start, end, step, lane=0):
        if end > start:
            run.events.append({"pool": pool, "name": name, "start": start, "end": end, "step": step, "lane": lane})

    def trainer():
        t_prev = 0.0
        for i, c in enumerate(costs):
            s = env.now
            yield col.done[i]
            yield env.timeout(c.reward_s)
            rec[i]["idle/buffer_starvation"] = rec[i]["exposed_generation"] = env.now - s
            event("training", "idle: waiting for rollouts", s, env.now, i)
            yield from run_stages(env, rec[i], event, "training", i, training_stages(c))
            col.refitting = True  # prepare_for_refit: no new group starts
            if not in_flight and col.in_flight > 0:
                s4 = env.now
                col.drained = env.event()
                yield col.drained
                rec[i]["exposed_generation"] += env.now - s4
                event("training", "idle: waiting for generation to pause", s4, env.now, i)
            s5 = env.now
            col.hold_until = s5 + c.refit_s
            col.refits.append((s5, s5 + c.refit_s))
            yield env.timeout(c.refit_s)
            event("training", "weight_sync", s5, env.now, i)
            event("generation", "weight_sync", s5, env.now, i)
            rec[i]["weight_sync"] = c.refit_s
            col.version = i + 1
            col.refitting = False
            col.admit()
            rec[i]["total_step_time"] = env.now - t_prev
            rec[i]["end"] = env.now
            t_prev = env.now

    col.admit()
    for eng in engines:
        env.process(col.engine_process(eng))
    env.run(until=env.process(trainer()))
    for i in range(n):
        rec[i]["generation"] = float(col.ready_s[i] - col.start_s[i]) + costs[i].reward_s
        rec[i]["step"] = i
        event("generation", f"generation step {i}", col.start_s[i], col.ready_s[i], i, lane=i % (age + 1))
    if col.idle_engines == len(engines):
        col.idle.append((col.idle_since, env.now))
    ends = np.array([r["end"] for r in rec])
    for a, b in col.idle:
        event("generation", "idle: waiting for weights", a, b, int(min(np.searchsorted(ends, a), n - 1)))
    _pool_idle(rec, col, n)
    run.steps = rec
    return run, col


def _pool_idle(rec: list[dict], col: TrajectoryCollector, n: int) -> None:
    """idle/refit_bubble of step i: seconds within step i (between the ends of steps i - 1 and i) when no sampled
    engine had a sequence to run, weight transfers excluded."""
    t0 = 0.0
    for i in range(n):
        t1 = rec[i]["end"]
        idle = 0.0
        for a, b in col.idle:
            a, b = max(a, t0), min(b, t1)
            if b > a:
                idle += (b - a) - sum(_overlap(a, b, r0, r1) for r0, r1 in col.refits)
        rec[i]["idle/refit_bubble"] = max(0.0, idle)
        t0 = t1


def _overlap(a: float, b: float, c: float, d: float) -> float:
    return max(0.0, min(b, d) - max(a, c))
