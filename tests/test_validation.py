"""Predictions against published figures (rlsim validate), kept in the suite.

Checks outside tolerance today are strict xfails with their reason: they document the discrepancy, and an xpass
(a model change that makes one pass) fails the suite until the list is updated.
"""
from __future__ import annotations

import json

import pandas as pd
import pytest

from conftest import ROOT, run_cli
from simulator.pipeline.run import run_pipeline
from simulator.scenario import load_scenario
from simulator.validation.published import nemo_rl_checks, paper_checks, stage_checks, v03_checks

GB200 = ("GB200 profile transferred from H200 (no Blackwell measurements); published GB200 NeMo-RL runs reach only "
         "1.0-2.8x H100's per-GPU throughput")
CPU = ("vLLM's per-sequence CPU cost (measured on vLLM 0.17.1, 26-29 us per sequence per iteration without async "
       "scheduling) slows the generation-bound async rows; their hosts' CPUs may be faster than the measuring "
       "host's (an assumption, calibration/vllm_cpu/README.md)")
KNOWN = {
    ("H100 Qwen3-30B-A3B 8-off bf16 x192", "step s"):
        "8-off step 21% slow, generation-bound: the 64-GPU pool needs 42 s per batch (TP 2 engines of 128 "
        "sequences, no async scheduling on the Ray executor); " + CPU,
    ("GB200 Llama-3.1-8B-Instruct 1-off x8 / on x8", "off/on step-time ratio"):
        "on-policy row 18% fast (" + GB200 + "), 1-off row 4% slow",
    ("H100 Qwen3-30B-A3B 1-off x32 / on x32", "off/on step-time ratio"):
        "on-policy row 1% slow, 1-off row 18% slow (training-bound: logprobs 39 s + training 133 s on 16 H100 with "
        "PP 2 and EP 8, twice the on-policy row's 88 s on 32): the published pair (192 s / 152 s) implies a training "
        "side on 16 GPUs under 152 s, so rlsim's on-policy split leans too far to training",
    ("H100 Qwen3-30B-A3B 8-off x192 / on x32", "off/on step-time ratio"): "on-policy row 1% slow, 8-off 21% slow (above)",
}


def _params(checks):
    out = []
    for c in checks:
        if c.tolerance is None:
            continue
        reason = KNOWN.get((c.row, c.quantity))
        marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
        out.append(pytest.param(c, id=f"{c.row} | {c.quantity}", marks=marks))
    return out


_PAPER = paper_checks()
_NEMO = nemo_rl_checks()


@pytest.mark.parametrize("check", _params(_PAPER) + _params(_NEMO))
def test_published_figure_within_tolerance(check):
    assert abs(check.rel_error) <= check.tolerance, (check.published, check.predicted)


def test_autoregressive_rows_were_fitted():
    fitted = [c for c in _PAPER if "autoregressive generation" in c.quantity]
    assert len(fitted) == 2 and all(abs(c.rel_error) < 0.05 for c in fitted)


def test_rl_zero_logprobs_it_was_not_fitted_on():
    """RL-Zero's response lengths are fitted on its autoregressive training and generation times with RL-Think's
    efficiencies; its logprob passes (17.8 s published) are held out: 17.86 s today (-41% when both runs shared
    sigma 0.8 and RL-Zero's median was fitted on its generation alone)."""
    paper = pd.read_csv(ROOT / "workloads/published/paper_specdec_rl_8b.csv", comment="#")
    row = paper[(paper.workload == "rl-zero") & (paper.method == "autoregressive")].iloc[0]
    scn = load_scenario(ROOT / "workloads/scenarios/qwen3-8b-rl-zero-gb200x32.yaml")
    out = run_pipeline(scn).summary()
    assert out["policy_and_reference_logprobs"] == pytest.approx(float(row["logprob_s"]), rel=0.05)
    assert out["policy_training"] == pytest.approx(float(row["train_s"]), rel=0.02)  # fitted


