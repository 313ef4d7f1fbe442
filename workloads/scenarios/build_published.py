"""Write the scenarios of the published runs (run from the repository root):

    python workloads/scenarios/build_published.py

- qwen3-8b-rl-{think,zero}-gb200x32.yaml: the speculative-decoding-in-RL paper's Qwen3-8B GRPO runs
  (workloads/published/paper_specdec_rl_8b.csv). What the paper does not state is chosen from NeMo-RL's defaults
  and the DAPO recipe, and FITTED ON THE AUTOREGRESSIVE ROWS ONLY: the response-length median (to generation_s),
  the training and logprob framework efficiencies (to train_s, logprob_s) and the refit overhead (to prepare_s),
  all on RL-Think; RL-Zero reuses the framework numbers and fits only its response-length median.
- nemo-rl-*.yaml: the 17 runs of workloads/published/nemo_rl_performance_summary.csv, from the NeMo-RL recipes
  (workloads/published/nemo_rl_recipes.md); response lengths solved so that the mean generated length equals the
  published one; the framework numbers are the ones fitted on the paper (held out: rlsim validate compares).
- qwen3-235b-a22b-gb200x{512,2048}-{sync,async}-{ar,eagle3}.yaml: the 235B projection.
Deterministic: the same files every run.
"""
from __future__ import annotations

import math
from functools import lru_cache
import sys
from pathlib import Path

import pandas as pd
import yaml
from scipy.optimize import brentq
from scipy.special import ndtr

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from simulator.costmodel.step import StepCostModel  # noqa: E402
from simulator.fit.cross_host import fit_cross_host_step_overhead  # noqa: E402
from simulator.fit.moe_training import fit_moe_layer_overhead, read_stage_reports, stage_seconds  # noqa: E402
from simulator.fit.refit import fit_refit_broadcast_rate, fit_refit_copy  # noqa: E402
from simulator.fit.spec_overhead import fit_spec_overhead, read_tpot_table  # noqa: E402
from simulator.fit.vllm_cpu import fit_vllm_cpu, read_version_table, read_vllm_cpu_table, version_ratio  # noqa: E402
from simulator.hardware import load_hardware  # noqa: E402
from simulator.model_config import load_model  # noqa: E402
from simulator.pipeline.run import run_pipeline  # noqa: E402
from simulator.scenario import Scenario  # noqa: E402
from simulator.yamlio import write_text_atomic  # noqa: E402

OUT = ROOT / "workloads" / "scenarios"
PAPER = "workloads/published/paper_specdec_rl_8b.csv"
SUMMARY = "workloads/published/nemo_rl_performance_summary.csv"
NOTES = "workloads/published/nemo_rl_recipes.md"
# The summary CSV rounds four GB200 'G-Average Seq len' cells ("~1.1K", "~3.2K"); the performance page prints them
# exactly (NOTES sec. 1 and 3.6-3.17): stored copies of docs/about/performance-summary.md, v0.5 at rlops/RL @d9cf8901,
# v0.6 at xiuhu17/RL @ab4e0a54, whose step and throughput cells are the CSV's.
PAGE_V05 = "docs/about/performance-summary.md, NeMo RL v0.5 (stored copy rlops/RL @d9cf8901)"
PAGE_V06 = "docs/about/performance-summary.md, NeMo RL v0.6 (stored copy xiuhu17/RL @ab4e0a54)"
EXACT_MEAN_SEQ = {("GB200", "Llama-3.1-8B-Instruct", "on", "bf16", 8): (1066, PAGE_V05),
                  ("GB200", "Llama-3.1-8B-Instruct", "1-off", "bf16", 8): (1107, PAGE_V05),
                  ("GB200", "Qwen3-30B-A3B", "on", "bf16", 16): (3199, PAGE_V06),
                  ("GB200", "Qwen3-30B-A3B", "1-off", "bf16", 16): (3197, PAGE_V06)}
TPOT = "workloads/published/vllm_eagle_bs1_tpot.csv"
SIGMA = 0.8  # lognormal sigma of response lengths (assumption, see SOURCES)


def vllm_overheads() -> dict:
    """vLLM's CPU/launch seconds outside the kernels, fitted to its measured batch-1 TPOT (EAGLE-3 rows)."""
    fit = fit_spec_overhead(StepCostModel("h100", "llama-3.1-8b", tp=1, dtype="bf16"), read_tpot_table(ROOT / TPOT),
                            "eagle3")
    return {"step_overhead_s": round(fit.step_overhead_s, 6),
            "spec_iteration_overhead_s": round(fit.iteration_overhead_s, 6),
            "draft_step_overhead_s": round(fit.draft_step_overhead_s, 6)}


VLLM_OVERHEADS = vllm_overheads()
VLLM_CPU = "calibration/vllm_cpu/vllm_cpu_overhead.csv"
_VLLM_CPU_TABLE = read_vllm_cpu_table(ROOT / VLLM_CPU)


# the vLLM each kind of published run used (NOTES sec. 0 and 5b)
VLLM_OF = {"v0.3": f"NeMo-RL v0.3 (vLLM 0.9.0 or 0.10.0, {NOTES} sec. 3.18)",
           "v0.5": "NeMo-RL v0.5 (vLLM 0.11.2, NeMo-RL #1539)", "v0.6": "NeMo-RL v0.6 (vLLM 0.17 line)",
           "paper": "the paper (vLLM 0.17 line)", "projection": "the projection (vLLM 0.17 line)"}
# the measured slope per process mode (True: AsyncLLM, engine core in its own process; False: LLM class in NeMo-RL's
# worker process), without async scheduling, where the CPU work adds to the GPU step and shows whole
VLLM_CPU_S_PER_SEQ = {mp: fit_vllm_cpu(_VLLM_CPU_TABLE, multiprocessing=mp, async_scheduling=False).s_per_seq
                      for mp in (False, True)}
# releases on another vLLM than the measured 0.17.1 take its slope times the two versions' ratio, measured in one
# session with the runs interleaved (host speed cancels there, not between sessions)
VLLM_AB = "calibration/vllm_cpu/vllm_versions_ab.csv"
_VLLM_AB_TABLE = read_version_table(ROOT / VLLM_AB)
VLLM_VERSION = {"v0.3": "0.11.2", "v0.5": "0.11.2"}
# releases whose vLLM was not measured, and why the measured version stands in
VLLM_VERSION_NOTE = {"v0.3": f" (v0.3 ran vLLM 0.9.0 or 0.10.0, {NOTES} sec. 3.18: 0.11.2 is the nearest version "
                             "measured; an assumption)"}
# releases on vLLM < 0.14, which schedules synchronously on every executor (NOTES sec. 5b)
SYNC_SCHEDULING_RELEASES = ("v0.3", "v0.5")
VLLM_REFERENCE = "0.17.1"


@lru_cache(maxsize=None)
def vllm_cpu_ratio(async_engine: bool, release: str) -> float:
    """The release's vLLM per-sequence CPU cost over 0.17.1's (1 where it ran the 0.17 line)."""
    v = VLLM_VERSION.get(release)
    return 1.0 if v is None else version_ratio(_VLLM_AB_TABLE, v, VLLM_REFERENCE, async_engine)


def cpu_s_per_seq(async_engine: bool, release: str) -> float:
    """engine.cpu_s_per_seq of a run: the measured slope of its process mode, carried to its vLLM version."""
    return round(VLLM_CPU_S_PER_SEQ[async_engine] * vllm_cpu_ratio(async_engine, release), 8)


def vllm_async_scheduling(release: str, vllm_tp: int) -> bool:
    """Whether the run's vLLM overlaps scheduling with the GPU step (NOTES sec. 5b): on by default from vLLM 0.14,
    for the single-process ("uni") executor only; NeMo-RL runs TP > 1 through vLLM's Ray executor. v0.5 ran vLLM
    0.11.2 (NeMo-RL #1539); v0.6, the paper and the projection the 0.17 line."""
    return release not in SYNC_SCHEDULING_RELEASES and vllm_tp == 1


MOE_CONFIGS = "workloads/published/vllm_0.17.1_fused_moe_configs.txt"
_MOE_CONFIG_FILES = {ln.strip() for ln in (ROOT / MOE_CONFIGS).read_text().splitlines()
                     if ln.strip() and not ln.startswith("#")}
