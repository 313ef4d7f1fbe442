"""Speed of one step prediction after warm-up (target: <= 50 us on the 2-core CI machine).

    python benchmarks/step_speed.py
"""
from __future__ import annotations

import time

import numpy as np

from simulator.costmodel.step import StepCostModel

from host_speed import host_line  # benchmarks/, the script's own folder

CASES = [("h200", "qwen3-8b", 1), ("h200", "llama-3.1-8b", 1), ("gb200", "qwen3-235b-a22b", 8),
         ("h200", "deepseek-v3", 8)]


def main() -> None:
    rng = np.random.default_rng(0)
    print(f"{'hardware':8s} {'model':18s} {'batch':>5s} {'us/step':>8s}")
    worst = 0.0
    for hw, model, tp in CASES:
        sm = StepCostModel(hw, model, tp=tp)
        for b in (1, 32, 256):
            ctx = rng.integers(100, 16000, b)
            q = np.ones(b, dtype=np.int64)
            for _ in range(50):  # warm-up (fills the per-token-count cache)
                sm.step(q, ctx)
            n = 3000
            t0 = time.perf_counter()
            for _ in range(n):
                sm.step(q, ctx)
            us = (time.perf_counter() - t0) / n * 1e6
            worst = max(worst, us)
            print(f"{hw:8s} {model:18s} {b:5d} {us:8.1f}")
    print(f"worst: {worst:.1f} us per step prediction (target <= 50 us)")
    print(host_line())


if __name__ == "__main__":
    main()
