"""vLLM's own FlashAttention-3 decode/verify kernel measured on the H200 (calibration/h200/measured/attn_vllm_fa3.csv,
held-out batches in calibration/h200/measured/heldout/attn_vllm_fa3_mixed.csv): the table reads as its own backend,
the fitted curve predicts batches it was not fitted on, and what it does not capture (batches of mixed contexts) is
recorded as a strict xfail."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import ROOT
from simulator.costmodel.attention import decode_attention_time
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
    """5-fold cross-validation over the 288 timings: measured 1.7% median, 11.5% at the 90th percentile (the worst
    rows are single sequences, whose few microseconds the fixed overhead dominates)."""
    e = np.abs(cross_validate_attention(rows.reset_index(drop=True), H200.hbm_bandwidth, H200.peak("bf16")))
    assert np.median(e) < 0.05
    assert np.percentile(e, 90) < 0.25


def test_uniform_batches_at_contexts_off_the_grid_are_predicted(heldout):
    """Batches of 64 and 128 sequences at the mean of a random draw (3.9K-4.8K tokens, between the fitted 4K and 8K
    columns), not fitted on: measured 0.0-2.1% off, median 0.4%."""
    e = np.abs(_errors(heldout[heldout["kind"] == "uniform"], "vllm_fa3"))
    assert np.median(e) < 0.03
    assert e.max() < 0.15


def test_the_packed_stand_in_is_slower_than_the_kernel_vllm_runs(heldout):
    """The harness's packed attention (FlashAttention-2 through SDPA), the H200 profile's default (the shared
    harness's kernel), takes longer than vLLM's FA3 on the same held-out batches: measured +32% median over the 24
    (+20% on the mixed-context ones, +43% on the uniform ones). The H100 profile, which prices what vLLM runs,
    defaults to vllm_fa3."""
    e = _errors(heldout, "packed")
    assert np.median(e) > 0.15


def test_mixed_batches_in_phases_beat_the_plain_curve_on_held_out_batches(heldout):
    """`phase_sharing` was chosen on other batches (calibration/h200/measured/attn_vllm_fa3_varlen.csv: lognormal,
    bimodal, one-straggler and evenly spread contexts); on the held-out uniform draws it leaves a smaller error than
    the plain curve: measured median 16.3% against 18.5%."""
    mixed = heldout[heldout["kind"] == "mixed"]
    c = H200.efficiency.attention["vllm_fa3"]
    assert c.phase_sharing
    us = mixed["us"].to_numpy(float)
    plain = predict_mixed(c.model_copy(update={"phase_sharing": False}), mixed, H200.hbm_bandwidth,
                          H200.peak("bf16")) / us - 1
    assert np.median(np.abs(_errors(mixed, "vllm_fa3"))) < np.median(np.abs(plain))


@pytest.mark.xfail(strict=True, reason="in phases the curve still predicts batches whose contexts spread over "
                                       "64-8192 tokens 16% too fast (0-25%, held out): FA3 sizes its KV splits to "
                                       "the batch's total and caps them at 32, and hands the tiles to persistent "
                                       "CTAs in batch order; that scheduling is not modelled")
def test_mixed_context_batches_are_predicted_within_15_percent(heldout):
    e = np.abs(_errors(heldout[heldout["kind"] == "mixed"], "vllm_fa3"))
    assert np.median(e) < 0.15


def test_phases_leave_equal_contexts_alone_and_never_beat_a_part_of_the_batch():
    """In phases an equal-context batch costs what the table says, and a batch with a straggler costs at least its
    straggler alone and its short sequences alone (the no-overlap and full-overlap limits bracket the time)."""
    c = H200.efficiency.attention["vllm_fa3"]
    plain = c.model_copy(update={"phase_sharing": False})
    bw, pk = H200.hbm_bandwidth, H200.peak("bf16")

    def t(curve, ctx):
        return decode_attention_time(curve, pk, bw, np.asarray(ctx, dtype=float), 1, 8, 1, 128)

    assert t(c, [4096] * 64) == t(plain, [4096] * 64)
    mixed = [512] * 63 + [8192]
    assert t(c, mixed) >= max(t(c, [8192]), t(c, [512] * 63))
    assert t(c, mixed) > t(plain, mixed)
