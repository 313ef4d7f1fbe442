"""Measure the colocated weight refit's on-GPU copies the way NeMo-RL's CUDA-IPC path makes them.

NeMo-RL's colocated refit (nemo_rl/models/generation/vllm/vllm_backend.py, `update_weights_via_ipc_zmq`, read at
xiuhu17/RL @ab4e0a54): the trainer packs its bf16 Hugging Face export, tensor after tensor, into a buffer of
NRL_REFIT_BUFFER_MEMORY_RATIO x GPU memory (two buffers in turn) and shares it through CUDA IPC; the vLLM worker on the
same GPU views each tensor in the buffer and copies it into its own weights (`load_weights`: q/k/v into one fused
tensor, gate/up into another, each expert into its slot of the stacked expert tensors). Both copies stay in HBM.

This script times exactly those two copies on one GPU for a model's real tensor list: pack (param -> buffer slice) and
load (buffer view -> its slice of the engine's tensor), buffer by buffer, the whole model per cycle, the device
synchronised around each cycle; median over cycles. The IPC handle exchange and Python's ZMQ round trips are left out
(they are the refit's fixed overhead, fitted elsewhere). A plain 1 GiB device-to-device copy is timed for reference.

Output CSV columns: case, tensors, params, buffer_bytes, pack_s, load_s, total_s, traffic_bytes (bf16: pack reads and
writes 2 bytes a parameter, load reads and writes 2 more), gb_per_s (traffic over total), cycles.

Command (the device tool's H200): python calibration/h200/measured/measure_refit_copy.py refit_copy.csv
"""
from __future__ import annotations

import itertools
import statistics
import sys
import time

import torch

from stream_csv import write_rows  # this folder's (the script's own directory is on sys.path)

CYCLES = 5
BUFFER_RATIO = 0.02  # NRL_REFIT_BUFFER_MEMORY_RATIO's default after NeMo-RL PR #1379 (0.02 of GPU memory)

# (case, layers, hidden, heads, kv_heads, head_dim, ffn, experts, expert_ffn, vocab): workloads/models/*.yaml.
# The larger models keep some of their layers (24 of Qwen3-30B-A3B's 48, 16 of Qwen3-32B's 64, 6 of Qwen3-235B-A22B's
# 94) so that the source, the engine's weights and the buffers fit one GPU; the time per byte and per tensor does
# not depend on how many layers there are.
MODELS = [
    ("qwen3-8b", 36, 4096, 32, 8, 128, 12288, 0, 0, 151936),
    ("llama-3.1-8b", 32, 4096, 32, 8, 128, 14336, 0, 0, 128256),
    ("qwen3-30b-a3b-24-layers", 24, 2048, 32, 4, 128, 0, 128, 768, 151936),
    ("qwen3-32b-16-layers", 16, 5120, 64, 8, 128, 25600, 0, 0, 151936),
    ("qwen3-235b-a22b-6-layers", 6, 4096, 64, 4, 128, 0, 128, 1536, 151936),
]


def hf_tensors(layers, hidden, heads, kv, hd, ffn, experts, effn, vocab):
    """[(name, shape, engine tensor, row offset)] in export order; the engine tensor fuses as vLLM does."""
    out, engine = [], {}

    def add(name, shape, fused=None, rows=None, offset=0):
        out.append((name, shape, fused or name, offset))
        key = fused or name
        if key not in engine:
            engine[key] = list(rows if rows is not None else shape)

    add("embed", (vocab, hidden))
    for i in range(layers):
        q, k = heads * hd, kv * hd
        qkv = f"l{i}.qkv"
        add(f"l{i}.q", (q, hidden), qkv, (q + 2 * k, hidden), 0)
        add(f"l{i}.k", (k, hidden), qkv, None, q)
        add(f"l{i}.v", (k, hidden), qkv, None, q + k)
        add(f"l{i}.o", (hidden, q))
        add(f"l{i}.ln1", (hidden,))
        add(f"l{i}.ln2", (hidden,))
        if experts:
            add(f"l{i}.router", (experts, hidden))
            for e in range(experts):
                w13, w2 = f"l{i}.w13", f"l{i}.w2"
                add(f"l{i}.e{e}.gate", (effn, hidden), w13, (experts * 2 * effn, hidden), 2 * effn * e)
                add(f"l{i}.e{e}.up", (effn, hidden), w13, None, 2 * effn * e + effn)
                add(f"l{i}.e{e}.down", (hidden, effn), w2, (experts * hidden, effn), hidden * e)
        else:
            gu = f"l{i}.gate_up"
            add(f"l{i}.gate", (ffn, hidden), gu, (2 * ffn, hidden), 0)
            add(f"l{i}.up", (ffn, hidden), gu, None, ffn)
            add(f"l{i}.down", (hidden, ffn))
    add("norm", (hidden,))
    add("lm_head", (vocab, hidden))
    return out, engine


