"""Fit the collective cost curves (costmodel/collectives.py) from measured NCCL timings.

Rows: collective, group (GPUs), bytes (the per-GPU buffer as `collective_time` takes it: all-reduce's buffer,
all-gather's full output, reduce-scatter's full input, all-to-all's send buffer, the message of a send/recv), us,
source; optional `mode` ("graph": CUDA-graph replay, the GPU time alone; "eager": back-to-back eager launches)
and `devices_per_node` (Vidur's network tables: a group spread over more nodes than that crosses the network).

Per (link, collective), least squares on log time (soft L1, so that stray timings weigh little) of

    t = a + b * steps(n) + B / (link bandwidth * eff(n) * B^h / (B^h + half^h))

with B the algorithm bytes, steps(n) the ring steps, eff(n) one efficiency per measured group size. Eager
timings (Vidur's, for one) are floored by the CPU's launch rate: the kernels of back-to-back eager collectives
wait for the slowest rank's launch, so below some size they all take about the same time whatever the work.
They are fitted as the smooth maximum of the curve and a fitted floor; the floor is reported, not stored (the
cost model adds eager launch costs by itself), and where the floor hides the latency, the link's datasheet
latency is kept (a weak prior) and the note says so.
"""
from __future__ import annotations

import glob
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import least_squares

from simulator.costmodel.collectives import ALGO_FACTOR, LATENCY_STEPS, curve_time
from simulator.errors import RlsimError
from simulator.fit.measurements import _read_csv, check_numeric, file_line
from simulator.hardware import CollectiveCurve, HardwareProfile

NCCL_COLS = ("collective", "gpus", "bytes", "us")
FLOOR_P = 12.0  # sharpness of the smooth maximum between an eager floor and the curve
MIN_ROWS = 6  # rows (over at least MIN_SIZES sizes) needed to fit one (link, op)
MIN_SIZES = 3
BUSBW_SLACK = 1.05  # measured bus bandwidth above link bandwidth x this is reported as a units problem


# ------------------------------------------------------------------ reading
def _expand(paths: list[str]) -> list[str]:
    out = []
    for f in paths:
        if os.path.isdir(f):
            found = sorted(x for x in glob.glob(os.path.join(f, "*"))
                           if os.path.isfile(x) and (x.endswith(".csv") or is_metadata(x)))
            if not found:
                raise RlsimError("no .csv tables in this directory", f)
            out += found
        else:
            out.append(f)
    return out


def is_metadata(path: str) -> bool:
    """The header file measure_nccl.py writes beside its table (versions, GPUs, environment)."""
    name = os.path.basename(path).lower()
    return name.startswith("nccl_device") and name.endswith(".json")


def _nccl_rows(df: pd.DataFrame, p: Path) -> pd.DataFrame:
    """A table of measure_nccl.py: collective,gpus,bytes,us[,mode,...]."""
    df = check_numeric(df, ["gpus", "bytes", "us"], p)
    out = pd.DataFrame({"collective": df["collective"].astype(str).str.strip()})
    for c in ("gpus", "bytes", "us"):
        out[c] = df[c].astype(float)
    out = out.rename(columns={"gpus": "group"})
    if "mode" in df.columns:
        mode = df["mode"].astype(str).str.strip().str.lower()
        bad = ~mode.isin(["graph", "eager"])
        if bad.any():
            line = file_line(p, int(bad.idxmax()))
            raise RlsimError(f"mode must be graph or eager (got {df['mode'][bad].iloc[0]!r})", f"{p}:{line}")
        out["mode"] = mode.to_numpy()
    else:
        out["mode"] = "graph"
    out["devices_per_node"] = np.nan
    out["source"] = p.name
    return out


