"""`specdecode-bench`: per-token acceptance traces (JSONL, one request per line, SpecDecode-Bench).

Each line: {"id", "prompt_token_ids", "generated_token_ids", "acc_eagle": {"acc_len": [...]},
"acc_ngram": {"acc_len": [...]}}; acc_len[p] = tokens (bonus included) a verify step starting at
output position p emits with an unbounded draft. The sequence length is len(acc_len).

Fit: exact replays of every request at k = 1..K (default K = 15); the effective unconditional rates
are the marginal gains u_i = tau_replay(i) - tau_replay(i-1) (see
`simulator.specdec.acceptance.unconditional_from_replay` for why, and what was measured).
"""
from __future__ import annotations

import json

import numpy as np

from simulator.errors import RlsimError
from simulator.specdec.acceptance import ReplayTraces, unconditional_from_replay
from simulator.specdec.importers.common import Measurement, read_text, sha256_of

FORMAT = "specdecode-bench"
PROPOSERS = {"eagle": ("acc_eagle", "eagle3"), "ngram": ("acc_ngram", "ngram")}
DEFAULT_PROPOSER = "eagle"
DEFAULT_K = 15


def read_traces(paths, proposer: str = DEFAULT_PROPOSER) -> list[np.ndarray]:
    """The acc_len array of every request in `paths` for `proposer` ('eagle' or 'ngram')."""
    if proposer not in PROPOSERS:
        raise RlsimError(f"must be one of {', '.join(PROPOSERS)} (got {proposer!r})", "--proposer")
    key = PROPOSERS[proposer][0]
    out: list[np.ndarray] = []
    for path in paths:
        n_before = len(out)
        for lineno, line in enumerate(read_text(path).splitlines(), 1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                raise RlsimError(f"not JSON; is this a {FORMAT} JSONL file?", where) from None
            if not isinstance(row, dict):
                raise RlsimError(f"expected a JSON object per line ({FORMAT})", where)
            block = row.get(key)
            acc = block.get("acc_len") if isinstance(block, dict) else None
            if acc is None:
                raise RlsimError(f"no {key}.acc_len (not a {FORMAT} file, or no {proposer} proposer)", where)
            if not isinstance(acc, list) or not all(isinstance(x, int) and not isinstance(x, bool) for x in acc):
                raise RlsimError(f"{key}.acc_len must be a list of integers", where)
            a = np.asarray(acc, dtype=np.int64)
            if a.size and a.min() < 1:
                raise RlsimError(f"{key}.acc_len has a value < 1 ({int(a.min())})", where)
            out.append(a)
        if len(out) == n_before:
            raise RlsimError(f"no requests in the file (empty {FORMAT} file?)", str(path))
    if not any(a.size for a in out):
        raise RlsimError("every request has an empty acc_len", str(paths[0]))
    return out


def read(paths, *, proposer: str | None = None, k: int | None = None) -> Measurement:
    proposer = proposer or DEFAULT_PROPOSER
    k_max = DEFAULT_K if k is None else k
    if k_max < 1:
        raise RlsimError(f"must be >= 1 to fit per-position rates (got {k_max})", "--k")
    replay = ReplayTraces(read_traces(paths, proposer))
    u, taus, steps = unconditional_from_replay(replay, k_max)
    return Measurement(
        format=FORMAT, files=tuple(str(p) for p in paths), k=k_max,
        unconditional_rates=tuple(float(x) for x in u),
        num_drafts=float(steps[-1]),
        num_drafts_per_position=tuple(float(s) for s in steps),
        measured_tau=tuple((i + 1, float(t)) for i, t in enumerate(taus)),
        method=PROPOSERS[proposer][1],
        detail=(f"proposer {proposer} ({PROPOSERS[proposer][0]}.acc_len), {replay.n_requests} requests, "
                f"{replay.n_tokens} tokens; per-position unconditional rate u_i = tau_replay(i) - "
                f"tau_replay(i-1) of exact depth-i chain replays (verify at p emits min(acc_len[p], i+1, "
                f"L-p), next step starts there), (closest non-increasing fit where the replay curve is not concave); "
                f"num_drafts_per_position[i-1] = verify steps of the depth-i replay; measured_tau = "
                f"exact replay tau"),
        sha256=tuple(sha256_of(p) for p in paths),
    )
