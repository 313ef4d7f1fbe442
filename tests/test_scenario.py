"""The typed scenario: defaults, --set overrides, validation naming the field, extension by later sections."""
from __future__ import annotations

import numbers

import pytest
import yaml
from pydantic import Field

from simulator.errors import RlsimError
from simulator.yamlio import YamlModel
from simulator.scenario import (
    Scenario, apply_overrides, default_scenario_path, load_scenario, scenario_from_dict, valid_keys,
)


def _numeric_leaves(d, prefix=""):
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            yield from _numeric_leaves(v, key + ".")
        elif isinstance(v, numbers.Number) and not isinstance(v, bool):
            yield key


def test_default_scenario_loads_and_every_number_has_a_source():
    sc = load_scenario()
    assert sc.name and sc.num_engines == sc.cluster.gpus // sc.gpus_per_engine
    raw = yaml.safe_load(default_scenario_path().read_text())
    leaves = [k for k in _numeric_leaves(raw) if not k.startswith("sources")]
    assert len(leaves) > 20
    missing = [k for k in leaves if not any(k == s or k.startswith(s + ".") for s in sc.sources)]
    assert not missing, f"numbers without a source: {missing}"
    # and the sources name real keys of the schema
    keys = set(valid_keys(Scenario))
    for s in sc.sources:
        assert s in keys or any(k.startswith(s + ".") for k in keys), s


def test_overrides_parse_yaml_scalars_and_fill_defaults():
    d = apply_overrides({}, ["engine.max_num_seqs=256", "engine.step_overhead_s=1e-3",
                             "engine.enable_chunked_prefill=false", "speculative.candidate_ks=[1, 3]",
                             "rollout.response_tokens.median=800", "sources.engine.max_num_seqs=measured"])
    sc = Scenario.from_dict(d)
    assert sc.engine.max_num_seqs == 256 and sc.engine.step_overhead_s == pytest.approx(1e-3)
    assert sc.engine.enable_chunked_prefill is False and sc.speculative.candidate_ks == [1, 3]
    assert sc.rollout.response_tokens.kind == "lognormal" and sc.rollout.response_tokens.median == 800
    assert sc.rollout.response_tokens.sigma == 1.0  # the rest of the default distribution kept
    assert sc.sources["engine.max_num_seqs"] == "measured"


def test_setting_a_new_kind_starts_the_distribution_afresh():
    sc = scenario_from_dict({}, ["rollout.response_tokens.kind=fixed", "rollout.response_tokens.value=300"])
    assert sc.rollout.response_tokens.kind == "fixed" and sc.rollout.response_tokens.median is None


def test_unknown_key_names_it_and_the_nearest_valid_key():
    with pytest.raises(RlsimError) as e:
        apply_overrides({}, ["engine.max_num_seq=3"])
    assert e.value.field == "engine.max_num_seq" and "engine.max_num_seqs" in e.value.message
    with pytest.raises(RlsimError) as e:
        apply_overrides({}, ["rollout.prompts.x=3"])
    assert e.value.field == "rollout.prompts.x"
    with pytest.raises(RlsimError) as e:
        apply_overrides({}, ["no_equals_sign"])
    assert e.value.field == "--set"


@pytest.mark.parametrize("sets, field", [
    (["engine.max_num_seqs=0"], "engine.max_num_seqs"),
    (["rollout.response_tokens.median=-5"], "rollout.response_tokens.median"),
    (["rollout.prompt_tokens.kind=fixed", "rollout.prompt_tokens.value=-1"], "rollout.prompt_tokens.value"),
    (["rollout.group_correlation=1.5"], "rollout.group_correlation"),
    (["engine.gpu_memory_utilization=0"], "engine.gpu_memory_utilization"),
    (["speculative.method=medusa"], "speculative.method"),
    (["speculative.acceptance_length=9", "speculative.num_tokens=3"], "speculative"),
    (["rollout.response_tokens.sigma=null"], "rollout.response_tokens"),
    (["engine.step_overhead_s=inf"], "engine.step_overhead_s"),
    (["engine.cpu_s_per_seq=nan"], "engine.cpu_s_per_seq"),
    (["pipeline.data_s=.inf"], "pipeline.data_s"),
    (["engine.max_num_batched_tokens=true"], "engine.max_num_batched_tokens"),
    (["rollout.response_tokens.sigma=false"], "rollout.response_tokens.sigma"),
    (["seed=-1"], "seed"),
    (["speculative.candidate_ks=[1, 100]"], "speculative"),
    (["rollout.prompts=1000000", "rollout.samples_per_prompt=2"], "rollout.samples_per_prompt"),
])
def test_validation_errors_name_the_dotted_field(sets, field):
    with pytest.raises(RlsimError) as e:
        scenario_from_dict({}, sets)
    assert str(e.value).startswith(field + ":"), str(e.value)
    assert "\n" not in str(e.value)


def test_mixture_needs_matching_weights():
    data = {"rollout": {"response_tokens": {"kind": "mixture", "weights": [1.0],
                                            "components": [{"kind": "fixed", "value": 10},
                                                           {"kind": "fixed", "value": 20}]}}}
    with pytest.raises(RlsimError) as e:
        scenario_from_dict(data)
    assert "rollout.response_tokens" in str(e.value) and "weights" in str(e.value)


