"""`rlsim run`: simulate RL steps (generation, reward, logprobs, training, refit) of a scenario.

    rlsim run [SCENARIO.yaml] [--set dotted.key=value ...] [--steps N] [--seed N] [--trace out.json] [--json]

Without a scenario, runs the built-in default (workloads/scenarios/default.yaml). --json prints one object with
the steady-state means of NeMo-RL's timers (seconds) and the throughputs.
"""
from __future__ import annotations

import json

from simulator.cli.options import add_set_option, seed_arg
from simulator.errors import RlsimError


def register(sub) -> None:
    p = sub.add_parser("run", help="simulate RL steps of a scenario (sync or async GRPO)",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("scenario", nargs="?", help="scenario YAML (default: workloads/scenarios/default.yaml)")
    add_set_option(p, "override scenario keys, e.g. --set pipeline.mode=async pipeline.max_staleness=2 (repeatable)")
    p.add_argument("--steps", type=int, help="RL steps to simulate (default: pipeline.steps)")
    p.add_argument("--seed", type=seed_arg, help="random seed (default: the scenario's)")
    p.add_argument("--mode", choices=("fast", "exact"), default="fast", help="rollout simulation mode")
    p.add_argument("--trace", help="write a Chrome/Perfetto trace of the pipeline timeline (JSON)")
    p.add_argument("--steps-out", help="write the per-step table (CSV or Parquet)")
    p.add_argument("--json", action="store_true", help="print one JSON object (steady-state means)")
    p.set_defaults(func=run)


def run(args) -> int:
    from simulator.pipeline.run import run_pipeline
    from simulator.rollout.results import check_table_path, write_table
    from simulator.scenario import load_scenario
    from simulator.yamlio import write_text_atomic
    if args.trace and not args.trace.lower().endswith(".json"):
        raise RlsimError("must end in .json", "--trace")
    if args.steps_out:
        check_table_path(args.steps_out, "--steps-out")
    scn = load_scenario(args.scenario, args.sets)
    res = run_pipeline(scn, steps=args.steps, seed=args.seed, rollout_mode=args.mode)
    if args.trace:
        write_text_atomic(args.trace, json.dumps(res.trace()))
    if args.steps_out:
        write_table(res.steps.drop(columns=["training_detail"]), args.steps_out)
    out = res.summary()
    out["scenario"] = scn.name
    if args.json:
        print(json.dumps(out))
        return 0
    _print_text(scn, res, out)
    return 0


def _print_text(scn, res, out) -> None:
    p = res.placement
    spec = scn.speculative
    if spec.method == "none":
        sp = "autoregressive"
    elif spec.method == "tree":
        sp = f"tree of {spec.tree_tokens} tokens, depth {spec.tree_depth}"
    elif spec.dynamic_k:
        sp = f"{spec.method} dynamic k in {{{', '.join(map(str, sorted(set(spec.candidate_ks))))}}}"
    else:
        sp = f"{spec.method} k={spec.num_tokens}"
    where = " colocated" if p["colocated"] else \
        f" ({p['generation_gpus']} generation + {p['training_gpus']} training GPUs)"
    print(f"{scn.name}: {scn.model} on {p['cluster_gpus']} x {scn.cluster.hardware}, {p['mode']}{where}, {sp}; "
          f"{out['steps']} RL steps, steady state over the last {out['steady_state_steps']}")
    rows = [("total_step_time", "step"), ("generation", "generation"), ("exposed_generation", "exposed generation"),
            ("policy_and_reference_logprobs", "policy + reference logprobs"), ("policy_training", "training"),
            ("weight_sync", "weight sync"), ("idle/buffer_starvation", "idle: buffer starvation"),
            ("idle/refit_bubble", "idle: refit bubble")]
    for key, label in rows:
        print(f"  {label:30s} {out[key]:10.2f} s")
    print(f"  {'rollout tokens/s':30s} {out['rollout_tokens_per_s']:10.0f}")
    print(f"  {'tokens/s/GPU (prompt+response)':30s} {out['tokens_per_s_per_gpu']:10.1f}")
    if spec.method != "none":
        print(f"  {'mean acceptance length':30s} {out['mean_acceptance_length']:10.2f}")
    for n in res.notes:
        print(f"note: {n}")
