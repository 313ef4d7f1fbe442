"""vLLM's own FlashAttention-3 decode/verify kernel measured on the H200 (calibration/h200/measured/attn_vllm_fa3.csv,
held-out batches in calibration/h200/measured/heldout/attn_vllm_fa3_mixed.csv): the table reads as its own backend,
the fitted curve predicts batches it was not fitted on, and FA3's split-KV schedule, fitted on measured batches of
mixed contexts, predicts held-out ones."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import ROOT
from simulator.costmodel.attention import decode_attention_time
from simulator.costmodel.fa3_schedule import schedule_factor, schedule_time, split_counts, uniform_times
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


def test_mixed_context_batches_held_out_are_predicted_within_5_percent(heldout):
    """FA3's split schedule was fitted on other batches (calibration/h200/measured/attn_vllm_fa3_varlen.csv:
    lognormal, bimodal, one-straggler and evenly spread contexts); the 12 held-out batches of 64 and 128 sequences
    whose contexts are drawn uniformly in [64, 8192] (calibration/h200/measure_vllm_fa3.py) are predicted
    within 1.5% median, 6.5% at worst (the tables alone, pricing every sequence at its own context: 18.5% too
    fast; the phase model this replaces: 16.3%)."""
    mixed = heldout[heldout["kind"] == "mixed"]
    c = H200.efficiency.attention["vllm_fa3"]
    assert c.split_schedule is not None
    e = np.abs(_errors(mixed, "vllm_fa3"))
    assert np.median(e) < 0.05
    assert e.max() < 0.12
    us = mixed["us"].to_numpy(float)
    plain = predict_mixed(c.model_copy(update={"split_schedule": None}), mixed, H200.hbm_bandwidth,
                          H200.peak("bf16")) / us - 1
    assert np.median(np.abs(plain)) > 2 * np.median(e)


def test_the_split_rule_reproduces_the_splits_fa3_made():
    """FA3's own scheduler metadata recorded per sequence (splits_list) for every measured batch that vLLM runs in a
    CUDA graph (at most 512 new tokens, splits capped at 32): the rule from its source gives the same counts."""
    df = pd.read_csv(MEASURED / "attn_vllm_fa3_varlen.csv")
    s = H200.efficiency.attention["vllm_fa3"].split_schedule
    graph = df[df["batch"] * df["q_len"] <= s.graph_tokens]
    assert len(graph) == 432
    for r in graph.itertuples():
        ctx = np.array(str(r.ctx_list).split(), dtype=float)
        got = split_counts(s, ctx, int(r.hkv), graph=True)
        assert got.tolist() == [float(v) for v in str(r.splits_list).split()], r.Index
    # above the graph size vLLM lets the kernel choose: one split for a batch of 256 sequences
    assert split_counts(s, np.full(256, 8192.0), 1, graph=False).max() == 1


def test_the_schedule_leaves_equal_contexts_alone_and_a_straggler_costs_at_least_itself():
    """An equal-context batch of one wave costs what the tables say; a batch with a straggler costs at least the
    straggler alone and the short sequences alone, and more than the tables pricing each sequence at its own context."""
    c = H200.efficiency.attention["vllm_fa3"]
    plain = c.model_copy(update={"split_schedule": None})
    bw, pk = H200.hbm_bandwidth, H200.peak("bf16")

    def t(curve, ctx, q_len=1):
        return decode_attention_time(curve, pk, bw, np.asarray(ctx, dtype=float), q_len, 8, 1, 128)

    assert t(c, [4096] * 64) == t(plain, [4096] * 64)
    for q_len in (1, 4):  # 256 tokens: FA3 splits the straggler; 1,024: one split each, the straggler on one CTA
        mixed = [512] * 255 + [8192]
        assert t(c, mixed, q_len) >= max(t(c, [8192], q_len), t(c, [512] * 255, q_len))
        assert t(c, mixed, q_len) > t(plain, mixed, q_len)
    assert t(c, [512] * 255 + [8192], 4) > 1.5 * t(c, [512] * 255 + [8192], 1)


def test_the_closed_form_for_equal_contexts_is_the_list_schedule():
    """The uniform twin's schedule in closed form (waves of `ctas` equal items) equals the list schedule of the same
    items, for batches under one wave, over several and with splits."""
    s = H200.efficiency.attention["vllm_fa3"].split_schedule
    bw = H200.hbm_bandwidth
    for batch, ctx, hkv, q_len in ((1, 512, 8, 1), (8, 2240, 8, 1), (100, 777, 4, 1), (256, 8192, 1, 4),
                                   (512, 1500, 8, 1)):
        graph = batch * q_len <= s.graph_tokens
        heap = schedule_time(s, bw, np.full(batch, float(ctx)), hkv, 512.0, graph)
        closed = uniform_times(s, bw, batch, float(ctx), hkv, 512.0, graph)[0]
        assert closed == pytest.approx(heap, rel=1e-12)


@pytest.fixture(scope="module")
def heldout_varlen():
    """A second held-out set: batches of 48-384 sequences, q_len 1 / 2 / 4, contexts from a wider lognormal and a
    few long among many short, another seed (calibration/h200/measure_vllm_fa3_varlen.py --heldout)."""
    df = pd.read_csv(MEASURED / "heldout" / "attn_vllm_fa3_varlen_heldout.csv")
    c = H200.efficiency.attention["vllm_fa3"]
    df["pred"] = predict_mixed(c, df, H200.hbm_bandwidth, H200.peak("bf16"))
    df["plain"] = predict_mixed(c.model_copy(update={"split_schedule": None}), df, H200.hbm_bandwidth,
                                H200.peak("bf16"))
    twin = df["dist"].str.endswith("_mean")
    return df[~twin].reset_index(drop=True), df[twin].reset_index(drop=True)


def test_a_second_held_out_set_of_mixed_batches_is_predicted(heldout_varlen):
    """144 mixed batches at batch sizes, q_len and context draws the fit never saw: measured 2.9% median, 8.5% at
    the 90th percentile (the tables alone 14.8% too fast). The schedule's own part, the mixed batch's time over its
    twin's, is 2.3% median, 10.2% at worst; FA3's split counts are reproduced for all 216 CUDA-graph batches."""
    mixed, twin = heldout_varlen
    e = mixed["pred"] / mixed["us"] - 1
    assert np.median(np.abs(e)) < 0.05
    assert np.percentile(np.abs(e), 90) < 0.15
    assert np.median(np.abs(e)) < 0.5 * np.median(np.abs(mixed["plain"] / mixed["us"] - 1))
    ratio = (mixed["pred"] / twin["pred"]) / (mixed["us"] / twin["us"]) - 1
    assert np.median(np.abs(ratio)) < 0.05
    assert np.abs(ratio).max() < 0.15
    s = H200.efficiency.attention["vllm_fa3"].split_schedule
    graph = pd.concat([mixed, twin])
    graph = graph[graph["num_splits"] > 0]
    assert len(graph) == 216
    for r in graph.itertuples():
        got = split_counts(s, np.array(str(r.ctx_list).split(), dtype=float), int(r.hkv), graph=True)
        assert got.tolist() == [float(v) for v in str(r.splits_list).split()]


def test_equal_context_batches_between_the_measured_sizes_are_predicted_with_fa3_waves(heldout_varlen):
    """The tables describe equal-context batches with the work spread evenly; FA3 runs in whole waves of 132 CTAs
    (48 sequences x 1 KV head x 3 splits = 144 work items: two waves, 22% slower than the tables interpolate).
    With the wave factor the held-out twins are 2.3% median, 9.1% at the 90th percentile (19.4% without)."""
    _, twin = heldout_varlen
    e = np.abs(twin["pred"] / twin["us"] - 1)
    assert np.median(e) < 0.05
    assert np.percentile(e, 90) < 0.15
    s = H200.efficiency.attention["vllm_fa3"].split_schedule
    assert schedule_factor(s, H200.hbm_bandwidth, np.full(48, 2947.0), 1, 512.0, True) > 1.2
    assert schedule_factor(s, H200.hbm_bandwidth, np.full(64, 2947.0), 1, 512.0, True) == pytest.approx(1.0)
