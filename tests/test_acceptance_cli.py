"""`rlsim accept` and `rlsim fit acceptance` through the CLI, including every kind of bad input."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from simulator.cli.main import main
from simulator.paths import project_root
from simulator.specdec.acceptance import AcceptanceProfile

DATA = Path(__file__).parent / "data" / "acceptance"
PROFILES = project_root() / "workloads" / "acceptance"


def run(capsys, *argv):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_accept_json_has_exactly_the_documented_keys(capsys):
    prof = PROFILES / "vllm-baseline-llama3.1-8b-eagle3-mtbench.yaml"
    rc, out, _ = run(capsys, "accept", "--profile", prof, "--k", 0, 1, 3, 5, 7, "--json")
    assert rc == 0
    data = json.loads(out)
    assert set(data) == {"k", "acceptance_length", "extrapolated"}
    assert data["k"] == [0, 1, 3, 5, 7]
    assert data["extrapolated"] == [False, False, False, True, True]  # measured at k=3
    tau = data["acceptance_length"]
    assert tau[0] == 1.0
    # published per-position rates 0.7296, 0.5208, 0.3545 (unconditional): tau(1), tau(3)
    assert tau[1] == pytest.approx(1.7296, abs=1e-5) and tau[2] == pytest.approx(2.6049, abs=1e-5)
    assert tau[2] < tau[3] < tau[4] < 5  # extrapolated rates add less and less


def test_accept_text_flags_extrapolated_k(capsys):
    prof = PROFILES / "paper-qwen3-8b-eagle3-rl-zero.yaml"
    rc, out, _ = run(capsys, "accept", "--profile", prof, "--k", 3, 8)
    assert rc == 0
    lines = [line for line in out.splitlines() if line.strip().split()[:1] in (["3"], ["8"])]
    assert "3.32" in lines[0] and "extrapolated" not in lines[0]
    assert "extrapolated" in lines[1]


def test_accept_drift_lowers_tau_with_rl_steps(tmp_path, capsys):
    p = AcceptanceProfile.load(PROFILES / "llama3.1-8b-eagle3-gsm8k.yaml")
    p = p.model_copy(update={"drift": p.drift.model_copy(update={"decay_per_step": 0.02})})
    p.save(tmp_path / "drift.yaml")
    taus = []
    for step in (0, 10):
        rc, out, _ = run(capsys, "accept", "--profile", tmp_path / "drift.yaml", "--k", 3, "--json",
                         "--rl-step", step)
        assert rc == 0
        taus.append(json.loads(out)["acceptance_length"][0])
    assert taus[1] < taus[0]


def test_fit_then_accept_round_trip(tmp_path, capsys):
    out = tmp_path / "p.yaml"
    rc, stdout, _ = run(capsys, "fit", "acceptance", "--format", "vllm-log", DATA / "vllm_current.log",
                        "--out", out, "--method", "eagle3")
    assert rc == 0 and out.is_file() and "k=3" in stdout
    p = AcceptanceProfile.load(out)
    assert p.method == "eagle3" and p.k_measured == 3 and p.num_drafts == pytest.approx(600)
    assert p.source.format == "vllm-log" and p.source.files == [str(DATA / "vllm_current.log")]
    rc, stdout, _ = run(capsys, "accept", "--profile", out, "--k", 3, "--json")
    assert json.loads(stdout)["acceptance_length"][0] == pytest.approx(2.8)


BAD_FITS = [
    # (what, format, files, extra args, text the one-line error must contain)
    ("wrong format: a scrape given as traces", "specdecode-bench", ["metrics_after.prom"], [], "metrics_after.prom:1"),
    ("wrong format: a log given as a scrape", "vllm-metrics", ["vllm_current.log"], [], "vllm_current.log:1"),
    ("wrong format: a scrape given as bench JSON", "vllm-bench", ["metrics_after.prom"], [], "metrics_after.prom"),
    ("wrong format: a log given as NeMo-RL metrics", "nemo-rl", ["vllm_current.log"], [], "vllm_current.log:1"),
    ("scrape without spec-decode counters", "vllm-metrics", ["metrics_nospec.prom"], [], "metrics_nospec.prom"),
    ("log without SpecDecoding metrics", "vllm-log", ["vllm_nospec.log"], [], "vllm_nospec.log"),
    ("rate > 1 in a log", "vllm-log", ["vllm_bad_rate.log"], [], "vllm_bad_rate.log:3"),
    ("rate < 0 in a bench result", "vllm-bench", ["bench_bad_rate.json"], [], "bench_bad_rate.json"),
    ("bench result without spec keys", "vllm-bench", ["bench_nospec.json"], [], "bench_nospec.json"),
    ("scrapes in the wrong order", "vllm-metrics", ["metrics_after.prom", "metrics_before.prom"], [], "went down"),
    ("k < 0", "specdecode-bench", ["specdecode_small.jsonl"], ["--k", "-1"], "--k"),
    ("missing file", "vllm-log", ["no_such.log"], [], "no_such.log"),
]


@pytest.mark.parametrize("what,fmt,files,extra,needle", BAD_FITS, ids=[b[0] for b in BAD_FITS])
def test_bad_input_is_one_line_nonzero_exit_and_no_profile(tmp_path, capsys, what, fmt, files, extra, needle):
    out = tmp_path / "profile.yaml"
    rc, stdout, err = run(capsys, "fit", "acceptance", "--format", fmt, *[DATA / f for f in files],
                          "--out", out, *extra)
    assert rc != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rlsim: error:"), err
    assert needle in lines[0]
    assert "Traceback" not in err and "internal error" not in err
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_accept_rejects_negative_k_and_bad_profiles(tmp_path, capsys):
    prof = PROFILES / "paper-qwen3-8b-eagle3-rl-think.yaml"
    rc, _, err = run(capsys, "accept", "--profile", prof, "--k", 1, -1)
    assert rc != 0 and len(err.strip().splitlines()) == 1 and "--k" in err
    bad = tmp_path / "bad.yaml"
    bad.write_text(prof.read_text().replace("conditional_rates: [0.758452, 0.758452, 0.758452]",
                                            "conditional_rates: [0.758452, 1.758452, 0.758452]"))
    rc, _, err = run(capsys, "accept", "--profile", bad, "--k", 3)
    assert rc != 0 and len(err.strip().splitlines()) == 1
    assert "bad.yaml" in err and "conditional_rates" in err
