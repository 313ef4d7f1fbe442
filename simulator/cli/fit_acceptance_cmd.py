"""`rlsim fit acceptance --format F FILE... --out profile.yaml`: an acceptance profile from real
vLLM / NeMo-RL / SpecDecode-Bench outputs."""
from __future__ import annotations

from pathlib import Path

from simulator.errors import RlsimError


def register(sub) -> None:
    from simulator.specdec.acceptance import METHODS
    from simulator.specdec.importers import FORMATS

    p = sub.add_parser("acceptance", help="fit a speculative-decoding acceptance profile from measurements",
                       description=" ".join(__doc__.split()))
    p.add_argument("--format", required=True, choices=list(FORMATS), metavar="FORMAT",
                   help=f"input format: {', '.join(FORMATS)}")
    p.add_argument("files", nargs="+", metavar="FILE",
                   help="input files (vllm-metrics: one scrape, or two: before and after)")
    p.add_argument("--out", required=True, metavar="PROFILE.yaml", help="where to write the profile")
    p.add_argument("--proposer", choices=["eagle", "ngram"], default=None,
                   help="specdecode-bench: which trace column (acc_eagle or acc_ngram; default eagle); "
                        "other formats: the method recorded (eagle -> eagle3)")
    p.add_argument("--k", type=int, default=None, metavar="K",
                   help="specdecode-bench: fit positions 1..K (default 15); other formats: the number of "
                        "speculative tokens where the file does not say (must agree where it does)")
    p.add_argument("--method", choices=list(METHODS), default=None, help="draft method recorded in the profile")
    p.add_argument("--name", default=None, help="profile name (default: the output file's stem)")
    p.set_defaults(func=run)


def run(args) -> int:
    from simulator.specdec.importers import profile_from_measurement, read

    if args.k is not None and args.k < 0:
        raise RlsimError(f"must be >= 0 (got {args.k})", "--k")
    out = Path(args.out)
    if out.is_dir():
        raise RlsimError("is a directory", "--out")
    if any(Path(f).resolve() == out.resolve() for f in args.files):
        raise RlsimError("would overwrite an input file", "--out")
    m = read(args.format, args.files, proposer=args.proposer, k=args.k)
    method = args.method or (None if args.format == "specdecode-bench" or args.proposer is None
                             else {"eagle": "eagle3", "ngram": "ngram"}[args.proposer])
    prof = profile_from_measurement(m, method=method, name=args.name or out.stem)
    prof.save(out, header=f"acceptance profile fitted by `rlsim fit acceptance --format {args.format}`\n"
                          f"from: {', '.join(m.files)}")
    model = prof.model()
    ks = list(range(1, max(prof.k_measured, 7) + 1))
    taus = ", ".join(f"{k}:{t:.3f}" for k, t in zip(ks, model.taus(ks)))
    kind = "per-position" if m.unconditional_rates is not None else "i.i.d."
    print(f"wrote {out}: {prof.method}, {kind} rates measured at k={prof.k_measured}"
          + (f" over {m.num_drafts:.0f} drafts" if m.num_drafts is not None else "")
          + f"; tau(k) {taus}")
    return 0
