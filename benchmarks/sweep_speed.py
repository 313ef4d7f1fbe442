"""Sweep speed: a 1,000-point sweep of the 8B default scenario on 2 worker processes (target: <= 60 s).

    python benchmarks/sweep_speed.py [--workers 2] [--steps N] [--out /tmp/sweep_bench.parquet] [--profile]

The grid (2 x 5 x 4 x 5 x 5 = 1,000 points): speculation none / EAGLE-3, k = 1..5, max_num_seqs 128..1024,
the median response length 500..1300 tokens and five seeds. Every point is a full `run_pipeline` of the
scenario (default: its pipeline.steps RL steps, as `rlsim run`). Prints the wall time, points/s, the mean
seconds per point inside the workers, and with --profile where one worker's time goes (cProfile of 40 points
run in this process).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

from host_speed import host_line  # benchmarks/, the script's own folder

GRID = ["speculative.method=none,eagle3", "speculative.num_tokens=1:5",
        "engine.max_num_seqs=128,256,512,1024", "rollout.response_tokens.median=500:1300:200", "seed=0:4"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--steps", type=int, default=None, help="RL steps per point (default: the scenario's)")
    ap.add_argument("--out", default=os.path.join(tempfile.gettempdir(), "rlsim_sweep_bench.parquet"))
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--target-s", type=float, default=60.0)
    args = ap.parse_args()
    from simulator.sweep import run_sweep
    t0 = time.perf_counter()
    res = run_sweep(None, GRID, args.out, steps=args.steps, workers=args.workers, progress=False)
    wall = time.perf_counter() - t0
    per_point = float(res.table["wall_s"].mean())
    print(f"sweep: {res.points} points ({res.failed} failed) on {args.workers} workers, steps per point "
          f"{args.steps or 'scenario default'}: {wall:.1f} s wall, {res.points / wall:.1f} points/s; "
          f"{per_point * 1e3:.0f} ms per point inside a worker (none: "
          f"{res.table.loc[res.table['speculative.method'] == 'none', 'wall_s'].mean() * 1e3:.0f} ms, eagle3: "
          f"{res.table.loc[res.table['speculative.method'] == 'eagle3', 'wall_s'].mean() * 1e3:.0f} ms); "
          f"target {args.target_s:.0f} s: {'met' if wall <= args.target_s else 'MISSED'}")
    print(host_line())
    if args.profile:
        _profile(args.steps)
    return 0 if wall <= args.target_s else 1


def _profile(steps) -> None:
    import cProfile
    import io
    import pstats

    from simulator.scenario import default_scenario_path
    from simulator.sweep.grid import grid_points, parse_grids
    from simulator.sweep.worker import Job, init_worker, run_point
    from simulator.yamlio import read_yaml
    path = default_scenario_path()
    job = Job(base=read_yaml(path), base_dir=str(path.parent), steps=steps)
    init_worker(job, ignore_sigint=False)
    pts = [(i, o) for i, _, o in grid_points(parse_grids(GRID))][::25]
    pr = cProfile.Profile()
    pr.enable()
    for t in pts:
        run_point(t, job)
    pr.disable()
    buf = io.StringIO()
    pstats.Stats(pr, stream=buf).sort_stats("cumulative").print_stats(25)
    print(buf.getvalue())


if __name__ == "__main__":
    sys.exit(main())
