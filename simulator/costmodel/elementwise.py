"""Memory-bound kernels (norms, activations, residual adds, copies): overhead + bytes / bandwidth."""
from __future__ import annotations

import numpy as np

from simulator.hardware import ElementwiseCurve

# bytes moved per output element, in units of the element size: reads + writes
TRAFFIC = {"rms_norm": 2, "add": 3, "silu": 2, "mul": 3, "copy": 2}


def elementwise_time(c: ElementwiseCurve, bandwidth: float, op: str, rows, width, elem_bytes: float = 2.0):
    """Seconds for `op` over a [rows, width] output (numpy arrays allowed)."""
    traffic = TRAFFIC[op] * rows * width * elem_bytes
    in_l2 = np.minimum(traffic, c.l2_resident_bytes)
    return (c.overhead_s + c.per_width_s * width + (traffic - in_l2) / (bandwidth * c.eff)
            + in_l2 / (bandwidth * c.eff_l2))
