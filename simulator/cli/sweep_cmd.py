"""`rlsim sweep`: run the cartesian product of grids over a scenario, in parallel, into a results table.

    rlsim sweep [SCENARIO.yaml] --grid dotted.key=v1,v2,... [--grid ...] [--set key=value ...] --out F.parquet|.csv
                [--steps N] [--seed N] [--workers N] [--backend local|ray] [--ray-address A] [--resume]
                [--retry-failed] [--no-progress] [--json]

Grid values are YAML scalars as for --set; `a:b` is an integer range (both ends included), `a:b:step` a stepped
one. One row per point (every swept key, seed, steps, every output of `rlsim run --json`, error, wall_s),
written as points finish. A failed point is recorded with its error; Ctrl-C leaves a valid file (rerun with
--resume to finish it).
"""
from __future__ import annotations

import json

from simulator.cli.options import add_set_option, seed_arg
from simulator.errors import RlsimError


def register(sub) -> None:
    p = sub.add_parser("sweep", help="what-if sweep: a grid of scenario variants, in parallel, into a table",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("scenario", nargs="?", help="scenario YAML (default: workloads/scenarios/default.yaml)")
    p.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2,...",
                   help="a swept key and its values (repeatable; ranges a:b and a:b:step)")
    add_set_option(p, "fixed overrides applied to every point (several per --set; repeatable)")
    p.add_argument("--out", required=True, metavar="FILE", help="results table (.parquet or .csv)")
    p.add_argument("--steps", type=int, help="RL steps per point (default: the scenario's pipeline.steps)")
    p.add_argument("--seed", type=seed_arg, help="random seed of every point (default: the scenario's)")
    p.add_argument("--workers", type=int, help="worker processes (default: every CPU; 0: in this process)")
    p.add_argument("--backend", default="local", help="local (processes, default) or ray (a Ray cluster)")
    p.add_argument("--ray-address", help="Ray cluster to join (default: RAY_ADDRESS, else a local instance)")
    p.add_argument("--resume", action="store_true", help="keep the points already in --out, run the rest")
    p.add_argument("--retry-failed", action="store_true", help="with --resume: run failed points again")
    p.add_argument("--mode", choices=("fast", "exact"), default="fast", help="rollout simulation mode")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.add_argument("--json", action="store_true", help="print a JSON summary of the sweep")
    p.set_defaults(func=run)


def run(args) -> int:
    from simulator.sweep import run_sweep
    if not args.grid:
        raise RlsimError("no grid: give at least one --grid dotted.key=v1,v2,...", "--grid")
    if args.retry_failed and not args.resume:
        raise RlsimError("only applies with --resume", "--retry-failed")
    res = run_sweep(args.scenario, args.grid, args.out, sets=args.sets, steps=args.steps, seed=args.seed,
                    workers=args.workers, backend=args.backend, ray_address=args.ray_address, resume=args.resume,
                    retry_failed=args.retry_failed, progress=not args.no_progress, rollout_mode=args.mode)
    summary = {"out": str(res.path), "points": res.points, "ran": res.ran, "skipped": res.skipped,
               "failed": res.failed, "interrupted": res.interrupted, "wall_s": round(res.wall_s, 3)}
    if args.json:
        print(json.dumps(summary))
    else:
        what = f"{res.ran} points run" + (f", {res.skipped} already there" if res.skipped else "")
        fail = f"; {res.failed} failed (see the error column)" if res.failed else ""
        print(f"{what}{fail} in {res.wall_s:.1f} s -> {res.path}")
    if res.interrupted:
        import sys
        print(f"rlsim: interrupted: {len(res.table)} of {res.points} points are in {res.path} "
              "(rerun with --resume to finish)", file=sys.stderr)
        return 130
    if res.ran and res.failed == res.ran:
        import sys
        first = res.table["error"].dropna()
        print(f"rlsim: error: every point failed; the first: {first.iloc[0] if len(first) else '?'}",
              file=sys.stderr)
        return 1
    return 0
