"""Reading what `rlsim plot` plots: sweep tables, rollout interval tables, pipeline traces, `rlsim spec` output.

Every reader raises one RlsimError naming the file when it cannot read it or it is not the expected kind.
"""
from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import pandas as pd

from simulator.errors import RlsimError
from simulator.pipeline.sim import TIMERS

INTERVAL_COLUMNS = ("engine", "start_s", "end_s", "running", "generated_tokens")


# columns rlsim writes as numbers (pipeline timers and rates, per-step counts, rollout intervals)
NUMERIC_COLUMNS = frozenset(TIMERS + ("rollout_tokens_per_s", "tokens_per_s_per_gpu", "mean_acceptance_length",
                                      "generated_tokens", "samples", "step", "mean_response_tokens",
                                      "carried_sequences", "preemptions") + INTERVAL_COLUMNS[1:])


def read_table(path: str | os.PathLike, need: tuple[str, ...] = (), what: str = "a results table") -> pd.DataFrame:
    """A CSV or Parquet table with at least the columns `need`; the columns rlsim writes as numbers must hold
    numbers (an empty cell is a missing value)."""
    from simulator.sweep.store import read_results
    df = read_results(path)
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise RlsimError(f"not {what}: no column {missing[0]!r}", str(path))
    for c in NUMERIC_COLUMNS & set(df.columns):
        v = pd.to_numeric(df[c], errors="coerce")
        bad = v.isna() & df[c].notna()
        if bad.any():
            raise RlsimError(f"column {c!r} has a non-number {df[c][bad].iloc[0]!r} (row {int(bad.idxmax()) + 1})",
                             str(path))
        df[c] = v
    return df


def read_json(path: str | os.PathLike) -> object:
    p = Path(path)
    if not p.is_file():
        raise RlsimError("no such file", str(path))
    try:
        raw = p.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        return json.loads(raw.decode("utf-8"))
    except (ValueError, OSError, UnicodeDecodeError) as e:
        raise RlsimError(f"unreadable results file (not JSON: {' '.join(str(e).split())[:120]})", str(path)) from None


def read_intervals(path: str | os.PathLike) -> pd.DataFrame:
    """A `rlsim rollout --intervals-out` table."""
    return read_table(path, INTERVAL_COLUMNS, "a rollout interval table (rlsim rollout --intervals-out)")


def trace_events(trace: dict, source: str = "trace") -> pd.DataFrame:
    """The pipeline timeline (pool, name, start, end, step; seconds) of a `rlsim run --trace` JSON."""
    if not isinstance(trace, dict) or not isinstance(trace.get("traceEvents"), list):
        raise RlsimError("not a pipeline trace (rlsim run --trace): no traceEvents", source)
    pools = {e.get("pid"): str(e.get("args", {}).get("name", "")).removesuffix(" GPUs")
             for e in trace["traceEvents"] if e.get("ph") == "M" and e.get("name") == "process_name"}
    rows = []
    for e in trace["traceEvents"]:
        if e.get("ph") != "X":
            continue
        try:
            start = float(e["ts"]) / 1e6
            rows.append({"pool": pools.get(e.get("pid"), str(e.get("pid"))), "name": str(e.get("name", "")),
                         "start": start, "end": start + float(e.get("dur", 0.0)) / 1e6,
                         "step": int(e.get("args", {}).get("rl_step", -1))})
        except (KeyError, TypeError, ValueError):
            raise RlsimError("not a pipeline trace (rlsim run --trace): an event without ts/dur", source) from None
    if not rows:
        raise RlsimError("not a pipeline trace (rlsim run --trace): no stage events", source)
    if any(r["pool"] not in ("cluster", "generation", "training") for r in rows):
        raise RlsimError("not a pipeline trace (rlsim run --trace; a rollout trace has engines, not GPU pools)",
                         source)
    return pd.DataFrame(rows)


def read_trace(path: str | os.PathLike) -> pd.DataFrame:
    return trace_events(read_json(path), str(path))


def spec_rows(obj: object, source: str = "spec") -> pd.DataFrame:
    """The rows (batch, k, acceptance_length, speedup, tokens_per_s_per_seq) of `rlsim spec --json`, with the
    goodput-optimal k per batch in column `optimal_k`."""
    if not isinstance(obj, dict) or "rows" not in obj:
        raise RlsimError("not an `rlsim spec --json` output (no rows)", source)
    df = pd.DataFrame(obj["rows"])
    need = ("batch", "k", "speedup")
    if df.empty or any(c not in df.columns for c in need):
        raise RlsimError("not an `rlsim spec --json` output (rows lack batch, k, speedup)", source)
    opt = {int(b): int(k) for b, k in (obj.get("optimal_k") or {}).items()}
    if not opt:
        idx = df.groupby("batch")["speedup"].idxmax()
        opt = {int(df.loc[i, "batch"]): int(df.loc[i, "k"]) for i in idx}
    df["optimal_k"] = df["batch"].map(opt)
    return df


def read_spec(path: str | os.PathLike) -> pd.DataFrame:
    return spec_rows(read_json(path), str(path))


def stem(path: str | os.PathLike) -> str:
    """A label for a file: its name without the extensions."""
    name = Path(path).name
    for ext in (".gz", ".json", ".csv", ".parquet"):
        name = name.removesuffix(ext)
    return name
