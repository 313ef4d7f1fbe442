"""GEMM time: a size-dependent roofline with per-shape corrections from measurements (pure functions)."""
from __future__ import annotations

import math

import numpy as np

from simulator.hardware import GemmCurve


def gemm_flops(m, n, k):
    """FLOPs of y[m,n] = x[m,k] @ W[n,k]^T."""
    return 2.0 * m * n * k


def gemm_bytes(m, n, k, w_bytes: float = 2.0, a_bytes: float = 2.0):
    """Bytes moved: the weight once, the input and the output once."""
    return w_bytes * n * k + a_bytes * (m * k + m * n)


def curve_time(c: GemmCurve, peak: float, bandwidth: float, m, n, k, w_bytes: float = 2.0, a_bytes: float = 2.0):
    """The parametric part of the GEMM model (seconds); m may be a numpy array."""
    m = np.asarray(m, dtype=float)
    ce = c.c_max * (m / (m + c.m_half)) * (n / (n + c.n_half)) * (k / (k + c.k_half))
    tc = gemm_flops(m, n, k) / (peak * ce)
    tm = gemm_bytes(m, n, k, w_bytes, a_bytes) / (bandwidth * c.m_eff) * (1 + c.n_pen / n) * (1 + c.k_pen / k)
    tm = tm + c.mem_latency_s
    return (tc ** c.p + tm ** c.p) ** (1.0 / c.p) + c.overhead_s


def correction_fn(c: GemmCurve, n: int, k: int):
    """log(measured / curve) as a function of log m for shape (n, k).

    A measured shape uses its own table; another shape blends its `neighbours` nearest measured shapes
    (distance in log n, log k; inverse-distance weights). Returns None when the curve has no tables.
    """
    if not c.shapes:
        return None
    exact = [s for s in c.shapes if s.n == n and s.k == k]
    if exact:
        s = exact[0]
        lm, lr = np.log(np.asarray(s.m, float)), np.asarray(s.log_ratio, float)
        return lambda logm: np.interp(logm, lm, lr)
    dist = sorted(((math.hypot(math.log(n / s.n), math.log(k / s.k)), s) for s in c.shapes), key=lambda z: z[0])
    near = dist[: c.neighbours]
    w = np.array([1.0 / (d + 0.3) for d, _ in near])
    w /= w.sum()
    tabs = [(np.log(np.asarray(s.m, float)), np.asarray(s.log_ratio, float)) for _, s in near]
    return lambda logm: sum(wi * np.interp(logm, lm, lr) for wi, (lm, lr) in zip(w, tabs))


def gemm_time(c: GemmCurve, peak: float, bandwidth: float, m, n: int, k: int,
              w_bytes: float = 2.0, a_bytes: float = 2.0, corr=None):
    """Time (s) of one GEMM on one GPU; pass `corr=correction_fn(c, n, k)` to reuse the lookup."""
    t = curve_time(c, peak, bandwidth, m, n, k, w_bytes, a_bytes)
    if corr is None:
        corr = correction_fn(c, n, k)
    if corr is not None:
        t = t * np.exp(corr(np.log(np.maximum(np.asarray(m, float), 1.0))))
    return t
