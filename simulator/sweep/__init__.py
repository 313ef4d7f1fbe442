"""What-if sweeps: the cartesian product of grids over a scenario, run in parallel into a results table.

    from simulator.sweep import run_sweep, read_results
    res = run_sweep(None, ["speculative.num_tokens=1:5", "speculative.method=none,eagle3"], out="k.parquet")

`rlsim sweep` is the command line of `run_sweep`; see simulator/sweep/run.py for the semantics (determinism,
resume, interruption) and simulator/sweep/schema.py for the columns of the results.
"""
from simulator.sweep.grid import GridAxis, canonical, grid_points, parse_axis, parse_grids
from simulator.sweep.run import SweepResult, run_sweep
from simulator.sweep.schema import OUTPUT_NAMES, SweepSchema
from simulator.sweep.store import read_results

__all__ = ["GridAxis", "OUTPUT_NAMES", "SweepResult", "SweepSchema", "canonical", "grid_points", "parse_axis",
           "parse_grids", "read_results", "run_sweep"]
