"""calibration/collectives/measure_nccl.py: its plan (sizes, buffers, bandwidth factors) and a CPU smoke run
(gloo, 2 processes, tiny sizes) whose output `rlsim fit collectives` reads."""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys

import pandas as pd
import pytest

from simulator.costmodel.collectives import ALGO_FACTOR, NCCL_OPS
from simulator.paths import project_root

ROOT = project_root()
SCRIPT = ROOT / "calibration/collectives/measure_nccl.py"
MULTICAST_OFF = {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1", "NVSHMEM_DISABLE_NVLS": "1"}


@pytest.fixture
def script(monkeypatch):
    """The script as a module (its import sets the multicast variables: restored afterwards)."""
    for k in MULTICAST_OFF:
        monkeypatch.setenv(k, "unset-by-test")
    spec = importlib.util.spec_from_file_location("measure_nccl", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_import_turns_nvlink_multicast_off(script):
    for k, v in MULTICAST_OFF.items():
        assert os.environ[k] == v
    assert script.MULTICAST_OFF == MULTICAST_OFF
    script._check_env()
    os.environ["NCCL_NVLS_ENABLE"] = "1"
    with pytest.raises(AssertionError, match="NCCL_NVLS_ENABLE"):
        script._check_env()


def test_sizes_groups_and_defaults(script):
    s = script.sizes(4096, 1 << 30)
    assert s == [1 << k for k in range(12, 31)]
    s2 = script.sizes(4096, 1 << 20, 2)
    assert s2[0] == 4096 and s2[-1] == 1 << 20 and len(s2) == 2 * 8 + 1
    assert all(b % 1024 == 0 for b in s2) and s2 == sorted(set(s2))
    assert script.groups_for(8) == [2, 4, 8]
    assert script.groups_for(6) == [2, 4, 6]
    assert script.groups_for(1) == []
    assert script.groups_for(8, [8, 2, 16]) == [2, 8]
    cfg = script.config({})
    assert cfg["min_bytes"] == 4096 and cfg["max_bytes"] == 1 << 30 and cfg["mode"] == "graph"
    assert cfg["ops"] == list(script.OPS) and cfg["budget_s"] < 540  # inside one 10-minute run
    smoke = script.config({"SMOKE": "1"})
    assert smoke["nproc"] == 2 and smoke["max_bytes"] <= 1 << 17 and smoke["mode"] == "eager"
    with pytest.raises(SystemExit):
        script.config({"OPS": "all_reduce,broadcast"})
    with pytest.raises(SystemExit):
        script.config({"MODE": "lazy"})


@pytest.mark.parametrize("n", [2, 3, 4, 8])
def test_buffers_follow_the_collective_time_convention(script, n):
    size = 1 << 20
    e = script.ELEM
    ins, outs, b = script.buffer_plan("all_reduce", size, n)
    assert ins == outs and b == ins * e == size
    ins, outs, b = script.buffer_plan("all_gather", size, n)
    assert outs == n * ins and b == outs * e and size - n * e < b <= size  # bytes = the full output
    ins, outs, b = script.buffer_plan("reduce_scatter", size, n)
    assert ins == n * outs and b == ins * e and size - n * e < b <= size  # bytes = the full input
    ins, outs, b = script.buffer_plan("all_to_all", size, n)
    assert ins == outs and ins % n == 0 and b == ins * e  # bytes = the per-GPU send buffer
    ins, outs, b = script.buffer_plan("send_recv", size, n)
    assert b == size


def test_bus_factors_are_the_cost_models(script):
    assert set(script.BUS_FACTOR) == set(NCCL_OPS)
    for op in NCCL_OPS:
        for n in range(2, 17):
            assert script.BUS_FACTOR[op](n) == pytest.approx(ALGO_FACTOR[op](n))
    assert script.bus_bandwidth_GBps("all_reduce", 8, 1 << 30, 1e4) == pytest.approx(1.75 * (1 << 30) / 1e-2 / 1e9)


def test_iterations_stay_in_bounds(script):
    for est in (1e-7, 1e-5, 1e-3, 1e-1):
        for graph in (True, False):
            inner, reps = script.iterations(est, 0.04, graph)
            assert 1 <= inner <= 100 and 5 <= reps <= 25
    assert script.iterations(1e-5, 0.04, True)[0] > script.iterations(1e-3, 0.04, True)[0]


def _run(tmp_path, **env):
    pytest.importorskip("torch")
    e = dict(os.environ, SMOKE="1", OUT=str(tmp_path), **env)
    return subprocess.run([sys.executable, str(SCRIPT)], env=e, capture_output=True, text=True, timeout=120)


def test_smoke_run_on_cpu_writes_a_table_rlsim_fits(tmp_path):
    out = tmp_path / "out"
    # a multicast variable set the wrong way in the caller's environment is overridden
    proc = _run(out, NCCL_NVLS_ENABLE="1")
    assert proc.returncode == 0, proc.stderr[-2000:]
    df = pd.read_csv(out / "nccl.csv", comment="#")
    assert list(df.columns) == ["collective", "gpus", "bytes", "us", "us_min", "us_max", "algbw_GBps", "busbw_GBps",
                                "mode", "inner", "reps", "dtype"]
    sizes = [1 << k for k in range(12, 18)]
    assert set(df["collective"]) == set(NCCL_OPS)
    for op, r in df.groupby("collective"):
        assert sorted(r["bytes"]) == sizes, op
        assert set(r["gpus"]) == {2}
    assert (df["us"] > 0).all() and (df["us_min"] <= df["us"]).all() and (df["us"] <= df["us_max"]).all()
    fac = [ALGO_FACTOR[o](g) for o, g in zip(df["collective"], df["gpus"])]
    assert (abs(df["busbw_GBps"] - df["bytes"] * pd.Series(fac) / df["us"] / 1e3) <= 1e-4 * df["busbw_GBps"]).all()
    assert set(df["mode"]) == {"eager"} and set(df["dtype"]) == {"bf16"}
    head = [ln for ln in (out / "nccl.csv").read_text().splitlines() if ln.startswith("#")]
    assert any("NCCL_NVLS_ENABLE=0" in ln for ln in head) and not any("INCOMPLETE" in ln for ln in head)
    meta = json.loads((out / "nccl_device.json").read_text())
    assert meta["complete"] is True and meta["cut_short"] == [] and meta["rows"] == len(df)
    assert len(meta["gpu_names"]) == 2 and meta["torch"]
    for k, v in MULTICAST_OFF.items():
        assert meta["env"][k] == v
    # the table goes through `rlsim fit collectives` (the folder: table and metadata)
    prof = tmp_path / "h200.yaml"
    shutil.copy(ROOT / "hardware_profiles/base/h200.yaml", prof)
    fit = subprocess.run([sys.executable, "-m", "simulator", "fit", "collectives", str(out), "--profile", str(prof),
                          "--out", str(tmp_path / "fitted.yaml")], capture_output=True, text=True, cwd=ROOT,
                         timeout=120)
    assert fit.returncode == 0, fit.stderr
    assert (tmp_path / "fitted.yaml").is_file() and "cpu:" in (tmp_path / "fitted.yaml").read_text()


def test_smoke_run_out_of_time_leaves_an_incomplete_but_valid_table(tmp_path):
    proc = _run(tmp_path, BUDGET_S="0")
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = (tmp_path / "nccl.csv").read_text()
    assert "INCOMPLETE" in text
    assert pd.read_csv(tmp_path / "nccl.csv", comment="#").empty
    meta = json.loads((tmp_path / "nccl_device.json").read_text())
    assert meta["complete"] is False and len(meta["cut_short"]) == len(NCCL_OPS)
