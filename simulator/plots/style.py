"""Shared plotting pieces: figures on the Agg canvas (no pyplot, no global backend), axis labels with units,
stage colours, and saving as PNG / SVG / PDF atomically."""
from __future__ import annotations

import io
import os
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from simulator.errors import RlsimError

FORMATS = (".png", ".svg", ".pdf")

# axis labels (with units) of the columns plots put on axes
LABELS = {
    "speculative.num_tokens": "k: draft tokens per iteration",
    "speculative.acceptance_length": "acceptance length at k (tokens per verify step)",
    "cluster.gpus": "GPUs",
    "rollout.prompts": "prompts per RL step",
    "engine.max_num_seqs": "max running sequences per engine",
    "engine.tensor_parallel_size": "engine tensor parallelism",
    "pipeline.generation_gpus": "generation GPUs",
    "pipeline.max_staleness": "max staleness (RL steps)",
    "total_step_time": "RL step time (s)",
    "generation": "generation time per RL step (s)",
    "exposed_generation": "exposed generation per RL step (s)",
    "policy_training": "training time per RL step (s)",
    "policy_and_reference_logprobs": "logprob time per RL step (s)",
    "weight_sync": "weight sync per RL step (s)",
    "rollout_tokens_per_s": "rollout throughput (generated tokens/s)",
    "tokens_per_s_per_gpu": "throughput (tokens/s/GPU)",
    "mean_acceptance_length": "mean acceptance length (tokens per verify step)",
}
TIME_METRICS = ("total_step_time", "generation", "exposed_generation", "policy_training",
                "policy_and_reference_logprobs", "weight_sync")

# stage colours (colour-blind-safe Okabe-Ito palette)
STAGE_COLORS = {
    "generation": "#0072B2", "logprobs": "#E69F00", "training": "#009E73", "weight_sync": "#D55E00",
    "reward": "#CC79A7", "data": "#999999", "idle": "#DDDDDD", "other": "#56B4E9",
}
LINE_COLORS = ["#0072B2", "#D55E00", "#009E73", "#E69F00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]


def label(key: str) -> str:
    """The axis label of a column or scenario key (its units where it has them)."""
    return LABELS.get(key, key)


class RlsimFigure(Figure):
    """A matplotlib Figure that shows itself as a PNG in notebooks (without pyplot or %matplotlib inline)."""

    def _repr_png_(self) -> bytes:
        buf = io.BytesIO()
        self.savefig(buf, format="png", dpi=100, bbox_inches="tight", pad_inches=0.05)
        return buf.getvalue()


def new_figure(width: float = 7.0, height: float = 4.5) -> Figure:
    """A Figure on its own Agg canvas (displays inline in notebooks; never touches pyplot's state)."""
    fig = RlsimFigure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def check_figure_path(path: str | os.PathLike, field: str = "--out") -> str:
    ext = Path(path).suffix.lower()
    if ext not in FORMATS:
        raise RlsimError(f"unknown figure format {Path(path).name!r} (use .png, .svg or .pdf)", field)
    if Path(path).is_dir():
        raise RlsimError("is a directory", field)
    return ext[1:]


def save_figure(fig: Figure, path: str | os.PathLike, dpi: int = 150) -> None:
    """Write the figure as PNG, SVG or PDF (by extension), atomically."""
    from simulator.yamlio import write_bytes_atomic
    fmt = check_figure_path(path, "path")
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=dpi, bbox_inches="tight", pad_inches=0.05)
    write_bytes_atomic(path, buf.getvalue())
