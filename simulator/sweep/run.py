"""Run a sweep: every point of the grid through `run_pipeline`, in parallel, into a results file.

    res = run_sweep("workloads/scenarios/default.yaml",
                    ["speculative.method=none,eagle3", "speculative.num_tokens=1:5"],
                    out="results.parquet", workers=2)
    res.table          # one row per point (sorted by point), the file's content

Points run independently with the scenario's seed (or `seed=`, or a swept `seed`), so the results do not
depend on the number of workers or the backend. Rows are written in point order as soon as every earlier
point has finished (so a file from any worker count has the same rows in the same order, `wall_s` aside); on
Ctrl-C (KeyboardInterrupt) or SIGTERM the finished points are written, the file is closed, and `interrupted`
is set: rerun with `resume=True` to run only what is missing.
"""
from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from simulator.errors import RlsimError, check_at_least
from simulator.sweep import backends
from simulator.sweep.grid import GridAxis, canonical, grid_points, parse_grids
from simulator.sweep.progress import Progress
from simulator.sweep.schema import SweepSchema
from simulator.sweep.store import check_out_path, open_store
from simulator.sweep.worker import Job


@dataclass
class SweepResult:
    """What a sweep did: its table (every row in the file, sorted by point) and counts."""

    table: pd.DataFrame
    path: Path | None
    points: int
    ran: int
    skipped: int
    failed: int
    interrupted: bool
    wall_s: float
    axes: list[GridAxis] = field(default_factory=list)

    @property
    def keys(self) -> list[str]:
        return [a.key for a in self.axes]


def _base(scenario) -> tuple[dict, Path]:
    from simulator.scenario import default_scenario_path
    from simulator.yamlio import read_yaml
    p = Path(scenario) if scenario is not None else default_scenario_path()
    return read_yaml(p), p.resolve().parent


def _point_meta(axes: list[GridAxis], values: tuple, base_seed: int, steps: int | None, base_steps: int) -> dict:
    """The row's identity columns before it runs: swept values, seed, steps."""
    row = {a.key: v for a, v in zip(axes, values)}
    row.setdefault("seed", base_seed)
    if steps is not None:
        row["steps"] = steps
    else:
        s = row.get("pipeline.steps", base_steps)
        row["steps"] = int(s) if isinstance(s, (int, float)) and not isinstance(s, bool) else base_steps
    return row


