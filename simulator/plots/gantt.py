"""Pipeline Gantt chart: what each GPU pool does over time, one panel per run (e.g. sync vs async).

Input: pipeline timelines, i.e. `PipelineResult.events` (pool, name, start, end, step; seconds) or the JSON of
`rlsim run --trace` (read with simulator.plots.io.read_trace). Rows are the GPU pools (one `cluster` row when
colocated; `generation` and `training` otherwise); bars are coloured by stage, idle time is hatched grey, and
generation bars carry their RL step. Panels share the time axis so the faster pipeline is visibly shorter.
"""
from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from simulator.errors import RlsimError
from simulator.plots.style import STAGE_COLORS, new_figure

POOL_ORDER = ("cluster", "generation", "training")


def stage_of(name: str) -> str:
    """The stage colour key of an event name."""
    n = name.lower()
    if n.startswith("idle"):
        return "idle"
    for key in ("generation", "logprobs", "training", "weight_sync", "reward", "data"):
        if n.startswith(key):
            return key
    return "other"


def _events(ev) -> pd.DataFrame:
    df = pd.DataFrame(ev)
    need = ("pool", "name", "start", "end")
    if df.empty or any(c not in df.columns for c in need):
        raise RlsimError("not a pipeline timeline (needs pool, name, start, end)", "RESULTS")
    return df


def gantt(runs: dict[str, object], title: str | None = None, max_steps: int | None = None) -> Figure:
    """One panel per run; `runs` maps a label to its events (a DataFrame or a list of dicts)."""
    if not runs:
        raise RlsimError("no pipeline timelines to plot", "RESULTS")
    frames = {k: _events(v) for k, v in runs.items()}
    if max_steps is not None:
        frames = {k: (f[f["step"] < max_steps] if "step" in f else f) for k, f in frames.items()}
    heights = [max(1, f["pool"].nunique()) for f in frames.values()]
    fig = new_figure(9.0, 1.2 + 0.75 * sum(heights) + 0.5 * len(frames))
    axes = fig.subplots(len(frames), 1, sharex=True, squeeze=False, height_ratios=heights)[:, 0]
    for ax, (name, df) in zip(axes, frames.items()):
        pools = [p for p in POOL_ORDER if p in set(df["pool"])] + sorted(set(df["pool"]) - set(POOL_ORDER))
        for row, pool in enumerate(pools):
            sub = df[df["pool"] == pool]
            for _, e in sub.iterrows():
                st = stage_of(e["name"])
                width = float(e["end"]) - float(e["start"])
                ax.barh(row, width, left=float(e["start"]), height=0.7, color=STAGE_COLORS[st],
                        edgecolor="white" if st != "idle" else "#AAAAAA", lw=0.4,
                        hatch="///" if st == "idle" else None)
                if st == "generation" and "step" in e and width > 0.04 * float(df["end"].max()):
                    ax.text(float(e["start"]) + width / 2, row, f"step {int(e['step'])}", ha="center",
                            va="center", fontsize=7, color="white")
        ax.set_yticks(range(len(pools)), [f"{p} GPUs" for p in pools])
        ax.invert_yaxis()
        end = float(df["end"].max())
        n = int((df["name"] == "training").sum())  # RL steps the trainer completed
        ax.set_title(f"{name}: {n} RL steps in {end:.1f} s" if n else name, fontsize=10, loc="left")
        ax.grid(axis="x", alpha=0.3)
    axes[-1].set_xlabel("time (s)")
    used = sorted({stage_of(x) for f in frames.values() for x in f["name"]},
                  key=lambda s: list(STAGE_COLORS).index(s))
    handles = [Patch(facecolor=STAGE_COLORS[s], hatch="///" if s == "idle" else None,
                     edgecolor="#AAAAAA" if s == "idle" else "white", label=s.replace("_", " ")) for s in used]
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), frameon=False, fontsize=8)
    if title:
        fig.suptitle(title)
    return fig
