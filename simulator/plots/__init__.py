"""Plots of rlsim results: pure functions from DataFrames (or results) to matplotlib Figures, for the CLI
(`rlsim plot KIND RESULTS... --out F`) and notebooks alike. Figures use the Agg canvas and never pyplot.

| kind              | function             | reads (CLI)                                                       |
|-------------------|----------------------|-------------------------------------------------------------------|
| speedup-heatmap   | speedup_heatmap      | sweep tables over speculative.acceptance_length x num_tokens, plus |
|                   |                      | rows with speculative.method=none (the baseline) or --baseline     |
| rollout-tail      | rollout_tail         | `rlsim rollout --intervals-out` tables, one per run                |
| gantt             | gantt                | `rlsim run --trace` JSON files, one panel each                     |
| scaling           | scaling              | sweep tables with cluster.gpus swept                               |
| optimal-k         | optimal_k            | `rlsim spec --json` outputs, one line each                         |
| breakdown         | breakdown            | sweep tables (a bar per point)                                     |

`save_figure(fig, "out.png")` writes PNG, SVG or PDF by extension.
"""
from simulator.plots.breakdown import breakdown
from simulator.plots.gantt import gantt
from simulator.plots.heatmap import speedup_heatmap
from simulator.plots.io import read_intervals, read_spec, read_table, read_trace, spec_rows, trace_events
from simulator.plots.optimal_k import optimal_k
from simulator.plots.rollout import rollout_tail, tail_series
from simulator.plots.scaling import scaling
from simulator.plots.style import save_figure

__all__ = ["breakdown", "gantt", "optimal_k", "read_intervals", "read_spec", "read_table", "read_trace",
           "rollout_tail", "save_figure", "scaling", "spec_rows", "speedup_heatmap", "tail_series", "trace_events"]
