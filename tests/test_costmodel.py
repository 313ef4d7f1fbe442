"""Properties of the per-operator cost functions and the step model (each could fail if the model broke)."""
from __future__ import annotations

import numpy as np
import pytest

from simulator.costmodel.attention import decode_attention_time, fluid_time
from simulator.costmodel.collectives import collective_time
from simulator.costmodel.gemm import gemm_time
from simulator.costmodel.memory import check_batch_fits, memory_plan
from simulator.costmodel.moe import expected_experts_touched
from simulator.costmodel.parallelism import Parallelism
from simulator.costmodel.step import CLASSES, StepCostModel
from simulator.errors import RlsimError
from simulator.hardware import load_hardware


@pytest.fixture(scope="module")
def h200():
    return load_hardware("h200")


def test_gemm_roofline_regimes(h200):
    c = h200.efficiency.gemm["bf16"]
    t = [float(gemm_time(c, 989e12, 4.8e12, m, 14336 * 2, 4096)) for m in (1, 16, 64, 2048, 8192)]
    # memory-bound at small m: reading 235 MB of weights takes ~50-70 us whatever m is
    assert 40e-6 < t[1] < 80e-6 and abs(t[2] / t[1] - 1) < 0.25
    # compute-bound at large m: time grows ~linearly with m, below the datasheet peak
    assert t[4] / t[3] == pytest.approx(4.0, rel=0.25)
    assert 2 * 8192 * 28672 * 4096 / t[4] < 989e12


def test_fp8_is_faster_when_compute_bound():
    bf = StepCostModel("h200", "llama-3.1-8b", dtype="bf16")
    f8 = StepCostModel("h200", "llama-3.1-8b", dtype="fp8")
    q, c = np.full(256, 16), np.full(256, 1024)  # 4096 tokens: compute-bound GEMMs
    assert f8.step(q, c).breakdown["gemm"] < 0.75 * bf.step(q, c).breakdown["gemm"]


def test_step_time_grows_with_context_and_batch():
    sm = StepCostModel("h200", "qwen3-8b")
    t = lambda b, ctx, q=1: sm.step_time(np.full(b, q), np.full(b, ctx))  # noqa: E731
    assert t(32, 1024) < t(32, 4096) < t(32, 16384)
    assert t(1, 4096) < t(16, 4096) < t(128, 4096)
    # verifying k+1 = 4 tokens per sequence costs more than decoding one, but far less than 4x at small batch
    assert t(32, 4096) < t(32, 4096, 4) < 1.5 * t(32, 4096)


def test_mixed_contexts_are_costed_per_sequence():
    sm = StepCostModel("h200", "llama-3.1-8b", attention_backend="varlen_fa2")
    rng = np.random.default_rng(1)
    ctx = np.clip(rng.lognormal(np.log(4000), 1.0, 64), 16, 131072).astype(int)
    mixed = sm.step(np.ones(64), ctx).breakdown["attention"]
    mean = sm.step(np.ones(64), np.full(64, int(ctx.mean()))).breakdown["attention"]
    assert mixed > 1.1 * mean  # the long sequences are the critical path of a varlen kernel


def test_fluid_time_reduces_to_the_bandwidth_bound_for_uniform_streams():
    # 100 equal streams sharing 1e9 B/s, cap 1e8 B/s each: bandwidth-bound
    assert fluid_time(np.full(100, 1e6), np.ones(100), 1e9, 1e8) == pytest.approx(0.1)
    # one stream alone is capped
    assert fluid_time(np.array([1e6]), np.ones(1), 1e9, 1e8) == pytest.approx(0.01)


def test_sdpa_gqa_backend_rereads_kv_for_verify(h200):
    pk, gq = h200.efficiency.attention["packed"], h200.efficiency.attention["sdpa_gqa"]
    ctx = np.full(64, 8192)
    dec = decode_attention_time(gq, 989e12, 4.8e12, ctx, 1, 32, 8, 128)
    ver = decode_attention_time(gq, 989e12, 4.8e12, ctx, 4, 32, 8, 128)
    assert ver > 2.5 * dec  # SDPA's GQA path reads the KV cache once per query head when q_len >= 2
    assert decode_attention_time(pk, 989e12, 4.8e12, ctx, 4, 32, 8, 128) < 1.3 * dec


def test_expected_experts_touched():
    assert expected_experts_touched(1, 128, 8) == pytest.approx(8.0)
    assert expected_experts_touched(2, 128, 8) == pytest.approx(128 * (1 - (120 / 128) ** 2))
    assert expected_experts_touched(10_000, 128, 8) == pytest.approx(128.0)


