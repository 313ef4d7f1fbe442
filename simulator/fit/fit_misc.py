"""Fits of the small curves: MoE layers, elementwise kernels, graph launch floor, collectives."""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.optimize import least_squares, lsq_linear

from simulator.costmodel.elementwise import TRAFFIC
from simulator.costmodel.gemm import gemm_time
from simulator.costmodel.moe import moe_permute_bytes, moe_permute_time, moe_time, moe_train_times
from simulator.errors import RlsimError
from simulator.hardware import (CollectiveCurve, ElementwiseCurve, GemmCurve, HostCopyRates, MoECurve,
                               MoETrainCurve, TrainBackward)


# the GEMMs of a dense training layer in measure_train_layer.py's tables
TRAIN_GEMMS = ("qkv", "o", "gate_up", "down")


# ------------------------------------------------------------------ MoE
def _moe_pred(c: MoECurve, rows: pd.DataFrame, peak, bw, gemm: GemmCurve | None) -> np.ndarray:
    out = np.empty(len(rows))
    for i, r in enumerate(rows.itertuples()):
        if r.impl == "experts":  # expert GEMMs alone: no router, no routing
            c2 = c.model_copy(update={"route_s": 0.0, "route_s_per_row": 0.0})
            t = moe_time(c2, peak, bw, r.tokens, int(r.hidden), int(r.inter), int(r.experts), int(r.topk))
        else:
            t = moe_time(c, peak, bw, r.tokens, int(r.hidden), int(r.inter), int(r.experts), int(r.topk))
            if gemm is not None:
                t += float(gemm_time(gemm, peak, bw, r.tokens, int(r.experts), int(r.hidden)))
        out[i] = t * 1e6
    return out


def fit_moe(df: pd.DataFrame, reads_all: bool, peak: float, bw: float, gemm: GemmCurve | None) -> MoECurve:
    """MoE curve from layer timings (router GEMM costed by `gemm` and added) and expert-only timings."""
    t = df["us"].to_numpy(float)

    def curve(x):
        return MoECurve(reads_all_experts=reads_all, c_eff=x[0], m_eff=x[1], p=x[2], route_s=x[3] * 1e-6,
                        route_s_per_row=x[4] * 1e-9)

    def res(x):
        return np.log(_moe_pred(curve(x), df, peak, bw, gemm)) - np.log(t)

    r = least_squares(res, [0.6, 0.9, 4.0, 50.0, 10.0], bounds=([0.05, 0.05, 1.0, 0.0, 0.0], [1.0, 1.0, 30.0, 2e3, 1e4]))
    c = curve(r.x)
    c.fit_note = f"least squares (log time) on {len(df)} timings ({', '.join(sorted(set(df['source'])))})"
    return c


def predict_moe(c, df, peak, bw, gemm):
    return _moe_pred(c, df, peak, bw, gemm)


def cross_validate_moe(df: pd.DataFrame, reads_all: bool, peak: float, bw: float) -> np.ndarray:
    """Relative errors on each expert shape (hidden, inter) when the curve is fitted on the other shapes only
    (kernel-only rows, no router GEMM)."""
    errs = []
    for _, test in df.groupby(["hidden", "inter"]):
        train = df.drop(test.index)
        if train.empty:
            continue
        c = fit_moe(train.reset_index(drop=True), reads_all, peak, bw, None)
        test = test.reset_index(drop=True)
        errs.append(_moe_pred(c, test, peak, bw, None) / test["us"].to_numpy() - 1)
    return np.concatenate(errs) if errs else np.array([])


