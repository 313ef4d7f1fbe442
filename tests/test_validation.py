"""Predictions against published figures (rlsim validate), kept in the suite.

Checks outside tolerance today are strict xfails with their reason: they document the discrepancy, and an xpass
(a model change that makes one pass) fails the suite until the list is updated.
"""
from __future__ import annotations

import pytest

from simulator.validation.published import nemo_rl_checks, paper_checks

GB200 = ("GB200 profile transferred from H200 (no Blackwell measurements); published GB200 NeMo-RL runs reach only "
         "1.0-2.8x H100's per-GPU throughput")
MOE30 = ("with MoE training at ~19% MFU (measured grouped GEMMs, EP all-to-alls on NVLink), the colocated "
         "state offload at measured host-copy rates and vLLM's measured per-sequence CPU cost, the on-policy step "
         "is 26% fast; the published on / 1-off pair (192 s / 152 s) implies ~115 s of generation on 32 H100s "
         "where rlsim predicts 90 s, or per-step costs rlsim does not model")
CPU = ("vLLM's per-sequence CPU cost (measured on vLLM 0.17.1, 26-29 us per sequence per iteration without async "
       "scheduling) slows the generation-bound async rows; their hosts' CPUs may be faster than the measuring "
       "host's (an assumption, calibration/vllm_cpu/README.md)")
KNOWN = {
    ("H100 Qwen3-30B-A3B on bf16 x32", "step s"): MOE30,
    ("H100 Qwen3-30B-A3B 8-off bf16 x192", "step s"): "8-off step 22% slow: " + CPU,
    ("GB200 Llama-3.1-8B-Instruct on bf16 x8", "step s"): GB200,
    ("GB200 Qwen3-235B-A22B on bf16 x64", "step s"): GB200, ("GB200 Qwen3-235B-A22B 1-off bf16 x128", "step s"): GB200,
    ("GB200 Qwen3-30B-A3B on bf16 x16", "step s"): GB200, ("GB200 Qwen3-30B-A3B 1-off bf16 x16", "step s"): GB200,
    ("GB200 Qwen3-235B-A22B 1-off x128 / on x64", "off/on step-time ratio"): GB200,
    ("GB200 Qwen3-30B-A3B 1-off x16 / on x16", "off/on step-time ratio"): GB200,
    ("H100 Llama-3.1-8B-Instruct 1-off x16 / on x16", "off/on step-time ratio"):
        "on-policy row 16% fast, 1-off row 18% slow: the same measured vLLM CPU cost slows both (v0.5: vLLM 0.11.2, no "
        "async scheduling); the published pair implies a cost on the colocated step rlsim does not model",
    ("H100 Llama-3.1-8B-Instruct 1-off fp8 x16 / on x16", "off/on step-time ratio"):
        "the published FP8 run also trained in FP8 (its recipe: BF16 training); the async step is training-bound",
    ("H100 Qwen3-30B-A3B 1-off x32 / on x32", "off/on step-time ratio"): "on-policy row 26% fast (above)",
    ("H100 Qwen3-30B-A3B 8-off x192 / on x32", "off/on step-time ratio"): "on-policy row 26% fast, 8-off 22% slow (above)",
    ("GB200 Llama-3.1-8B-Instruct 1-off x8 / on x8", "off/on step-time ratio"): GB200,
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


def test_most_h100_nemo_rl_step_times_hold():
    h100 = [c for c in _NEMO if c.row.startswith("H100") and c.quantity == "step s"]
    assert len(h100) == 11 and sum(c.ok for c in h100) >= 9
