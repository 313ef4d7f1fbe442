"""Predictions against published figures (rlsim validate), kept in the suite.

Checks outside tolerance today are strict xfails with their reason: they document the discrepancy, and an xpass
(a model change that makes one pass) fails the suite until the list is updated.
"""
from __future__ import annotations

import json

import pytest

from conftest import run_cli
from simulator.validation.published import nemo_rl_checks, paper_checks, stage_checks

GB200 = ("GB200 profile transferred from H200 (no Blackwell measurements); published GB200 NeMo-RL runs reach only "
         "1.0-2.8x H100's per-GPU throughput")
CPU = ("vLLM's per-sequence CPU cost (measured on vLLM 0.17.1, 26-29 us per sequence per iteration without async "
       "scheduling) slows the generation-bound async rows; their hosts' CPUs may be faster than the measuring "
       "host's (an assumption, calibration/vllm_cpu/README.md)")
LATENCY = ("the 1-off step is latency-bound in rlsim: co-simulated with NeMo-RL's collector, a batch of "
           "lognormal-tailed responses (sigma 0.8, an assumption) needs 72 s on the 8 generation GPUs, its stragglers "
           "decoding beside the next batch (70 s a step, +8%), against the published 64.8 s step, while the "
           "on-policy row is 7% fast")
KNOWN = {
    ("H100 Qwen3-30B-A3B 8-off bf16 x192", "step s"):
        "8-off step 23% slow, generation-bound: the 64-GPU pool needs 43 s per batch (TP 2 engines of 128 "
        "sequences, no async scheduling on the Ray executor); " + CPU,
    ("H100 Qwen3-235B-A22B 1-off x256 / on x128", "off/on step-time ratio"):
        "1-off row 9% slow (generation-bound: NeMo-RL's collector keeps at most 16 prompt groups in flight, each "
        "until its slowest sample, about 8082 decode steps at TP 8), on-policy row 10% fast",
    ("GB200 Llama-3.1-8B-Instruct 1-off x8 / on x8", "off/on step-time ratio"):
        "on-policy row 15% fast (" + GB200 + "), 1-off row 5% slow",
    ("GB200 Qwen3-235B-A22B 1-off bf16 x128", "step s"): GB200,
    ("GB200 Qwen3-235B-A22B 1-off x128 / on x64", "off/on step-time ratio"):
        "1-off row 30% fast, on-policy row 15% fast (" + GB200 + ")",
    ("H100 Llama-3.1-8B-Instruct 1-off x16 / on x16", "off/on step-time ratio"): LATENCY,
    ("H100 Qwen3-30B-A3B 1-off x32 / on x32", "off/on step-time ratio"):
        "on-policy row 2% slow, 1-off row 20% slow (training-bound: logprobs 36 s + training 132 s on 16 H100 with "
        "PP 2 and EP 8, twice the on-policy row's 86 s on 32): the published pair (192 s / 152 s) implies a training "
        "side on 16 GPUs under 152 s, so rlsim's on-policy split leans too far to training",
    ("H100 Qwen3-30B-A3B 8-off x192 / on x32", "off/on step-time ratio"): "on-policy row 2% slow, 8-off 25% slow (above)",
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


def test_most_nemo_rl_step_times_hold():
    """A floor under the step rows: 15 of 17 within 20% since vLLM's TP all-reduce is priced on its own backends
    (the H100 235B 1-off row: +26% -> +9%; 14 before, 13 before the H100 FP8 row trained in FP8, 12 before the H100
    profile priced vLLM's FA3 attention, 10 before MoE training paid its fitted per-layer overhead; H100 10 of 11,
    GB200 5 of 6)."""
    steps = [c for c in _NEMO if c.quantity == "step s"]
    h100 = [c for c in steps if c.row.startswith("H100")]
    assert len(steps) == 17 and sum(c.ok for c in steps) >= 15
    assert len(h100) == 11 and sum(c.ok for c in h100) >= 10


_STAGES = {(c.row.split(" (")[0], c.quantity): c for c in stage_checks()}


def test_stage_report_rows_are_shown_without_a_tolerance():
    """nemo_rl_stage_reports.csv in `rlsim validate`: every published stage of both B200 recipes (their refit times
    from two other jobs of the same report, the 30B-A3B on 16 GPUs from its older reference run), report only."""
    assert len(_STAGES) == 13 and all(c.tolerance is None for c in _STAGES.values())
    assert ("B200 Qwen3-30B-A3B x32", "policy_training s (fitted)") in _STAGES


@pytest.mark.parametrize("stage", ["generation s", "policy_and_reference_logprobs s", "policy_training s"])
def test_b200_235b_stages_it_was_not_fitted_on(stage):
    """Qwen3-235B-A22B on 128 B200 (its H100 recipe's scenario on B200): generation -14%, logprobs +4%, training
    -7% today; within 15% each."""
    assert abs(_STAGES[("B200 Qwen3-235B-A22B x128", stage)].rel_error) < 0.15


@pytest.mark.xfail(strict=True, reason="the 30B-A3B logprob passes are 44% fast (8.4 s vs 15.0 s): a third of training's "
                   "per-MoE-layer overhead in each forward pass would give 16.0 s (+6%) but put the 235B's logprobs "
                   "(1105 MoE layer passes a stage, as many as the 30B's 1344) at 21.1 s, +47% (now +4%)")
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
