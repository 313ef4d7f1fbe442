"""Time vLLM's own FlashAttention-3 decode and verify kernel on this GPU, called as vLLM calls it.

vLLM 0.17.1 runs attention on Hopper through its FLASH_ATTN backend with FlashAttention 3 (`vllm_flash_attn`,
`get_flash_attn_version`: SM 9.x -> FA3). For decode it calls `flash_attn_varlen_func` over the paged KV cache
(blocks of 16 tokens, `(num_blocks, 16, kv_heads, head_dim)` for K and for V), with the scheduler metadata its
ahead-of-time scheduler makes (`get_scheduler_metadata`, page size 16, causal) and, inside full CUDA graphs (up to
512 tokens), at most 32 KV splits (`flash_attn_max_num_splits_for_cuda_graph`); above 512 tokens it lets FA3 choose
(`num_splits=0`). This harness does the same, so the attention cost of rlsim's Hopper scenarios rests on the kernel
they run, not on a stand-in.

The kernel is read at run time from vLLM's wheel; no vLLM code is kept in this repository. To make the folder here
(CPU is enough):

    pip download --no-deps vllm==0.17.1 nvidia-cuda-runtime-cu12==12.9.79 -d /tmp/w   (plus the --platform flags
      of the device tool's README for manylinux_2_31 / manylinux2014 x86_64 wheels)
    mkdir -p .vllm_fa3
    unzip -p /tmp/w/vllm-0.17.1-*.whl vllm/vllm_flash_attn/_vllm_fa3_C.abi3.so | xz -9e -T0 > .vllm_fa3/_vllm_fa3_C.abi3.so.xz
    unzip -j -d .vllm_fa3 /tmp/w/vllm-0.17.1-*.whl vllm/vllm_flash_attn/flash_attn_interface.py
    unzip -j -d .vllm_fa3 /tmp/w/nvidia_cuda_runtime_cu12-*.whl nvidia/cuda_runtime/lib/libcudart.so.12

(the 149 MB library is 7 MB compressed, inside the device tool's 64 MiB carry limit; vLLM's wheel links the CUDA 12
runtime, the device image has CUDA 13's, hence libcudart.so.12), then on the GPU (the `run` tool carries `.vllm_fa3`):

    OUT=dir python3 calibration/h200/measure_vllm_fa3.py --fa3-dir .vllm_fa3

Timed: the attention kernel alone (FA3's forward and, when it splits, its combine kernel), replayed in a CUDA graph
(the shared harness's `timed`), median over replays; several KV-cache copies in turn when one is small enough for
L2 to flatter it. Block tables are random permutations of the cache's blocks (a serving engine's free list after
requests have come and gone).

Writes to $OUT:
  attn_vllm_fa3.csv        batch, q_len, ctx, hq, hkv, d, num_splits, us: every sequence at the same context
  attn_vllm_fa3_mixed.csv  kind, batch, q_len, hq, hkv, d, ctx_list, us: contexts drawn uniformly in [64, 8192]
                           (kind=mixed) and the same batch at their mean (kind=uniform), for checking a fit made
                           on the uniform table
"""
from __future__ import annotations

import argparse
import ctypes
import importlib
import lzma
import math
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "shared"))

import torch  # noqa: E402

import measure as M  # noqa: E402

sys.path.insert(0, os.path.join(HERE, "measured"))
from stream_csv import write_rows  # noqa: E402

BLOCK = 16  # vLLM's default KV block size on CUDA
CG_SPLITS = 32  # vLLM's flash_attn_max_num_splits_for_cuda_graph
CG_MAX_TOKENS = 512  # vLLM's largest full-CUDA-graph capture size (sizes up to min(max_num_seqs * 2, 512))
# (query heads, KV heads) per GPU of the scenarios' models at their vLLM TP: Llama-3.1-8B / Qwen3-8B TP 1 (32/8),
# Qwen3-30B-A3B TP 1 and Qwen3-32B TP 2 (32/4), Qwen3-30B-A3B TP 2 (16/2), Qwen3-32B TP 1 (64/8),
# Qwen3-235B-A22B TP 8 (8/1, KV heads replicated) and TP 16 (4/1)
SHAPES = [(32, 8), (32, 4), (16, 2), (64, 8), (8, 1), (4, 1)]
HEAD_DIM = 128
BATCHES = [1, 8, 32, 64, 128, 256]
CONTEXTS = [512, 2048, 4096, 8192]
Q_LENS = [1, 4]  # decode, and EAGLE verify at k = 3
MIXED_BATCHES = [64, 128]
UNIFORM_FIELDS = ["batch", "q_len", "ctx", "hq", "hkv", "d", "num_splits", "us"]
MIXED_FIELDS = ["kind", "batch", "q_len", "hq", "hkv", "d", "ctx_list", "us"]


