"""`rlsim accept --profile P --k 1 3 5 7 [--json]`: expected acceptance length (tokens per verify
step, bonus token included) of an acceptance profile at each k."""
from __future__ import annotations

import json

from simulator.errors import RlsimError


def register(sub) -> None:
    p = sub.add_parser("accept", help="expected acceptance length per k of an acceptance profile",
                       description=" ".join(__doc__.split()))
    p.add_argument("--profile", required=True, metavar="PROFILE.yaml")
    p.add_argument("--k", required=True, nargs="+", type=int, metavar="K", help="draft lengths (>= 0)")
    p.add_argument("--rl-step", type=int, default=0, metavar="STEP",
                   help="RL step at which to evaluate (drift and online training of the profile)")
    p.add_argument("--json", action="store_true", help='print {"k": [...], "acceptance_length": [...], '
                                                      '"extrapolated": [...]}')
    p.set_defaults(func=run)


def run(args) -> int:
    from simulator.specdec.acceptance import AcceptanceProfile, expected_acceptance_length

    for k in args.k:
        if k < 0:
            raise RlsimError(f"must be >= 0 (got {k})", "--k")
    if args.rl_step < 0:
        raise RlsimError(f"must be >= 0 (got {args.rl_step})", "--rl-step")
    prof = AcceptanceProfile.load(args.profile)
    taus, extra = expected_acceptance_length(prof, args.k, rl_step=args.rl_step)
    if args.json:
        print(json.dumps({"k": list(args.k), "acceptance_length": [float(t) for t in taus],
                          "extrapolated": [bool(e) for e in extra]}))
        return 0
    name = prof.name or args.profile
    print(f"{name}: {prof.method}, rates measured at k={prof.k_measured}"
          + (f", RL step {args.rl_step}" if args.rl_step else ""))
    print(f"{'k':>4}  {'tau':>8}")
    for k, t, e in zip(args.k, taus, extra):
        note = (f"  extrapolated ({prof.extrapolation.model}, rate {prof.extrapolation.rate}, "
                f"decay {prof.extrapolation.decay} per position)") if e else ""
        print(f"{k:>4}  {t:8.4f}{note}")
    return 0
