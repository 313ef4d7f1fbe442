"""`rlsim validate`: predicted vs published for every row of the published tables, the B200 stage report, the
NeMo-RL v0.3 blog's stage times, and the 235B projection.

Exits 1 when a check is outside its tolerance (speedups 10%, NeMo-RL step times 20%, off/on ratios 15%).
"""
from __future__ import annotations

import json
import math


def register(sub) -> None:
    p = sub.add_parser("validate", help="compare predictions with the published figures",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("--only", choices=("paper", "nemo-rl", "stages", "v03", "projection"), action="append",
                   help="run only these parts (repeatable; default: all)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args) -> int:
    from simulator.validation.published import (nemo_rl_checks, paper_checks, projection_235b, stage_checks,
                                                v03_checks)
    parts = set(args.only or ("paper", "nemo-rl", "stages", "v03", "projection"))
    checks = ((paper_checks() if "paper" in parts else []) + (nemo_rl_checks() if "nemo-rl" in parts else [])
              + (stage_checks() if "stages" in parts else []) + (v03_checks() if "v03" in parts else []))
    proj = projection_235b() if "projection" in parts else None
    failed = [c for c in checks if c.ok is False]
    if args.json:
        out = {"checks": [{"table": c.table, "row": c.row, "quantity": c.quantity, "published": c.published,
                           "predicted": c.predicted, "rel_error": c.rel_error, "tolerance": c.tolerance,
                           "ok": c.ok} for c in checks],
               "passed": sum(c.ok is True for c in checks), "failed": len(failed)}
        if proj is not None:
            out["projection_235b"] = proj.to_dict(orient="records")
        print(json.dumps(out, default=lambda v: None if isinstance(v, float) and math.isnan(v) else v))
        return 1 if failed else 0
    table = None
    for c in checks:
        if c.table != table:
            table = c.table
            print(f"\n{table}")
            print(f"  {'row':58s} {'quantity':38s} {'published':>10s} {'predicted':>10s} {'error':>8s}  check")
        mark = "" if c.ok is None else ("ok" if c.ok else f"FAIL (tol {c.tolerance:.0%})")
        print(f"  {c.row:58s} {c.quantity:38s} {c.published:10.3f} {c.predicted:10.3f} {c.rel_error:+8.1%}  {mark}")
    if proj is not None:
        print("\nQwen3-235B-A22B projection on GB200 (FP8 generation; no published figures to compare):")
        print(proj.round(2).to_string(index=False))
    if checks:
        print(f"\n{sum(c.ok is True for c in checks)} checks within tolerance, {len(failed)} outside")
    return 1 if failed else 0



