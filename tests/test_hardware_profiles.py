"""Hardware profiles: every datasheet number has a source; profiles load, round-trip, and are calibrated."""
from __future__ import annotations

import pytest

from simulator.errors import RlsimError
from simulator.hardware import HardwareProfile, hardware_names, load_hardware
from simulator.paths import hardware_dir
from tests.conftest import assert_main_error

SOURCED = ["peak_flops.bf16", "host_bandwidth", "hbm_bytes", "hbm_bandwidth", "l2_bytes", "sm_count", "scale_up.bandwidth",
           "scale_up.domain_size", "scale_up.latency_s", "scale_out.bandwidth", "scale_out.latency_s"]
PROFILES = ["h100", "h200", "b200", "gb200", "a100"]


@pytest.mark.parametrize("name", PROFILES)
def test_profile_numbers_have_sources(name):
    hw = load_hardware(name)
    for key in SOURCED + [f"peak_flops.{d}" for d in hw.peak_flops]:
        assert hw.sources.get(key), f"{name}: {key} has no source"
    assert hw.derivation.strip()


@pytest.mark.parametrize("name", PROFILES)
def test_profiles_are_calibrated(name):
    hw = load_hardware(name)
    e = hw.efficiency
    assert "bf16" in e.gemm and e.attention and e.prefill and e.moe
    assert {"rms_norm", "add", "silu", "mul", "copy"} <= set(e.elementwise)
    assert hw.attention_backend in e.attention and hw.moe_kernel in e.moe


def test_blackwell_profiles_state_their_assumptions():
    for n in ("b200", "gb200"):
        d = load_hardware(n).derivation.lower()
        assert "assumption" in d and "transferred" in d
    assert load_hardware("gb200").scale_up.domain_size == 72
    assert load_hardware("h200").scale_up.domain_size == 8
    assert "fp4" in load_hardware("b200").peak_flops and "fp4" not in load_hardware("h200").peak_flops


def test_datasheet_peaks_match_the_published_csv():
    import csv
    from simulator.paths import project_root
    rows = {r["gpu"]: r for r in csv.DictReader(
        line for line in open(project_root() / "workloads/published/hardware_datasheets.csv") if not line.startswith("#"))}
    for name, gpu in [("h100", "H100-SXM"), ("h200", "H200-SXM"), ("b200", "B200-HGX"), ("gb200", "GB200")]:
        hw = load_hardware(name)
        assert hw.peak_flops["bf16"] == pytest.approx(float(rows[gpu]["bf16_tflops"]) * 1e12)
        assert hw.hbm_bandwidth == pytest.approx(float(rows[gpu]["hbm_tb_per_s"]) * 1e12)
        assert hw.scale_up.bandwidth == pytest.approx(float(rows[gpu]["scaleup_gb_per_s_per_direction"]) * 1e9)


def test_round_trip(tmp_path):
    hw = load_hardware("h200")
    p = tmp_path / "h.yaml"
    hw.save(p)
    assert HardwareProfile.load(p) == hw


def test_names_case_insensitive_and_unknown_lists_known():
    assert load_hardware("H200").name == load_hardware("h200-sxm").name
    with pytest.raises(RlsimError) as e:
        load_hardware("tpu-v5")
    assert "H200-SXM" in str(e.value)
    assert set(hardware_names()) >= {"H100-SXM", "H200-SXM", "B200", "GB200"}
    assert (hardware_dir() / "base" / "h200.yaml").is_file()


def _edited_profile(tmp_path, edit) -> str:
    """The H200 profile with one change made by `edit(dict)`, written as YAML; returns its path."""
    import yaml
    d = yaml.safe_load((hardware_dir() / "h200.yaml").read_text())
    edit(d)
    p = tmp_path / "edited.yaml"
    p.write_text(yaml.safe_dump(d, sort_keys=False))
    return str(p)


def _set(path: str, value):
    def edit(d):
        *keys, last = path.split(".")
        for k in keys:
            d = d[int(k)] if isinstance(d, list) else d[k]
        d[int(last) if isinstance(d, list) else last] = value
    return edit


@pytest.mark.parametrize("path, value, field", [
    ("hbm_bandwidth", 0, "hbm_bandwidth"),  # a division by zero before
    ("hbm_bandwidth", -1, "hbm_bandwidth"),  # NaN step times before
    ("peak_flops.bf16", 0, "peak_flops.bf16"),
    ("sm_count", 0, "sm_count"),
    ("efficiency.gemm.bf16.m_eff", 0, "efficiency.gemm.bf16.m_eff"),
    ("efficiency.elementwise.rms_norm.eff", -0.5, "efficiency.elementwise.rms_norm.eff"),
    ("efficiency.gemm.bf16.shapes.0.k", 0, "efficiency.gemm.bf16.shapes.0.k"),  # a math domain error before
    ("efficiency.gemm.bf16.shapes.0.m", [4, 2, 8], "efficiency.gemm.bf16.shapes.0.m"),
    ("efficiency.gemm.bf16.shapes.0.log_ratio", [0.1], "efficiency.gemm.bf16.shapes.0.log_ratio"),
    ("efficiency.attention.vllm_fa3.log2_ctx", [13.0, 9.0], "efficiency.attention.vllm_fa3.log2_ctx"),
    ("efficiency.attention.vllm_fa3.eff", [[[0.5]]], "efficiency.attention.vllm_fa3.eff"),  # numpy's shape error
    ("efficiency.moe_train.fwd_eff", [0.5], "efficiency.moe_train.fwd_eff"),
    ("efficiency.elementwise.rms_norm.per_width_s", 1e308, "hardware"),  # an infinite step printed before
])
def test_a_broken_profile_is_one_line_naming_the_field(tmp_path, capsys, path, value, field):
    hw = _edited_profile(tmp_path, _set(path, value))
    assert_main_error(capsys, ["step", "--hardware", hw, "--model", "qwen3-8b", "--batch", "8", "--context", "1024",
                               "--q-len", "600"], f"{field}:")


def test_prefill_efficiency_does_not_overflow():
    """A steep Hill curve (a profile written by hand) gives a step function, not an OverflowError (before)."""
    import numpy as np

    from simulator.costmodel.attention import prefill_eff
    c = load_hardware("h200").efficiency.prefill.model_copy(update={"hill": 1e308})
    eff = prefill_eff(c, np.array([1.0, 1e6, 1e20]))
    assert np.isfinite(eff).all() and eff[0] == 0.0 and eff[-1] == c.e_max