# torch.cuda.get_device_name() with spaces as underscores, as vLLM names its config files (the names in MOE_CONFIGS:
# e.g. E=128,N=192,device_name=NVIDIA_H100_80GB_HBM3.json, E=128,N=384,device_name=NVIDIA_GB200,dtype=...)
VLLM_DEVICE = {"h100": "NVIDIA_H100_80GB_HBM3", "h200": "NVIDIA_H200", "b200": "NVIDIA_B200", "gb200": "NVIDIA_GB200"}
# the dtype part of the file name: Qwen3's FP8 checkpoints are block-quantized 128 x 128
VLLM_MOE_DTYPE = {"bf16": "", "fp8": ",dtype=fp8_w8a8,block_shape=[128,128]"}


# releases on another vLLM than 0.17.1, for which the file listing was checked too
MOE_CONFIG_CAVEAT = {"v0.3": "; vLLM 0.9.0 ships the same E=128,N=192 H100 file (pip download --no-deps vllm==0.9.0, "
                             "unzip -l: fused_moe/configs/ lists it; assumption: its tiles run as 0.17.1's)"}


def vllm_moe_config_file(hardware: str, model: str, vllm_tp: int, dtype: str) -> str:
    """The tile-config file vLLM's fused_moe looks for (fused_moe.py get_config_file_name): experts, expert width per
    GPU (vLLM shards each expert over TP), GPU name, dtype."""
    moe = load_model(model).moe
    return f"E={moe.experts},N={moe.expert_ffn // vllm_tp},device_name={VLLM_DEVICE[hardware]}{VLLM_MOE_DTYPE[dtype]}.json"


def vllm_moe_kernel(hardware: str, model: str, vllm_tp: int, dtype: str) -> tuple[str, str]:
    """engine.moe_kernel and its source: vLLM 0.17.1's fused_moe with its tuned tiles where it ships a config file
    for this GPU and expert shape, its default tiles otherwise (both measured on the H200,
    calibration/h200/measured/vllm_fused_moe.csv)."""
    name = vllm_moe_config_file(hardware, model, vllm_tp, dtype)
    tuned = name in _MOE_CONFIG_FILES
    caveat = ("" if dtype == "bf16" else "; assumption: the bf16 kernel's measured tuned/default timings stand in "
              "for the fp8 block-quantized kernel's")
    return ("fused" if tuned else "fused_default",
            f"{MOE_CONFIGS}: vLLM 0.17.1 {'ships' if tuned else 'ships no'} {name}, so its fused_moe runs "
            f"{'tuned' if tuned else 'default'} tiles (measured on the H200: python calibration/h200/measure_vllm_moe.py; "
            f"assumption: the same tuned/default efficiencies on this GPU{caveat})")


def cpu_sources(async_engine: bool, release: str, vllm_tp: int) -> dict:
    """Sources of engine.cpu_s_per_seq and engine.async_scheduling, as engine_defaults sets them."""
    mode = "AsyncLLM, engine core in its own process" if async_engine else "LLM class in the worker's process"
    if vllm_async_scheduling(release, vllm_tp):
        sched = "on: single-GPU engine on vLLM's 'uni' executor, vLLM >= 0.14"
    else:
        sched = "off: " + ("vLLM < 0.14" if release in SYNC_SCHEDULING_RELEASES
                           else "TP > 1 runs on vLLM's Ray executor")
    version = VLLM_VERSION.get(release)
    carried = "" if version is None else (
        f", times {vllm_cpu_ratio(async_engine, release):.3f}: vLLM {version}'s slope over {VLLM_REFERENCE}'s in "
        f"this mode, measured in one session with the runs interleaved ({VLLM_AB}, same script; the three rounds' "
        f"ratios spread about +-20%, calibration/vllm_cpu/README.md){VLLM_VERSION_NOTE.get(release, '')}")
    return {"engine.cpu_s_per_seq": (
                f"MEASURED ({VLLM_CPU}, python calibration/vllm_cpu/measure_vllm_cpu.py): vLLM 0.17.1's engine on "
                f"a stand-in GPU ({mode}); slope of the exposed CPU time over 16-512 sequences without async "
                f"scheduling ({NOTES} sec. 5b){carried}. Assumption: the published runs' hosts run Python at the "
                "measuring host's speed in the session of that measurement (calibration/vllm_cpu/README.md: the device "
                "H200 host's Xeon within 1% then; the measuring host itself measured 1.6-1.8x slower in a later one)"),
            "engine.async_scheduling": f"{VLLM_OF[release]}: {sched} ({NOTES} sec. 5b)"}


_FIT_CMD = f"rlsim fit spec-overhead {TPOT} --hardware h100 --model llama-3.1-8b --drafter eagle3"

SOURCES_COMMON = {
    "engine.max_num_seqs": f"vLLM default for the engine class NeMo-RL builds ({NOTES} sec. 5: LLM class 1024, "
                           "AsyncLLM 128)",
    "engine.max_num_batched_tokens": f"vLLM default for that engine class ({NOTES} sec. 5: 16384 / 2048)",
    "engine.cuda_graph_max_batch": f"vLLM's largest CUDA-graph capture size, min(2 x max_num_seqs, 512) ({NOTES} sec. 5)",
    "engine.step_overhead_s": f"FITTED ({_FIT_CMD}): measured vLLM V1 batch-1 TPOT of Llama-3.1-8B on H100 minus the "
                              "kernel model's step; assumption: the same CPU cost per step at any batch and host",
    "engine.spec_iteration_overhead_s": f"FITTED ({_FIT_CMD}): vLLM V1 EAGLE-3 path, seconds per speculative iteration "
                                        "beyond the kernels (fit within 2.1% of the 6 measured TPOTs); assumption: "
                                        "the same at any batch, host and vLLM version",
    "engine.draft_step_overhead_s": f"FITTED ({_FIT_CMD}): vLLM V1 EAGLE-3 path, seconds per draft step beyond the "
                                    "kernels; assumption as spec_iteration_overhead_s",
    "rollout.response_tokens.sigma": "assumption: lognormal sigma 0.8 of the response length (RL responses are "
                                     "long-tailed; no published distribution)",
    "rollout.group_correlation": "assumption: 0.5 on the latent log length within a GRPO group (samples of one prompt "
                                 "have similar lengths: Seer, arXiv 2511.14617, builds its scheduler on that; no "
                                 "published figure for these runs)",
    "reward.s_per_sample": "assumption: 5 ms of math verification per sample on NeMo-RL's 8 CPU workers, the "
                           "wrong-answer end of what NeMo-RL's HFVerifyWorker call measured on synthetic responses "
                           "(0.8-1.7 ms right, 3.6-5.6 ms wrong: calibration/reward/math_verify.csv, python "
                           "calibration/reward/measure_math_verify.py)",
    "reward.per_sample": "NeMo-RL scores a sample inside its rollout, so the reward is in the generation timer: "
                         "the AsyncLLM path (async GRPO, async_engine) per sample as it finishes "
                         "(run_async_multi_turn_rollout), the vllm.LLM path the whole batch after generation "
                         "(run_multi_turn_rollout) (nemo_rl/experience/rollouts.py, nemo_rl/algorithms/grpo.py)",
    "training.grad_sync_exposed": "assumption: 20% of the gradient reduce-scatter + parameter all-gather not hidden "
                                  "by Megatron's overlap_grad_reduce / overlap_param_gather",
    "pipeline.refit_network_efficiency": "assumption: the NCCL weight broadcast reaches 80% of the link (used only "
                                         "where pipeline.refit_broadcast_bytes_per_s is not set)",
    "pipeline.offload_optimizer_bytes_per_param": "the default 10 bytes per parameter of the optimizer shard: NeMo-RL "
                                                  "issue #3976 measured 4.94 GB for Qwen2.5-0.5B's 494M parameters "
                                                  f"({NOTES} sec. 4b; colocated runs only), moved at the hardware "
                                                  "profile's measured host-copy rates (efficiency.host_copy)",
}


REFIT_REPORTS = "workloads/published/nemo_rl_refit_reports.csv"
REFIT_COPY = "calibration/h200/measured/refit_copy.csv"


