"""`rlsim optimize`: the best speculation, engine layout and placement of a scenario on N GPUs, and why.

    rlsim optimize [SCENARIO.yaml] --gpus N [--objective step_time|tokens_per_s_per_gpu] [--set key=value ...]
                   [--max-k 5] [--no-dynamic-k] [--splits 0.25,0.5,0.75] [--staleness 1,2] [--max-engine-gpus 8]
                   [--steps N] [--top 5] [--workers N] [--out all.csv] [--json]

Searches speculation (none, or the scenario's draft method at k = 1..max-k or dynamic k), the engines'
TP x EP, sync colocated vs split generation/training pools (sync or async at each staleness), pruning what
cannot run (parallelism that does not divide, weights or training state that do not fit); prints the best
configurations with their predicted step breakdowns (seconds) and why the winner wins.
"""
from __future__ import annotations

import json

from simulator.cli.options import add_set_option
from simulator.errors import RlsimError, check_at_least


def register(sub) -> None:
    p = sub.add_parser("optimize", help="search speculation, engine layout and placement for N GPUs",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("scenario", nargs="?", help="scenario YAML (default: workloads/scenarios/default.yaml)")
    p.add_argument("--gpus", type=int, required=True, help="GPUs of the cluster")
    p.add_argument("--objective", default="step_time", help="step_time (min) or tokens_per_s_per_gpu (max)")
    add_set_option(p, "fixed overrides of the scenario (several per --set; repeatable)")
    p.add_argument("--max-k", type=int, default=5, help="largest draft length tried (default 5)")
    p.add_argument("--no-dynamic-k", action="store_true", help="do not try dynamic k")
    p.add_argument("--splits", default="0.25,0.375,0.5,0.625,0.75",
                   help="fractions of the GPUs tried for the generation pool (comma-separated)")
    p.add_argument("--staleness", default="1,2", help="async max staleness values tried (comma-separated)")
    p.add_argument("--max-engine-gpus", type=int, default=8, help="largest engine (tp x ep) tried (default 8)")
    p.add_argument("--steps", type=int, help="RL steps per pipeline evaluation (default: max(3, staleness + 2))")
    p.add_argument("--top", type=int, default=5, help="configurations to print (default 5)")
    p.add_argument("--workers", type=int, help="worker processes (default: every CPU; 0: in this process)")
    p.add_argument("--out", help="write the ranked configurations (.csv or .parquet)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def _floats(text: str, field: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise RlsimError(f"expected comma-separated numbers (got {text!r})", field) from None


def _ints(text: str, field: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise RlsimError(f"expected comma-separated integers (got {text!r})", field) from None


def run(args) -> int:
    from simulator.optimize import optimize
    from simulator.rollout.results import check_table_path, write_table
    if args.out:
        check_table_path(args.out, "--out")
    check_at_least(args.top, 1, "--top")
    res = optimize(args.scenario, args.gpus, args.objective, sets=args.sets, max_k=args.max_k,
                   dynamic_k=not args.no_dynamic_k, fractions=_floats(args.splits, "--splits"),
                   staleness=_ints(args.staleness, "--staleness"), max_engine_gpus=args.max_engine_gpus,
                   steps=args.steps, top=0, workers=args.workers, progress=not args.no_progress and not args.json)
    if args.out:
        write_table(res.table, args.out)
    top = res.table.head(args.top)
    if args.json:
        print(json.dumps({"model": res.model, "hardware": res.hardware, "gpus": res.gpus,
                          "objective": res.objective, "evaluated": res.evaluated, "pruned": len(res.pruned),
                          "top": json.loads(top.to_json(orient="records")), "baseline": res.baseline,
                          "why": res.why}))
        return 0
    print(f"{res.model} on {res.gpus} x {res.hardware}, objective {res.objective}: {res.evaluated} simulations, "
          f"{len(res.pruned)} configurations pruned, {res.wall_s:.1f} s")
    print(f"{'#':>2} {'step s':>7} {'tok/s/GPU':>9}  {'speculation':<20} {'engines':<8} {'placement':<38} "
          f"{'gen':>6} {'exposed':>7} {'logprob':>7} {'train':>6} {'sync':>5} {'idle':>5}")
    rows = [(str(r["rank"]), r) for r in top.to_dict("records")]
    if res.baseline is not None:
        rows.append(("as given", res.baseline))
    for label, r in rows:
        idle = r["idle/buffer_starvation"] + r["idle/refit_bubble"]
        print(f"{label:>2} {r['total_step_time']:7.2f} {r['tokens_per_s_per_gpu']:9.1f}  {r['speculation']:<20} "
              f"{r['engines']:<8} {r['placement']:<38} {r['generation']:6.1f} {r['exposed_generation']:7.1f} "
              f"{r['policy_and_reference_logprobs']:7.1f} {r['policy_training']:6.1f} {r['weight_sync']:5.1f} "
              f"{idle:5.1f}")
    print("times in seconds per RL step (steady state); 'exposed' = generation the trainer waits for")
    for line in res.why:
        print(f"why #1: {line}")
    if res.pruned:
        print(f"pruned ({len(res.pruned)}): " + "; ".join(f"{a}: {b}" for a, b in res.pruned[:3])
              + (" ..." if len(res.pruned) > 3 else ""))
    return 0
