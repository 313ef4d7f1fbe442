"""The shipped scenarios: they load, name their sources, and build_published.py reproduces them."""
from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from conftest import ROOT
from simulator.pipeline.run import run_pipeline
from simulator.scenario import load_scenario
from simulator.validation.published import v03_scenario

SCEN = ROOT / "workloads" / "scenarios"
FILES = sorted(p.name for p in SCEN.glob("*.yaml"))
CORE = ["cluster.gpus", "cluster.hardware", "engine.tensor_parallel_size", "engine.gpu_memory_utilization",
        "rollout.prompts", "rollout.samples_per_prompt", "rollout.max_response_tokens", "rollout.response_tokens.median",
        "training.tensor_parallel_size", "training.framework_efficiency", "pipeline.refit_overhead_s"]


def test_every_required_scenario_is_shipped():
    names = set(FILES)
    assert {"default.yaml", "qwen3-8b-rl-think-gb200x32.yaml", "qwen3-8b-rl-zero-gb200x32.yaml"} <= names
    assert sum(n.startswith("nemo-rl-") and not n.startswith("nemo-rl-v03-") for n in names) == 17
    v03 = pd.read_csv(ROOT / "workloads/published/nemo_rl_v03_stage_times.csv", comment="#")
    assert sum(n.startswith("nemo-rl-v03-") for n in names) == (v03["source"] == "blog").sum() == 4
    for gpus in (512, 2048):
        for mode in ("sync", "async"):
            for spec in ("ar", "eagle3"):
                assert f"qwen3-235b-a22b-gb200x{gpus}-{mode}-{spec}.yaml" in names


@pytest.mark.parametrize("name", FILES)
def test_scenario_loads_and_sources_its_numbers(name):
    sc = load_scenario(SCEN / name)
    assert sc.sources, name
    if name != "default.yaml":
        for key in CORE:
            assert key in sc.sources, (name, key)


def test_build_published_reproduces_the_committed_scenarios(tmp_path):
    before = {n: (SCEN / n).read_text() for n in FILES if n != "default.yaml"}
    proc = subprocess.run([sys.executable, str(SCEN / "build_published.py")], capture_output=True, text=True,
                          cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr
    after = {n: (SCEN / n).read_text() for n in before}
    changed = [n for n in before if before[n] != after[n]]
    for n in changed:  # restore, then fail
        (SCEN / n).write_text(before[n])
    assert not changed


def test_reward_cost_lies_within_the_measured_scoring_times():
    """reward.s_per_sample of every shipped scenario that scores is inside what NeMo-RL's math_verify call measured
    (calibration/reward/math_verify.csv: right and wrong answers, 1-12K characters)."""
    ms = pd.read_csv(ROOT / "calibration/reward/math_verify.csv")["ms_per_sample"]
    rewards = {n: load_scenario(SCEN / n).reward for n in FILES}
    costs = {n: r.s_per_sample for n, r in rewards.items() if r}
    assert costs and all(ms.min() / 1e3 <= c <= ms.max() / 1e3 for c in costs.values()), costs


def test_nemo_rl_batches_average_the_published_length():
    """Every NeMo-RL scenario pins its batches to the row's 'G-Average Seq len' (the mean of the steps the step time
    averages; the page's exact cell where the CSV rounds it), and the simulated steps generate that mean (free draws of these 64-group batches fell 2-8% above)."""
    rows = pd.read_csv(ROOT / "workloads/published/nemo_rl_performance_summary.csv", comment="#")
    names = [n for n in FILES if n.startswith("nemo-rl-") and not n.startswith("nemo-rl-v03-")]
    for n in names:
        sc = load_scenario(SCEN / n)
        text = (SCEN / n).read_text().split("\n", 2)[1]
        row = rows[(rows.step_s.map(lambda v: f"step {v} s" in text))
                   & (rows.mean_seq_len.map(lambda v: f"mean sequence {v})" in text))]
        assert len(row) == 1, n
        pinned, csv = sc.rollout.mean_response_tokens, float(row.mean_seq_len.iloc[0])
        if pinned != csv:  # the CSV rounds four GB200 cells (~1.1K, ~3.2K): the page's exact value, within that
            assert row.system.iloc[0] == "GB200" and csv % 100 == 0 and abs(pinned - csv) <= 50, n
            assert "performance-summary.md" in sc.sources["rollout.mean_response_tokens"], n
    sc = load_scenario(SCEN / "nemo-rl-llama-3.1-8b-h100x16-on.yaml")
    out = run_pipeline(sc, steps=2).steps
    assert out["mean_response_tokens"].to_numpy() == pytest.approx([1019, 1019], abs=0.5)


def test_v03_blog_scenarios_pin_the_blog_length_and_config():
    """Each v0.3 blog scenario is its row's config (sec. 3.18) at the blog's 'Avg. generated tokens per sample', on the
    assumed H100, colocated and synchronous, with vLLM's LLM class scheduling synchronously (vLLM 0.9/0.10)."""
    v03 = pd.read_csv(ROOT / "workloads/published/nemo_rl_v03_stage_times.csv", comment="#")
    blog = v03[v03["source"] == "blog"]
    parallel = {"Llama-3.1-8B-Instruct": (1, 1, 1), "Llama-3.1-70B": (4, 4, 1), "Qwen3-32B": (4, 2, 1),
                "Qwen3-30B-A3B": (2, 1, 8)}  # the blog's footnote: TP, PP, EP
    for r in blog.itertuples():
        name = v03_scenario(r)
        sc = load_scenario(SCEN / name)
        assert sc.rollout.mean_response_tokens == r.mean_generated_tokens, name
        assert (sc.cluster.hardware, sc.cluster.gpus, sc.pipeline.mode, sc.pipeline.colocated) == (
            "h100", r.gpus, "sync", True), name
        tr = sc.training
        assert (tr.tensor_parallel_size, tr.pipeline_parallel_size, tr.expert_parallel_size) == parallel[r.model]
        assert sc.engine.max_num_seqs == 1024 and not sc.engine.async_scheduling, name
        assert "assumption H100" in sc.sources["cluster.hardware"], name
