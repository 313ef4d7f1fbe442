"""Fit the decode/verify attention efficiency table and the causal prefill curve."""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.optimize import least_squares, lsq_linear

from simulator.costmodel.attention import (causal_pairs, decode_attention_time, prefill_attention_time,
                                          prefill_eff)
from simulator.costmodel.fa3_schedule import uniform_times
from simulator.hardware import AttentionCurve, PrefillCurve, SplitSchedule

SMOOTH = 0.05  # weight of the second-difference penalty that ties table nodes without data to their neighbours


def _features(df: pd.DataFrame, reread: bool, tile: int):
    b, ql, ctx, hq, hkv, d = (df[c].to_numpy(float) for c in ("batch", "q_len", "ctx", "hq", "hkv", "d"))
    group = hq / hkv
    tiles = np.ceil(group * ql / tile)
    rr = np.where((ql >= 2) & reread, group, 1.0)
    items = b * hkv * tiles * rr
    bytes_ = b * hkv * ctx * 2 * d * 2.0 * rr
    return np.log2(items), np.log2(ctx), bytes_


def _bilinear(grid_i, grid_c, li, lc):
    """Sparse-free bilinear weights: (row index, col index, weight) for 4 corners per point."""
    def locate(grid, v):
        v = np.clip(v, grid[0], grid[-1])
        j = np.clip(np.searchsorted(grid, v, side="right") - 1, 0, len(grid) - 2)
        f = (v - grid[j]) / (grid[j + 1] - grid[j])
        return j, f
    ji, fi = locate(grid_i, li)
    jc, fc = locate(grid_c, lc)
    return [(ji, jc, (1 - fi) * (1 - fc)), (ji + 1, jc, fi * (1 - fc)), (ji, jc + 1, (1 - fi) * fc),
            (ji + 1, jc + 1, fi * fc)]


def _fit_slice(df: pd.DataFrame, grid_i, grid_c, bw: float, reread: bool, tile: int):
    """Inverse efficiencies at the table nodes and the overhead for one GQA group size."""
    li, lc, by = _features(df, reread, tile)
    t = df["us"].to_numpy(float) * 1e-6
    ni, nc = len(grid_i), len(grid_c)
    nu = ni * nc
    A = np.zeros((len(t), nu + 1))
    for ri, ci, w in _bilinear(grid_i, grid_c, li, lc):
        np.add.at(A, (np.arange(len(t)), ri * nc + ci), w * by / bw)
    A[:, nu] = 1.0
    A /= t[:, None]
    y = np.ones(len(t))
    reg = []
    for i in range(ni):
        for j in range(nc):
            for di, dj in ((1, 0), (0, 1)):
                i2, j2, i0, j0 = i + di, j + dj, i - di, j - dj
                if 0 <= i0 and i2 < ni and 0 <= j0 and j2 < nc:
                    row = np.zeros(nu + 1)
                    row[i0 * nc + j0] += 1
                    row[i * nc + j] -= 2
                    row[i2 * nc + j2] += 1
                    reg.append(row * SMOOTH)
    if reg:
        A = np.vstack([A, np.array(reg)])
        y = np.concatenate([y, np.zeros(len(reg))])
    lb = np.concatenate([np.ones(nu), [0.0]])
    ub = np.concatenate([np.full(nu, 1e3), [50e-6]])
    sol = lsq_linear(A, y, bounds=(lb, ub))
    return sol.x[:nu].reshape(ni, nc), float(sol.x[nu])


def _grid(v: np.ndarray) -> np.ndarray:
    g = np.arange(np.floor(v.min()), np.ceil(v.max()) + 1)
    return g if len(g) > 1 else np.array([g[0], g[0] + 1])


def fit_attention(df: pd.DataFrame, bw: float, peak: float, reread: bool = False, tile: int = 128) -> AttentionCurve:
    """Tables of achieved bandwidth fraction over (log2 work items, log2 ctx), one per GQA group size, each with a
    fixed overhead: linear least squares in the inverse efficiencies (time per byte) and the overhead, relative
    residuals, a small smoothness penalty; efficiencies bounded to (0, 1]."""
    li, lc, _ = _features(df, reread, tile)
    grid_i, grid_c = _grid(li), _grid(lc)
    group = (df["hq"] / df["hkv"]).to_numpy(float)
    tables, overheads, lg = [], [], []
    for g in sorted(set(group)):
        u, t0 = _fit_slice(df[group == g], grid_i, grid_c, bw, reread, tile)
        tables.append([[round(1.0 / v, 5) for v in row] for row in u])
        overheads.append(t0)
        lg.append(float(np.log2(g)))
    b_, ql, hq, hkv, d = (df[c].to_numpy(float) for c in ("batch", "q_len", "hq", "hkv", "d"))
    tiles = np.ceil(hq / hkv * ql / tile)
    t = df["us"].to_numpy(float) * 1e-6
    flops = 2.0 * b_ * hkv * tiles * tile * df["ctx"].to_numpy(float) * 2 * d
    compute_eff = float(min(1.0, np.max(flops / (peak * t))))
    return AttentionCurve(overhead_s=overheads, log2_group=lg, log2_items=[float(v) for v in grid_i],
                          log2_ctx=[float(v) for v in grid_c], eff=tables, query_tile=tile,
                          compute_eff=round(compute_eff, 4), reread_per_query_head=reread,
                          fit_note=f"linear least squares over {len(df)} timings ({', '.join(sorted(set(df['source'])))})"
                                   "; one table per GQA group size; compute_eff = fastest padded-tile rate observed")


