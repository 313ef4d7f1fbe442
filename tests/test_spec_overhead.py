"""vLLM's speculative-path overheads fitted to measured batch-1 TPOT (workloads/published/vllm_eagle_bs1_tpot.csv),
with held-out checks: k values outside the fit, and the EAGLE-1 rows of the same table."""
from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from conftest import ROOT as REPO_ROOT
from conftest import assert_one_line_error, run_cli
from simulator.costmodel.step import StepCostModel
from simulator.fit.spec_overhead import compare, fit_spec_overhead, read_tpot_table
from simulator.specdec.costs import DraftConfig, SpecDecodeCost

TABLE = REPO_ROOT / "workloads" / "published" / "vllm_eagle_bs1_tpot.csv"


@pytest.fixture(scope="module")
def target():
    return StepCostModel("h100", "llama-3.1-8b", tp=1, dtype="bf16")


@pytest.fixture(scope="module")
def table():
    return read_tpot_table(TABLE)


def test_eagle3_fit_reproduces_every_measured_tpot_within_3_percent(target, table):
    fit = fit_spec_overhead(target, table, "eagle3")
    assert len(fit.rows) == 6
    assert max(abs(r["error"]) for r in fit.rows) < 0.03
    # overheads are physical: positive and below a plain decode step
    assert 0 < fit.draft_step_overhead_s < fit.iteration_overhead_s + fit.step_overhead_s + 7e-3
    assert 0 < fit.step_overhead_s < 7.07e-3


def test_fit_on_small_k_predicts_large_k(target, table):
    fit = fit_spec_overhead(target, table, "eagle3", fit_ks=[2, 3, 4])
    held = [r for r in fit.rows if r["held_out"]]
    assert [r["k"] for r in held] == [5, 6, 7]
    assert max(abs(r["error"]) for r in held) < 0.06


@pytest.mark.xfail(strict=True, reason="vLLM's EAGLE-1 path costs ~0.5 ms less per draft step than its EAGLE-3 path "
                                       "(despite a 4x larger lm_head): the overheads belong to the drafter's code "
                                       "path and do not transfer (held-out error +18% to +34%)")
def test_eagle3_overheads_predict_the_held_out_eagle1_rows(target, table):
    fit = fit_spec_overhead(target, table, "eagle3")
    rows = compare(target, fit, table, "eagle")
    assert max(abs(r["error"]) for r in rows) < 0.10


def test_eagle1_head_fits_its_own_rows(target, table):
    fit = fit_spec_overhead(target, table, "eagle")
    assert max(abs(r["error"]) for r in fit.rows) < 0.03


def test_shipped_scenarios_carry_the_fitted_overheads(target, table):
    fit = fit_spec_overhead(target, table, "eagle3")
    for name in ("qwen3-8b-rl-think-gb200x32", "qwen3-235b-a22b-gb200x512-sync-eagle3"):
        eng = yaml.safe_load((REPO_ROOT / "workloads" / "scenarios" / f"{name}.yaml").read_text())["engine"]
        assert eng["spec_iteration_overhead_s"] == pytest.approx(fit.iteration_overhead_s, abs=1e-6)
        assert eng["draft_step_overhead_s"] == pytest.approx(fit.draft_step_overhead_s, abs=1e-6)
        assert eng["step_overhead_s"] == pytest.approx(fit.step_overhead_s, abs=1e-6)


def test_overhead_counts_gpu_draft_steps_only(target):
    cached = np.array([500])
    kw = dict(iteration_overhead_s=1e-3, draft_step_overhead_s=2e-4)
    chain = SpecDecodeCost(target, DraftConfig(method="eagle3", **kw))
    ngram = SpecDecodeCost(target, DraftConfig(method="ngram", **kw))
    plain = SpecDecodeCost(target, DraftConfig(method="none", **kw))
    assert chain.overhead_time(3) == pytest.approx(1e-3 + 3 * 2e-4)
    assert ngram.overhead_time(3) == pytest.approx(1e-3)
    assert plain.overhead_time(0) == 0.0 and chain.overhead_time(0) == 0.0
    bare = SpecDecodeCost(target, DraftConfig(method="eagle3"))
    assert chain.iteration(cached, 3).time_s - bare.iteration(cached, 3).time_s == pytest.approx(1.6e-3)


def test_cli_prints_the_fit_and_json():
    r = run_cli("fit", "spec-overhead", str(TABLE), "--hardware", "h100", "--model", "llama-3.1-8b", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["draft_step_overhead_s"] > 0 and len(out["rows"]) == 6


@pytest.mark.parametrize("content, field", [
    ("drafter,k,tpot_ms\nnone,0,7\n", "tpot table"),
    ("drafter,k,acceptance_length,tpot_ms\neagle3,2,2.3,4.3\neagle3,3,2.7,4.1\n", "drafter"),
    ("drafter,k,acceptance_length,tpot_ms\nnone,0,1,7\neagle3,2,3.5,4.3\n", "acceptance_length"),
    ("drafter,k,acceptance_length,tpot_ms\nnone,0,1,x\n", "tpot_ms"),
    ("drafter,k,acceptance_length,tpot_ms\nnone,0,1,inf\n", "tpot_ms"),  # an internal error before
    ("drafter,k,acceptance_length,tpot_ms\nnone,0,1,7\neagle3,1e308,2.3,4.3\neagle3,3,2.7,4.1\n", "k"),
    ("drafter,k,acceptance_length,tpot_ms\nnone,0,1,7\neagle3,2.5,2.3,4.3\neagle3,3,2.7,4.1\n", "k"),
])
def test_cli_bad_table_is_one_line(tmp_path, content, field):
    f = tmp_path / "t.csv"
    f.write_text(content)
    r = run_cli("fit", "spec-overhead", str(f), "--hardware", "h100", "--model", "llama-3.1-8b")
    assert_one_line_error(r, field)
