"""Rollout simulation speed: prints the figures, exits 1 if a target is missed.

1. fast mode: 65,536 sequences (4,096 prompts x 16 samples), responses up to 20,480 tokens (lognormal, median
   3,000, sigma 0.9, so some hit the cap), 256 engines (Qwen3-8B, one H200 each). Target: at most 2 s, under
   2 GB. Also shown (no target): the same with EAGLE-3 (k = 3, tau 2.8).
2. exact mode: 256 sequences (16 prompts x 16) of up to 8,192 tokens on one engine. Target: at most 10 s.

Each case runs in a fresh process pinned to one core (numpy and BLAS single-threaded). Wall time is the
simulation (RolloutSimulator.run: sampling the batch, the event loop, the tables) with the cost model's
caches empty; "warm" is a second run (another seed) of the same simulator; building the cost models is shown
apart. Peak memory is the process's maximum resident set (ru_maxrss, everything included) and the
peak of Python allocations during the run (tracemalloc, a second run).

Usage: python benchmarks/rollout_speed.py
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from host_speed import host_line  # benchmarks/, the script's own folder

ROOT = Path(__file__).resolve().parent.parent

CASES = {
    "fast: 65,536 seqs, 256 engines, responses <= 20,480": dict(
        mode="fast", limit_s=2.0, limit_gb=2.0,
        sets=["rollout.prompts=4096", "rollout.samples_per_prompt=16", "cluster.gpus=256",
              "rollout.max_response_tokens=20480", "rollout.response_tokens.median=3000",
              "rollout.response_tokens.sigma=0.9"]),
    "fast + EAGLE-3 k=3 (no target)": dict(
        mode="fast", limit_s=None, limit_gb=2.0,
        sets=["rollout.prompts=4096", "rollout.samples_per_prompt=16", "cluster.gpus=256",
              "rollout.max_response_tokens=20480", "rollout.response_tokens.median=3000",
              "rollout.response_tokens.sigma=0.9", "speculative.method=eagle3", "speculative.profile=null",
              "speculative.acceptance_length=2.8"]),
    "exact: 256 seqs <= 8,192 tokens, 1 engine": dict(
        mode="exact", limit_s=10.0, limit_gb=None,
        sets=["rollout.prompts=16", "rollout.samples_per_prompt=16", "cluster.gpus=1",
              "rollout.max_response_tokens=8192", "rollout.response_tokens.median=3000",
              "rollout.response_tokens.sigma=0.9"]),
}

CHILD = r"""
import json, os, resource, sys, time, tracemalloc
os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]}) if hasattr(os, "sched_setaffinity") else None
sys.path.insert(0, sys.argv[1])
from simulator.rollout import RolloutSimulator
from simulator.scenario import load_scenario
case = json.loads(sys.argv[2])
t0 = time.perf_counter()
sim = RolloutSimulator(load_scenario(None, case["sets"]))
build = time.perf_counter() - t0
t0 = time.perf_counter()
res = sim.run(mode=case["mode"], seed=0)  # cold: the cost model's caches start empty
wall = time.perf_counter() - t0
t0 = time.perf_counter()
sim.run(mode=case["mode"], seed=1)
warm = time.perf_counter() - t0
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
tracemalloc.start()
sim.run(mode=case["mode"], seed=0)
peak = tracemalloc.get_traced_memory()[1]
tracemalloc.stop()
print(json.dumps({"build_s": build, "wall_s": wall, "warm_s": warm, "rss": rss, "py_peak": peak, "seqs": res.num_sequences,
                  "engines": res.engines, "iterations": res.iterations, "events": res.events,
                  "rollout_s": res.rollout_s, "tokens": res.generated_tokens, "tau": res.mean_acceptance_length,
                  "preemptions": res.preemptions, "max_len": int(res.requests.response_tokens.max())}))
"""


def main() -> int:
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    ok = True
    print(f"{'case':52s} {'wall s':>7} {'warm s':>7} {'build s':>8} {'maxrss GB':>9} {'py peak GB':>10} {'seqs':>6} "
          f"{'engines':>7} {'iterations':>11} {'events':>7}  result")
    for name, case in CASES.items():
        proc = subprocess.run([sys.executable, "-c", CHILD, str(ROOT), json.dumps(case)], capture_output=True,
                              text=True, env=env, cwd=ROOT)
        if proc.returncode:
            print(f"{name}: failed\n{proc.stderr}")
            ok = False
            continue
        d = json.loads(proc.stdout.strip().splitlines()[-1])
        gb, py_gb = d["rss"] / 1e9, d["py_peak"] / 1e9
        miss = []
        if case["limit_s"] is not None and d["wall_s"] > case["limit_s"]:
            miss.append(f"> {case['limit_s']} s")
        if case["limit_gb"] is not None and gb > case["limit_gb"]:
            miss.append(f"> {case['limit_gb']} GB")
        ok &= not miss
        verdict = ("MISSED " + ", ".join(miss)) if miss else ("ok" if case["limit_s"] or case["limit_gb"] else "-")
        print(f"{name:52s} {d['wall_s']:7.2f} {d['warm_s']:7.2f} {d['build_s']:8.2f} {gb:9.2f} {py_gb:10.2f} {d['seqs']:6d} "
              f"{d['engines']:7d} {d['iterations']:11,d} {d['events']:7,d}  {verdict}")
        print(f"{'':52s} simulated rollout {d['rollout_s']:.1f} s, {d['tokens']:,} tokens (longest response "
              f"{d['max_len']:,}), mean acceptance length {d['tau']:.2f}, {d['preemptions']} preemptions")
    print(host_line())
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
