"""Scaling: a metric (default: RL step time) against the number of GPUs, one line per configuration.

Input: a sweep table with the GPU count swept (`cluster.gpus`, or any x column). Lines are grouped by `by`
(default: every other swept column with more than one value, seeds averaged: the bars span their min-max).
A dotted line per group shows ideal scaling from its smallest GPU count (time x GPUs constant; per-GPU
throughput constant).
"""
from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, NullLocator

from simulator.errors import RlsimError
from simulator.plots.style import LINE_COLORS, TIME_METRICS, label, new_figure

NOT_GROUPS = ("point", "seed", "steps", "error", "wall_s")


def swept_columns(table: pd.DataFrame) -> list[str]:
    """The swept keys of a sweep table: the columns between `point` and `steps` (seed aside)."""
    cols = list(table.columns)
    if "point" in cols and "steps" in cols:
        return [c for c in cols[cols.index("point") + 1: cols.index("steps")] if c != "seed"]
    return [c for c in cols if "." in c]


def groups_of(table: pd.DataFrame, x: str, by: list[str] | None) -> list[str]:
    if by is not None:
        missing = [b for b in by if b not in table.columns]
        if missing:
            raise RlsimError(f"no column {missing[0]!r} in the results", "--by")
        return by
    return [c for c in swept_columns(table) if c != x and c not in NOT_GROUPS and table[c].nunique() > 1]


def scaling(table: pd.DataFrame, x: str = "cluster.gpus", metric: str = "total_step_time",
            by: list[str] | None = None, title: str | None = None) -> Figure:
    """The scaling figure (log2 x axis)."""
    for c in (x, metric):
        if c not in table.columns:
            raise RlsimError(f"no column {c!r} in the results (sweep {x} to plot scaling)", "RESULTS")
    ok = table[table["error"].isna()] if "error" in table else table
    ok = ok.dropna(subset=[metric])
    if ok.empty:
        raise RlsimError("no successful points to plot", "RESULTS")
    gcols = groups_of(ok, x, by)
    fig = new_figure(7.0, 4.8)
    ax = fig.add_subplot()
    grouped = ok.groupby(gcols, dropna=False, sort=True) if gcols else [((), ok)]
    xs_all = set()
    for n, (key, sub) in enumerate(grouped):
        key = key if isinstance(key, tuple) else (key,)
        agg = sub.groupby(x)[metric].agg(["mean", "min", "max"]).sort_index()
        xs = agg.index.to_numpy(float)
        xs_all.update(xs.tolist())
        c = LINE_COLORS[n % len(LINE_COLORS)]
        name = ", ".join(f"{k.split('.')[-1]}={v}" for k, v in zip(gcols, key)) or metric
        ax.errorbar(xs, agg["mean"], yerr=[agg["mean"] - agg["min"], agg["max"] - agg["mean"]], color=c,
                    marker="o", lw=1.6, capsize=3, label=name)
        y0, x0 = float(agg["mean"].iloc[0]), xs[0]
        ideal = y0 * x0 / xs if metric in TIME_METRICS else [y0] * len(xs)
        ax.plot(xs, ideal, color=c, ls=":", lw=1)
    ax.set_xscale("log", base=2)
    ticks = sorted(xs_all)
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticklabels([f"{int(t)}" if float(t).is_integer() else f"{t:g}" for t in ticks])
    ax.set_xlabel(label(x))
    ax.set_ylabel(label(metric))
    if metric in TIME_METRICS:
        ax.set_yscale("log")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, frameon=False, title="dotted: ideal scaling", title_fontsize=8)
    ax.set_title(title or f"Scaling of {label(metric).split(' (')[0]} with {label(x)}")
    return fig