@lru_cache(maxsize=1)
def refit_copy_constants() -> dict:
    """pipeline.refit_ipc_efficiency and refit_copy_overhead_s measured on the H200 (colocated refit copies), fitted
    once per build (callers spread the dict into their own)."""
    rows = pd.read_csv(ROOT / REFIT_COPY).to_dict("records")
    eff, per_copy = fit_refit_copy(rows, load_hardware("h200").hbm_bandwidth)
    return {"refit_ipc_efficiency": round(eff, 3), "refit_copy_overhead_s": float(f"{per_copy:.3g}")}


REFIT_COPY_SOURCES = {
    "pipeline.refit_ipc_efficiency": f"MEASURED ({REFIT_COPY}, python calibration/h200/measured/measure_refit_copy.py "
                                     "refit_copy.csv on the device tool's H200): NeMo-RL's IPC pack + load copies of "
                                     "Qwen3-8B's tensors reach this share of the HBM bandwidth (fitted by "
                                     "simulator/fit/refit.py, held-out cases in tests/test_refit.py); assumption: the "
                                     "same share on other GPUs",
    "pipeline.refit_copy_overhead_s": f"MEASURED ({REFIT_COPY}, same command): host seconds per tensor copy when "
                                      "Qwen3-30B-A3B's thousands of expert tensors leave the GPU waiting; assumption: "
                                      "the published runs' hosts launch as fast as the H200 host",
}
SOURCES_COMMON.update(REFIT_COPY_SOURCES)
SOURCES_COMMON["engine.all_reduce"] = (
    "vLLM's default dispatch of the TP all-reduce (custom all-reduce, then PyTorch symmetric memory, then NCCL; "
    "simulator/costmodel/vllm_all_reduce.py): NeMo-RL sets neither disable_custom_all_reduce nor "
    "VLLM_ALLREDUCE_USE_SYMM_MEM (nemo_rl/models/generation/vllm/vllm_worker.py, NVIDIA-NeMo/RL @00f334e3; "
    "calibration/collectives/README.md). Assumption: symmetric memory on, as vLLM 0.11.0 and 0.18.0 ship it (main "
    "had it off for about three weeks from 2025-10-15); it changes only TP 6/8 groups, none of them in a v0.5 run")


@lru_cache(maxsize=None)
def refit_broadcast_rate(overhead_s: float) -> tuple[float, str]:
    """pipeline.refit_broadcast_bytes_per_s fitted on NeMo-RL PR #1379's Qwen3-235B refit, and its source (fitted
    once per overhead)."""
    rep = pd.read_csv(ROOT / REFIT_REPORTS, comment="#")
    row = rep[(rep["model"] == "qwen3-235b-a22b") & (rep["code"] == "after")].iloc[0]
    rate = fit_refit_broadcast_rate(load_model(row["model"]).total_params(), float(row["seconds"]), overhead_s)
    return float(f"{rate:.4g}"), (
        f"FITTED (simulator/fit/refit.py) on {REFIT_REPORTS}: NeMo-RL PR #1379's {row['seconds']} s non-colocated "
        f"refit of Qwen3-235B-A22B (the whole bf16 model broadcast to every vLLM worker) minus the {overhead_s} s "
        "refit overhead; checked on the same PR's DeepSeek-V3 refit (tests/test_refit.py). Assumption: the PR's "
        "cluster (not stated) has this run's network")


def lognormal_median_for_mean(mean: float, sigma: float, cap: float) -> float:
    """Median of a lognormal whose mean after truncation at `cap` is `mean` (tokens)."""
    def trunc_mean(mu):
        a = (math.log(cap) - mu - sigma ** 2) / sigma
        b = (math.log(cap) - mu) / sigma
        return math.exp(mu + sigma ** 2 / 2) * ndtr(a) + cap * (1 - ndtr(b))
    mu = brentq(lambda m: trunc_mean(m) - mean, math.log(1.0), math.log(cap) + 6 * sigma)
    return math.exp(mu)


ROUTING_SOURCE = {
    "blocked": "NeMo-RL's synchronous vLLM generate hands each engine a contiguous block of the batch, so whole prompt "
               "groups (VllmGeneration.generate -> BatchedDataDict.shard_by_batch_size(dp_size, allow_uneven_shards=True), "
               "nemo_rl/models/generation/vllm/vllm_generation.py in xiuhu17/RL @09a056cf; workloads/published/"
               "nemo_rl_recipes.md sec. 5c)",
    "round_robin": "NeMo-RL's AsyncLLM path makes one generate_async call per sample (run_async_multi_turn_rollout, in "
                   "synchronous GRPO and in the async trajectory collector alike) and sends each call to the next "
                   "engine in turn (current_generate_dp_shard_idx, nemo_rl/models/generation/vllm/vllm_generation.py in "
                   "xiuhu17/RL @09a056cf; workloads/published/nemo_rl_recipes.md sec. 5c); each vLLM engine queues what "
                   "it cannot run yet",
}


def routing(asynchronous: bool, async_engine: bool) -> str:
    """How NeMo-RL hands the rollout to the engines: the vllm.LLM path in blocks, the AsyncLLM path (every async
    GRPO run, and synchronous runs with async_engine) sample by sample in turn."""
    return "round_robin" if (asynchronous or async_engine) else "blocked"


def engine_defaults(async_engine: bool, release: str, vllm_tp: int) -> dict:
    seqs, tokens = (128, 2048) if async_engine else (1024, 16384)
    return {"max_num_seqs": seqs, "max_num_batched_tokens": tokens, "cuda_graph_max_batch": min(2 * seqs, 512),
            **VLLM_OVERHEADS, "cpu_s_per_seq": cpu_s_per_seq(async_engine, release),
            "async_scheduling": vllm_async_scheduling(release, vllm_tp), "all_reduce": "vllm"}


def write(name: str, data: dict, header: str) -> None:
    text = "".join(f"# {line}\n" for line in header.strip().splitlines())
    text += yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=120)
    Scenario.from_dict(data, source=name)  # validates
    write_text_atomic(OUT / name, text)
    print("wrote", name)


def summary(data: dict, sets: dict | None = None, steps: int | None = None) -> dict:
    d = yaml.safe_load(yaml.safe_dump(data))
    for k, v in (sets or {}).items():
        node = d
        parts = k.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = v
    return run_pipeline(Scenario.from_dict(d).with_base_dir(OUT), steps=steps).summary()


def bisect(f, lo, hi, target, iters=24, increasing=True):
    """x in [lo, hi] (geometric) with f(x) = target, f monotone."""
    for _ in range(iters):
        mid = math.sqrt(lo * hi)
        below = f(mid) < target
        lo, hi = (mid, hi) if below == increasing else (lo, mid)
    return math.sqrt(lo * hi)


def solve_efficiency(d: dict, key: str, timer: str, target_s: float) -> float:
    """The efficiency e in (0, 1] with timer(e) = target_s, where timer(e) = compute / e + fixed (two runs give
    both)."""
    t1 = summary(d, {key: 1.0})[timer]
    t2 = summary(d, {key: 0.5})[timer]
    compute, fixed = t2 - t1, 2 * t1 - t2
    return min(1.0, compute / max(target_s - fixed, 1e-9))


# --------------------------------------------------------------------------------------------- paper (8B)
def paper_base(workload: str) -> dict:
    return {
        "name": f"qwen3-8b-rl-{workload}-gb200x32",
        "description": f"Qwen3-8B GRPO RL-{workload.capitalize()} (DAPO-Math-17K) on 32 GB200 (8 nodes x 4), "
                       "synchronous colocated NeMo-RL (vLLM + Megatron); autoregressive unless speculation is set",
        "model": "qwen3-8b",
        "cluster": {"hardware": "gb200", "gpus": 32},
        "engine": {"tensor_parallel_size": 1, "dtype": "bf16", "gpu_memory_utilization": 0.6,
                   **engine_defaults(False, "paper", 1), "routing": "blocked"},
        "rollout": {"prompts": 512, "samples_per_prompt": 16, "max_response_tokens": 16384,
                    "prompt_tokens": {"kind": "lognormal", "median": 180, "sigma": 0.4, "min": 32},
                    "response_tokens": {"kind": "lognormal", "median": 2000.0, "sigma": SIGMA},
                    "group_correlation": 0.5},
        "speculative": {"method": "none", "num_tokens": 3,
                        "profile": f"workloads/acceptance/paper-qwen3-8b-eagle3-rl-{workload}.yaml"},
        "pipeline": {**refit_copy_constants(), "mode": "sync", "colocated": True, "steps": 2, "data_s": 0.3,
                     "refit_overhead_s": 2.0},
        "training": {"tensor_parallel_size": 1, "global_batch_size": 512, "micro_batch_tokens": 16384,
                     "logprob_micro_batch_tokens": 16384, "activation_recompute": "full", "reference_logprobs": True,
                     "framework_efficiency": 1.0, "logprob_framework_efficiency": 1.0},
        "reward": {"s_per_sample": 0.005, "workers": 8, "per_sample": False},
        "seed": 0,
    }


