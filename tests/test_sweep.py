"""Sweeps: grid parsing, the results schema, parallel runs that match `run_pipeline`, failures, resume."""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from simulator.errors import RlsimError
from simulator.sweep import canonical, parse_axis, parse_grids, read_results, run_sweep
from simulator.sweep.grid import grid_points, split_values
from simulator.sweep.progress import Progress
from simulator.sweep.schema import OUTPUT_NAMES

TINY = Path(__file__).parent / "data" / "sweep" / "tiny.yaml"


# ------------------------------------------------------------------------------------------------ grids
def test_values_are_yaml_scalars_and_ranges_include_both_ends():
    assert parse_axis("speculative.num_tokens=0:7").values == tuple(range(8))
    assert parse_axis("speculative.num_tokens=7:5").values == (7, 6, 5)
    assert parse_axis("speculative.num_tokens=1:7:3").values == (1, 4, 7)
    assert parse_axis("speculative.acceptance_length=1.5:3:0.5").values == (1.5, 2.0, 2.5, 3.0)
    assert parse_axis("speculative.acceptance_length=1:2:0.3").values == (1.0, 1.3, 1.6, 1.9)
    ax = parse_axis("speculative.method=none,eagle3")
    assert ax.values == ("none", "eagle3") and ax.texts == ("none", "eagle3")
    assert parse_axis("speculative.dynamic_k=true,false").values == (True, False)
    assert parse_axis("speculative.acceptance_length=null,2.5").values == (None, 2.5)
    ax = parse_axis("speculative.candidate_ks=[0, 1, 2],[0, 3]")
    assert ax.values == ([0, 1, 2], [0, 3])
    assert parse_axis("engine.max_num_seqs=64,128:130").values == (64, 128, 129, 130)
    assert split_values("a,'b,c',[1, 2]") == ["a", "'b,c'", "[1, 2]"]


@pytest.mark.parametrize("spec, field, needle", [
    ("speculative.num_token=1,2", "--grid speculative.num_token", "did you mean speculative.num_tokens"),
    ("speculative.num_tokens=", "--grid speculative.num_tokens", "empty grid"),
    ("speculative.num_tokens=1,,2", "--grid speculative.num_tokens", "empty value"),
    ("speculative=1", "--grid speculative", "section"),
    ("speculative.num_tokens", "--grid", "expected dotted.key"),
    ("speculative.num_tokens=1.5:3", "--grid speculative.num_tokens", "integer ends"),
    ("speculative.num_tokens=1:5:-1", "--grid speculative.num_tokens", "empty"),
    ("speculative.num_tokens=1:5:0", "--grid speculative.num_tokens", "must not be 0"),
    ("speculative.num_tokens=1,2,1.0", "--grid speculative.num_tokens", "twice"),
])
def test_bad_grids_name_the_field(spec, field, needle):
    with pytest.raises(RlsimError) as e:
        parse_axis(spec)
    assert e.value.field == field and needle in e.value.message
    assert "\n" not in str(e.value)


def test_grids_product_order_and_duplicate_keys():
    axes = parse_grids(["speculative.method=none,eagle3", "speculative.num_tokens=1:3"])
    pts = list(grid_points(axes))
    assert len(pts) == 6
    assert [p[1] for p in pts[:3]] == [("none", 1), ("none", 2), ("none", 3)]  # first axis slowest
    assert pts[4][2] == ("speculative.method=eagle3", "speculative.num_tokens=2")
    with pytest.raises(RlsimError, match="given twice"):
        parse_grids(["seed=1,2", "seed=3"])
    with pytest.raises(RlsimError, match="no grid"):
        parse_grids([])
    assert [a.values for a in parse_grids({"seed": range(3), "speculative.method": ["none"]})] == [(0, 1, 2),
                                                                                                   ("none",)]


