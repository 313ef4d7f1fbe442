"""The optimizer: the best speculation, engine layout and placement of a scenario on N GPUs, with why.

    from simulator.optimize import optimize
    res = optimize("workloads/scenarios/default.yaml", gpus=8)      # objective: step time
    res.table.head()     # ranked configurations with their stage breakdowns (seconds)
    res.why              # why the winner beats the runner-up and the scenario as given

`rlsim optimize` is its command line. See search.py for the stages and space.py for the space and pruning.
"""
from simulator.optimize.explain import OBJECTIVES, why
from simulator.optimize.search import OptimizeResult, optimize

__all__ = ["OBJECTIVES", "OptimizeResult", "optimize", "why"]