def predict_attention(c: AttentionCurve, df: pd.DataFrame, bw: float, peak: float) -> np.ndarray:
    out = np.empty(len(df))
    for i, r in enumerate(df.itertuples()):
        ctx = np.full(int(r.batch), float(r.ctx))
        out[i] = decode_attention_time(c, peak, bw, ctx, int(r.q_len), int(r.hq), int(r.hkv), int(r.d)) * 1e6
    return out


def cross_validate_attention(df, bw, peak, reread=False, folds=5, seed=0) -> np.ndarray:
    idx = np.random.default_rng(seed).permutation(len(df))
    errs = np.empty(len(df))
    for test in np.array_split(idx, folds):
        c = fit_attention(df.drop(df.index[test]), bw, peak, reread)
        te = df.iloc[test]
        errs[test] = predict_attention(c, te, bw, peak) / te["us"].to_numpy(float) - 1
    return errs


def fit_prefill(df: pd.DataFrame, peak: float) -> PrefillCurve:
    """Causal prefill: t = overhead + F / (peak * e_max * F / (F + F_half)), least squares on log time."""
    q = df["q_len"].to_numpy(float)
    ctx = df["ctx"].to_numpy(float)
    b, hq, d = (df[c].to_numpy(float) for c in ("batch", "hq", "d"))
    t = df["us"].to_numpy(float) * 1e-6
    flops = b * 2.0 * hq * causal_pairs(q, ctx) * 2 * d

    def curve(x):
        return PrefillCurve(overhead_s=x[2] * 1e-6, e_max=x[0], flops_half=x[1] * 1e9, hill=x[3])

    def model(x):
        c = curve(x)
        return c.overhead_s + flops / (peak * prefill_eff(c, flops))

    r = least_squares(lambda x: np.log(model(x)) - np.log(t), [0.4, 10.0, 5.0, 1.0],
                      bounds=([0.01, 0.0, 0.0, 0.2], [1.0, 1e6, 100.0, 5.0]))
    c = curve([float(v) for v in r.x])
    c.fit_note = f"least squares (log time) on {len(df)} causal prefill timings"
    return c


def predict_prefill(c: PrefillCurve, df: pd.DataFrame, peak: float) -> np.ndarray:
    return np.array([prefill_attention_time(c, peak, np.full(int(r.batch), r.q_len), np.full(int(r.batch), r.ctx),
                                            int(r.hq), int(r.d)) * 1e6 for r in df.itertuples()])


def _mixed_lens(df: pd.DataFrame) -> list[np.ndarray]:
    return [np.array(str(v).split(), dtype=float) for v in df["ctx_list"]]


def predict_mixed(c: AttentionCurve, df: pd.DataFrame, bw: float, peak: float) -> np.ndarray:
    """Predicted microseconds for varlen rows (each with its own list of contexts)."""
    return np.array([decode_attention_time(c, peak, bw, lens, int(r.q_len), int(r.hq), int(r.hkv), int(r.d)) * 1e6
                     for lens, r in zip(_mixed_lens(df), df.itertuples())])


def fit_split_schedule(c: AttentionCurve, df: pd.DataFrame, bw: float, peak: float
                       ) -> tuple[AttentionCurve, np.ndarray, str]:
    """FA3's split-KV schedule (`split_schedule`) fitted on measured batches of mixed contexts (dist not ending in
    `_mean`): least squares on log time of the tables' uniform twin x the schedule's ratio, over the bandwidth
    share, per-CTA rate, per-item, per-kernel and combine costs (the split rule and CTA count come from FA3's
    source). Returns the curve, its relative errors on those batches and a note with the table alone's."""
    mixed = df[~df["dist"].astype(str).str.endswith("_mean")].reset_index(drop=True)
    us = mixed["us"].to_numpy(float)
    plain = predict_mixed(c.model_copy(update={"split_schedule": None}), mixed, bw, peak) / us - 1
    scale = np.array([1.0, 1e9, 1e-6, 1e-6, 1e-6])

    def curve(x: np.ndarray) -> AttentionCurve:
        v = x * scale
        return c.model_copy(update={"split_schedule": SplitSchedule(
            bandwidth_fraction=float(v[0]), cta_bytes_per_s=float(v[1]), item_s=float(v[2]), fixed_s=float(v[3]),
            combine_s=float(v[4]))})

    r = least_squares(lambda x: np.log(predict_mixed(curve(x), mixed, bw, peak)) - np.log(us),
                      [0.8, 60.0, 1.0, 5.0, 2.0], bounds=([0.1, 1.0, 0.0, 0.0, 0.0], [1.0, 1e4, 100.0, 100.0, 100.0]),
                      xtol=1e-12, ftol=1e-12, gtol=1e-12)
    fitted = curve(r.x)
    errors = predict_mixed(fitted, mixed, bw, peak) / us - 1
    sources = ", ".join(sorted(set(mixed["source"])))
    note = (f"least squares (log time) on {len(mixed)} mixed-context batches ({sources}): median |error| "
            f"{np.median(np.abs(errors)):.1%} (the tables alone: {np.median(np.abs(plain)):.1%})")
    fitted.split_schedule.fit_note = note
    return fitted, errors, note


