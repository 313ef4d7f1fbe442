"""vLLM's tensor-parallel all-reduce: the dispatch rules, the fit on vLLM's published H100 timings (checked on cells
it was not fitted on), and that only engines use it."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from simulator.costmodel.collectives import collective_time, vllm_backend
from simulator.costmodel.step import StepCostModel
from simulator.costmodel.vllm_all_reduce import KiB, MiB, dispatched_backend
from simulator.fit.fit_collectives import fit_curve, predict_us
from simulator.fit.vllm_all_reduce_table import long_rows, read_raw
from simulator.hardware import load_hardware
from simulator.paths import project_root

RAW = project_root() / "calibration/collectives/vllm/pr24111_h100.csv"
TABLE = project_root() / "calibration/collectives/vllm/h100_vllm_backends.csv"


@pytest.mark.parametrize("cc,ws,nbytes,backend", [
    ("9.0", 8, 128 * KiB, "ca_1stage"),
    ("9.0", 8, 256 * KiB, "symm_mem_multimem"),  # the custom all-reduce's gate is strict
    ("9.0", 8, 80 * MiB, "pynccl"),
    ("9.0", 6, 300 * KiB, "ca_2stage"),
    ("9.0", 4, 256 * KiB, "ca_1stage"),
    ("9.0", 4, 1 * MiB, "ca_2stage"),
    ("9.0", 4, 16 * MiB, "symm_mem_multimem"),  # past the custom all-reduce's 8 MiB buffer
    ("9.0", 2, 4 * MiB, "ca_1stage"),
    ("9.0", 2, 16 * MiB, "symm_mem_two_shot"),
    ("10.0", 8, 512 * KiB, "ca_2stage"),
    ("10.0", 8, 2 * MiB, "symm_mem_multimem"),
    ("8.0", 8, 1 * MiB, "ca_2stage"),  # no symmetric-memory tables: the custom all-reduce keeps 8 MiB
    ("8.0", 8, 16 * MiB, "pynccl"),
    ("9.0", 16, 64 * KiB, "pynccl"),
    ("9.0", 3, 64 * KiB, "pynccl"),
])
def test_dispatch_follows_vllms_tables(cc, ws, nbytes, backend):
    assert dispatched_backend(cc, ws, nbytes) == backend


def test_a_group_across_nodes_runs_nccl():
    hw = load_hardware("h100")
    assert vllm_backend(hw, 64 * KiB, 8) == "ca_1stage"
    assert vllm_backend(hw, 64 * KiB, 16) == "pynccl"
    assert collective_time(hw, "vllm_all_reduce", 64 * KiB, 16) == collective_time(hw, "all_reduce", 64 * KiB, 16)


def test_committed_table_is_the_converted_published_one(tmp_path):
    out = tmp_path / "t.csv"
    r = subprocess.run([sys.executable, "-m", "simulator.fit.vllm_all_reduce_table", str(RAW), "--out", str(out)],
                       capture_output=True, text=True, cwd=project_root())
    assert r.returncode == 0, r.stderr
    strip = lambda t: [x for x in t.splitlines() if not x.startswith("#")]  # noqa: E731
    assert strip(out.read_text()) == strip(TABLE.read_text())


def test_bad_table_is_one_line_and_leaves_nothing(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("world,size\n8,1\n")
    out = tmp_path / "o.csv"
    r = subprocess.run([sys.executable, "-m", "simulator.fit.vllm_all_reduce_table", str(bad), "--out", str(out)],
                       capture_output=True, text=True)
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and "tp" in r.stderr
    assert not out.exists()


def test_profile_reproduces_the_fitted_cells():
    hw = load_hardware("h100")
    rows = long_rows(read_raw(RAW), RAW.name)
    for op, r in rows.groupby("collective"):
        curve = hw.efficiency.collectives["scale_up"][op]
        pred = predict_us(curve, r.rename(columns={"gpus": "group"}), op, hw.scale_up.bandwidth)
        err = np.abs(pred / r["us"].to_numpy() - 1)
        assert np.median(err) < 0.10 and err.max() < 0.25, (op, err)


def test_held_out_small_messages():
    """Fit each backend on the 1-4 MiB cells, predict the 0.5 MiB ones (decode all-reduces are smaller still):
    median error 8%, worst 35% (the two-stage kernel at 8 GPUs, which vLLM never runs there on an H100)."""
    rows = long_rows(read_raw(RAW), RAW.name).rename(columns={"gpus": "group"})
    errs = []
    for op, r in rows.groupby("collective"):
        train, test = r[r["bytes"] >= MiB], r[r["bytes"] < MiB]
        fit = fit_curve(train, op, 450e9, eager=np.zeros(len(train), bool))
        errs += list(predict_us(fit.curve, test, op, 450e9) / test["us"].to_numpy() - 1)
    errs = np.abs(errs)
    assert len(errs) == 12
    assert np.median(errs) < 0.15 and errs.max() < 0.40


def test_held_out_two_gpu_cell():
    """TP=2's one published cell (one-stage, 0.5 MiB, 7 us) is not fitted (one size cannot fix a group's
    efficiency): the curve of 4-8 GPUs predicts it within 25% (8.4 us)."""
    raw = read_raw(RAW)
    cell = raw[(raw["tp"] == 2)].iloc[0]
    hw = load_hardware("h100")
    pred = collective_time(hw, "vllm_all_reduce", cell["mib"] * MiB, 2)
    assert vllm_backend(hw, cell["mib"] * MiB, 2) == "ca_1stage"
    assert abs(pred / (cell["ca_1stage_ms"] * 1e-3) - 1) < 0.25


@pytest.mark.parametrize("gpu", ["h100", "h200"])
def test_nccl_curve_predicts_the_held_out_pynccl_column(gpu):
    """The NCCL all-reduce fitted on the H100 DGX's eager timings (Vidur; carried to the H200, same NVLink 4 /
    NVSwitch) against vLLM's pynccl under CUDA graphs (PR #24111, 0.5-4 MiB at 4-8 GPUs), which it never saw:
    median error 10%, worst 20% (the H200 took the default curve before: median 42% fast)."""
    raw = read_raw(RAW).dropna(subset=["pynccl_ms"])
    hw = load_hardware(gpu)
    err = np.abs([collective_time(hw, "all_reduce", r.mib * MiB, int(r.tp)) / (r.pynccl_ms * 1e-3) - 1
                  for r in raw.itertuples()])
    assert len(err) == 18
    assert np.median(err) < 0.15 and err.max() < 0.25


def test_engines_use_it_training_keeps_nccl():
    """A 235B decode step at TP 8 on H100 (32 sequences: 256 KiB all-reduces, symmetric memory) pays less for its
    188 all-reduces than NCCL would; a Megatron forward (nccl) and a TP 16 engine (across nodes) pay NCCL."""
    ctx = np.full(32, 4000)
    comm = {ar: StepCostModel("h100", "qwen3-235b-a22b", tp=8, all_reduce=ar).step(1, ctx).breakdown["comm"]
            for ar in ("vllm", "nccl")}
    hw = load_hardware("h100")
    per_call = {"vllm": collective_time(hw, "vllm_all_reduce", 32 * 4096 * 2, 8),
                "nccl": collective_time(hw, "all_reduce", 32 * 4096 * 2, 8)}
    assert per_call["vllm"] < 0.6 * per_call["nccl"]
    assert comm["nccl"] - comm["vllm"] == pytest.approx(188 * (per_call["nccl"] - per_call["vllm"]), rel=1e-6)
    tp16 = {ar: StepCostModel("h100", "qwen3-235b-a22b", tp=16, all_reduce=ar).step(1, ctx).breakdown["comm"]
            for ar in ("vllm", "nccl")}
    assert tp16["vllm"] == tp16["nccl"]
    with pytest.raises(Exception, match="all-reduce"):
        StepCostModel("h100", "qwen3-8b", all_reduce="gloo")
