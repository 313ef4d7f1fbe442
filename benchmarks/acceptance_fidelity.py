"""Acceptance-model fidelity: prints tables of figures, exits 1 if a target is missed.

1. Each per-token trace (default: workloads/traces/specdecode-bench/*.jsonl; or the files given),
   both proposers: the profile `rlsim fit acceptance --format specdecode-bench` writes (default
   settings) against an exact replay of the same trace, tau(k) for k = 1..7. The reference replay is
   written out plainly here (not the library's), from the trace README's definition. Target: 3%.
2. The same on held-out halves (even / odd requests) of each trace. Target: 3%.
3. Extrapolation (information, no target): profiles fitted only to k = 3 and k = 5, extrapolated by
   their stated model, against the replay at k up to 7.
4. Published: vLLM's EAGLE-3 baselines (tau = 1 + sum of per-position rates, within each row's rtol)
   and the paper's tau at k = 3 (i.i.d. profiles).

Usage: python benchmarks/acceptance_fidelity.py [TRACE.jsonl ...]
"""
from __future__ import annotations

import csv
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from simulator.paths import shared_dir  # noqa: E402
from simulator.specdec.acceptance import (  # noqa: E402
    AcceptanceProfile, ChainAcceptance, ReplayTraces, Source, conditional_from_unconditional,
    profile_from_mean_length, profile_from_unconditional, unconditional_from_replay)
from simulator.specdec.importers import profile_from_measurement, read  # noqa: E402
from simulator.specdec.importers.specdecode_bench import read_traces  # noqa: E402

KS = list(range(1, 8))
RTOL = 0.03


def reference_replay_tau(traces, k: int) -> float:
    """tau(k) by the definition: from position 0, a step at p emits min(acc_len[p], k+1, L-p)."""
    tokens = steps = 0
    for a in traces:
        a = a.tolist()
        p, L = 0, len(a)
        while p < L:
            n = min(a[p], k + 1, L - p)
            p += n
            tokens += n
            steps += 1
    return tokens / steps


def fmt(xs) -> str:
    return " ".join(f"{x:6.3f}" for x in xs)


def trace_table(paths) -> bool:
    ok = True
    print(f"\n1. fitted profile vs exact replay, tau(k) for k = {KS[0]}..{KS[-1]} (target: max |error| < 3%)")
    print(f"{'trace':<34} {'proposer':<8} {'':<7} {'tau(k)':<48} {'max err':>8}")
    worst = {}
    for path in paths:
        for proposer in ("eagle", "ngram"):
            traces = read_traces([path], proposer)
            ref = np.array([reference_replay_tau(traces, k) for k in KS])
            prof = profile_from_measurement(read("specdecode-bench", [path], proposer=proposer))
            model = prof.model().taus(KS)
            err = np.abs(model / ref - 1)
            worst[(Path(path).name, proposer)] = err.max()
            ok &= bool(err.max() < RTOL)
            print(f"{Path(path).name:<34} {proposer:<8} {'replay':<7} {fmt(ref)}")
            print(f"{'':<34} {'':<8} {'model':<7} {fmt(model)} {100 * err.max():7.3f}%")
    print("\n   max error per trace and proposer (%):")
    for (name, proposer), e in worst.items():
        print(f"   {name:<34} {proposer:<6} {100 * e:.4f}")
    return ok


def held_out_table(paths) -> bool:
    ok = True
    print("\n2. held-out halves (even / odd requests): fitted on the half, vs the half's replay")
    for path in paths:
        for proposer in ("eagle", "ngram"):
            traces = read_traces([path], proposer)
            errs = []
            for half in (traces[0::2], traces[1::2]):
                r = ReplayTraces(half)
                u, _, _ = unconditional_from_replay(r, 15)
                model = ChainAcceptance(conditional_from_unconditional(u)).taus(KS)
                errs.append(np.abs(model / r.taus(KS) - 1).max())
            ok &= bool(max(errs) < RTOL)
            print(f"   {Path(path).name:<34} {proposer:<6} max err {100 * max(errs):.4f}%")
    return ok


def extrapolation_table(paths) -> None:
    print("\n3. extrapolation (information): fitted to k <= K only, error of tau(k) for k = K+1..7 (%)")
    for path in paths:
        for proposer in ("eagle", "ngram"):
            r = ReplayTraces(read_traces([path], proposer))
            ref = r.taus(KS)
            cells = []
            for K in (3, 5):
                u, _, _ = unconditional_from_replay(r, K)
                model = ChainAcceptance(conditional_from_unconditional(u)).taus(KS)
                cells.append(f"K={K}: " + " ".join(f"{100 * (m / t - 1):+5.1f}" for m, t in zip(model[K:], ref[K:])))
            print(f"   {Path(path).name:<34} {proposer:<6} {'   '.join(cells)}")


def published_table() -> bool:
    ok = True
    pub = shared_dir() / "published"
    src = Source(format="published")
    print("\n4. published figures")
    path = pub / "vllm_eagle3_acceptance_baselines.csv"
    if path.is_file():
        with open(path) as f:
            rows = list(csv.DictReader(line for line in f if not line.startswith("#")))
        for r in rows:
            u = [float(r[f"pos{i}"]) for i in range(3)]
            tau = profile_from_unconditional(u, method="eagle3", source=src).model().tau(3)
            target, rtol = float(r["mean_acceptance_length"]), float(r["rtol"])
            good = abs(tau / target - 1) <= rtol
            ok &= good
            print(f"   vLLM baseline {r['verifier']:<36} tau(3) {tau:.4f} published {target:.2f} "
                  f"err {100 * (tau / target - 1):+.2f}% (rtol {100 * rtol:.0f}%) {'ok' if good else 'MISS'}")
    path = pub / "paper_specdec_rl_8b.csv"
    if path.is_file():
        with open(path) as f:
            rows = [r for r in csv.DictReader(line for line in f if not line.startswith("#")) if r["method"] == "eagle3"]
        for r in rows:
            tau, k = float(r["acceptance_length"]), int(r["k"])
            prof = profile_from_mean_length(tau, k, method="eagle3", source=src)
            got = prof.model().tau(k)
            ok &= abs(got - tau) < 1e-4
            print(f"   paper {r['workload']:<9} k={k} tau {tau:.2f}: i.i.d. alpha {prof.conditional_rates[0]:.4f} "
                  f"-> tau {got:.4f}; k=1..7: {fmt(prof.model().taus(KS))}")
    shipped = sorted((ROOT / "workloads" / "acceptance").glob("*.yaml"))
    print(f"   shipped profiles load: {len(shipped)} "
          f"({', '.join(p.stem for p in shipped if AcceptanceProfile.load(p))})")
    return ok


def main(argv: list[str]) -> int:
    paths = argv or sorted(str(p) for p in (ROOT / "workloads" / "traces" / "specdecode-bench").glob("*.jsonl"))
    t0 = time.perf_counter()
    ok = trace_table(paths)
    ok &= held_out_table(paths)
    extrapolation_table(paths)
    ok &= published_table()
    print(f"\n{'PASS' if ok else 'FAIL'} ({time.perf_counter() - t0:.1f} s)")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
