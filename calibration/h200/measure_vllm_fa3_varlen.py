"""Time vLLM's FlashAttention-3 decode/verify kernel on batches whose sequences have different KV lengths.

A serving engine's batch never has one context: in a rollout, sequences start at different times and stop at
different lengths. How FA3 spreads such a batch over the GPU decides how much slower it runs than an equal-context
batch of the same total, and the uniform table (`measure_vllm_fa3.py`) cannot say. This harness measures it, for
choosing the mixed-batch model of `efficiency.attention.vllm_fa3` (`simulator/fit/kernels.py`); the batches drawn
uniformly in [64, 8192] that `measure_vllm_fa3.py` measured stay held out
(`measured/heldout/attn_vllm_fa3_mixed.csv`).

Same kernel and call as `measure_vllm_fa3.py` (its `Case`; run with the same carried `.vllm_fa3` folder):

    OUT=dir python3 calibration/h200/measure_vllm_fa3_varlen.py --fa3-dir .vllm_fa3
    OUT=dir python3 calibration/h200/measure_vllm_fa3_varlen.py --fa3-dir .vllm_fa3 --heldout

Writes to $OUT (`--heldout`: attn_vllm_fa3_varlen_heldout.csv, for `measured/heldout/`: batches of 48-384
sequences, q_len 1 / 2 / 4, contexts from a wider rollout-like lognormal and a few long among many short, another
seed; no fit reads it):
  attn_vllm_fa3_varlen.csv  dist, batch, q_len, hq, hkv, d, ctx_list, num_splits, us: each mixed batch
                            (dist = lognormal | bimodal | one_long | ramp, below) and the same batch at its mean
                            (dist = <name>_mean); num_splits is what vLLM passes (32 inside CUDA graphs, else 0),
                            splits_list FA3's own split count per sequence (from its scheduler metadata)
"""
from __future__ import annotations

import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import measure_vllm_fa3 as F
import torch

M = F.M
from stream_csv import write_rows

BATCHES = [8, 32, 64, 128, 256]
Q_LENS = [1, 4]
DISTS = ["lognormal", "bimodal", "one_long", "ramp"]
HELDOUT_BATCHES = [48, 96, 192, 384]
HELDOUT_Q_LENS = [1, 2, 4]
HELDOUT_DISTS = ["rollout", "few_long"]
MAX_CTX = 8192
FIELDS = ["dist", "batch", "q_len", "hq", "hkv", "d", "ctx_list", "num_splits", "us", "splits_list"]


def draw(dist: str, b: int, gen: torch.Generator) -> list[int]:
    """Contexts of one batch (tokens, 64..8192)."""
    if dist == "lognormal":  # a rollout's: median 1.5K, long tail, capped
        x = torch.exp(torch.randn(b, generator=gen) * 0.8) * 1500
    elif dist == "bimodal":  # a quarter of long sequences among short ones
        x = torch.where(torch.rand(b, generator=gen) < 0.25, torch.full((b,), 8192.0), torch.full((b,), 256.0))
    elif dist == "one_long":  # one straggler among short sequences
        x = torch.full((b,), 512.0)
        x[0] = 8192.0
    elif dist == "ramp":  # staggered starts: evenly spaced lengths
        x = torch.linspace(64, 8192, b)
    elif dist == "rollout":  # held out: a wider lognormal, median 2.5K
        x = torch.exp(torch.randn(b, generator=gen) * 1.0) * 2500
    elif dist == "few_long":  # held out: one in sixteen near the cap among lognormal short ones
        x = torch.where(torch.rand(b, generator=gen) < 1 / 16, torch.full((b,), 7900.0),
                        torch.exp(torch.randn(b, generator=gen) * 0.5) * 400)
    else:
        raise ValueError(dist)
    return [int(v) for v in x.clamp(64, MAX_CTX).round().tolist()]


def rows(fa, gen_cuda, t0, budget, batches, q_lens, dists, seed):
    g = torch.Generator().manual_seed(seed)
    for hq, hkv in F.SHAPES:
        for b in batches:
            for dist in dists:
                ctx = draw(dist, b, g)
                mean = round(sum(ctx) / b)
                for q_len in q_lens:
                    for kind, lst in ((dist, ctx), (dist + "_mean", [mean] * b)):
                        if time.time() - t0 > budget:
                            M.log("budget spent; stopping")
                            return
                        c = F.Case(fa, lst, q_len, hq, hkv, gen_cuda)
                        try:
                            us = M.timed(c, inner=8, reps=15)
                            splits = " ".join(map(str, c.splits()))
                        finally:
                            del c
                            torch.cuda.empty_cache()
                        yield dict(zip(FIELDS, [kind, b, q_len, hq, hkv, F.HEAD_DIM, " ".join(map(str, lst)),
                                                F.CG_SPLITS if b * q_len <= F.CG_MAX_TOKENS else 0, round(us, 3), splits]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--fa3-dir", required=True)
    ap.add_argument("--budget-s", type=float, default=420.0)
    ap.add_argument("--heldout", action="store_true", help="the held-out set (other batches, q_lens, draws, seed)")
    args = ap.parse_args()
    t0 = time.time()
    fa, gen = F.open_fa3(args.fa3_dir)
    if args.heldout:
        write_rows("attn_vllm_fa3_varlen_heldout.csv", FIELDS,
                   rows(fa, gen, t0, args.budget_s, HELDOUT_BATCHES, HELDOUT_Q_LENS, HELDOUT_DISTS, seed=11))
    else:
        write_rows("attn_vllm_fa3_varlen.csv", FIELDS, rows(fa, gen, t0, args.budget_s, BATCHES, Q_LENS, DISTS, seed=7))
    M.log("done", round(time.time() - t0, 1), "s")


if __name__ == "__main__":
    main()