def read_tables(paths: list[str]) -> tuple[pd.DataFrame, list[dict], list[str]]:
    """Rows of every collectives table in `paths` (files or directories), the metadata files' contents, and the
    files read. NCCL tables (collective,gpus,bytes,us) and Vidur's network tables; anything else is an error."""
    from simulator.fit.measurements import Measurements, read_file
    if not paths:
        raise RlsimError("no measurement files", "FILE")
    parts, meta, files = [], [], []
    for f in _expand(paths):
        p = Path(f)
        if not p.is_file():
            raise RlsimError("no such file", str(p))
        files.append(str(p))
        if is_metadata(f):
            try:
                meta.append(json.loads(p.read_text()))
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                raise RlsimError(f"malformed JSON ({getattr(e, 'msg', e)})", str(p)) from None
            continue
        if not p.name.lower().endswith(".csv"):
            raise RlsimError("unknown file format (expected a collectives .csv table, a Vidur network table, or "
                             "the nccl_device.json written beside a table)", str(p))
        df = _read_csv(p)
        cols = set(df.columns)
        if set(NCCL_COLS) <= cols:
            rows = _nccl_rows(df, p)
        elif {"num_workers", "size", "collective"} <= cols and any(c.startswith("time_stats.") for c in cols):
            m = Measurements()
            read_file(p, m)
            rows = m.table("network")
            rows = rows.assign(mode="eager")  # Vidur times 11 back-to-back eager calls, no CUDA graph
            if "devices_per_node" not in rows:
                rows["devices_per_node"] = np.nan
        elif "collective" in cols:
            missing = [c for c in NCCL_COLS if c not in cols]
            raise RlsimError(f"missing columns {missing} (a collectives table has {','.join(NCCL_COLS)})", str(p))
        else:
            raise RlsimError(f"not a collectives table (columns {sorted(map(str, cols))[:6]}; expected "
                             f"{','.join(NCCL_COLS)} or a Vidur network table)", str(p))
        unknown = sorted(set(rows["collective"]) - set(ALGO_FACTOR))
        if unknown:
            raise RlsimError(f"unknown collective {unknown[0]!r} (known: {', '.join(ALGO_FACTOR)})", str(p))
        if (rows["group"] < 2).any():
            raise RlsimError("a collective needs at least 2 GPUs (a row has gpus < 2)", str(p))
        parts.append(rows)
    if not parts:
        raise RlsimError("no collectives tables among the files (only metadata)", "FILE")
    cols = ["collective", "group", "bytes", "us", "mode", "devices_per_node", "source"]
    return pd.concat([r[cols] for r in parts], ignore_index=True), meta, files


# ------------------------------------------------------------------ which link, which timing
def assign_links(rows: pd.DataFrame, hw: HardwareProfile) -> pd.Series:
    """scale_up for a group within one NVLink domain (and, for Vidur's tables, within one node), else scale_out."""
    g = rows["group"].to_numpy(float)
    out = g > hw.scale_up.domain_size
    if "devices_per_node" in rows:
        dpn = pd.to_numeric(rows["devices_per_node"], errors="coerce").to_numpy(float)
        out |= np.nan_to_num(dpn, nan=np.inf) < g
    return pd.Series(np.where(out, "scale_out", "scale_up"), index=rows.index)


def eager_mask(rows: pd.DataFrame) -> np.ndarray:
    """Timings of eager (not graph-captured) collectives: `mode` says so, or Vidur's tables (always eager)."""
    if "mode" in rows:
        return (rows["mode"].astype(str) == "eager").to_numpy()
    if "devices_per_node" in rows:
        return pd.to_numeric(rows["devices_per_node"], errors="coerce").notna().to_numpy()
    return np.zeros(len(rows), dtype=bool)


# ------------------------------------------------------------------ the fit
@dataclass
class OpFit:
    curve: CollectiveCurve
    floor_s: float | None  # fitted eager floor, if the rows had eager timings
    latency_from_prior: bool


