"""RL step breakdown: a stacked bar per configuration of what the trainer's critical path spends (seconds).

A step is exposed generation + logprobs + training + weight sync + the rest (data, reward), in sync and async
alike; the generation hidden behind training (async) is drawn as a hatched bar beside it. Input: a sweep table
(one bar per row, labelled by its swept values), or `PipelineResult.summary()` dicts keyed by label.
"""
from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from simulator.errors import RlsimError
from simulator.plots.scaling import swept_columns
from simulator.plots.style import STAGE_COLORS, new_figure

PARTS = (("exposed_generation", "exposed generation", "generation"),
         ("policy_and_reference_logprobs", "logprobs", "logprobs"),
         ("policy_training", "training", "training"),
         ("weight_sync", "weight sync", "weight_sync"))


def breakdown_rows(table: pd.DataFrame | dict) -> pd.DataFrame:
    """A table with a `label` column and the step parts, from a sweep table or {label: summary}."""
    if isinstance(table, dict):
        df = pd.DataFrame([{"label": k, **v} for k, v in table.items()])
    else:
        df = table[table["error"].isna()].copy() if "error" in table else table.copy()
        keys = [c for c in swept_columns(df) if df[c].nunique() > 1] or swept_columns(df)
        df["label"] = [", ".join(f"{k.split('.')[-1]}={v}" for k, v in zip(keys, r))
                       for r in df[keys].itertuples(index=False)] if keys else [str(i) for i in range(len(df))]
    need = ("total_step_time", "generation") + tuple(p for p, _, _ in PARTS)
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise RlsimError(f"no column {missing[0]!r} (give a sweep table or run summaries)", "RESULTS")
    if df.empty:
        raise RlsimError("no successful points to plot", "RESULTS")
    return df.reset_index(drop=True)


def breakdown(table: pd.DataFrame | dict, title: str | None = None) -> Figure:
    df = breakdown_rows(table)
    fig = new_figure(8.0, 1.4 + 0.45 * len(df))
    ax = fig.add_subplot()
    y = range(len(df))
    left = pd.Series(0.0, index=df.index)
    for col, _, stage in PARTS:
        ax.barh(y, df[col], left=left, height=0.6, color=STAGE_COLORS[stage])
        left = left + df[col]
    other = (df["total_step_time"] - left).clip(lower=0)
    ax.barh(y, other, left=left, height=0.6, color=STAGE_COLORS["data"])
    hidden = (df["generation"] - df["exposed_generation"]).clip(lower=0)
    ax.barh([i + 0.36 for i in y], hidden, height=0.18, color="white", edgecolor=STAGE_COLORS["generation"],
            hatch="////", lw=0.6)
    for i, r in df.iterrows():
        ax.text(r["total_step_time"], i, f" {r['total_step_time']:.1f} s", va="center", fontsize=8)
    ax.set_yticks(list(y), df["label"])
    ax.invert_yaxis()
    ax.set_xlabel("seconds per RL step (steady state)")
    ax.grid(axis="x", alpha=0.3)
    handles = [Patch(color=STAGE_COLORS[s], label=lab) for _, lab, s in PARTS]
    handles += [Patch(color=STAGE_COLORS["data"], label="data + reward"),
                Patch(facecolor="white", edgecolor=STAGE_COLORS["generation"], hatch="////",
                      label="generation hidden behind training")]
    fig.legend(handles=handles, loc="outside lower center", ncols=3, frameon=False, fontsize=8)
    ax.set_title(title or "Where an RL step's time goes (trainer's critical path)")
    return fig