def test_most_nemo_rl_step_times_hold():
    """A floor under the step rows: 16 of 17 within 20% since engines that span hosts pay NCCL and the fitted
    cross-host cost per iteration (the GB200 235B 1-off row: -30% -> -8%; 15 since vLLM's TP all-reduce is priced on
    its own backends, 14 before, 13 before the H100 FP8 row trained in FP8, 12 before the H100 profile priced vLLM's
    FA3 attention, 10 before MoE training paid its fitted per-layer overhead; H100 10 of 11, GB200 6 of 6)."""
    steps = [c for c in _NEMO if c.quantity == "step s"]
    h100 = [c for c in steps if c.row.startswith("H100")]
    assert len(steps) == 17 and sum(c.ok for c in steps) >= 16
    assert len(h100) == 11 and sum(c.ok for c in h100) >= 10


def test_engines_across_hosts_rows_it_was_not_fitted_on():
    """engine.cross_host_step_overhead_s is fitted on the B200 235B generation (vLLM TP 16 over two hosts); the
    summary rows whose engines span hosts are held out: the H100 235B on-policy rows (TP 16 over two 8-GPU servers)
    +0.2% and -0.6% today (-8.3% and -11.5% without it), the GB200 235B rows (TP 8 over two 4-GPU trays) +4.9% and
    -7.1% (-14.3% and -30.3% before engines across trays ran NCCL and paid it)."""
    steps = {c.row: c for c in _NEMO if c.quantity == "step s"}
    for row in ("H100 Qwen3-235B-A22B on bf16 x128", "H100 Qwen3-235B-A22B on bf16 x256"):
        assert abs(steps[row].rel_error) < 0.05, row
    for row in ("GB200 Qwen3-235B-A22B on bf16 x64", "GB200 Qwen3-235B-A22B 1-off bf16 x128"):
        assert abs(steps[row].rel_error) < 0.10, row


_STAGES = {(c.row.split(" (")[0], c.quantity): c for c in stage_checks()}


def test_stage_report_rows_are_shown_without_a_tolerance():
    """nemo_rl_stage_reports.csv in `rlsim validate`: every published stage of both B200 recipes (their refit times
    from two other jobs of the same report, the 30B-A3B on 16 GPUs from its older reference run), report only; the
    two stages a scenario constant is fitted on say so."""
    assert len(_STAGES) == 13 and all(c.tolerance is None for c in _STAGES.values())
    assert ("B200 Qwen3-30B-A3B x32", "policy_training s (fitted)") in _STAGES
    fitted = _STAGES[("B200 Qwen3-235B-A22B x128", "generation s (fitted)")]
    assert abs(fitted.rel_error) < 0.005


LOGPROBS = ("one logprob efficiency, fitted on the paper's Qwen3-8B (RL-Think), cannot serve both MoE recipes: the "
            "235B's passes come out 14% slow (16.3 s vs 14.3 s) while the 30B-A3B's are 40% fast (9.1 s vs 15.0 s), "
            "and a third of training's per-MoE-layer overhead in each forward pass (+7.6 s on the 30B, +6.2 s on the "
            "235B: 1344 and 1105 MoE layer passes a stage) would bring the 30B to about +11% but the 235B to +57%")


def test_b200_235b_logprob_passes():
    """Held out (the logprob efficiency is fitted on the paper's Qwen3-8B): 16.3 s vs 14.3 s, +14% (+15.6% when its
    batches were free draws 1.6% longer than the H100 row's published mean)."""
    assert abs(_STAGES[("B200 Qwen3-235B-A22B x128", "policy_and_reference_logprobs s")].rel_error) < 0.15


@pytest.mark.xfail(strict=True, reason=LOGPROBS)
def test_b200_30b_logprob_passes():
    assert abs(_STAGES[("B200 Qwen3-30B-A3B x32", "policy_and_reference_logprobs s")].rel_error) < 0.2


@pytest.mark.xfail(strict=True, reason="colocated refit of the MoE recipes is short: 6.5 s vs 11.4 s reported for "
                   "the 30B-A3B (-43%), 11.4 s vs 15.7 s for the 235B (-27%); rlsim prices the trainer-state offload, "
                   "vLLM's sleep-mode weight restore and the IPC copies (HBM traffic and a measured host cost per "
                   "tensor copy), not the trainer's gather of the export over expert-parallel ranks nor vLLM's "
                   "per-tensor MoE weight loading")
