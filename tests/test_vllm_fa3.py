"""vLLM's own FlashAttention-3 decode/verify kernel measured on the H200 (calibration/h200/measured/attn_vllm_fa3.csv,
held-out batches in calibration/h200/measured/heldout/attn_vllm_fa3_mixed.csv): the table reads as its own backend,
the fitted curve predicts batches it was not fitted on, and what it does not capture (batches of mixed contexts) is
recorded as a strict xfail."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import ROOT
from simulator.fit.fit_attention import cross_validate_attention, predict_mixed
from simulator.fit.measurements import Measurements, attention_backend_of, read_file
from simulator.hardware import load_hardware

MEASURED = ROOT / "calibration" / "h200" / "measured"
HELDOUT = MEASURED / "heldout" / "attn_vllm_fa3_mixed.csv"
H200 = load_hardware("h200")


@pytest.fixture(scope="module")
def rows():
    m = Measurements()
    read_file(MEASURED / "attn_vllm_fa3.csv", m)
    return m.table("attention")


@pytest.fixture(scope="module")
def heldout():
    return pd.read_csv(HELDOUT)


def _errors(df: pd.DataFrame, backend: str) -> np.ndarray:
    c = H200.efficiency.attention[backend]
    return predict_mixed(c, df, H200.hbm_bandwidth, H200.peak("bf16")) / df["us"].to_numpy(float) - 1


def test_the_table_is_its_own_backend_in_every_profile(rows):
    assert set(rows["backend"]) == {"vllm_fa3"}
    assert attention_backend_of("attn_vllm_fa3.csv") == "vllm_fa3"
    assert attention_backend_of("attn_sdpa_gqa.csv") == "sdpa_gqa"
    assert attention_backend_of("attn_extra.csv") == "packed"
    # decode (q_len 1) and EAGLE verify (q_len 4) for the six (query, KV) head shapes the scenarios run
    assert set(rows["q_len"]) == {1, 4} and rows.groupby(["hq", "hkv"]).ngroups == 6
    for name in ("h200", "h100", "a100", "b200", "gb200"):
        assert "vllm_fa3" in load_hardware(name).efficiency.attention, name


def test_rows_held_out_in_turn_are_predicted(rows):
    """5-fold cross-validation over the 288 timings: measured 2.4% median, 16% at the 90th percentile (the worst
    rows are single sequences, whose few microseconds the fixed overhead dominates)."""
    e = np.abs(cross_validate_attention(rows.reset_index(drop=True), H200.hbm_bandwidth, H200.peak("bf16")))
    assert np.median(e) < 0.05
    assert np.percentile(e, 90) < 0.25


def test_uniform_batches_at_contexts_off_the_grid_are_predicted(heldout):
    """Batches of 64 and 128 sequences at the mean of a random draw (3.9K-4.8K tokens, between the fitted 4K and 8K
    columns), not fitted on: measured 0.1-9.4% off, median 0.6%."""
    e = np.abs(_errors(heldout[heldout["kind"] == "uniform"], "vllm_fa3"))
    assert np.median(e) < 0.03
    assert e.max() < 0.15


def test_the_packed_stand_in_is_slower_than_the_kernel_vllm_runs(heldout):
    """The harness's packed attention (FlashAttention-2 through SDPA), which rlsim's profiles use by default, takes
    longer than vLLM's FA3 on the same held-out batches: measured +30% median over the 24 (+18% on the mixed-context
    ones, +42% on the uniform ones). Hopper decode steps with the default backend are on the slow side for it
    (README, 'Fidelity')."""
    e = _errors(heldout, "packed")
    assert np.median(e) > 0.15


@pytest.mark.xfail(strict=True, reason="the curve is fitted on batches of equal contexts; FA3 takes 5-47% longer "
                                       "(median 19%) on batches whose contexts spread over 64-8192 tokens than the "
                                       "curve predicts from each sequence's bytes (its split scheduling is not "
                                       "modelled)")
def test_mixed_context_batches_are_predicted_within_15_percent(heldout):
    e = np.abs(_errors(heldout[heldout["kind"] == "mixed"], "vllm_fa3"))
    assert np.median(e) < 0.15
