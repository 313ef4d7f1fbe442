"""The long tail of a rollout: running sequences (batch size) and generated tokens/s over rollout time.

Input: per-interval tables of `rlsim rollout --intervals-out` (or `RolloutResult.intervals`), one per run (e.g.
with and without speculation). The engines' piecewise-constant levels are summed and averaged over `bins`
time bins (time-weighted), so the curves read at a glance. The shaded span is the tail: from the moment 90% of
the run's tokens had been generated to its end.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from simulator.errors import RlsimError
from simulator.plots.style import LINE_COLORS, new_figure


def step_levels(starts: np.ndarray, ends: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sum of `values` over the intervals [start, end) as a step function: (change times, level from each)."""
    t = np.concatenate([starts, ends])
    d = np.concatenate([values, -values])
    order = np.argsort(t, kind="stable")
    t, d = t[order], d[order]
    times, idx = np.unique(t, return_index=True)
    sums = np.add.reduceat(d, idx) if len(d) else d
    return times, np.cumsum(sums)


def binned(times: np.ndarray, levels: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Time-weighted mean of a step function over each bin [edges[i], edges[i+1])."""
    seg = np.diff(times)
    cum = np.concatenate([[0.0], np.cumsum(levels[:-1] * seg)])  # integral up to each change time

    def integral(x):
        i = np.clip(np.searchsorted(times, x, side="right") - 1, 0, len(times) - 1)
        return cum[i] + levels[i] * (x - times[i])

    return np.diff(integral(edges)) / np.diff(edges)


def tail_series(intervals: pd.DataFrame, bins: int = 200) -> pd.DataFrame:
    """Per time bin: time_s (bin centre), running sequences, generated tokens/s (all engines)."""
    if intervals.empty:
        raise RlsimError("the interval table is empty", "RESULTS")
    s = intervals["start_s"].to_numpy(float)
    e = intervals["end_s"].to_numpy(float)
    keep = e > s
    s, e = s[keep], e[keep]
    run = intervals["running"].to_numpy(float)[keep]
    rate = intervals["generated_tokens"].to_numpy(float)[keep] / (e - s)
    edges = np.linspace(0.0, float(e.max()), bins + 1)
    t1, l1 = step_levels(s, e, run)
    t2, l2 = step_levels(s, e, rate)
    return pd.DataFrame({"time_s": 0.5 * (edges[:-1] + edges[1:]), "running": binned(t1, l1, edges),
                         "tokens_per_s": binned(t2, l2, edges)})


def tail_start(intervals: pd.DataFrame, fraction: float = 0.9) -> float:
    """Seconds until `fraction` of the run's generated tokens were out (tokens spread evenly within an interval)."""
    s = intervals["start_s"].to_numpy(float)
    e = intervals["end_s"].to_numpy(float)
    g = intervals["generated_tokens"].to_numpy(float)
    edges = np.unique(np.concatenate([s, e]))
    t, lv = step_levels(s, e, np.where(e > s, g / np.maximum(e - s, 1e-12), 0.0))
    cum = np.concatenate([[0.0], np.cumsum(lv[:-1] * np.diff(t))])
    total = cum[-1]
    if total <= 0:
        return float(edges[-1])
    i = int(np.searchsorted(cum, fraction * total))
    i = min(max(i, 1), len(t) - 1)
    # linear within the segment before t[i]
    rate = lv[i - 1]
    return float(t[i - 1] + (fraction * total - cum[i - 1]) / rate) if rate > 0 else float(t[i])


def rollout_tail(runs: dict[str, pd.DataFrame], bins: int = 200, title: str | None = None) -> Figure:
    """Two panels sharing the time axis: running sequences and tokens/s per run, the tail shaded."""
    if not runs:
        raise RlsimError("no rollout interval tables to plot", "RESULTS")
    fig = new_figure(8.0, 5.5)
    ax1, ax2 = fig.subplots(2, 1, sharex=True)
    for n, (name, iv) in enumerate(runs.items()):
        c = LINE_COLORS[n % len(LINE_COLORS)]
        ser = tail_series(iv, bins)
        end = float(iv["end_s"].max())
        t90 = tail_start(iv)
        tail = 100 * (end - t90) / end if end > 0 else 0.0
        lab = f"{name} (ends {end:.1f} s; last 10% of tokens take {tail:.0f}% of it)"
        ax1.plot(ser["time_s"], ser["running"], color=c, lw=1.6, label=lab)
        ax2.plot(ser["time_s"], ser["tokens_per_s"] / 1e3, color=c, lw=1.6)
        for ax in (ax1, ax2):
            ax.axvspan(t90, end, color=c, alpha=0.08, lw=0)
            ax.axvline(t90, color=c, lw=0.8, ls="--")
    ax1.set_ylabel("running sequences (all engines)")
    ax2.set_ylabel("generated tokens/s (thousands)")
    ax2.set_xlabel("time since the rollout started (s)")
    ax1.set_ylim(bottom=0)
    ax2.set_ylim(bottom=0)
    ax2.set_xlim(left=0)
    ax1.legend(loc="upper right", fontsize=8, frameon=False)
    ax1.set_title(title or "Rollout batch size and throughput over time (shaded: the tail after 90% of tokens)")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
    return fig
