"""The optimizer: a staged search over engine layout, speculation and placement for N GPUs.

Generation time depends on the generation pool's size G, its engine layout and the speculation, not on what
training does; so the search runs in three stages, each a batch of independent points on worker processes
(the sweep's local backend), with the scenario's seed everywhere (common random numbers):

A. engine layout: for every pool size G the placements need, one rollout batch per feasible layout
   (tp x ep dividing G), with and without speculation (k = min(3, max_k)); the fastest layout for each.
B. speculation: at each G on its layout, every speculation setting (none, k = 1..max_k, dynamic k);
   the fastest generation wins and becomes G's engine configuration.
C. pipeline: every placement (sync colocated; G generation + N - G training GPUs, sync or async at each
   staleness) with its G's engine configuration through `run_pipeline` for `steps` RL steps (enough for the
   async steady state), plus the baseline: the scenario as given on N GPUs. Ranked by the objective.

A stage-C configuration is therefore the best engine for its pool, not every combination; the stage tables
(`result.stages`) show what was compared.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from simulator.errors import RlsimError, check_at_least
from simulator.optimize.explain import OBJECTIVES, why
from simulator.optimize.space import Layout, Speculation, layouts, placements, speculations
from simulator.scenario import MAX_SPEC_TOKENS
from simulator.sweep import backends
from simulator.sweep.progress import Progress
from simulator.sweep.worker import Job

DEFAULT_FRACTIONS = (0.25, 0.375, 0.5, 0.625, 0.75)
BREAKDOWN = ("total_step_time", "generation", "exposed_generation", "policy_and_reference_logprobs",
             "policy_training", "weight_sync", "idle/buffer_starvation", "idle/refit_bubble",
             "rollout_tokens_per_s", "tokens_per_s_per_gpu", "mean_acceptance_length", "generation_gpus",
             "training_gpus", "mode", "colocated")


@dataclass
class OptimizeResult:
    """Ranked configurations (`table`, best first), the baseline, why the winner wins, and the stages."""

    table: pd.DataFrame
    baseline: dict | None
    why: list[str]
    objective: str
    gpus: int
    stages: dict[str, pd.DataFrame] = field(default_factory=dict)
    pruned: list[tuple[str, str]] = field(default_factory=list)
    evaluated: int = 0
    wall_s: float = 0.0
    model: str = ""
    hardware: str = ""

    @property
    def best(self) -> dict:
        return self.table.iloc[0].to_dict()


def _run(job: Job, tasks: list[tuple], workers: int, label: str, progress: bool) -> dict[int, dict]:
    out: dict[int, dict] = {}
    bar = Progress(len(tasks), enabled=progress, label=label)
    for r in backends.rows("local", tasks, job, workers):
        out[int(r["point"])] = r
        bar.update(failed=r.get("error") is not None)
    bar.close()
    return out


def _load(scenario, sets, gpus):
    from simulator.model_config import load_model
    from simulator.rollout.sim import _hardware
    from simulator.scenario import default_scenario_path, scenario_from_dict
    from simulator.yamlio import read_yaml
    p = Path(scenario) if scenario is not None else default_scenario_path()
    base = read_yaml(p)
    fixed = list(sets) + [f"cluster.gpus={gpus}"]
    scn = scenario_from_dict(base, fixed, base_dir=p.resolve().parent)
    return base, p.resolve().parent, fixed, scn, _hardware(scn.cluster.hardware), load_model(scn.model, "model")


def optimize(scenario: str | os.PathLike | None, gpus: int, objective: str = "step_time", *,
             sets: list[str] | tuple[str, ...] = (), max_k: int = 5, dynamic_k: bool = True,
             fractions: tuple[float, ...] = DEFAULT_FRACTIONS, staleness: tuple[int, ...] = (1, 2),
             max_engine_gpus: int = 8, steps: int | None = None, top: int = 5, workers: int | None = None,
             progress: bool = False) -> OptimizeResult:
    """Search configurations of the scenario on `gpus` GPUs; see the module docstring for the stages."""
    t0 = time.monotonic()
    if objective not in OBJECTIVES:
        raise RlsimError(f"unknown objective {objective!r} ({', '.join(OBJECTIVES)})", "--objective")
    check_at_least(gpus, 1, "--gpus")
    if not 1 <= max_k <= MAX_SPEC_TOKENS:
        raise RlsimError(f"must be in 1..{MAX_SPEC_TOKENS}, speculative.num_tokens' range (got {max_k})", "--max-k")
    if steps is not None:
        check_at_least(steps, 1, "--steps")
    if any(s < 0 for s in staleness):
        raise RlsimError("must be >= 0", "--staleness")
    if any(not 0 < f < 1 for f in fractions):
        raise RlsimError("generation fractions must be in (0, 1)", "--splits")
    base, base_dir, fixed, scn, hw, model = _load(scenario, sets, gpus)
    workers = backends.default_workers() if workers is None else workers
    steps = steps or max(3, max(staleness, default=0) + 2)
    lays, pruned = layouts(scn, hw, model, min(max_engine_gpus, gpus))
    if not lays:
        raise RlsimError(f"no engine layout of up to {max_engine_gpus} GPUs holds {model.name} "
                         f"({pruned[0][1] if pruned else 'none tried'})", "--max-engine-gpus")
    specs = speculations(scn, max_k, dynamic_k)
    unit = min(lay.gpus for lay in lays)
    places, p_pruned = placements(scn, hw, model, gpus, list(fractions), list(staleness), unit)
    pruned += p_pruned
    pool_sizes = sorted({p.gen_gpus(gpus) for p in places})
    gen_job = Job(base=base, base_dir=str(base_dir), sets=tuple(fixed), steps=1, what="rollout")
    probe = [s for s in specs if s.method == "none"] + [s for s in specs if not s.dynamic and s.k == min(3, max_k)
                                                        and s.method != "none"]
    # stage A: layout per pool size
    tasks, meta = [], {}
    for g in pool_sizes:
        for lay in lays:
            if g % lay.gpus:
                continue
            for sp in probe:
                i = len(tasks)
                meta[i] = (g, lay, sp)
                tasks.append((i, tuple([f"cluster.gpus={g}", *lay.overrides(), *sp.overrides()])))
    res_a = _run(gen_job, tasks, workers, "engine layouts", progress)
    rows_a = [_gen_row(meta[i], r) for i, r in res_a.items()]
    best_layout: dict[tuple[int, bool], Layout] = {}
    for (g, lay, sp), r in ((meta[i], r) for i, r in res_a.items()):
        if r.get("error"):
            pruned.append((f"{lay.label()} on {g} GPUs ({sp.label()})", r["error"]))
            continue
        key = (g, sp.method != "none")
        cur = best_layout.get(key)
        if cur is None or r["rollout_s"] < res_a[_find(meta, g, cur, sp)]["rollout_s"]:
            best_layout[key] = lay
    # stage B: speculation per pool size on its layout
    tasks, meta_b = [], {}
    for g in pool_sizes:
        for sp in specs:
            lay = best_layout.get((g, sp.method != "none"))
            if lay is None:
                continue
            i = len(tasks)
            meta_b[i] = (g, lay, sp)
            tasks.append((i, tuple([f"cluster.gpus={g}", *lay.overrides(), *sp.overrides()])))
    res_b = _run(gen_job, tasks, workers, "speculation", progress)
    rows_b = [_gen_row(meta_b[i], r) for i, r in res_b.items()]
    engine: dict[int, tuple[Layout, Speculation, float]] = {}
    for i, r in res_b.items():
        g, lay, sp = meta_b[i]
        if r.get("error"):
            pruned.append((f"{sp.label()} on {g} GPUs ({lay.label()})", r["error"]))
            continue
        if g not in engine or r["rollout_s"] < engine[g][2]:
            engine[g] = (lay, sp, r["rollout_s"])
    # stage C: placements with their pool's engine, and the baseline
    pipe_job = Job(base=base, base_dir=str(base_dir), sets=tuple(fixed), steps=steps)
    tasks, meta_c = [(0, ())], {0: None}
    for pl in places:
        g = pl.gen_gpus(gpus)
        if g not in engine:
            pruned.append((pl.label(gpus), f"no engine configuration runs on {g} GPUs"))
            continue
        lay, sp, _ = engine[g]
        i = len(tasks)
        meta_c[i] = (pl, lay, sp)
        tasks.append((i, tuple([*pl.overrides(gpus), *lay.overrides(), *sp.overrides()])))
    res_c = _run(pipe_job, tasks, workers, "pipelines", progress)
    rows = []
    for i, r in sorted(res_c.items()):
        if i == 0:
            continue
        pl, lay, sp = meta_c[i]
        if r.get("error"):
            pruned.append((f"{pl.label(gpus)}, {lay.label()}, {sp.label()}", r["error"]))
            continue
        rows.append({"speculation": sp.label(), "engines": lay.label(), "placement": pl.label(gpus),
                     **{k: r.get(k) for k in BREAKDOWN}, "overrides": " ".join(tasks[i][1])})
    if not rows:
        raise RlsimError("no configuration ran; the first failure: " + (pruned[-1][1] if pruned else "?"),
                         "--gpus")
    col, sense, _ = OBJECTIVES[objective]
    table = pd.DataFrame(rows).sort_values(col, ascending=(sense == "min"), kind="stable").reset_index(drop=True)
    table.insert(0, "rank", range(1, len(table) + 1))
    b = res_c[0]
    baseline = None
    if not b.get("error"):
        sp0 = scn.speculative
        baseline = {"speculation": Speculation(sp0.method, sp0.num_tokens, sp0.dynamic_k, sp0.num_tokens).label()
                    if sp0.method != "none" else "none",
                    "engines": Layout(scn.engine.tensor_parallel_size, scn.engine.expert_parallel_size).label(),
                    "placement": _placement_label(b, gpus), **{k: b.get(k) for k in BREAKDOWN}}
    else:
        pruned.append(("baseline (the scenario as given)", b["error"]))
    lines = _why_lines(table, baseline, objective, engine, rows_b)
    stages = {"layouts": pd.DataFrame(rows_a), "speculation": pd.DataFrame(rows_b)}
    return OptimizeResult(table=table.head(max(top, 1)) if top else table, baseline=baseline, why=lines,
                          objective=objective, gpus=gpus, stages=stages, pruned=pruned,
                          evaluated=len(res_a) + len(res_b) + len(res_c), wall_s=time.monotonic() - t0,
                          model=model.name, hardware=hw.name)


def _find(meta, g, lay, sp) -> int:
    return next(i for i, m in meta.items() if m == (g, lay, sp))


def _gen_row(m, r) -> dict:
    g, lay, sp = m
    return {"generation_gpus": g, "engines": lay.label(), "speculation": sp.label(),
            "generation": r.get("rollout_s"), "mean_acceptance_length": r.get("mean_acceptance_length"),
            "rollout_tokens_per_s": r.get("tokens_per_s"), "error": r.get("error")}


def _placement_label(r: dict, gpus: int) -> str:
    if r.get("colocated"):
        return "sync colocated"
    return f"{r.get('mode')}, {r.get('generation_gpus')} gen + {r.get('training_gpus')} train GPUs"


def _why_lines(table: pd.DataFrame, baseline: dict | None, objective: str, engine, rows_b) -> list[str]:
    best = table.iloc[0].to_dict()
    out = []
    if len(table) > 1:
        out.append("vs the runner-up: " + why(best, table.iloc[1].to_dict(), objective, "#2"))
    if baseline is not None:
        out.append("vs the scenario as given: " + why(best, baseline, objective, "the baseline"))
    # speculation at the winner's pool size: the next-best setting and no speculation
    g = int(best["generation_gpus"])
    gen = [r for r in rows_b if r["generation_gpus"] == g and not r.get("error")]
    gen.sort(key=lambda r: r["generation"])
    if len(gen) > 1:
        w = gen[0]
        nxt = gen[1]
        none = next((r for r in gen if r["speculation"] == "none"), None)
        text = (f"speculation on {g} generation GPUs: {w['speculation']} generates the batch in {w['generation']:.1f} s"
                f" vs {nxt['generation']:.1f} s for {nxt['speculation']}")
        if none is not None and none is not w and none is not nxt:
            text += f" and {none['generation']:.1f} s without speculation"
        out.append(text)
    return out
