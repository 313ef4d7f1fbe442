"""`rlsim rollout`: simulate one RL rollout batch on the scenario's engines (vLLM-like continuous batching).

    rlsim rollout [SCENARIO.yaml] [--set dotted.key=value ...] [--mode fast|exact] [--seed N] [--trace out.json]
                  [--requests-out FILE.csv|.parquet] [--intervals-out FILE.csv|.parquet] [--json]

The default scenario is workloads/scenarios/default.yaml. --json prints one object (rollout_s, tokens_per_s,
tokens_per_s_per_gpu, num_sequences, generated_tokens, mean_acceptance_length, ...). Output files are written
only after the simulation succeeded.
"""
from __future__ import annotations

import json

from simulator.cli.options import add_set_option, seed_arg
from simulator.errors import RlsimError


def register(sub) -> None:
    p = sub.add_parser("rollout", help="simulate one rollout batch (generation time, tokens/s, the tail)",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("scenario", nargs="?", help="scenario YAML (default: workloads/scenarios/default.yaml)")
    add_set_option(p, "override a scenario key, e.g. --set rollout.prompts=128 engine.max_num_seqs=256")
    p.add_argument("--mode", default="fast", help="fast (default) or exact (one event per engine iteration)")
    p.add_argument("--seed", type=seed_arg, help="random seed (default: the scenario's)")
    p.add_argument("--trace", metavar="OUT.json", help="write a Chrome/Perfetto trace of the engines' timelines")
    p.add_argument("--requests-out", metavar="FILE", help="per-request table (.csv or .parquet)")
    p.add_argument("--intervals-out", metavar="FILE", help="per-interval table (.csv or .parquet)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args) -> int:
    from simulator.rollout.results import check_table_path, chrome_trace, write_table, write_trace
    from simulator.rollout.sim import MODES, RolloutSimulator
    from simulator.scenario import default_scenario_path, load_scenario

    if args.mode not in MODES:
        raise RlsimError(f"unknown mode {args.mode!r} ({', '.join(MODES)})", "--mode")
    if args.requests_out:
        check_table_path(args.requests_out, "--requests-out")
    if args.intervals_out:
        check_table_path(args.intervals_out, "--intervals-out")
    if args.trace and not str(args.trace).lower().endswith(".json"):
        raise RlsimError("the trace is JSON: give a .json file", "--trace")
    path = args.scenario or default_scenario_path()
    scenario = load_scenario(path, args.sets)
    sim = RolloutSimulator(scenario)
    res = sim.run(mode=args.mode, seed=args.seed)
    # everything computed: now write
    if args.requests_out:
        write_table(res.requests, args.requests_out)
    if args.intervals_out:
        write_table(res.intervals, args.intervals_out)
    if args.trace:
        write_trace(chrome_trace(res.intervals, scenario.name), args.trace)
    out = res.summary()
    out["scenario"] = str(path)
    if args.json:
        print(json.dumps(out))
        return 0
    _print_text(sim, res, out)
    return 0


def _print_text(sim, res, out) -> None:
    sc = sim.scenario
    e = sc.engine
    sp = sc.speculative
    print(f"{sc.name} ({res.mode} mode, seed {res.seed}): {sim.model.name} on {res.gpus} x {sim.hw.name}, "
          f"{res.engines} engines x {res.gpus_per_engine} GPU (tp {e.tensor_parallel_size}, "
          f"ep {e.expert_parallel_size}, pp {e.pipeline_parallel_size}), routing {e.routing}")
    print(f"batch: {res.num_sequences} sequences ({sc.rollout.prompts} prompts x {sc.rollout.samples_per_prompt}), "
          f"{100 * res.truncated_fraction:.1f}% truncated at {sc.rollout.max_response_tokens} tokens; "
          f"{res.generated_tokens:,} tokens generated")
    print(f"rollout: {res.rollout_s:.2f} s; {res.tokens_per_s:,.0f} tokens/s ({res.tokens_per_s_per_gpu:,.0f} "
          f"tokens/s/GPU)")
    busy = res.engine_busy_s
    print(f"engines: busy {busy.min():.2f} / {busy.mean():.2f} / {busy.max():.2f} s (min / mean / max); KV cache "
          f"{res.kv_blocks_per_engine * res.block_size:,} tokens each; up to {res.max_num_seqs} running; "
          f"{res.preemptions} preemptions")
    share = 100 * res.tail_s / res.rollout_s if res.rollout_s > 0 else 0.0
    print(f"tail: {res.tail_s:.2f} s ({share:.0f}% of the rollout) after 90% of the sequences had finished")
    if sp.method == "none":
        print("speculation: none")
    else:
        k = "dynamic k" if sp.dynamic_k else f"k={sp.num_tokens}"
        print(f"speculation: {sp.method}, {k}; mean acceptance length {res.mean_acceptance_length:.2f}")
    if res.carried.size:
        print(f"partial rollout: {res.completed_sequences} sequences completed, {res.carried.size} carried to the "
              "next step")
    for note in res.notes:
        print(f"note: {note}")
    print(f"simulated {res.iterations:,} iterations in {res.events:,} events, {res.wall_s:.2f} s")
