"""Goodput-optimal k against batch size, and the speedup it buys.

Input: `rlsim spec --json` outputs (rows per batch and k; the optimal k per batch), one line per file (e.g.
per acceptance profile or context length). Top: the k that maximises expected tokens per second at each batch
size (what dynamic speculation picks); bottom: the speedup over autoregressive decoding at that k. Larger
batches are more compute-bound, so drafting pays less and the optimal k falls.
"""
from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, MaxNLocator, NullLocator

from simulator.errors import RlsimError
from simulator.plots.style import LINE_COLORS, new_figure


def optimal_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Per batch: optimal_k and the speedup at it."""
    out = []
    for b, sub in rows.groupby("batch"):
        k = int(sub["optimal_k"].iloc[0]) if "optimal_k" in sub else int(sub.loc[sub["speedup"].idxmax(), "k"])
        at = sub[sub["k"] == k]
        speedup = float(at["speedup"].iloc[0]) if len(at) else float("nan")
        out.append({"batch": int(b), "optimal_k": k, "speedup": speedup})
    return pd.DataFrame(out).sort_values("batch")


def optimal_k(runs: dict[str, pd.DataFrame], title: str | None = None) -> Figure:
    """The figure; `runs` maps a label to `rlsim spec` rows (see simulator.plots.io.spec_rows)."""
    if not runs:
        raise RlsimError("no spec outputs to plot", "RESULTS")
    fig = new_figure(7.0, 5.5)
    ax1, ax2 = fig.subplots(2, 1, sharex=True)
    batches = set()
    for n, (name, rows) in enumerate(runs.items()):
        t = optimal_table(rows)
        batches.update(t["batch"].tolist())
        c = LINE_COLORS[n % len(LINE_COLORS)]
        ax1.step(t["batch"], t["optimal_k"], where="mid", color=c, lw=1.8, label=name)
        ax1.plot(t["batch"], t["optimal_k"], "o", color=c, ms=4)
        ax2.plot(t["batch"], t["speedup"], "o-", color=c, lw=1.6)
    ax1.set_ylabel("optimal k (draft tokens)")
    ax1.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax1.set_ylim(bottom=-0.2)
    ax2.axhline(1.0, color="#888888", lw=0.8, ls="--")
    ax2.set_ylabel("speedup at that k (x)")
    ax2.set_xlabel("batch size (running sequences per engine)")
    ax2.set_xscale("log", base=2)
    ticks = sorted(batches)
    ax2.xaxis.set_major_locator(FixedLocator(ticks))
    ax2.xaxis.set_minor_locator(NullLocator())
    ax2.set_xticklabels([str(int(b)) for b in ticks])
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
    ax1.legend(fontsize=8, frameon=False)
    ax1.set_title(title or "Goodput-optimal k vs batch size, and its speedup over autoregressive decoding")
    fig.align_ylabels([ax1, ax2])
    return fig
