"""The collective cost model, its fit (synthetic tables, Vidur's H100 tables) and `rlsim fit collectives`."""
from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from simulator.cli.main import main
from simulator.costmodel.collectives import ALGO_FACTOR, LATENCY_STEPS, collective_time, curve_time, group_efficiency
from simulator.fit.fit_collectives import assign_links, fit_collectives, fit_curve, read_tables
from simulator.fit.fit_misc import fit_collective
from simulator.hardware import CollectiveCurve, HardwareProfile, load_hardware
from simulator.paths import project_root

ROOT = project_root()
VIDUR = [ROOT / "calibration/vidur/network__h100_dgx__all_reduce.csv",
         ROOT / "calibration/vidur/network__h100_dgx__send_recv.csv"]
OPS = list(ALGO_FACTOR)
BW = 450e9
SIZES = [1 << k for k in range(12, 31)]  # 4 KiB .. 1 GiB, as measure_nccl.py


def base(gpu: str) -> HardwareProfile:
    return HardwareProfile.load(ROOT / "hardware_profiles/base" / f"{gpu}.yaml")


def with_curves(hw: HardwareProfile, curves: dict) -> HardwareProfile:
    eff = hw.efficiency.model_copy(deep=True)
    eff.collectives = curves
    return hw.model_copy(update={"efficiency": eff})


TRUE = CollectiveCurve(latency_s=6e-6, latency_per_step_s=0.8e-6, eff_max=0.9, half_bytes=256 * 1024, hill=0.7,
                       group_eff={2: 0.78, 4: 0.85, 8: 0.9})


def synthetic(op: str, curve: CollectiveCurve, groups=(2, 4, 8), noise=0.01, seed=0, floor_s=None,
              bw=BW) -> pd.DataFrame:
    """Timings generated from a known curve (and an eager floor: max(curve, floor) where given)."""
    rng = np.random.default_rng(seed)
    rows = []
    for g in groups:
        for b in SIZES:
            t = curve_time(curve, bw, op, ALGO_FACTOR[op](g) * b, g)
            if floor_s is not None:
                t = max(t, floor_s)
            rows.append({"collective": op, "group": g, "bytes": float(b),
                         "us": t * 1e6 * (1 + noise * rng.standard_normal()), "source": "synthetic",
                         "mode": "eager" if floor_s is not None else "graph"})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------ collective_time
@pytest.mark.parametrize("gpu", ["h200", "h100"])
def test_collective_time_is_monotone_in_size_with_a_latency_floor(gpu):
    hw = load_hardware(gpu)
    for op in OPS:
        for g in ([2] if op == "send_recv" else [2, 4, 8]):
            t = np.array([collective_time(hw, op, b, g) for b in SIZES])
            assert np.all(np.diff(t) > 0), (op, g)
            link = hw.scale_up
            curve = hw.efficiency.collectives.get("scale_up", {}).get(op)
            lat = link.latency_s if curve is None else curve.latency_s + curve.latency_per_step_s * LATENCY_STEPS[op](g)
            assert collective_time(hw, op, 1, g) >= lat
    assert collective_time(hw, "all_reduce", 1 << 20, 1) == 0.0
    assert collective_time(hw, "all_reduce", 0, 8) == 0.0


def test_all_reduce_is_about_twice_reduce_scatter_for_large_messages():
    shared = CollectiveCurve(latency_s=8e-6, latency_per_step_s=0.5e-6, eff_max=0.85, half_bytes=1e6, hill=0.8)
    for hw in (base("h200"), with_curves(base("h200"), {"scale_up": {"all_reduce": shared, "reduce_scatter": shared}})):
        for g in (2, 4, 8):
            ratio = collective_time(hw, "all_reduce", 1 << 30, g) / collective_time(hw, "reduce_scatter", 1 << 30, g)
            assert ratio == pytest.approx(2.0, rel=0.03)
            small = collective_time(hw, "all_reduce", 4096, g) / collective_time(hw, "reduce_scatter", 4096, g)
            assert small < 1.9  # latency-bound: far from the bandwidth ratio


