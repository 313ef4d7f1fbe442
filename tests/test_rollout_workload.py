"""Sampling the rollout batch: length distributions, truncation at the cap, correlation within a group."""
from __future__ import annotations

import numpy as np
import pytest

from simulator.errors import RlsimError
from simulator.paths import project_root
from simulator.rollout.workload import RequestBatch, build_distribution, sample_requests
from simulator.scenario import scenario_from_dict

SPLITWISE = "calibration/vidur/splitwise_conv.csv"


def _batch(*sets, seed=0):
    sc = scenario_from_dict({}, list(sets))
    return sample_requests(sc.rollout, np.random.default_rng(seed), sc.base_dir)


def test_batch_shape_groups_and_determinism():
    b = _batch("rollout.prompts=50", "rollout.samples_per_prompt=4")
    assert b.size == 200 and list(b.prompt_id[:5]) == [0, 0, 0, 0, 1] and list(b.sample[:5]) == [0, 1, 2, 3, 0]
    # a prompt's samples share the prompt
    assert (b.prompt_tokens.reshape(50, 4) == b.prompt_tokens.reshape(50, 4)[:, :1]).all()
    again = _batch("rollout.prompts=50", "rollout.samples_per_prompt=4")
    assert (again.response_tokens == b.response_tokens).all()
    other = _batch("rollout.prompts=50", "rollout.samples_per_prompt=4", seed=1)
    assert (other.response_tokens != b.response_tokens).any()


def test_lognormal_median_and_truncation_fraction():
    b = _batch("rollout.prompts=4000", "rollout.samples_per_prompt=4", "rollout.response_tokens.median=1000",
               "rollout.response_tokens.sigma=1.0", "rollout.max_response_tokens=3000")
    assert np.median(b.response_tokens) == pytest.approx(1000, rel=0.05)
    assert b.response_tokens.max() == 3000
    # P(lognormal > 3000) = 1 - Phi(ln 3) = 0.136
    assert b.stats["truncated_fraction"] == pytest.approx(0.136, abs=0.015)
    assert b.stats["truncated_fraction"] == pytest.approx(float((b.response_tokens == 3000).mean()), abs=1e-3)


def test_lognormal_by_mean():
    b = _batch("rollout.prompts=5000", "rollout.samples_per_prompt=4", "rollout.response_tokens.median=null",
               "rollout.response_tokens.mean=800", "rollout.response_tokens.sigma=0.5",
               "rollout.max_response_tokens=100000")
    assert b.response_tokens.mean() == pytest.approx(800, rel=0.03)


def test_cap_fraction_sends_the_top_of_the_latent_to_the_cap():
    b = _batch("rollout.prompts=2000", "rollout.samples_per_prompt=4", "rollout.response_tokens.sigma=0.3",
               "rollout.max_response_tokens=8000", "rollout.cap_fraction=0.1")
    assert (b.response_tokens == 8000).mean() == pytest.approx(0.1, abs=0.015)
    assert b.truncated.mean() == pytest.approx(0.1, abs=0.015)


def test_group_correlation_of_the_log_lengths():
    def within_group_corr(rho):
        b = _batch("rollout.prompts=3000", "rollout.samples_per_prompt=2", f"rollout.group_correlation={rho}",
                   "rollout.max_response_tokens=10000000")
        x = np.log(b.response_tokens.reshape(-1, 2).astype(float))
        return np.corrcoef(x[:, 0], x[:, 1])[0, 1]

    assert within_group_corr(0.0) == pytest.approx(0.0, abs=0.06)
    assert within_group_corr(0.8) == pytest.approx(0.8, abs=0.05)


def test_empirical_from_the_splitwise_trace_matches_its_quantiles():
    import pandas as pd
    col = pd.read_csv(project_root() / SPLITWISE)["num_decode_tokens"].to_numpy()
    b = _batch("rollout.prompts=10000", "rollout.samples_per_prompt=2", "rollout.group_correlation=0",
               "rollout.response_tokens.kind=empirical", f"rollout.response_tokens.file={SPLITWISE}",
               "rollout.response_tokens.column=num_decode_tokens", "rollout.max_response_tokens=100000")
    for q in (0.25, 0.5, 0.9):
        assert np.quantile(b.response_tokens, q) == pytest.approx(np.quantile(col, q), rel=0.08)