def paper_sources(workload: str, row: pd.Series, fitted: dict) -> dict:
    s = dict(SOURCES_COMMON)
    s.update({
        "model": f"{PAPER}: Qwen3-8B (RL-Think) / Qwen3-8B-Base (RL-Zero); same architecture",
        "cluster.gpus": f"{PAPER}: 32 GB200 GPUs (8 nodes x 4)",
        "cluster.hardware": "hardware_profiles/gb200.yaml",
        "engine.tensor_parallel_size": f"NeMo-RL default vLLM TP 1 ({NOTES} sec. 2); 16 GB of Qwen3-8B fits one GB200",
        **cpu_sources(False, "paper", 1),
        "engine.routing": ROUTING_SOURCE["blocked"],
        "engine.gpu_memory_utilization": f"NeMo-RL base config 0.6 for colocated generation ({NOTES} sec. 2)",
        "engine.dtype": "assumption: bf16 generation (NeMo-RL default precision)",
        "rollout.prompts": "assumption: DAPO's 512 prompts per step (DAPO paper sec. 4; the publication is silent)",
        "rollout.samples_per_prompt": "assumption: DAPO's 16 samples per prompt",
        "rollout.max_response_tokens": "assumption: 16384 new tokens (DAPO uses 16K + 4K overlong buffer)",
        "rollout.prompt_tokens": "assumption: DAPO-Math-17K problems with the chat template, median 180 tokens",
        "rollout.response_tokens.median": fitted["median"],
        **({"rollout.response_tokens.sigma": fitted["sigma"]} if "sigma" in fitted else {}),
        "speculative.num_tokens": f"{PAPER}: k=3",
        "speculative.profile": f"workloads/acceptance/paper-qwen3-8b-eagle3-rl-{workload}.yaml (tau {row['acceptance_length']} at k=3)",
        "pipeline.mode": f"{PAPER}: synchronous RL",
        "pipeline.colocated": f"NeMo-RL default: colocated generation ({NOTES} sec. 2)",
        "pipeline.data_s": f"{PAPER}: data_s {row['data_s']} (autoregressive row)",
        "pipeline.refit_overhead_s": fitted["refit"],
        "training.tensor_parallel_size": "NeMo-RL / Megatron default TP 1 (8B trains on one GB200 per rank)",
        "training.global_batch_size": f"NeMo-RL default train_global_batch_size 512 ({NOTES} sec. 2)",
        "training.micro_batch_tokens": "assumption: sequence packing into 16K-token micro-batches (one max-length sample)",
        "training.activation_recompute": "assumption: activation checkpointing on, as NeMo-RL's 8B recipes",
        "training.reference_logprobs": f"NeMo-RL's KL penalty to the reference policy: two logprob passes ({NOTES} sec. 2)",
        "training.framework_efficiency": fitted["train"],
        "training.logprob_framework_efficiency": fitted["logprob"],
    })
    return s


def build_paper() -> dict:
    paper = pd.read_csv(ROOT / PAPER, comment="#")
    think = paper[(paper.workload == "rl-think") & (paper.method == "autoregressive")].iloc[0]
    zero = paper[(paper.workload == "rl-zero") & (paper.method == "autoregressive")].iloc[0]
    d = paper_base("think")
    # 1. the response-length median that gives the autoregressive generation time (every fit here is on the mean of
    #    the scenario's simulated steps, as rlsim validate reads them)
    med = bisect(lambda x: summary(d, {"rollout.response_tokens.median": x})["generation"], 200, 20000,
                 float(think["generation_s"]))
    d["rollout"]["response_tokens"]["median"] = round(med, 1)
    # 2. framework efficiencies: the fraction of the kernel model's compute speed that gives the published stage time
    #    (the stage is compute / efficiency + fixed parts such as the state onload; the kernel model is the upper
    #    bound of speed, so at most 1)
    fe = solve_efficiency(d, "training.framework_efficiency", "policy_training", float(think["train_s"]))
    le = solve_efficiency(d, "training.logprob_framework_efficiency", "policy_and_reference_logprobs",
                          float(think["logprob_s"]))
    d["training"]["framework_efficiency"] = round(fe, 4)
    d["training"]["logprob_framework_efficiency"] = round(le, 4)
    # 3. refit overhead: the published prepare time minus what the model's weight copy and offload take
    s0 = summary(d, {"pipeline.refit_overhead_s": 0.0})
    refit = max(0.0, float(think["prepare_s"]) - s0["weight_sync"])
    d["pipeline"]["refit_overhead_s"] = round(refit, 3)
    fitted = {
        "median": f"FITTED by workloads/scenarios/build_published.py: the median that makes the autoregressive "
                  f"generation {think['generation_s']} s ({PAPER}, rl-think autoregressive)",
        "train": f"FITTED: the kernel model's training time / the published train_s {think['train_s']} s (rl-think "
                 "autoregressive): what Megatron in NeMo-RL loses to the kernel model (kernel gaps, imbalance, "
                 "data loading)",
        "logprob": f"FITTED: the same for the logprob passes (logprob_s {think['logprob_s']} s)",
        "refit": f"FITTED: prepare_s {think['prepare_s']} s (rl-think autoregressive) minus the modelled CUDA-IPC "
                 "weight copy and optimizer offload",
    }
    d["sources"] = paper_sources("think", think, fitted)
    write("qwen3-8b-rl-think-gb200x32.yaml", d, __doc_think__(think))
    framework = {"train": d["training"]["framework_efficiency"],
                 "logprob": d["training"]["logprob_framework_efficiency"], "refit": refit}
    z = paper_base("zero")
    z["training"]["framework_efficiency"] = framework["train"]
    z["training"]["logprob_framework_efficiency"] = framework["logprob"]
    z["pipeline"]["refit_overhead_s"] = round(refit, 3)
    z["pipeline"]["data_s"] = float(zero["data_s"])
    medz, sigz = fit_zero_lengths(z, zero)
    z["rollout"]["response_tokens"].update(median=round(medz, 1), sigma=round(sigz, 3))
    fz = dict(fitted)
    fz["median"] = (f"FITTED by workloads/scenarios/build_published.py: with RL-Think's training efficiency, the mean "
                    f"generated length that makes the autoregressive training {zero['train_s']} s ({PAPER}, rl-zero; "
                    f"RL-Think's is {think['train_s']} s and its logprobs {think['logprob_s']} vs "
                    f"{zero['logprob_s']} s, so both runs train on about as many tokens), at the fitted sigma")
    fz["sigma"] = (f"FITTED by workloads/scenarios/build_published.py: at that mean, the spread that makes the "
                   f"autoregressive generation {zero['generation_s']} s ({PAPER}, rl-zero; RL-Think's "
                   f"{think['generation_s']} s for as many tokens needs a longer tail: its sigma {SIGMA} is the "
                   f"assumption); held out: the logprob time {zero['logprob_s']} s and the EAGLE-3 row")
    for k in ("train", "logprob", "refit"):
        fz[k] = "from qwen3-8b-rl-think-gb200x32.yaml (fitted on RL-Think's autoregressive row; the same system)"
    z["sources"] = paper_sources("zero", zero, fz)
    write("qwen3-8b-rl-zero-gb200x32.yaml", z, __doc_think__(zero))
    return framework


