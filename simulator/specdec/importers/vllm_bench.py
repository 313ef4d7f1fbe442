"""`vllm-bench`: the result JSON of `vllm bench serve --save-result` with `spec_decode_*` keys.

Keys: spec_decode_num_drafts, spec_decode_draft_tokens, spec_decode_accepted_tokens,
spec_decode_acceptance_length, spec_decode_acceptance_rate (percent),
spec_decode_per_position_acceptance_rates (unconditional: accepted at position / drafts).
Several files are aggregated weighting by spec_decode_num_drafts.
"""
from __future__ import annotations

from simulator.errors import RlsimError
from simulator.specdec.importers.common import (
    Measurement, check_rate, k_from_draft_tokens, load_json, number, resolve_k, sha256_of)

FORMAT = "vllm-bench"
PREFIX = "spec_decode_"


def parse_result(path: str, k_given: int | None) -> dict:
    data = load_json(path, FORMAT)
    if not isinstance(data, dict):
        raise RlsimError(f"expected a JSON object (a {FORMAT} result)", str(path))
    if not any(key.startswith(PREFIX) for key in data):
        raise RlsimError("no spec_decode_* keys (speculative decoding off, or not a `vllm bench serve` "
                         "result?)", str(path))
    where = str(path)

    def get(name, nonneg=True):
        v = data.get(PREFIX + name)
        return None if v is None else number(v, where, PREFIX + name, nonneg=nonneg)

    drafts, draft_tokens = get("num_drafts"), get("draft_tokens")
    accepted, tau = get("accepted_tokens"), get("acceptance_length")
    rates = data.get(PREFIX + "per_position_acceptance_rates") or None
    if rates is not None:
        if not isinstance(rates, list):
            raise RlsimError(f"{PREFIX}per_position_acceptance_rates must be a list", where)
        rates = [check_rate(number(r, where, "per-position rate", nonneg=False), where,
                            f"per-position rate at position {i}") for i, r in enumerate(rates)]
    found_k = len(rates) if rates else (
        k_from_draft_tokens(draft_tokens, drafts, where) if drafts and draft_tokens is not None else None)
    k = resolve_k(found_k, k_given, where)
    if drafts is not None and drafts <= 0:
        raise RlsimError("spec_decode_num_drafts is 0 (nothing was drafted)", where)
    if tau is None and accepted is not None and drafts:
        tau = 1.0 + accepted / drafts
    if rates is None and tau is None:
        raise RlsimError("neither per-position rates nor an acceptance length", where)
    return {"k": k, "rates": rates, "tau": tau, "drafts": drafts}


def read(paths, *, proposer: str | None = None, k: int | None = None) -> Measurement:
    results = [(str(p), parse_result(p, k)) for p in paths]
    kk = results[0][1]["k"]
    for p, r in results[1:]:
        if r["k"] != kk:
            raise RlsimError(f"k={r['k']} but {results[0][0]} has k={kk}", p)
    if len(results) > 1 and any(r["drafts"] is None for _, r in results):
        p = next(p for p, r in results if r["drafts"] is None)
        raise RlsimError("no spec_decode_num_drafts to weight several files by", p)
    has_rates = [r["rates"] is not None for _, r in results]
    if any(has_rates) and not all(has_rates):
        p = next(p for p, r in results if r["rates"] is None)
        raise RlsimError("no per-position rates but the other files have them", p)
    w = [r["drafts"] if r["drafts"] is not None else 1.0 for _, r in results]
    W = sum(w)
    taus = [r["tau"] for _, r in results]
    tau = None if any(t is None for t in taus) else sum(t * x for t, x in zip(taus, w)) / W
    drafts = None if any(r["drafts"] is None for _, r in results) else W
    common = dict(format=FORMAT, files=tuple(p for p, _ in results), k=kk, mean_acceptance_length=tau,
                  num_drafts=drafts, measured_tau=None if tau is None else ((kk, tau),),
                  sha256=tuple(sha256_of(p) for p, _ in results))
    if all(has_rates):
        u = tuple(sum(r["rates"][i] * x for (_, r), x in zip(results, w)) / W for i in range(kk))
        return Measurement(unconditional_rates=u, detail="spec_decode_per_position_acceptance_rates"
                           + (" weighted by spec_decode_num_drafts" if len(results) > 1 else ""), **common)
    return Measurement(detail="spec_decode_acceptance_length only (no per-position rates): i.i.d.", **common)
