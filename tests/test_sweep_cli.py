"""`rlsim sweep` from the command line: output, bad input in one line, Ctrl-C, the Ray backend."""
from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import ROOT, assert_one_line_error, run_cli

TINY = str(Path(__file__).parent / "data" / "sweep" / "tiny.yaml")


def test_sweep_writes_a_table_and_says_so(tmp_path):
    out = tmp_path / "s.csv"
    p = run_cli("sweep", TINY, "--grid", "speculative.method=none,eagle3", "--grid", "seed=0:1", "--workers", "2",
                "--out", str(out))
    assert p.returncode == 0, p.stderr
    assert "4 points run" in p.stdout and str(out) in p.stdout
    assert "points/s" in p.stderr and "ETA" in p.stderr  # the progress bar
    t = pd.read_csv(out)
    assert len(t) == 4 and set(t["speculative.method"]) == {"none", "eagle3"} and t["error"].isna().all()


@pytest.mark.parametrize("args, needles", [
    (["--grid", "speculative.num_token=1,2"], ["--grid speculative.num_token", "did you mean speculative.num_tokens"]),
    (["--grid", "speculative.num_tokens="], ["--grid speculative.num_tokens", "empty grid"]),
    ([], ["--grid", "no grid"]),
    (["--grid", "seed=1", "--backend", "mpi"], ["--backend", "unknown backend"]),
    (["--grid", "seed=1", "--retry-failed"], ["--retry-failed", "--resume"]),
])
def test_bad_input_is_one_line(tmp_path, capsys, args, needles):
    from simulator.cli.main import main
    out = tmp_path / "x.parquet"
    rc = main(["sweep", TINY, *args, "--out", str(out)])
    err = capsys.readouterr().err
    assert_one_line_error(subprocess.CompletedProcess([], rc, "", err), *needles)
    assert rc == 2 and not out.exists()


def test_unreadable_results_file_on_resume_is_one_line(tmp_path):
    out = tmp_path / "x.parquet"
    out.write_text("definitely not parquet")
    p = run_cli("sweep", TINY, "--grid", "seed=1", "--out", str(out), "--resume")
    assert_one_line_error(p, "x.parquet", "unreadable results file")


def test_missing_ray_is_one_line(tmp_path):
    code = ("import sys; sys.modules['ray'] = None\n"
            "from simulator.cli.main import main\n"
            f"sys.exit(main(['sweep', {TINY!r}, '--grid', 'seed=1', '--backend', 'ray', '--out', "
            f"{str(tmp_path / 'x.csv')!r}]))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert_one_line_error(p, "--backend ray", "Ray is not installed", "pip install")
    assert not (tmp_path / "x.csv").exists()


def test_every_point_failing_exits_nonzero(tmp_path):
    p = run_cli("sweep", TINY, "--grid", "speculative.num_tokens=-1,-2", "--workers", "0", "--out",
                str(tmp_path / "x.csv"), "--no-progress")
    assert p.returncode == 1 and "every point failed" in p.stderr and "speculative.num_tokens" in p.stderr
    assert len(pd.read_csv(tmp_path / "x.csv")) == 2


def _interrupt_when(grid, out, ready, timeout=60):
    """Start a 2-worker sweep of TINY over `grid` into `out` in its own process group, wait until `ready()` is
    true, then Ctrl-C the whole group.

    The child gets the default SIGINT disposition: a test run started in the background of a non-interactive
    shell inherits SIGINT ignored (POSIX), and the sweep would then never see the Ctrl-C."""
    cmd = [sys.executable, "-m", "simulator", "sweep", TINY, "--grid", grid, "--workers", "2", "--out", str(out),
           "--no-progress"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        time.sleep(0.1)
        try:
            if ready():
                break
        except Exception:  # noqa: BLE001 (not written yet)
            pass
    os.killpg(proc.pid, signal.SIGINT)  # as a terminal's Ctrl-C: the whole process group
    _, err = proc.communicate(timeout=60)
    return proc, err


def test_ctrl_c_leaves_a_valid_file_and_resume_finishes(tmp_path):
    # CSV rows appear as points finish, so the interrupt lands mid-sweep however fast the machine is
    out = tmp_path / "int.csv"
    proc, err = _interrupt_when("seed=0:399", out, lambda: len(pd.read_csv(out)) >= 5)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "--resume" in err and "Traceback" not in err
    t = pd.read_csv(out)
    assert 5 <= len(t) < 400 and t["point"].is_monotonic_increasing and t["error"].isna().all()
    p = run_cli("sweep", TINY, "--grid", "seed=0:399", "--workers", "2", "--out", str(out), "--resume",
                "--no-progress")
    assert p.returncode == 0, p.stderr
    assert f"{len(t)} already there" in p.stdout
    full = pd.read_csv(out)
    assert sorted(full["seed"]) == list(range(400)) and full["point"].is_unique


def test_ctrl_c_leaves_a_readable_parquet_file(tmp_path):
    # Parquet is rewritten every few seconds: a grid far too large to finish before the first rewrite
    out = tmp_path / "int.parquet"
    proc, err = _interrupt_when("seed=0:3999", out, lambda: len(pd.read_parquet(out)) >= 1)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    t = pd.read_parquet(out)
    assert 1 <= len(t) < 4000 and t["point"].is_monotonic_increasing and t["error"].isna().all()


@pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                    reason="ray is not installed (pip install -e '.[dev]' installs it; '.[ray]' for clusters)")
def test_ray_backend_gives_the_local_results(tmp_path):
    grid = ["--grid", "speculative.method=none,eagle3", "--grid", "seed=0:1"]
    p = run_cli("sweep", TINY, *grid, "--backend", "ray", "--workers", "2", "--out", str(tmp_path / "ray.csv"),
                "--no-progress")
    assert p.returncode == 0, p.stderr
    q = run_cli("sweep", TINY, *grid, "--workers", "0", "--out", str(tmp_path / "local.csv"), "--no-progress")
    assert q.returncode == 0, q.stderr
    a = pd.read_csv(tmp_path / "ray.csv").drop(columns=["wall_s"])
    b = pd.read_csv(tmp_path / "local.csv").drop(columns=["wall_s"])
    assert len(a) == 4
    pd.testing.assert_frame_equal(a, b)