def run_sweep(scenario: str | os.PathLike | None, grid, out: str | os.PathLike | None = None, *,
              sets: list[str] | tuple[str, ...] = (), steps: int | None = None, seed: int | None = None,
              workers: int | None = None, backend: str = "local", ray_address: str | None = None,
              resume: bool = False, retry_failed: bool = False, progress: bool | Progress = True,
              rollout_mode: str = "fast") -> SweepResult:
    """Run every point of `grid` (`--grid` strings or a mapping key -> values) over the scenario.

    scenario: YAML path (None: the default scenario); sets: fixed `key=value` overrides applied before the
    grid's; steps: RL steps per point (None: the scenario's pipeline.steps, as `rlsim run`); seed: overrides
    the scenario's seed; workers: processes (None: every CPU; 0: in this process); out: .csv or .parquet
    (None: only in memory); resume: keep the points already in `out` and run the rest.
    """
    t0 = time.monotonic()
    if backend not in backends.BACKENDS:
        raise RlsimError(f"unknown backend {backend!r} ({', '.join(backends.BACKENDS)})", "--backend")
    if backend == "ray":
        backends.import_ray()  # missing: one line before anything is written
    if steps is not None:
        check_at_least(steps, 1, "--steps")
    if workers is not None:
        check_at_least(workers, 0, "--workers")
    if out is not None:
        check_out_path(out)
    axes = parse_grids(grid)
    keys = [a.key for a in axes]
    if seed is not None and "seed" in keys:
        raise RlsimError("seed is swept: drop --seed", "--seed")
    if steps is not None and "pipeline.steps" in keys:
        raise RlsimError("pipeline.steps is swept: drop --steps", "--steps")
    base, base_dir = _base(scenario)
    fixed = list(sets) + ([f"seed={seed}"] if seed is not None else [])
    from simulator.pipeline.config import PipelineConfig
    from simulator.scenario import scenario_from_dict
    scn0 = scenario_from_dict(base, fixed, base_dir=base_dir)  # the base and --set: errors now, not per point
    base_steps = (scn0.pipeline or PipelineConfig()).steps
    schema = SweepSchema(tuple(axes))
    store = open_store(out, schema, resume=resume, retry_failed=retry_failed)
    metas, todo = {}, []
    n_points = 0
    for i, values, overrides in grid_points(axes):
        n_points += 1
        meta = _point_meta(axes, values, scn0.seed, steps, base_steps)
        if schema.ident(meta) in store.done:
            continue
        metas[i] = meta
        todo.append((i, overrides))
    skipped = n_points - len(todo)
    job = Job(base=base, base_dir=str(base_dir), sets=tuple(fixed), steps=steps, rollout_mode=rollout_mode,
              token=uuid.uuid4().hex)
    bar = progress if isinstance(progress, Progress) else Progress(len(todo), enabled=bool(progress))
    if skipped and bar.enabled:
        bar.stream.write(f"resuming: {skipped} of {n_points} points already in {out}\n")
    n_workers = backends.default_workers() if workers is None else workers
    n_workers = min(n_workers, max(len(todo), 1)) if workers != 0 else 0
    new_rows: list[dict] = []
    ready: dict[int, dict] = {}
    order = [i for i, _ in todo]
    nxt = 0
    failed = 0
    interrupted = False
    store.open()
    stream = backends.rows(backend, todo, job, n_workers, ray_address) if todo else iter(())
    try:
        with _sigterm_as_interrupt():
            for r in stream:
                i = int(r["point"])
                row = schema.row({**metas[i], **{k: v for k, v in r.items() if k not in ("point", "steps")},
                                  "point": i})
                ready[i] = row
                failed += row["error"] is not None
                bar.update(failed=row["error"] is not None)
                batch = []
                while nxt < len(order) and order[nxt] in ready:
                    batch.append(ready.pop(order[nxt]))
                    nxt += 1
                if batch:
                    store.add(batch)
                    new_rows += batch
    except KeyboardInterrupt:
        interrupted = True
    finally:
        close = getattr(stream, "close", None)
        if interrupted and close:
            close()  # stop submitting, cancel what has not started, stop the workers
        rest = [ready[i] for i in sorted(ready)]
        if rest:
            store.add(rest)
            new_rows += rest
        store.close()
        if close and not interrupted:
            close()
        bar.close()
    table = pd.DataFrame(store.old_rows + new_rows, columns=schema.columns)
    if len(table):
        table = table.sort_values("point", kind="stable").reset_index(drop=True)
    return SweepResult(table=table, path=Path(out) if out is not None else None, points=n_points,
                       ran=len(new_rows), skipped=skipped, failed=failed, interrupted=interrupted,
                       wall_s=time.monotonic() - t0, axes=axes)


class _sigterm_as_interrupt:
    """Within: SIGTERM (a batch scheduler stopping the job) raises KeyboardInterrupt, like Ctrl-C."""

    def __enter__(self):
        import signal
        import threading
        self._old = None
        if threading.current_thread() is threading.main_thread():
            def handler(signum, frame):
                raise KeyboardInterrupt
            self._old = signal.signal(signal.SIGTERM, handler)
        return self

    def __exit__(self, *exc):
        import signal
        if self._old is not None:
            signal.signal(signal.SIGTERM, self._old)
        return False


def identity_values(table: pd.DataFrame, keys: list[str]) -> set[tuple]:
    """The canonical swept values of every row (tests, notebooks)."""
    return {tuple(canonical(v) for v in row) for row in table[keys].itertuples(index=False)}
