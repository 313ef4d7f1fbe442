"""Training-style routed-expert GEMMs on one GPU: torch._grouped_mm over balanced routed rows (Megatron's
grouped-GEMM layout: tokens already permuted by expert), forward (gate_up, SiLU-gate, down) and backward
(data and weight gradients), bf16, for the Qwen3-30B-A3B and Qwen3-235B-A22B expert shapes.
Also the same forward with the permutation (gather by expert) and un-permutation (scatter-add) around it.

    python calibration/h200/measured/measure_moe_train.py OUT.csv

Columns: shape, tokens (per GPU, before top-k), experts, topk, hidden, inter, pass (fwd | fwd_bwd |
fwd_permute), us (median of 11 timed reps after warm-up, CUDA events).
"""
import csv
import sys

import torch
import torch.nn.functional as F

SHAPES = {"qwen3-30b-a3b": (128, 8, 2048, 768), "qwen3-235b-a22b": (128, 8, 4096, 1536)}
TOKENS = [1024, 4096, 8192, 16384]


def timed(fn, reps=11, warm=3):
    for _ in range(warm):
        fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        torch.cuda.synchronize()
        ts.append(a.elapsed_time(b) * 1e3)
    ts.sort()
    return ts[len(ts) // 2]


def main(out):
    dev = "cuda"
    rows = []
    for name, (e, k, h, f) in SHAPES.items():
        w1 = (torch.randn(e, h, 2 * f, device=dev, dtype=torch.bfloat16) * 0.02).requires_grad_()
        w2 = (torch.randn(e, f, h, device=dev, dtype=torch.bfloat16) * 0.02).requires_grad_()
        for t in TOKENS:
            r = t * k
            per = r // e
            offs = torch.arange(1, e + 1, device=dev, dtype=torch.int32) * per
            x = (torch.randn(r, h, device=dev, dtype=torch.bfloat16)).requires_grad_()
            tok = torch.randn(t, h, device=dev, dtype=torch.bfloat16)
            idx = torch.randint(0, t, (r,), device=dev)

            def fwd(x=x):
                y = torch._grouped_mm(x, w1, offs=offs)
                a, g = y.chunk(2, dim=-1)
                return torch._grouped_mm(F.silu(a) * g, w2, offs=offs)

            def fwd_bwd():
                y = fwd()
                y.backward(torch.ones_like(y))

            def fwd_perm(tok=tok, idx=idx):
                xs = tok.index_select(0, idx)
                y = fwd(xs)
                out = torch.zeros_like(tok)
                out.index_add_(0, idx, y)
                return out

            with torch.no_grad():
                t_f = timed(fwd)
                t_p = timed(fwd_perm)
            t_fb = timed(fwd_bwd)
            for p, us in (("fwd", t_f), ("fwd_bwd", t_fb), ("fwd_permute", t_p)):
                rows.append([name, t, e, k, h, f, p, round(us, 3)])
                fl = (3 if p == "fwd_bwd" else 1) * r * 3 * 2 * h * f
                print(name, t, p, round(us, 1), "us", round(fl / us / 1e6, 1), "TFLOP/s", flush=True)
            del x, tok, idx
        del w1, w2
    with open(out, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["shape", "tokens", "experts", "topk", "hidden", "inter", "pass", "us"])
        w.writerows(rows)


if __name__ == "__main__":
    main(sys.argv[1])