def load_fa3(fa3_dir: str):
    """vllm_flash_attn's interface module over the carried FA3 library (decompressed into a temporary package)."""
    root = tempfile.mkdtemp(prefix="vllm_fa3_")
    pkg = os.path.join(root, "vllm", "vllm_flash_attn")
    os.makedirs(pkg)
    for p in (os.path.join(root, "vllm", "__init__.py"), os.path.join(pkg, "__init__.py")):
        open(p, "w").close()
    shutil.copy(os.path.join(fa3_dir, "flash_attn_interface.py"), pkg)
    with lzma.open(os.path.join(fa3_dir, "_vllm_fa3_C.abi3.so.xz")) as src, \
            open(os.path.join(pkg, "_vllm_fa3_C.abi3.so"), "wb") as dst:
        shutil.copyfileobj(src, dst)
    ctypes.CDLL(os.path.join(fa3_dir, "libcudart.so.12"), mode=ctypes.RTLD_GLOBAL)
    sys.path.insert(0, root)
    mod = importlib.import_module("vllm.vllm_flash_attn.flash_attn_interface")
    if not mod.FA3_AVAILABLE:
        raise SystemExit(f"FA3 did not load: {mod.FA3_UNAVAILABLE_REASON}")
    return mod


@dataclass
class FA3:
    """vllm_flash_attn's interface module (`mod`) and the `sm_margin` its scheduler metadata is made with (see
    `fix_sm_count`)."""

    mod: object
    sm_margin: int = 0


