"""Engines whose GPUs span hosts: vLLM's all-reduce falls back to NCCL across hosts (GB200 trays included), and the
engine pays the fitted cross-host cost per iteration (simulator/fit/cross_host.py); engines within a host do not.
The fit's held-out rows are checked in tests/test_validation.py."""
from __future__ import annotations

import pytest

from conftest import ROOT
from simulator.costmodel.collectives import collective_time, vllm_backend
from simulator.costmodel.vllm_all_reduce import KiB
from simulator.errors import RlsimError
from simulator.fit.cross_host import FIELD, fit_cross_host_step_overhead
from simulator.hardware import load_hardware
from simulator.rollout.sim import RolloutSimulator
from simulator.scenario import load_scenario

SCEN = ROOT / "workloads/scenarios"


def test_gb200_hosts_are_trays_of_four():
    """TP 8 on GB200 crosses two 4-GPU compute trays: vLLM's custom all-reduce is off there, NCCL runs over NVLink;
    TP 4 stays on one tray. HGX servers hold 8."""
    gb = load_hardware("gb200")
    assert gb.host_gpus() == 4 and gb.scale_up.domain_size == 72
    assert vllm_backend(gb, 256 * KiB, 4) == "ca_1stage"
    assert vllm_backend(gb, 512 * KiB, 8) == "pynccl"
    assert collective_time(gb, "vllm_all_reduce", 512 * KiB, 8) == collective_time(gb, "all_reduce", 512 * KiB, 8)
    for name in ("h100", "h200", "b200", "a100"):
        assert load_hardware(name).host_gpus() == 8, name


def test_a_profile_without_hosts_takes_its_scale_up_domain(tmp_path):
    text = (ROOT / "hardware_profiles/gb200.yaml").read_text().replace("gpus_per_host: 4\n", "")
    path = tmp_path / "gb200-nohost.yaml"
    path.write_text(text)
    hw = load_hardware(str(path))
    assert hw.gpus_per_host is None and hw.host_gpus() == 72
    assert vllm_backend(hw, 512 * KiB, 8) == "ca_2stage"


@pytest.mark.parametrize("name,sets,spans", [
    ("nemo-rl-qwen3-235b-a22b-h100x128-on.yaml", [], True),  # TP 16 on 8-GPU servers
    ("nemo-rl-qwen3-235b-a22b-h100x256-1-off.yaml", [], False),  # TP 8: one server
    ("nemo-rl-qwen3-235b-a22b-gb200x64-on.yaml", [], True),  # TP 8 on 4-GPU trays
    ("nemo-rl-qwen3-235b-a22b-gb200x64-on.yaml", ["engine.tensor_parallel_size=4", "engine.gpu_memory_utilization=0.8"],
     False),
])
def test_only_engines_across_hosts_pay_the_cost(name, sets, spans):
    scn = load_scenario(SCEN / name, sets)
    e = scn.engine
    assert e.cross_host_step_overhead_s > 0  # every shipped NeMo-RL scenario carries the fitted value
    sim = RolloutSimulator(scn)
    assert sim.cross_host is spans
    assert sim.cost.overhead == pytest.approx(e.step_overhead_s + (e.cross_host_step_overhead_s if spans else 0.0))


def test_the_fit_solves_the_linear_generation_and_refuses_engines_within_a_host():
    assert fit_cross_host_step_overhead(lambda c: 200.0 + 8000.0 * c, 240.0) == pytest.approx(0.005)
    assert fit_cross_host_step_overhead(lambda c: 200.0 + 8000.0 * c, 150.0) == 0.0
    with pytest.raises(RlsimError, match="does not depend") as err:
        fit_cross_host_step_overhead(lambda c: 200.0, 240.0)
    assert err.value.field == FIELD == "engine.cross_host_step_overhead_s"


def test_a_negative_cost_is_one_error_line():
    with pytest.raises(RlsimError, match="cross_host_step_overhead_s"):
        load_scenario(SCEN / "nemo-rl-qwen3-235b-a22b-h100x128-on.yaml", ["engine.cross_host_step_overhead_s=-1"])