@pytest.mark.parametrize("row", ["Qwen3-30B-A3B x32 | 507302", "Qwen3-235B-A22B x128 | 507112"])
def test_b200_colocated_refit(row):
    model, job = row.split(" | ")
    assert abs(_STAGES[(f"B200 {model}", f"weight_sync s (job {job})")].rel_error) < 0.2


def test_validate_only_stages_prints_them_and_fails_nothing():
    p = run_cli("validate", "--only", "stages", "--json")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert len(out["checks"]) == 13 and out["failed"] == 0 and out["passed"] == 0
    assert {c["table"] for c in out["checks"]} == {"nemo_rl_stage_reports"} and "projection_235b" not in out


_V03 = {(c.row, c.quantity): c for c in v03_checks()}
_BLOG = ("Llama-3.1-8B-Instruct x8", "Llama-3.1-70B x64", "Qwen3-32B x64", "Qwen3-30B-A3B x64")


def test_v03_rows_are_shown_without_a_tolerance():
    """nemo_rl_v03_stage_times.csv in `rlsim validate`: five timers of each of the blog's four Megatron runs and of the
    two reruns in NVIDIA-NeMo/RL #959, report only (the GPU is assumed, the two measurements of one config differ)."""
    assert len(_V03) == 30 and all(c.tolerance is None for c in _V03.values())
    p = run_cli("validate", "--only", "v03", "--json")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert len(out["checks"]) == 30 and out["failed"] == 0 and out["passed"] == 0


def test_v03_rerun_rows_run_their_config_at_their_own_length():
    """A rerun row is the blog's config at the rerun's published mean length: the 8B rerun's 811 tokens against the
    blog's 795 generate longer."""
    blog = _V03[("blog H100 Llama-3.1-8B-Instruct x8", "generation s")]
    rerun = _V03[("issue959 H100 Llama-3.1-8B-Instruct x8", "generation s")]
    assert rerun.predicted > blog.predicted


def test_v03_blog_generation_held_out():
    """Nothing is fitted on the v0.3 blog: its four generation times (vLLM 0.9/0.10, colocated, the LLM class) are
    predicted within 20% (-3.6%, -13.3%, -5.5%, -17.4% today; all fast)."""
    for row in _BLOG:
        assert abs(_V03[(f"blog H100 {row}", "generation s")].rel_error) < 0.2, row


def test_v03_blog_step_times_held_out():
    """The blog's step times: 3 of 4 within 20% (8B -7.7%, 32B -6.1%, 30B-A3B -16.0%; the 70B -20.1%, whose refit
    is half the published 14 s); the #959 reruns of the same configs are 4% and 21% slower than the blog."""
    steps = [_V03[(f"blog H100 {row}", "total_step_time s")] for row in _BLOG]
    assert sum(abs(c.rel_error) < 0.2 for c in steps) >= 3
    assert all(c.rel_error < 0.05 for c in steps)  # none slow: every stage but two is under-predicted


@pytest.mark.xfail(strict=True, reason="colocated refit of the large models is short on the v0.3 blog too: 70B "
                   "7.1 s vs 14 s, Qwen3-32B 3.7 s vs 7 s, 30B-A3B 4.0 s vs 12 s (the 8B +18%); rlsim does not "
                   "price the trainer's gather of the export over its tensor, pipeline and expert-parallel ranks nor "
                   "the refit's rounds through a buffer of 20% of free memory (NRL_REFIT_BUFFER_MEMORY_RATIO, "
                   "sec. 3.18)")
@pytest.mark.parametrize("row", _BLOG[1:])
def test_v03_blog_colocated_refit(row):
    assert abs(_V03[(f"blog H100 {row}", "weight_sync s")].rel_error) < 0.3


@pytest.mark.xfail(strict=True, reason="the 30B-A3B's logprob passes are 49% fast on the v0.3 blog too "
                   "(11.7 s vs 23 s); " + LOGPROBS)
def test_v03_blog_30b_logprob_passes():
    assert abs(_V03[("blog H100 Qwen3-30B-A3B x64", "policy_and_reference_logprobs s")].rel_error) < 0.2