def test_mixture_with_a_fixed_component():
    sc = scenario_from_dict({"rollout": {"max_response_tokens": 5000, "group_correlation": 0.0, "prompts": 4000,
                                         "samples_per_prompt": 2, "response_tokens": {
                                             "kind": "mixture", "weights": [3, 1],
                                             "components": [{"kind": "lognormal", "median": 300, "sigma": 0.5},
                                                            {"kind": "fixed", "value": 4000}]}}})
    b = sample_requests(sc.rollout, np.random.default_rng(0), sc.base_dir)
    assert (b.response_tokens == 4000).mean() == pytest.approx(0.25, abs=0.02)
    short = b.response_tokens[b.response_tokens != 4000]
    assert np.median(short) == pytest.approx(300, rel=0.06)


def test_empirical_file_with_negative_lengths_names_the_field(tmp_path):
    f = tmp_path / "bad.csv"
    f.write_text("n\n10\n-3\n")
    sc = scenario_from_dict({}, ["rollout.response_tokens.kind=empirical", f"rollout.response_tokens.file={f}",
                                 "rollout.response_tokens.column=n"])
    with pytest.raises(RlsimError) as e:
        build_distribution(sc.rollout.response_tokens, sc.base_dir, "rollout.response_tokens")
    assert e.value.field == "rollout.response_tokens.file" and "negative" in e.value.message
    with pytest.raises(RlsimError) as e:
        build_distribution(sc.rollout.response_tokens.model_copy(update={"column": "m"}), sc.base_dir,
                           "rollout.response_tokens")
    assert e.value.field == "rollout.response_tokens.column"


def test_request_batch_checks_its_arrays():
    with pytest.raises(RlsimError):
        RequestBatch(prompt_id=[0], sample=[0], prompt_tokens=[10], response_tokens=[5], generated=[5])
    b = RequestBatch(prompt_id=[0, 0], sample=[0, 1], prompt_tokens=[10, 10], response_tokens=[5, 7],
                     generated=[2, 0])
    c = b.concat(b.subset(np.array([False, True])))
    assert c.size == 3 and list(c.generated) == [2, 0, 0]


def test_mean_response_tokens_scales_each_batch_to_the_measured_mean():
    """A run's measured mean pins every sampled batch: the draw keeps its shape and order, only its scale moves."""
    sets = ("rollout.prompts=64", "rollout.samples_per_prompt=32", "rollout.response_tokens.median=4164",
            "rollout.response_tokens.sigma=0.8", "rollout.max_response_tokens=3986")
    for seed in range(4):
        free = _batch(*sets, seed=seed)
        pinned = _batch(*sets, "rollout.mean_response_tokens=3206", seed=seed)
        assert pinned.stats["mean_response_tokens"] == pytest.approx(3206, abs=0.5)
        assert free.stats["mean_response_tokens"] != pytest.approx(3206, abs=5)  # the free draw falls off it
        # the same draw times one factor (to the token) below the cap; the prompts are unchanged
        below = (free.response_tokens >= 200) & (free.response_tokens < 3986) & (pinned.response_tokens < 3986)
        ratio = pinned.response_tokens[below] / free.response_tokens[below]
        assert below.sum() > 200 and ratio.max() - ratio.min() < 0.01 and abs(ratio.mean() - 1) > 0.005
        assert (pinned.prompt_tokens == free.prompt_tokens).all()
        assert (pinned.truncated == (pinned.response_tokens >= 3986)).all()
    again = _batch(*sets, "rollout.mean_response_tokens=3206", seed=3)
    assert (again.response_tokens == pinned.response_tokens).all()


def test_mean_response_tokens_with_cap_fraction_and_out_of_reach():
    b = _batch("rollout.cap_fraction=0.2", "rollout.mean_response_tokens=2500", "rollout.prompts=100")
    assert b.stats["mean_response_tokens"] == pytest.approx(2500, abs=0.5)
    assert b.stats["truncated_fraction"] >= 0.2
    with pytest.raises(RlsimError) as e:  # 90% at the 4096 cap: the batch cannot average 100
        _batch("rollout.cap_fraction=0.9", "rollout.mean_response_tokens=100")
    assert e.value.field == "rollout.mean_response_tokens" and "at least" in e.value.message
    with pytest.raises(RlsimError) as e:  # above the cap: refused when the scenario is read
        _batch("rollout.mean_response_tokens=5000")
    assert "rollout.mean_response_tokens" in str(e.value)
