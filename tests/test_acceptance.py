"""Acceptance models: conversions, the chain model and its sampler, replay, drift, profiles."""
from __future__ import annotations

import csv
import time

import numpy as np
import pytest

from simulator.errors import RlsimError
from simulator.paths import project_root, shared_dir
from simulator.specdec.acceptance import (
    AcceptanceProfile, ChainAcceptance, Drift, Extrapolation, OnlineTraining, ReplayTraces, Source,
    alpha_from_tau, conditional_from_unconditional, concave_fit, drift_factor, expected_acceptance_length,
    profile_at_step, profile_from_mean_length, profile_from_unconditional, rates_at_step, replay_tau,
    tau_from_conditional, tau_iid, unconditional_from_conditional)

PROFILES = project_root() / "workloads" / "acceptance"
SRC = Source(format="test", files=["hand-written"])


def published(name: str) -> list[dict]:
    path = shared_dir() / "published" / name
    if not path.is_file():
        pytest.skip(f"{path} not present")
    with open(path) as f:
        return list(csv.DictReader(line for line in f if not line.startswith("#")))


# ---------------------------------------------------------------- conversions


@pytest.mark.parametrize("alpha,k", [(0.0, 3), (0.3, 1), (0.7, 3), (0.9, 7), (1.0, 4), (0.5, 0)])
def test_tau_iid_is_the_geometric_sum(alpha, k):
    assert tau_iid(alpha, k) == pytest.approx(sum(alpha ** i for i in range(k + 1)))


@pytest.mark.parametrize("tau,k", [(2.77, 3), (3.32, 3), (1.05, 1), (5.9, 7), (1.0, 3), (4.0, 3)])
def test_alpha_from_tau_reproduces_the_mean_length(tau, k):
    a = alpha_from_tau(tau, k)
    assert 0.0 <= a <= 1.0
    assert sum(a ** i for i in range(k + 1)) == pytest.approx(tau, abs=1e-9)


def test_alpha_from_tau_rejects_impossible_lengths():
    with pytest.raises(RlsimError):
        alpha_from_tau(4.5, 3)  # more than k+1 tokens per step
    with pytest.raises(RlsimError):
        alpha_from_tau(0.9, 3)
    with pytest.raises(RlsimError):
        alpha_from_tau(2.0, -1)


def test_conditional_from_unconditional_by_hand():
    c = conditional_from_unconditional([0.8, 0.6, 0.4])
    assert c == pytest.approx([0.8, 0.75, 0.4 / 0.6])
    assert unconditional_from_conditional(c) == pytest.approx([0.8, 0.6, 0.4])
    # nobody reached position 3: its conditional rate is 0, not nan
    assert conditional_from_unconditional([0.5, 0.0, 0.0]) == pytest.approx([0.5, 0.0, 0.0])


@pytest.mark.parametrize("bad", [[0.5, 0.7, 0.2], [1.2, 0.5], [0.5, -0.1], [0.5, float("nan")]])
def test_conditional_from_unconditional_rejects_bad_rates(bad):
    with pytest.raises(RlsimError):
        conditional_from_unconditional(bad)


def test_tau_from_conditional_matches_hand_sum():
    # 1 + 0.8 + 0.8*0.5 + 0.8*0.5*0.25
    assert tau_from_conditional([0.8, 0.5, 0.25]) == pytest.approx(1 + 0.8 + 0.4 + 0.1)
    assert tau_from_conditional([0.8, 0.5, 0.25], 1) == pytest.approx(1.8)
    assert tau_from_conditional([0.8], 0) == 1.0


def test_concave_fit_is_exact_on_concave_curves_and_monotone_otherwise():
    taus = np.array([1.7, 2.2, 2.5, 2.65])
    assert concave_fit(taus) == pytest.approx(np.diff(np.r_[1.0, taus]))
    u = concave_fit([1.5, 1.8, 2.0, 2.25])  # marginal gains .5 .3 .2 .25: not concave
    assert np.all(np.diff(u) <= 1e-12) and np.all(u >= 0)
    assert 1 + u.sum() == pytest.approx(2.25, rel=0.02)


# ---------------------------------------------------------------- chain model


def test_chain_tau_and_extrapolation_flags():
    ex = Extrapolation(model="geometric", rate=0.5, decay=0.8)
    m = ChainAcceptance([0.9, 0.8, 0.6], ex)
    c5 = [0.9, 0.8, 0.6, 0.5 * 0.8, 0.5 * 0.8 ** 2]
    assert m.conditional(5) == pytest.approx(c5)
    assert m.tau(5) == pytest.approx(1 + np.sum(np.cumprod(c5)))
    assert m.taus([0, 1, 3]) == pytest.approx([1.0, 1.9, 1 + 0.9 + 0.72 + 0.432])
    assert [m.extrapolated(k) for k in (0, 3, 4)] == [False, False, True]
    with pytest.raises(RlsimError):
        ChainAcceptance([0.9], Extrapolation(model="none")).tau(2)
    with pytest.raises(RlsimError):
        m.tau(-1)


