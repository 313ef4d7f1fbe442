"""Plots: the numbers behind each figure, axis labels with units, every kind from real rlsim outputs via the CLI,
and bad input in one line."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from simulator import plots
from simulator.errors import RlsimError
from simulator.plots.heatmap import speedup_grid
from simulator.plots.optimal_k import optimal_table
from simulator.plots.rollout import binned, step_levels, tail_series, tail_start
from tests.conftest import assert_one_line_error, run_cli

TINY = str(Path(__file__).parent / "data" / "sweep" / "tiny.yaml")
MAGIC = {".png": b"\x89PNG", ".svg": b"<?xml", ".pdf": b"%PDF"}


# ------------------------------------------------------------------------------------------------ numbers
def test_rollout_levels_sum_engines_and_average_over_bins():
    iv = pd.DataFrame({"engine": [0, 0, 1], "start_s": [0.0, 2.0, 0.0], "end_s": [2.0, 4.0, 1.0],
                       "running": [10, 4, 6], "generated_tokens": [200, 40, 60]})
    t, lv = step_levels(iv["start_s"].to_numpy(float), iv["end_s"].to_numpy(float), iv["running"].to_numpy(float))
    assert list(t) == [0.0, 1.0, 2.0, 4.0] and list(lv) == [16.0, 10.0, 4.0, 0.0]
    assert binned(t, lv, np.array([0.0, 1.0, 2.0, 4.0])).tolist() == [16.0, 10.0, 4.0]
    assert binned(t, lv, np.array([0.0, 2.0])).tolist() == [13.0]  # time-weighted
    ser = tail_series(iv, bins=4)
    assert ser["running"].tolist() == [16.0, 10.0, 4.0, 4.0]
    assert ser["tokens_per_s"].tolist() == [160.0, 100.0, 20.0, 20.0]  # 100/s + 60/s, then 20/s
    # 300 tokens: 160 by 1 s, 260 by 2 s; 90% (270) 10 tokens later at 20 tokens/s: 2.5 s
    assert tail_start(iv) == pytest.approx(2.5)
    assert tail_start(iv, 0.5) == pytest.approx(1.0 - 10 / 160)  # 150 of the first 160 (160 tokens/s)


def _sweep_like():
    rows = [{"speculative.method": "none", "speculative.num_tokens": 1, "speculative.acceptance_length": 1.5,
             "generation": 30.0, "error": None}]
    for k in (1, 2, 3):
        for tau in (1.5, 2.0, 2.5):
            ok = tau <= k + 1
            rows.append({"speculative.method": "eagle3", "speculative.num_tokens": k,
                         "speculative.acceptance_length": tau, "generation": 30.0 / (tau - 0.1 * k) if ok else None,
                         "error": None if ok else "speculative: acceptance_length exceeds num_tokens + 1"})
    return pd.DataFrame(rows)


def test_speedup_grid_against_the_no_speculation_rows():
    df = _sweep_like()
    base = plots.heatmap.baseline_value(df, "generation")
    assert base == 30.0
    g = speedup_grid(df, "speculative.num_tokens", "speculative.acceptance_length", "generation", base)
    assert g.loc[2.0, 2.0] == pytest.approx(2.0 - 0.2)
    assert g.loc[2.5, 3.0] == pytest.approx(2.5 - 0.3)
    assert np.isnan(g.loc[2.5, 1.0])  # a failed point stays blank
    fig = plots.speedup_heatmap(df)
    ax = fig.axes[0]
    assert "draft tokens" in ax.get_xlabel() and "tokens per verify step" in ax.get_ylabel()
    with pytest.raises(RlsimError, match="no baseline"):
        plots.speedup_heatmap(df[df["speculative.method"] != "none"])
    tput = df.assign(rollout_tokens_per_s=1000.0 / df["generation"])
    g2 = speedup_grid(tput, "speculative.num_tokens", "speculative.acceptance_length", "rollout_tokens_per_s",
                      1000.0 / 30.0)
    assert g2.loc[2.0, 2.0] == pytest.approx(1.8)  # throughput: value / baseline


def test_optimal_k_table_and_scaling_groups():
    rows = pd.DataFrame({"batch": [1, 1, 1, 64, 64, 64], "k": [0, 1, 2, 0, 1, 2],
                         "speedup": [1.0, 1.6, 1.9, 1.0, 1.3, 1.2]})
    t = optimal_table(rows)
    assert t["optimal_k"].tolist() == [2, 1] and t["speedup"].tolist() == [1.9, 1.3]
    sw = pd.DataFrame({"point": range(6), "cluster.gpus": [8, 16, 32] * 2,
                       "speculative.method": ["none"] * 3 + ["eagle3"] * 3, "seed": 0, "steps": 2,
                       "total_step_time": [40, 22, 13, 30, 16, 9.0], "error": None})
    fig = plots.scaling(sw)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "GPUs" and ax.get_ylabel() == "RL step time (s)"
    assert sorted(t.get_text() for t in ax.get_legend().get_texts()) == ["method=eagle3", "method=none"]
    ideal = [[float(v) for v in ln.get_ydata()] for ln in ax.lines if ln.get_linestyle() == ":"]
    assert ideal == [pytest.approx([30, 15, 7.5]), pytest.approx([40, 20, 10])]  # from each group's first point


# ------------------------------------------------------------------------------------------------ real outputs
@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    from simulator.cli.main import main
    from simulator.pipeline.run import run_pipeline
    from simulator.rollout.sim import simulate_rollout
    from simulator.scenario import load_scenario
    from simulator.sweep import run_sweep
    d = tmp_path_factory.mktemp("plots")
    run_sweep(TINY, ["speculative.num_tokens=1:3", "speculative.acceptance_length=1.5,2.5"], d / "spec.parquet",
              sets=["speculative.method=eagle3", "speculative.profile=null"], workers=0, progress=False, steps=1)
    run_sweep(TINY, ["speculative.method=none"], d / "base.csv", workers=0, progress=False, steps=1)
    run_sweep(TINY, ["cluster.gpus=1,2,4", "speculative.method=none,eagle3"], d / "scale.csv", workers=0,
              progress=False, steps=1)
    for name, sets in (("ar", []), ("eagle", ["speculative.method=eagle3"])):
        simulate_rollout(load_scenario(TINY, sets)).intervals.to_csv(d / f"{name}.csv", index=False)
    for name, sets in (("sync", []), ("async", ["pipeline.mode=async", "pipeline.colocated=false"])):
        res = run_pipeline(load_scenario(TINY, sets), steps=3)
        (d / f"{name}.json").write_text(json.dumps(res.trace()))
        if name == "async":
            ev = pd.DataFrame(res.events)
            back = plots.trace_events(res.trace())
            assert len(back) == len(ev) and back["end"].max() == pytest.approx(ev["end"].max())
    import contextlib
    import io
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["spec", "--hardware", "h200", "--model", "qwen3-8b", "--draft", "eagle3", "--acceptance-length",
                     "2.5", "--batch", "1", "16", "256", "--context", "1024", "--k", "0", "1", "2", "3", "--json"]) == 0
    (d / "spec.json").write_text(buf.getvalue())
    return d


@pytest.mark.parametrize("kind, files, ext", [
    ("speedup-heatmap", ["spec.parquet", "base.csv"], ".png"),
    ("rollout-tail", ["ar.csv", "eagle.csv"], ".svg"),
    ("gantt", ["sync.json", "async.json"], ".pdf"),
    ("scaling", ["scale.csv"], ".png"),
    ("optimal-k", ["spec.json"], ".png"),
    ("breakdown", ["scale.csv"], ".svg"),
])
def test_every_kind_from_real_outputs(outputs, capsys, kind, files, ext):
    from simulator.cli.main import main
    out = outputs / f"{kind}{ext}"
    rc = main(["plot", kind, *[str(outputs / f) for f in files], "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    data = out.read_bytes()
    assert data.startswith(MAGIC[ext]) and len(data) > 5000


def test_figures_label_axes_with_units(outputs):
    iv = {"ar": pd.read_csv(outputs / "ar.csv"), "eagle": pd.read_csv(outputs / "eagle.csv")}
    fig = plots.rollout_tail(iv)
    assert fig.axes[1].get_xlabel() == "time since the rollout started (s)"
    assert "tokens/s" in fig.axes[1].get_ylabel() and "sequences" in fig.axes[0].get_ylabel()
    fig = plots.gantt({"sync": plots.read_trace(outputs / "sync.json"),
                       "async": plots.read_trace(outputs / "async.json")})
    assert fig.axes[-1].get_xlabel() == "time (s)"
    labels = [t.get_text() for t in fig.axes[1].get_yticklabels()]
    assert labels == ["generation GPUs", "training GPUs"]
    assert fig.axes[0].get_title(loc="left").startswith("sync: 3 RL steps in")
    fig = plots.optimal_k({"spec": plots.read_spec(outputs / "spec.json")})
    assert "batch size" in fig.axes[1].get_xlabel() and "(x)" in fig.axes[1].get_ylabel()


@pytest.mark.parametrize("args, needles", [
    (["scaling", "{d}/nope.csv"], ["nope.csv", "no such file"]),
    (["scaling", "{d}/bad.parquet"], ["bad.parquet", "unreadable results file"]),
    (["violin", "{d}/scale.csv"], ["KIND", "unknown plot kind"]),
    (["gantt", "{d}/spec.json"], ["spec.json", "not a pipeline trace"]),
    (["rollout-tail", "{d}/scale.csv"], ["scale.csv", "not a rollout interval table"]),
    (["speedup-heatmap", "{d}/spec.parquet"], ["no baseline"]),
    (["scaling", "{d}/spec.parquet"], ["no column 'cluster.gpus'"]),
])
def test_bad_input_is_one_line(outputs, capsys, args, needles):
    from simulator.cli.main import main
    (outputs / "bad.parquet").write_bytes(b"garbage")
    out = outputs / "never.png"
    rc = main(["plot", *[a.format(d=outputs) for a in args], "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and not out.exists()
    assert_one_line_error(subprocess.CompletedProcess([], rc, "", err), *needles)
    rc = main(["plot", "scaling", str(outputs / "scale.csv"), "--out", str(outputs / "x.jpg")])
    assert rc == 2 and "use .png, .svg or .pdf" in capsys.readouterr().err


def test_heatmap_over_a_non_speculative_axis_compares_each_value_with_its_own_baseline(tmp_path):
    """A sweep over prompts x drafter: each prompts value against the run without speculation at that value (one
    pooled baseline gave 3x and 3x here), and a drafter axis of words is labels (an internal error before)."""
    t = pd.DataFrame({"speculative.method": ["none", "none", "eagle3", "eagle3", "ngram", "ngram"],
                      "rollout.prompts": [4, 8, 4, 8, 4, 8], "generation": [10.0, 20.0, 5.0, 5.0, 8.0, 10.0]})
    g = speedup_grid(t, "rollout.prompts", "speculative.method", "generation",
                     plots.heatmap.baseline_value(t, "generation"))
    assert list(g.index) == ["eagle3", "ngram"] and list(g.columns) == [4.0, 8.0]
    assert g.loc["eagle3"].tolist() == pytest.approx([2.0, 4.0])
    assert g.loc["ngram"].tolist() == pytest.approx([1.25, 2.0])
    f = tmp_path / "sweep.csv"
    t.to_csv(f, index=False)
    out = tmp_path / "h.png"
    p = run_cli("plot", "speedup-heatmap", str(f), "--x", "rollout.prompts", "--y", "speculative.method",
                "--out", str(out))
    assert p.returncode == 0 and out.stat().st_size > 0, p.stderr


def test_a_results_table_with_a_word_for_a_number_is_one_line(tmp_path):
    """A hand-edited steps table (an internal TypeError in the breakdown before)."""
    f = tmp_path / "steps.csv"
    f.write_text("step,total_step_time,generation,exposed_generation,policy_and_reference_logprobs,policy_training,"
                 "weight_sync,idle/buffer_starvation,idle/refit_bubble\n0,31,3.8,3.8,1.1,7.1,abc,0,0\n")
    out = tmp_path / "b.png"
    assert_one_line_error(run_cli("plot", "breakdown", str(f), "--out", str(out)), "steps.csv", "'weight_sync'",
                          "'abc'")
    assert not out.exists()
