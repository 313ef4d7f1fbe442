"""Importers of vLLM / NeMo-RL / SpecDecode-Bench outputs, on hand-written sample files whose
expected numbers were worked out by hand from the numbers written in them."""
from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pytest

from simulator.errors import RlsimError
from simulator.specdec.acceptance import tau_iid
from simulator.specdec.importers import FORMATS, profile_from_measurement, read

DATA = Path(__file__).parent / "data" / "acceptance"


def d(name: str) -> str:
    return str(DATA / name)


def test_registry_lists_every_format():
    assert set(FORMATS) == {"specdecode-bench", "vllm-metrics", "vllm-log", "vllm-bench", "nemo-rl"}
    with pytest.raises(RlsimError):
        read("sglang", [d("vllm_current.log")])


def test_vllm_metrics_two_scrapes_difference_summed_over_engines():
    # engine 0: +600 drafts, per-pos +500 +350 +250; engine 1: +400, +300 +250 +150; accepted +1100 +700
    m = read("vllm-metrics", [d("metrics_before.prom"), d("metrics_after.prom")])
    assert m.k == 3 and m.num_drafts == 1000
    assert m.unconditional_rates == pytest.approx((0.8, 0.6, 0.4))
    assert m.mean_acceptance_length == pytest.approx(2.8)
    p = profile_from_measurement(m)
    assert p.conditional_rates == pytest.approx([0.8, 0.75, 0.4 / 0.6], abs=1e-6)
    assert p.source.files == [d("metrics_before.prom"), d("metrics_after.prom")]
    assert p.model().tau(3) == pytest.approx(2.8)


def test_vllm_metrics_one_scrape_is_cumulative():
    m = read("vllm-metrics", [d("metrics_after.prom")])
    assert m.num_drafts == 1300  # 700 + 600
    assert m.unconditional_rates == pytest.approx((1010 / 1300, 750 / 1300, 490 / 1300))
    assert m.mean_acceptance_length == pytest.approx(1 + 2250 / 1300)


def test_vllm_metrics_underscore_names_without_total_suffix():
    m = read("vllm-metrics", [d("metrics_get_metrics.txt")])
    assert (m.k, m.num_drafts) == (3, 50)
    assert m.unconditional_rates == pytest.approx((0.8, 0.4, 0.2))


def test_vllm_metrics_errors():
    with pytest.raises(RlsimError, match="went down"):
        read("vllm-metrics", [d("metrics_after.prom"), d("metrics_before.prom")])
    with pytest.raises(RlsimError, match="one scrape, or two"):
        read("vllm-metrics", [d("metrics_before.prom")] * 3)
    with pytest.raises(RlsimError, match="k=3"):
        read("vllm-metrics", [d("metrics_after.prom")], k=5)


def test_vllm_log_current_format_weights_lines_by_drafts():
    # drafts per line = Drafted / 3: 200 and 400; the idle line (0 drafted) carries no weight
    m = read("vllm-log", [d("vllm_current.log")])
    assert m.k == 3 and m.num_drafts == pytest.approx(600)
    assert m.unconditional_rates == pytest.approx((0.8, 0.6, 0.4))
    assert m.mean_acceptance_length == pytest.approx(1 + 1080 / 600)


def test_vllm_log_older_format():
    # k = 4 rates per line; drafts 100 and 300
    m = read("vllm-log", [d("vllm_old.log")])
    assert m.k == 4 and m.num_drafts == pytest.approx(400)
    assert m.unconditional_rates == pytest.approx((0.75, 0.55, 0.45, 0.275))
    assert m.mean_acceptance_length == pytest.approx(1 + 810 / 400)


def test_vllm_log_gzipped(tmp_path):
    gz = tmp_path / "vllm.log.gz"
    gz.write_bytes(gzip.compress((DATA / "vllm_current.log").read_bytes()))
    assert read("vllm-log", [str(gz)]).unconditional_rates == pytest.approx((0.8, 0.6, 0.4))


def test_vllm_log_several_files_are_aggregated(tmp_path):
    second = tmp_path / "second.log"
    shutil.copy(DATA / "vllm_current.log", second)
    m = read("vllm-log", [d("vllm_current.log"), str(second)])
    assert m.num_drafts == pytest.approx(1200)
    assert m.unconditional_rates == pytest.approx((0.8, 0.6, 0.4))


def test_vllm_bench_result():
    m = read("vllm-bench", [d("bench_result.json")])
    assert (m.k, m.num_drafts) == (3, 500)
    assert m.unconditional_rates == pytest.approx((0.9, 0.7, 0.5))
    assert m.mean_acceptance_length == pytest.approx(3.1)


def test_vllm_bench_length_only_is_iid():
    m = read("vllm-bench", [d("bench_length_only.json")])
    assert m.k == 4 and m.unconditional_rates is None  # k from 400 draft tokens / 100 drafts
    p = profile_from_measurement(m, method="eagle3")
    alpha = p.conditional_rates[0]
    assert p.conditional_rates == pytest.approx([alpha] * 4)
    assert tau_iid(alpha, 4) == pytest.approx(2.5, abs=1e-5)


def test_nemo_rl_jsonl_weights_steps_by_drafts():
    # steps: 1000 drafts at .8/.6/.4 and 3000 at .6/.4/.2; a line without spec keys is skipped
    m = read("nemo-rl", [d("nemo_rl_metrics.jsonl")])
    assert (m.k, m.num_drafts) == (3, 4000)
    assert m.unconditional_rates == pytest.approx((0.65, 0.45, 0.25))
    assert m.mean_acceptance_length == pytest.approx(2.35)


def test_nemo_rl_nested_json_without_per_position_rates():
    # 200 drafts at 2.5 and 600 at 3.5, k = 800 / 200 = 4
    m = read("nemo-rl", [d("nemo_rl_metrics.json")])
    assert m.k == 4 and m.unconditional_rates is None
    assert m.mean_acceptance_length == pytest.approx((2.5 * 200 + 3.5 * 600) / 800)


def test_specdecode_bench_small_trace():
    # worked on paper: replay tau 1.5, 1.8, 2.0 at k = 1, 2, 3 (see test_acceptance.test_replay_by_hand)
    m = read("specdecode-bench", [d("specdecode_small.jsonl")], k=3)
    assert m.method == "eagle3" and m.k == 3
    assert m.unconditional_rates == pytest.approx((0.5, 0.3, 0.2))
    assert m.num_drafts_per_position == (12, 10, 9)
    assert [k for k, _ in m.measured_tau] == [1, 2, 3]
    assert [t for _, t in m.measured_tau] == pytest.approx([1.5, 1.8, 2.0])
    p = profile_from_measurement(m)
    assert p.model().taus([1, 2, 3]) == pytest.approx([1.5, 1.8, 2.0], abs=1e-5)
    n = read("specdecode-bench", [d("specdecode_small.jsonl")], proposer="ngram", k=2)
    assert n.method == "ngram"  # 18 tokens in 17 steps at any k
    assert n.unconditional_rates == pytest.approx((1 / 17, 0.0))


def test_specdecode_bench_rejects_bad_proposer_and_rows(tmp_path):
    with pytest.raises(RlsimError, match="proposer"):
        read("specdecode-bench", [d("specdecode_small.jsonl")], proposer="medusa")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"acc_eagle": {"acc_len": [1, 2]}}\n{"acc_eagle": {"acc_len": [1, 0, 2]}}\n')
    with pytest.raises(RlsimError) as e:
        read("specdecode-bench", [str(bad)])
    assert e.value.field == f"{bad}:2"