def test_scale_out_is_slower_than_scale_up():
    hw = load_hardware("h200")
    for op in OPS:
        g = 2 if op == "send_recv" else 8
        for b in (1 << 16, 1 << 24, 1 << 30):
            inside = collective_time(hw, op, b, g)
            across = collective_time(hw, op, b, g, span=hw.scale_up.domain_size * 2)
            assert across > inside, (op, b)
    assert collective_time(hw, "all_to_all", 1 << 26, 16) > collective_time(hw, "all_to_all", 1 << 26, 8)


def test_three_parameter_curves_load_and_keep_their_formula():
    old = CollectiveCurve.from_dict({"latency_s": 1e-5, "eff_max": 0.9, "half_bytes": 5e6, "fit_note": "old"})
    assert old.hill == 1.0 and old.latency_per_step_s == 0.0 and old.group_eff == {}
    for op in OPS:
        for b in (4096.0, 1e6, 1e9):
            algo = ALGO_FACTOR[op](8) * b
            want = 1e-5 + algo / (BW * 0.9 * algo / (algo + 5e6))
            assert curve_time(old, BW, op, algo, 8) == pytest.approx(want, rel=1e-12)


def test_group_efficiency_interpolates_in_log2_and_clamps():
    c = CollectiveCurve(latency_s=0, eff_max=0.9, half_bytes=0, group_eff={2: 0.6, 8: 0.9})
    assert group_efficiency(c, 2) == 0.6 and group_efficiency(c, 8) == 0.9
    assert group_efficiency(c, 4) == pytest.approx(0.75)  # log2 4 is halfway between log2 2 and log2 8
    assert group_efficiency(c, 16) == 0.9 and group_efficiency(c, 1) == 0.6
    assert group_efficiency(c.model_copy(update={"group_eff": {}}), 4) == 0.9


def test_profiles_with_fitted_curves_round_trip_through_yaml(tmp_path):
    hw = with_curves(base("h200"), {"scale_up": {"all_reduce": TRUE}})
    hw.save(tmp_path / "p.yaml")
    back = HardwareProfile.load(tmp_path / "p.yaml")
    c = back.efficiency.collectives["scale_up"]["all_reduce"]
    assert c.group_eff == TRUE.group_eff and all(isinstance(k, int) for k in c.group_eff)
    for b in (4096, 1 << 20, 1 << 30):
        assert collective_time(back, "all_reduce", b, 4) == collective_time(hw, "all_reduce", b, 4)


# ------------------------------------------------------------------ the fit
@pytest.mark.parametrize("op", ["all_reduce", "all_gather", "all_to_all"])
def test_fit_recovers_known_parameters(op):
    df = synthetic(op, TRUE)
    f = fit_curve(df, op, BW)
    c = f.curve
    assert f.floor_s is None
    assert c.latency_s == pytest.approx(TRUE.latency_s, rel=0.1)
    assert c.latency_per_step_s == pytest.approx(TRUE.latency_per_step_s, rel=0.15)
    for g, e in TRUE.group_eff.items():
        assert c.group_eff[g] == pytest.approx(e, rel=0.03)
    assert c.hill == pytest.approx(TRUE.hill, abs=0.08)
    assert c.half_bytes == pytest.approx(TRUE.half_bytes, rel=0.3)
    pred = np.array([curve_time(c, BW, op, ALGO_FACTOR[op](g) * b, g) for g, b in zip(df["group"], df["bytes"])])
    assert np.median(np.abs(pred * 1e6 / df["us"] - 1)) < 0.01


def test_fit_of_send_recv_recovers_a_line():
    true = CollectiveCurve(latency_s=7e-6, eff_max=0.8, half_bytes=0.0)
    c = fit_curve(synthetic("send_recv", true, groups=(2,)), "send_recv", BW).curve
    assert c.latency_per_step_s == 0.0 and c.group_eff == {}
    for b in (4096, 1 << 20, 1 << 30):
        assert curve_time(c, BW, "send_recv", b, 2) == pytest.approx(curve_time(true, BW, "send_recv", b, 2), rel=0.03)


