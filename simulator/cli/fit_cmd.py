"""`rlsim fit WHAT ...`: fit profiles from measurements (kernels, acceptance, collectives, spec-overhead).

Each kind of fit lives in its own module `simulator.cli.fit_<what>_cmd` with `register(subparsers)`.
"""
from __future__ import annotations

import importlib

FITS = {"kernels": "fit_kernels_cmd", "acceptance": "fit_acceptance_cmd", "collectives": "fit_collectives_cmd",
        "spec-overhead": "fit_spec_overhead_cmd"}


def register(sub) -> None:
    p = sub.add_parser("fit", help="fit a hardware, acceptance or collectives profile from measurements")
    fsub = p.add_subparsers(dest="what", metavar="WHAT", parser_class=type(p))
    for name, modname in FITS.items():
        try:
            mod = importlib.import_module(f"simulator.cli.{modname}")
        except ModuleNotFoundError as e:
            if e.name == f"simulator.cli.{modname}":
                continue
            raise
        mod.register(fsub)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])
