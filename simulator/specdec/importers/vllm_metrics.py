"""`vllm-metrics`: Prometheus text scrapes of vLLM's `/metrics`.

One FILE: the counters as they stand (cumulative since start). Two FILEs: before and after; the
difference counts. Names are matched with `:` or `_` (LLM.get_metrics variant), with or without the
`_total` suffix; every label set (engines, models) is summed; per-position counters are split by the
`position` label. Counters used: spec_decode_num_drafts, spec_decode_num_draft_tokens,
spec_decode_num_accepted_tokens, spec_decode_num_accepted_tokens_per_pos{position="0".."k-1"}
(drafts whose accepted count was > position).
"""
from __future__ import annotations

import re
from collections import defaultdict

from simulator.errors import RlsimError
from simulator.specdec.importers.common import (
    Measurement, check_rate, k_from_draft_tokens, number, read_text, resolve_k, sha256_of)

FORMAT = "vllm-metrics"
DRAFTS, DRAFT_TOKENS, ACCEPTED, PER_POS = (
    "spec_decode_num_drafts", "spec_decode_num_draft_tokens", "spec_decode_num_accepted_tokens",
    "spec_decode_num_accepted_tokens_per_pos")
_NAMES = {DRAFTS, DRAFT_TOKENS, ACCEPTED, PER_POS}

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{(.*)\})?\s+(\S+)(\s+-?\d+(\.\d*)?)?\s*$")
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(,|$)')


def _labels(text: str, where: str) -> dict[str, str]:
    out, pos = {}, 0
    text = text.strip()
    while pos < len(text):
        m = _LABEL.match(text, pos)
        if not m:
            raise RlsimError("malformed label set; not Prometheus text exposition format", where)
        out[m.group(1)] = m.group(2)
        pos = m.end()
    return out


def _base_name(name: str) -> str | None:
    """`vllm:spec_decode_num_drafts_total` / `vllm_spec_decode_num_drafts` -> `spec_decode_num_drafts`."""
    n = name.replace(":", "_")
    if not n.startswith("vllm_"):
        return None
    n = n[len("vllm_"):]
    if n.endswith("_total"):
        n = n[: -len("_total")]
    return n if n in _NAMES else None


def parse_scrape(path: str) -> dict:
    """Spec-decode counters of one scrape, summed over label sets: {name: value}, per-pos {pos: value}."""
    totals: dict[str, float] = defaultdict(float)
    per_pos: dict[int, float] = defaultdict(float)
    n_samples = 0
    for lineno, raw in enumerate(read_text(path).splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{path}:{lineno}"
        m = _SAMPLE.match(line)
        if not m:
            raise RlsimError("not a Prometheus text exposition sample line (wrong format?)", where)
        n_samples += 1
        base = _base_name(m.group(1))
        if base is None:
            continue
        labels = _labels(m.group(3) or "", where)
        value = number(m.group(4), where, m.group(1))
        if base == PER_POS:
            if "position" not in labels or not labels["position"].isdigit():
                raise RlsimError(f"{m.group(1)} without an integer position label", where)
            per_pos[int(labels["position"])] += value
        else:
            totals[base] += value
    if n_samples == 0:
        raise RlsimError("no metric samples (not a Prometheus /metrics scrape?)", str(path))
    if not totals and not per_pos:
        raise RlsimError("no speculative-decoding counters (vllm:spec_decode_*) in this scrape", str(path))
    return {"totals": dict(totals), "per_pos": dict(per_pos)}


def read(paths, *, proposer: str | None = None, k: int | None = None) -> Measurement:
    if len(paths) > 2:
        raise RlsimError(f"give one scrape, or two (before, after); got {len(paths)} files", "FILE")
    scrapes = [parse_scrape(p) for p in paths]
    where = str(paths[-1])
    if len(scrapes) == 2:
        a, b = scrapes
        totals = {n: b["totals"].get(n, 0.0) - a["totals"].get(n, 0.0) for n in set(a["totals"]) | set(b["totals"])}
        per_pos = {i: b["per_pos"].get(i, 0.0) - a["per_pos"].get(i, 0.0) for i in set(a["per_pos"]) | set(b["per_pos"])}
        neg = [n for n, v in list(totals.items()) + [(f"{PER_POS}[{i}]", v) for i, v in per_pos.items()] if v < 0]
        if neg:
            raise RlsimError(f"counter {neg[0]} went down between {paths[0]} and {paths[1]} (server restart, "
                             "or scrapes not in order before, after?)", where)
        where = f"{paths[1]} - {paths[0]}"
    else:
        totals, per_pos = scrapes[0]["totals"], scrapes[0]["per_pos"]
    drafts = totals.get(DRAFTS)
    if drafts is None:
        if DRAFT_TOKENS in totals and k is not None:
            drafts = totals[DRAFT_TOKENS] / k
        else:
            raise RlsimError(f"no vllm:{DRAFTS} counter (vLLM v0 metrics? give --k to derive drafts)", where)
    if drafts <= 0:
        raise RlsimError("no drafts counted (was speculative decoding on?)", where)
    accepted = totals.get(ACCEPTED)
    tau = None if accepted is None else 1.0 + accepted / drafts
    if per_pos:
        kk = max(per_pos) + 1
        missing = [i for i in range(kk) if i not in per_pos]
        if missing:
            raise RlsimError(f"per-position counter missing for position {missing[0]}", where)
        kk = resolve_k(kk, k, where)
        u = tuple(check_rate(per_pos[i] / drafts, where, f"per-position rate at position {i}") for i in range(kk))
        return Measurement(format=FORMAT, files=tuple(map(str, paths)), k=kk, unconditional_rates=u,
                           mean_acceptance_length=tau, num_drafts=drafts,
                           measured_tau=None if tau is None else ((kk, tau),),
                           detail=_detail(paths, "per-position counters / num_drafts"),
                           sha256=tuple(sha256_of(p) for p in paths))
    if tau is None:
        raise RlsimError(f"no per-position counters and no vllm:{ACCEPTED} counter", where)
    kk = resolve_k(k_from_draft_tokens(totals[DRAFT_TOKENS], drafts, where) if DRAFT_TOKENS in totals else None,
                   k, where)
    return Measurement(format=FORMAT, files=tuple(map(str, paths)), k=kk, mean_acceptance_length=tau,
                       num_drafts=drafts, measured_tau=((kk, tau),),
                       detail=_detail(paths, "mean acceptance length 1 + accepted / drafts (no per-position "
                                             "counters): i.i.d."),
                       sha256=tuple(sha256_of(p) for p in paths))


def _detail(paths, what: str) -> str:
    how = "difference of two scrapes (after - before)" if len(paths) == 2 else "one scrape (cumulative)"
    return f"{how}, summed over all label sets (engines); {what}"
