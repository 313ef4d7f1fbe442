"""`rlsim fit spec-overhead TABLE.csv --hardware H --model M`: a serving framework's speculative-path
overheads (per iteration, per draft step) from measured batch-1 time per output token."""
from __future__ import annotations

import json

from simulator.errors import RlsimError, check_at_least


def register(sub) -> None:
    p = sub.add_parser("spec-overhead", help="fit speculative-path framework overheads from measured TPOT",
                       description=" ".join(__doc__.split()))
    p.add_argument("table", metavar="TABLE.csv",
                   help="columns drafter,k,acceptance_length,tpot_ms; one row drafter none, k 0 "
                        "(e.g. workloads/published/vllm_eagle_bs1_tpot.csv)")
    p.add_argument("--hardware", required=True, help="hardware profile the measurements ran on")
    p.add_argument("--model", required=True, help="target model")
    p.add_argument("--drafter", default="eagle3", help="the table's drafter rows to fit (a speculative method)")
    p.add_argument("--draft-model", default=None, help="draft head (default: the catalogue head of the target)")
    p.add_argument("--context", type=int, default=300, help="typical tokens in the KV cache (default 300)")
    p.add_argument("--fit-k", type=int, nargs="+", default=None,
                   help="fit on these k only; the other rows are reported as held out")
    p.add_argument("--tp", type=int, default=1)
    p.add_argument("--dtype", default="bf16")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def run(args) -> int:
    from simulator.costmodel.step import StepCostModel
    from simulator.fit.spec_overhead import fit_spec_overhead, read_tpot_table
    from simulator.specdec.costs import METHODS

    if args.drafter not in METHODS or args.drafter == "none":
        raise RlsimError(f"unknown speculative method {args.drafter!r} ({', '.join(METHODS[1:])})", "--drafter")
    check_at_least(args.context, 1, "--context")
    table = read_tpot_table(args.table)
    target = StepCostModel(args.hardware, args.model, tp=args.tp, dtype=args.dtype, all_reduce="vllm")
    fit = fit_spec_overhead(target, table, args.drafter, args.draft_model, args.context, args.fit_k)
    out = {"hardware": target.hw.name, "model": target.model.name, "drafter": args.drafter,
           "step_overhead_s": fit.step_overhead_s, "spec_iteration_overhead_s": fit.iteration_overhead_s,
           "draft_step_overhead_s": fit.draft_step_overhead_s,
           "rows": fit.rows}
    if args.json:
        print(json.dumps(out))
        return 0
    print(f"{out['model']} on {out['hardware']}, drafter {args.drafter}: "
          f"step_overhead_s {fit.step_overhead_s * 1e3:.3f} ms, spec_iteration_overhead_s "
          f"{fit.iteration_overhead_s * 1e3:.3f} ms, draft_step_overhead_s {fit.draft_step_overhead_s * 1e3:.3f} ms")
    print(f"{'k':>3} {'tau':>5} {'measured ms':>12} {'predicted ms':>13} {'error':>7}")
    for r in out["rows"]:
        print(f"{int(r['k']):>3} {r['acceptance_length']:>5.2f} {r['measured_tpot_ms']:>12.3f} "
              f"{r['predicted_tpot_ms']:>13.3f} {r['error']:>+7.1%}" + ("  held out" if r["held_out"] else ""))
    return 0
