"""The optimizer's search space: engine layouts, speculation settings and placements, with infeasible ones pruned.

Three independent pieces make a configuration:
- `Layout`: the generation engines' tensor x expert parallelism (tp, ep); a layout must shard the model
  (heads, experts), divide the generation pool, and hold the weights (target + draft) in
  `engine.gpu_memory_utilization` of HBM with room for the KV cache.
- `Speculation`: none, or the scenario's draft method (the one its acceptance profile was measured for) at a
  fixed k = 1..max_k or with dynamic k (vLLM-style goodput-optimal k among 0..max_k each iteration).
- `Placement`: sync colocated (generation and training share every GPU), or separate pools of G generation GPUs
  and N - G training GPUs, sync or async with a staleness; the training pool must be divisible by the
  training parallelism and hold the training state (bf16 weights and gradients, fp32 Adam state sharded over
  data parallelism: 2 + 2 + 12/dp bytes per parameter of the shard; activations left out, i.e. full recompute).

Each piece turns into `--set` overrides (`overrides()`), so a configuration is a point like any sweep point.
"""
from __future__ import annotations

from dataclasses import dataclass

from simulator.costmodel.memory import GIB, kv_bytes_per_token, weight_bytes_per_gpu
from simulator.costmodel.parallelism import Parallelism, check_parallelism
from simulator.errors import RlsimError
from simulator.hardware import DTYPE_BYTES

KV_HEADROOM_BYTES = 2 * GIB  # a layout must leave at least this much KV cache per GPU to be worth running
TRAIN_STATE_BYTES_PER_PARAM = (2.0, 2.0, 12.0)  # bf16 weights, bf16 grads, fp32 master + Adam m + v (sharded)


@dataclass(frozen=True)
class Layout:
    tp: int
    ep: int = 1

    @property
    def gpus(self) -> int:
        return self.tp * self.ep

    def overrides(self) -> list[str]:
        return [f"engine.tensor_parallel_size={self.tp}", f"engine.expert_parallel_size={self.ep}",
                "engine.pipeline_parallel_size=1", "engine.data_parallel_size=null"]

    def label(self) -> str:
        return f"TP{self.tp}" + (f" EP{self.ep}" if self.ep > 1 else "")


@dataclass(frozen=True)
class Speculation:
    method: str = "none"
    k: int = 0
    dynamic: bool = False
    max_k: int = 0

    def overrides(self) -> list[str]:
        if self.method == "none":
            return ["speculative.method=none", "speculative.dynamic_k=false"]
        out = [f"speculative.method={self.method}", f"speculative.dynamic_k={'true' if self.dynamic else 'false'}"]
        if self.dynamic:
            out += [f"speculative.num_tokens={self.max_k}", f"speculative.candidate_ks={list(range(self.max_k + 1))}"]
        else:
            out.append(f"speculative.num_tokens={self.k}")
        return out

    def label(self) -> str:
        if self.method == "none":
            return "none"
        return f"{self.method} dynamic k<={self.max_k}" if self.dynamic else f"{self.method} k={self.k}"


@dataclass(frozen=True)
class Placement:
    colocated: bool
    mode: str = "sync"
    generation_gpus: int = 0  # 0: colocated (every GPU)
    staleness: int = 1

    def overrides(self, gpus: int) -> list[str]:
        if self.colocated:
            return ["pipeline.mode=sync", "pipeline.colocated=true", "pipeline.generation_gpus=null",
                    "training.gpus=null"]
        return [f"pipeline.mode={self.mode}", "pipeline.colocated=false",
                f"pipeline.generation_gpus={self.generation_gpus}", f"training.gpus={gpus - self.generation_gpus}",
                f"pipeline.max_staleness={self.staleness}"]

    def gen_gpus(self, gpus: int) -> int:
        return gpus if self.colocated else self.generation_gpus

    def train_gpus(self, gpus: int) -> int:
        return gpus if self.colocated else gpus - self.generation_gpus

    def label(self, gpus: int) -> str:
        if self.colocated:
            return "sync colocated"
        mode = f"async staleness {self.staleness}" if self.mode == "async" else "sync"
        return f"{mode}, {self.generation_gpus} gen + {gpus - self.generation_gpus} train GPUs"


def _pow2_upto(n: int) -> list[int]:
    out, v = [], 1
    while v <= n:
        out.append(v)
        v *= 2
    return out


