"""Where sweep points run: local worker processes (default) or a Ray cluster.

Each backend is a generator `rows(tasks, job, workers)` that yields a row per task as the points finish (in
any order) and, when closed early (Ctrl-C), stops submitting, cancels what has not started and stops the
workers. At most `4 x workers` points are in flight, so stopping is quick and memory stays flat.

- local: `concurrent.futures.ProcessPoolExecutor` under forkserver (Linux; spawn elsewhere), the server
  preloading the simulator so that each worker starts warm; `workers=0` runs in this process (debugging).
  A worker that dies (out of memory, a crash) fails the points it was running, recorded as errors, and the
  pool is restarted for the rest.
- ray: remote tasks on `ray.init(address)` (an existing cluster: `--ray-address` or RAY_ADDRESS), else on a
  local Ray instance of `workers` CPUs that is shut down afterwards. Ray is an optional extra.
"""
from __future__ import annotations

import logging
import multiprocessing as mp
import os
import sys
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Iterable, Iterator

from simulator.errors import RlsimError
from simulator.sweep.worker import Job, init_worker, run_point

BACKENDS = ("local", "ray")
PRELOAD = ["simulator.pipeline.run", "simulator.sweep.worker"]


def default_workers() -> int:
    """CPUs this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def mp_context():
    """forkserver where there is one (fork-safe and the server preloads the simulator), else spawn."""
    if sys.platform.startswith("linux") and "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(PRELOAD)
        return ctx
    return mp.get_context("spawn")


WORKER_DIED = "worker process died while running this point (or one beside it): out of memory or a crash"


def _top_up(it: Iterator[tuple], pending: dict, window: int, submit) -> bool:
    """Submit tasks from `it` (pending[handle] = task) until `window` are pending; True once `it` is exhausted."""
    while len(pending) < window:
        t = next(it, None)
        if t is None:
            return True
        pending[submit(t)] = t
    return False


def local_rows(tasks: Iterable[tuple], job: Job, workers: int) -> Iterator[dict]:
    """Run tasks in local processes; yields rows as they finish."""
    if workers <= 0:  # in-process (debugging, profiling)
        init_worker(job, ignore_sigint=False)
        for t in tasks:
            yield run_point(t, job)
        return
    it = iter(tasks)
    window = 4 * workers
    exhausted = False
    while True:
        ex = ProcessPoolExecutor(max_workers=workers, mp_context=mp_context(), initializer=init_worker,
                                 initargs=(job,))
        pending: dict = {}
        broken = False
        try:
            while True:
                if not exhausted:
                    exhausted = _top_up(it, pending, window, lambda t: ex.submit(run_point, t))
                if not pending:
                    return
                done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
                for f in done:
                    t = pending.pop(f)
                    try:
                        yield f.result()
                    except BrokenProcessPool:
                        broken = True
                        yield {"point": t[0], "error": WORKER_DIED, "wall_s": None}
                if broken:
                    for f, t in pending.items():
                        yield {"point": t[0], "error": WORKER_DIED, "wall_s": None}
                    pending.clear()
                    break
        finally:
            for f in pending:
                f.cancel()
            _stop(ex, force=bool(pending))
        if exhausted and not pending and not broken:
            return


def _stop(ex: ProcessPoolExecutor, force: bool) -> None:
    """Shut the pool down; with force (stopped early) terminate workers still running a point."""
    if force:
        procs = list(getattr(ex, "_processes", {}).values())  # no public API to stop running work
        ex.shutdown(wait=False, cancel_futures=True)
        for p in procs:
            if p.is_alive():
                p.kill()  # workers ignore SIGINT / SIGTERM
        for p in procs:
            p.join(timeout=5)
        # let the pool's manager thread see its dead workers and close its wake-up pipe now: at interpreter exit
        # concurrent.futures writes to that pipe unlocked, and a manager still closing it then printed a traceback
        # (OSError: Bad file descriptor) after "rlsim: interrupted" (CPython 3.11's _python_exit)
        manager = getattr(ex, "_executor_manager_thread", None)  # no public API either
        if manager is not None:
            manager.join(timeout=5)
    else:
        ex.shutdown(wait=True, cancel_futures=True)


def import_ray():
    """The ray module, or one clear error line when the optional extra is not installed."""
    try:
        import ray
    except ImportError:
        raise RlsimError("Ray is not installed: pip install -e '.[ray]' (or use --backend local)",
                         "--backend ray") from None
    return ray


_RAY_JOB: dict = {}


def _ray_point(job: Job, task: tuple) -> dict:
    """A Ray task: set the worker up once per job (Ray reuses worker processes), then run the point."""
    if _RAY_JOB.get("token") != job.token:
        init_worker(job, ignore_sigint=False)
        _RAY_JOB["token"] = job.token
    return run_point(task, job)


def ray_rows(tasks: Iterable[tuple], job: Job, workers: int, address: str | None = None) -> Iterator[dict]:
    """Run tasks as Ray remote tasks; yields rows as they finish."""
    ray = import_ray()
    started = False
    if not ray.is_initialized():
        address = address or os.environ.get("RAY_ADDRESS")
        kw = {"address": address} if address else {"num_cpus": max(workers, 1), "include_dashboard": False}
        try:
            ray.init(log_to_driver=False, logging_level=logging.ERROR, **kw)
        except Exception as e:  # noqa: BLE001
            raise RlsimError(f"could not start or reach Ray ({type(e).__name__}: {' '.join(str(e).split())[:200]})",
                             "--backend ray") from None
        started = True
    remote = ray.remote(num_cpus=1, max_retries=0)(_ray_point)
    job_ref = ray.put(job)
    cluster_cpus = int(ray.cluster_resources().get("CPU", workers or 1))
    window = 4 * max(cluster_cpus, 1)
    it = iter(tasks)
    pending: dict = {}
    exhausted = False
    try:
        while True:
            if not exhausted:
                exhausted = _top_up(it, pending, window, lambda t: remote.remote(job_ref, t))
            if not pending:
                return
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                t = pending.pop(ref)
                try:
                    yield ray.get(ref)
                except Exception as e:  # noqa: BLE001 (a worker that died: the point failed)
                    yield {"point": t[0], "error": f"ray task failed: {type(e).__name__}: "
                                                   f"{' '.join(str(e).split())[:300]}", "wall_s": None}
    finally:
        for ref in pending:
            try:
                ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001
                pass
        if started:
            ray.shutdown()


def rows(backend: str, tasks: Iterable[tuple], job: Job, workers: int, ray_address: str | None = None
         ) -> Iterator[dict]:
    if backend == "local":
        return local_rows(tasks, job, workers)
    if backend == "ray":
        return ray_rows(tasks, job, workers, ray_address)
    raise RlsimError(f"unknown backend {backend!r} ({', '.join(BACKENDS)})", "--backend")