def test_engine_count_derived_from_gpus_and_parallelism():
    sc = scenario_from_dict({}, ["cluster.gpus=16", "engine.tensor_parallel_size=2"])
    assert sc.num_engines == 8 and sc.num_sequences == 64 * 8
    sc = scenario_from_dict({}, ["cluster.gpus=16", "engine.data_parallel_size=3"])
    assert sc.num_engines == 3
    with pytest.raises(RlsimError) as e:
        scenario_from_dict({}, ["cluster.gpus=12", "engine.tensor_parallel_size=8"]).num_engines
    assert e.value.field == "cluster.gpus"
    with pytest.raises(RlsimError) as e:
        scenario_from_dict({}, ["cluster.gpus=8", "engine.data_parallel_size=9"]).num_engines
    assert e.value.field == "engine.data_parallel_size"


class _Pipeline(YamlModel):
    colocated: bool = True
    train_s: float = Field(1.0, ge=0)


class _ExtScenario(Scenario):
    experiment: _Pipeline | None = None


def test_later_sections_extend_the_scenario_without_changing_it(tmp_path):
    p = tmp_path / "rl.yaml"
    p.write_text(yaml.safe_dump({"name": "rl", "experiment": {"colocated": False}}))
    sc = load_scenario(p, ["experiment.train_s=2.5"], cls=_ExtScenario)
    assert sc.experiment.colocated is False and sc.experiment.train_s == 2.5
    assert sc.engine.block_size == 16  # the rollout sections as before
    with pytest.raises(RlsimError) as e:  # the base class does not know the section
        load_scenario(p)
    assert "experiment" in str(e.value)
    with pytest.raises(RlsimError) as e:
        load_scenario(p, ["experiment.train=2"], cls=_ExtScenario)
    assert "experiment.train_s" in str(e.value)


def test_the_rl_pipeline_sections_are_part_of_the_scenario():
    sc = scenario_from_dict({}, ["pipeline.mode=async", "pipeline.colocated=false", "training.tensor_parallel_size=2"])
    assert sc.pipeline.mode == "async" and sc.training.tensor_parallel_size == 2
    with pytest.raises(RlsimError) as e:
        scenario_from_dict({}, ["pipeline.max_stalenes=2"])
    assert "pipeline.max_staleness" in str(e.value)


def test_relative_files_resolve_against_the_scenario_then_the_project(tmp_path):
    (tmp_path / "lens.csv").write_text("n\n5\n7\n")
    p = tmp_path / "s.yaml"
    p.write_text(yaml.safe_dump({"rollout": {"response_tokens": {"kind": "empirical", "file": "lens.csv",
                                                                   "column": "n"}}}))
    from simulator.rollout.workload import build_distribution
    sc = load_scenario(p)
    d = build_distribution(sc.rollout.response_tokens, sc.base_dir, "rollout.response_tokens")
    assert d.lo == 5 and d.hi == 7
    sc2 = scenario_from_dict({}, ["rollout.response_tokens.kind=empirical",
                                  "rollout.response_tokens.file=calibration/vidur/splitwise_conv.csv",
                                  "rollout.response_tokens.column=num_decode_tokens"])
    assert build_distribution(sc2.rollout.response_tokens, sc2.base_dir, "x").hi > 100


def test_booleans_stay_booleans_and_whole_numbers_stay_numbers():
    """Only numeric fields refuse true/false; boolean fields take them, and numbers keep their YAML forms."""
    scn = scenario_from_dict({}, ["engine.async_scheduling=true", "engine.max_num_seqs=64", "rollout.cap_fraction=0.1"])
    assert scn.engine.async_scheduling is True and scn.engine.max_num_seqs == 64 and scn.rollout.cap_fraction == 0.1
    with pytest.raises(RlsimError) as e:
        scenario_from_dict({}, ["rollout.cap_fraction=true"])
    assert str(e.value).startswith("rollout.cap_fraction:") and "boolean" in str(e.value)


def _numeric_keys(cls, prefix=""):
    """Dotted keys of every int/float field of a config model and its sub-models (typing walk, no instance)."""
    import types
    import typing
    from pydantic import BaseModel
    for name, f in cls.model_fields.items():
        args = typing.get_args(f.annotation) if typing.get_origin(f.annotation) in (typing.Union, types.UnionType) \
            else (f.annotation,)
        models = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
        if models:
            yield from _numeric_keys(models[0], f"{prefix}{name}.")
        elif bool not in args and any(a in (int, float) for a in args):
            yield prefix + name


NUMERIC_KEYS = sorted(_numeric_keys(Scenario))


@pytest.mark.parametrize("value", [".inf", ".nan", "true", "abc", "[1, 2]"])
def test_no_numeric_key_takes_a_non_number(value):
    """Every int/float key of every section (found by walking the models, so new keys are covered): infinity, NaN,
    a boolean, a word or a list is one error naming that key."""
    assert len(NUMERIC_KEYS) > 60 and "training.moe_layer_overhead_s" in NUMERIC_KEYS
    for key in NUMERIC_KEYS:
        with pytest.raises(RlsimError) as e:
            scenario_from_dict({}, [f"{key}={value}"])
        assert str(e.value).startswith(key + ":"), (key, str(e.value))