def fit_moe_train(df: pd.DataFrame, peak: float, bw: float) -> MoETrainCurve:
    """MoETrainCurve from training-style timings (rows shape,tokens,experts,topk,hidden,inter,pass,us): per
    rows-per-expert value, the mean over shapes of the forward's fraction of peak and of backward / forward; the
    permutation's fraction of HBM bandwidth as the median over every (shape, tokens)."""
    piv = df.pivot_table(index=["hidden", "inter", "experts", "topk", "tokens"], columns="pass",
                         values="us").reset_index()
    need = {"fwd", "fwd_bwd", "fwd_permute"}
    if not need <= set(piv.columns):
        raise RlsimError(f"MoE training timings need the passes {sorted(need)}", _files(df))
    rows = piv["tokens"] * piv["topk"]
    m = rows / piv["experts"]
    flops = 2.0 * rows * 3 * piv["hidden"] * piv["inter"]
    piv = piv.assign(m=m, eff=flops / (piv["fwd"] * 1e-6 * peak), ratio=(piv["fwd_bwd"] - piv["fwd"]) / piv["fwd"],
                     perm=moe_permute_bytes(piv["tokens"], piv["hidden"], piv["topk"])
                     / ((piv["fwd_permute"] - piv["fwd"]).clip(lower=1e-3) * 1e-6 * bw))
    g = piv.groupby("m")[["eff", "ratio"]].mean().sort_index()
    return MoETrainCurve(rows_per_expert=[float(v) for v in g.index], fwd_eff=[round(float(v), 5) for v in g["eff"]],
                         bwd_ratio=[round(float(v), 4) for v in g["ratio"]],
                         permute_eff=round(float(piv["perm"].median()), 5),
                         fit_note=f"per rows-per-expert means over {piv['hidden'].nunique()} expert shapes, "
                                  f"{len(piv)} (shape, tokens) points ({_files(df)})")


def fit_train_backward(df: pd.DataFrame) -> TrainBackward:
    """TrainBackward from a training layer's operator timings (rows shape,tokens,seq_len,op,phase,us): the median
    over every GEMM (qkv, o, gate_up, down) and micro-batch of (dgrad + wgrad) / fwd, and over every attention
    timing of bwd / fwd. The whole-layer rows (op `layer`) are left for validation."""
    piv = df.pivot_table(index=["shape", "tokens", "seq_len", "op"], columns="phase", values="us").reset_index()
    gemm = piv[piv["op"].isin(TRAIN_GEMMS)]
    attn = piv[piv["op"] == "attention"]
    need = {"fwd", "dgrad", "wgrad", "bwd"}
    if gemm.empty or attn.empty or not need <= set(piv.columns):
        raise RlsimError(f"training layer timings need GEMM ({', '.join(TRAIN_GEMMS)}) fwd/dgrad/wgrad rows and "
                         f"attention fwd/bwd rows", _files(df))
    g = float(np.median((gemm["dgrad"] + gemm["wgrad"]) / gemm["fwd"]))
    a = float(np.median(attn["bwd"] / attn["fwd"]))
    return TrainBackward(gemm=round(g, 4), attention=round(a, 4),
                         fit_note=f"medians of backward / forward over {len(gemm)} GEMM timings (dgrad + wgrad) "
                                  f"and {len(attn)} causal attention timings (SDPA flash), {gemm['shape'].nunique()} "
                                  f"layer shapes, packed micro-batches of {int(piv['tokens'].min())}-"
                                  f"{int(piv['tokens'].max())} tokens ({_files(df)})")


def predict_moe_train(c: MoETrainCurve, df: pd.DataFrame, peak: float, bw: float) -> np.ndarray:
    """Microseconds for each row of a training-style table (its pass: fwd = GEMMs only, fwd_permute, fwd_bwd =
    GEMMs forward + backward without the permutation)."""
    out = np.empty(len(df))
    cols = zip(df["tokens"], df["hidden"], df["inter"], df["experts"], df["topk"], df["pass"])
    for i, (tok, h, inter, e, k, kind) in enumerate(cols):
        f, b = moe_train_times(c, peak, bw, tok, int(h), int(inter), int(e), int(k))
        perm = moe_permute_time(c, bw, tok, int(h), int(k))
        out[i] = {"fwd": f - perm, "fwd_permute": f, "fwd_bwd": f + b - 2 * perm}[kind] * 1e6
    return out


def _files(df: pd.DataFrame) -> str:
    """The measurement files a table came from (the field an error names)."""
    return ", ".join(sorted(set(df["source"]))) if "source" in df else "measurements"


# ------------------------------------------------------------------ host copies
HOST_COPY_MIN_BYTES = 4 * 2**30  # a trainer's offloaded state is GBs per GPU: fit on the sets of 4 GiB and more


