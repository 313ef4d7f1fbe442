"""Predicted vs published for every row of the two published tables, and the 235B projection.

- paper_specdec_rl_8b.csv: with the paper's acceptance lengths at k=3, the generation and step speedups of
  EAGLE-3 over autoregressive decoding (tolerance 10%); the autoregressive rows were fitted on, the EAGLE-3 rows
  were not.
- nemo_rl_performance_summary.csv: each run's step time (tolerance 20%) and each off-policy / on-policy step-time
  ratio of the same system and model (tolerance 15%); none of these rows was fitted on.
- nemo_rl_stage_reports.csv (B200, a later NeMo-RL and vLLM 0.25.1): each stage of the two recipes it reports,
  predicted with the same recipes' H100 scenarios on B200; shown without a tolerance (the publication's software
  is newer than the scenarios describe; the 30B policy training was fitted on, the 235B step includes validation).
- nemo_rl_v03_stage_times.csv (NeMo-RL v0.3 blog, GPU not named, assumed H100; vLLM 0.9/0.10): every stage of its
  four Megatron runs and a user's reruns of two of them (NVIDIA-NeMo/RL #959), shown without a tolerance: nothing is
  fitted on them, and the two measurements of one config differ by up to 21% on the step, 86% on the refit.
- the 235B projection (no published figures): step times of sync / async x autoregressive / EAGLE-3 on 512 and
  2048 GB200, and their end-to-end speedup over synchronous autoregressive.
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from simulator.fit.moe_training import read_stage_reports
from simulator.paths import project_root, scenarios_dir
from simulator.pipeline.run import run_pipeline
from simulator.scenario import load_scenario

TOL_SPEEDUP = 0.10
TOL_STEP = 0.20
TOL_RATIO = 0.15


@dataclass
class Check:
    table: str
    row: str
    quantity: str
    published: float
    predicted: float
    tolerance: float | None

    @property
    def rel_error(self) -> float:
        return self.predicted / self.published - 1 if self.published else float("nan")

    @property
    def ok(self) -> bool | None:
        return None if self.tolerance is None else bool(abs(self.rel_error) <= self.tolerance)


def _run(name: str, sets=(), steps=None) -> dict:
    return run_pipeline(load_scenario(scenarios_dir() / name, list(sets)), steps=steps).summary()


def paper_checks() -> list[Check]:
    paper = pd.read_csv(project_root() / "workloads/published/paper_specdec_rl_8b.csv", comment="#")
    out = []
    for wl in ("rl-think", "rl-zero"):
        rows = paper[paper["workload"] == wl].set_index("method")
        ar, sp = rows.loc["autoregressive"], rows.loc["eagle3"]
        name = f"qwen3-8b-{wl}-gb200x32.yaml"
        a = _run(name)
        e = _run(name, ["speculative.method=eagle3", f"speculative.num_tokens={int(sp['k'])}"])
        pub_gen = ar["generation_s"] / sp["generation_s"]
        pub_step = ar["total_s"] / sp["total_s"]
        out.append(Check("paper_specdec_rl_8b", wl, "generation speedup (EAGLE-3 k=3)", pub_gen,
                         a["generation"] / e["generation"], TOL_SPEEDUP))
        out.append(Check("paper_specdec_rl_8b", wl, "step speedup (EAGLE-3 k=3)", pub_step,
                         a["total_step_time"] / e["total_step_time"], TOL_SPEEDUP))
        out.append(Check("paper_specdec_rl_8b", wl, "autoregressive generation s (fitted)", ar["generation_s"],
                         a["generation"], None))
        out.append(Check("paper_specdec_rl_8b", wl, "autoregressive step s", ar["total_s"], a["total_step_time"],
                         None))
        out.append(Check("paper_specdec_rl_8b", wl, "EAGLE-3 generation s", sp["generation_s"], e["generation"],
                         None))
    return out


# the published tables' model names -> rlsim's (workloads/models), as the scenario files are named
MODEL_NAMES = {"Llama-3.1-8B-Instruct": "llama-3.1-8b", "Llama-3.1-70B": "llama-3.1-70b", "Qwen3-32B": "qwen3-32b",
               "Qwen3-30B-A3B": "qwen3-30b-a3b", "Qwen3-235B-A22B": "qwen3-235b-a22b"}


def _nemo_name(r) -> str:
    return (f"nemo-rl-{MODEL_NAMES[r.model]}-{r.system.lower()}x{int(r.gpus)}-{r.policy}"
            f"{'-fp8' if r.precision == 'fp8' else ''}.yaml")


def nemo_rl_checks() -> list[Check]:
    rows = pd.read_csv(project_root() / "workloads/published/nemo_rl_performance_summary.csv", comment="#")
    out, pred = [], {}
    for r in rows.itertuples():
        s = _run(_nemo_name(r))
        label = f"{r.system} {r.model} {r.policy} {r.precision} x{int(r.gpus)}"
        pred[r.Index] = s["total_step_time"]
        out.append(Check("nemo_rl_performance_summary", label, "step s", float(r.step_s), s["total_step_time"],
                         TOL_STEP))
        out.append(Check("nemo_rl_performance_summary", label, "tokens/s/GPU", float(r.tokens_per_s_per_gpu),
                         s["tokens_per_s_per_gpu"], None))
    for (system, model), g in rows.groupby(["system", "model"]):
        on = g[g["policy"] == "on"]
        if on.empty:
            continue
        base = on.sort_values("gpus").iloc[0]
        for r in g[g["policy"] != "on"].itertuples():
            label = f"{system} {model} {r.policy}{' fp8' if r.precision == 'fp8' else ''} x{int(r.gpus)} / on x{int(base.gpus)}"
            out.append(Check("nemo_rl_performance_summary", label, "off/on step-time ratio",
                             float(r.step_s) / float(base.step_s), pred[r.Index] / pred[base.name], TOL_RATIO))
    return out


# the stage report's recipes -> the scenario of the same recipe file (run with cluster.hardware=b200)
STAGE_SCENARIOS = {"grpo-qwen3-30ba3b-4n8g": "nemo-rl-qwen3-30b-a3b-h100x32-on.yaml",
                   "grpo-qwen3-235b-16n8g": "nemo-rl-qwen3-235b-a22b-h100x128-on.yaml"}
STAGE_NOTES = {("Qwen3-30B-A3B", 32, "policy_training"): " (fitted)",
               ("Qwen3-235B-A22B", 128, "generation"): " (fitted)",
               ("Qwen3-235B-A22B", 128, "total_step_time"): " (incl. validation)",
               ("Qwen3-30B-A3B", 32, "weight_sync"): " (job 507302)",
               ("Qwen3-235B-A22B", 128, "weight_sync"): " (job 507112)",
               **{("Qwen3-30B-A3B", 16, st): " (older)"
                  for st in ("policy_and_reference_logprobs", "policy_training", "total_step_time")}}


def stage_checks() -> list[Check]:
    """Per-stage predicted vs published seconds of nemo_rl_stage_reports.csv (report only: no tolerance)."""
    rows = read_stage_reports(project_root() / "workloads/published/nemo_rl_stage_reports.csv")
    out = []
    for (system, model, recipe, gpus), g in rows.groupby(["system", "model", "recipe", "gpus"], sort=False):
        s = _run(STAGE_SCENARIOS[recipe], [f"cluster.hardware={system.lower()}", f"cluster.gpus={int(gpus)}"])
        for r in g.itertuples():
            note = STAGE_NOTES.get((model, int(gpus), r.stage), "")
            out.append(Check("nemo_rl_stage_reports", f"{system} {model} x{int(gpus)} ({recipe})",
                             f"{r.stage} s{note}", float(r.seconds), s[r.stage], None))
    return out


V03_TABLE = "workloads/published/nemo_rl_v03_stage_times.csv"
V03_STAGES = ("total_step_time", "policy_training", "weight_sync", "generation", "policy_and_reference_logprobs")


def v03_scenario(r) -> str:
    """The scenario file of a row of V03_TABLE (the blog's config; a rerun row runs its blog row's)."""
    return f"nemo-rl-v03-{MODEL_NAMES[r.model]}-{r.system.lower()}x{int(r.gpus)}.yaml"


def v03_checks() -> list[Check]:
    """Per-stage predicted vs published seconds of the v0.3 blog's runs and the reruns (report only: no tolerance).
    Each row runs its config's scenario at that row's published mean generated length."""
    rows = pd.read_csv(project_root() / V03_TABLE, comment="#")
    out = []
    for r in rows.itertuples():
        s = _run(v03_scenario(r), [f"rollout.mean_response_tokens={float(r.mean_generated_tokens)}"])
        for stage in V03_STAGES:
            out.append(Check("nemo_rl_v03_stage_times", f"{r.source} {r.system} {r.model} x{int(r.gpus)}",
                             f"{stage} s", float(getattr(r, stage)), s[stage], None))
    return out


def projection_235b(splits=(0.125, 0.25, 0.5)) -> pd.DataFrame:
    """Step times of the 235B projection scenarios. Async rows take the best generation / training split of the
    cluster among `splits` (fraction of GPUs that generate); `bound` says what limits the step."""
    rows = []
    for gpus in (512, 2048):
        base = None
        for mode in ("sync", "async"):
            for spec in ("ar", "eagle3"):
                name = f"qwen3-235b-a22b-gb200x{gpus}-{mode}-{spec}.yaml"
                if mode == "sync":
                    best, frac = _run(name), None
                else:
                    cands = []
                    for f in splits:
                        gen = int(gpus * f) // 8 * 8
                        cands.append((_run(name, [f"pipeline.generation_gpus={gen}"]), f))
                    best, frac = min(cands, key=lambda c: c[0]["total_step_time"])
                base = base or best["total_step_time"]
                train_side = best["policy_training"] + best["policy_and_reference_logprobs"]
                if mode == "sync":
                    bound = "sequential: generation + training"
                elif best["exposed_generation"] > 0.05 * best["total_step_time"]:
                    bound = "generation-bound (training waits for rollouts)"
                else:
                    bound = "training-bound (generation hidden behind training)"
                rows.append({"gpus": gpus, "mode": mode, "speculation": spec,
                             "generation_gpus": best["generation_gpus"], "step_s": best["total_step_time"],
                             "generation_s": best["generation"], "exposed_generation_s": best["exposed_generation"],
                             "training_side_s": train_side, "speedup_vs_sync_ar": base / best["total_step_time"],
                             "bound": bound})
    return pd.DataFrame(rows)


def all_checks() -> list[Check]:
    return paper_checks() + nemo_rl_checks() + stage_checks() + v03_checks()
