"""Training-style forward and backward of dense transformer layers on one GPU, by operator and whole, bf16.

A layer is what Megatron-Core runs per packed micro-batch under tensor parallelism (the GEMMs are one rank's
slices): RMSNorm, QKV GEMM, causal attention (PyTorch SDPA's flash backend, GQA, sequences of equal length side by
side), O GEMM, residual add, RMSNorm, gate_up GEMM, SiLU x gate, down GEMM, residual add. Timed with CUDA events,
median of the timed reps after warm-up, eager (training runs no CUDA graph):

- op rows: each GEMM's forward (y = x W^T: M = tokens, N = out, K = in), data gradient (dX = dY W: M = tokens,
  N = in, K = out) and weight gradient (dW = dY^T X: M = out, N = in, K = tokens), each a plain matmul; attention,
  RMSNorm, SiLU x gate and add forward and backward (autograd; `bwd` times the backward alone);
- layer rows: the whole layer's forward and its backward (autograd), and fwd_bwd for both in one timing.

    python calibration/h200/measured/measure_train_layer.py OUT.csv [--shapes a,b] [--heldout] [--budget-s S]

Columns: shape, tp, tokens (packed tokens of the micro-batch on this rank), seq_len, op, phase, m, n, k, us.
"""
import argparse
import csv
import sys
import time

import torch
import torch.nn.functional as F

from measure_moe_train import timed  # this folder (the script's own directory is on sys.path)

REPS, WARM = 7, 2  # timed repetitions (median) after warm-up ones, per timing

# name: (hidden, heads, kv_heads, head_dim, ffn, tp), the tp-sliced shapes of one rank
SHAPES = {
    "llama-3.1-8b": (4096, 32, 8, 128, 14336, 1),
    "qwen3-8b": (4096, 32, 8, 128, 12288, 1),
    "qwen3-32b": (5120, 64, 8, 128, 25600, 1),
    "qwen3-32b-tp4": (5120, 64, 8, 128, 25600, 4),
    "llama-3.1-70b-tp4": (8192, 64, 8, 128, 28672, 4),
    "qwen3-1.7b": (2048, 16, 8, 128, 6144, 1),
}
GRID = [(4096, 4096), (4096, 1024), (8192, 2048), (16384, 4096)]  # (tokens, seq_len)
# a second set at sequence lengths and token counts the first does not have (heldout/train_layer_heldout.csv)
GRID_HELDOUT = [(8192, 8192), (4096, 512), (16384, 1024), (12288, 3072)]