def measure(case, *dims) -> dict:
    tensors, engine_shapes = hf_tensors(*dims)
    dev = torch.device("cuda")
    src = [torch.randn(shape, dtype=torch.bfloat16, device=dev) for _, shape, _, _ in tensors]
    eng = {k: torch.empty(shape, dtype=torch.bfloat16, device=dev) for k, shape in engine_shapes.items()}
    total_mem = torch.cuda.get_device_properties(0).total_memory
    buf_bytes = int(BUFFER_RATIO * total_mem) // 2 * 2
    bufs = [torch.empty(buf_bytes // 2, dtype=torch.bfloat16, device=dev) for _ in range(2)]
    # buffer plan: consecutive tensors while they fit
    plans, cur, used = [], [], 0
    for j, t in enumerate(src):
        n = t.numel()
        if cur and used + n > bufs[0].numel():
            plans.append(cur)
            cur, used = [], 0
        cur.append((j, used))
        used += n
    plans.append(cur)

    def pack(plan, buf):
        for j, off in plan:
            buf[off:off + src[j].numel()].copy_(src[j].view(-1))

    def load(plan, buf):
        for j, off in plan:
            _, shape, key, row = tensors[j]
            n = src[j].numel()
            view = buf[off:off + n].view(shape)
            dst = eng[key]
            if dst.shape == view.shape:
                dst.copy_(view)
            else:
                dst[row:row + shape[0]].copy_(view)

    pack_t, load_t = [], []
    for _ in range(CYCLES + 1):  # the first cycle warms up and is dropped
        tp = tl = 0.0
        for b, plan in enumerate(plans):
            buf = bufs[b % 2]
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            pack(plan, buf)
            torch.cuda.synchronize()
            t1 = time.perf_counter()
            load(plan, buf)
            torch.cuda.synchronize()
            tp += t1 - t0
            tl += time.perf_counter() - t1
        pack_t.append(tp)
        load_t.append(tl)
    params = sum(t.numel() for t in src)
    ps, ls = statistics.median(pack_t[1:]), statistics.median(load_t[1:])
    traffic = 8 * params
    row = {"case": case, "tensors": len(src), "params": params, "buffer_bytes": buf_bytes, "pack_s": round(ps, 6),
           "load_s": round(ls, 6), "total_s": round(ps + ls, 6), "traffic_bytes": traffic,
           "gb_per_s": round(traffic / (ps + ls) / 1e9, 1), "cycles": CYCLES}
    del src, eng, bufs
    torch.cuda.empty_cache()
    return row


def plain_copy() -> dict:
    a = torch.empty(1 << 29, dtype=torch.bfloat16, device="cuda")
    b = torch.empty_like(a)
    ts = []
    for _ in range(CYCLES + 1):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        b.copy_(a)
        torch.cuda.synchronize()
        ts.append(time.perf_counter() - t0)
    s = statistics.median(ts[1:])
    return {"case": "plain_1GiB_copy", "tensors": 1, "params": a.numel(), "buffer_bytes": 0, "pack_s": 0.0,
            "load_s": round(s, 6), "total_s": round(s, 6), "traffic_bytes": 4 * a.numel(),
            "gb_per_s": round(4 * a.numel() / s / 1e9, 1), "cycles": CYCLES}


def main(argv: list[str]) -> int:
    fields = ["case", "tensors", "params", "buffer_bytes", "pack_s", "load_s", "total_s", "traffic_bytes",
              "gb_per_s", "cycles"]
    write_rows(argv[1] if len(argv) > 1 else "refit_copy.csv", fields,
               itertools.chain([plain_copy()], (measure(m[0], *m[1:]) for m in MODELS)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
