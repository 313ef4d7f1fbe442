"""Time vLLM's own fused-MoE Triton kernel on this GPU, with vLLM's tuned tile configs and with its default ones.

vLLM (0.17.1) runs an unquantized MoE layer through one Triton kernel, `fused_moe_kernel`, launched twice (gate_up
over the routed rows, then down with the routing weights applied). Its tile sizes come from a JSON file named
`E=..,N=..,device_name=..json` when vLLM ships one for the GPU and expert shape, and from `get_default_config`
otherwise (vLLM then logs "Using default MoE config. Performance might be sub-optimal!"). This harness measures
both on the same GPU, so the cost of a missing file is a measurement, not a guess.

The kernel and `get_default_config` are read at run time from a vLLM install's
`vllm/model_executor/layers/fused_moe/` folder (`--vllm-moe-dir`); no vLLM code is kept in this repository. To make
that folder here (CPU is enough; only the two source files and the configs are used):

    python3 -m venv /tmp/vlenv && /tmp/vlenv/bin/pip install --no-deps vllm==0.17.1
    mkdir -p .vllm_moe && cp -r /tmp/vlenv/lib/python3.*/site-packages/vllm/model_executor/layers/fused_moe/{fused_moe.py,configs} .vllm_moe/

then on the GPU (the `run` tool carries the ignored `.vllm_moe` folder):

    OUT=dir python3 calibration/h200/measure_vllm_moe.py --vllm-moe-dir .vllm_moe

Routing: uniform random top-k (distinct experts per token, seeded); tokens are sorted by expert and padded to the
tile's BLOCK_SIZE_M as vLLM's `moe_align_block_size` does (here in PyTorch, outside the timed region), and below
vLLM's sparsity threshold (tokens * top_k * 4 <= experts) the kernel runs vLLM's naive per-token block assignment.
Timed: the two kernel launches only, replayed in a CUDA graph (the shared harness's `timed`), median over replays.
The SiLU-and-mul, the routing softmax/top-k and the final sum are separate small kernels in vLLM, not timed here.

Writes $OUT/vllm_fused_moe.csv: shape, experts, topk, hidden, inter, tokens, config, block_m, block_n, block_k,
group_m, num_warps, num_stages, us (microseconds for both launches).
"""
from __future__ import annotations

import argparse
import ast
import csv
import importlib.util
import json
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "shared"))

import torch  # noqa: E402

import measure as M  # noqa: E402

# Expert shapes of the MoE layers rlsim's scenarios run in vLLM: (name, experts, top_k, hidden, inter per GPU).
# inter per GPU = moe_intermediate_size / vLLM TP (vLLM shards experts by TP unless expert parallel is on).
SHAPES = [
    ("qwen3-30b-a3b tp1", 128, 8, 2048, 768),
    ("qwen3-30b-a3b tp2", 128, 8, 2048, 384),
    ("qwen3-235b-a22b tp8", 128, 8, 4096, 192),
    ("qwen3-235b-a22b tp16", 128, 8, 4096, 96),
]
TOKENS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096]
WANTED = ("write_zeros_to_output", "fused_moe_kernel", "get_default_config")


