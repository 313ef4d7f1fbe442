"""Fit the GEMM curve (scipy least squares on log time) and the per-shape correction tables."""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.optimize import least_squares

from simulator.costmodel.gemm import correction_fn, curve_time
from simulator.hardware import GemmCurve, GemmShapeCorrection

# parameter vector: c_max, m_half, n_half, k_half, m_eff, n_pen, k_pen, mem_latency_us, p, overhead_us
X0 = np.array([0.75, 30.0, 500.0, 200.0, 0.9, 100.0, 100.0, 2.0, 4.0, 1.0])
LB = np.array([0.05, 0.0, 0.0, 0.0, 0.05, 0.0, 0.0, 0.0, 1.0, 0.0])
UB = np.array([1.0, 1e4, 1e5, 1e5, 1.0, 1e5, 1e5, 50.0, 30.0, 20.0])


def _curve(x) -> GemmCurve:
    return GemmCurve(c_max=float(x[0]), m_half=float(x[1]), n_half=float(x[2]), k_half=float(x[3]),
                     m_eff=float(x[4]), n_pen=float(x[5]), k_pen=float(x[6]), mem_latency_s=float(x[7]) * 1e-6,
                     p=float(x[8]), overhead_s=float(x[9]) * 1e-6)


def fit_curve_params(df: pd.DataFrame, peak: float, bw: float, w_bytes: float, a_bytes: float) -> GemmCurve:
    m, n, k = (df[c].to_numpy(float) for c in ("m", "n", "k"))
    t = df["us"].to_numpy(float) * 1e-6

    def res(x):
        return np.log(curve_time(_curve(x), peak, bw, m, n, k, w_bytes, a_bytes)) - np.log(t)

    r = least_squares(res, X0, bounds=(LB, UB), x_scale="jac", loss="soft_l1", f_scale=0.05, max_nfev=4000)
    return _curve(r.x)


def shape_tables(c: GemmCurve, df: pd.DataFrame, peak: float, bw: float, w_bytes: float,
                 a_bytes: float) -> list[GemmShapeCorrection]:
    """log(measured / curve) at each measured m, per (n, k); repeated points are averaged."""
    out = []
    for (n, k), g in df.groupby(["n", "k"]):
        g = g.groupby("m", as_index=False)["us"].median().sort_values("m")
        pred = curve_time(c, peak, bw, g["m"].to_numpy(float), n, k, w_bytes, a_bytes)
        lr = np.log(g["us"].to_numpy(float) * 1e-6 / pred)
        out.append(GemmShapeCorrection(n=int(n), k=int(k), m=[int(v) for v in g["m"]],
                                       log_ratio=[round(float(v), 5) for v in lr]))
    return out


def fit_gemm(df: pd.DataFrame, peak: float, bw: float, w_bytes: float = 2.0, a_bytes: float = 2.0) -> GemmCurve:
    """The GEMM curve for one dtype from rows op,m,n,k,us."""
    c = fit_curve_params(df, peak, bw, w_bytes, a_bytes)
    c.shapes = shape_tables(c, df, peak, bw, w_bytes, a_bytes)
    c.fit_note = (f"least squares (soft L1, log time) on {len(df)} GEMM timings of {df.groupby(['n', 'k']).ngroups} "
                  f"shapes; per-shape corrections from the same timings")
    return c


def predict(c: GemmCurve, df: pd.DataFrame, peak: float, bw: float, w_bytes: float = 2.0,
            a_bytes: float = 2.0) -> np.ndarray:
    """Predicted microseconds for rows m,n,k."""
    out = np.empty(len(df))
    for i, (m, n, k) in enumerate(df[["m", "n", "k"]].to_numpy()):
        corr = correction_fn(c, int(n), int(k))
        t = curve_time(c, peak, bw, float(m), n, k, w_bytes, a_bytes)
        if corr is not None:
            t = t * np.exp(corr(np.log(max(m, 1.0))))
        out[i] = float(t) * 1e6
    return out


def cross_validate(df: pd.DataFrame, peak: float, bw: float, w_bytes: float = 2.0, a_bytes: float = 2.0,
                   folds: int = 5, seed: int = 0, by_shape: bool = False) -> np.ndarray:
    """Relative errors of predictions for held-out rows (random folds, or whole shapes held out)."""
    rng = np.random.default_rng(seed)
    if by_shape:
        keys = df[["n", "k"]].apply(tuple, axis=1)
        groups = [np.where(keys == key)[0] for key in keys.unique()]
    else:
        idx = rng.permutation(len(df))
        groups = np.array_split(idx, folds)
    errs = np.empty(len(df))
    for test in groups:
        train = df.drop(df.index[test])
        c = fit_gemm(train, peak, bw, w_bytes, a_bytes)
        te = df.iloc[test]
        errs[test] = predict(c, te, peak, bw, w_bytes, a_bytes) / te["us"].to_numpy(float) - 1
    return errs