def host_copy_fit_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The rows of a host-copy table that the fit uses: sets of at least HOST_COPY_MIN_BYTES."""
    return df[df["total_bytes"] >= HOST_COPY_MIN_BYTES]


def fit_host_copy(df: pd.DataFrame, host_bandwidth: float) -> HostCopyRates:
    """Rates (bytes/s) from host-copy timings (rows mode,total_bytes,tensor_bytes,seconds): per mode, the bytes of
    every set of at least HOST_COPY_MIN_BYTES over their seconds (so each tensor size weighs by its time); pinned is
    both directions together, as a fraction of the datasheet host link `host_bandwidth` (bytes/s)."""
    big = host_copy_fit_rows(df)
    if big.empty:
        raise RlsimError(f"host-copy timings need sets of at least {HOST_COPY_MIN_BYTES / 2**30:.0f} GiB "
                         "(total_bytes)", _files(df))

    def rate(modes) -> float:
        r = big[big["mode"].isin(modes)]
        if r.empty:
            raise RlsimError(f"host-copy timings have no {'/'.join(modes)} rows of at least "
                             f"{HOST_COPY_MIN_BYTES / 2**30:.0f} GiB (mode)", _files(df))
        return float(r["total_bytes"].sum() / r["seconds"].sum())

    return HostCopyRates(pageable_d2h=round(rate(["d2h_pageable"]), -6),
                         pageable_h2d=round(rate(["h2d_pageable"]), -6),
                         pinned_eff=round(min(1.0, rate(["d2h_pinned", "h2d_pinned"]) / host_bandwidth), 4),
                         fit_note=f"bytes over seconds of the {len(big)} timed sets of >= "
                                  f"{HOST_COPY_MIN_BYTES / 2**30:.0f} GiB ({_files(df)})")


def predict_host_copy(c: HostCopyRates, df: pd.DataFrame, host_bandwidth: float) -> np.ndarray:
    """Seconds for each row of a host-copy table."""
    pinned = c.pinned_eff * host_bandwidth
    rate = {"d2h_pageable": c.pageable_d2h, "h2d_pageable": c.pageable_h2d, "d2h_pinned": pinned,
            "h2d_pinned": pinned}
    return df["total_bytes"].to_numpy(float) / df["mode"].map(rate).to_numpy(float)


# ------------------------------------------------------------------ elementwise
def fit_elementwise(df: pd.DataFrame, op: str, bw: float, l2_bytes: float) -> ElementwiseCurve:
    """ElementwiseCurve by linear least squares (relative residuals) for each candidate L2-resident size
    (fractions of the L2), keeping the best."""
    w = df["width"].to_numpy(float)
    traffic = TRAFFIC[op] * df["rows"].to_numpy(float) * w * 2.0
    t = df["us"].to_numpy(float) * 1e-6
    best = None
    for frac in (0.0, 0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 1.0):
        l2 = frac * l2_bytes
        in_l2 = np.minimum(traffic, l2)
        A = np.stack([np.ones_like(t), w, (traffic - in_l2) / bw, in_l2 / bw], axis=1) / t[:, None]
        sol = lsq_linear(A, np.ones_like(t), bounds=([0.0, 0.0, 1.0, 0.2], [50e-6, 1e-8, 1e3, 1e3]))
        err = float(np.median(np.abs(A @ sol.x - 1)))
        if best is None or err < best[0]:
            best = (err, sol.x, l2)
    _, x, l2 = best
    return ElementwiseCurve(overhead_s=float(x[0]), per_width_s=float(x[1]), eff=round(1.0 / float(x[2]), 5),
                            eff_l2=round(1.0 / float(x[3]), 5), l2_resident_bytes=float(l2))


def predict_elementwise(c: ElementwiseCurve, df: pd.DataFrame, op: str, bw: float) -> np.ndarray:
    from simulator.costmodel.elementwise import elementwise_time
    return elementwise_time(c, bw, op, df["rows"].to_numpy(float), df["width"].to_numpy(float)) * 1e6


def fit_graph_floor(df: pd.DataFrame) -> float:
    """Seconds per kernel inside a CUDA graph: slope of time against kernel count (the larger graphs)."""
    d = df.sort_values("n_kernels")
    d = d[d["n_kernels"] >= 32] if (d["n_kernels"] >= 32).sum() >= 2 else d
    slope = np.polyfit(d["n_kernels"].to_numpy(float), d["us"].to_numpy(float), 1)[0]
    return float(slope) * 1e-6


# ------------------------------------------------------------------ collectives
def fit_collective(df: pd.DataFrame, op: str, link_bw: float) -> CollectiveCurve:
    """The collective curve of `op` from rows collective,group,bytes,us,source (see fit_collectives.fit_curve:
    latency + per-step latency + bandwidth with a size ramp, per-group efficiency, an eager floor for eager rows)."""
    from simulator.fit.fit_collectives import fit_curve
    return fit_curve(df, op, link_bw).curve
