"""Speedup heatmap: speculative-decoding speedup over acceptance length x k, from a sweep table.

Each cell is the baseline's metric over the cell's (time metrics: baseline / value; throughputs: value /
baseline), averaged over rows with the same (x, y) (e.g. several seeds). The baseline is the mean of the
rows without speculation (`speculative.method == none`, e.g. a one-point sweep passed as a second file) or a
number given; where an axis is not a speculative key (prompts, GPUs) and the rows without speculation cover
each of its values, each cell is compared with the baseline at its own value. Axes of words (a drafter) are
labels. Cells whose points failed (acceptance length above k + 1) stay blank; the best k of each row is
boxed.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from simulator.errors import RlsimError
from simulator.plots.style import TIME_METRICS, label, new_figure


SHORT = {"generation": "generation", "total_step_time": "the RL step", "exposed_generation": "exposed generation",
         "rollout_tokens_per_s": "rollout tokens/s", "tokens_per_s_per_gpu": "tokens/s/GPU"}


def baseline_value(table: pd.DataFrame, metric: str) -> float:
    """The metric without speculation: the mean over rows with speculative.method == none."""
    ok = table[table["error"].isna()] if "error" in table else table
    if "speculative.method" in ok:
        base = ok.loc[ok["speculative.method"] == "none", metric].dropna()
        if len(base):
            return float(base.mean())
    raise RlsimError("no baseline: include rows with speculative.method=none (e.g. a second results file from "
                     "`rlsim sweep --grid speculative.method=none`) or pass --baseline", "RESULTS")


def speedup_grid(table: pd.DataFrame, x: str, y: str, metric: str, baseline: float) -> pd.DataFrame:
    """speedup[y, x] (rows: y values ascending, columns: x values ascending)."""
    for c in (x, y, metric):
        if c not in table.columns:
            raise RlsimError(f"no column {c!r} in the results", "RESULTS")
    t = table
    if "speculative.method" in t:
        t = t[t["speculative.method"] != "none"]
    ok = t[t["error"].isna()] if "error" in t else t
    ok = ok.dropna(subset=[metric])
    if ok.empty:
        raise RlsimError(f"no successful points with {x} and {y} to plot", "RESULTS")
    vals = ok[metric].astype(float)
    base = _matched_baseline(table, ok, [a for a in (x, y) if not a.startswith("speculative.")], metric, baseline)
    sp = base / vals if metric in TIME_METRICS else vals / base
    grid = pd.DataFrame({"x": _axis(ok[x]), "y": _axis(ok[y]), "s": sp}).groupby(["y", "x"])["s"].mean()
    return grid.unstack("x").sort_index().sort_index(axis=1)


def _matched_baseline(table: pd.DataFrame, rows: pd.DataFrame, axes: list[str], metric: str,
                      baseline: float) -> pd.Series | float:
    """Per row of `rows`, the metric without speculation at the same values of the non-speculative `axes` (a
    sweep over prompts or GPUs has a baseline per value) when the table's rows without speculation cover every
    such value; else the single `baseline`."""
    if not axes or "speculative.method" not in table:
        return baseline
    none = table[table["speculative.method"] == "none"]
    none = none[none["error"].isna()] if "error" in none else none
    none = none.dropna(subset=[metric])
    if none.empty or none[axes].drop_duplicates().shape[0] < 2:
        return baseline
    per = none.groupby(axes)[metric].mean().rename("_base")
    matched = rows[axes].join(per, on=axes)["_base"]
    return matched.astype(float) if matched.notna().all() else baseline


def _axis(values: pd.Series) -> pd.Series:
    """A heatmap axis: numbers where every value is one (sorted by value), else labels (a drafter, a mode)."""
    v = pd.to_numeric(values, errors="coerce")
    return v.astype(float) if v.notna().all() else values.astype(str)


def speedup_heatmap(table: pd.DataFrame, x: str = "speculative.num_tokens", y: str = "speculative.acceptance_length",
                    metric: str = "generation", baseline: float | None = None, title: str | None = None) -> Figure:
    """The heatmap figure; `table` is a sweep table (see rlsim sweep)."""
    base = baseline if baseline is not None else baseline_value(table, metric)
    if not base or base <= 0:
        raise RlsimError(f"must be > 0 (got {base})", "--baseline")
    g = speedup_grid(table, x, y, metric, base)
    fig = new_figure(7.5, 5.0)
    ax = fig.add_subplot()
    data = g.to_numpy(dtype=float)
    finite = data[np.isfinite(data)]
    lo, hi = float(finite.min()), float(finite.max())
    norm = TwoSlopeNorm(vcenter=1.0, vmin=min(lo, 0.99), vmax=max(hi, 1.01))
    cmap = _cmap()
    im = ax.imshow(np.ma.masked_invalid(data), origin="lower", aspect="auto", cmap=cmap, norm=norm)
    ax.set_xticks(range(g.shape[1]), [_fmt(v) for v in g.columns])
    ax.set_yticks(range(g.shape[0]), [_fmt(v) for v in g.index])
    ax.set_xlabel(label(x))
    ax.set_ylabel(label(y))
    what = SHORT.get(metric, metric)
    cb = fig.colorbar(im, ax=ax)
    cb.set_label("speedup vs no speculation (x)")
    for i in range(g.shape[0]):
        row = data[i]
        for j in range(g.shape[1]):
            if np.isfinite(row[j]):
                dark = abs(norm(row[j]) - 0.5) > 0.35
                ax.text(j, i, f"{row[j]:.2f}", ha="center", va="center", fontsize=8,
                        color="white" if dark else "black")
            else:
                ax.text(j, i, "n/a", ha="center", va="center", fontsize=7, color="#888888")
        if np.isfinite(row).any():
            j = int(np.nanargmax(row))
            ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, lw=2, ec="black"))
    unit = " s" if metric in TIME_METRICS else ""
    ax.set_title(title or f"Speedup of {what} by speculation (without: {base:.3g}{unit}); box: best k per row",
                 fontsize=10)
    return fig


def _cmap():
    from matplotlib import colormaps
    return colormaps["RdBu"].with_extremes(bad="#F4F4F4")


def _fmt(v: float | str) -> str:
    if isinstance(v, str):
        return v
    return str(int(v)) if float(v).is_integer() else f"{v:g}"