def test_canonical_matches_values_however_stored():
    assert canonical(3) == canonical(3.0) == canonical("3")
    assert canonical(True) == canonical("true") != canonical(1)
    assert canonical(None) == canonical(float("nan")) == canonical("null")
    assert canonical([0, 1]) == canonical("[0, 1]")
    assert canonical("eagle3") == "eagle3"


def test_schema_has_every_output_of_run():
    from simulator.pipeline.run import run_pipeline
    from simulator.scenario import load_scenario
    keys = set(run_pipeline(load_scenario(TINY), steps=1).summary())
    missing = keys - set(OUTPUT_NAMES) - {"steps"}
    assert not missing, f"add {missing} to simulator/sweep/schema.py OUTPUTS"


# ------------------------------------------------------------------------------------------------ runs
GRID = ["speculative.method=none,eagle3", "speculative.num_tokens=1:2"]


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep") / "serial.csv"
    return run_sweep(TINY, GRID, out, workers=0, progress=False)


def test_rows_equal_run_pipeline_of_each_point(serial):
    from simulator.pipeline.run import run_pipeline
    from simulator.scenario import load_scenario
    t = serial.table
    assert list(t["point"]) == [0, 1, 2, 3] and serial.ran == 4 and serial.failed == 0
    assert list(t.columns[:5]) == ["point", "speculative.method", "speculative.num_tokens", "seed", "steps"]
    for _, row in t.iterrows():
        scn = load_scenario(TINY, [f"speculative.method={row['speculative.method']}",
                                   f"speculative.num_tokens={row['speculative.num_tokens']}"])
        ref = run_pipeline(scn).summary()
        for k in OUTPUT_NAMES:
            assert row[k] == pytest.approx(ref[k], rel=1e-12) if isinstance(ref[k], float) else row[k] == ref[k]
        assert row["steps"] == ref["steps"] == 2 and row["seed"] == 0 and pd.isna(row["error"])
    # speculation changes generation, k matters only with a draft
    none = t[t["speculative.method"] == "none"]["generation"]
    eagle = t[t["speculative.method"] == "eagle3"]["generation"]
    assert none.nunique() == 1 and eagle.nunique() == 2 and eagle.max() < none.iloc[0]
    # the file on disk is the same table
    disk = read_results(serial.path)
    pd.testing.assert_frame_equal(disk.drop(columns=["wall_s", "error"]),
                                  t.drop(columns=["wall_s", "error"]).astype(disk.drop(columns=["wall_s", "error"])
                                                                             .dtypes.to_dict()),
                                  check_exact=False, rtol=1e-12)


def test_same_results_whatever_the_worker_count_and_format(serial, tmp_path):
    run_sweep(TINY, GRID, tmp_path / "par.parquet", workers=2, progress=False)
    a = serial.table.drop(columns=["wall_s"])
    b = read_results(tmp_path / "par.parquet").drop(columns=["wall_s"])
    assert list(b["point"]) == [0, 1, 2, 3]  # written in point order
    pd.testing.assert_frame_equal(a.astype(object).where(a.notna(), None), b.astype(object).where(b.notna(), None),
                                  check_dtype=False)


def test_a_failing_point_is_recorded_not_fatal(tmp_path):
    res = run_sweep(TINY, ["speculative.num_tokens=2,-1,3"], tmp_path / "f.csv", workers=0, progress=False,
                    sets=["speculative.method=eagle3"])
    t = read_results(tmp_path / "f.csv")
    assert res.failed == 1 and len(t) == 3
    bad = t[t["speculative.num_tokens"] == -1].iloc[0]
    assert "speculative.num_tokens" in bad["error"] and math.isnan(bad["total_step_time"])
    assert t[t["speculative.num_tokens"] != -1]["error"].isna().all()
    assert (t[t["speculative.num_tokens"] != -1]["total_step_time"] > 0).all()