def timed_bwd(make, reps=REPS, warm=WARM):
    """Median microseconds of the backward alone: `make()` runs a forward and returns (output, grad)."""
    ts = []
    for i in range(warm + reps):
        y, g = make()
        torch.cuda.synchronize()
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        y.backward(g)
        b.record()
        torch.cuda.synchronize()
        if i >= warm:
            ts.append(a.elapsed_time(b) * 1e3)
    ts.sort()
    return ts[len(ts) // 2]


class Layer(torch.nn.Module):
    def __init__(self, h, hq, hkv, d, f):
        super().__init__()
        mk = lambda o, i: torch.nn.Parameter(torch.randn(o, i, device="cuda", dtype=torch.bfloat16) * 0.02)
        self.wqkv, self.wo = mk((hq + 2 * hkv) * d, h), mk(h, hq * d)
        self.wgu, self.wd = mk(2 * f, h), mk(h, f)
        self.n1 = torch.nn.Parameter(torch.ones(h, device="cuda", dtype=torch.bfloat16))
        self.n2 = torch.nn.Parameter(torch.ones(h, device="cuda", dtype=torch.bfloat16))
        self.hq, self.hkv, self.d, self.f = hq, hkv, d, f

    def forward(self, x, seq_len):
        t = x.shape[0]
        b = t // seq_len
        a = F.rms_norm(x, (x.shape[1],), self.n1)
        qkv = F.linear(a, self.wqkv)
        q, k, v = qkv.split([self.hq * self.d, self.hkv * self.d, self.hkv * self.d], dim=-1)
        q = q.view(b, seq_len, self.hq, self.d).transpose(1, 2)
        k = k.view(b, seq_len, self.hkv, self.d).transpose(1, 2)
        v = v.view(b, seq_len, self.hkv, self.d).transpose(1, 2)
        o = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
        o = o.transpose(1, 2).reshape(t, self.hq * self.d)
        x = x + F.linear(o, self.wo)
        a = F.rms_norm(x, (x.shape[1],), self.n2)
        gu = F.linear(a, self.wgu)
        g, u = gu.chunk(2, dim=-1)
        return x + F.linear(F.silu(g) * u, self.wd)


def measure(name, spec, tokens, seq_len, writer):
    h, heads, kv, d, f, tp = spec
    hq, hkv, fl = heads // tp, max(kv // tp, 1), f // tp
    b = tokens // seq_len
    bf = torch.bfloat16
    base = {"shape": name, "tp": tp, "tokens": tokens, "seq_len": seq_len}

    def row(op, phase, us, m=0, n=0, k=0):
        writer.writerow({**base, "op": op, "phase": phase, "m": m, "n": n, "k": k, "us": round(us, 2)})

    for op, n, k in (("qkv", (hq + 2 * hkv) * d, h), ("o", h, hq * d), ("gate_up", 2 * fl, h), ("down", h, fl)):
        x = torch.randn(tokens, k, device="cuda", dtype=bf)
        w = torch.randn(n, k, device="cuda", dtype=bf) * 0.02
        dy = torch.randn(tokens, n, device="cuda", dtype=bf)
        row(op, "fwd", timed(lambda: x @ w.t(), REPS, WARM), tokens, n, k)
        row(op, "dgrad", timed(lambda: dy @ w, REPS, WARM), tokens, k, n)
        row(op, "wgrad", timed(lambda: dy.t() @ x, REPS, WARM), n, k, tokens)
    with torch.nn.attention.sdpa_kernel(torch.nn.attention.SDPBackend.FLASH_ATTENTION):
        q = torch.randn(b, hq, seq_len, d, device="cuda", dtype=bf, requires_grad=True)
        kk = torch.randn(b, hkv, seq_len, d, device="cuda", dtype=bf, requires_grad=True)
        vv = torch.randn(b, hkv, seq_len, d, device="cuda", dtype=bf, requires_grad=True)
        att = lambda: F.scaled_dot_product_attention(q, kk, vv, is_causal=True, enable_gqa=True)
        go = torch.randn(b, hq, seq_len, d, device="cuda", dtype=bf)
        row("attention", "fwd", timed(att, REPS, WARM))
        row("attention", "bwd", timed_bwd(lambda: (att(), go)))
    for op, width in (("rms_norm", h), ("silu_mul", fl), ("add", h)):
        x = torch.randn(tokens, 2 * width if op == "silu_mul" else width, device="cuda", dtype=bf,
                        requires_grad=True)
        wn = torch.ones(width, device="cuda", dtype=bf, requires_grad=True)
        y0 = torch.randn(tokens, width, device="cuda", dtype=bf, requires_grad=True)
        fn = {"rms_norm": lambda: F.rms_norm(x, (width,), wn),
              "silu_mul": lambda: F.silu(x[:, :width]) * x[:, width:],
              "add": lambda: x + y0}[op]
        gy = torch.randn(tokens, width, device="cuda", dtype=bf)
        row(op, "fwd", timed(fn, REPS, WARM), tokens, width)
        row(op, "bwd", timed_bwd(lambda: (fn(), gy)), tokens, width)
    with torch.nn.attention.sdpa_kernel(torch.nn.attention.SDPBackend.FLASH_ATTENTION):
        layer = Layer(h, hq, hkv, d, fl)
        x = torch.randn(tokens, h, device="cuda", dtype=bf, requires_grad=True)
        gy = torch.randn(tokens, h, device="cuda", dtype=bf)
        row("layer", "fwd", timed(lambda: layer(x, seq_len), REPS, WARM))
        row("layer", "bwd", timed_bwd(lambda: (layer(x, seq_len), gy)))

        def fwd_bwd():
            layer(x, seq_len).backward(gy)

        row("layer", "fwd_bwd", timed(fwd_bwd, REPS, WARM))
    del layer
    torch.cuda.empty_cache()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--shapes", default=",".join(SHAPES))
    ap.add_argument("--heldout", action="store_true", help="measure the held-out grid (GRID_HELDOUT)")
    ap.add_argument("--budget-s", type=float, default=400.0)
    args = ap.parse_args()
    t0 = time.time()
    cols = ["shape", "tp", "tokens", "seq_len", "op", "phase", "m", "n", "k", "us"]
    with open(args.out, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=cols)
        w.writeheader()
        for name in args.shapes.split(","):
            for tokens, seq_len in (GRID_HELDOUT if args.heldout else GRID):
                if time.time() - t0 > args.budget_s:
                    print(f"budget spent before {name} {tokens}/{seq_len}", file=sys.stderr)
                    return
                measure(name, SHAPES[name], tokens, seq_len, w)
                fh.flush()
                print(f"{name} tokens {tokens} seq {seq_len} done at {time.time() - t0:.0f} s", flush=True)
    print(torch.__version__, torch.cuda.get_device_name(), f"{time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
