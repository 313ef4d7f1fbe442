"""`rlsim step`: predict one forward step (decode, verify or prefill) of a batch on a GPU.

    rlsim step --hardware h200 --model qwen3-8b --batch 64 --q-len 4 --context 4096 [--tp 1] [--dtype bf16] [--json]
    rlsim step --hardware h200 --cases cases.csv --out predictions.csv

In a cases file (columns model,batch,q_len,context; optional tp,ep,pp,dtype) every sequence of a row has that
context; the output repeats the rows and adds step_ms (and fits_memory: whether weights + KV cache fit the GPU).
"""
from __future__ import annotations

import json
import math
import sys

from simulator.cli.options import COST_MODEL_OPTIONS, option_names
from simulator.errors import RlsimError, check_at_least


def register(sub) -> None:
    p = sub.add_parser("step", help="predict the time of one forward step",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("--hardware", required=True, help="GPU profile name or YAML path (h200, h100, b200, gb200, a100)")
    p.add_argument("--model", help="model name (case-insensitive) or YAML path")
    p.add_argument("--batch", type=int, help="sequences in the batch")
    p.add_argument("--q-len", type=int, default=1, help="new tokens per sequence (1 decode, k+1 verify)")
    p.add_argument("--context", type=int, help="KV length each sequence attends to, new tokens included")
    p.add_argument("--tp", type=int, default=1)
    p.add_argument("--ep", type=int, default=1)
    p.add_argument("--pp", type=int, default=1)
    p.add_argument("--dtype", default="bf16", help="weights/GEMM dtype: bf16, fp8, fp4")
    p.add_argument("--kv-dtype", default="bf16")
    p.add_argument("--attention-backend", help="override the profile's attention backend")
    p.add_argument("--moe-kernel", help="override the profile's MoE kernel (padded_bmm, grouped, fused)")
    p.add_argument("--eager", action="store_true", help="no CUDA graph: pay the eager launch cost")
    p.add_argument("--all-reduce", choices=("vllm", "nccl"), default="vllm",
                   help="tensor-parallel all-reduce: vLLM's dispatch (default) or NCCL alone")
    p.add_argument("--cases", help="CSV of steps to predict (columns model,batch,q_len,context[,tp,ep,pp,dtype])")
    p.add_argument("--out", help="output CSV for --cases")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def _positive(v, name: str) -> int:
    if v is None:
        raise RlsimError("is required", name)
    check_at_least(v, 1, name)
    return int(v)


class _Models:
    """StepCostModels cached by configuration."""

    def __init__(self, hardware, kv_dtype, attention_backend, moe_kernel, all_reduce):
        self.hardware, self.kv_dtype, self.all_reduce = hardware, kv_dtype, all_reduce
        self.attention_backend, self.moe_kernel = attention_backend, moe_kernel
        self.cache = {}

    def get(self, model, tp, ep, pp, dtype):
        from simulator.costmodel.step import StepCostModel
        key = (str(model).lower(), tp, ep, pp, dtype)
        if key not in self.cache:
            self.cache[key] = StepCostModel(self.hardware, model, tp=tp, ep=ep, pp=pp, dtype=dtype,
                                            kv_dtype=self.kv_dtype, attention_backend=self.attention_backend,
                                            moe_kernel=self.moe_kernel, all_reduce=self.all_reduce)
        return self.cache[key]


def _plan(sm, batch, context):
    from simulator.costmodel.memory import memory_plan
    return memory_plan(sm.hw, sm.model, sm.par, sm.dtype, "bf16" if sm.kv_bytes == 2 else "fp8",
                       max_tokens=batch, utilization=1.0)


def run(args) -> int:
    with option_names(COST_MODEL_OPTIONS):
        return _run(args)


def _run(args) -> int:
    from simulator.hardware import load_hardware
    hw = load_hardware(args.hardware, field="--hardware")
    models = _Models(hw, args.kv_dtype, args.attention_backend, args.moe_kernel, args.all_reduce)
    if args.cases:
        return _run_cases(args, models)
    if args.out:
        raise RlsimError("writes the predictions of --cases; without it the step prints (--json for JSON)", "--out")
    if not args.model:
        raise RlsimError("is required (or give --cases)", "--model")
    batch = _positive(args.batch, "--batch")
    q_len = _positive(args.q_len, "--q-len")
    context = _positive(args.context, "--context")
    if context < q_len:
        raise RlsimError(f"must be >= --q-len ({context} < {q_len}): the context includes the new tokens",
                         "--context")
    sm = models.get(args.model, args.tp, args.ep, args.pp, args.dtype)
    import numpy as np
    from simulator.costmodel.memory import check_batch_fits
    plan = _plan(sm, batch * q_len, context)
    check_batch_fits(plan, batch * context, field="--batch" if batch > 1 else "--context", weights_field="--tp")
    res = sm.step(np.full(batch, q_len), np.full(batch, context), cuda_graph=not args.eager)
    out = {"hardware": hw.name, "model": sm.model.name, "batch": batch, "q_len": q_len, "context": context,
           "tp": args.tp, "ep": args.ep, "pp": args.pp, "dtype": args.dtype, "step_ms": res.time_s * 1e3,
           "breakdown": {k: v * 1e3 for k, v in res.breakdown.items()},
           "tokens_per_s": batch * q_len / res.time_s,
           "memory_gib": {"weights": plan.weights / 2**30, "kv_cache": batch * context * plan.kv_per_token / 2**30,
                          "activations": plan.activations / 2**30, "capacity": plan.capacity / 2**30}}
    if args.json:
        print(json.dumps(out))
        return 0
    print(f"{sm.model.name} on {hw.name} (tp={args.tp} ep={args.ep} pp={args.pp} {args.dtype}): batch {batch} x "
          f"q_len {q_len} at context {context}")
    print(f"step: {out['step_ms']:.3f} ms   ({out['tokens_per_s']:.0f} new tokens/s)")
    for k, v in out["breakdown"].items():
        print(f"  {k:10s} {v:9.3f} ms  {100 * v / out['step_ms']:5.1f}%")
    mg = out["memory_gib"]
    print(f"memory per GPU: weights {mg['weights']:.1f} GiB + KV {mg['kv_cache']:.1f} GiB + activations "
          f"{mg['activations']:.1f} GiB of {mg['capacity']:.1f} GiB")
    return 0


def _whole(v, where: str) -> int:
    """A cases-file cell that must be a whole number."""
    try:
        f = float(v)
    except (TypeError, ValueError):
        f = math.nan
    if not (math.isfinite(f) and f % 1 == 0):
        raise RlsimError(f"batch, q_len, context, tp, ep and pp must be whole numbers (got {v!r})", where)
    return int(f)


def _run_cases(args, models) -> int:
    from pathlib import Path

    import numpy as np
    import pandas as pd

    from simulator.fit.measurements import MAX_DIM, data_lines
    from simulator.scenario import MAX_BATCH_SEQUENCES
    from simulator.yamlio import write_text_atomic
    if not args.out:
        raise RlsimError("is required with --cases", "--out")
    if not str(args.out).lower().endswith(".csv"):
        raise RlsimError(f"writes a CSV table: give a .csv path (got {args.out})", "--out")
    try:
        df = pd.read_csv(args.cases, comment="#")
    except FileNotFoundError:
        raise RlsimError("no such file", args.cases) from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise RlsimError(f"not a readable CSV ({' '.join(str(e).split())[:100]})", args.cases) from None
    need = ["model", "batch", "q_len", "context"]
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise RlsimError(f"missing columns {missing} (need model,batch,q_len,context; optional tp,ep,pp,dtype)",
                         args.cases)
    rows = []  # every row checked before any is predicted: a bad row is the only line printed
    lines = data_lines(Path(args.cases))
    for i, r in enumerate(df.to_dict("records")):
        where = f"{args.cases}:{lines[i]}"
        vals = {c: _whole(r.get(c), where) for c in ("batch", "q_len", "context")}
        par = {c: _whole(r[c], where) if c in r and pd.notna(r[c]) else 1 for c in ("tp", "ep", "pp")}
        if min(vals.values()) < 1 or min(par.values()) < 1 or vals["context"] < vals["q_len"]:
            raise RlsimError("needs batch, q_len >= 1 and context >= q_len", where)
        if vals["batch"] > MAX_BATCH_SEQUENCES or max(vals.values()) > MAX_DIM:
            raise RlsimError(f"needs batch <= {MAX_BATCH_SEQUENCES:,} and q_len, context <= {MAX_DIM:,}", where)
        dtype = str(r["dtype"]) if "dtype" in r and pd.notna(r.get("dtype")) else args.dtype
        try:
            sm = models.get(str(r["model"]), par["tp"], par["ep"], par["pp"], dtype)
        except RlsimError as e:
            raise RlsimError(str(e), where) from None
        rows.append((where, sm, vals["batch"], vals["q_len"], vals["context"]))
    ms, fits = [], []
    for where, sm, b, q, c in rows:
        res = sm.step(np.full(b, q), np.full(b, c), cuda_graph=not args.eager)
        plan = _plan(sm, b * q, c)
        ok = plan.weights + plan.activations + b * c * plan.kv_per_token <= plan.capacity
        if not ok:
            print(f"rlsim: note: {where}: weights + KV cache exceed the GPU memory (predicted anyway)",
                  file=sys.stderr)
        ms.append(res.time_s * 1e3)
        fits.append(ok)
    out = df.copy()
    out["step_ms"] = np.round(ms, 6)
    out["fits_memory"] = fits
    write_text_atomic(args.out, out.to_csv(index=False))
    print(f"wrote {len(out)} predictions to {args.out}")
    return 0
