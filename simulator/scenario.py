"""The scenario: one typed YAML file that says what runs where (model, cluster, engine, rollout, speculation).

Every section forbids unknown keys. `load_scenario(path, sets)` reads a file, applies `--set dotted.key=value`
overrides (`apply_overrides`: values parsed as YAML scalars; an unknown key names the nearest valid one) and
validates; every error is one RlsimError naming the dotted field. `sources` maps dotted keys to where each
number came from (a file, a datasheet, a documented default or a stated assumption).

Later subsystems add their own optional top-level sections (the RL pipeline: `pipeline`, `training`,
`reward`) at the marked place in `Scenario`, or by subclassing `Scenario` and passing the subclass to
`load_scenario(..., cls=...)`; the sections here do not change.
"""
from __future__ import annotations

import difflib
import os
import typing
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, PrivateAttr, field_validator, model_validator

from simulator.errors import RlsimError
from simulator.paths import project_root, scenarios_dir, shared_dir
from simulator.pipeline.config import PipelineConfig, RewardConfig, TrainingConfig
from simulator.specdec.costs import METHODS, NGRAM_S_PER_SEQ
from simulator.yamlio import YamlModel, read_yaml

DEFAULT_SCENARIO = "default.yaml"


# --------------------------------------------------------------------------------------------- lengths
class LengthDistribution(YamlModel):
    """A distribution of token counts (prompt or response lengths), sampled as integers >= `min`.

    kind lognormal: `sigma` and one of `median` / `mean` (tokens); empirical: a column of a CSV/Parquet
    file (e.g. `calibration/vidur/splitwise_conv.csv`, column `num_decode_tokens`), optionally times
    `scale`; fixed: `value`; mixture: `components` with `weights` (normalised).
    """

    kind: Literal["lognormal", "empirical", "mixture", "fixed"]
    median: float | None = Field(None, gt=0, description="lognormal median (tokens)")
    mean: float | None = Field(None, gt=0, description="lognormal mean (tokens)")
    sigma: float | None = Field(None, ge=0, description="lognormal sigma of the log length")
    file: str | None = Field(None, description="empirical: CSV or Parquet file (relative to the scenario, "
                                               "the project root or ../shared)")
    column: str | None = Field(None, description="empirical: the column holding the lengths")
    scale: float = Field(1.0, gt=0, description="empirical: multiply every value")
    value: int | None = Field(None, ge=1, description="fixed: the length (tokens)")
    components: list["LengthDistribution"] | None = None
    weights: list[float] | None = None
    min: int = Field(1, ge=1, description="lengths below this are raised to it (tokens)")

    @model_validator(mode="after")
    def _check(self):
        used = {f for f in ("median", "mean", "sigma", "file", "column", "value", "components", "weights")
                if getattr(self, f) is not None}
        allowed = {"lognormal": {"median", "mean", "sigma"}, "empirical": {"file", "column"},
                   "fixed": {"value"}, "mixture": {"components", "weights"}}[self.kind]
        extra = used - allowed
        if extra:
            raise ValueError(f"{', '.join(sorted(extra))} does not apply to kind {self.kind}")
        if self.kind == "lognormal":
            if self.sigma is None:
                raise ValueError("lognormal needs sigma")
            if (self.median is None) == (self.mean is None):
                raise ValueError("lognormal needs exactly one of median and mean")
        elif self.kind == "empirical":
            if not self.file or not self.column:
                raise ValueError("empirical needs file and column")
        elif self.kind == "fixed":
            if self.value is None:
                raise ValueError("fixed needs value")
        else:
            if not self.components:
                raise ValueError("mixture needs components")
            w = self.weights if self.weights is not None else [1.0] * len(self.components)
            if len(w) != len(self.components):
                raise ValueError(f"{len(w)} weights for {len(self.components)} components")
            if any(x < 0 for x in w) or sum(w) <= 0:
                raise ValueError("weights must be >= 0 with a positive sum")
        return self


# --------------------------------------------------------------------------------------------- sections
class ClusterConfig(YamlModel):
    """GPUs of the rollout: hardware profile name and count."""

    hardware: str = "h200"
    gpus: int = Field(8, ge=1)