def wave_factors(s: SplitSchedule, rows: pd.DataFrame, bw: float) -> np.ndarray:
    """Per equal-context row (batch, q_len, ctx, hkv, d): how much longer FA3's whole waves of CTAs take than the
    same work spread evenly (1 for a batch of at most one wave)."""
    out = []
    for r in rows.itertuples():
        graph = int(r.batch) * int(r.q_len) <= s.graph_tokens
        bytes_per_token = 2 * int(r.d) * 2.0  # K and V of one KV head, bf16
        in_waves, balanced = uniform_times(s, bw, int(r.batch), float(r.ctx), int(r.hkv), bytes_per_token, graph)
        out.append(in_waves / balanced)
    return np.array(out)


def fit_scheduled_attention(c: AttentionCurve, uniform: pd.DataFrame, varlen: pd.DataFrame, bw: float, peak: float,
                            reread: bool = False) -> tuple[AttentionCurve, np.ndarray, str]:
    """A curve whose tables describe equal-context batches with the work spread evenly over the GPU, and FA3's
    split schedule on top (whole waves, mixed contexts): the schedule fitted on the mixed batches against the
    tables, the tables refitted on the equal-context timings divided by their wave factors, the schedule again."""
    first, _, _ = fit_split_schedule(c, varlen, bw, peak)
    smooth = uniform.assign(us=uniform["us"].to_numpy(float) / wave_factors(first.split_schedule, uniform, bw))
    tables = fit_attention(smooth, bw, peak, reread)
    tables.fit_note = f"{c.fit_note}, divided by FA3's wave factors"
    return fit_split_schedule(tables, varlen, bw, peak)


def fit_cta_rate(c: AttentionCurve, df: pd.DataFrame, bw: float, peak: float) -> float:
    """Per-CTA streaming rate (bytes/s) that best explains the mixed-context timings (1-D search, log error)."""
    t = df["us"].to_numpy(float)
    best = None
    for rate in np.geomspace(1e9, 1e12, 241):
        e = np.log(predict_mixed(c.model_copy(update={"cta_bytes_per_s": rate}), df, bw, peak)) - np.log(t)
        score = float(np.median(np.abs(e)))
        if best is None or score < best[0]:
            best = (score, rate)
    return float(best[1])


def fit_varlen(df: pd.DataFrame, bw: float, peak: float) -> AttentionCurve:
    """A varlen kernel without split-KV: table from its uniform batches, CTA rate from its mixed ones."""
    uni = df[df["kind"] == "uniform"].copy()
    uni["ctx"] = [float(lens[0]) for lens in _mixed_lens(uni)]
    c = fit_attention(uni, bw, peak)
    c.cta_bytes_per_s = fit_cta_rate(c, df[df["kind"] == "mixed"], bw, peak)
    c.fit_note = (f"varlen FlashAttention-2 without split-KV: table from {len(uni)} uniform batches, per-CTA rate "
                  f"from {int((df['kind'] == 'mixed').sum())} mixed-context batches ({', '.join(sorted(set(df['source'])))})")
    return c


def fit_split(c: AttentionCurve, df: pd.DataFrame, bw: float, peak: float, rate: float) -> int:
    """KV chunk (tokens) per CTA of a kernel that splits long sequences: the largest power of two whose
    critical path leaves the dense timings' fit no worse than 1% (90th percentile of the relative error)."""
    plain = c.model_copy(update={"cta_bytes_per_s": 0.0, "split_tokens": 0})
    base = np.percentile(np.abs(predict_attention(plain, df, bw, peak) / df["us"].to_numpy(float) - 1), 90)
    best = 64
    for split in [2 ** i for i in range(6, 18)]:
        trial = c.model_copy(update={"cta_bytes_per_s": rate, "split_tokens": split})
        err = np.percentile(np.abs(predict_attention(trial, df, bw, peak) / df["us"].to_numpy(float) - 1), 90)
        if err <= base + 0.01:
            best = split
    return best if best > 64 else 0  # 0: no chunk size leaves room for a critical path