def test_pmf_sums_to_one_and_has_the_right_mean():
    m = ChainAcceptance([0.9, 0.7, 0.5, 0.3])
    p = m.pmf(4)
    assert p.sum() == pytest.approx(1.0) and np.all(p >= 0)
    assert np.dot(np.arange(1, 6), p) == pytest.approx(m.tau(4))
    assert p[0] == pytest.approx(0.1)  # first draft token rejected


def test_sample_mean_and_distribution_match_the_model():
    m = ChainAcceptance([0.8, 0.7, 0.6, 0.5, 0.4])
    x = m.sample(np.random.default_rng(1), 5, size=200_000)
    assert x.min() >= 1 and x.max() <= 6
    assert x.mean() == pytest.approx(m.tau(5), rel=0.01)
    freq = np.bincount(x, minlength=7)[1:] / x.size
    assert freq == pytest.approx(m.pmf(5), abs=0.005)


def test_sample_per_sequence_k_and_seeding():
    m = ChainAcceptance.iid(0.95)
    k = np.array([0, 1, 3, 7] * 5000)
    x = m.sample(np.random.default_rng(7), k)
    assert x.shape == k.shape
    assert np.all(x <= k + 1) and np.all(x >= 1) and np.all(x[k == 0] == 1)
    for kk in (1, 3, 7):
        assert x[k == kk].mean() == pytest.approx(tau_iid(0.95, kk), rel=0.03)
    assert np.array_equal(x, m.sample(np.random.default_rng(7), k))
    assert not np.array_equal(x, m.sample(np.random.default_rng(8), k))


def test_sample_steps_is_fast_and_shaped():
    m = ChainAcceptance([0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2])
    k = np.random.default_rng(0).integers(0, 8, size=10_000)
    t0 = time.perf_counter()
    x = m.sample_steps(np.random.default_rng(3), k, 100)
    assert time.perf_counter() - t0 < 1.0  # 1M verify steps
    assert x.shape == (10_000, 100)
    assert np.all(x <= (k + 1)[:, None])
    sel = k == 4
    assert x[sel].mean() == pytest.approx(m.tau(4), rel=0.01)
    y = m.sample_steps(np.random.default_rng(3), 3, 50, size=(20,))
    assert y.shape == (20, 50) and y.max() <= 4


# ---------------------------------------------------------------- replay


def naive_replay_tau(traces, k):
    """The definition, written plainly: start at 0, emit min(acc_len[p], k+1, L-p), move on."""
    tokens = steps = 0
    for a in traces:
        p, L = 0, len(a)
        while p < L:
            n = min(int(a[p]), k + 1, L - p)
            p += n
            tokens += n
            steps += 1
    return tokens / steps


def test_replay_by_hand():
    # worked on paper: tokens 18; steps 12, 10, 9, 8 at k = 1, 2, 3, 4 (the last value of
    # trace 3 runs past the end of its sequence and is capped)
    traces = [[3, 2, 1, 1, 4, 3, 2, 1], [1, 1, 5, 4, 3, 2, 1], [2, 1, 2]]
    r = ReplayTraces(traces)
    assert r.n_tokens == 18
    assert r.steps([0, 1, 2, 3, 4, 9]).tolist() == [18, 12, 10, 9, 8, 8]
    assert r.tau(1) == pytest.approx(1.5) and replay_tau(traces, 3) == pytest.approx(2.0)


def test_vectorised_replay_equals_the_definition_on_real_traces():
    from simulator.specdec.importers.specdecode_bench import read_traces
    traces = read_traces([project_root() / "workloads/traces/specdecode-bench/llama3.1-8b-gsm8k.jsonl"], "ngram")
    sub = [traces[i] for i in np.random.default_rng(0).choice(len(traces), 60, replace=False)]
    r = ReplayTraces(sub)
    for k in (0, 1, 2, 5, 7, 12):
        assert r.tau(k) == pytest.approx(naive_replay_tau(sub, k), rel=1e-12)


