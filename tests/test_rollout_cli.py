"""`rlsim rollout` through the CLI: outputs, tables, the trace, and every kind of bad input."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from conftest import assert_one_line_error, run_cli
from simulator.cli.main import main

KEYS = {"rollout_s", "tokens_per_s", "num_sequences", "generated_tokens", "mean_acceptance_length"}


def run(capsys, *argv):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_default_scenario_json(capsys):
    rc, out, err = run(capsys, "rollout", "--json")
    assert rc == 0, err
    data = json.loads(out)
    assert KEYS <= set(data)
    assert data["num_sequences"] == 64 * 8 and data["engines"] == 8 and data["mode"] == "fast"
    assert data["rollout_s"] > 0 and data["tokens_per_s"] == pytest.approx(data["generated_tokens"] / data["rollout_s"])
    assert data["mean_acceptance_length"] == 1.0
    assert data["tokens_per_s_per_gpu"] == pytest.approx(data["tokens_per_s"] / 8)


def test_text_summary_and_overrides(capsys):
    rc, out, _ = run(capsys, "rollout", "--set", "rollout.prompts=8", "speculative.method=eagle3", "--seed", "3")
    assert rc == 0
    for needle in ("rollout:", "tokens/s/GPU", "engines:", "tail:", "mean acceptance length", "64 sequences"):
        assert needle in out, needle
    rc, out2, _ = run(capsys, "rollout", "--set", "rollout.prompts=8", "--set", "speculative.method=eagle3",
                      "--seed", "3")
    # repeated --set is the same as one; same seed, same output (all but the wall-time line)
    assert out2.splitlines()[:-1] == out.splitlines()[:-1]


def test_exact_mode_and_written_outputs(tmp_path, capsys):
    req, iv, tr = tmp_path / "req.parquet", tmp_path / "iv.csv", tmp_path / "trace.json"
    rc, out, err = run(capsys, "rollout", "--set", "rollout.prompts=4", "cluster.gpus=2", "--mode", "exact",
                       "--requests-out", req, "--intervals-out", iv, "--trace", tr, "--json")
    assert rc == 0, err
    data = json.loads(out)
    q = pd.read_parquet(req)
    assert len(q) == 32 and {"engine", "start_s", "finish_s", "prompt_tokens", "response_tokens", "decode_steps",
                             "accepted_tokens"} <= set(q.columns)
    assert q.finish_s.max() == pytest.approx(data["rollout_s"])
    ivs = pd.read_csv(iv)
    assert ivs.iterations.sum() == data["iterations"] and set(ivs.engine) == {0, 1}
    assert {"start_s", "running", "tokens_per_iteration", "step_s", "k"} <= set(ivs.columns)
    trace = json.loads(tr.read_text())
    xs = [e for e in trace["traceEvents"] if e["ph"] == "X"]
    assert len(xs) == len(ivs) and {e["tid"] for e in xs} == {0, 1}
    assert max(e["ts"] + e["dur"] for e in xs) == pytest.approx(data["rollout_s"] * 1e6)


def test_scenario_file_argument(tmp_path, capsys):
    p = tmp_path / "s.yaml"
    p.write_text("name: mine\nrollout: {prompts: 2, samples_per_prompt: 4}\ncluster: {gpus: 1}\n")
    rc, out, _ = run(capsys, "rollout", p, "--json")
    assert rc == 0 and json.loads(out)["name"] == "mine" and json.loads(out)["num_sequences"] == 8


@pytest.mark.parametrize("args, needle", [
    (["--set", "model=qwen3-235b-a22b"], "engine.tensor_parallel_size"),
    (["--set", "engine.max_num_seqs=0"], "engine.max_num_seqs"),
    (["--set", "rollout.response_tokens.median=-100"], "rollout.response_tokens.median"),
    (["--set", "rollout.prompt_tokens.kind=fixed", "rollout.prompt_tokens.value=-3"], "rollout.prompt_tokens.value"),
    (["--set", "engine.max_num_seq=4"], "engine.max_num_seq: unknown key (did you mean engine.max_num_seqs?)"),
    (["--set", "engine.tensor_parallel_size=3"], "engine.tensor_parallel_size"),
    (["--set", "cluster.gpus=12", "engine.tensor_parallel_size=8"], "cluster.gpus"),
    (["--set", "cluster.hardware=h300"], "cluster.hardware"),
    (["--set", "speculative.method=eagle3", "speculative.profile=nope.yaml"], "speculative.profile"),
    (["--set", "rollout.max_response_tokens=2000000"], "rollout.max_response_tokens"),
    (["--set", "rollout.prompt_tokens.median=1e9"], "rollout.prompt_tokens:"),
    (["--set", "rollout.prompt_tokens.sigma=1e9"], "rollout.prompt_tokens:"),
    (["--set", "engine.max_num_batched_tokens=512", "engine.max_num_seqs=1024"], "engine.max_num_batched_tokens"),
    (["--set", "cluster.gpus=200000"], "cluster.gpus: 200,000 data-parallel engines"),
    (["--seed", "-1"], "--seed"),
    (["--mode", "slow"], "--mode"),
    (["--requests-out", "x.xlsx"], "--requests-out"),
    (["no_such_scenario.yaml"], "no_such_scenario.yaml"),
])
def test_bad_input_is_one_line_naming_the_field_and_writes_nothing(tmp_path, capsys, args, needle):
    outs = [tmp_path / "r.csv", tmp_path / "i.csv", tmp_path / "t.json"]
    extra = [] if "--requests-out" in args else ["--requests-out", outs[0]]
    rc, out, err = run(capsys, "rollout", *args, *extra, "--intervals-out", outs[1], "--trace", outs[2])
    assert rc == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rlsim: error:"), err
    assert needle in lines[0], lines[0]
    assert not any(p.exists() for p in outs) and not list(tmp_path.iterdir())


def test_bad_input_in_a_fresh_process(tmp_path):
    proc = run_cli("rollout", "--set", "engine.max_num_seqs=0", "--json", "--requests-out", str(tmp_path / "r.csv"))
    assert proc.returncode == 2 and proc.stdout == ""
    assert_one_line_error(proc, "engine.max_num_seqs")
    assert not (tmp_path / "r.csv").exists()


def test_negative_lengths_in_an_empirical_file(tmp_path, capsys):
    f = tmp_path / "lengths.csv"
    f.write_text("tokens\n100\n-20\n300\n")
    out = tmp_path / "r.csv"
    rc, stdout, err = run(capsys, "rollout", "--set", "rollout.response_tokens.kind=empirical",
                          f"rollout.response_tokens.file={f}", "rollout.response_tokens.column=tokens",
                          "--requests-out", out)
    assert rc == 2 and stdout == "" and len(err.strip().splitlines()) == 1
    assert "rollout.response_tokens.file" in err and "negative" in err
    assert not out.exists()


def test_a_huge_lognormal_sigma_stays_finite_and_quiet(capsys):
    """sigma far past any real length spread: every response runs to the cap or stops at once, with no overflow
    warnings on stderr."""
    rc, out, err = run(capsys, "rollout", "--set", "rollout.response_tokens.sigma=1e9", "rollout.prompts=4",
                       "--json")
    assert rc == 0 and err == "", err
    lens = json.loads(out)
    assert lens["num_sequences"] == 32 and lens["generated_tokens"] > 0


def test_an_output_path_that_cannot_be_written_is_one_line_and_leaves_nothing(tmp_path, capsys):
    """A folder where the file should go (or any OS refusal) names the path; no temporary file stays behind."""
    (tmp_path / "trace.json").mkdir()
    rc, out, err = run(capsys, "rollout", "--trace", tmp_path / "trace.json", "--json")
    lines = err.strip().splitlines()
    assert rc == 2 and out == "" and len(lines) == 1, err
    assert f"{tmp_path / 'trace.json'}: cannot write here" in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["trace.json"]


def test_an_engine_that_fits_at_a_higher_utilization_names_the_utilization():
    assert_one_line_error(run_cli("rollout", "--set", "engine.gpu_memory_utilization=0.05"),
                          "engine.gpu_memory_utilization", "raise gpu_memory_utilization")
    assert_one_line_error(run_cli("rollout", "--set", "model=qwen3-235b-a22b"), "engine.tensor_parallel_size")
