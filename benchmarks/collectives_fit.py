"""Collective cost model against measured NCCL timings: prints tables of figures (no targets yet).

For each set of measurements available:
- Vidur's H100 DGX tables (calibration/vidur/network__h100_dgx__{all_reduce,send_recv}.csv, eager launches),
  fitted against the H100 base profile's links;
- every NCCL table under calibration/collectives/ (measure_nccl.py), fitted against the H200 base profile's links;
- vLLM's published H100 all-reduce timings per backend (calibration/collectives/vllm/*_vllm_backends.csv), fitted
  against the H100 base profile's links;
and prints, per link, collective and group size:
1. the in-sample error of the fitted curves (predicted / measured - 1: median |err|, p90, max, median bias, and
   the median |err| over messages of 1 MiB and more);
2. held-out sizes: fitted on every other message size, scored on the rest;
3. the curves the committed profile holds now (hardware_profiles/<gpu>.yaml), scored on the same rows (those of
   1 MiB and more, and over twice the eager floor where there is one): what the simulator uses today;
4. the units check: the largest measured bus bandwidth against the link's bandwidth.

Usage: python benchmarks/collectives_fit.py [TABLE.csv ...]   (default: the tables above)
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from simulator.costmodel.collectives import ALGO_FACTOR, collective_time  # noqa: E402
from simulator.fit.fit_collectives import (bus_bandwidth, describe, fit_collectives, format_errors,  # noqa: E402
                                           read_tables)
from simulator.hardware import HardwareProfile  # noqa: E402

VIDUR = [ROOT / "calibration/vidur/network__h100_dgx__all_reduce.csv",
         ROOT / "calibration/vidur/network__h100_dgx__send_recv.csv"]


def datasets(argv: list[str]) -> list[tuple[str, list[str], str]]:
    """(label, files, gpu) for each set of tables."""
    if argv:
        return [("given tables", argv, "h200")]
    out = []
    if all(p.is_file() for p in VIDUR):
        out.append(("Vidur H100 DGX (eager)", [str(p) for p in VIDUR], "h100"))
    vllm = ROOT / "calibration/collectives/vllm"
    nccl = sorted(str(p) for p in (ROOT / "calibration/collectives").rglob("*.csv") if vllm not in p.parents)
    for f in nccl:
        out.append((f"NCCL {Path(f).relative_to(ROOT)}", [f], "h200"))
    for f in sorted(vllm.glob("*_vllm_backends.csv")):  # vLLM's published H100 timings, one row per backend
        out.append((f"vLLM {f.relative_to(ROOT)}", [str(f)], "h100"))
    return out


def committed_errors(rows: pd.DataFrame, hw: HardwareProfile, floors: dict) -> pd.DataFrame:
    """Relative error of what the committed profile predicts (the simulator's collective_time), on messages of
    1 MiB and more that take over twice the eager floor fitted to their timings (where the floor no longer shows)."""
    out = []
    for (link, op, g), r in rows.groupby(["link", "collective", "group"]):
        floor_us = floors.get((link, op), 0.0) * 1e6
        r = r[(r["bytes"] >= (1 << 20)) & (r["us"] > 2 * floor_us)]
        if r.empty:
            continue
        span = int(g) if link == "scale_up" else max(int(g), hw.scale_up.domain_size + 1)
        pred = np.array([collective_time(hw, op, b, int(g), span) for b in r["bytes"]]) * 1e6
        e = pred / r["us"].to_numpy() - 1
        curve = hw.efficiency.collectives.get(link, {}).get(op)
        out.append({"link": link, "collective": op, "gpus": int(g), "rows": len(e),
                    "median|err|": f"{100 * np.median(np.abs(e)):.1f}%",
                    "bias": f"{100 * np.median(e):+.1f}%", "curve": "fitted" if curve else "default"})
    return pd.DataFrame(out)


def held_out(rows: pd.DataFrame, hw: HardwareProfile) -> pd.DataFrame:
    sizes = np.sort(rows["bytes"].unique())
    train_sizes = set(sizes[::2])
    train = rows[rows["bytes"].isin(train_sizes)]
    test = rows[~rows["bytes"].isin(train_sizes)]
    fit = fit_collectives(train, hw)
    out = []
    from simulator.fit.fit_collectives import assign_links, eager_mask, predict_us
    test = test.assign(link=assign_links(test, hw).to_numpy())
    for (link, op), r in test.groupby(["link", "collective"]):
        c = fit.curves.get((link, op))
        if c is None:
            continue
        lk = hw.scale_up if link == "scale_up" else hw.scale_out
        pred = predict_us(c, r, op, lk.bandwidth, fit.floors.get((link, op)), eager_mask(r))
        for g, rr in r.assign(err=pred / r["us"].to_numpy() - 1).groupby("group"):
            e = rr["err"].to_numpy()
            out.append({"link": link, "collective": op, "gpus": int(g), "rows": len(e),
                        "median|err|": f"{100 * np.median(np.abs(e)):.1f}%",
                        "p90|err|": f"{100 * np.percentile(np.abs(e), 90):.1f}%"})
    return pd.DataFrame(out)


def units(rows: pd.DataFrame, hw: HardwareProfile) -> pd.DataFrame:
    out = []
    bb = bus_bandwidth(rows)
    for (link, op, g), idx in rows.groupby(["link", "collective", "group"]).groups.items():
        lk = hw.scale_up if link == "scale_up" else hw.scale_out
        top = float(np.max(bb[rows.index.get_indexer(idx)]))
        out.append({"link": link, "collective": op, "gpus": int(g), "max busbw GB/s": round(top / 1e9, 1),
                    "link GB/s": round(lk.bandwidth / 1e9), "ratio": round(top / lk.bandwidth, 2)})
    return pd.DataFrame(out)


def main(argv: list[str]) -> int:
    sets = datasets(argv)
    if not sets:
        print("no collective tables found")
        return 0
    for label, files, gpu in sets:
        t0 = time.time()
        base = HardwareProfile.load(ROOT / "hardware_profiles/base" / f"{gpu}.yaml")
        committed = HardwareProfile.load(ROOT / "hardware_profiles" / f"{gpu}.yaml")
        rows, _, _ = read_tables(files)
        rows = rows[rows["collective"].isin(list(ALGO_FACTOR))].reset_index(drop=True)
        fit = fit_collectives(rows, base)
        up, out = base.scale_up.bandwidth / 1e9, base.scale_out.bandwidth / 1e9
        print(f"=== {label}: {len(rows)} timings, links of {base.name} "
              f"(scale_up {up:.0f} GB/s, scale_out {out:.0f} GB/s)")
        print("\n1. fitted curves, in-sample (predicted / measured - 1):")
        print(format_errors(fit.errors()))
        for (link, op), c in sorted(fit.curves.items()):
            fl = fit.floors.get((link, op))
            print(f"   {link} {op}: {describe(c)}" + (f"; eager floor {fl * 1e6:.1f} us" if fl else ""))
        for n in fit.notes:
            print(f"   note: {n}")
        print("\n2. held-out sizes (fitted on every other size):")
        print(held_out(rows, base).to_string(index=False))
        print(f"\n3. the committed profile hardware_profiles/{gpu}.yaml on the same rows "
              "(messages >= 1 MiB and > 2x the eager floor):")
        print(committed_errors(fit.rows, committed, fit.floors).to_string(index=False))
        print("\n4. units: largest measured bus bandwidth against the link")
        print(units(fit.rows, base).to_string(index=False))
        print(f"({time.time() - t0:.1f} s)\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
