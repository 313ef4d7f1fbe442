"""Importers of measured acceptance: one module per file format, each with
`read(paths, *, proposer=None, k=None) -> Measurement`; `FORMATS` is the registry."""
from __future__ import annotations

import importlib

from simulator.errors import RlsimError
from simulator.specdec.acceptance import (
    METHODS, AcceptanceProfile, Source, conditional_from_unconditional, profile_from_conditional,
    profile_from_mean_length)
from simulator.specdec.importers.common import Measurement

FORMATS = {
    "specdecode-bench": "specdecode_bench",
    "vllm-metrics": "vllm_metrics",
    "vllm-log": "vllm_log",
    "vllm-bench": "vllm_bench",
    "nemo-rl": "nemo_rl",
}


def read(fmt: str, paths, *, proposer: str | None = None, k: int | None = None) -> Measurement:
    """Read acceptance measurements from `paths` in format `fmt`."""
    if fmt not in FORMATS:
        raise RlsimError(f"unknown format {fmt!r}; one of {', '.join(FORMATS)}", "--format")
    if not paths:
        raise RlsimError("no input files", "FILE")
    if k is not None and k < 0:
        raise RlsimError(f"must be >= 0 (got {k})", "--k")
    mod = importlib.import_module(f"simulator.specdec.importers.{FORMATS[fmt]}")
    return mod.read([str(p) for p in paths], proposer=proposer, k=k)


def profile_from_measurement(m: Measurement, *, method: str | None = None, name: str | None = None) -> AcceptanceProfile:
    """The acceptance profile of a measurement: per-position rates where measured, else i.i.d.
    from the mean acceptance length at k."""
    method = method or m.method or "unknown"
    if method not in METHODS:
        raise RlsimError(f"must be one of {', '.join(METHODS)} (got {method!r})", "--method")
    src = Source(format=m.format, files=list(m.files), sha256=list(m.sha256) or None, detail=m.detail or None)
    where = ", ".join(m.files)
    if m.unconditional_rates is not None:
        c = conditional_from_unconditional(m.unconditional_rates, field=where)
        return profile_from_conditional(c, method=method, source=src, name=name, num_drafts=m.num_drafts,
                                        num_drafts_per_position=m.num_drafts_per_position,
                                        measured_tau=m.measured_tau)
    if m.mean_acceptance_length is None:
        raise RlsimError("neither per-position rates nor a mean acceptance length", where)
    if not 1.0 <= m.mean_acceptance_length <= m.k + 1:
        raise RlsimError(f"mean acceptance length {m.mean_acceptance_length:.4g} is outside [1, k+1] "
                         f"for k={m.k}", where)
    return profile_from_mean_length(m.mean_acceptance_length, m.k, method=method, source=src, name=name,
                                    num_drafts=m.num_drafts)


__all__ = ["FORMATS", "Measurement", "read", "profile_from_measurement"]
