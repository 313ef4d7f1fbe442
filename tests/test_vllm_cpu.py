"""vLLM's measured CPU cost per scheduled sequence: the fit, a held-out batch, and how the engine charges it."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from simulator.errors import RlsimError
from simulator.fit.vllm_cpu import fit_vllm_cpu, read_vllm_cpu_table
from simulator.rollout.sim import RolloutSimulator
from simulator.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[1]
TABLE = ROOT / "calibration" / "vllm_cpu" / "vllm_cpu_overhead.csv"


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


def test_published_scenarios_schedule_asynchronously_only_where_vllm_can():
    """v0.5 (vLLM 0.11.2) and TP > 1 engines (Ray executor) schedule synchronously; v0.6 single-GPU engines don't.
    Every engine carries the measured slope of its process mode."""
    seen = set()
    for path in sorted((ROOT / "workloads" / "scenarios").glob("nemo-rl-*.yaml")):
        data = yaml.safe_load(path.read_text())
        e = data["engine"]
        release = "v0.5" if "NeMo-RL v0.5" in data["description"] else "v0.6"
        assert e["async_scheduling"] == (release == "v0.6" and e["tensor_parallel_size"] == 1), path.name
        assert 1e-5 < e["cpu_s_per_seq"] < 5e-5
        seen.add(e["async_scheduling"])
    assert seen == {True, False}


@pytest.mark.parametrize("per_seq", [3e-4, 1e-3])
def test_fast_mode_follows_exact_when_the_cpu_outlasts_the_gpu(per_seq):
    """Async scheduling makes the iteration max(GPU, CPU): fast mode's grid still tracks the exact event loop."""
    sim = RolloutSimulator(load_scenario(None, [f"engine.cpu_s_per_seq={per_seq}", "engine.async_scheduling=true"]))
    e, f = sim.run(mode="exact", seed=3), sim.run(mode="fast", seed=3)
    assert f.rollout_s == pytest.approx(e.rollout_s, rel=0.01) and f.iterations == e.iterations
    gpu_only = RolloutSimulator(load_scenario(None, ["engine.cpu_s_per_seq=0"])).run(mode="exact", seed=3)
    assert e.rollout_s > 1.05 * gpu_only.rollout_s  # the CPU-bound iterations are exercised
