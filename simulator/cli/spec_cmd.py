"""`rlsim spec`: draft and verify costs, tokens/s per sequence and speedup per (batch, k), and the goodput-optimal k.

    rlsim spec --hardware h200 --model llama-3.1-8b --draft eagle3 --profile P --batch 1 8 32 128 --context 2048
               [--k 0 1 2 3 4 5 6 7] [--json]
"""
from __future__ import annotations

import json

from simulator.cli.options import COST_MODEL_OPTIONS, option_names
from simulator.errors import RlsimError, check_at_least


def register(sub) -> None:
    p = sub.add_parser("spec", help="speculative-decoding step costs and speedup by batch size and k",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("--hardware", required=True)
    p.add_argument("--model", required=True, help="target model")
    p.add_argument("--draft", required=True, help="none, eagle3, eagle, mtp, draft_model, ngram or tree")
    p.add_argument("--draft-model", help="draft model or head (default: the catalogue head for the target)")
    p.add_argument("--draft-tp", type=int, default=1, help="tensor parallelism of a draft_model")
    p.add_argument("--profile", help="acceptance profile YAML (rlsim fit acceptance)")
    p.add_argument("--acceptance-length", type=float,
                   help="instead of --profile: a mean acceptance length at --acceptance-k (i.i.d. alpha)")
    p.add_argument("--acceptance-k", type=int, default=3)
    p.add_argument("--batch", type=int, nargs="+", required=True)
    p.add_argument("--context", type=int, required=True, help="tokens already in each sequence's KV cache")
    p.add_argument("--k", type=int, nargs="+", default=list(range(8)))
    p.add_argument("--tp", type=int, default=1)
    p.add_argument("--ep", type=int, default=1)
    p.add_argument("--dtype", default="bf16")
    p.add_argument("--tree-tokens", type=int, default=0)
    p.add_argument("--tree-depth", type=int, default=0)
    p.add_argument("--tree-width", type=int, default=0)
    p.add_argument("--iteration-overhead", type=float, default=0.0,
                   help="framework seconds per speculative iteration beyond the kernels (rlsim fit spec-overhead)")
    p.add_argument("--draft-step-overhead", type=float, default=0.0,
                   help="framework seconds per GPU draft step beyond the kernels (rlsim fit spec-overhead)")
    p.add_argument("--rl-step", type=int, default=0, help="RL step for the profile's acceptance drift")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def load_acceptance(profile: str | None, acceptance_length: float | None, k: int, method: str, rl_step: int = 0):
    """A ChainAcceptance from a profile file, or from a bare mean acceptance length at k (i.i.d.)."""
    from simulator.specdec.acceptance import AcceptanceProfile, ChainAcceptance, Source, profile_from_mean_length
    if profile and acceptance_length is not None:
        raise RlsimError("give --profile or --acceptance-length, not both", "--acceptance-length")
    if profile:
        return AcceptanceProfile.load(profile).model(rl_step=rl_step)
    if acceptance_length is not None:
        if acceptance_length < 1 or acceptance_length > k + 1:
            raise RlsimError(f"must be within [1, k+1] = [1, {k + 1}] (got {acceptance_length})",
                             "--acceptance-length")
        prof = profile_from_mean_length(acceptance_length, k, method=method if method != "none" else "unknown",
                                        source=Source(format="cli", detail="--acceptance-length on the command line"))
        return prof.model(rl_step=rl_step)
    if method == "none":
        return ChainAcceptance.iid(0.0)
    raise RlsimError("is required (or --acceptance-length)", "--profile")


def run(args) -> int:
    with option_names({**COST_MODEL_OPTIONS, "speculative.method": "--draft"}):
        return _run(args)


def _run(args) -> int:
    import numpy as np
    from simulator.costmodel.step import StepCostModel
    from simulator.specdec.acceptance import check_k
    from simulator.specdec.costs import DraftConfig, SpecDecodeCost, goodput_optimal_k
    ks = [check_k(k, "--k") for k in args.k]
    if args.draft == "tree":  # a tree's shape fixes its proposals: its acceptance is read at its depth, as in runs
        ks = [check_k(max(args.tree_depth, 1), "--tree-depth")]
    for b in args.batch:
        check_at_least(b, 1, "--batch")
    for least, option in ((1, "--context"), (1, "--draft-tp"), (1, "--acceptance-k"), (0, "--tree-tokens"),
                          (0, "--tree-depth"), (0, "--tree-width"), (0, "--iteration-overhead"),
                          (0, "--draft-step-overhead")):
        check_at_least(getattr(args, option[2:].replace("-", "_")), least, option)
    target = StepCostModel(args.hardware, args.model, tp=args.tp, ep=args.ep, dtype=args.dtype, all_reduce="vllm")
    # the draft first: SpecDecodeCost checks the method (an unknown one names --draft) before the acceptance model
    spec = SpecDecodeCost(target, DraftConfig(method=args.draft, draft_model=args.draft_model,
                                              draft_tp=args.draft_tp, tree_tokens=args.tree_tokens,
                                              tree_depth=args.tree_depth, tree_width=args.tree_width,
                                              iteration_overhead_s=args.iteration_overhead,
                                              draft_step_overhead_s=args.draft_step_overhead))
    acc = load_acceptance(args.profile, args.acceptance_length, args.acceptance_k, args.draft, args.rl_step)
    taus = {k: float(acc.tau(k)) for k in ks}
    if args.draft == "none":
        taus = {k: 1.0 for k in ks}
    rows, optimal = [], {}
    for b in args.batch:
        cached = np.full(b, args.context, dtype=np.int64)
        ar = spec.target.step_time(np.ones(b, dtype=np.int64), cached + 1)
        for k in ks:
            it = spec.iteration(cached, k, accepted=taus[k] if k else None)
            tps = taus[k] / it.time_s
            rows.append({"batch": b, "k": k, "acceptance_length": taus[k],
                         "extrapolated": bool(k and acc.extrapolated(k)),
                         "draft_ms": it.draft_s * 1e3, "verify_ms": it.verify_s * 1e3,
                         "sampling_ms": it.sampling_s * 1e3, "overhead_ms": it.overhead_s * 1e3,
                         "step_ms": it.time_s * 1e3,
                         "tokens_per_s_per_seq": tps, "speedup": tps * ar})
        best, _ = goodput_optimal_k(spec, taus, cached)
        optimal[str(b)] = best
    out = {"hardware": spec.target.hw.name, "model": spec.target.model.name, "draft": args.draft,
           "draft_model": spec.draft_first.model.name if spec.draft_first else None, "context": args.context,
           "rows": rows, "optimal_k": optimal}
    if args.json:
        print(json.dumps(out))
        return 0
    print(f"{out['model']} on {out['hardware']}, draft {args.draft}"
          + (f" ({out['draft_model']})" if out["draft_model"] else "") + f", context {args.context}")
    print(f"{'batch':>6} {'k':>3} {'tau':>6} {'draft ms':>9} {'verify ms':>10} {'step ms':>9} {'tok/s/seq':>10} "
          f"{'speedup':>8}")
    for r in rows:
        flag = "*" if r["extrapolated"] else " "
        print(f"{r['batch']:>6} {r['k']:>3} {r['acceptance_length']:>5.2f}{flag} {r['draft_ms']:>9.3f} "
              f"{r['verify_ms']:>10.3f} {r['step_ms']:>9.3f} {r['tokens_per_s_per_seq']:>10.1f} {r['speedup']:>7.2f}x")
    print("goodput-optimal k: " + ", ".join(f"batch {b}: k={k}" for b, k in optimal.items()))
    slower = [str(b) for b in optimal if max(r["speedup"] for r in rows if r["batch"] == int(b)) < 1.0]
    if slower:
        print(f"  (at batch {', '.join(slower)} every k listed is slower than no speculation)")
    if any(r["extrapolated"] for r in rows):
        print("* acceptance length extrapolated beyond the k the profile was measured at")
    return 0
