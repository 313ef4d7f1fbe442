"""What a rollout simulation returns: scalars, a per-request table, a per-interval table, a Chrome trace.

Times in seconds, token counts in tokens. Tables are pandas DataFrames; `write_table` writes CSV or
Parquet by the file's extension, atomically; `chrome_trace` builds the Chrome/Perfetto trace JSON of the
engines' timelines (one track per engine: an event per interval, a counter of running sequences).
"""
from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from simulator.errors import RlsimError
from simulator.rollout.workload import RequestBatch
from simulator.yamlio import write_bytes_atomic, write_text_atomic

TABLE_FORMATS = (".csv", ".parquet")


@dataclass
class RolloutResult:
    """One rollout step.

    rollout_s: time until the last engine stops; tokens_per_s: generated tokens / rollout_s (per GPU:
    over every GPU of the engines); generated_tokens: response tokens produced in this step; num_sequences:
    sequences of the batch; completed_sequences: those that reached their end (the rest are `carried`);
    mean_acceptance_length: decode-emitted tokens per verify iteration (1 without speculation);
    tail_s: time from the moment 90% of the sequences had finished to the end (0 when the step stopped
    first); engine_busy_s / engine_end_s: per engine. requests: one row per sequence (engine, start_s,
    first_token_s, finish_s, prompt/response tokens, generated_before, generated_tokens, decode_steps,
    accepted_tokens = draft tokens accepted, preemptions, prefill_tokens incl. recompute, truncated, finished =
    response complete, status completed / budget (stopped by max_tokens_per_sequence) / stopped (by the
    token budget)); intervals: one row per engine interval (an iteration in exact mode, a run of iterations
    of one composition in fast mode: start_s, end_s, iterations, running, decode_seqs, prefill_tokens,
    tokens_per_iteration, generated_tokens, step_s, k, cuda_graph). carried: the unfinished sequences as a
    RequestBatch for the next RL step (generated = tokens so far).
    """

    mode: str
    seed: int
    rollout_s: float
    generated_tokens: int
    num_sequences: int
    completed_sequences: int
    mean_acceptance_length: float
    engines: int
    gpus_per_engine: int
    engine_busy_s: np.ndarray
    engine_end_s: np.ndarray
    iterations: int
    events: int
    preemptions: int
    prefill_tokens: int
    kv_blocks_per_engine: int
    block_size: int
    max_num_seqs: int
    truncated_fraction: float
    tail_s: float
    requests: pd.DataFrame
    intervals: pd.DataFrame
    carried: RequestBatch
    wall_s: float = 0.0
    notes: list[str] = field(default_factory=list)
    name: str = ""

    @property
    def gpus(self) -> int:
        return self.engines * self.gpus_per_engine

    @property
    def tokens_per_s(self) -> float:
        return self.generated_tokens / self.rollout_s if self.rollout_s > 0 else 0.0

    @property
    def tokens_per_s_per_gpu(self) -> float:
        return self.tokens_per_s / self.gpus

    def summary(self) -> dict:
        """The scalars, JSON-ready (the keys of `rlsim rollout --json`)."""
        busy = self.engine_busy_s
        return {
            "name": self.name, "mode": self.mode, "seed": self.seed,
            "rollout_s": self.rollout_s, "tokens_per_s": self.tokens_per_s,
            "tokens_per_s_per_gpu": self.tokens_per_s_per_gpu, "num_sequences": self.num_sequences,
            "completed_sequences": self.completed_sequences, "carried_sequences": self.carried.size,
            "generated_tokens": self.generated_tokens, "prefill_tokens": self.prefill_tokens,
            "mean_acceptance_length": self.mean_acceptance_length, "engines": self.engines,
            "gpus": self.gpus, "gpus_per_engine": self.gpus_per_engine,
            "engine_busy_s": {"min": float(busy.min()), "mean": float(busy.mean()), "max": float(busy.max())},
            "tail_s": self.tail_s, "truncated_fraction": self.truncated_fraction,
            "preemptions": self.preemptions, "iterations": self.iterations, "events": self.events,
            "kv_blocks_per_engine": self.kv_blocks_per_engine, "kv_tokens_per_engine":
                self.kv_blocks_per_engine * self.block_size, "max_num_seqs": self.max_num_seqs,
            "wall_s": self.wall_s, "notes": list(self.notes),
        }

    def trace(self) -> dict:
        return chrome_trace(self.intervals, self.name or "rollout")


def check_table_path(path: str | os.PathLike, field: str) -> None:
    if not str(path).lower().endswith(TABLE_FORMATS):
        raise RlsimError(f"unknown table format {os.path.basename(str(path))!r} (use .csv or .parquet)", field)


def write_table(df: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write a DataFrame as CSV or Parquet (by extension), atomically."""
    check_table_path(path, "path")
    if str(path).lower().endswith(".csv"):
        write_text_atomic(path, df.to_csv(index=False))
    else:
        buf = io.BytesIO()
        df.to_parquet(buf, index=False)
        write_bytes_atomic(path, buf.getvalue())


def chrome_trace(intervals: pd.DataFrame, name: str = "rollout") -> dict:
    """Chrome/Perfetto trace JSON: process `name`, one thread per engine, an 'X' event per interval
    (decode / prefill / mixed, with running sequences, k, iterations, tokens) and a 'running' counter."""
    ev: list[dict] = [{"ph": "M", "pid": 0, "name": "process_name", "args": {"name": name}}]
    if intervals.empty:
        return {"traceEvents": ev, "displayTimeUnit": "ms"}
    for e in np.unique(intervals["engine"].to_numpy()):
        ev.append({"ph": "M", "pid": 0, "tid": int(e), "name": "thread_name", "args": {"name": f"engine {e}"}})
    cols = {c: intervals[c].to_numpy() for c in ("engine", "start_s", "end_s", "iterations", "running",
                                                  "decode_seqs", "prefill_tokens", "tokens_per_iteration", "k")}
    for i in range(len(intervals)):
        kind = "decode" if cols["prefill_tokens"][i] == 0 else ("prefill" if cols["decode_seqs"][i] == 0
                                                                 else "mixed")
        ts = float(cols["start_s"][i]) * 1e6
        eng = int(cols["engine"][i])
        ev.append({"ph": "X", "pid": 0, "tid": eng, "name": kind, "ts": ts,
                   "dur": (float(cols["end_s"][i]) - float(cols["start_s"][i])) * 1e6,
                   "args": {"running": int(cols["running"][i]), "k": int(cols["k"][i]),
                            "iterations": int(cols["iterations"][i]),
                            "tokens_per_iteration": int(cols["tokens_per_iteration"][i])}})
        ev.append({"ph": "C", "pid": 0, "tid": eng, "name": f"running (engine {eng})", "ts": ts,
                   "args": {"running": int(cols["running"][i])}})
    return {"traceEvents": ev, "displayTimeUnit": "ms"}


def write_trace(trace: dict, path: str | os.PathLike) -> None:
    write_text_atomic(path, json.dumps(trace))