def fit_zero_lengths(z: dict, zero: pd.Series) -> tuple[float, float]:
    """(median, sigma) of RL-Zero's lognormal response length (tokens): the mean length that gives the published
    autoregressive training time with RL-Think's efficiency, and the sigma that gives the generation time at that
    mean; two rounds, as the training time moves a little with sigma (attention)."""
    cap = z["rollout"]["max_response_tokens"]

    def at(mean, sigma):
        return {"rollout.response_tokens.median": lognormal_median_for_mean(mean, sigma, cap),
                "rollout.response_tokens.sigma": sigma}

    mean, sigma = 1000.0, SIGMA
    for _ in range(2):
        mean = bisect(lambda m: summary(z, at(m, sigma))["policy_training"], 100, 10000,
                      float(zero["train_s"]), iters=18)
        sigma = bisect(lambda x: summary(z, at(mean, x))["generation"], 0.05, 2.0,
                       float(zero["generation_s"]), iters=16)
    return lognormal_median_for_mean(mean, sigma, cap), sigma


def __doc_think__(row) -> str:
    return (f"Qwen3-8B GRPO {row['workload']} of the speculative-decoding-in-RL paper (arXiv 2604.26779) on 32 GB200:\n"
            "synchronous, colocated, vLLM generation, Megatron training; autoregressive unless\n"
            "--set speculative.method=eagle3 (k=3 with the paper's acceptance length).\n"
            "Written by workloads/scenarios/build_published.py; fitted on the AUTOREGRESSIVE row only (see sources);\n"
            "the EAGLE-3 row is a held-out prediction (rlsim validate).")


# --------------------------------------------------------------------------------------------- NeMo-RL rows
# one entry per published row: (system, model, policy, precision, gpus) -> recipe facts (NOTES sec. 3)
RECIPES = {
    ("H100", "Llama-3.1-8B-Instruct", "on", "bf16", 16): dict(
        sec="3.1", model="llama-3.1-8b", prompts=64, gens=32, seq=4096, vtp=1, mem=0.6, async_engine=False,
        ttp=1, tpp=2, tcp=1, tep=1, ac=True, mb=4096, lmb=8192),
    ("H100", "Llama-3.1-8B-Instruct", "1-off", "bf16", 16): dict(
        sec="3.2", model="llama-3.1-8b", prompts=64, gens=32, seq=4096, vtp=1, mem=0.8, async_engine=True,
        gen_gpus=8, ttp=1, tpp=1, tcp=1, tep=1, ac=True, mb=4096, lmb=8192),
    ("H100", "Llama-3.1-8B-Instruct", "1-off", "fp8", 16): dict(
        sec="3.3", model="llama-3.1-8b", prompts=64, gens=32, seq=4096, vtp=1, mem=0.8, async_engine=True,
        gen_gpus=8, ttp=1, tpp=1, tcp=1, tep=1, ac=True, mb=4096, lmb=8192, gen_dtype="fp8", train_dtype="fp8"),
    ("H100", "Qwen3-32B", "on", "bf16", 32): dict(
        sec="3.4", model="qwen3-32b", prompts=64, gens=32, seq=4096, vtp=4, mem=0.6, async_engine=False,
        ttp=4, tpp=4, tcp=1, tep=1, ac=False, mb=4096, lmb=16384),
    ("H100", "Qwen3-32B", "1-off", "bf16", 64): dict(
        sec="3.5", model="qwen3-32b", prompts=64, gens=32, seq=4096, vtp=4, mem=0.8, async_engine=True,
        gen_gpus=32, ttp=4, tpp=4, tcp=1, tep=1, ac=False, mb=4096, lmb=16384),
    ("GB200", "Llama-3.1-8B-Instruct", "on", "bf16", 8): dict(
        sec="3.6", model="llama-3.1-8b", prompts=64, gens=32, seq=4096, vtp=1, mem=0.6, async_engine=False,
        ttp=1, tpp=1, tcp=1, tep=1, ac=True, mb=4096, lmb=8192),
    ("GB200", "Llama-3.1-8B-Instruct", "1-off", "bf16", 8): dict(
        sec="3.7", model="llama-3.1-8b", prompts=64, gens=32, seq=4096, vtp=1, mem=0.8, async_engine=True,
        gen_gpus=4, ttp=1, tpp=1, tcp=1, tep=1, ac=True, mb=4096, lmb=8192),
    ("H100", "Qwen3-235B-A22B", "on", "bf16", 128): dict(
        sec="3.8", model="qwen3-235b-a22b", prompts=16, gens=32, seq=8192, vtp=16, mem=0.6, async_engine=True,
        ttp=2, tpp=8, tcp=2, tep=16, ac=True, mb=8192, lmb=8192),
    ("H100", "Qwen3-235B-A22B", "on", "bf16", 256): dict(
        sec="3.9", model="qwen3-235b-a22b", prompts=16, gens=32, seq=8192, vtp=16, mem=0.6, async_engine=True,
        ttp=2, tpp=8, tcp=2, tep=16, ac=True, mb=8192, lmb=8192),
    ("H100", "Qwen3-235B-A22B", "1-off", "bf16", 256): dict(
        sec="3.10", model="qwen3-235b-a22b", prompts=16, gens=32, seq=8192, vtp=8, mem=0.8, async_engine=True,
        gen_gpus=128, ttp=4, tpp=8, tcp=1, tep=16, ac=True, mb=8192, lmb=8192),
    ("H100", "Qwen3-30B-A3B", "on", "bf16", 32): dict(
        sec="3.11", model="qwen3-30b-a3b", prompts=64, gens=32, seq=4096, vtp=2, mem=0.6, async_engine=False,
        ttp=1, tpp=1, tcp=1, tep=8, ac=False, mb=4096, lmb=16384),
    ("H100", "Qwen3-30B-A3B", "1-off", "bf16", 32): dict(
        sec="3.12", model="qwen3-30b-a3b", prompts=64, gens=32, seq=4096, vtp=2, mem=0.8, async_engine=True,
        gen_gpus=16, ttp=1, tpp=2, tcp=1, tep=8, ac=False, mb=4096, lmb=16384),
    ("H100", "Qwen3-30B-A3B", "8-off", "bf16", 192): dict(
        sec="3.13", model="qwen3-30b-a3b", prompts=64, gens=32, seq=4096, vtp=2, mem=0.8, async_engine=True,
        gen_gpus=64, ttp=1, tpp=1, tcp=1, tep=8, ac=False, mb=4096, lmb=16384, staleness=8),
    ("GB200", "Qwen3-235B-A22B", "on", "bf16", 64): dict(
        sec="3.14", model="qwen3-235b-a22b", prompts=16, gens=32, seq=8192, vtp=8, mem=0.4, async_engine=True,
        ttp=2, tpp=4, tcp=2, tep=16, ac=True, mb=8192, lmb=8192),
    ("GB200", "Qwen3-235B-A22B", "1-off", "bf16", 128): dict(
        sec="3.15", model="qwen3-235b-a22b", prompts=16, gens=32, seq=8192, vtp=8, mem=0.8, async_engine=True,
        gen_gpus=64, ttp=4, tpp=4, tcp=1, tep=16, ac=True, mb=8192, lmb=8192),
    ("GB200", "Qwen3-30B-A3B", "on", "bf16", 16): dict(
        sec="3.16", model="qwen3-30b-a3b", prompts=64, gens=32, seq=4096, vtp=1, mem=0.6, async_engine=False,
        ttp=1, tpp=1, tcp=1, tep=16, ac=False, mb=4096, lmb=8192),
    ("GB200", "Qwen3-30B-A3B", "1-off", "bf16", 16): dict(
        sec="3.17", model="qwen3-30b-a3b", prompts=64, gens=32, seq=4096, vtp=1, mem=0.8, async_engine=True,
        gen_gpus=8, ttp=1, tpp=1, tcp=1, tep=8, ac=False, mb=4096, lmb=8192),
}
# training precision: the page's own precision line where it names one, else the recipe's megatron_cfg
TRAIN_DTYPE_SOURCE = {
    "bf16": ("{recipe}: bf16; no recipe here enables megatron_cfg.fp8_cfg (the base config's 'enabled false', "
             f"{NOTES} sec. 2)"),
    "fp8": (f"the published page's precision line for this table, 'Generation FP8, Training FP8' ({NOTES} sec. 1); "
            "the one stored recipe file (sec. 3.3) does not enable megatron_cfg.fp8_cfg, but the page describes the "
            "run that was measured"),
}
# the 70B base model is prompted through the Llama-3.3-70B-Instruct tokenizer's chat template, as the 8B (sec. 3.18)
PROMPT_MEDIAN = {"llama-3.1-8b": 130, "llama-3.1-70b": 130, "qwen3-32b": 110, "qwen3-30b-a3b": 110,
                 "qwen3-235b-a22b": 110}


