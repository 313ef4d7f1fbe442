"""Draft and verify costs of speculative decoding, and `rlsim spec`."""
from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import ROOT, assert_main_error, assert_one_line_error, run_cli
from simulator.costmodel.step import StepCostModel
from simulator.errors import RlsimError
from simulator.specdec.costs import DraftConfig, SpecDecodeCost

PROFILE = str(ROOT / "workloads" / "acceptance" / "llama3.1-8b-eagle3-sharegpt.yaml")


def _spec(method="eagle3", model="llama-3.1-8b", **kw):
    return SpecDecodeCost(StepCostModel("h200", model), DraftConfig(method=method, **kw))


def test_eagle_draft_cost_is_k_chained_head_steps():
    s = _spec()
    cached = np.full(8, 2048)
    d1, d3 = s.draft_time(cached, 1), s.draft_time(cached, 3)
    assert 2.5 * d1 < d3 < 3.2 * d1
    # the head is ~1/19 of the target's bytes: one draft step is far cheaper than a target step
    assert d1 < 0.1 * s.target.step_time(np.ones(8), cached + 1)


def test_verify_costs_k_plus_one_tokens():
    s = _spec()
    cached = np.full(64, 2048)
    v0 = s.iteration(cached, 0).time_s
    v3 = s.verify_time(cached, 3)
    assert v0 < v3 < 2 * v0


def test_ngram_has_no_gpu_draft_and_draft_model_has_its_own_tp():
    ng = _spec("ngram")
    assert ng.draft_first is None and ng.draft_time(np.full(4, 100), 3) == pytest.approx(4 * ng.cfg.ngram_s_per_seq)
    dm = SpecDecodeCost(StepCostModel("h200", "qwen3-32b", tp=2), DraftConfig("draft_model", "qwen3-0.6b", 1))
    assert dm.draft_first.par.tp == 1 and dm.target.par.tp == 2
    with pytest.raises(RlsimError):
        SpecDecodeCost(StepCostModel("h200", "qwen3-8b"), DraftConfig("draft_model"))
    with pytest.raises(RlsimError):
        SpecDecodeCost(StepCostModel("h200", "qwen3-32b"), DraftConfig("mtp"))


def test_spec_speedup_falls_with_batch_and_beyond_the_optimal_k():
    p = run_cli("spec", "--hardware", "h200", "--model", "llama-3.1-8b", "--draft", "eagle3", "--profile", PROFILE,
                "--batch", "1", "8", "32", "128", "--context", "2048", "--json")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    rows = out["rows"]
    sp = {(r["batch"], r["k"]): r["speedup"] for r in rows}
    assert sp[(1, 0)] == pytest.approx(1.0)
    assert sp[(1, 3)] > sp[(8, 3)] > sp[(32, 3)] > sp[(128, 3)]
    for b in (1, 8, 32, 128):
        best = out["optimal_k"][str(b)]
        assert sp[(b, best)] == max(sp[(b, k)] for k in range(8))
        if best < 7:
            assert sp[(b, 7)] < sp[(b, best)]
    assert out["optimal_k"]["128"] <= out["optimal_k"]["1"]
    assert {"verify_ms", "draft_ms", "tokens_per_s_per_seq", "speedup"} <= set(rows[0])


def test_spec_bad_input():
    assert_one_line_error(run_cli("spec", "--hardware", "h200", "--model", "llama-3.1-8b", "--draft", "eagle3",
                                  "--profile", PROFILE, "--batch", "1", "--context", "10", "--k", "-1"), "k")
    assert_one_line_error(run_cli("spec", "--hardware", "h200", "--model", "llama-3.1-8b", "--draft", "magic",
                                  "--acceptance-length", "2", "--batch", "1", "--context", "10"), "method")


@pytest.mark.parametrize("args, needle", [
    (["--draft", "magic"], "--draft: unknown method 'magic'"),
    (["--draft-tp", "0"], "--draft-tp: must be >= 1"),
    (["--tree-tokens", "-1"], "--tree-tokens: must be >= 0"),
    (["--iteration-overhead", "nan"], "--iteration-overhead: must be >= 0"),
    (["--tp", "3"], "--tp: tp=3 does not divide"),
    (["--dtype", "int3"], "--dtype: unknown dtype"),
])
def test_spec_bad_options_name_the_option(capsys, args, needle):
    base = {"--draft": "eagle3", "--acceptance-length": "2", "--batch": "1", "--context": "10"}
    base.update(dict(zip(args[::2], args[1::2], strict=True)))
    assert_main_error(capsys, ["spec", "--hardware", "h200", "--model", "llama-3.1-8b",
                               *[x for kv in base.items() for x in kv]], needle)


def test_draft_head_kv_cache_follows_the_engines_kv_dtype():
    from simulator.rollout import RolloutSimulator
    from simulator.scenario import scenario_from_dict
    sets = ["speculative.method=eagle3", "speculative.acceptance_length=2.5"]
    kv = {d: RolloutSimulator(scenario_from_dict({}, [*sets, f"engine.kv_cache_dtype={d}"])).cost.spec
          .draft_kv_bytes_per_token() for d in ("bf16", "fp8")}
    assert kv["fp8"] == pytest.approx(kv["bf16"] / 2)


def test_spec_reads_a_trees_acceptance_at_its_depth_as_runs_do():
    import json

    from conftest import run_cli
    proc = run_cli("spec", "--hardware", "h200", "--model", "qwen3-8b", "--batch", "1", "--context", "2048",
                   "--draft", "tree", "--tree-depth", "3", "--tree-tokens", "8", "--tree-width", "2",
                   "--acceptance-length", "2.5", "--acceptance-k", "3", "--json")
    rows = json.loads(proc.stdout)["rows"]
    assert [r["k"] for r in rows] == [3] and rows[0]["acceptance_length"] == pytest.approx(2.5)