def test_resume_runs_only_missing_points_and_survives_a_cut_line(tmp_path):
    out = tmp_path / "r.csv"
    first = run_sweep(TINY, ["seed=0:2"], out, workers=0, progress=False)
    assert first.ran == 3
    # a hard kill mid-write: the last line is cut
    text = out.read_text()
    out.write_text(text[: len(text) - 25])
    assert len(read_results(out)) == 2  # readable, the cut line dropped
    again = run_sweep(TINY, ["seed=0:4"], out, workers=0, progress=False, resume=True)
    assert again.skipped == 2 and again.ran == 3
    t = read_results(out)
    assert sorted(t["seed"]) == [0, 1, 2, 3, 4] and t["error"].isna().all()
    # seed 2 ran twice (before the cut and after): the same numbers
    assert t.loc[t["seed"] == 2, "total_step_time"].iloc[0] == pytest.approx(
        first.table.loc[first.table["seed"] == 2, "total_step_time"].iloc[0], rel=1e-12)
    # nothing left: nothing runs
    assert run_sweep(TINY, ["seed=0:4"], out, workers=0, progress=False, resume=True).ran == 0
    # a different --steps is a different point
    assert run_sweep(TINY, ["seed=0:1"], out, workers=0, progress=False, resume=True, steps=1).ran == 2


def test_resume_retries_failed_points_only_when_asked(tmp_path):
    out = tmp_path / "r.parquet"
    run_sweep(TINY, ["speculative.num_tokens=-1,2"], out, workers=0, progress=False,
              sets=["speculative.method=eagle3"])
    assert run_sweep(TINY, ["speculative.num_tokens=-1,2"], out, workers=0, progress=False, resume=True,
                     sets=["speculative.method=eagle3"]).ran == 0
    res = run_sweep(TINY, ["speculative.num_tokens=-1,2"], out, workers=0, progress=False, resume=True,
                    retry_failed=True, sets=["speculative.method=eagle3"])
    assert res.ran == 1 and res.failed == 1 and len(read_results(out)) == 2


def test_resume_refuses_another_sweeps_file_and_unreadable_files(tmp_path):
    out = tmp_path / "a.csv"
    run_sweep(TINY, ["seed=0:1"], out, workers=0, progress=False)
    with pytest.raises(RlsimError, match="no column 'speculative.num_tokens'"):
        run_sweep(TINY, ["speculative.num_tokens=1,2"], out, workers=0, progress=False, resume=True)
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet at all")
    with pytest.raises(RlsimError, match="unreadable results file") as e:
        run_sweep(TINY, ["seed=0:1"], bad, workers=0, progress=False, resume=True)
    assert "bad.parquet" in e.value.field
    assert bad.read_bytes() == b"not parquet at all"  # left alone


def test_bad_input_writes_nothing(tmp_path):
    out = tmp_path / "x.parquet"
    for kw in ({"grid": ["speculative.num_token=1"]}, {"grid": ["seed=1"], "sets": ["engine.tp=2"]},
               {"grid": ["seed=1"], "backend": "nope"}, {"grid": ["seed=1"], "steps": 0},
               {"grid": ["seed=1"], "seed": 3}, {"grid": []}):
        grid = kw.pop("grid")
        with pytest.raises(RlsimError):
            run_sweep(TINY, grid if grid else [], out, workers=0, progress=False, **kw)
    assert not out.exists()
    with pytest.raises(RlsimError, match="--out"):
        run_sweep(TINY, ["seed=1"], tmp_path / "x.txt", workers=0, progress=False)


def test_progress_reports_rate_and_eta():
    import io
    buf = io.StringIO()
    p = Progress(20, stream=buf)
    for i in range(20):
        p.update(failed=(i == 3))
    p.close()
    lines = buf.getvalue().strip().splitlines()
    assert 2 <= len(lines) <= 12  # every 10% off a terminal, not every point
    assert "20/20" in lines[-1] and "points/s" in lines[-1] and "ETA" in lines[-1] and "1 failed" in lines[-1]
    silent = io.StringIO()
    q = Progress(5, stream=silent, enabled=False)
    q.update()
    assert silent.getvalue() == ""