def test_eager_floor_is_fitted_and_left_out_of_the_curve():
    floor = 30e-6
    df = synthetic("all_reduce", TRUE, floor_s=floor)
    f = fit_curve(df, "all_reduce", BW, latency_prior_s=8e-6)
    assert f.floor_s == pytest.approx(floor, rel=0.1)
    for g, e in TRUE.group_eff.items():
        assert f.curve.group_eff[g] == pytest.approx(e, rel=0.05)
    # the stored curve is the GPU time alone: below the floor at small sizes, the truth at large ones
    assert curve_time(f.curve, BW, "all_reduce", 4096.0, 2) < 0.8 * floor
    for g in (2, 8):
        big = ALGO_FACTOR["all_reduce"](g) * (1 << 30)
        assert curve_time(f.curve, BW, "all_reduce", big, g) == pytest.approx(
            curve_time(TRUE, BW, "all_reduce", big, g), rel=0.03)
    assert "eager launch floor" in f.curve.fit_note


def test_units_check_flags_bus_bandwidth_above_the_link():
    hw = base("h200")
    ok = synthetic("all_reduce", TRUE)
    assert not any("bus bandwidth" in n for n in fit_collectives(ok, hw).notes)
    doubled = ok.assign(bytes=ok["bytes"] * 2)  # e.g. elements counted as bytes twice
    notes = fit_collectives(doubled, hw).notes
    assert any("bus bandwidth" in n and "synthetic" in n for n in notes), notes


def test_groups_beyond_the_nvlink_domain_fit_scale_out():
    hw = base("h200")
    true = CollectiveCurve(latency_s=20e-6, eff_max=0.7, half_bytes=1e6)
    up = synthetic("all_reduce", TRUE, groups=(2, 4, 8))
    out = synthetic("all_reduce", true, groups=(16, 32), bw=hw.scale_out.bandwidth)
    fit = fit_collectives(pd.concat([up, out], ignore_index=True), hw)
    assert set(fit.curves) == {("scale_up", "all_reduce"), ("scale_out", "all_reduce")}
    c = fit.curves[("scale_out", "all_reduce")]
    assert set(c.group_eff) == {16, 32}
    for g in (16, 32):
        assert c.group_eff[g] == pytest.approx(0.7, rel=0.05)
    tab = fit.errors()
    assert set(tab["gpus"]) == {2, 4, 8, 16, 32}
    assert (tab["median_abs_err"] < 0.02).all()


def test_too_few_rows_are_reported_not_fitted():
    df = synthetic("all_to_all", TRUE, groups=(2,)).iloc[:4]
    fit = fit_collectives(df, base("h200"))
    assert not fit.curves and "too few" in fit.notes[0]


def test_fit_misc_wrapper_still_fits():
    c = fit_collective(synthetic("all_reduce", TRUE), "all_reduce", BW)
    assert isinstance(c, CollectiveCurve) and c.group_eff


# ------------------------------------------------------------------ Vidur's real H100 tables
def _vidur_raw(path: Path) -> pd.DataFrame:
    """Read plainly: Vidur's profiler writes size = 2 x the fp16 elements it allocated, i.e. bytes
    (vidur/profiling/collectives/collectives_wrapper.py: "size": self._size * 2  # bytes)."""
    d = pd.read_csv(path)
    op = str(d["collective"].iloc[0])
    return pd.DataFrame({"collective": op, "group": d["num_workers"], "bytes": d["size"].astype(float),
                         "us": d[f"time_stats.{op}.median"] * 1e3, "devices_per_node": d["devices_per_node"],
                         "mode": "eager", "source": path.name})


