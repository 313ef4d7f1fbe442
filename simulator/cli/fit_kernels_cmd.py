"""`rlsim fit kernels`: fit a hardware profile's efficiency curves from kernel measurements and traces."""
from __future__ import annotations

import glob
import os

from simulator.errors import RlsimError, impossible_fit

HELP = """Measurement files: kernel CSVs (gemm: op,m,n,k,us; attention: batch,q_len,ctx,hq,hkv,d,us; moe:
tokens,experts,topk,hidden,inter,us[,impl]; training MoE: shape,tokens,experts,topk,hidden,inter,pass,us with pass
fwd, fwd_bwd or fwd_permute; elementwise: op,rows,width,us; graph: n_kernels,us), Vidur operator
and NCCL tables, device.json, and PyTorch/vLLM profiler chrome traces (.json, .json.gz). Directories are read
whole. Whole-model step tables are recognised and left out of the fit (they validate it)."""


def register(sub) -> None:
    p = sub.add_parser("kernels", help="fit a calibrated hardware profile from kernel measurements",
                       description=HELP)
    p.add_argument("files", nargs="*", metavar="FILE", help="measurement files or directories")
    p.add_argument("--base", required=True, help="base profile with the datasheet numbers (name or YAML path)")
    p.add_argument("--like", help="a calibrated profile whose curves fill in what the measurements lack")
    p.add_argument("--out", required=True, help="where to write the calibrated profile (YAML)")
    p.add_argument("--attention-backend", default="packed", help="backend of attention tables not named in the file")
    p.add_argument("--trace-model", help="model of the chrome traces (default: from the file name)")
    p.add_argument("--trace-batch", type=int)
    p.add_argument("--trace-context", type=int)
    p.add_argument("--trace-q-len", type=int)
    p.add_argument("--no-cv", action="store_true", help="skip the cross-validation report")
    p.add_argument("--report", help="also write the fit report as CSV")
    p.set_defaults(func=run)


def _expand(files: list[str]) -> list[str]:
    out = []
    for f in files:
        if os.path.isdir(f):
            out += sorted(x for x in glob.glob(os.path.join(f, "*"))
                          if x.endswith((".csv", ".json", ".json.gz")) and os.path.isfile(x))
        else:
            out.append(f)
    return out


def _load_base(spec: str):
    from simulator.hardware import HardwareProfile, load_hardware
    from simulator.paths import hardware_dir
    if spec.endswith((".yaml", ".yml")):
        return HardwareProfile.load(spec)
    cand = hardware_dir() / "base" / f"{spec.lower()}.yaml"
    if cand.is_file():
        return HardwareProfile.load(cand)
    return load_hardware(spec, field="--base")


def run(args) -> int:
    from pydantic import ValidationError

    from simulator.fit.kernels import fit_profile, missing_parts
    from simulator.fit.measurements import Measurements, read_file
    base = _load_base(args.base)
    like = None
    if args.like:  # a calibrated profile: a YAML path or a catalogue name (not a base datasheet profile)
        from simulator.hardware import load_hardware
        like = load_hardware(args.like, field="--like")
    files = _expand(args.files)
    if not files and like is None:
        raise RlsimError("no measurement files and no --like profile: nothing to fit", "FILE")
    shape = {"model": args.trace_model, "batch": args.trace_batch, "context": args.trace_context,
             "q_len": args.trace_q_len}
    m = Measurements()
    for f in files:
        read_file(f, m, args.attention_backend, shape)
    try:
        prof, rep = fit_profile(base, m, like, cross_validation=not args.no_cv)
    except ValidationError as e:
        raise impossible_fit(e) from None
    missing = missing_parts(prof)
    if missing:  # a profile the step model cannot use: say what to add instead of writing it
        raise RlsimError(f"the measurements fit no {', '.join(missing)}, which every run needs: add measurements of "
                         f"them or take them from a calibrated profile (e.g. --like hardware_profiles/h200.yaml)",
                         "--like" if like is None else "FILE")
    header = (f"Calibrated by: rlsim fit kernels --base {args.base}"
              + (f" --like {args.like}" if args.like else "") + (" " + " ".join(args.files) if args.files else "")
              + f" --out {args.out}\nDo not edit by hand: re-run the command above (see README, 'Calibration').")
    prof.save(args.out, header=header)
    tab = rep.table()
    if not tab.empty:
        print(tab.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    for n in rep.notes:
        print(n)
    if args.report:
        from simulator.yamlio import write_text_atomic
        write_text_atomic(args.report, tab.to_csv(index=False))
    print(f"wrote {args.out}")
    return 0