class EngineConfig(YamlModel):
    """One vLLM-like engine (all data-parallel replicas are identical). Defaults are vLLM's."""

    tensor_parallel_size: int = Field(1, ge=1)
    expert_parallel_size: int = Field(1, ge=1)
    pipeline_parallel_size: int = Field(1, ge=1)
    data_parallel_size: int | None = Field(None, ge=1, description="default: cluster.gpus / (tp x ep x pp)")
    dtype: Literal["bf16", "fp8", "fp4"] = "bf16"
    kv_cache_dtype: Literal["auto", "bf16", "fp8"] = "auto"
    max_num_seqs: int | None = Field(None, ge=1, description="default: vLLM's for the GPU (1024 on >= 70 GiB GPUs "
                                                       "other than A100, else 256; LLM class)")
    max_num_batched_tokens: int | None = Field(None, ge=1, description="default: vLLM's (16384 on >= 70 GiB GPUs "
                                                                 "other than A100, else 8192)")
    enable_chunked_prefill: bool = True
    gpu_memory_utilization: float = Field(0.9, gt=0, le=1)
    block_size: int = Field(16, ge=1)
    cuda_graph_max_batch: int = Field(512, ge=0, description="largest captured CUDA graph (tokens per step)")
    attention_backend: str | None = None
    verify_attention_backend: str | None = Field(None, description="kernel of speculative verify steps when the "
                                                                  "engine routes them apart from decodes")
    moe_kernel: str = "fused"
    all_reduce: Literal["vllm", "nccl"] = Field(
        "vllm", description="tensor-parallel all-reduce: vllm (vLLM's dispatch to its custom all-reduce or PyTorch "
        "symmetric memory within a node, NCCL beyond) or nccl (NCCL alone: vLLM's disable_custom_all_reduce with "
        "VLLM_ALLREDUCE_USE_SYMM_MEM=0)")
    step_overhead_s: float = Field(0.0, ge=0, description="CPU scheduling/sampling seconds per iteration")
    cross_host_step_overhead_s: float = Field(0.0, ge=0, description="further seconds per iteration of an engine "
                                              "whose GPUs (TP x EP x PP) span hosts (hardware gpus_per_host), beyond "
                                              "its collectives (simulator/fit/cross_host.py)")
    cpu_s_per_seq: float = Field(0.0, ge=0, description="CPU seconds per scheduled sequence per iteration (vLLM's "
                                 "scheduler and output path; calibration/vllm_cpu)")
    async_scheduling: bool = Field(False, description="vLLM schedules the next iteration while this one runs: the "
                                   "per-sequence CPU work overlaps the GPU work instead of adding to it")
    spec_iteration_overhead_s: float = Field(0.0, ge=0, description="framework seconds per speculative iteration "
                                             "beyond the kernels (simulator/fit/spec_overhead.py)")
    draft_step_overhead_s: float = Field(0.0, ge=0, description="framework seconds per GPU draft step beyond the "
                                         "kernels (simulator/fit/spec_overhead.py)")
    routing: Literal["round_robin", "blocked", "least_loaded"] = Field(
        "round_robin", description="how the batch reaches the data-parallel engines: round_robin (sample i to "
        "engine i mod N), blocked (contiguous blocks: whole prompt groups per engine, NeMo-RL's synchronous vLLM "
        "generate) or least_loaded (a central queue; simulator/rollout/router.py)")


class PartialRollout(YamlModel):
    """Partial rollouts: stop early and carry the unfinished sequences to the next RL step.

    token_budget: the step stops once the batch has generated this many tokens (all engines together);
    max_tokens_per_sequence: a sequence generates at most this many tokens per step (Kimi k1.5 style).
    """

    token_budget: int | None = Field(None, ge=1)
    max_tokens_per_sequence: int | None = Field(None, ge=1)


# the largest rollout batch rlsim simulates (sequences): 500x the largest published GRPO batch here (2,048); 100,000
# took 65 s and 0.5 GB (`rlsim rollout --set rollout.prompts=12500`, default scenario, 8 engines), so this limit is
# about ten minutes and 5 GB of memory
MAX_BATCH_SEQUENCES = 1_000_000


