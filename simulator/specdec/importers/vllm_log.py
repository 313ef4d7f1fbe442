"""`vllm-log`: `SpecDecoding metrics:` lines of a vLLM log (current and older format).

Current: `SpecDecoding metrics: Mean acceptance length: 2.61, Accepted throughput: ... tokens/s,
Drafted throughput: ... tokens/s, Accepted: 1234 tokens, Drafted: 2050 tokens, Per-position
acceptance rate: 0.730, 0.521, 0.354, Avg Draft acceptance rate: 60.2%`.
Older (about v0.9): `SpecDecoding metrics: Draft acceptance rate: 38.8%, Mean acceptance length: 2.16,
Accepted: 150 tokens, Drafted: 387 tokens, Per-position acceptance rate: 0.543, 0.357, 0.264`.

Neither prints a draft count: each line's drafts = Drafted tokens / k, k = number of per-position
rates (or --k where a line has none). Lines are aggregated weighting by drafts: u_i = sum(rate_i *
drafts) / sum(drafts); the mean acceptance length is 1 + sum(Accepted) / sum(drafts). Lines with no
drafted tokens (idle intervals) carry no weight.
"""
from __future__ import annotations

import re

from simulator.errors import RlsimError
from simulator.specdec.importers.common import Measurement, check_rate, number, read_text, resolve_k, sha256_of

FORMAT = "vllm-log"
MARKER = "SpecDecoding metrics:"
_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_FIELDS = {
    "accepted": re.compile(rf"\bAccepted:\s*({_NUM})\s*tokens"),
    "drafted": re.compile(rf"\bDrafted:\s*({_NUM})\s*tokens"),
    "mean": re.compile(rf"Mean acceptance length:\s*({_NUM})"),
}
_PER_POS_KEY = "Per-position acceptance rate:"


def _rates(body: str, where: str) -> list[float]:
    """The comma-separated numbers after the per-position key, up to the next `Name: value` field."""
    rates: list[float] = []
    for part in body.split(_PER_POS_KEY, 1)[1].split(","):
        s = part.strip()
        if re.fullmatch(_NUM, s):
            rates.append(float(s))
        elif rates and (not s or (s[0].isalpha() and ":" in s)):
            break
        else:
            raise RlsimError(f"malformed per-position acceptance rate list (at {s[:20]!r})", where)
    return rates


def parse_line(line: str, where: str) -> dict:
    body = _ANSI.sub("", line.split(MARKER, 1)[1])
    out = {}
    for key, rx in _FIELDS.items():
        m = rx.search(body)
        out[key] = None if m is None else number(m.group(1), where, key)
    if out["accepted"] is None or out["drafted"] is None:
        raise RlsimError("SpecDecoding metrics line without 'Accepted: N tokens' and 'Drafted: N tokens'", where)
    rates = None
    if _PER_POS_KEY in body:
        rates = _rates(body, where)
        for i, r in enumerate(rates):
            check_rate(r, where, f"per-position rate at position {i}")
    out["rates"] = rates
    return out


def read(paths, *, proposer: str | None = None, k: int | None = None) -> Measurement:
    lines = []
    for path in paths:
        n = 0
        for lineno, raw in enumerate(read_text(path).splitlines(), 1):
            if MARKER in raw:
                lines.append((f"{path}:{lineno}", parse_line(raw, f"{path}:{lineno}")))
                n += 1
        if n == 0:
            raise RlsimError(f"no '{MARKER}' line in this log (speculative decoding off, or not a vLLM log?)",
                             str(path))
    with_rates = [(w, d) for w, d in lines if d["rates"] is not None]
    if with_rates and len(with_rates) != len(lines):
        w = next(w for w, d in lines if d["rates"] is None)
        raise RlsimError("this line has no per-position rates but others have", w)
    kk = None
    for w, d in with_rates:
        if kk is None:
            kk = len(d["rates"])
        elif len(d["rates"]) != kk:
            raise RlsimError(f"{len(d['rates'])} per-position rates, earlier lines had {kk}", w)
    where = str(paths[0]) if len(paths) == 1 else ", ".join(map(str, paths))
    kk = resolve_k(kk, k, where)
    drafts = accepted = 0.0
    counts = [0.0] * kk
    for w, d in lines:
        nd = d["drafted"] / kk
        if nd <= 0:
            continue
        drafts += nd
        accepted += d["accepted"]
        if d["rates"] is not None:
            for i, r in enumerate(d["rates"]):
                counts[i] += r * nd
    if drafts <= 0:
        raise RlsimError("no drafted tokens in any SpecDecoding metrics line", where)
    tau = 1.0 + accepted / drafts
    common = dict(format=FORMAT, files=tuple(map(str, paths)), k=kk, mean_acceptance_length=tau,
                  num_drafts=drafts, measured_tau=((kk, tau),), sha256=tuple(sha256_of(p) for p in paths))
    if with_rates:
        return Measurement(unconditional_rates=tuple(c / drafts for c in counts),
                           detail=f"{len(lines)} SpecDecoding metrics lines; per-position rates weighted by "
                                  f"drafts = Drafted tokens / k", **common)
    return Measurement(detail=f"{len(lines)} SpecDecoding metrics lines without per-position rates; mean "
                              "acceptance length 1 + sum(Accepted) / sum(Drafted / k): i.i.d.", **common)