def test_vidur_sizes_are_twice_the_profilers_element_grid():
    """The profiler's sizes are 1024 + 4096 k elements (vidur/profiling/utils.py); the CSV holds twice that."""
    d = pd.read_csv(VIDUR[0])
    s = np.sort(d["size"].unique())
    assert s[0] == 2 * 1024 and s[1] == 2 * (1024 + 4096)
    assert s[-1] == 2 * 4096 * 8192  # twice the default max_collective_size (elements)


def test_fit_on_vidur_h100_tables_in_bytes():
    rows = pd.concat([_vidur_raw(p) for p in VIDUR], ignore_index=True)
    hw = base("h100")
    fit = fit_collectives(rows, hw)
    assert set(fit.curves) == {("scale_up", "all_reduce"), ("scale_up", "send_recv"), ("scale_out", "send_recv")}
    assert not any("bus bandwidth" in n for n in fit.notes), fit.notes  # within the links' bandwidths
    tab = fit.errors()
    assert len(tab) == 5  # all_reduce at 2/4/8 GPUs, send_recv within and across nodes
    assert (tab["median_abs_err_ge_1MiB"] < 0.05).all(), tab
    assert (tab["median_abs_err"] < 0.05).all(), tab
    assert (tab["median_err"].abs() < 0.02).all(), tab  # no bias
    # the eager floor of back-to-back all-reduces (~40 us) is found and kept out of the curve
    assert 20e-6 < fit.floors[("scale_up", "all_reduce")] < 60e-6
    ar = fit.curves[("scale_up", "all_reduce")]
    assert ar.latency_s + ar.latency_per_step_s * 2 < 20e-6
    # NVLink beats the network by the ratio of the links, and 8-GPU all-reduces reach a large fraction of NVLink
    fitted = with_curves(hw, {"scale_up": {"send_recv": fit.curves[("scale_up", "send_recv")]},
                              "scale_out": {"send_recv": fit.curves[("scale_out", "send_recv")]}})
    across = collective_time(fitted, "send_recv", 1 << 26, 2, span=16)
    inside = collective_time(fitted, "send_recv", 1 << 26, 2)
    assert across > 5 * inside
    assert 0.6 < ar.group_eff[8] <= 1.0


def test_vidur_tables_through_the_reader_assign_links_and_modes():
    rows, meta, files = read_tables([str(p) for p in VIDUR])
    assert not meta and len(files) == 2
    assert set(rows["mode"]) == {"eager"}
    links = assign_links(rows, base("h100"))
    across = (rows["collective"] == "send_recv") & (rows["devices_per_node"] == 1)
    assert (links[across] == "scale_out").all() and (links[~across] == "scale_up").all()
    fit = fit_collectives(rows, base("h100"))
    # the units check speaks exactly when the bytes read give more than the link can carry
    from simulator.fit.fit_collectives import bus_bandwidth
    r = fit.rows
    for (link, op), part in r.groupby(["link", "collective"]):
        bw = base("h100").scale_up.bandwidth if link == "scale_up" else base("h100").scale_out.bandwidth
        over = np.percentile(bus_bandwidth(part), 99) > 1.05 * bw
        assert over == any(n.startswith(f"{link} {op}: measured bus bandwidth") for n in fit.notes)


# ------------------------------------------------------------------ the CLI
def run(capsys, *argv):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def one_line_error(rc, err, *needles):
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    for n in needles:
        assert n.lower() in lines[0].lower(), (n, lines[0])


def nccl_table(tmp_path: Path, df: pd.DataFrame | None = None, name="nccl.csv") -> Path:
    if df is None:
        df = pd.concat([synthetic(op, TRUE, groups=(2,) if op == "send_recv" else (2, 4, 8)) for op in OPS])
    p = tmp_path / name
    df.rename(columns={"group": "gpus"})[["collective", "gpus", "bytes", "us", "mode"]].to_csv(p, index=False)
    return p