class RolloutConfig(YamlModel):
    """One rollout batch: prompts x samples_per_prompt sequences (GRPO groups)."""

    prompts: int = Field(64, ge=1)
    samples_per_prompt: int = Field(8, ge=1, description=f"GRPO group size; prompts x samples_per_prompt at most "
                                                         f"{MAX_BATCH_SEQUENCES:,} sequences")
    max_response_tokens: int = Field(4096, ge=1)
    prompt_tokens: LengthDistribution = Field(
        default_factory=lambda: LengthDistribution(kind="lognormal", median=256, sigma=0.6))
    response_tokens: LengthDistribution = Field(
        default_factory=lambda: LengthDistribution(kind="lognormal", median=1024, sigma=1.0))
    group_correlation: float = Field(0.5, ge=0, le=1, description="correlation of the latent log length "
                                                                  "within a prompt's group")
    cap_fraction: float = Field(0.0, ge=0, lt=1, description="extra fraction of responses that run to "
                                                             "max_response_tokens")
    mean_response_tokens: float | None = Field(
        None, gt=0, description="scale each sampled batch's response lengths so that their mean after the cap is "
                                "this (tokens): a run's measured mean, where the distribution gives only the "
                                "shape (before pipeline.response_growth_per_step); null keeps the draw as it falls")
    partial: PartialRollout | None = None

    @field_validator("samples_per_prompt")
    @classmethod
    def _check_batch(cls, v, info):
        p = info.data.get("prompts")
        if p is not None and p * v > MAX_BATCH_SEQUENCES:
            raise ValueError(f"with rollout.prompts {p:,}, a batch of {p * v:,} sequences is more than rlsim "
                             f"simulates (at most {MAX_BATCH_SEQUENCES:,})")
        return v

    @field_validator("mean_response_tokens")
    @classmethod
    def _check_mean(cls, v, info):
        lo, hi = info.data.get("response_tokens"), info.data.get("max_response_tokens")
        if v is not None and lo is not None and hi is not None and not lo.min <= v <= hi:
            raise ValueError(f"{v:g} tokens must lie between response_tokens.min {lo.min} and max_response_tokens {hi}")
        return v


MAX_SPEC_TOKENS = 64  # the most draft tokens per iteration a scenario may ask for


class SpeculativeConfig(YamlModel):
    """Speculative decoding in the rollouts. method none = plain autoregressive decoding."""

    method: Literal[METHODS] = "none"  # type: ignore[valid-type]
    num_tokens: int = Field(3, ge=0, le=MAX_SPEC_TOKENS, description="k: draft tokens per iteration")
    acceptance_length: float | None = Field(None, ge=1, description="mean accepted tokens per verify at "
                                                                    "num_tokens (i.i.d.)")
    profile: str | None = Field(None, description="acceptance profile YAML (workloads/acceptance/)")
    draft_model: str | None = None
    draft_tensor_parallel_size: int = Field(1, ge=1)
    dynamic_k: bool = False
    candidate_ks: list[int] = Field(default_factory=lambda: [0, 1, 2, 3, 4, 5])
    tree_tokens: int = Field(0, ge=0)
    tree_depth: int = Field(0, ge=0)
    tree_width: int = Field(0, ge=0)
    ngram_s_per_seq: float = Field(NGRAM_S_PER_SEQ, ge=0)
    ngram_match_rate: float = Field(1.0, ge=0, le=1)

    @model_validator(mode="after")
    def _check(self):
        if self.acceptance_length is not None and self.profile is not None:
            raise ValueError("give acceptance_length or profile, not both (set the other to null)")
        if self.acceptance_length is not None and self.acceptance_length > self.num_tokens + 1:
            raise ValueError(f"acceptance_length {self.acceptance_length} exceeds num_tokens + 1 = "
                             f"{self.num_tokens + 1}")
        if not self.candidate_ks or any(not 0 <= k <= MAX_SPEC_TOKENS for k in self.candidate_ks):
            raise ValueError(f"candidate_ks must be a non-empty list of k in 0..{MAX_SPEC_TOKENS}")
        if self.dynamic_k and self.method == "tree":
            raise ValueError("dynamic_k does not apply to tree drafts")
        return self


