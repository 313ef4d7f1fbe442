"""The optimizer: search space and pruning, ranking, consistency with run_pipeline, the why lines, the CLI."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from simulator.errors import RlsimError
from simulator.optimize import optimize
from simulator.optimize.explain import reasons, why
from simulator.optimize.space import Layout, Placement, Speculation, layouts, placements, speculations, train_fits
from tests.conftest import assert_one_line_error

TINY = str(Path(__file__).parent / "data" / "sweep" / "tiny.yaml")


def _ctx(sets=()):
    from simulator.model_config import load_model
    from simulator.rollout.sim import _hardware
    from simulator.scenario import load_scenario
    scn = load_scenario(TINY, list(sets))
    return scn, _hardware(scn.cluster.hardware), load_model(scn.model)


def test_layouts_prune_what_does_not_fit_or_shard():
    scn, hw, model = _ctx()
    kept, pruned = layouts(scn, hw, model, 8)
    assert [lay.tp for lay in kept] == [1, 2, 4, 8] and all(lay.ep == 1 for lay in kept)  # dense: no EP
    big, hw, model = _ctx(["model=qwen3-235b-a22b"])
    kept, pruned = layouts(big, hw, model, 8)
    assert kept and all(lay.gpus >= 4 for lay in kept)  # 470 GB of bf16 weights need >= 4 H200
    assert any("weights need" in why for label, why in pruned if label == "TP1")
    assert any(lay.ep > 1 for lay in kept)  # MoE: expert parallelism is searched


def test_training_and_placements_prune_what_does_not_divide():
    scn, hw, model = _ctx(["training.tensor_parallel_size=4"])
    assert "does not divide" in train_fits(scn, hw, model, 6)
    assert train_fits(scn, hw, model, 8) is None
    big, hw2, model2 = _ctx(["model=qwen3-235b-a22b"])
    assert "training state needs" in train_fits(big, hw2, model2, 2)
    kept, pruned = placements(scn, hw, model, 8, [0.25, 0.5, 0.75], [1, 2], 1)
    labels = [p.label(8) for p in kept]
    assert "sync colocated" in labels and "async staleness 2, 4 gen + 4 train GPUs" in labels
    assert all(p.train_gpus(8) % 4 == 0 for p in kept)  # 6 and 2 training GPUs pruned
    assert any("2 train" in a for a, _ in pruned)


def test_speculation_space_uses_the_profiles_method():
    scn, _, _ = _ctx()
    sp = speculations(scn, 3, True)
    assert [s.label() for s in sp] == ["none", "eagle3 k=1", "eagle3 k=2", "eagle3 k=3", "eagle3 dynamic k<=3"]
    assert "speculative.candidate_ks=[0, 1, 2, 3]" in sp[-1].overrides()
    bare, _, _ = _ctx(["speculative.profile=null"])
    assert [s.method for s in speculations(bare, 3, True)] == ["none"]  # nothing to speculate with
    assert Placement(False, "async", 2, 2).overrides(4)[-1] == "pipeline.max_staleness=2"
    assert Layout(2, 4).label() == "TP2 EP4" and Speculation().overrides()[0] == "speculative.method=none"


@pytest.fixture(scope="module")
def result():
    return optimize(TINY, 4, max_k=2, dynamic_k=False, fractions=(0.5,), staleness=(1,), workers=2, top=0)


def test_ranked_and_consistent_with_run_pipeline(result):
    from simulator.pipeline.run import run_pipeline
    from simulator.scenario import load_scenario
    t = result.table
    assert list(t["rank"]) == list(range(1, len(t) + 1))
    assert t["total_step_time"].is_monotonic_increasing
    # sync colocated, sync split and async split all made it to the last stage
    assert {"sync colocated", "sync, 2 gen + 2 train GPUs", "async staleness 1, 2 gen + 2 train GPUs"} <= \
        set(t["placement"])
    best = result.best
    scn = load_scenario(TINY, ["cluster.gpus=4", *best["overrides"].split()])
    ref = run_pipeline(scn, steps=3).summary()
    assert best["total_step_time"] == pytest.approx(ref["total_step_time"], rel=1e-12)
    assert best["generation_gpus"] == ref["generation_gpus"]
    # the scenario as given (sync colocated, no speculation) is in the search space: the winner is no worse
    assert result.baseline is not None and result.baseline["speculation"] == "none"
    assert best["total_step_time"] <= result.baseline["total_step_time"] * 1.0001
    assert any(line.startswith("vs the runner-up: beats #2") or "ties" in line for line in result.why)
    assert any(line.startswith("vs the scenario as given") for line in result.why)
    assert any("speculation on" in line for line in result.why)
    assert set(result.stages) == {"layouts", "speculation"} and len(result.stages["speculation"]) >= 3


def test_tokens_objective_ranks_by_throughput():
    res = optimize(TINY, 4, "tokens_per_s_per_gpu", max_k=1, dynamic_k=False, fractions=(0.5,), staleness=(1,),
                   workers=0)
    assert res.table["tokens_per_s_per_gpu"].is_monotonic_decreasing
    assert "tokens/s/GPU" in res.why[0]


def test_why_names_the_causes():
    base = {"total_step_time": 40.0, "generation": 30.0, "exposed_generation": 30.0,
            "policy_and_reference_logprobs": 4.0, "policy_training": 6.0, "weight_sync": 0.4,
            "idle/refit_bubble": 0.0, "idle/buffer_starvation": 0.0, "mean_acceptance_length": 1.0,
            "speculation": "none", "engines": "TP1", "generation_gpus": 8, "training_gpus": 8, "mode": "sync",
            "tokens_per_s_per_gpu": 100.0}
    asy = {**base, "total_step_time": 20.0, "generation": 14.0, "exposed_generation": 1.0,
           "policy_and_reference_logprobs": 7.0, "policy_training": 11.6, "mean_acceptance_length": 2.7,
           "speculation": "eagle3 k=3", "generation_gpus": 4, "training_gpus": 4, "mode": "async"}
    line = why(asy, base, "step_time", "the baseline")
    assert line.startswith("beats the baseline by 20.00 s per step (20.00 vs 40.00)")
    assert "saves 29.0 s: exposed generation 30.0 -> 1.0 s" in line
    assert "async hides 13.0 s of 14.0 s of generation behind training" in line
    assert "eagle3 k=3 instead of none, acceptance length 2.70" in line
    assert "costs 8.6 s: training + logprobs 10.0 -> 18.6 s on 4 instead of 8 training GPUs" in line
    assert reasons(base, base) == []
    assert why(base, asy, "step_time", "#1").startswith("is behind #1 by 20.00")


def test_cli_prints_the_best_and_why(tmp_path):
    from tests.conftest import run_cli
    p = run_cli("optimize", TINY, "--gpus", "4", "--max-k", "2", "--no-dynamic-k", "--splits", "0.5",
                "--staleness", "1", "--workers", "2", "--top", "3", "--out", str(tmp_path / "all.csv"),
                "--no-progress")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert "objective step_time" in lines[0] and lines[2].lstrip().startswith("1 ")
    assert any(x.startswith("as given") for x in lines)
    assert sum(x.startswith("why #1:") for x in lines) >= 2
    import pandas as pd
    assert len(pd.read_csv(tmp_path / "all.csv")) >= 3


@pytest.mark.parametrize("args, needles", [
    (["--gpus", "4", "--objective", "latency"], ["--objective", "unknown objective"]),
    (["--gpus", "0"], ["--gpus", "must be >= 1"]),
    (["--gpus", "4", "--splits", "0.5,x"], ["--splits", "comma-separated"]),
    (["--gpus", "4", "--set", "engine.tensor_parallel=2"], ["engine.tensor_parallel", "did you mean"]),
    (["--gpus", "4", "--max-k", "100"], ["--max-k", "1..64"]),
    (["--gpus", "4", "--steps", "0"], ["--steps", "must be >= 1"]),
])
def test_cli_bad_input_is_one_line(capsys, args, needles):
    from simulator.cli.main import main
    rc = main(["optimize", TINY, *args])
    err = capsys.readouterr().err
    assert rc == 2
    assert_one_line_error(subprocess.CompletedProcess([], rc, "", err), *needles)


def test_no_layout_fits_is_an_error():
    with pytest.raises(RlsimError, match="no engine layout"):
        optimize(TINY, 4, sets=["model=qwen3-235b-a22b"], max_engine_gpus=2, workers=0)
