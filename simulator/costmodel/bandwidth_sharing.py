"""Streams sharing a GPU's memory bandwidth (pure function, seconds)."""
from __future__ import annotations

import numpy as np


def fluid_time(size, count, aggregate: float, cap: float, start: float = 0.0) -> float:
    """Seconds until every stream is done when `count[i]` streams of `size[i]` bytes share `aggregate`
    bytes/s, none faster than `cap` bytes/s (processor sharing, shortest streams finish first). With `start`,
    size[i] counts from there: each stream has size[i] - start bytes left (none has fewer than zero)."""
    order = np.argsort(size)
    s = np.asarray(size, dtype=float)[order]
    n = np.asarray(count, dtype=float)[order]
    active = np.cumsum(n[::-1])[::-1]
    ds = np.diff(s, prepend=start)
    return float(np.sum(ds / np.minimum(cap, aggregate / active)))