# --------------------------------------------------------------------------------------------- scenario
class Scenario(YamlModel):
    """A rollout scenario (and, later, a whole RL step: see the extension point below)."""

    name: str = "unnamed"
    description: str = ""
    model: str = "qwen3-8b"
    cluster: ClusterConfig = Field(default_factory=ClusterConfig)
    engine: EngineConfig = Field(default_factory=EngineConfig)
    rollout: RolloutConfig = Field(default_factory=RolloutConfig)
    speculative: SpeculativeConfig = Field(default_factory=SpeculativeConfig)
    seed: int = Field(0, ge=0, description="random seed of the sampled batches and acceptance draws")
    sources: dict[str, str] = Field(default_factory=dict)

    # ----------------------------------------------------------------------------------------------
    # Optional sections of later subsystems, each `X | None = None`; code that only simulates rollouts
    # ignores them. The RL pipeline (simulator/pipeline): placement and mode, training, reward.
    pipeline: PipelineConfig | None = None
    training: TrainingConfig | None = None
    reward: RewardConfig | None = None
    # ----------------------------------------------------------------------------------------------

    _base_dir: Path | None = PrivateAttr(default=None)

    @property
    def base_dir(self) -> Path:
        """Folder that relative file names in the scenario are resolved against first."""
        return self._base_dir or scenarios_dir()

    def with_base_dir(self, base: str | os.PathLike | None) -> "Scenario":
        self._base_dir = Path(base) if base is not None else None
        return self

    # derived numbers
    @property
    def gpus_per_engine(self) -> int:
        e = self.engine
        return e.tensor_parallel_size * e.expert_parallel_size * e.pipeline_parallel_size

    @property
    def num_engines(self) -> int:
        """Data-parallel engines: engine.data_parallel_size, else cluster.gpus / (tp x ep x pp)."""
        per = self.gpus_per_engine
        if self.engine.data_parallel_size is not None:
            if self.engine.data_parallel_size * per > self.cluster.gpus:
                raise RlsimError(f"{self.engine.data_parallel_size} engines x {per} GPUs need more than the "
                                 f"{self.cluster.gpus} GPUs of the cluster", "engine.data_parallel_size")
            return self.engine.data_parallel_size
        if self.cluster.gpus % per:
            raise RlsimError(f"{self.cluster.gpus} GPUs are not a multiple of tp x ep x pp = {per}",
                             "cluster.gpus")
        return self.cluster.gpus // per

    @property
    def num_sequences(self) -> int:
        return self.rollout.prompts * self.rollout.samples_per_prompt


def resolve_path(name: str, base_dir: str | os.PathLike | None, field: str) -> Path:
    """A data file named in a scenario: absolute, or relative to the scenario's folder, the project root,
    or the shared data folder (../shared), in that order."""
    p = Path(os.path.expanduser(name))
    candidates = [p] if p.is_absolute() else [Path(base_dir or scenarios_dir()) / p, project_root() / p,
                                               shared_dir() / p]
    for c in candidates:
        if c.is_file():
            return c
    raise RlsimError(f"no such file {name!r}", field)


# --------------------------------------------------------------------------------------------- overrides
def _parse_scalar(text: str) -> Any:
    try:
        v = yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError:
        return text
    if isinstance(v, str):
        try:
            return float(v) if any(c in v for c in ".eE") else int(v)
        except ValueError:
            return v
    return v