def load_vllm_moe(moe_dir: str):
    """Import vLLM's fused_moe_kernel and get_default_config from its source, without the rest of vLLM."""
    src_path = os.path.join(moe_dir, "fused_moe.py")
    src = open(src_path).read()
    tree = ast.parse(src)
    parts = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name in WANTED:
            start = min([d.lineno for d in node.decorator_list] + [node.lineno])
            parts.append("\n".join(src.splitlines()[start - 1:node.end_lineno]))
    missing = set(WANTED) - {p.split("def ", 1)[1].split("(", 1)[0] for p in parts}
    if missing:
        raise SystemExit(f"--vllm-moe-dir: {src_path} lacks {sorted(missing)}")
    header = (
        "import triton\nimport triton.language as tl\n"
        "class _Platform:\n    @staticmethod\n    def is_rocm():\n        return False\n"
        "current_platform = _Platform()\n"
        "def vllm_is_batch_invariant():\n    return False\n"
        "def should_moe_wna16_use_cuda(*a, **k):\n    return False\n\n"
    )
    fd, path = tempfile.mkstemp(suffix="_vllm_fused_moe.py")
    with os.fdopen(fd, "w") as f:
        f.write(header + "\n\n".join(parts) + "\n")
    spec = importlib.util.spec_from_file_location("vllm_fused_moe_extract", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def tuned_configs(moe_dir: str, experts: int, inter: int, device_name: str) -> dict[int, dict] | None:
    """vLLM's tuned tile configs for this shape on this GPU (its file name rule), or None when it ships none."""
    name = device_name.replace(" ", "_")
    if "H200" in name.split("_"):
        name = "NVIDIA_H200"
    path = os.path.join(moe_dir, "configs", f"E={experts},N={inter},device_name={name}.json")
    if not os.path.exists(path):
        return None
    cfg = json.load(open(path))
    cfg.pop("triton_version", None)
    return {int(k): v for k, v in cfg.items()}


def align(topk_ids: torch.Tensor, block_m: int, experts: int):
    """sorted_token_ids, expert_ids, num_tokens_post_padded as vLLM's moe_align_block_size returns them."""
    flat = topk_ids.reshape(-1)
    n = flat.numel()
    counts = torch.bincount(flat, minlength=experts)
    padded = (counts + block_m - 1) // block_m * block_m
    total = int(padded.sum())
    order = torch.argsort(flat, stable=True)
    starts = torch.cumsum(padded, 0) - padded
    first = torch.cumsum(counts, 0) - counts
    sorted_e = flat[order]
    pos = starts[sorted_e] + (torch.arange(n, device=flat.device) - first[sorted_e])
    max_padded = n + experts * (block_m - 1)
    if n < experts:
        max_padded = min(n * block_m, max_padded)
    sorted_ids = torch.full((max_padded,), n, dtype=torch.int32, device=flat.device)
    sorted_ids[pos] = order.to(torch.int32)
    blocks = torch.repeat_interleave(torch.arange(experts, device=flat.device), padded // block_m)
    expert_ids = torch.full(((max_padded + block_m - 1) // block_m,), -1, dtype=torch.int32, device=flat.device)
    expert_ids[:blocks.numel()] = blocks.to(torch.int32)
    ntp = torch.tensor([total], dtype=torch.int32, device=flat.device)
    return sorted_ids, expert_ids, ntp


def launch(mod, a, b, c, topk_w, sorted_ids, expert_ids, ntp, mul_w, top_k, config):
    """One fused_moe_kernel launch with the arguments vLLM's invoke_fused_moe_triton_kernel passes (bf16)."""
    import triton
    import triton.language as tl
    m = a.size(0)
    num_tokens = m * top_k
    if sorted_ids is not None:
        em = sorted_ids.size(0)
        if m < config["BLOCK_SIZE_M"]:
            em = min(sorted_ids.size(0), m * top_k * config["BLOCK_SIZE_M"])
    else:
        em = num_tokens * config["BLOCK_SIZE_M"]
    cfg = {k: v for k, v in config.items()}
    cfg["SPLIT_K"] = 1
    bk = cfg.pop("BLOCK_SIZE_K")
    grid = (triton.cdiv(em, cfg["BLOCK_SIZE_M"]) * triton.cdiv(b.size(1), cfg["BLOCK_SIZE_N"]),)
    mod.fused_moe_kernel[grid](
        a, b, c, None, None, None, topk_w, sorted_ids, expert_ids, ntp,
        b.size(1), b.size(2), em, num_tokens,
        a.stride(0), a.stride(1), b.stride(0), b.stride(2), b.stride(1), c.stride(1), c.stride(2),
        0, 0, 0, 0, 0, 0, 0, 0, 0,
        MUL_ROUTED_WEIGHT=mul_w, top_k=top_k, compute_type=tl.bfloat16, use_fp8_w8a8=False,
        use_int8_w8a8=False, use_int8_w8a16=False, per_channel_quant=False,
        naive_block_assignment=(sorted_ids is None), HAS_BIAS=False, BLOCK_SIZE_K=bk, **cfg)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--vllm-moe-dir", required=True)
    ap.add_argument("--budget-s", type=float, default=540.0)
    args = ap.parse_args()
    out = os.environ.get("OUT", ".")
    os.makedirs(out, exist_ok=True)
    t0 = time.time()
    mod = load_vllm_moe(args.vllm_moe_dir)
    dev = torch.cuda.get_device_name()
    gen = torch.Generator(device="cuda").manual_seed(0)
    path = os.path.join(out, "vllm_fused_moe.csv")
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["shape", "experts", "topk", "hidden", "inter", "tokens", "config", "block_m", "block_n",
                    "block_k", "group_m", "num_warps", "num_stages", "us"])
        for name, e, k, h, inter in SHAPES:
            tuned = tuned_configs(args.vllm_moe_dir, e, inter, dev)
            w1 = torch.randn(e, 2 * inter, h, device="cuda", dtype=torch.bfloat16, generator=gen) * 0.02
            w2 = torch.randn(e, h, inter, device="cuda", dtype=torch.bfloat16, generator=gen) * 0.02
            for t in TOKENS:
                if time.time() - t0 > args.budget_s:
                    M.log("budget spent; stopping")
                    return
                x = torch.randn(t, h, device="cuda", dtype=torch.bfloat16, generator=gen)
                topk_ids = torch.rand(t, e, device="cuda", generator=gen).argsort(-1)[:, :k].to(torch.int32)
                topk_w = torch.softmax(torch.rand(t, k, device="cuda", generator=gen), -1)
                kinds = [("default", mod.get_default_config(t, e, inter, h, k, None, None))]
                if tuned is not None:
                    kinds.insert(0, ("tuned", tuned[min(tuned, key=lambda b: abs(b - t))]))
                for kind, config in kinds:
                    naive = t * k * 4 <= e
                    if naive:
                        sorted_ids = None
                        expert_ids = topk_ids.reshape(-1).contiguous()
                        ntp = torch.tensor([t * k * config["BLOCK_SIZE_M"]], dtype=torch.int32, device="cuda")
                    else:
                        sorted_ids, expert_ids, ntp = align(topk_ids, config["BLOCK_SIZE_M"], e)
                    c1 = torch.empty(t, k, 2 * inter, device="cuda", dtype=torch.bfloat16)
                    act = torch.randn(t * k, inter, device="cuda", dtype=torch.bfloat16, generator=gen)
                    c3 = torch.empty(t, k, h, device="cuda", dtype=torch.bfloat16)

                    def fn():
                        launch(mod, x, w1, c1, None, sorted_ids, expert_ids, ntp, False, k, config)
                        launch(mod, act, w2, c3, topk_w, sorted_ids, expert_ids, ntp, True, 1, config)

                    try:
                        us = M.timed(fn, inner=4, reps=11)
                    except Exception as ex:  # noqa: BLE001
                        M.log("fail", name, t, kind, repr(ex)[:300])
                        us = float("nan")
                    w.writerow([name, e, k, h, inter, t, kind, config["BLOCK_SIZE_M"], config["BLOCK_SIZE_N"],
                                config["BLOCK_SIZE_K"], config["GROUP_SIZE_M"], config.get("num_warps", 4),
                                config.get("num_stages", 3), round(us, 3)])
                    f.flush()
                    M.log(name, t, kind, round(us, 1))
            del w1, w2
            torch.cuda.empty_cache()
    M.log("done", path, dev)


if __name__ == "__main__":
    main()
