"""Regenerate the shipped acceptance profiles in this folder (run from anywhere: `python
workloads/acceptance/regenerate.py`). Deterministic: same inputs, same files.

- llama3.1-8b-{eagle3,ngram}-{dataset}.yaml: fitted from workloads/traces/specdecode-bench (exact replays).
- vllm-baseline-*.yaml: vLLM's EAGLE-3 regression baselines (unconditional per-position rates, k=3).
- paper-qwen3-8b-eagle3-rl-{think,zero}.yaml: the paper's mean acceptance lengths at k=3, i.i.d.
"""
from __future__ import annotations

import csv
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))

from simulator.paths import shared_dir  # noqa: E402
from simulator.specdec.acceptance import Source, profile_from_mean_length, profile_from_unconditional  # noqa: E402
from simulator.specdec.importers import profile_from_measurement, read  # noqa: E402

DATASETS = ("gsm8k", "sharegpt", "cnn", "instructcoder")
PUBLISHED = "../shared/published"


def rows(name: str) -> list[dict]:
    with open(shared_dir() / "published" / name) as f:
        return list(csv.DictReader(line for line in f if not line.startswith("#")))


def slug(model: str) -> str:
    return model.split("/")[-1].lower().replace("-instruct", "").replace("-fp8", "").replace("meta-", "").replace("llama-3", "llama3")


def main() -> None:
    os.chdir(ROOT)  # record repo-relative source paths
    for ds in DATASETS:
        trace = f"workloads/traces/specdecode-bench/llama3.1-8b-{ds}.jsonl"
        for proposer, method in (("eagle", "eagle3"), ("ngram", "ngram")):
            name = f"llama3.1-8b-{method}-{ds}"
            prof = profile_from_measurement(read("specdecode-bench", [trace], proposer=proposer), name=name)
            prof.save(HERE / f"{name}.yaml", header=f"{name}: Llama-3.1-8B-Instruct, {method} proposer, {ds}; "
                      f"fitted from {trace}\n(`rlsim fit acceptance --format specdecode-bench {trace} "
                      f"--proposer {proposer}`)")
    for r in rows("vllm_eagle3_acceptance_baselines.csv"):
        name = f"vllm-baseline-{slug(r['verifier'])}-eagle3-mtbench"
        u = [float(r[f"pos{i}"]) for i in range(3)]
        src = Source(format="published", files=[f"{PUBLISHED}/vllm_eagle3_acceptance_baselines.csv"],
                     detail=f"vLLM regression baseline (tests/v1/spec_decode/test_acceptance_length.py): verifier "
                            f"{r['verifier']}, drafter {r['drafter']}; MT-Bench, temperature 0, max_tokens 256, "
                            f"k=3; per-position rates unconditional (accepted at position / drafts); published "
                            f"mean acceptance length {r['mean_acceptance_length']} (rtol {r['rtol']})")
        prof = profile_from_unconditional(u, method="eagle3", source=src, name=name,
                                          measured_tau=[(3, float(r["mean_acceptance_length"]))])
        prof.save(HERE / f"{name}.yaml", header=f"{name}: from {PUBLISHED}/vllm_eagle3_acceptance_baselines.csv")
    for r in rows("paper_specdec_rl_8b.csv"):
        if r["method"] != "eagle3":
            continue
        name = f"paper-qwen3-8b-eagle3-{r['workload']}"
        src = Source(format="published", files=[f"{PUBLISHED}/paper_specdec_rl_8b.csv"],
                     detail=f"arXiv 2604.26779 (speculative decoding in NeMo-RL), as transcribed from secondary "
                            f"write-ups: Qwen3-8B GRPO workload {r['workload']}, EAGLE-3 trained offline on "
                            f"DAPO and frozen during RL, k={r['k']}, mean acceptance length "
                            f"{r['acceptance_length']}; converted to the i.i.d. alpha that reproduces it")
        prof = profile_from_mean_length(float(r["acceptance_length"]), int(r["k"]), method="eagle3",
                                        source=src, name=name)
        prof = prof.model_copy(update={"drift": prof.drift.model_copy(update={
            "source": "not measured: the paper reports one mean acceptance length for the run (draft frozen)"})})
        prof.save(HERE / f"{name}.yaml", header=f"{name}: from {PUBLISHED}/paper_specdec_rl_8b.csv")


if __name__ == "__main__":
    main()
