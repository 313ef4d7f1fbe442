"""`rlsim plot KIND RESULTS... --out FILE.png|svg|pdf`: plot results of rlsim sweep / rollout / run / spec.

Kinds and what they read:
  speedup-heatmap  sweep tables over speculative.acceptance_length x speculative.num_tokens; the baseline is the
                   rows with speculative.method=none (e.g. a second, one-point sweep file) or --baseline
  rollout-tail     `rlsim rollout --intervals-out` tables (one line per file: e.g. with and without speculation)
  gantt            `rlsim run --trace` JSON files (one panel per file: e.g. sync and async)
  scaling          sweep tables with cluster.gpus swept (one line per value of the other swept keys, or --by)
  optimal-k        `rlsim spec --json` outputs (one line per file)
  breakdown        sweep tables (one stacked bar per point)
"""
from __future__ import annotations

from simulator.errors import RlsimError

KINDS = ("speedup-heatmap", "rollout-tail", "gantt", "scaling", "optimal-k", "breakdown")


def register(sub) -> None:
    p = sub.add_parser("plot", help="plot sweep, rollout, pipeline or spec results (png, svg, pdf)",
                       description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n")[1])
    p.add_argument("kind", metavar="KIND", help=", ".join(KINDS))
    p.add_argument("results", nargs="+", metavar="RESULTS", help="files written by rlsim sweep/rollout/run/spec")
    p.add_argument("--out", required=True, help="figure file (.png, .svg or .pdf)")
    p.add_argument("--labels", help="comma-separated labels, one per RESULTS file (default: file names)")
    p.add_argument("--metric", help="column to plot (heatmap: generation; scaling: total_step_time)")
    p.add_argument("--x", help="x column (heatmap: speculative.num_tokens; scaling: cluster.gpus)")
    p.add_argument("--y", help="y column (heatmap: speculative.acceptance_length)")
    p.add_argument("--by", action="append", help="scaling: group lines by this column (repeatable)")
    p.add_argument("--baseline", type=float, help="heatmap: the metric without speculation")
    p.add_argument("--max-steps", type=int, help="gantt: show only the first N RL steps")
    p.add_argument("--title")
    p.set_defaults(func=run)


def _labels(args) -> list[str]:
    from simulator.plots.io import stem
    if args.labels is None:
        return [stem(f) for f in args.results]
    labs = [x.strip() for x in args.labels.split(",")]
    if len(labs) != len(args.results):
        raise RlsimError(f"{len(labs)} labels for {len(args.results)} files", "--labels")
    return labs


def _concat(paths: list[str]):
    import pandas as pd

    from simulator.plots.io import read_table
    frames = [read_table(p) for p in paths]
    return pd.concat(frames, ignore_index=True, sort=False) if len(frames) > 1 else frames[0]


def build(args):
    """The Figure for the parsed arguments (reads the files)."""
    from simulator import plots
    from simulator.plots.io import read_intervals, read_spec, read_trace
    kind = args.kind
    if kind not in KINDS:
        raise RlsimError(f"unknown plot kind {kind!r} ({', '.join(KINDS)})", "KIND")
    labels = _labels(args)
    if kind == "speedup-heatmap":
        return plots.speedup_heatmap(_concat(args.results), x=args.x or "speculative.num_tokens",
                                     y=args.y or "speculative.acceptance_length", metric=args.metric or "generation",
                                     baseline=args.baseline, title=args.title)
    if kind == "rollout-tail":
        return plots.rollout_tail({lab: read_intervals(p) for lab, p in zip(labels, args.results)}, title=args.title)
    if kind == "gantt":
        return plots.gantt({lab: read_trace(p) for lab, p in zip(labels, args.results)}, title=args.title,
                           max_steps=args.max_steps)
    if kind == "scaling":
        return plots.scaling(_concat(args.results), x=args.x or "cluster.gpus",
                             metric=args.metric or "total_step_time", by=args.by, title=args.title)
    if kind == "optimal-k":
        return plots.optimal_k({lab: read_spec(p) for lab, p in zip(labels, args.results)}, title=args.title)
    return plots.breakdown(_concat(args.results), title=args.title)


def run(args) -> int:
    from simulator.plots.style import check_figure_path, save_figure
    check_figure_path(args.out)
    if args.kind not in KINDS:
        raise RlsimError(f"unknown plot kind {args.kind!r} ({', '.join(KINDS)})", "KIND")
    fig = build(args)
    save_figure(fig, args.out)
    print(f"wrote {args.out}")
    return 0