def _arrays(rows: pd.DataFrame, op: str):
    n = rows["group"].to_numpy(float)
    groups = sorted({int(x) for x in n})
    fac = {g: ALGO_FACTOR[op](g) for g in groups}
    steps = {g: LATENCY_STEPS[op](g) for g in groups}
    algo = np.array([fac[int(x)] for x in n]) * rows["bytes"].to_numpy(float)
    st = np.array([steps[int(x)] for x in n])
    gi = np.array([groups.index(int(x)) for x in n])
    return groups, algo, st, gi, rows["us"].to_numpy(float) * 1e-6


def _model(x, algo, st, gi, eager, bw, n_eff, use_floor):
    a, b, lh, h = x[0] * 1e-6, x[1] * 1e-6, x[2], x[3]
    eff = np.asarray(x[4:4 + n_eff])[gi] if n_eff > 1 else x[4]
    ramp = 1.0 / (1.0 + (10.0 ** lh / algo) ** h)
    t = a + b * st + algo / (bw * eff * ramp)
    if use_floor:
        fl = 10.0 ** x[4 + n_eff] * 1e-6
        te = (t ** FLOOR_P + fl ** FLOOR_P) ** (1.0 / FLOOR_P)
        t = np.where(eager, te, t)
    return t


def fit_curve(rows: pd.DataFrame, op: str, link_bw: float, latency_prior_s: float | None = None,
              eager: np.ndarray | None = None) -> OpFit:
    """One CollectiveCurve from the rows of one op on one link (times in us, bytes per collective_time)."""
    if op not in ALGO_FACTOR:
        raise RlsimError(f"unknown collective {op!r}", "collective")
    rows = rows.reset_index(drop=True)
    eager = eager_mask(rows) if eager is None else np.asarray(eager, dtype=bool)
    groups, algo, st, gi, t = _arrays(rows, op)
    use_floor = bool(eager.any())
    n_sizes = rows["bytes"].nunique()
    # free parameters, fewest first: latency, bandwidth, ramp size, per-step latency, ramp shape, per-group eff
    fit_b = len(groups) >= 2 and op != "send_recv" and len(rows) >= 8
    fit_h = n_sizes >= 6 and len(rows) >= 10
    n_eff = len(groups) if (len(groups) >= 2 and len(rows) >= 6 * len(groups)) else 1
    lo = [0.0, 0.0, 0.0, 0.2 if fit_h else 1.0 - 1e-12] + [0.01] * n_eff
    hi = [1e4, (1e3 if fit_b else 1e-12), 11.0, 1.0] + [1.0] * n_eff
    if use_floor:
        lo.append(-1.0)
        hi.append(4.0)
    lo, hi = np.array(lo), np.array(hi)
    prior_us = (latency_prior_s or 0.0) * 1e6
    w_prior = 0.5 if (use_floor and latency_prior_s is not None) else 0.0
    ly = np.log(t)

    def res(x):
        r = np.log(_model(x, algo, st, gi, eager, link_bw, n_eff, use_floor)) - ly
        if w_prior:
            lat = x[0] + x[1] * st.min()
            r = np.append(r, w_prior * (np.log(lat + 0.1) - np.log(prior_us + 0.1)))
        return r

    t_min = float(np.percentile(t, 5)) * 1e6
    best = None
    for h0 in ((1.0, 0.6) if fit_h else (1.0,)):
        for lh0 in (3.0, 5.0, 7.0):
            x0 = [min(max(t_min * 0.8, 0.5), 1e4 - 1), 0.0, lh0, h0] + [0.7] * n_eff
            if use_floor:
                x0.append(np.log10(max(t_min, 1.0)))
            x0 = np.clip(x0, lo, hi)
            if fit_b:
                x0[1] = min(0.2, hi[1])
            r = least_squares(res, x0, bounds=(lo, hi), loss="soft_l1", f_scale=0.05, x_scale="jac", max_nfev=4000)
            if best is None or r.cost < best.cost:
                best = r
    x = best.x
    effs = [float(v) for v in x[4:4 + n_eff]]
    group_eff = {g: round(effs[i], 6) for i, g in enumerate(groups)} if n_eff > 1 else {}
    floor_s = float(10.0 ** x[4 + n_eff] * 1e-6) if use_floor else None
    if floor_s is not None and floor_s < 0.5 * float(t[eager].min()):
        floor_s = None  # eager timings, but no launch floor shows in them
    lat_small = (x[0] + x[1] * st.min()) * 1e-6
    from_prior = bool(use_floor and floor_s is not None and floor_s > 1.5 * lat_small and w_prior > 0)
    curve = CollectiveCurve(latency_s=float(x[0]) * 1e-6, latency_per_step_s=float(x[1]) * 1e-6 if fit_b else 0.0,
                            eff_max=max(effs), half_bytes=float(10.0 ** x[2]), hill=float(min(x[3], 1.0)),
                            group_eff=group_eff)
    srcs = ", ".join(sorted(set(rows["source"].astype(str)))) if "source" in rows else "?"
    note = (f"least squares (soft L1, log time) on {len(rows)} timings of {n_sizes} sizes, groups "
            f"{'/'.join(map(str, groups))} ({srcs})")
    if use_floor and floor_s is None:
        note += "; eager timings, no launch floor visible"
    elif use_floor:
        note += f"; eager launch floor {floor_s * 1e6:.1f} us fitted alongside (not stored)"
        if from_prior:
            note += (f"; the floor hides the latency ({lat_small * 1e6:.1f} us at {groups[0]} GPUs): not measured, "
                     f"weakly held to the link's {prior_us:.1f} us (datasheet assumption)")
    curve.fit_note = note
    return OpFit(curve, floor_s, from_prior)


