"""Fidelity: a profile fitted from a per-token trace reproduces the exact replay tau(k) of that trace
within 3% for k = 1..7, for the shipped traces (both proposers) and for traces not in the repo."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from simulator.cli.main import main
from simulator.paths import project_root
from simulator.specdec.acceptance import (
    ChainAcceptance, ReplayTraces, conditional_from_unconditional, unconditional_from_replay)
from simulator.specdec.importers.specdecode_bench import read_traces

TRACES = project_root() / "workloads" / "traces" / "specdecode-bench"
DATASETS = ("gsm8k", "sharegpt", "cnn", "instructcoder")
KS = list(range(1, 8))
RTOL = 0.03


def fit_and_accept(capsys, tmp_path: Path, files, proposer: str | None = None) -> np.ndarray:
    out = tmp_path / "profile.yaml"
    argv = ["fit", "acceptance", "--format", "specdecode-bench", *map(str, files), "--out", str(out)]
    if proposer:
        argv += ["--proposer", proposer]
    assert main(argv) == 0
    capsys.readouterr()
    assert main(["accept", "--profile", str(out), "--k", *map(str, KS), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["k"] == KS and not any(data["extrapolated"])
    return np.array(data["acceptance_length"])


@pytest.mark.parametrize("dataset", DATASETS)
def test_shipped_traces_both_proposers(dataset, tmp_path, capsys):
    path = TRACES / f"llama3.1-8b-{dataset}.jsonl"
    for proposer in ("eagle", "ngram"):
        replay = ReplayTraces(read_traces([path], proposer)).taus(KS)
        model = fit_and_accept(capsys, tmp_path, [path], proposer)
        err = np.abs(model / replay - 1)
        assert err.max() < RTOL, (dataset, proposer, err)


def synthetic_trace(rng: np.random.Generator, n_requests: int, kind: str) -> list[list[int]]:
    """acc_len traces unlike the shipped ones: per-request acceptance, position decay, copy runs."""
    out = []
    for _ in range(n_requests):
        L = int(rng.integers(20, 600))
        if kind == "chain":  # per-request alpha, acceptance decaying with draft position
            alpha = rng.uniform(0.3, 0.9)
            acc = np.ones(L, dtype=int)
            alive = np.ones(L, dtype=bool)
            for i in range(1, 20):
                alive &= rng.random(L) < alpha * 0.97 ** i
                acc += alive
        else:  # copy runs: a run of length R counts down R, R-1, ..., 1
            acc = np.ones(L, dtype=int)
            p = 0
            while p < L:
                if rng.random() < 0.15:
                    r = int(rng.geometric(1 / 9))
                    run = np.arange(r, 0, -1)[: L - p]
                    acc[p:p + run.size] = run
                    p += run.size
                else:
                    p += 1
        out.append(acc.tolist())
    return out


@pytest.mark.parametrize("kind,seed", [("chain", 1), ("runs", 2), ("mixed", 3)])
def test_traces_not_in_the_repo(kind, seed, tmp_path, capsys):
    rng = np.random.default_rng(seed)
    if kind == "mixed":
        eagle = synthetic_trace(rng, 60, "chain") + synthetic_trace(rng, 60, "runs")
    else:
        eagle = synthetic_trace(rng, 120, kind)
    ngram = synthetic_trace(rng, 80, "runs")
    path = tmp_path / "other.jsonl"
    with open(path, "w") as f:
        for i, a in enumerate(eagle):
            b = ngram[i % len(ngram)]
            f.write(json.dumps({"id": str(i), "prompt_token_ids": [1], "generated_token_ids": [0] * len(a),
                                "acc_eagle": {"acc_len": a}, "acc_ngram": {"acc_len": b}}) + "\n")
    for proposer in ("eagle", "ngram"):
        replay = ReplayTraces(read_traces([path], proposer)).taus(KS)
        model = fit_and_accept(capsys, tmp_path, [path], proposer)
        assert np.abs(model / replay - 1).max() < RTOL, (kind, proposer)


def test_held_out_halves_of_the_shipped_traces():
    """Each half (by request) of each trace is a trace the fit has not seen as such."""
    for dataset in ("sharegpt", "instructcoder"):
        for proposer in ("eagle", "ngram"):
            traces = read_traces([TRACES / f"llama3.1-8b-{dataset}.jsonl"], proposer)
            for half in (traces[0::2], traces[1::2]):
                r = ReplayTraces(half)
                u, _, _ = unconditional_from_replay(r, 15)
                model = ChainAcceptance(conditional_from_unconditional(u)).taus(KS)
                assert np.abs(model / r.taus(KS) - 1).max() < RTOL, (dataset, proposer)
