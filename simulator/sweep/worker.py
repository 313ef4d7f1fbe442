"""What a sweep worker does: set up once (imports, the base scenario), then run points.

`init_worker(job)` is the ProcessPoolExecutor initializer (a module-level function, so it works under fork,
forkserver and spawn): it ignores SIGINT and SIGTERM (the parent decides when to stop, and stops its workers
itself), imports the simulator and keeps the job. `run_point((index, overrides))` builds the point's scenario
from the base mapping plus the overrides, runs `run_pipeline` and returns the row: `point`, `error` (None, or
the one-line error of a failed point), `wall_s` and every key of `PipelineResult.summary()` (with `Job.what ==
"rollout"`: one rollout batch through `simulate_rollout`, the scalar keys of `RolloutResult.summary()`, for
searches that only need generation).
It never raises: a failed point is a row.
"""
from __future__ import annotations

import signal
import time
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Job:
    """Everything a worker needs besides the point: the scenario mapping, its folder, fixed overrides."""

    base: dict
    base_dir: str | None
    sets: tuple[str, ...] = ()
    steps: int | None = None
    rollout_mode: str = "fast"
    token: str = ""  # tells one sweep's job from another's (Ray reuses worker processes across jobs)
    what: str = "pipeline"  # pipeline: run_pipeline's summary; rollout: one rollout batch's summary


_JOB: Job | None = None


def init_worker(job: Job, ignore_sigint: bool = True) -> None:
    """Process-pool initializer: keep the job, import the simulator once."""
    global _JOB
    if ignore_sigint:  # Ctrl-C / a scheduler's SIGTERM reach the whole process group: the parent handles them
        try:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        except ValueError:  # not the main thread (an in-process backend): leave signals alone
            pass
    import simulator.pipeline.run  # noqa: F401  (the import is the point: once per worker)
    _JOB = job


def run_point(task: tuple[int, tuple[str, ...]], job: Job | None = None) -> dict[str, Any]:
    """Run one point; returns its row (never raises)."""
    index, overrides = task
    job = job or _JOB
    t0 = time.perf_counter()
    row: dict[str, Any] = {"point": index, "error": None}
    try:
        if job is None:
            raise RuntimeError("worker not initialised (init_worker was not called)")
        from simulator.pipeline.run import run_pipeline
        from simulator.scenario import scenario_from_dict
        scn = scenario_from_dict(job.base, list(job.sets) + list(overrides), base_dir=job.base_dir)
        if job.what == "rollout":
            from simulator.rollout.sim import simulate_rollout
            summ = simulate_rollout(scn, mode=job.rollout_mode).summary()
            row.update({k: v for k, v in summ.items() if not isinstance(v, (dict, list))})
        else:
            row.update(run_pipeline(scn, steps=job.steps, rollout_mode=job.rollout_mode).summary())
    except KeyboardInterrupt:
        raise
    except Exception as e:  # noqa: BLE001 (a failed point is recorded, whatever failed)
        row["error"] = error_line(e)
    row["wall_s"] = time.perf_counter() - t0
    return row


def error_line(e: BaseException) -> str:
    """One line for a failed point: an RlsimError as the CLI prints it, anything else with its type."""
    from simulator.errors import RlsimError
    if isinstance(e, RlsimError):
        return str(e)
    return f"{type(e).__name__}: {' '.join(str(e).split())}"