def _model_of(annotation) -> type[BaseModel] | None:
    """The pydantic model class inside an annotation (X, X | None, list[X] gives None)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for a in typing.get_args(annotation):
        if isinstance(a, type) and issubclass(a, BaseModel) and typing.get_origin(annotation) is not list:
            return a
    return None


def _is_dict(annotation) -> bool:
    return typing.get_origin(annotation) is dict or annotation is dict


def valid_keys(cls: type[BaseModel], prefix: str = "", depth: int = 0) -> list[str]:
    """Every dotted key of a config class (nested sections expanded; dict fields as `key.*`)."""
    keys: list[str] = []
    for name, f in cls.model_fields.items():
        key = prefix + name
        sub = _model_of(f.annotation)
        if sub is not None and depth < 3:
            keys.extend(valid_keys(sub, key + ".", depth + 1))
        elif _is_dict(f.annotation):
            keys.append(key + ".*")
        else:
            keys.append(key)
    return keys


def _default_dump(cls: type[BaseModel], name: str) -> Any:
    f = cls.model_fields[name]
    if f.default_factory is not None:
        v = f.default_factory()
    else:
        v = f.default
    if isinstance(v, BaseModel):
        return v.model_dump(mode="json", exclude_none=True)
    return {} if v is None else v


def apply_overrides(data: dict, sets: list[str] | tuple[str, ...], cls: type[BaseModel] | None = None) -> dict:
    """Apply `dotted.key=value` overrides to a scenario mapping (a new dict is returned).

    Values are YAML scalars (`true`, `1e-3`, `[1, 2]` all work). A key the schema of `cls` (default
    Scenario) does not have is an RlsimError naming it and the nearest valid key.
    """
    import copy

    cls = cls or Scenario
    out = copy.deepcopy(data) if data else {}
    for item in sets or ():
        if "=" not in item:
            hint = " (put the scenario before --set)" if item.endswith((".yaml", ".yml")) else ""
            raise RlsimError(f"expected dotted.key=value (got {item!r}){hint}", "--set")
        key, _, text = item.partition("=")
        key = key.strip()
        parts = key.split(".")
        if not key or any(not p for p in parts):
            raise RlsimError(f"expected dotted.key=value (got {item!r})", "--set")
        node, model = out, cls
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if model is None:  # a free-form mapping (sources): the rest of the key is one dotted name
                node[".".join(parts[i:])] = _parse_scalar(text)
                break
            if part not in model.model_fields:
                raise _unknown_key(key, cls)
            ann = model.model_fields[part].annotation
            if last:
                value = _parse_scalar(text)
                if model is LengthDistribution and part == "kind" and node.get("kind") != value:
                    # a new kind starts the distribution afresh (the old kind's parameters do not apply)
                    for k in list(node):
                        if k not in ("min",):
                            del node[k]
                node[part] = value
                break
            sub = _model_of(ann)
            if sub is None and not _is_dict(ann):
                raise _unknown_key(key, cls)
            if not isinstance(node.get(part), dict):
                node[part] = _default_dump(model, part) if sub is not None else {}
                if not isinstance(node[part], dict):
                    node[part] = {}
            node, model = node[part], sub
    return out


def _unknown_key(key: str, cls: type[BaseModel]) -> RlsimError:
    keys = [k.removesuffix(".*") for k in valid_keys(cls)]
    near = difflib.get_close_matches(key, keys, n=1, cutoff=0.5)
    hint = f" (did you mean {near[0]}?)" if near else ""
    return RlsimError(f"unknown key{hint}", key)


def default_scenario_path() -> Path:
    return scenarios_dir() / DEFAULT_SCENARIO


def load_scenario(path: str | os.PathLike | None = None, sets: list[str] | tuple[str, ...] = (),
                  cls: type[Scenario] = Scenario) -> Scenario:
    """Read a scenario YAML (default: workloads/scenarios/default.yaml), apply overrides, validate."""
    p = Path(path) if path is not None else default_scenario_path()
    data = read_yaml(p)
    data = apply_overrides(data, list(sets), cls)
    sc = cls.from_dict(data, source=None)
    return sc.with_base_dir(p.resolve().parent)


def scenario_from_dict(data: dict, sets: list[str] | tuple[str, ...] = (), cls: type[Scenario] = Scenario,
                       base_dir: str | os.PathLike | None = None) -> Scenario:
    """Like load_scenario, from a mapping (tests, the RL pipeline)."""
    return cls.from_dict(apply_overrides(data, list(sets), cls)).with_base_dir(base_dir)
