"""Model catalogue: parameter counts computed from the architecture against the published totals."""
from __future__ import annotations

import pytest

from simulator.errors import RlsimError
from simulator.model_config import ModelConfig, load_model, model_names

REQUIRED = ["Llama-3.1-8B", "Llama-3.1-70B", "Qwen3-0.6B", "Qwen3-1.7B", "Qwen3-8B", "Qwen3-32B", "Qwen3-30B-A3B",
            "Qwen3-235B-A22B", "DeepSeek-V3", "EAGLE3-Llama-3.1-8B", "EAGLE3-Qwen3-8B", "DeepSeek-V3-MTP"]


def test_catalogue_has_the_required_models():
    names = {n.lower() for n in model_names()}
    for n in REQUIRED:
        assert n.lower() in names


@pytest.mark.parametrize("name", [n for n in REQUIRED if load_model(n).published is not None])
def test_parameter_counts_match_published_within_2_percent(name):
    m = load_model(name)
    assert m.total_params() == pytest.approx(m.published.total_params, rel=0.02)
    if m.published.active_params:
        assert m.active_params() == pytest.approx(m.published.active_params, rel=0.02)


def test_moe_active_is_much_smaller_than_total():
    m = load_model("qwen3-235b-a22b")
    assert m.active_params() < 0.12 * m.total_params()
    assert load_model("qwen3-8b").active_params() == load_model("qwen3-8b").total_params()


def test_mla_kv_cache_is_the_compressed_latent():
    ds = load_model("deepseek-v3")
    assert ds.attention.kv_cache_elems_per_token == 512 + 64
    # a GQA model caches K and V for every KV head
    assert load_model("llama-3.1-8b").attention.kv_cache_elems_per_token == 2 * 8 * 128


def test_draft_heads_point_at_catalogue_targets():
    for n in ["EAGLE3-Llama-3.1-8B", "EAGLE3-Qwen3-8B", "DeepSeek-V3-MTP"]:
        d = load_model(n)
        assert d.draft is not None
        target = load_model(d.draft.target)
        assert d.hidden == target.hidden
        assert d.total_params() < 0.1 * target.total_params()


def test_names_are_case_insensitive_and_aliases_work():
    assert load_model("QWEN3-8B").name == load_model("qwen3-8b").name == "Qwen3-8B"
    assert load_model("meta-llama/Llama-3.1-8B-Instruct").name == "Llama-3.1-8B"


def test_unknown_model_lists_known_names():
    with pytest.raises(RlsimError) as e:
        load_model("gpt-9")
    assert "Qwen3-8B" in str(e.value) and "model" in str(e.value)


def test_a_user_adds_a_model_with_one_yaml_file(tmp_path):
    p = tmp_path / "my-model.yaml"
    p.write_text("name: My-1B\nsource: test\nlayers: 16\nhidden: 2048\nvocab: 32000\n"
                 "attention: {heads: 16, kv_heads: 4, head_dim: 128}\nffn: 8192\n")
    m = load_model(str(p))
    per_layer = 2048 * (16 + 8) * 128 + 16 * 128 * 2048 + 3 * 2048 * 8192 + 2 * 2048
    assert m.total_params() == 16 * per_layer + 2 * 32000 * 2048 + 2048


def test_yaml_round_trip(tmp_path):
    m = load_model("deepseek-v3")
    p = tmp_path / "ds.yaml"
    m.save(p)
    assert ModelConfig.load(p) == m


def test_bad_model_yaml_names_the_field(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("name: Bad\nsource: t\nlayers: 4\nhidden: 64\nvocab: 100\nattention: {heads: 6, kv_heads: 4}\n"
                 "ffn: 128\n")
    with pytest.raises(RlsimError) as e:
        load_model(str(p))
    assert "attention" in str(e.value)
