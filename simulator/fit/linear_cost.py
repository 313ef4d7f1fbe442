"""A cost parameter that a simulated stage time is linear in, solved from one published stage time (pure)."""
from __future__ import annotations

from collections.abc import Callable

from simulator.errors import RlsimError


def fit_linear_cost(stage_s: Callable[[float], float], published_s: float, field: str, probe: float = 1e-3,
                    hint: str = "") -> float:
    """The value of the parameter `field` (at least 0) that makes `stage_s(value)` (seconds, linear in the
    value) equal `published_s`; two evaluations, at 0 and at `probe`. One error line (ending in `hint`) if the
    stage ignores it."""
    t0 = stage_s(0.0)
    t1 = stage_s(probe)
    if t1 <= t0:
        raise RlsimError(f"the simulated stage does not depend on {field}{hint}", field)
    return max(0.0, probe * (published_s - t0) / (t1 - t0))