def test_replay_sampler_is_seeded_bounded_and_unbiased():
    rng = np.random.default_rng(5)
    traces = [rng.geometric(0.4, size=int(n)) for n in rng.integers(20, 200, size=40)]
    r = ReplayTraces(traces)
    x = r.sample_steps(np.random.default_rng(11), 3, 400, size=500)
    assert x.shape == (500, 400) and x.min() >= 1 and x.max() <= 4
    assert np.array_equal(x, r.sample_steps(np.random.default_rng(11), 3, 400, size=500))
    assert x.mean() == pytest.approx(r.tau(3), rel=0.02)  # renewal-reward: tokens / steps
    trace, pos = r.start(np.random.default_rng(0), 4)
    n = r.emitted(trace, pos, np.array([0, 1, 2, 9]))
    assert np.all(n <= np.array([1, 2, 3, 10]))
    assert np.all(n == np.minimum([traces[t][0] for t in trace], [1, 2, 3, 10]))


# ---------------------------------------------------------------- drift and online training


def _profile(**kw) -> AcceptanceProfile:
    return profile_from_unconditional([0.8, 0.6, 0.4], method="eagle3", source=SRC, **kw)


def test_drift_decays_rates_and_online_training_holds_them():
    p = _profile()
    p = p.model_copy(update={"drift": Drift(decay_per_step=0.01, source="assumed")})
    c0 = np.array(p.conditional_rates)
    assert rates_at_step(p, 0) == pytest.approx(c0)
    assert rates_at_step(p, 10) == pytest.approx(c0 * 0.99 ** 10)
    t = [p.model(s).tau(3) for s in (0, 10, 50)]
    assert t[0] > t[1] > t[2]
    held = p.model_copy(update={"online_training": OnlineTraining(enabled=True, held_fraction=0.95,
                                                                  cost_s_per_step=4.0, source="assumed")})
    assert drift_factor(held, 2) == pytest.approx(0.99 ** 2)  # not yet down to the held level
    assert rates_at_step(held, 200) == pytest.approx(c0 * 0.95)
    assert profile_at_step(held, 200).extrapolation.rate == pytest.approx(p.extrapolation.rate * 0.95)
    taus, _ = expected_acceptance_length(held, [3], rl_step=200)
    assert taus[0] == pytest.approx(tau_from_conditional(c0 * 0.95))


# ---------------------------------------------------------------- profiles


def test_profile_round_trips_through_yaml(tmp_path):
    p = _profile(name="x", num_drafts=1000, measured_tau=[(3, 2.8)])
    p.save(tmp_path / "p.yaml", header="test")
    q = AcceptanceProfile.load(tmp_path / "p.yaml")
    assert q == p
    assert q.model().tau(3) == pytest.approx(2.8)


@pytest.mark.parametrize("edit,needle", [
    ("conditional_rates: [0.8, 1.5, 0.5]", "conditional_rates"),
    ("conditional_rates: [0.8, 0.5]", "k_measured"),
    ("k_measured: 0", "k_measured"),
])
def test_bad_profiles_are_one_line_errors(tmp_path, edit, needle):
    p = _profile()
    text = p.to_yaml()
    key = edit.split(":")[0]
    lines = [edit if line.startswith(key + ":") else line for line in text.splitlines()]
    path = tmp_path / "bad.yaml"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(RlsimError) as e:
        AcceptanceProfile.load(path)
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_iid_profile_from_paper_tau_values():
    for row in published("paper_specdec_rl_8b.csv"):
        if row["method"] != "eagle3":
            continue
        tau, k = float(row["acceptance_length"]), int(row["k"])
        p = profile_from_mean_length(tau, k, method="eagle3", source=SRC)
        assert len(set(p.conditional_rates)) == 1  # i.i.d.
        assert p.model().tau(k) == pytest.approx(tau, abs=1e-4)
        shipped = AcceptanceProfile.load(PROFILES / f"paper-qwen3-8b-eagle3-{row['workload']}.yaml")
        assert shipped.model().tau(k) == pytest.approx(tau, abs=1e-4)
        assert "2604.26779" in shipped.source.detail and shipped.source.files


def test_published_vllm_baselines_give_the_published_mean_lengths():
    rows = published("vllm_eagle3_acceptance_baselines.csv")
    assert rows
    shipped = {AcceptanceProfile.load(p).source.detail: AcceptanceProfile.load(p)
               for p in PROFILES.glob("vllm-baseline-*.yaml")}
    for row in rows:
        u = [float(row[f"pos{i}"]) for i in range(3)]
        target, rtol = float(row["mean_acceptance_length"]), float(row["rtol"])
        tau = profile_from_unconditional(u, method="eagle3", source=SRC).model().tau(3)
        assert tau == pytest.approx(target, rel=rtol)
        mine = [p for d, p in shipped.items() if row["verifier"] in d and row["drafter"] in d]
        assert len(mine) == 1
        assert mine[0].model().tau(3) == pytest.approx(target, rel=rtol)
        assert mine[0].model().unconditional(3) == pytest.approx(u, abs=1e-5)
