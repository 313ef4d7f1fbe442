"""`rlsim fit collectives FILE... --profile P --out O`: fit a hardware profile's collective curves from NCCL timings.

Reads the tables of calibration/collectives/measure_nccl.py (collective,gpus,bytes,us[,mode]) and Vidur's network
tables, fits one curve per (link, collective): groups within one NVLink domain go to scale_up, larger ones (and
Vidur's groups spread over nodes) to scale_out. Only `efficiency.collectives` of the profile changes (and a line of
its derivation); curves of (link, collective) pairs without measurements are kept.
"""
from __future__ import annotations

from pathlib import Path

from simulator.errors import RlsimError, impossible_fit

TAG = "Collectives fitted by `rlsim fit collectives`"
HEADER_TAG = "Then: rlsim fit collectives"


def register(sub) -> None:
    p = sub.add_parser("collectives", help="fit a hardware profile's collective curves from NCCL timings",
                       description=" ".join(__doc__.split()))
    p.add_argument("files", nargs="+", metavar="FILE",
                   help="collectives tables (.csv: collective,gpus,bytes,us[,mode]; Vidur network tables) or "
                        "directories of them; nccl_device.json beside a table is read as its metadata")
    p.add_argument("--profile", required=True, help="the hardware profile to update (name or YAML path)")
    p.add_argument("--out", required=True, help="where to write the updated profile (YAML; may be the same file)")
    p.add_argument("--report", help="also write the per-op, per-group error table as CSV")
    p.add_argument("--min-rows", type=int, default=6, help="rows needed to fit one (link, collective) (default 6)")
    p.set_defaults(func=run)


def _profile_path(spec: str) -> Path:
    from simulator.hardware import load_hardware
    from simulator.paths import hardware_dir
    p = Path(spec)
    if spec.endswith((".yaml", ".yml")):
        if not p.is_file():
            raise RlsimError("no such file", "--profile")
        return p
    name = load_hardware(spec, field="--profile").name
    for f in sorted(hardware_dir().glob("*.yaml")):
        from simulator.yamlio import read_yaml
        if read_yaml(f).get("name") == name:
            return f
    raise RlsimError(f"no profile file for {spec!r}", "--profile")


def _header(path: Path) -> list[str]:
    lines = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        lines.append(line[1:].strip() if line.startswith("# ") or line == "#" else line[1:])
    return lines


def run(args) -> int:
    from pydantic import ValidationError

    from simulator.fit.fit_collectives import describe, fit_collectives, format_errors, read_tables
    from simulator.hardware import HardwareProfile

    if args.min_rows < 3:
        raise RlsimError(f"must be >= 3 (got {args.min_rows})", "--min-rows")
    src = _profile_path(args.profile)
    out = Path(args.out)
    if out.is_dir():
        raise RlsimError("is a directory", "--out")
    rows, meta, files = read_tables(args.files)
    if any(Path(f).resolve() == out.resolve() for f in files):
        raise RlsimError("would overwrite an input file", "--out")
    prof = HardwareProfile.load(src)
    try:
        fit = fit_collectives(rows, prof, min_rows=args.min_rows)
    except ValidationError as e:
        raise impossible_fit(e) from None
    if not fit.curves:
        most = int(rows.groupby("collective").size().max()) if not rows.empty else 0
        raise RlsimError(f"nothing to fit: no collective has {args.min_rows} rows over 3 sizes on one link (the most "
                         f"is {most}); see --min-rows", "FILE")

    eff = prof.efficiency.model_copy(deep=True)
    for (link, op), c in fit.curves.items():
        eff.collectives.setdefault(link, {})[op] = c
    names = ", ".join(sorted({Path(f).as_posix() for f in files}))
    devices = sorted({str(m.get("gpu_names", [m.get("name", "?")])[0]) for m in meta}) if meta else []
    line = (f"{TAG} from: {names}" + (f" (measured on {', '.join(devices)})" if devices else "") + "; "
            + "; ".join(f"{link}.{op}" for link, op in sorted(fit.curves)) + ".")
    # a re-run on the same files replaces its own line; fits from other files (and their curves) stay
    kept = [ln for ln in prof.derivation.splitlines() if not ln.startswith(f"{TAG} from: {names}")]
    while kept and not kept[-1].strip():
        kept.pop()
    new = prof.model_copy(update={"efficiency": eff, "derivation": "\n".join(kept + [line])})

    header = [h for h in _header(src) if not h.startswith(f"{HEADER_TAG} {' '.join(args.files)} --profile")]
    cmd = (f"{HEADER_TAG} {' '.join(args.files)} --profile {args.profile} --out {args.out}"
           + ("" if args.min_rows == 6 else f" --min-rows {args.min_rows}") + " (updates efficiency.collectives)")
    new.save(out, header="\n".join(header + [cmd]))

    tab = fit.errors()
    print("fit error (predicted / measured - 1), per link, collective and group size:")
    print(format_errors(tab))
    for (link, op), c in sorted(fit.curves.items()):
        fl = fit.floors.get((link, op))
        print(f"{link} {op}: {describe(c)}" + (f"; eager floor {fl * 1e6:.1f} us" if fl else ""))
    for n in fit.notes:
        print(f"note: {n}")
    if args.report:
        from simulator.yamlio import write_text_atomic
        write_text_atomic(args.report, tab.to_csv(index=False))
    print(f"wrote {out}")
    return 0
