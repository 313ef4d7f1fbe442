"""`rlsim step`: the command forms later checks rely on, and its bad-input handling."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from conftest import assert_main_error, assert_one_line_error, run_cli


def test_step_json_has_step_ms_and_breakdown():
    p = run_cli("step", "--hardware", "h200", "--model", "qwen3-8b", "--batch", "64", "--q-len", "4", "--context",
                "4096", "--json")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["step_ms"] > 0
    assert abs(sum(out["breakdown"].values()) - out["step_ms"]) < 1e-6 * out["step_ms"]
    assert {"gemm", "attention", "moe", "comm", "other"} == set(out["breakdown"])


def test_step_text_and_name_spellings():
    a = run_cli("step", "--hardware", "H200", "--model", "Qwen3-8B", "--batch", "8", "--context", "1024", "--json")
    b = run_cli("step", "--hardware", "h200-sxm", "--model", "qwen3-8b", "--batch", "8", "--context", "1024",
                "--tp", "1", "--dtype", "bf16", "--json")
    assert json.loads(a.stdout)["step_ms"] == json.loads(b.stdout)["step_ms"]
    t = run_cli("step", "--hardware", "h200", "--model", "llama-3.1-8b", "--batch", "8", "--context", "1024")
    assert t.returncode == 0 and "ms" in t.stdout and "attention" in t.stdout


def test_cases_file(tmp_path):
    cases = tmp_path / "cases.csv"
    pd.DataFrame({"model": ["qwen3-8b", "Llama-3.1-8B", "qwen3-30b-a3b", "qwen3-32b"], "batch": [1, 64, 16, 8],
                  "q_len": [1, 4, 1, 4], "context": [1024, 4096, 16384, 2048],
                  "tp": [1, 1, 1, 2]}).to_csv(cases, index=False)
    out = tmp_path / "pred.csv"
    p = run_cli("step", "--hardware", "h200", "--cases", str(cases), "--out", str(out))
    assert p.returncode == 0, p.stderr
    df = pd.read_csv(out)
    assert list(df.columns[:5]) == ["model", "batch", "q_len", "context", "tp"] and "step_ms" in df
    single = json.loads(run_cli("step", "--hardware", "h200", "--model", "llama-3.1-8b", "--batch", "64", "--q-len",
                                "4", "--context", "4096", "--json").stdout)["step_ms"]
    assert abs(df["step_ms"][1] - single) < 1e-4


def test_unknown_model_and_hardware_list_known_names():
    p = run_cli("step", "--hardware", "h200", "--model", "gpt-9", "--batch", "1", "--context", "10")
    assert_one_line_error(p, "model", "qwen3-8b")
    p = run_cli("step", "--hardware", "mi999", "--model", "qwen3-8b", "--batch", "1", "--context", "10")
    assert_one_line_error(p, "hardware", "h200-sxm")


def test_tp_that_does_not_divide_heads():
    p = run_cli("step", "--hardware", "h200", "--model", "qwen3-8b", "--batch", "1", "--context", "10", "--tp", "3")
    assert_one_line_error(p, "tp", "32")


def test_ep_that_does_not_divide_experts():
    p = run_cli("step", "--hardware", "h200", "--model", "qwen3-30b-a3b", "--batch", "1", "--context", "10",
                "--ep", "3")
    assert_one_line_error(p, "ep", "128")


def test_batch_that_does_not_fit_says_by_how_much():
    p = run_cli("step", "--hardware", "h200", "--model", "qwen3-32b", "--batch", "256", "--context", "16384")
    assert_one_line_error(p, "batch", "GiB")


def test_bad_cases_file_leaves_no_output(tmp_path):
    cases = tmp_path / "cases.csv"
    cases.write_text("model,batch,q_len,context\nqwen3-8b,1,1,100\nnope-1b,1,1,100\n")
    out = tmp_path / "pred.csv"
    p = run_cli("step", "--hardware", "h200", "--cases", str(cases), "--out", str(out))
    assert_one_line_error(p, "cases.csv:3")
    assert not out.exists()
    cases.write_text("model,batch\nqwen3-8b,1\n")
    assert_one_line_error(run_cli("step", "--hardware", "h200", "--cases", str(cases), "--out", str(out)), "columns")


@pytest.mark.parametrize("row, needle", [
    ("qwen3-8b,inf,1,100", "whole numbers"),  # an OverflowError before
    ("qwen3-8b,2.5,1,100", "whole numbers"),  # read as 2 before
    ("qwen3-8b,10000000,1,100", "batch <= 1,000,000"),  # the memory for the batch before
    ("qwen3-8b,1,1,1e308", "context <= 2,147,483,647"),  # an infinite step before
])
def test_a_bad_cases_row_is_the_only_line(tmp_path, row, needle):
    """Every row is checked before any is predicted, so no memory note of an earlier row precedes the error."""
    cases = tmp_path / "cases.csv"
    cases.write_text(f"# steps to predict\nmodel,batch,q_len,context\nqwen3-8b,4096,1,16384\n{row}\n")
    out = tmp_path / "pred.csv"
    assert_one_line_error(run_cli("step", "--hardware", "h200", "--cases", str(cases), "--out", str(out)),
                          "cases.csv:4", needle)
    assert not out.exists()


def test_a_subcommand_builds_only_its_own_parser_and_help_lists_them_all():
    from simulator.cli.main import COMMANDS, load_commands

    assert list(load_commands(["step"])) == ["step"]
    assert set(load_commands()) == set(COMMANDS)
    top = run_cli("--help")
    assert top.returncode == 0 and all(name in top.stdout for name in COMMANDS)
    typo = run_cli("stepp")
    assert typo.returncode == 2 and "invalid choice" in typo.stderr and "'step'" in typo.stderr


@pytest.mark.parametrize("args, needle", [
    (["--kv-dtype", "fp7"], "--kv-dtype: unknown KV-cache dtype 'fp7'"),
    (["--tp", "3"], "--tp: tp=3 does not divide"),
    (["--dtype", "int3"], "--dtype: unknown dtype"),
    (["--attention-backend", "nope"], "--attention-backend: profile H200-SXM has no attention backend"),
    (["--out", "pred.csv"], "--out: writes the predictions of --cases"),
])
def test_bad_options_name_the_option(capsys, args, needle):
    assert_main_error(capsys, ["step", "--hardware", "h200", "--model", "qwen3-8b", "--batch", "1", "--context", "10",
                               *args], needle)


def test_memory_errors_name_what_to_change():
    """Weights that alone overflow a GPU name the parallelism; a single sequence's KV cache, the context."""
    assert_one_line_error(run_cli("step", "--hardware", "h200", "--model", "qwen3-235b-a22b", "--batch", "1",
                                  "--context", "100"), "--tp", "weights alone")
    assert_one_line_error(run_cli("step", "--hardware", "h200", "--model", "llama-3.1-8b", "--batch", "1",
                                  "--context", "10000000"), "--context", "KV cache")


def test_cases_output_must_be_a_csv_path(tmp_path):
    cases = tmp_path / "cases.csv"
    cases.write_text("model,batch,q_len,context\nllama-3.1-8b,1,1,100\n")
    out = tmp_path / "pred.txt"
    assert_one_line_error(run_cli("step", "--hardware", "h200", "--cases", str(cases), "--out", str(out)),
                          "--out", ".csv")
    assert not out.exists()
