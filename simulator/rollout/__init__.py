"""Rollout engine simulation: vLLM-like continuous batching of an RL rollout batch over data-parallel engines.

workload.py (the batch), engine.py (one engine: scheduler, KV blocks, iterations), costs.py (iteration
times from the cost model), progress.py (accepted tokens), router.py (routing), sim.py (the SimPy event
loop; `exact` and `fast` modes), results.py (RolloutResult, tables, Chrome trace).
"""
from simulator.rollout.results import RolloutResult
from simulator.rollout.sim import RolloutSimulator, simulate_rollout
from simulator.rollout.workload import RequestBatch, sample_requests

__all__ = ["RequestBatch", "RolloutResult", "RolloutSimulator", "sample_requests", "simulate_rollout"]
