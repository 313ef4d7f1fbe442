"""The host's single-thread Python speed, printed beside the speed benchmarks' figures.

The speed targets (README, 'Performance') were set on a host where calibration/vllm_cpu/python_speed_probe.py
read 0.117 s; the same 2-core VM type has read up to 0.30 s in other sessions, and interpreter-bound figures (a step
prediction, a simulated RL step, a sweep point) move with it. Each benchmark prints this line so that figures from
different sessions can be compared.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

PROBE = Path(__file__).resolve().parents[1] / "calibration" / "vllm_cpu" / "python_speed_probe.py"
REFERENCE_S = 0.117  # calibration/vllm_cpu/python_speed_probe.txt: the measuring host, 2026-11-25, best of three


def probe_seconds() -> tuple[str, float]:
    """(cpu name, the probe's best-of-7 seconds), as `python calibration/vllm_cpu/python_speed_probe.py` prints."""
    spec = importlib.util.spec_from_file_location("python_speed_probe", PROBE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.cpu_name(), mod.best_seconds()


def host_line() -> str:
    cpu, s = probe_seconds()
    return (f"host: {cpu}, Python probe {s:.3f} s ({s / REFERENCE_S:.2f}x the {REFERENCE_S} s of the host the "
            "targets were set on; interpreter-bound figures scale about with it)")