def predict_us(curve: CollectiveCurve, rows: pd.DataFrame, op: str, link_bw: float,
               floor_s: float | None = None, eager: np.ndarray | None = None) -> np.ndarray:
    """Microseconds by the cost model's own formula (costmodel.collectives.curve_time), floored for eager rows."""
    out = np.empty(len(rows))
    for i, (g, b) in enumerate(zip(rows["group"].to_numpy(), rows["bytes"].to_numpy(float))):
        out[i] = curve_time(curve, link_bw, op, ALGO_FACTOR[op](int(g)) * b, int(g))
    if floor_s is not None:
        eager = eager_mask(rows) if eager is None else np.asarray(eager, dtype=bool)
        fl = (out ** FLOOR_P + floor_s ** FLOOR_P) ** (1.0 / FLOOR_P)
        out = np.where(eager, fl, out)
    return out * 1e6


def bus_bandwidth(rows: pd.DataFrame) -> np.ndarray:
    """NCCL bus bandwidth (bytes/s): algorithm bytes per GPU over the time."""
    fac = np.array([ALGO_FACTOR[str(c)](int(g)) for c, g in zip(rows["collective"], rows["group"])])
    return fac * rows["bytes"].to_numpy(float) / (rows["us"].to_numpy(float) * 1e-6)


@dataclass
class CollectiveFit:
    curves: dict[tuple[str, str], CollectiveCurve] = field(default_factory=dict)
    floors: dict[tuple[str, str], float] = field(default_factory=dict)
    rows: pd.DataFrame = field(default_factory=pd.DataFrame)  # input rows + link, eager, pred_us, err
    notes: list[str] = field(default_factory=list)

    def errors(self) -> pd.DataFrame:
        """Relative error (predicted / measured - 1) per link, op and group size."""
        d = self.rows.dropna(subset=["err"])
        if d.empty:
            return pd.DataFrame(columns=["link", "collective", "gpus", "rows", "median_abs_err", "p90_abs_err",
                                         "max_abs_err", "median_err", "median_abs_err_ge_1MiB"])
        out = []
        for (link, op, g), r in d.groupby(["link", "collective", "group"]):
            e = r["err"].to_numpy()
            big = np.abs(e[r["bytes"].to_numpy() >= (1 << 20)])
            a = np.abs(e)
            out.append({"link": link, "collective": op, "gpus": int(g), "rows": len(e),
                        "median_abs_err": float(np.median(a)), "p90_abs_err": float(np.percentile(a, 90)),
                        "max_abs_err": float(a.max()), "median_err": float(np.median(e)),
                        "median_abs_err_ge_1MiB": float(np.median(big)) if big.size else float("nan")})
        return pd.DataFrame(out)


