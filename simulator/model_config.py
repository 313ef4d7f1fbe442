"""Model architectures (dense, MoE, MLA, draft heads) and their parameter counts.

A model is one YAML file in `workloads/models/`; `load_model(name)` finds it by name or alias,
case-insensitively. Parameter counts are computed from the architecture (never typed in) and the
catalogue tests compare them with the published totals.
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from simulator.catalogue import Catalogue
from simulator.paths import models_dir
from simulator.yamlio import YamlModel


class AttentionConfig(YamlModel):
    """Attention block. `gqa` (MHA when kv_heads == heads) or `mla` (DeepSeek latent attention)."""

    kind: Literal["gqa", "mla"] = "gqa"
    heads: int = Field(gt=0)
    kv_heads: int = Field(0, ge=0, description="gqa only; 0 means equal to heads")
    head_dim: int = Field(128, gt=0)
    qk_norm: bool = False
    # MLA (DeepSeek-V2/V3): low-rank q and compressed kv latent cached per token
    q_lora_rank: int = 0
    kv_lora_rank: int = 0
    qk_nope_head_dim: int = 0
    qk_rope_head_dim: int = 0
    v_head_dim: int = 0

    @model_validator(mode="after")
    def _check(self):
        if self.kind == "gqa":
            if self.kv_heads == 0:
                self.kv_heads = self.heads
            if self.heads % self.kv_heads:
                raise ValueError(f"heads ({self.heads}) must be a multiple of kv_heads ({self.kv_heads})")
        elif min(self.kv_lora_rank, self.qk_nope_head_dim, self.qk_rope_head_dim, self.v_head_dim) <= 0:
            raise ValueError("mla needs kv_lora_rank, qk_nope_head_dim, qk_rope_head_dim and v_head_dim")
        return self

    @property
    def q_dim(self) -> int:
        """Width of the query projection output (elements)."""
        if self.kind == "mla":
            return self.heads * (self.qk_nope_head_dim + self.qk_rope_head_dim)
        return self.heads * self.head_dim

    @property
    def kv_cache_elems_per_token(self) -> int:
        """KV-cache elements one token occupies in one layer (all heads, K and V)."""
        if self.kind == "mla":
            return self.kv_lora_rank + self.qk_rope_head_dim
        return 2 * self.kv_heads * self.head_dim


class MoEConfig(YamlModel):
    """Mixture-of-experts MLP: routed experts (top-k), optional shared experts, optional dense first layers."""

    experts: int = Field(gt=0)
    top_k: int = Field(gt=0)
    expert_ffn: int = Field(gt=0)
    shared_experts: int = 0
    shared_ffn: int = 0  # width of each shared expert; 0 means expert_ffn
    first_dense_layers: int = 0  # leading layers with a dense MLP of width `dense_ffn`
    dense_ffn: int = 0

    @model_validator(mode="after")
    def _check(self):
        if self.top_k > self.experts:
            raise ValueError(f"top_k ({self.top_k}) exceeds experts ({self.experts})")
        if self.first_dense_layers and self.dense_ffn <= 0:
            raise ValueError("first_dense_layers needs dense_ffn")
        return self


class DraftHeadConfig(YamlModel):
    """How a draft head attaches to its target (EAGLE-3 heads, MTP modules)."""

    kind: Literal["eagle3", "eagle", "mtp"]  # eagle: EAGLE-1/2 (fc over [embedding, feature])
    target: str  # catalogue name of the target model
    fused_hidden_states: int = 1  # EAGLE-3: hidden states of 3 target layers fused by an fc layer
    attn_input_multiple: int = 1  # EAGLE-3: q/k/v read [embedding, feature] (2 x hidden)
    draft_vocab: int = 0  # reduced draft vocabulary (EAGLE-3); 0 = the shared target lm_head
    shares_embedding: bool = True


class PublishedCounts(YamlModel):
    total_params: float
    active_params: float | None = None
    source: str


class ModelConfig(YamlModel):
    """A transformer decoder. Numbers are architecture hyper-parameters (elements, not bytes)."""

    name: str
    aliases: list[str] = []
    source: str
    layers: int = Field(gt=0)
    hidden: int = Field(gt=0)
    vocab: int = Field(gt=0)
    tied_embeddings: bool = False
    attention: AttentionConfig
    ffn: int = 0  # dense MLP width (gated: gate, up, down); 0 for all-MoE models
    moe: MoEConfig | None = None
    mtp_modules: int = 0  # DeepSeek-style multi-token-prediction modules shipped with the model
    draft: DraftHeadConfig | None = None  # set for draft heads
    published: PublishedCounts | None = None

    @model_validator(mode="after")
    def _check(self):
        if self.moe is None and self.ffn <= 0:
            raise ValueError("a dense model needs ffn > 0")
        return self

    # ------------------------------------------------------------ structure
    @property
    def is_moe(self) -> bool:
        return self.moe is not None

    @property
    def moe_layers(self) -> int:
        return 0 if self.moe is None else self.layers - self.moe.first_dense_layers

    @property
    def dense_layers(self) -> int:
        return self.layers - self.moe_layers

    @property
    def dense_ffn(self) -> int:
        return self.moe.dense_ffn if (self.moe and self.moe.first_dense_layers) else self.ffn

    def hf_tensor_count(self) -> int:
        """Tensors of the model's Hugging Face export (a weight refit streams them one by one): per layer the
        attention's projections and norms, two layer norms and the MLP's (every routed and shared expert's gate,
        up and down, and the router), plus embedding, final norm and lm_head."""
        a = self.attention
        if a.kind == "mla":
            attn = (3 if a.q_lora_rank else 1) + 3  # q_a, q_a_norm, q_b (or q); kv_a, kv_a_norm, kv_b; o below
        else:
            attn = 3 + (2 if a.qk_norm else 0)
        per_layer = attn + 1 + 2  # + o_proj, input and post-attention norms
        moe = (1 + 3 * self.moe.experts + 3 * self.moe.shared_experts) if self.moe else 0
        return (self.layers * per_layer + self.dense_layers * 3 + self.moe_layers * moe
                + 2 + (0 if self.tied_embeddings else 1))

    # ------------------------------------------------------------ parameter counts (elements)
    def attention_params(self) -> int:
        a, h = self.attention, self.hidden
        if a.kind == "mla":
            q = (h * a.q_lora_rank + a.q_lora_rank + a.q_lora_rank * a.q_dim) if a.q_lora_rank else h * a.q_dim
            kv_a = h * (a.kv_lora_rank + a.qk_rope_head_dim) + a.kv_lora_rank
            kv_b = a.kv_lora_rank * a.heads * (a.qk_nope_head_dim + a.v_head_dim)
            o = a.heads * a.v_head_dim * h
            return q + kv_a + kv_b + o
        qkv_in = h * (self.draft.attn_input_multiple if self.draft else 1)
        p = qkv_in * (a.heads + 2 * a.kv_heads) * a.head_dim + a.heads * a.head_dim * h
        if a.qk_norm:
            p += 2 * a.head_dim
        return p

    def expert_params(self) -> int:
        """One routed expert (gate, up, down)."""
        return 3 * self.hidden * self.moe.expert_ffn if self.moe else 0

    def shared_expert_params(self) -> int:
        if not self.moe or not self.moe.shared_experts:
            return 0
        return self.moe.shared_experts * 3 * self.hidden * (self.moe.shared_ffn or self.moe.expert_ffn)

    def layer_params(self, moe_layer: bool, active: bool = False) -> int:
        p = self.attention_params() + 2 * self.hidden  # + two RMSNorm weights
        if moe_layer:
            m = self.moe
            p += self.hidden * m.experts  # router
            p += (m.top_k if active else m.experts) * self.expert_params() + self.shared_expert_params()
        else:
            p += 3 * self.hidden * self.dense_ffn
        return p

    def embedding_params(self) -> int:
        """Input embedding plus lm_head (one matrix when tied), plus the final norm."""
        if self.draft is not None:
            emb = 0 if self.draft.shares_embedding else self.vocab * self.hidden
            head = (self.draft.draft_vocab or 0) * self.hidden
            return emb + head + self.hidden
        return self.vocab * self.hidden * (1 if self.tied_embeddings else 2) + self.hidden

    def draft_extra_params(self) -> int:
        """EAGLE's fc fusing target hidden states (EAGLE-1: embedding + feature); an MTP module's eh_proj and its two norms."""
        if self.draft is None:
            return 0
        if self.draft.kind in ("eagle3", "eagle"):
            return self.draft.fused_hidden_states * self.hidden * self.hidden
        return 2 * self.hidden * self.hidden + 2 * self.hidden

    def total_params(self, include_mtp: bool = False) -> int:
        """All weights (elements)."""
        p = self.dense_layers * self.layer_params(False)
        if self.moe_layers:
            p += self.moe_layers * self.layer_params(True)
        p += self.embedding_params() + self.draft_extra_params()
        if include_mtp and self.mtp_modules:
            p += self.mtp_modules * self.mtp_module_params()
        return p

    def active_params(self) -> int:
        """Weights one token touches (routed experts: top_k of them)."""
        p = self.dense_layers * self.layer_params(False)
        if self.moe_layers:
            p += self.moe_layers * self.layer_params(True, active=True)
        return p + self.embedding_params() + self.draft_extra_params()

    def mtp_module_params(self) -> int:
        """One DeepSeek MTP module: eh_proj (2h -> h), two norms, one transformer block (shares lm_head/embedding)."""
        block = self.layer_params(self.is_moe)
        return 2 * self.hidden * self.hidden + 2 * self.hidden + block + self.hidden

    # ------------------------------------------------------------ memory (elements)
    def kv_elems_per_token(self) -> int:
        """KV-cache elements per token over all layers."""
        return self.layers * self.attention.kv_cache_elems_per_token


_CATALOGUE = Catalogue("model", models_dir, ModelConfig)


def model_names() -> list[str]:
    return _CATALOGUE.names()


def load_model(name_or_path: str, field: str = "model") -> ModelConfig:
    """A model by catalogue name/alias (case-insensitive) or by a YAML path."""
    return _CATALOGUE.load(name_or_path, field)
