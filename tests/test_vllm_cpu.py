"""vLLM's measured CPU cost per scheduled sequence: the fit, a held-out batch, and how the engine charges it."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from simulator.errors import RlsimError
from simulator.fit.vllm_cpu import fit_vllm_cpu, read_version_table, read_vllm_cpu_table, version_ratio
from simulator.rollout.sim import RolloutSimulator
from simulator.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[1]
TABLE = ROOT / "calibration" / "vllm_cpu" / "vllm_cpu_overhead.csv"
AB_TABLE = ROOT / "calibration" / "vllm_cpu" / "vllm_versions_ab.csv"


@pytest.fixture(scope="module")
def table():
    return read_vllm_cpu_table(TABLE)


@pytest.mark.parametrize("mp", [0, 1])
def test_no_async_scheduling_cost_is_linear_in_the_batch(table, mp):
    fit = fit_vllm_cpu(table, multiprocessing=bool(mp), async_scheduling=False)
    assert 5e-6 < fit.s_per_seq < 1e-4 and fit.max_rel_residual < 0.3


@pytest.mark.parametrize("mp", [0, 1])
def test_largest_batch_held_out_predicted_within_15_percent(table, mp):
    rows = table[(table["multiprocessing"] == mp) & (table["async_scheduling"] == 0)]
    top = rows["batch"].max()
    fit = fit_vllm_cpu(rows[rows["batch"] < top], multiprocessing=bool(mp), async_scheduling=False)
    measured = float(rows.loc[rows["batch"] == top, "exposed_cpu_s"].iloc[0])
    assert abs(fit.intercept_s + fit.s_per_seq * top - measured) / measured < 0.15


@pytest.mark.parametrize("mp", [0, 1])
def test_async_rows_predicted_from_the_synchronous_fit(table, mp):
    """Held out: with async scheduling the engine's iteration is the fixed part + max(GPU step, per-sequence CPU),
    so the exposed time stays at the batch-1 level until the CPU work outlasts the 10 ms stand-in step."""
    fit = fit_vllm_cpu(table, multiprocessing=bool(mp), async_scheduling=False)
    rows = table[(table["multiprocessing"] == mp) & (table["async_scheduling"] == 1)].sort_values("batch")
    fixed = float(rows["exposed_cpu_s"].iloc[0])  # batch 1
    for r in rows.itertuples():
        pred = fixed + max(0.0, fit.s_per_seq * r.batch - r.gpu_s)
        if fit.s_per_seq * r.batch < r.gpu_s:
            assert abs(pred - r.exposed_cpu_s) < 5e-4, r.batch  # README: within 0.5 ms
        else:
            assert abs(pred - r.exposed_cpu_s) / r.exposed_cpu_s < 0.3, r.batch
    assert (fit.s_per_seq * rows["batch"] > rows["gpu_s"]).any()  # the table reaches the crossover


def test_bad_table_names_file_and_column(tmp_path):
    p = tmp_path / "t.csv"
    pd.DataFrame({"batch": [1, 2]}).to_csv(p, index=False)
    with pytest.raises(RlsimError) as e:
        read_vllm_cpu_table(p)
    assert e.value.field == str(p) and "exposed_cpu_s" in str(e.value)


def _cost(*sets):
    return RolloutSimulator(load_scenario(None, list(sets))).cost


def test_engine_charges_cpu_per_scheduled_sequence():
    per = 3e-5
    base = _cost("engine.cpu_s_per_seq=0")
    charged = _cost(f"engine.cpu_s_per_seq={per}", "engine.async_scheduling=false")
    for n in (1, 64, 256):
        ctx = np.full(n, 1000)
        assert charged.time(ctx, 0) - base.time(ctx, 0) == pytest.approx(per * n, rel=1e-9)


def test_async_scheduling_takes_the_longer_of_gpu_and_cpu():
    base = _cost("engine.cpu_s_per_seq=0")
    ctx = np.full(128, 1000)
    gpu = base.time(ctx, 0) - base.overhead
    hidden = _cost(f"engine.cpu_s_per_seq={0.5 * gpu / 128}", "engine.async_scheduling=true")
    assert hidden.time(ctx, 0) == pytest.approx(base.time(ctx, 0), rel=1e-12)
    bound = _cost(f"engine.cpu_s_per_seq={2 * gpu / 128}", "engine.async_scheduling=true")
    assert bound.time(ctx, 0) == pytest.approx(base.overhead + 2 * gpu, rel=1e-9)


def test_published_scenarios_schedule_asynchronously_only_where_vllm_can(table):
    """v0.3 and v0.5 (vLLM < 0.14) and TP > 1 engines (Ray executor) schedule synchronously; v0.6 single-GPU engines
    don't. Every engine carries the measured 0.17.1 slope of its process mode, v0.3 and v0.5 engines times the
    measured ratio of 0.11.2's slope to 0.17.1's (AsyncLLM engines have max_num_seqs 128: their engine core runs in its own process)."""
    ab = read_version_table(AB_TABLE)
    seen = set()
    for path in sorted((ROOT / "workloads" / "scenarios").glob("nemo-rl-*.yaml")):
        data = yaml.safe_load(path.read_text())
        e = data["engine"]
        release = next(v for v in ("v0.3", "v0.5", "v0.6") if f"NeMo-RL {v}" in data["description"])
        assert e["async_scheduling"] == (release == "v0.6" and e["tensor_parallel_size"] == 1), path.name
        own_process = e["max_num_seqs"] == 128
        slope = fit_vllm_cpu(table, multiprocessing=own_process, async_scheduling=False).s_per_seq
        if release in ("v0.3", "v0.5"):  # v0.3's vLLM 0.9/0.10 was not measured: 0.11.2 is the nearest
            slope *= version_ratio(ab, "0.11.2", "0.17.1", own_process)
        assert e["cpu_s_per_seq"] == pytest.approx(slope, abs=1e-8), path.name
        seen.add((release, e["async_scheduling"]))
    assert seen == {("v0.3", False), ("v0.5", False), ("v0.6", False), ("v0.6", True)}


@pytest.mark.parametrize("mp", [0, 1])
def test_version_ratio_pools_the_interleaved_rounds(mp):
    """The ratio of the two versions' slopes, each fitted on all its rounds; every round's own ratio lies within 30% of
    it (the host's speed moves that much within a session, calibration/vllm_cpu/README.md)."""
    ab = read_version_table(AB_TABLE)
    pooled = version_ratio(ab, "0.11.2", "0.17.1", bool(mp))
    fits = {v: fit_vllm_cpu(ab[ab["vllm"] == v], bool(mp), False).s_per_seq for v in ("0.11.2", "0.17.1")}
    assert pooled == pytest.approx(fits["0.11.2"] / fits["0.17.1"], rel=1e-12)
    rounds = sorted(set(ab["round"]))
    assert len(rounds) == 3
    for r in rounds:
        one = ab[ab["round"] == r]
        assert abs(version_ratio(one, "0.11.2", "0.17.1", bool(mp)) / pooled - 1) < 0.3, r


def test_version_ratio_names_a_missing_version(tmp_path):
    ab = read_version_table(AB_TABLE)
    with pytest.raises(RlsimError) as e:
        version_ratio(ab, "0.9.0", "0.17.1", False)
    assert e.value.field == "vllm" and "0.11.2, 0.17.1" in str(e.value)
    p = tmp_path / "ab.csv"
    read_vllm_cpu_table(TABLE).drop(columns="vllm").to_csv(p, index=False)
    with pytest.raises(RlsimError) as e:
        read_version_table(p)
    assert e.value.field == str(p) and "vllm" in str(e.value)


@pytest.mark.parametrize("per_seq", [3e-4, 1e-3])
def test_fast_mode_follows_exact_when_the_cpu_outlasts_the_gpu(per_seq):
    """Async scheduling makes the iteration max(GPU, CPU): fast mode's grid still tracks the exact event loop."""
    sim = RolloutSimulator(load_scenario(None, [f"engine.cpu_s_per_seq={per_seq}", "engine.async_scheduling=true"]))
    e, f = sim.run(mode="exact", seed=3), sim.run(mode="fast", seed=3)
    assert f.rollout_s == pytest.approx(e.rollout_s, rel=0.01) and f.iterations == e.iterations
    gpu_only = RolloutSimulator(load_scenario(None, ["engine.cpu_s_per_seq=0"])).run(mode="exact", seed=3)
    assert e.rollout_s > 1.05 * gpu_only.rollout_s  # the CPU-bound iterations are exercised