def test_moe_kernels_differ_at_small_batches():
    fused = StepCostModel("h200", "qwen3-30b-a3b", moe_kernel="fused")
    padded = StepCostModel("h200", "qwen3-30b-a3b", moe_kernel="padded_bmm")
    q, c = np.ones(1), np.full(1, 1024)
    # one token touches 8 of 128 experts: reading every expert's weights costs far more
    assert padded.step(q, c).breakdown["moe"] > 5 * fused.step(q, c).breakdown["moe"]


def test_tensor_parallel_splits_work_and_adds_all_reduce():
    one = StepCostModel("h200", "qwen3-32b", tp=1).step(np.ones(64), np.full(64, 2048))
    four = StepCostModel("h200", "qwen3-32b", tp=4).step(np.ones(64), np.full(64, 2048))
    assert four.breakdown["gemm"] < 0.4 * one.breakdown["gemm"]
    assert one.breakdown["comm"] == 0 and four.breakdown["comm"] > 0
    assert four.time_s < one.time_s


def test_collectives_latency_and_bandwidth(h200):
    small = collective_time(h200, "all_reduce", 4096, 8)
    big = collective_time(h200, "all_reduce", 1 << 30, 8)
    assert small > 1e-6 and big > 1e-3
    assert collective_time(h200, "all_reduce", 1 << 28, 8) > collective_time(h200, "reduce_scatter", 1 << 28, 8)
    # beyond one NVLink domain the collective runs over the slower scale-out network
    assert collective_time(h200, "all_to_all", 1 << 26, 16) > collective_time(h200, "all_to_all", 1 << 26, 8)
    assert collective_time(h200, "all_reduce", 1 << 20, 1) == 0.0


def test_breakdown_sums_to_the_step_time():
    r = StepCostModel("gb200", "deepseek-v3", tp=8, ep=8, dtype="fp8").step(np.ones(128), np.full(128, 4096))
    assert set(r.breakdown) == set(CLASSES)
    assert sum(r.breakdown.values()) == pytest.approx(r.time_s)
    assert r.breakdown["moe"] > 0 and r.breakdown["comm"] > 0


def test_prefill_chunks_use_the_prefill_kernel():
    sm = StepCostModel("h200", "llama-3.1-8b")
    pre = sm.step([2048], [2048])
    assert pre.breakdown["attention"] > 0
    # prefill of 2048 tokens is compute-bound: far more than one decode step of one sequence
    assert pre.time_s > 5 * sm.step_time([1], [2048])


def test_eager_mode_pays_launch_overhead_at_small_batches():
    sm = StepCostModel("h200", "qwen3-0.6b")
    assert sm.step_time([1], [512], cuda_graph=False) > sm.step_time([1], [512])


@pytest.mark.parametrize("kw,field", [({"tp": 3}, "tp"), ({"ep": 2}, "ep"), ({"pp": 100}, "pp"),
                                      ({"dtype": "int3"}, "dtype")])
def test_impossible_parallelism_names_the_field(kw, field):
    with pytest.raises(RlsimError) as e:
        StepCostModel("h200", "qwen3-8b", **kw)
    assert str(e.value).startswith(field)


def test_memory_overflow_says_by_how_much():
    sm = StepCostModel("h200", "qwen3-32b")
    plan = memory_plan(sm.hw, sm.model, Parallelism(), utilization=1.0)
    check_batch_fits(plan, 100_000)  # fits
    with pytest.raises(RlsimError) as e:
        check_batch_fits(plan, 4_000_000)
    assert "GiB too many" in str(e.value) and "weights" in str(e.value)


def test_memory_plan_splits_weights_and_kv_over_parallelism():
    sm = StepCostModel("h200", "qwen3-235b-a22b", tp=8)
    one = memory_plan(sm.hw, sm.model, Parallelism(8, 1, 1))
    ep = memory_plan(sm.hw, sm.model, Parallelism(4, 2, 1))
    assert one.weights == pytest.approx(235.1e9 * 2 / 8, rel=0.03)
    assert ep.weights > one.weights  # non-expert weights are split over tp only
    assert one.kv_per_token == pytest.approx(94 * 2 * 128 * 2)  # 4 KV heads over tp=8: one per GPU


def test_expert_parallel_ranks_run_their_share_of_the_dense_gemms_and_the_lm_head():
    """Attention, dense GEMMs and the lm_head are data-parallel over the ep ranks: 2N decode tokens at ep 2 cost
    each rank what N cost one GPU at ep 1 (the routed experts and all-to-alls are priced apart)."""
    one, two = StepCostModel("h200", "qwen3-30b-a3b", ep=1), StepCostModel("h200", "qwen3-30b-a3b", ep=2)
    b1 = one.step(np.ones(64, dtype=np.int64), np.full(64, 1024)).breakdown
    b2 = two.step(np.ones(128, dtype=np.int64), np.full(128, 1024)).breakdown
    assert b2["gemm"] == pytest.approx(b1["gemm"])
    assert b2["attention"] == pytest.approx(b1["attention"])
