"""`nemo-rl`: NeMo-RL per-step metrics with `vllm/spec_*` keys (JSON or JSONL).

Accepted layouts: JSONL (one object per step); a JSON list of step objects; a JSON object of step ->
object; a JSON object of metric -> list over steps; one step object. Nested objects are flattened
with '/', and a key matches with any prefix (`train/vllm/spec_num_drafts`). Per step:
`vllm/spec_num_drafts`, `vllm/spec_acceptance_rate-pos-{i}` (unconditional: accepted at position i /
drafts), `vllm/spec_num_accepted_tokens`, `vllm/spec_num_draft_tokens`, `vllm/spec_acceptance_length`.
Steps are aggregated weighting by `vllm/spec_num_drafts`; steps without drafts carry no weight.
"""
from __future__ import annotations

import json
import re

from simulator.errors import RlsimError
from simulator.specdec.importers.common import (
    Measurement, check_rate, k_from_draft_tokens, number, read_text, resolve_k, sha256_of)

FORMAT = "nemo-rl"
DRAFTS = "vllm/spec_num_drafts"
DRAFT_TOKENS = "vllm/spec_num_draft_tokens"
ACCEPTED = "vllm/spec_num_accepted_tokens"
LENGTH = "vllm/spec_acceptance_length"
_POS = re.compile(r"(?:^|/)vllm/spec_acceptance_rate-pos-(\d+)$")


def _flatten(obj, prefix="") -> dict:
    out = {}
    for key, v in obj.items():
        name = f"{prefix}/{key}" if prefix else str(key)
        if isinstance(v, dict):
            out.update(_flatten(v, name))
        else:
            out[name] = v
    return out


def _steps(path: str) -> list[tuple[str, dict]]:
    """(where, flat metrics) per step."""
    text = read_text(path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        data = None
        steps = []
        for lineno, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                raise RlsimError(f"neither JSON nor JSONL; is this a {FORMAT} metrics file?",
                                 f"{path}:{lineno}") from None
            if not isinstance(row, dict):
                raise RlsimError("expected a JSON object per line", f"{path}:{lineno}")
            steps.append((f"{path}:{lineno}", _flatten(row)))
        return steps
    if isinstance(data, list):
        if not all(isinstance(r, dict) for r in data):
            raise RlsimError("expected a list of per-step objects", str(path))
        return [(f"{path}[{i}]", _flatten(r)) for i, r in enumerate(data)]
    if not isinstance(data, dict):
        raise RlsimError(f"expected JSON objects of per-step metrics ({FORMAT})", str(path))
    if data and all(isinstance(v, dict) for v in data.values()):
        return [(f"{path}[{s}]", _flatten(v)) for s, v in data.items()]
    flat = _flatten(data)
    lists = {k: v for k, v in flat.items() if isinstance(v, list)}
    if lists and any(_match(k, DRAFTS) for k in lists):
        n = max(len(v) for v in lists.values())
        return [(f"{path}[step {i}]", {k: v[i] for k, v in lists.items() if i < len(v)}) for i in range(n)]
    return [(str(path), flat)]


def _match(key: str, name: str) -> bool:
    return key == name or key.endswith("/" + name)


def _get(step: dict, name: str, where: str):
    keys = [k for k in step if _match(k, name)]
    if not keys:
        return None
    if len(keys) > 1:
        raise RlsimError(f"several keys end in {name}: {', '.join(sorted(keys))}", where)
    v = step[keys[0]]
    return None if v is None else number(v, where, keys[0])


def read(paths, *, proposer: str | None = None, k: int | None = None) -> Measurement:
    steps = []
    for path in paths:
        mine = [(w, s) for w, s in _steps(path) if any("vllm/spec_" in key for key in s)]
        if not mine:
            raise RlsimError("no vllm/spec_* metrics (speculative decoding off, or not NeMo-RL step metrics?)",
                             str(path))
        steps += mine
    where = str(paths[0]) if len(paths) == 1 else ", ".join(map(str, paths))
    kk, drafts, tau_w = None, 0.0, 0.0
    counts: list[float] = []
    has_pos = None
    n_used = 0
    for w, s in steps:
        nd = _get(s, DRAFTS, w)
        if nd is None:
            raise RlsimError(f"no {DRAFTS} to weight this step by", w)
        pos = {}
        for key, v in s.items():
            m = _POS.search(key)
            if m and v is not None:
                pos[int(m.group(1))] = check_rate(number(v, w, key, nonneg=False), w, key)
        if nd <= 0:
            continue
        if has_pos is None:
            has_pos = bool(pos)
        elif has_pos != bool(pos):
            raise RlsimError("per-position rates present in some steps but not this one", w)
        if pos:
            k_step = max(pos) + 1
            if any(i not in pos for i in range(k_step)):
                raise RlsimError(f"spec_acceptance_rate-pos-{min(set(range(k_step)) - set(pos))} missing", w)
            if kk is None:
                kk, counts = k_step, [0.0] * k_step
            elif k_step != kk:
                raise RlsimError(f"{k_step} per-position rates, earlier steps had {kk}", w)
            for i in range(kk):
                counts[i] += pos[i] * nd
        else:
            dt = _get(s, DRAFT_TOKENS, w)
            k_step = k_from_draft_tokens(dt, nd, w) if dt is not None else None
            if k_step is not None:
                if kk is not None and k_step != kk:
                    raise RlsimError(f"k={k_step}, earlier steps had {kk}", w)
                kk = k_step
        acc = _get(s, ACCEPTED, w)
        length = _get(s, LENGTH, w)
        if acc is None and length is None and not pos:
            raise RlsimError(f"neither {ACCEPTED} nor {LENGTH} nor per-position rates", w)
        tau_step = length if length is not None else (1.0 + acc / nd if acc is not None else None)
        tau_w += (tau_step if tau_step is not None else 1.0 + sum(pos.values())) * nd
        drafts += nd
        n_used += 1
    if drafts <= 0:
        raise RlsimError(f"{DRAFTS} is 0 in every step", where)
    kk = resolve_k(kk, k, where)
    tau = tau_w / drafts
    common = dict(format=FORMAT, files=tuple(map(str, paths)), k=kk, mean_acceptance_length=tau,
                  num_drafts=drafts, measured_tau=((kk, tau),), sha256=tuple(sha256_of(p) for p in paths))
    if has_pos:
        return Measurement(unconditional_rates=tuple(c / drafts for c in counts),
                           detail=f"{n_used} RL steps; per-position rates weighted by {DRAFTS}", **common)
    return Measurement(detail=f"{n_used} RL steps without per-position rates; drafts-weighted "
                              f"{LENGTH}: i.i.d.", **common)