def nemo_name(system, model, policy, precision, gpus) -> str:
    short = {"Llama-3.1-8B-Instruct": "llama-3.1-8b", "Qwen3-32B": "qwen3-32b", "Qwen3-30B-A3B": "qwen3-30b-a3b",
             "Qwen3-235B-A22B": "qwen3-235b-a22b"}[model]
    return f"nemo-rl-{short}-{system.lower()}x{gpus}-{policy}{'-fp8' if precision == 'fp8' else ''}.yaml"


def recipe_scenario(key: tuple, rc: dict, release: str, table: str, mean: tuple) -> dict:
    """The scenario of one published NeMo-RL run: `key` (system, model, policy, precision, gpus), its recipe facts
    `rc` (NOTES sec. 3, plus the fitted `framework` constants and the scenario's `name`), the NeMo-RL release that
    ran it, the published file its own figures come from, and its published mean generated length as (tokens,
    source, the column's name, a note on reading it)."""
    mean_seq, mean_src, mean_label, mean_note = mean
    system, model, policy, precision, gpus = key
    prompt = PROMPT_MEDIAN[rc["model"]]
    cap = rc["seq"] - prompt
    med = lognormal_median_for_mean(float(mean_seq), SIGMA, cap)
    asyn = policy != "on"
    gen_gpus = rc.get("gen_gpus")
    route = routing(asyn, rc["async_engine"])
    data = {
        "name": rc["name"],
        "description": f"NeMo-RL {release} GRPO: {model} on {gpus} {system}, "
                       f"{'synchronous on-policy' if not asyn else policy + ' asynchronous'}, {precision}",
        "model": rc["model"],
        "cluster": {"hardware": system.lower(), "gpus": int(gpus)},
        "engine": {"tensor_parallel_size": rc["vtp"], "dtype": rc.get("gen_dtype", "bf16"),
                   "gpu_memory_utilization": rc["mem"],
                   **engine_defaults(rc["async_engine"], release, rc["vtp"]),
                   "routing": route},
        "rollout": {"prompts": rc["prompts"], "samples_per_prompt": rc["gens"], "max_response_tokens": cap,
                    "prompt_tokens": {"kind": "lognormal", "median": prompt, "sigma": 0.3, "min": 16},
                    "response_tokens": {"kind": "lognormal", "median": round(med, 1), "sigma": SIGMA},
                    "group_correlation": 0.5, "mean_response_tokens": float(mean_seq)},
        "pipeline": {**refit_copy_constants(), "mode": "async" if asyn else "sync", "colocated": not asyn,
                     "steps": 12 if rc.get("staleness", 1) > 1 else (6 if asyn else 2),
                     "data_s": 0.3, "refit_overhead_s": round(rc["framework"]["refit"], 3)},
        "training": {"tensor_parallel_size": rc["ttp"], "pipeline_parallel_size": rc["tpp"],
                     "context_parallel_size": rc["tcp"], "expert_parallel_size": rc["tep"],
                     "dtype": rc.get("train_dtype", "bf16"),
                     "global_batch_size": 512, "micro_batch_tokens": rc["mb"],
                     "logprob_micro_batch_tokens": rc["lmb"],
                     "activation_recompute": "full" if rc["ac"] else "none", "reference_logprobs": True,
                     "framework_efficiency": rc["framework"]["train"],
                     "logprob_framework_efficiency": rc["framework"]["logprob"]},
        "reward": {"s_per_sample": 0.005, "workers": 8, "per_sample": asyn or rc["async_engine"]},
        "seed": 0,
    }
    if asyn:
        rate, rate_src = refit_broadcast_rate(round(rc["framework"]["refit"], 3))
        data["pipeline"].update({"max_staleness": rc.get("staleness", 1), "in_flight_weight_updates": True,
                                 "generation_gpus": gen_gpus,
                                 "cosim_engines": gen_gpus // rc["vtp"], "refit_broadcast_bytes_per_s": rate})
    moe_src = {}
    if load_model(rc["model"]).is_moe:
        if release == "v0.5":
            raise SystemExit(f"{key}: MoE under vLLM 0.11.2 has no config listing here ({MOE_CONFIGS} is 0.17.1)")
        data["engine"]["moe_kernel"], moe_src["engine.moe_kernel"] = vllm_moe_kernel(
            system.lower(), rc["model"], rc["vtp"], rc.get("gen_dtype", "bf16"))
        if release in MOE_CONFIG_CAVEAT:
            moe_src["engine.moe_kernel"] += MOE_CONFIG_CAVEAT[release]
    src = dict(SOURCES_COMMON)
    src.update(moe_src)
    recipe = f"{NOTES} sec. {rc['sec']}"
    src.update({
        "model": f"{table}: {model}", "cluster.gpus": f"{table}: {gpus} GPUs ({system})",
        "cluster.hardware": rc.get("hardware_source", f"hardware_profiles/{system.lower()}.yaml"),
        "engine.tensor_parallel_size": f"{recipe}: vLLM TP {rc['vtp']}",
        **cpu_sources(rc["async_engine"], release, rc["vtp"]),
        "engine.gpu_memory_utilization": f"{recipe}: gpu_memory_utilization {rc['mem']}",
        "engine.dtype": f"{recipe}: generation precision {rc.get('gen_dtype', 'bf16')}",
        "engine.routing": ROUTING_SOURCE[route],
        "rollout.prompts": f"{recipe}: num_prompts_per_step {rc['prompts']}",
        "rollout.samples_per_prompt": f"{recipe}: num_generations_per_prompt {rc['gens']}",
        "rollout.max_response_tokens": f"{recipe}: max_total_sequence_length {rc['seq']} minus the prompt",
        "rollout.prompt_tokens": f"inferred in {NOTES} sec. 1 from the published tokens/s/GPU: prompts of "
                                 f"~{prompt} tokens (OpenMathInstruct-2 + cot.txt + chat template)",
        "rollout.response_tokens.median": f"solved so that the mean generated length after the {cap}-token cap is "
                                          f"the published {mean_seq} ({mean_src}{mean_note})",
        "rollout.mean_response_tokens": f"{mean_src}: {mean_label} {mean_seq}, the mean of the very steps the "
                                        "step time averages, so every simulated batch is scaled to it (the "
                                        "distribution sets only the shape; a free draw of 64 groups falls 2-8% off "
                                        "it)",
        "pipeline.mode": f"{table}: policy {policy}", "pipeline.colocated": f"{recipe}",
        "pipeline.steps": "enough RL steps for a steady state (async: staleness + 1 warm-up steps left out)",
        "pipeline.data_s": f"{PAPER}: data_s 0.3 (the same NeMo-RL data path)",
        "pipeline.refit_overhead_s": "from qwen3-8b-rl-think-gb200x32.yaml (fitted on the paper's prepare_s)",
        "training.tensor_parallel_size": f"{recipe}", "training.pipeline_parallel_size": f"{recipe}",
        "training.context_parallel_size": f"{recipe}", "training.expert_parallel_size": f"{recipe}",
        "training.dtype": TRAIN_DTYPE_SOURCE[rc.get("train_dtype", "bf16")].format(recipe=recipe),
        "training.global_batch_size": f"{recipe}: train_global_batch_size 512",
        "training.micro_batch_tokens": f"{recipe}: train_mb_tokens = max_total_sequence_length x micro batch",
        "training.logprob_micro_batch_tokens": f"{recipe}: logprob_mb_tokens",
        "training.activation_recompute": f"{recipe}: activation_checkpointing {rc['ac']}",
        "training.reference_logprobs": f"{NOTES} sec. 2: reference KL on, two logprob passes",
        "training.framework_efficiency": "from qwen3-8b-rl-think-gb200x32.yaml (fitted on the paper's train_s)",
        "training.logprob_framework_efficiency": "from qwen3-8b-rl-think-gb200x32.yaml (fitted on the paper)",
    })
    if asyn:
        src.update({"pipeline.max_staleness": f"{recipe}: max_trajectory_age_steps {rc.get('staleness', 1)}",
                    "pipeline.in_flight_weight_updates": f"{recipe}: in_flight_weight_updates true",
                    "pipeline.generation_gpus": f"{recipe}: generation resources {gen_gpus} GPUs",
                    "pipeline.cosim_engines": "every engine of the generation pool (generation GPUs / vLLM TP): "
                                              "validation co-simulates the whole pool",
                    "pipeline.refit_broadcast_bytes_per_s": rate_src})
    data["sources"] = src
    return data


def build_nemo(framework: dict) -> None:
    """Writes the scenarios of every summary row; fits framework["moe"] (training.moe_layer_overhead_s) and its
    source line, framework["moe_source"], on the way (build_235b and build_v03 reuse both)."""
    rows = pd.read_csv(ROOT / SUMMARY, comment="#")
    built = []
    for r in rows.itertuples():
        key = (r.system, r.model, r.policy, r.precision, int(r.gpus))
        mean_seq, mean_src = EXACT_MEAN_SEQ.get(key, (r.mean_seq_len, SUMMARY))
        rc = {**RECIPES[key], "framework": framework, "name": nemo_name(*key).removesuffix(".yaml")}
        data = recipe_scenario(key, rc, r.release, SUMMARY,
                               (mean_seq, mean_src, "'G-Average Seq len'",
                                f"; 'G-Average Seq len' read as the generated length, {NOTES} sec. 1"))
        header = (f"NeMo-RL {r.release} published run: {r.system} {r.model} {r.policy} {r.precision} on {r.gpus} GPUs\n"
                  f"({SUMMARY}: step {r.step_s} s, {r.tokens_per_s_per_gpu} tokens/s/GPU, mean sequence {r.mean_seq_len}).\n"
                  "Written by workloads/scenarios/build_published.py from the recipe; nothing here is fitted to this row\n"
                  "(rlsim validate compares the prediction with the published step time).")
        built.append((key, data, header))
    framework["moe"], framework["moe_source"] = fit_moe_overhead(next(d for k, d, _ in built if k == MOE_FIT_ROW))
    framework["cross_host"], framework["cross_host_source"] = fit_cross_host(
        next(d for k, d, _ in built if k == CROSS_HOST_FIT_ROW))
    for key, data, header in built:
        set_moe_overhead(data, framework)
        set_cross_host(data, framework)
        write(nemo_name(*key), data, header)


def set_moe_overhead(data: dict, framework: dict) -> None:
    """MoE models train with the fitted per-layer overhead."""
    if load_model(data["model"]).is_moe:
        data["training"]["moe_layer_overhead_s"] = framework["moe"]
        data["sources"]["training.moe_layer_overhead_s"] = framework["moe_source"]


def set_cross_host(data: dict, framework: dict) -> None:
    """Every engine carries the fitted cross-host cost (it applies only where an engine spans hosts)."""
    data["engine"]["cross_host_step_overhead_s"] = framework["cross_host"]
    data["sources"]["engine.cross_host_step_overhead_s"] = framework["cross_host_source"]


# the published stage time the MoE layer overhead is fitted on: B200 Qwen3-30B-A3B policy training, the same recipe
# file (grpo-qwen3-30ba3b-4n8g) as this summary row, run on 32 B200 instead of 32 H100
MOE_FIT_ROW = ("H100", "Qwen3-30B-A3B", "on", "bf16", 32)
STAGES = "workloads/published/nemo_rl_stage_reports.csv"


def fit_on_b200(h100_row: dict, model: str, stage: str, gpus: int, key: str, fit, steps: int | None = None):
    """(value of `key`, published seconds): `fit` solves `key` so that the H100 summary row's recipe, run on `gpus`
    B200, takes the stage report's time of `stage` (mean of `steps` simulated RL steps, default the scenario's)."""
    target = stage_seconds(read_stage_reports(ROOT / STAGES), "B200", model, stage, gpus=gpus)
    d = yaml.safe_load(yaml.safe_dump(h100_row))
    d["cluster"]["hardware"] = "b200"
    return fit(lambda v: summary(d, {key: v}, steps=steps)[stage], target), target


def fit_moe_overhead(h100_30b_on: dict) -> tuple[float, str]:
    """training.moe_layer_overhead_s fitted on the B200 30B-A3B policy-training time, and its source line."""
    c, target = fit_on_b200(h100_30b_on, "Qwen3-30B-A3B", "policy_training", 32, "training.moe_layer_overhead_s",
                            fit_moe_layer_overhead, steps=1)
    return float(f"{c:.4g}"), (
        f"FITTED (simulator/fit/moe_training.py, by workloads/scenarios/build_published.py): the seconds per MoE "
        f"layer per training micro-batch that make the {nemo_name(*MOE_FIT_ROW)} recipe on 32 B200 train in the "
        f"published {target} s ({STAGES}: B200 Qwen3-30B-A3B policy training, same recipe file); held out: the "
        "same report's Qwen3-235B-A22B training and every summary row (rlsim validate). Assumption: the same "
        "per-layer cost on the H100 and GB200 hosts and in NeMo-RL v0.6's Megatron")


# the published generation time the cross-host engine cost is fitted on: B200 Qwen3-235B-A22B, the same recipe file
# (grpo-qwen3-235b-16n8g: vLLM TP 16 over two 8-GPU hosts) as this summary row, run on 128 B200 instead of 128 H100
CROSS_HOST_FIT_ROW = ("H100", "Qwen3-235B-A22B", "on", "bf16", 128)


def fit_cross_host(h100_235b_on: dict) -> tuple[float, str]:
    """engine.cross_host_step_overhead_s fitted on the B200 235B generation time, and its source line."""
    c, target = fit_on_b200(h100_235b_on, "Qwen3-235B-A22B", "generation", 128, "engine.cross_host_step_overhead_s",
                            fit_cross_host_step_overhead)
    return float(f"{c:.4g}"), (
        f"FITTED (simulator/fit/cross_host.py, by workloads/scenarios/build_published.py): the seconds per iteration "
        f"of a vLLM engine that spans hosts that make the {nemo_name(*CROSS_HOST_FIT_ROW)} recipe (vLLM TP 16 over "
        f"two 8-GPU hosts) on 128 B200 generate in the published {target} s ({STAGES}: B200 Qwen3-235B-A22B "
        "generation, same recipe file, vLLM 0.25.1); held out: every summary row (rlsim validate), among them the "
        "TP-16 H100 rows and the TP-8 GB200 rows (engines over two 4-GPU trays). Applies only to engines wider than "
        "the hardware's gpus_per_host. Assumption: the same cost per iteration on H100 and GB200 hosts and under "
        "NeMo-RL v0.6's vLLM")


# --------------------------------------------------------------------------------------------- v0.3 blog rows
V03_TABLE = "workloads/published/nemo_rl_v03_stage_times.csv"
# the blog's Megatron runs (NOTES sec. 3.18): (model as published, GPUs) -> recipe facts
RECIPES_V03 = {
    ("Llama-3.1-8B-Instruct", 8): dict(model="llama-3.1-8b", vtp=1, mem=0.6, ttp=1, tpp=1, tep=1),
    ("Llama-3.1-70B", 64): dict(model="llama-3.1-70b", vtp=4, mem=0.6, ttp=4, tpp=4, tep=1),
    ("Qwen3-32B", 64): dict(model="qwen3-32b", vtp=4, mem=0.6, ttp=4, tpp=2, tep=1),
    ("Qwen3-30B-A3B", 64): dict(model="qwen3-30b-a3b", vtp=4, mem=0.7, ttp=2, tpp=1, tep=8),
}
V03_HARDWARE = (f"hardware_profiles/h100.yaml; the blog names no GPU: assumption H100 ({NOTES} sec. 3.18: the 8B "
                "config's comment 'On H100, can run with pp=1', NeMo-RL's DGX-H100 performance pages)")


def v03_name(model: str, gpus: int) -> str:
    return f"nemo-rl-v03-{RECIPES_V03[(model, gpus)]['model']}-h100x{gpus}.yaml"


def build_v03(framework: dict) -> None:
    """Writes the scenarios of the v0.3 blog's Megatron runs (stage times in V03_TABLE; nothing fitted on them)."""
    rows = pd.read_csv(ROOT / V03_TABLE, comment="#")
    for r in rows[rows["source"] == "blog"].itertuples():
        key = (r.system, r.model, "on", "bf16", int(r.gpus))
        name = v03_name(r.model, int(r.gpus))
        rc = {**RECIPES_V03[(r.model, int(r.gpus))], "framework": framework,
              "name": name.removesuffix(".yaml"), "sec": "3.18", "prompts": 64,
              "gens": 32, "seq": 4096, "async_engine": False, "tcp": 1, "ac": False, "mb": 4096, "lmb": 16384,
              "hardware_source": V03_HARDWARE}
        data = recipe_scenario(key, rc, "v0.3", V03_TABLE,
                               (r.mean_generated_tokens, f"{V03_TABLE} (the v0.3 blog, Table 1)",
                                "'Avg. generated tokens per sample'", ""))
        set_moe_overhead(data, framework)
        set_cross_host(data, framework)
        header = (f"NeMo-RL v0.3 blog run: {r.model} on {r.gpus} GPUs (assumed H100), synchronous colocated, bf16\n"
                  f"({V03_TABLE}: step {r.total_step_time} s = training {r.policy_training} + refit {r.weight_sync} + "
                  f"generation {r.generation} + logprobs {r.policy_and_reference_logprobs} + other).\n"
                  "Written by workloads/scenarios/build_published.py from the config; nothing here is fitted to this\n"
                  "row (rlsim validate compares each stage with the published one).")
        write(name, data, header)


# --------------------------------------------------------------------------------------------- 235B projection
def build_235b(framework: dict) -> None:
    moe_kernel, moe_src = vllm_moe_kernel("gb200", "qwen3-235b-a22b", 8, "fp8")
    for gpus, prompts in ((512, 128), (2048, 512)):
        for mode in ("sync", "async"):
            for spec in ("ar", "eagle3"):
                gen_gpus = gpus // 2 if mode == "async" else None
                route = routing(mode == "async", True)  # the projection's engines are AsyncLLM (sec. 3.14-3.15)
                data = {
                    "name": f"qwen3-235b-a22b-gb200x{gpus}-{mode}-{spec}",
                    "description": f"Qwen3-235B-A22B GRPO on {gpus} GB200 (NVL72), FP8 generation, {mode}"
                                   f"{' (half the GPUs generate)' if gen_gpus else ' colocated'}, "
                                   f"{'EAGLE-3 k=3' if spec == 'eagle3' else 'autoregressive'}",
                    "model": "qwen3-235b-a22b",
                    "cluster": {"hardware": "gb200", "gpus": gpus},
                    "engine": {"tensor_parallel_size": 8, "dtype": "fp8", "gpu_memory_utilization": 0.8 if gen_gpus else 0.6,
                               **engine_defaults(True, "projection", 8),
                               "routing": route, "moe_kernel": moe_kernel},
                    "rollout": {"prompts": prompts, "samples_per_prompt": 16, "max_response_tokens": 16384,
                                "prompt_tokens": {"kind": "lognormal", "median": 180, "sigma": 0.4, "min": 32},
                                "response_tokens": {"kind": "lognormal", "median": 4000.0, "sigma": SIGMA},
                                "group_correlation": 0.5},
                    "speculative": {"method": "eagle3" if spec == "eagle3" else "none", "num_tokens": 3,
                                    "profile": "workloads/acceptance/paper-qwen3-8b-eagle3-rl-think.yaml"},
                    "pipeline": {**refit_copy_constants(), "mode": mode, "colocated": mode == "sync",
                                 "steps": 6 if mode == "async" else 2,
                                 "data_s": 0.3, "refit_overhead_s": round(framework["refit"], 3)},
                    "training": {"tensor_parallel_size": 4, "pipeline_parallel_size": 4, "context_parallel_size": 1,
                                 "expert_parallel_size": 16, "global_batch_size": 512, "micro_batch_tokens": 16384,
                                 "logprob_micro_batch_tokens": 16384, "activation_recompute": "full",
                                 "reference_logprobs": True, "framework_efficiency": framework["train"],
                                 "moe_layer_overhead_s": framework["moe"],
                                 "logprob_framework_efficiency": framework["logprob"]},
                    "reward": {"s_per_sample": 0.005, "workers": 8, "per_sample": True},  # AsyncLLM engines
                    "seed": 0,
                }
                if gen_gpus:
                    rate, rate_src = refit_broadcast_rate(round(framework["refit"], 3))
                    data["pipeline"].update({"max_staleness": 1, "in_flight_weight_updates": True,
                                             "generation_gpus": gen_gpus, "refit_broadcast_bytes_per_s": rate})
                src = dict(SOURCES_COMMON)
                src["engine.moe_kernel"] = moe_src
                src.update({
                    "cluster.gpus": "the publication's projection points: 512 and 2048 GB200 (arXiv 2604.26779, "
                                    "as reported in write-ups; the 512 case is not stored anywhere here)",
                    "engine.tensor_parallel_size": f"{NOTES} sec. 3.14-3.15: vLLM TP 8 for 235B on GB200",
                    **cpu_sources(True, "projection", 8),
                    "engine.routing": ROUTING_SOURCE[route],
                    "engine.dtype": "the issue's projection: FP8 generation",
                    "engine.gpu_memory_utilization": f"{NOTES}: 0.6 colocated (base), 0.8 async",
                    "rollout.prompts": "assumption: the batch grows with the cluster (128 prompts per 512 GPUs)",
                    "rollout.samples_per_prompt": "assumption: 16 samples per prompt (DAPO)",
                    "rollout.max_response_tokens": "assumption: 16K new tokens (reasoning RL)",
                    "rollout.response_tokens.median": "assumption: median 4000 tokens (mean ~5.4K, the NeMo-RL 235B runs' "
                                                      "~5.7K mean generated length)",
                    "speculative.profile": "assumption: the paper's RL-Think acceptance (tau 2.77 at k=3) for a 235B "
                                           "EAGLE-3 head (workloads/models/eagle3-qwen3-235b-a22b.yaml)",
                    "pipeline.mode": "the issue: sync and async", "pipeline.generation_gpus": "assumption: half",
                    "training.tensor_parallel_size": f"{NOTES} sec. 3.15: Megatron TP4 PP4 EP16 for 235B on GB200",
                    "training.framework_efficiency": "from qwen3-8b-rl-think-gb200x32.yaml (fitted on the paper)",
                    "training.logprob_framework_efficiency": "from qwen3-8b-rl-think-gb200x32.yaml (fitted on the paper)",
                    "training.moe_layer_overhead_s": framework["moe_source"],
                    "training.global_batch_size": f"NeMo-RL default train_global_batch_size 512 ({NOTES} sec. 2)",
                    "training.micro_batch_tokens": "assumption: one max-length (16K) sample per packed micro-batch",
                    "training.activation_recompute": f"{NOTES} sec. 3.8: activation checkpointing on for 235B",
                    "model": "workloads/models/qwen3-235b-a22b.yaml",
                    "cluster.hardware": "hardware_profiles/gb200.yaml (an NVL72 rack: 72-GPU NVLink domains)",
                    "rollout.prompt_tokens": "assumption: math prompts with the chat template, median 180 tokens",
                    "speculative.num_tokens": f"{PAPER}: k=3",
                    "pipeline.data_s": f"{PAPER}: data_s 0.3",
                    "pipeline.refit_overhead_s": "from qwen3-8b-rl-think-gb200x32.yaml (fitted on the paper's prepare_s)",
                    "pipeline.max_staleness": "1-step off-policy, as NeMo-RL's async runs",
                    "pipeline.in_flight_weight_updates": "as NeMo-RL's async recipes",
                    "pipeline.cosim_engines": "default 8 of the pool's engines (async only), for the 5 s run "
                                              "target; 32 engines put the async step 5-6% higher "
                                              "(simulator/pipeline/collector.py)",
                })
                if gen_gpus:
                    src["pipeline.refit_broadcast_bytes_per_s"] = rate_src
                data["sources"] = src
                set_cross_host(data, framework)
                header = (f"Qwen3-235B-A22B on {gpus} GB200, {mode}, {spec}: the publication's 235B projection setting.\n"
                          "Written by workloads/scenarios/build_published.py. rlsim validate prints what rlsim projects.")
                write(f"qwen3-235b-a22b-gb200x{gpus}-{mode}-{spec}.yaml", data, header)


if __name__ == "__main__":
    fw = build_paper()
    print("framework:", fw)
    build_nemo(fw)
    build_v03(fw)
    build_235b(fw)
