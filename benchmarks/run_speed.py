"""Speed of `rlsim run` on the 2048-GPU Qwen3-235B-A22B scenarios: 10 RL steps (target: <= 5 s on one core).

    python benchmarks/run_speed.py      # each case in a fresh process pinned to one core, CLI start-up included
"""
from __future__ import annotations

import os
import subprocess
import sys
import time

from simulator.paths import scenarios_dir

from host_speed import host_line  # benchmarks/, the script's own folder

CASES = ["qwen3-235b-a22b-gb200x2048-sync-ar", "qwen3-235b-a22b-gb200x2048-sync-eagle3",
         "qwen3-235b-a22b-gb200x2048-async-ar", "qwen3-235b-a22b-gb200x2048-async-eagle3"]


def main() -> None:
    pin = ["taskset", "-c", "0"] if os.path.exists("/usr/bin/taskset") else []
    print(f"{'scenario':42s} {'wall s':>7s}  (10 RL steps, one core, CLI start-up included)")
    worst = 0.0
    for name in CASES:
        t = time.perf_counter()
        p = subprocess.run(pin + [sys.executable, "-m", "simulator", "run", str(scenarios_dir() / f"{name}.yaml"),
                                  "--steps", "10", "--json"], capture_output=True, text=True)
        dt = time.perf_counter() - t
        worst = max(worst, dt)
        print(f"{name:42s} {dt:7.2f}  {'ok' if p.returncode == 0 else 'FAILED: ' + p.stderr.strip()}")
    print(f"worst: {worst:.2f} s (target <= 5 s)")
    print(host_line())


if __name__ == "__main__":
    main()