class Case:
    """One batch's decode/verify attention over a paged KV cache, as vLLM's FlashAttentionImpl calls it."""

    def __init__(self, fa: FA3, ctx_list, q_len, hq, hkv, gen):
        self.fa = fa.mod
        b = len(ctx_list)
        blocks = [math.ceil(c / BLOCK) for c in ctx_list]
        nblk = sum(blocks)
        kv_bytes = 2 * nblk * BLOCK * hkv * HEAD_DIM * 2
        self.copies = max(1, min(8, math.ceil(4 * M.L2_BYTES / kv_bytes)))
        self.kv = [(torch.randn(nblk, BLOCK, hkv, HEAD_DIM, device="cuda", dtype=torch.bfloat16, generator=gen),
                    torch.randn(nblk, BLOCK, hkv, HEAD_DIM, device="cuda", dtype=torch.bfloat16, generator=gen))
                   for _ in range(self.copies)]
        perm = torch.randperm(nblk, device="cuda", generator=gen).to(torch.int32)
        width = max(blocks)
        self.block_table = torch.zeros(b, width, dtype=torch.int32, device="cuda")
        at = 0
        for i, n in enumerate(blocks):
            self.block_table[i, :n] = perm[at:at + n]
            at += n
        self.q = torch.randn(b * q_len, hq, HEAD_DIM, device="cuda", dtype=torch.bfloat16, generator=gen)
        self.out = torch.empty_like(self.q)
        self.cu_q = torch.arange(0, (b + 1) * q_len, q_len, dtype=torch.int32, device="cuda")
        self.seqused_k = torch.tensor(ctx_list, dtype=torch.int32, device="cuda")
        self.q_len, self.max_ctx = q_len, max(ctx_list)
        self.num_splits = CG_SPLITS if b * q_len <= CG_MAX_TOKENS else 0
        self.hq, self.hkv = hq, hkv
        self.schedule(fa.sm_margin)
        self.turn = 0

    def schedule(self, sm_margin: int) -> None:
        """FA3's ahead-of-time scheduler metadata for this batch (sm_margin only where vLLM caps the splits)."""
        self.meta = self.fa.get_scheduler_metadata(
            batch_size=self.seqused_k.numel(), max_seqlen_q=self.q_len, max_seqlen_k=self.max_ctx,
            num_heads_q=self.hq, num_heads_kv=self.hkv, headdim=HEAD_DIM, cache_seqlens=self.seqused_k,
            qkv_dtype=torch.bfloat16, cu_seqlens_q=self.cu_q, page_size=BLOCK, causal=True, window_size=(-1, -1),
            num_splits=self.num_splits, sm_margin=sm_margin if self.num_splits else 0)

    def splits(self) -> list[int]:
        """FA3's KV split count per sequence, from its metadata: [q rows per batch][splits per batch]..., each
        vector padded to a multiple of 4 (flash_api.cpp's get_scheduler_metadata)."""
        b = self.seqused_k.numel()
        r = -(-b // 4) * 4
        return self.meta.flatten()[r:r + b].tolist()

    def __call__(self):
        k, v = self.kv[self.turn % self.copies]
        self.turn += 1
        self.fa.flash_attn_varlen_func(
            q=self.q, k=k, v=v, out=self.out, cu_seqlens_q=self.cu_q, max_seqlen_q=self.q_len,
            seqused_k=self.seqused_k, max_seqlen_k=self.max_ctx, softmax_scale=HEAD_DIM ** -0.5, causal=True,
            block_table=self.block_table, scheduler_metadata=self.meta, fa_version=3, num_splits=self.num_splits)


# vLLM 0.17.1's FA3 library is built against CUDA 12 and reads the SM count from cudaDeviceProp at CUDA 12's
# offset; under the device's CUDA 13 PyTorch that field reads 0, so FA3's scheduler sees num_sm = 0 and gives every
# sequence one KV split (a matching vLLM install splits). num_sm = SMs read - sm_margin: when the probe in
# `fix_sm_count` finds the library blind to the SMs, the metadata is made with sm_margin = -(the GPU's SMs), so
# that FA3 schedules for the SMs the GPU has, as it does in vLLM. The main kernel's grid is not affected (CUTLASS
# asks the device itself). Above 512 tokens (num_splits=0) the forward picks the split count itself, with the SM
# count it reads, and rejects metadata made for another: there the metadata is made the same way (sm_margin 0);
# FA3's heuristic gives those batches (more than 128 sequences, hence more work tiles than 0.8 x the SMs) one split
# with any SM count.


def fix_sm_count(fa: FA3, gen) -> None:
    """Probe one long sequence (8192 tokens, 32/8 heads, 32 splits allowed): if FA3 gives it one split, the library
    reads no SMs; then set fa.sm_margin and check that the output of the split kernel matches the unsplit one."""
    probe = Case(fa, [8192], 1, 32, 8, gen)
    M.log("FA3 splits of one 8192-token sequence, sm_margin 0:", probe.splits())
    if probe.splits()[0] > 1:
        return
    probe()
    ref = probe.out.clone()
    fa.sm_margin = -torch.cuda.get_device_properties(0).multi_processor_count
    probe.schedule(fa.sm_margin)
    probe.turn = 0  # the same KV copy as the unsplit call
    probe()
    err = float((probe.out.float() - ref.float()).abs().max())
    M.log(f"sm_margin {fa.sm_margin}: splits {probe.splits()}, max |output difference| {err:.2e} against one split")
    if probe.splits()[0] <= 1 or err > 1e-2:
        raise SystemExit("could not make FA3 see the GPU's SMs")


def open_fa3(fa3_dir: str) -> tuple[FA3, torch.Generator]:
    """The FA3 interface over the carried library and a seeded CUDA generator, with the device logged and FA3's
    view of the SM count fixed (`fix_sm_count`)."""
    fa = FA3(load_fa3(fa3_dir))
    gen = torch.Generator(device="cuda").manual_seed(0)
    M.log("device", torch.cuda.get_device_name(), "torch", torch.__version__)
    fix_sm_count(fa, gen)
    return fa, gen


def time_case(fa, ctx_list, q_len, hq, hkv, gen) -> tuple[float, int]:
    c = Case(fa, ctx_list, q_len, hq, hkv, gen)
    try:
        return M.timed(c, inner=8, reps=15), c.num_splits
    finally:
        del c
        torch.cuda.empty_cache()


def uniform_rows(fa, gen, t0, budget):
    for hq, hkv in SHAPES:
        for q_len in Q_LENS:
            for b in BATCHES:
                for ctx in CONTEXTS:
                    if time.time() - t0 > budget:
                        M.log("budget spent; stopping")
                        return
                    us, splits = time_case(fa, [ctx] * b, q_len, hq, hkv, gen)
                    yield dict(zip(UNIFORM_FIELDS, [b, q_len, ctx, hq, hkv, HEAD_DIM, splits, round(us, 3)]))


def mixed_rows(fa, gen, t0, budget):
    for hq, hkv in SHAPES:
        for b in MIXED_BATCHES:
            if time.time() - t0 > budget:
                M.log("budget spent; stopping")
                return
            ctx = torch.randint(64, 8193, (b,), generator=torch.Generator().manual_seed(b * 1000 + hq)).tolist()
            mean = round(sum(ctx) / b)
            for kind, lst in (("mixed", ctx), ("uniform", [mean] * b)):
                us, _ = time_case(fa, lst, 1, hq, hkv, gen)
                yield dict(zip(MIXED_FIELDS, [kind, b, 1, hq, hkv, HEAD_DIM, " ".join(map(str, lst)), round(us, 3)]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--fa3-dir", required=True)
    ap.add_argument("--budget-s", type=float, default=480.0)
    args = ap.parse_args()
    t0 = time.time()
    fa, gen = open_fa3(args.fa3_dir)
    write_rows("attn_vllm_fa3.csv", UNIFORM_FIELDS, uniform_rows(fa, gen, t0, args.budget_s))
    write_rows("attn_vllm_fa3_mixed.csv", MIXED_FIELDS, mixed_rows(fa, gen, t0, args.budget_s + 60.0))
    M.log("done", round(time.time() - t0, 1), "s")


if __name__ == "__main__":
    main()
