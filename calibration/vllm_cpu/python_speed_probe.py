"""Single-thread Python speed of a host: seconds for a fixed interpreter-bound workload of the kind vLLM's
scheduler and output path do per sequence (object creation, attribute access, dict and list updates).

Used to carry the vLLM CPU cost measured on one host (measure_vllm_cpu.py) to another:
  python calibration/vllm_cpu/python_speed_probe.py            # prints one line: cpu, best-of-7 seconds
"""
from __future__ import annotations

import platform
import time


class _Req:
    __slots__ = ("rid", "tokens", "num_computed", "blocks", "logprobs", "status")

    def __init__(self, rid: int):
        self.rid, self.tokens, self.num_computed, self.blocks, self.logprobs, self.status = rid, [], 0, [], [], 0


def _workload(n_seqs: int = 256, steps: int = 400) -> int:
    reqs = {i: _Req(i) for i in range(n_seqs)}
    out = 0
    for step in range(steps):
        scheduled = {}
        for rid, r in reqs.items():  # schedule: one token each, a block every 16
            if r.num_computed % 16 == 0:
                r.blocks.append(step * n_seqs + rid)
            scheduled[rid] = 1
        outputs = []
        for rid, n in scheduled.items():  # update from the sampled tokens, build the outputs
            r = reqs[rid]
            tok = (rid * 31 + step) % 128000
            r.tokens.append(tok)
            r.num_computed += n
            r.logprobs.append({tok: (-0.1 * (tok % 7), 1)})
            outputs.append((rid, [tok], r.num_computed >= 1 << 30))
        out += len(outputs)
    return out


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def best_seconds(repeats: int = 7) -> float:
    """Seconds of the workload, the best of `repeats` runs."""
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        _workload()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    print(f"{cpu_name()},{platform.python_version()},{best_seconds():.6f}")


if __name__ == "__main__":
    main()
