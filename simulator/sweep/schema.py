"""The columns of a sweep's results file: one row per point.

    point | <every swept key> | seed | steps | <every output of PipelineResult.summary()> | error | wall_s

`point` is the index in the grid (first axis slowest); `seed` and `steps` are what the point ran with (when
`seed` is itself swept it is a swept column and not repeated); the outputs are the steady-state means of
`rlsim run --json` (seconds, tokens/s, GPUs); `error` is empty for a point that ran and holds the one-line
error of one that failed (its outputs are then empty); `wall_s` is the seconds the point took (the only column
that changes from run to run).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from simulator.sweep.grid import GridAxis, canonical

# outputs of PipelineResult.summary() and their types (tests check this covers every key of summary())
OUTPUTS: tuple[tuple[str, pa.DataType], ...] = (
    ("total_step_time", pa.float64()), ("generation", pa.float64()), ("exposed_generation", pa.float64()),
    ("policy_and_reference_logprobs", pa.float64()), ("policy_training", pa.float64()),
    ("weight_sync", pa.float64()), ("idle/buffer_starvation", pa.float64()), ("idle/refit_bubble", pa.float64()),
    ("rollout_tokens_per_s", pa.float64()), ("tokens_per_s_per_gpu", pa.float64()),
    ("mean_acceptance_length", pa.float64()), ("generated_tokens", pa.float64()), ("samples", pa.float64()),
    ("steady_state_steps", pa.int64()), ("generation_gpus", pa.int64()), ("training_gpus", pa.int64()),
    ("cluster_gpus", pa.int64()), ("mode", pa.string()), ("colocated", pa.bool_()),
)
OUTPUT_NAMES = tuple(n for n, _ in OUTPUTS)
META = ("point", "seed", "steps", "error", "wall_s")


def _axis_type(axis: GridAxis) -> pa.DataType:
    """The column type of a swept key: bool, int64, float64 or string (mixed types and lists: their text)."""
    vals = [v for v in axis.values if v is not None]
    if vals and all(isinstance(v, bool) for v in vals):
        return pa.bool_()
    if vals and all(isinstance(v, int) and not isinstance(v, bool) for v in vals):
        return pa.int64()
    if vals and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals):
        return pa.float64()
    return pa.string()


@dataclass(frozen=True)
class SweepSchema:
    """Column names and types of one sweep's results."""

    axes: tuple[GridAxis, ...]

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(a.key for a in self.axes)

    @property
    def seed_swept(self) -> bool:
        return "seed" in self.keys

    @property
    def identity(self) -> tuple[str, ...]:
        """The columns that say which point a row is (what --resume matches on)."""
        return self.keys + (() if self.seed_swept else ("seed",)) + ("steps",)

    @property
    def arrow(self) -> pa.Schema:
        fields = [pa.field("point", pa.int64())]
        fields += [pa.field(a.key, _axis_type(a)) for a in self.axes]
        if not self.seed_swept:
            fields.append(pa.field("seed", pa.int64()))
        fields.append(pa.field("steps", pa.int64()))
        fields += [pa.field(n, t) for n, t in OUTPUTS]
        fields += [pa.field("error", pa.string()), pa.field("wall_s", pa.float64())]
        return pa.schema(fields)

    @property
    def columns(self) -> list[str]:
        return list(self.arrow.names)

    def cell(self, name: str, value: Any) -> Any:
        """A value as its column stores it (a string column holds the text of lists and mixed types)."""
        t = self.arrow.field(name).type
        if value is None:
            return None
        if t == pa.string() and not isinstance(value, str):
            return canonical(value) if not isinstance(value, (int, float, bool)) else \
                ("true" if value is True else "false" if value is False else str(value))
        if t == pa.float64() and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        return value

    def row(self, values: dict[str, Any]) -> dict[str, Any]:
        """A full row (every column, missing ones None) from a partial mapping."""
        return {c: self.cell(c, values.get(c)) for c in self.columns}

    def ident(self, row: dict[str, Any]) -> tuple[str, ...]:
        return tuple(canonical(row.get(c)) for c in self.identity)