@pytest.fixture
def profile(tmp_path):
    src = ROOT / "hardware_profiles/h200.yaml"
    dst = tmp_path / "h200.yaml"
    shutil.copy(src, dst)
    return dst


def test_cli_fits_and_updates_only_the_collectives(tmp_path, profile, capsys):
    table = nccl_table(tmp_path)
    out = tmp_path / "out.yaml"
    rc, text, err = run(capsys, "fit", "collectives", table, "--profile", profile, "--out", out)
    assert rc == 0, err
    before, after = yaml.safe_load(profile.read_text()), yaml.safe_load(out.read_text())
    for k in before:
        if k not in ("efficiency", "derivation"):
            assert after[k] == before[k], k
    for k in before["efficiency"]:
        if k != "collectives":
            assert after["efficiency"][k] == before["efficiency"][k], k
    assert set(after["efficiency"]["collectives"]["scale_up"]) == set(OPS)
    assert after["derivation"].startswith(before["derivation"].rstrip())
    # one line per fitted source: the profile's vLLM all-reduce line stays, the NCCL table's is added
    n_before = before["derivation"].count("rlsim fit collectives")
    assert after["derivation"].count("rlsim fit collectives") == n_before + 1 and "nccl.csv" in after["derivation"]
    head = [ln for ln in out.read_text().splitlines() if ln.startswith("#")]
    assert any("Then: rlsim fit collectives" in ln for ln in head)
    assert head[0] == profile.read_text().splitlines()[0]  # the original header is kept
    # the printed table: a row per collective and group size, errors small on data from the model itself
    for op in OPS:
        assert op in text
    assert "wrote" in text
    hw = HardwareProfile.load(out)
    for op in ("all_reduce", "all_gather"):
        for g in (2, 8):
            b = float(1 << 24)
            assert collective_time(hw, op, b, g) == pytest.approx(
                curve_time(TRUE, hw.scale_up.bandwidth, op, ALGO_FACTOR[op](g) * b, g), rel=0.03)
    # run again on its own output: the derivation line and header line are replaced, not repeated
    rc, _, err = run(capsys, "fit", "collectives", table, "--profile", out, "--out", out)
    assert rc == 0, err
    again = out.read_text()
    assert again.count(f"Then: rlsim fit collectives {table}") == 1
    assert yaml.safe_load(again)["derivation"].count("rlsim fit collectives") == n_before + 1


def test_cli_keeps_curves_it_has_no_measurements_for(tmp_path, profile, capsys):
    only_ar = synthetic("all_reduce", TRUE)
    out = tmp_path / "a.yaml"
    assert run(capsys, "fit", "collectives", nccl_table(tmp_path), "--profile", profile, "--out", out)[0] == 0
    out2 = tmp_path / "b.yaml"
    rc, _, err = run(capsys, "fit", "collectives", nccl_table(tmp_path, only_ar, "ar.csv"), "--profile", out,
                     "--out", out2)
    assert rc == 0, err
    col = yaml.safe_load(out2.read_text())["efficiency"]["collectives"]["scale_up"]
    assert set(col) == set(OPS)
    assert col["send_recv"] == yaml.safe_load(out.read_text())["efficiency"]["collectives"]["scale_up"]["send_recv"]


def test_cli_reads_vidur_tables(tmp_path, capsys):
    out = tmp_path / "h100.yaml"
    rc, text, err = run(capsys, "fit", "collectives", *VIDUR, "--profile", ROOT / "hardware_profiles/base/h100.yaml",
                        "--out", out, "--report", tmp_path / "err.csv")
    assert rc == 0, err
    col = HardwareProfile.load(out).efficiency.collectives
    assert {"all_reduce", "send_recv"} <= set(col["scale_up"]) and set(col["scale_out"]) == {"send_recv"}
    assert "network__h100_dgx__all_reduce.csv" in col["scale_up"]["all_reduce"].fit_note
    rep = pd.read_csv(tmp_path / "err.csv")
    assert set(rep["gpus"]) == {2, 4, 8} and len(rep) == 5