def units_check(rows: pd.DataFrame, link: str, op: str, link_bw: float) -> str | None:
    """A note when the measured bus bandwidth exceeds the link's (the byte column is then likely too large)."""
    bb = bus_bandwidth(rows)
    top = float(np.percentile(bb, 99))
    if top > BUSBW_SLACK * link_bw:
        return (f"{link} {op}: measured bus bandwidth reaches {top / 1e9:.0f} GB/s, above the link's "
                f"{link_bw / 1e9:.0f} GB/s per direction; check the byte units of "
                f"{', '.join(sorted(set(rows['source'].astype(str))))} (the fit caps efficiency at 1)")
    return None


def fit_collectives(rows: pd.DataFrame, hw: HardwareProfile, min_rows: int = MIN_ROWS) -> CollectiveFit:
    """A curve for each (link, collective) with enough rows; rows with too few are reported in `notes`."""
    rows = rows.reset_index(drop=True).copy()
    out = CollectiveFit()
    if rows.empty:
        out.rows = rows
        return out
    rows["link"] = assign_links(rows, hw).to_numpy()
    rows["eager"] = eager_mask(rows)
    rows["pred_us"] = np.nan
    rows["err"] = np.nan
    for (link, op), r in rows.groupby(["link", "collective"], sort=True):
        lk = hw.scale_up if link == "scale_up" else hw.scale_out
        if len(r) < min_rows or r["bytes"].nunique() < MIN_SIZES:
            out.notes.append(f"{link} {op}: {len(r)} rows over {r['bytes'].nunique()} sizes, too few to fit "
                             f"(need {min_rows} over {MIN_SIZES}); not fitted")
            continue
        msg = units_check(r, link, op, lk.bandwidth)
        if msg:
            out.notes.append(msg)
        f = fit_curve(r, op, lk.bandwidth, latency_prior_s=lk.latency_s, eager=r["eager"].to_numpy())
        out.curves[(link, op)] = f.curve
        if f.floor_s is not None:
            out.floors[(link, op)] = f.floor_s
        pred = predict_us(f.curve, r, op, lk.bandwidth, f.floor_s, r["eager"].to_numpy())
        rows.loc[r.index, "pred_us"] = pred
        rows.loc[r.index, "err"] = pred / r["us"].to_numpy() - 1.0
    out.rows = rows
    return out


# ------------------------------------------------------------------ reporting
def describe(c: CollectiveCurve) -> str:
    eff = (", ".join(f"{g}: {e:.3f}" for g, e in sorted(c.group_eff.items())) if c.group_eff
           else f"{c.eff_max:.3f}")
    return (f"latency {c.latency_s * 1e6:.2f} us + {c.latency_per_step_s * 1e6:.2f} us/step, eff {eff}, "
            f"half {c.half_bytes / 1024:.0f} KiB, hill {c.hill:.2f}")


def format_errors(tab: pd.DataFrame) -> str:
    if tab.empty:
        return "(no fitted rows)"
    t = tab.copy()
    for c in ("median_abs_err", "p90_abs_err", "max_abs_err", "median_err", "median_abs_err_ge_1MiB"):
        fmt = "{:+.1f}%" if c == "median_err" else "{:.1f}%"
        t[c] = t[c].map(lambda v, fmt=fmt: "-" if pd.isna(v) else fmt.format(100 * v))
    t = t.rename(columns={"median_abs_err": "median|err|", "p90_abs_err": "p90|err|", "max_abs_err": "max|err|",
                          "median_err": "bias", "median_abs_err_ge_1MiB": "median|err|>=1MiB"})
    return t.to_string(index=False)
