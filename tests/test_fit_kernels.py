"""`rlsim fit kernels`: reproducibility of the committed profile, cross-validation, traces, bad input."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import ROOT, assert_one_line_error, run_cli
from simulator.costmodel.collectives import NCCL_OPS, collective_time
from simulator.costmodel.step import StepCostModel
from simulator.fit.chrome_trace import classify
from simulator.fit.fit_attention import cross_validate_attention
from simulator.fit.fit_gemm import cross_validate
from simulator.fit.measurements import Measurements, read_file
from simulator.hardware import HardwareProfile
from simulator.training.cost import TrainingCostModel, TrainSetup, colocated_offload_time

SHARED = ROOT / "calibration" / "h200" / "shared"


def _same_shape(a, b, path=""):
    """The same keys, list lengths and non-numeric values (names, notes' absence, axes of whole numbers)."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            _same_shape(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _same_shape(x, y, f"{path}[{i}]")
    elif not isinstance(a, float):
        assert a == b, path


# (batch, new tokens per sequence, context): decode, speculative verify, chunked prefill, prefill
STEP_CASES = ((1, 1, 512), (32, 1, 2048), (128, 1, 4096), (64, 4, 3000), (8, 512, 4096), (1, 2048, 2048))


def _predictions(hw: HardwareProfile) -> dict[str, float]:
    """What a profile predicts (seconds): forward steps of a dense and an MoE model over every attention backend and MoE
    kernel it has, bf16 and fp8, TP 1 and 2, in CUDA graphs and eagerly; an MoE model's training, logprobs and
    colocated offload; every collective over sizes and groups within and across hosts."""
    out = {}
    runs = [("llama-3.1-8b", tp, dtype, {"attention_backend": b}) for tp in (1, 2) for dtype in ("bf16", "fp8")
            for b in hw.efficiency.attention]
    runs += [("qwen3-30b-a3b", tp, "bf16", {"moe_kernel": k}) for tp in (1, 2) for k in hw.efficiency.moe]
    for model, tp, dtype, kw in runs:
        cost = StepCostModel(hw, model, tp=tp, dtype=dtype, all_reduce="vllm", **kw)
        for batch, q, ctx in STEP_CASES:
            name = f"{model} tp{tp} {dtype} {kw} {batch}x{q}"
            out[f"{name}@{ctx}"] = cost.step_time(np.full(batch, q), np.full(batch, ctx))
            mixed = np.linspace(max(ctx / 8, q), ctx, batch).round()  # FA3's split schedule prices unequal contexts
            out[f"{name}@{ctx}/8..{ctx}"] = cost.step_time(np.full(batch, q), mixed)
    eager = StepCostModel(hw, "llama-3.1-8b")
    for batch, q, ctx in STEP_CASES:  # launched without a CUDA graph: the fitted launch and gap costs
        out[f"eager {batch}x{q}@{ctx}"] = eager.step_time(np.full(batch, q), np.full(batch, ctx), cuda_graph=False)
    setup = TrainSetup(gpus=8, ep=8, micro_batch_tokens=4096)
    train = TrainingCostModel(hw, "qwen3-30b-a3b", setup)  # the MoE training curve
    lens = np.linspace(300, 4000, 64).round()
    out["train"] = train.train_time(lens).total_s
    out["logprobs"] = train.logprob_time(lens).total_s
    out["offload"] = colocated_offload_time(hw, train.model, setup, 10.0).total_s  # the host-copy rates
    for op in (*NCCL_OPS, "vllm_all_reduce"):
        for size in (1e3, 1e5, 1e7, 1e9):
            for group, span in ((2, 2), (4, 4), (8, 8), (8, 16), (16, 16)):
                out[f"{op} {size:g} B over {group} of {span}"] = collective_time(hw, op, size, group, span)
    return out


def _close(fresh: HardwareProfile, committed: HardwareProfile) -> None:
    """The refit predicts what the committed profile predicts within 0.01% (1e-6 apart under pandas 3.1.1; 1% more on
    the fused MoE kernel's m_eff moves a prediction 0.7%, on FA3's split-schedule bandwidth fraction 0.07%). The
    constants themselves are not compared: along a flat direction of a fit (a latency of 1e-19 s, a half-saturation
    at 1 byte) they move far more between numpy/pandas builds than any prediction does."""
    a, b = _predictions(fresh), _predictions(committed)
    worst = max(a, key=lambda k: abs(a[k] / b[k] - 1.0) if b[k] else abs(a[k]))
    assert a[worst] == pytest.approx(b[worst], rel=1e-4, abs=1e-12), worst


def test_committed_h200_profile_is_what_the_fit_command_produces(tmp_path):
    out = tmp_path / "h200.yaml"
    proc = run_cli("fit", "kernels", "--base", "h200", "calibration/h200/shared", "calibration/h200/measured",
                   "calibration/vidur/network__h100_dgx__all_reduce.csv",
                   "calibration/vidur/network__h100_dgx__send_recv.csv", "--out", str(out), "--no-cv")
    assert proc.returncode == 0, proc.stderr
    # then the vLLM all-reduce curves, as hardware_profiles/regenerate.sh does
    proc = run_cli("fit", "collectives", "calibration/collectives/vllm/h100_vllm_backends.csv", "--profile", str(out),
                   "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    fresh = HardwareProfile.load(out)
    committed = HardwareProfile.load(ROOT / "hardware_profiles" / "h200.yaml")
    a, b = fresh.to_dict(), committed.to_dict()
    a.pop("derivation"), b.pop("derivation")
    _same_shape(a, b)
    _close(fresh, committed)


@pytest.fixture(scope="module")
def shared():
    m = Measurements()
    for f in sorted(SHARED.iterdir()):
        if f.suffix in (".csv", ".gz", ".json"):
            read_file(f, m)
    return m


def test_gemm_cross_validation_on_shared_h200_data(shared):
    g = shared.table("gemm")
    bf = g[g["dtype"] == "bf16"].reset_index(drop=True)
    e = np.abs(cross_validate(bf, 989e12, 4.8e12))
    assert np.median(e) <= 0.05
    f8 = g[g["dtype"] == "fp8"].reset_index(drop=True)
    assert np.median(np.abs(cross_validate(f8, 1979e12, 4.8e12, 1.0, 1.5))) <= 0.05


def test_attention_cross_validation_on_shared_h200_data(shared):
    a = shared.table("attention")
    for backend, reread in (("packed", False), ("sdpa_gqa", True)):
        rows = a[a["backend"] == backend].reset_index(drop=True)
        assert np.median(np.abs(cross_validate_attention(rows, 4.8e12, 989e12, reread))) <= 0.05


def test_kernel_names_map_to_operator_classes():
    assert classify("void pytorch_flash::flash_fwd_kernel<Flash_fwd_kernel_traits<128>>") == "attention"
    assert classify("nvjet_sm90_tst_64x32_64x16_4x1_v_bz_TNT") == "gemm"
    assert classify("void cublasLt::splitKreduce_kernel<32, 16, int>") == "gemm_reduce"
    assert classify("void at::native::vectorized_layer_norm_kernel<c10::BFloat16>") == "rms_norm"
    assert classify("void vllm::moe::topk_softmax_kernel") == "moe"
    assert classify("ncclDevKernel_AllReduce_Sum_bf16_RING_LL") == "comm"
    assert classify("void vllm::reshape_and_cache_flash_kernel") == "copy"


def test_trace_becomes_fit_rows(shared):
    # two real traces of a Llama-3.1-8B-shaped decode step (batch 32, context 2048, q_len 1 and 4)
    assert len(shared.traces) == 2 and all(t["rows"] > 0 for t in shared.traces)
    g = shared.table("gemm")
    tr = g[g["source"].str.startswith("trace:")]
    assert set(tr["m"]) == {32, 128} and len(tr) == 10
    att = shared.table("attention")
    row = att[att["source"].str.startswith("trace:") & (att["q_len"] == 1)].iloc[0]
    # the traced attention kernel agrees with the microbenchmark grid around it (b=16: 42 us, b=64: 206 us)
    assert 42 < row["us"] < 206
    assert shared.eager_launch_s and all(1e-6 < x < 1e-3 for x in shared.eager_launch_s)


@pytest.mark.parametrize("name, text, needles", [
    ("weird.csv", "a,b\n1,2\n", ["weird.csv"]),  # unknown columns
    ("trace.json", '{"traceEvents": [', ["trace.json"]),  # malformed chrome trace
    ("moe_train_bad.csv", "shape,tokens,experts,topk,hidden,inter,pass,us\nx,1024,128,8,2048,768,sideways,10\n",
     ["moe_train_bad.csv", "sideways"]),  # training-MoE table with an unknown pass
    ("moe_train_one_pass.csv", "shape,tokens,experts,topk,hidden,inter,pass,us\nx,1024,128,8,2048,768,fwd,10\n",
     ["moe_train_one_pass.csv", "passes"]),  # training-MoE table missing passes
    ("vllm_moe_bad.csv", "shape,tokens,experts,topk,hidden,inter,config,us\nx,1,128,8,2048,768,guessed,10\n",
     ["vllm_moe_bad.csv", "guessed"]),  # vLLM fused-MoE table with an unknown tile config
    ("host_copy_small.csv", "mode,total_bytes,tensor_bytes,seconds\nd2h_pageable,100,1,1\n",
     ["host_copy_small.csv", "total_bytes"]),  # host copies too small to fit a trainer's state
    ("host_copy_modes.csv", "mode,total_bytes,tensor_bytes,seconds\nd2h_pageable,5000000000,1,1\n",
     ["host_copy_modes.csv", "h2d_pageable"]),  # host copies missing a direction
])
def test_bad_measurement_file_is_one_line_and_writes_nothing(tmp_path, name, text, needles):
    bad = tmp_path / name
    bad.write_text(text)
    out = tmp_path / "x.yaml"
    proc = run_cli("fit", "kernels", "--base", "h200", str(bad), "--out", str(out))
    assert_one_line_error(proc, *needles)
    assert not out.exists()


@pytest.mark.parametrize("cell, needle", [
    ("inf", "'us' must hold timings > 0"),  # an SVD that did not converge before
    ("1e308", "at most a day (8.64e+10 us)"),
    ("0", "'us' must hold timings > 0"),
])
def test_a_timing_that_is_no_measurement_names_the_line(tmp_path, cell, needle):
    bad = tmp_path / "attn.csv"
    bad.write_text("# measured somewhere\nbatch,q_len,ctx,hq,hkv,d,us\n1,1,2048,32,8,128,13\n"
                   f"1,1,4096,32,8,128,{cell}\n")
    proc = run_cli("fit", "kernels", "--base", "h200", str(bad), "--out", str(tmp_path / "x.yaml"))
    assert_one_line_error(proc, "attn.csv:4", needle)


@pytest.mark.parametrize("cell", ["1e308", "0", "2.5", "-3"])  # 1e308: numpy's 'Maximum allowed size exceeded'
def test_a_size_that_is_no_kernel_shape_names_the_line(tmp_path, cell):
    bad = tmp_path / "attn.csv"
    bad.write_text(f"batch,q_len,ctx,hq,hkv,d,us\n1,1,2048,32,8,128,13\n1,1,{cell},32,8,128,20\n")
    proc = run_cli("fit", "kernels", "--base", "h200", str(bad), "--out", str(tmp_path / "x.yaml"))
    assert_one_line_error(proc, "attn.csv:3", "'ctx' must hold whole numbers in 1..2147483647")


def test_a_fit_to_an_impossible_value_is_one_line(tmp_path):
    """Host copies of 4 GiB timed at most of a day: a rate that rounds to 0 bytes/s fails the profile's own check
    (an internal pydantic error before)."""
    bad = tmp_path / "host_copy.csv"
    rows = [f"{mode},{4 * 2**30},{2**30},{80000 if mode == 'h2d_pageable' else 1}"
            for mode in ("d2h_pageable", "h2d_pageable", "d2h_pinned", "h2d_pinned")]
    bad.write_text("mode,total_bytes,tensor_bytes,seconds\n" + "\n".join(rows) + "\n")
    out = tmp_path / "x.yaml"
    proc = run_cli("fit", "kernels", "--base", "h200", str(bad), "--out", str(out))
    assert_one_line_error(proc, "impossible value", "pageable_h2d")
    assert not out.exists()


def test_a_truncated_table_is_one_error_naming_its_cut_row(tmp_path):
    """A Vidur operator table cut mid-row (an IntCastingNaNError once, then silently left out): the cut row's empty
    cells are one error naming its line, and nothing is written; so is a NaN timing in a kernel table."""
    src = Path(__file__).parents[1] / "calibration/vidur/compute__h100__meta-llama__Llama-2-7b-hf__mlp.csv"
    text = src.read_text()
    bad = tmp_path / "compute__h100__cut.csv"
    bad.write_text(text[: len(text) // 2].rsplit(",", 40)[0] + "\n")
    last = len(bad.read_text().splitlines())
    out = tmp_path / "x.yaml"
    proc = run_cli("fit", "kernels", "--base", "h100", str(bad), "--out", str(out))
    assert_one_line_error(proc, f"compute__h100__cut.csv:{last}", "empty or NaN")
    assert not out.exists()
    nan = tmp_path / "gemm.csv"
    nan.write_text("op,m,n,k,us\ngemm,1,4096,4096,nan\n")
    proc = run_cli("fit", "kernels", "--base", "h200", str(nan), "--out", str(out))
    assert_one_line_error(proc, "gemm.csv:2", "'us'")
    assert not out.exists()


def test_non_numeric_cell_names_the_line(tmp_path):
    bad = tmp_path / "gemm.csv"
    bad.write_text("op,m,n,k,us\nx,1,2,3,4\nx,2,2,3,oops\n")
    proc = run_cli("fit", "kernels", "--base", "h200", str(bad), "--out", str(tmp_path / "x.yaml"))
    assert_one_line_error(proc, "gemm.csv:3")


def test_fit_recovers_a_synthetic_roofline(tmp_path):
    """Timings generated by a known roofline (peak 500 TF, 3 TB/s, 5 us overhead) are fitted back."""
    rows = []
    for n, k in [(4096, 4096), (8192, 4096), (4096, 14336), (28672, 4096)]:
        for m in [1, 8, 64, 256, 1024, 4096]:
            t = max(2 * m * n * k / 500e12, 2 * (n * k + m * (n + k)) / 3e12) + 5e-6
            rows.append({"op": f"s{n}x{k}", "m": m, "n": n, "k": k, "us": t * 1e6})
    pd.DataFrame(rows).to_csv(tmp_path / "gemm.csv", index=False)
    m = Measurements()
    read_file(tmp_path / "gemm.csv", m)
    e = np.abs(cross_validate(m.table("gemm"), 989e12, 4.8e12, by_shape=True))
    assert np.median(e) < 0.03


def test_measurements_lacking_a_needed_curve_ask_for_like_and_write_nothing(tmp_path):
    """The notebook's sample kernels fit GEMMs and attention but no elementwise kernels: without --like the
    profile could run nothing, so the fit names what is missing instead of writing it."""
    kernels = Path(__file__).parents[1] / "notebooks/data/kernels"
    out = tmp_path / "k.yaml"
    proc = run_cli("fit", "kernels", "--base", "h200", str(kernels), "--out", str(out))
    assert_one_line_error(proc, "--like", "elementwise.rms_norm")
    assert not out.exists()
    proc = run_cli("fit", "kernels", "--base", "h200", str(kernels), "--like", "h200", "--out", str(out))
    assert proc.returncode == 0 and out.exists(), proc.stderr