def _bad(tmp_path, text: str, name="t.csv") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


@pytest.mark.parametrize("name,text,needles", [
    ("t.txt", "collective,gpus,bytes,us\nall_reduce,2,4096,10\n", ["unknown file format"]),
    ("t.csv", "collective,gpus,us\nall_reduce,2,10\n", ["missing columns", "bytes"]),
    ("t.csv", "collective,gpus,bytes,us\nall_reduce,2,4096,10\nall_reduce,2,-8192,12\n", ["'bytes'", "-8192", ":3"]),
    ("t.csv", "# a comment\ncollective,gpus,bytes,us\nall_reduce,2,4096,inf\n", ["'us'", "timings > 0", "t.csv:3"]),
    ("t.csv", "collective,gpus,bytes,us\nall_reduce,2,4096,x\n", ["non-number"]),
    ("t.csv", "collective,gpus,bytes,us\nbroadcast,2,4096,10\n", ["unknown collective", "broadcast"]),
    ("t.csv", "collective,gpus,bytes,us\nall_reduce,1,4096,10\n", ["at least 2"]),
    ("t.csv", "collective,gpus,bytes,us\nall_reduce,2,0,10\n", ["'bytes'", "whole numbers in 1.."]),
    ("t.csv", "collective,gpus,bytes,us\nall_reduce,2.5,4096,10\n", ["'gpus'", "whole numbers"]),
    ("t.csv", "collective,gpus,bytes,us,mode\nall_reduce,2,4096,10,lazy\n", ["mode"]),
    ("t.csv", "op,m,n,k,us\nx,1,2,3,4\n", ["not a collectives table"]),
    ("t.csv", "", ["not a readable csv"]),
    ("t.csv", "collective,gpus,bytes,us\nall_reduce,2,4096,10\nall_reduce,2,8192,11\n", ["nothing to fit"]),
])
def test_cli_bad_input_is_one_line_and_writes_nothing(tmp_path, profile, capsys, name, text, needles):
    out = tmp_path / "out.yaml"
    rc, _, err = run(capsys, "fit", "collectives", _bad(tmp_path, text, name), "--profile", profile, "--out", out)
    one_line_error(rc, err, *needles)
    assert not out.exists()


def test_cli_bad_arguments(tmp_path, profile, capsys):
    table = nccl_table(tmp_path)
    out = tmp_path / "out.yaml"
    missing = tmp_path / "missing.csv"
    one_line_error(*run(capsys, "fit", "collectives", missing, "--profile", profile, "--out", out)[::2], "no such file")
    one_line_error(*run(capsys, "fit", "collectives", table, "--profile", "no-such-gpu", "--out", out)[::2],
                   "--profile")
    one_line_error(*run(capsys, "fit", "collectives", table, "--profile", profile, "--out", tmp_path)[::2],
                   "--out", "directory")
    one_line_error(*run(capsys, "fit", "collectives", table, "--profile", profile, "--out", table)[::2],
                   "overwrite")
    empty = tmp_path / "empty"
    empty.mkdir()
    one_line_error(*run(capsys, "fit", "collectives", empty, "--profile", profile, "--out", out)[::2], "no .csv")
    assert not out.exists()


def test_fit_kernels_fits_both_links_from_vidur(tmp_path, capsys):
    out = tmp_path / "h100.yaml"
    rc, text, err = run(capsys, "fit", "kernels", "--base", "h100", *VIDUR, "--like", "h200", "--out", out)
    assert rc == 0, err
    col = HardwareProfile.load(out).efficiency.collectives
    assert {"all_reduce", "send_recv"} <= set(col["scale_up"]) and set(col["scale_out"]) == {"send_recv"}
    assert "network__h100_dgx__all_reduce.csv" in col["scale_up"]["all_reduce"].fit_note
    assert "collective scale_up all_reduce" in text
    assert math.isfinite(col["scale_up"]["all_reduce"].latency_s)