def spec_method(scn) -> str | None:
    """The draft method the scenario can speculate with: its own, or the one its acceptance profile is for."""
    sp = scn.speculative
    if sp.method != "none":
        return sp.method
    if sp.profile:
        from simulator.scenario import resolve_path
        from simulator.specdec.acceptance import AcceptanceProfile
        from simulator.specdec.costs import METHODS
        try:
            m = AcceptanceProfile.load(resolve_path(sp.profile, scn.base_dir, "speculative.profile")).method
        except RlsimError:
            return None
        return m if m in METHODS and m not in ("none", "tree") else None
    return None


def speculations(scn, max_k: int, dynamic: bool) -> list[Speculation]:
    """none, plus the scenario's draft method at k = 1..max_k and (optionally) dynamic k."""
    out = [Speculation()]
    m = spec_method(scn)
    if m is None:
        return out
    out += [Speculation(m, k) for k in range(1, max_k + 1)]
    if dynamic:
        out.append(Speculation(m, max_k, dynamic=True, max_k=max_k))
    return out


def layouts(scn, hw, model, max_engine_gpus: int) -> tuple[list[Layout], list[tuple[str, str]]]:
    """Engine layouts that shard the model and hold it; (kept, [(label, why pruned)])."""
    kept, pruned = [], []
    eps = _pow2_upto(max_engine_gpus) if model.is_moe else [1]
    w_bytes = DTYPE_BYTES[scn.engine.dtype]
    kv_dtype = "bf16" if scn.engine.kv_cache_dtype == "auto" else scn.engine.kv_cache_dtype
    usable = hw.hbm_bytes * scn.engine.gpu_memory_utilization
    for tp in _pow2_upto(max_engine_gpus):
        for ep in eps:
            lay = Layout(tp, ep)
            if lay.gpus > max_engine_gpus:
                continue
            par = Parallelism(tp, ep, 1)
            try:
                check_parallelism(model, par)
            except RlsimError as e:
                pruned.append((lay.label(), e.message))
                continue
            w = weight_bytes_per_gpu(model, par, w_bytes)
            if w + KV_HEADROOM_BYTES > usable:
                pruned.append((lay.label(), f"weights need {w / GIB:.0f} GiB per GPU of {usable / GIB:.0f} GiB "
                                            "usable (no room for the KV cache)"))
                continue
            if kv_bytes_per_token(model, par, DTYPE_BYTES[kv_dtype]) <= 0:
                continue
            kept.append(lay)
    return kept, pruned


def train_fits(scn, hw, model, train_gpus: int) -> str | None:
    """Why training cannot run on `train_gpus` GPUs with the scenario's training parallelism (None: it can)."""
    from simulator.pipeline.config import TrainingConfig
    t = scn.training or TrainingConfig()
    per = t.tensor_parallel_size * t.pipeline_parallel_size * t.context_parallel_size
    if train_gpus < per or train_gpus % per:
        return f"training tp x pp x cp = {per} does not divide {train_gpus} GPUs"
    dp = train_gpus // per
    if t.expert_parallel_size > 1 and (dp * t.context_parallel_size) % t.expert_parallel_size:
        return f"training ep {t.expert_parallel_size} does not divide the {dp * t.context_parallel_size} dp x cp ranks"
    params = weight_bytes_per_gpu(model, Parallelism(t.tensor_parallel_size, t.expert_parallel_size,
                                                     t.pipeline_parallel_size), 1.0)
    w, g, opt = TRAIN_STATE_BYTES_PER_PARAM
    need = params * (w + g + opt / dp)
    if need > hw.hbm_bytes * 0.95:
        return f"training state needs {need / GIB:.0f} GiB per GPU of {hw.hbm_bytes / GIB:.0f} GiB"
    return None


def placements(scn, hw, model, gpus: int, fractions: list[float], staleness: list[int],
               min_gen_unit: int) -> tuple[list[Placement], list[tuple[str, str]]]:
    """Sync colocated plus split pools (generation GPUs = fraction x gpus, rounded down to a multiple of
    `min_gen_unit`) x {sync, async at each staleness}; (kept, [(label, why pruned)])."""
    kept, pruned = [], []
    why = train_fits(scn, hw, model, gpus)
    col = Placement(colocated=True)
    (pruned.append((col.label(gpus), why)) if why else kept.append(col))
    gens = sorted({int(f * gpus) // min_gen_unit * min_gen_unit for f in fractions})
    for g in gens:
        if g < 1 or g >= gpus:
            continue
        why = train_fits(scn, hw, model, gpus - g)
        modes = [Placement(False, "sync", g)] + [Placement(False, "async", g, s) for s in staleness]
        for p in modes:
            (pruned.append((p.label(gpus), why)) if why else kept.append(p))
    return kept, pruned
