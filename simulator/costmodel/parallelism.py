"""Tensor / expert / pipeline parallelism of one model replica, and its per-GPU shapes."""
from __future__ import annotations

from dataclasses import dataclass

from simulator.errors import RlsimError, check_at_least
from simulator.model_config import ModelConfig


@dataclass(frozen=True)
class Parallelism:
    """tp: tensor-parallel GPUs; ep: expert-parallel groups (attention data-parallel across them);
    pp: pipeline stages. A replica spans tp * ep * pp GPUs."""

    tp: int = 1
    ep: int = 1
    pp: int = 1

    @property
    def gpus(self) -> int:
        return self.tp * self.ep * self.pp


def check_parallelism(model: ModelConfig, par: Parallelism, prefix: str = "") -> None:
    """Raise RlsimError naming the field when `par` cannot shard `model`."""
    a = model.attention
    for name, v in (("tp", par.tp), ("ep", par.ep), ("pp", par.pp)):
        check_at_least(v, 1, prefix + name)
    if a.heads % par.tp:
        raise RlsimError(f"tp={par.tp} does not divide the {a.heads} attention heads of {model.name}", prefix + "tp")
    if a.kind == "gqa" and a.kv_heads % par.tp and par.tp % a.kv_heads:
        raise RlsimError(f"tp={par.tp} and the {a.kv_heads} KV heads of {model.name} do not divide one another",
                         prefix + "tp")
    if model.dense_layers and model.dense_ffn % par.tp:
        raise RlsimError(f"tp={par.tp} does not divide the MLP width {model.dense_ffn} of {model.name}", prefix + "tp")
    if par.ep > 1:
        if not model.is_moe:
            raise RlsimError(f"ep={par.ep} but {model.name} has no experts", prefix + "ep")
        if model.moe.experts % par.ep:
            raise RlsimError(f"ep={par.ep} does not divide the {model.moe.experts} experts of {model.name}",
                             prefix + "ep")
    if model.is_moe and model.moe.expert_ffn % par.tp:
        raise RlsimError(f"tp={par.tp} does not divide the expert width {model.moe.expert_ffn} of {model.name}",
                         prefix + "tp")
    if par.pp > model.layers:
        raise RlsimError(f"pp={par.pp} exceeds the {model.layers} layers of {model.name}", prefix + "pp")
