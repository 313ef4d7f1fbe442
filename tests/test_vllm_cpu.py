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


def test_async_scheduling_hides_the_cpu_up_to_256_sequences(table):
    """The basis for charging async-scheduling engines nothing per sequence."""
    rows = table[(table["async_scheduling"] == 1) & (table["batch"] <= 256)]
    assert len(rows) >= 8 and rows["exposed_cpu_s"].max() < 1e-3
    sync = table[(table["async_scheduling"] == 0) & (table["batch"] == 256)]
    assert sync["exposed_cpu_s"].min() > 5 * rows["exposed_cpu_s"].max()


def test_bad_table_names_file_and_column(tmp_path):
    p = tmp_path / "t.csv"
    pd.DataFrame({"batch": [1, 2]}).to_csv(p, index=False)
    with pytest.raises(RlsimError) as e:
        read_vllm_cpu_table(p)
    assert e.value.field == str(p) and "exposed_cpu_s" in str(e.value)


def test_engine_charges_cpu_per_scheduled_sequence():
    per = 3e-5
    base = RolloutSimulator(load_scenario(None, ["engine.cpu_s_per_seq=0"])).cost
    charged = RolloutSimulator(load_scenario(None, [f"engine.cpu_s_per_seq={per}"])).cost
    for n in (1, 64, 256):
        ctx = np.full(n, 1000)
        assert charged.time(ctx, 0) - base.time(ctx, 0) == pytest.approx(per * n, rel=1e-9)


def test_published_scenarios_pay_it_where_vllm_does_not_schedule_asynchronously():
    """v0.5 (vLLM 0.11.2) and TP > 1 engines (Ray executor) pay the measured slope; v0.6 single-GPU engines don't."""
    seen = set()
    for path in sorted((ROOT / "workloads" / "scenarios").glob("nemo-rl-*.yaml")):
        data = yaml.safe_load(path.read_text())
        release = "v0.5" if "NeMo-RL v0.5" in data["description"] else "v0.6"
        tp = data["engine"]["tensor_parallel_size"]
        paid = data["engine"]["cpu_s_per_seq"] > 0
        assert paid == (release == "v0.5" or tp > 1), path.name
        seen.add(paid)
    assert seen == {True, False}
