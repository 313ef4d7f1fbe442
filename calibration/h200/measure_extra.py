"""More H200 ground truth for rlsim, in the style of the shared harness.

Extends `shared/measure.py` (a verbatim copy of ../shared/calibration/h200/measure.py): same timing
(CUDA-graph replay, median over replays), same weight-copy trick against L2, same `Layer`.

    OUT=dir ATTN_MODE=packed python3 calibration/h200/measure_extra.py [graph elementwise gemm attn prefill moe steps]

Tables written to $OUT (microseconds per call):
  graph_overhead.csv  n_kernels, us                    a graph of n tiny kernels (per-kernel cost in a graph)
  elementwise.csv     op, rows, width, us              rms_norm / add / silu / mul / copy as the Layer runs them
  gemm_extra.csv      op, m, n, k, us                  GEMM shapes of Qwen3-1.7B/8B/32B/30B-A3B (as gemm.csv)
  attn_extra.csv      batch, q_len, ctx, hq, hkv, d, us   packed decode/verify attention, other GQA shapes
  attn_prefill.csv    batch, q_len, ctx, hq, hkv, d, us   causal prefill (q_len = ctx), flash backend
  attn_big.csv        batch, q_len, ctx, hq, hkv, d, us   packed attention at large batch x long context
  attn_mixed.csv      kind, batch, q_len, hq, hkv, d, ctx_list, us   varlen FA2 over mixed contexts vs uniform
  moe_extra.csv       impl, tokens, experts, topk, hidden, inter, us   MoE MLPs (routed, two implementations)
  steps.csv           model, moe_impl, batch, q_len, ctx, us   whole-model forward steps: the harness's decoder
                      layers, final RMSNorm and lm_head over every new token, one CUDA graph
                      (EAGER=1: the same steps launched eagerly from Python, no CUDA graph)
"""
import math
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "shared"))
os.environ.setdefault("ATTN_MODE", "packed")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import measure as M  # noqa: E402

T0 = time.time()
BUDGET_S = float(os.environ.get("BUDGET_S", "560"))
SMALL = M.SMALL


def left():
    return BUDGET_S - (time.time() - T0)


log = M.log

MODELS = {
    "llama-3.1-8b": dict(layers=32, hidden=4096, heads=32, kv=8, d=128, inter=14336, vocab=128256),
    "qwen3-0.6b": dict(layers=28, hidden=1024, heads=16, kv=8, d=128, inter=3072, vocab=151936),
    "qwen3-1.7b": dict(layers=28, hidden=2048, heads=16, kv=8, d=128, inter=6144, vocab=151936),
    "qwen3-8b": dict(layers=36, hidden=4096, heads=32, kv=8, d=128, inter=12288, vocab=151936),
    "qwen3-32b": dict(layers=64, hidden=5120, heads=64, kv=8, d=128, inter=25600, vocab=151936),
    "qwen3-30b-a3b": dict(layers=48, hidden=2048, heads=32, kv=4, d=128, inter=0, vocab=151936,
                          experts=128, topk=8, moe_inter=768),
}
if SMALL:
    MODELS = {
        "tiny": dict(layers=2, hidden=64, heads=4, kv=2, d=16, inter=128, vocab=512),
        "tiny-moe": dict(layers=2, hidden=64, heads=4, kv=2, d=16, inter=0, vocab=512,
                         experts=8, topk=2, moe_inter=32),
    }


# ---------------------------------------------------------------- graph overhead
def graph_overhead(tab):
    x = torch.zeros(1, device=M.DEV, dtype=M.DT)
    for n in [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]:
        def fn(n=n):
            for _ in range(n):
                x.add_(1)
        tab.add(n, round(M.timed(fn, inner=1, reps=21), 3))
    log("graph overhead done")


# ---------------------------------------------------------------- elementwise
def elementwise(tab):
    rows_list = [1, 4, 16, 64, 256, 1024, 4096, 8192] if not SMALL else [1, 16]
    widths = [1024, 2048, 4096, 5120, 8192] if not SMALL else [64]
    for w in widths:
        for r in rows_list:
            if left() < 60:
                return
            x = M.rnd(r, w)
            y = M.rnd(r, w)
            nw = torch.ones(w, device=M.DEV, dtype=M.DT)
            gu = M.rnd(r, 2 * w)
            g, u = gu.chunk(2, -1)
            s = F.silu(g)
            tab.add("rms_norm", r, w, round(M.timed(lambda: F.rms_norm(x, (w,), nw), inner=8, reps=11), 3))
            tab.add("add", r, w, round(M.timed(lambda: x + y, inner=8, reps=11), 3))
            tab.add("silu", r, w, round(M.timed(lambda: F.silu(g), inner=8, reps=11), 3))
            tab.add("mul", r, w, round(M.timed(lambda: s * u, inner=8, reps=11), 3))
            # strided copy of w columns out of a wider row (the KV write / head reshapes)
            src = M.rnd(r, 3 * w)[:, w:2 * w]
            dst = torch.empty(r, w, device=M.DEV, dtype=M.DT)
            tab.add("copy", r, w, round(M.timed(lambda: dst.copy_(src), inner=8, reps=11), 3))
    log("elementwise done")


# ---------------------------------------------------------------- gemm
def gemm_shapes_extra():
    shapes = {}
    for tag in ["qwen3-1.7b", "qwen3-8b", "qwen3-32b", "qwen3-30b-a3b"]:
        cfg = MODELS.get(tag)
        if cfg is None:
            continue
        h, d = cfg["hidden"], cfg["d"]
        shapes[f"{tag}.qkv"] = ((cfg["heads"] + 2 * cfg["kv"]) * d, h)
        shapes[f"{tag}.o"] = (h, cfg["heads"] * d)
        if cfg["inter"]:
            shapes[f"{tag}.gate_up"] = (2 * cfg["inter"], h)
            shapes[f"{tag}.down"] = (h, cfg["inter"])
        else:
            shapes[f"{tag}.router"] = (cfg["experts"], h)
            shapes[f"{tag}.expert_gate_up"] = (2 * cfg["moe_inter"], h)
            shapes[f"{tag}.expert_down"] = (h, cfg["moe_inter"])
        shapes[f"{tag}.lm_head"] = (cfg["vocab"], h)
    # drop shapes already in the shared gemm.csv (Qwen3-8B qkv and o equal Llama-3.1-8B's)
    seen = set()
    out = {}
    for name, nk in shapes.items():
        if nk in seen or nk in [(6144, 4096), (4096, 4096)]:
            continue
        seen.add(nk)
        out[name] = nk
    if SMALL:
        out = {"tiny.qkv": (96, 64)}
    return out


def gemms(tab):
    ms = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192]
    if SMALL:
        ms = [1, 16]
    for name, (n, k) in gemm_shapes_extra().items():
        copies = min(16, max(1, math.ceil(4 * M.L2_BYTES / (n * k * 2))))
        ws = [M.rnd(n, k) for _ in range(copies)]
        for m in ms:
            if left() < 60:
                return
            x = M.rnd(m, k)

            def fn(x=x, ws=ws):
                for w in ws:
                    F.linear(x, w)

            tab.add(name, m, n, k, round(M.timed(fn, inner=2, reps=11) / copies, 3))
        del ws
        log("gemm", name)


# ---------------------------------------------------------------- attention
def attention(tab):
    heads = [(16, 8), (32, 4), (64, 8), (64, 4)] if not SMALL else [(4, 2)]
    d = 128 if not SMALL else 16
    for hq, hkv in heads:
        for b in [1, 4, 16, 64, 256]:
            for ctx in [512, 2048, 8192, 32768]:
                if b * ctx > 256 * 8192 or (SMALL and (b > 1 or ctx > 512)):
                    continue
                for ql in [1, 4]:
                    if left() < 60:
                        return
                    k = M.rnd(b, hkv, ctx, d)
                    v = M.rnd(b, hkv, ctx, d)
                    q = M.rnd(b, hq, ql, d)
                    us = M.timed(lambda: M.sdpa(q, k, v), inner=4, reps=11)
                    tab.add(b, ql, ctx, hq, hkv, d, round(us, 3))
                    del k, v, q
        log("attn", hq, hkv)


def prefill(tab):
    """Causal self-attention over a fresh prompt (q_len = ctx), K/V pre-expanded to hq heads."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    hq, hkv, d = (32, 8, 128) if not SMALL else (4, 2, 16)
    for b in [1, 4, 16]:
        for ctx in [128, 512, 2048, 8192, 16384]:
            if b * ctx > 65536 or (SMALL and ctx > 128):
                continue
            if left() < 60:
                return
            q = M.rnd(b, hq, ctx, d)
            k = M.rnd(b, hq, ctx, d)
            v = M.rnd(b, hq, ctx, d)
            if M.DEV == "cuda":
                def fn():
                    with sdpa_kernel([SDPBackend.FLASH_ATTENTION]):
                        F.scaled_dot_product_attention(q, k, v, is_causal=True)
            else:
                def fn():
                    F.scaled_dot_product_attention(q, k, v, is_causal=True)
            tab.add(b, ctx, ctx, hq, hkv, d, round(M.timed(fn, inner=2, reps=11), 3))
            del q, k, v
    log("prefill done")


def attention_big(tab):
    """Packed attention where RL rollouts live: large batches at long contexts (b x ctx beyond the shared grid)."""
    heads = [(32, 8), (64, 4), (16, 8), (64, 8)] if not SMALL else [(4, 2)]
    d = 128 if not SMALL else 16
    for hq, hkv in heads:
        for b in [32, 128, 256, 512]:
            for ctx in [8192, 16384, 32768, 65536]:
                if b * ctx <= 256 * 8192 and b != 32 and b != 128:
                    continue  # already in the shared grid
                if b * ctx * hkv > 512 * 16384 * 8 or (SMALL and (b > 32 or ctx > 8192)):
                    continue
                for ql in [1, 4]:
                    if left() < 60:
                        return
                    k = M.rnd(b, hkv, ctx, d)
                    v = M.rnd(b, hkv, ctx, d)
                    q = M.rnd(b, hq, ql, d)
                    us = M.timed(lambda: M.sdpa(q, k, v), inner=2, reps=7)
                    tab.add(b, ql, ctx, hq, hkv, d, round(us, 3))
                    del k, v, q
        log("attn big", hq, hkv)


def attention_mixed(tab):
    """Packed decode attention over batches of MIXED context lengths, through FlashAttention-2's varlen entry
    (torch.ops.aten._flash_attention_forward): the query rows of a sequence are its (hq/hkv) x q_len rows per KV
    head. For each batch, the same total KV with every sequence at the mean context is measured alongside."""
    import numpy as np
    hq, hkv, d = (32, 8, 128) if not SMALL else (4, 2, 16)
    g = hq // hkv
    rng = np.random.default_rng(0)
    cases = []
    for b in [8, 32, 128, 256]:
        for mean in [1024, 4096, 16384]:
            for sigma in [0.5, 1.0]:
                if b * mean > 256 * 16384:
                    continue
                cases.append((b, mean, sigma))
    if SMALL:
        cases = [(4, 64, 1.0)]
    for b, mean, sigma in cases:
        for ql in [1, 4]:
            if left() < 60:
                return
            ctx = np.clip(rng.lognormal(np.log(mean) - sigma ** 2 / 2, sigma, b), 16, 131072).astype(int)
            for kind, lens in (("mixed", ctx), ("uniform", np.full(b, int(round(ctx.mean()))))):
                tot = int(lens.sum())
                k = M.rnd(tot, hkv, d)
                v = M.rnd(tot, hkv, d)
                q = M.rnd(b * g * ql, hkv, d)
                cq = torch.arange(0, b + 1, device=M.DEV, dtype=torch.int32) * (g * ql)
                ck = torch.zeros(b + 1, device=M.DEV, dtype=torch.int32)
                ck[1:] = torch.as_tensor(np.cumsum(lens), device=M.DEV, dtype=torch.int32)
                mk = int(lens.max())

                def fn(q=q, k=k, v=v, cq=cq, ck=ck, mk=mk):
                    torch.ops.aten._flash_attention_forward(q, k, v, cq, ck, g * ql, mk, 0.0, False, False)

                try:
                    us = M.timed(fn, inner=2, reps=7)
                except Exception as e:  # noqa: BLE001
                    log("varlen fail", repr(e)[:200])
                    return
                tab.add(kind, b, ql, hq, hkv, d, " ".join(str(int(x)) for x in lens), round(us, 3))
                del k, v, q
    log("attn mixed done")


# ---------------------------------------------------------------- moe
class MoE:
    """Top-k routed MoE MLP with static shapes (CUDA-graph capturable).

    impl "bmm": gather the routed rows into an [experts, cap, hidden] buffer, cap = ceil(T*topk/E)
    (uniform-routing capacity, overflow dropped), two batched GEMMs over every expert, scatter-add back.
    impl "grouped": rows sorted by expert, torch._grouped_mm over the experts that got rows.
    """

    def __init__(self, cfg, impl):
        h, e, i = cfg["hidden"], cfg["experts"], cfg["moe_inter"]
        self.e, self.k, self.h, self.impl = e, cfg["topk"], h, impl
        self.wr = M.rnd(e, h)
        if impl == "bmm":
            self.w1 = M.rnd(e, h, 2 * i)
            self.w2 = M.rnd(e, i, h)
        else:
            self.w1 = M.rnd(e, 2 * i, h).transpose(1, 2)   # [E, h, 2i], column-major as grouped_mm wants
            self.w2 = M.rnd(e, h, i).transpose(1, 2)       # [E, i, h]

    def __call__(self, x):
        t = x.shape[0]
        e, k = self.e, self.k
        logits = F.linear(x, self.wr)
        topv, topi = logits.topk(k, -1)
        wts = torch.softmax(topv.float(), -1).to(x.dtype).reshape(-1)
        flat = topi.reshape(-1)
        order = flat.argsort(stable=True)
        sorted_e = flat[order]
        tok = order // k
        xs = x.index_select(0, tok)
        if self.impl == "bmm":
            cap = max(1, math.ceil(t * k / e))
            counts = torch.zeros(e, device=x.device, dtype=torch.long).scatter_add_(
                0, flat, torch.ones_like(flat))
            starts = counts.cumsum(0) - counts
            pos = torch.arange(t * k, device=x.device) - starts[sorted_e]
            keep = (pos < cap).to(x.dtype)
            slot = sorted_e * cap + pos.clamp(max=cap - 1)
            buf = torch.zeros(e * cap, self.h, device=x.device, dtype=x.dtype)
            buf.index_copy_(0, slot, xs)
            y = torch.bmm(buf.view(e, cap, self.h), self.w1)
            a, g = y.chunk(2, -1)
            y = torch.bmm(F.silu(a) * g, self.w2).view(e * cap, self.h)
            ys = y.index_select(0, slot) * (wts[order] * keep)[:, None]
        else:
            counts = torch.zeros(e, device=x.device, dtype=torch.int32).scatter_add_(
                0, flat, torch.ones_like(flat, dtype=torch.int32))
            offs = counts.cumsum(0, dtype=torch.int32)
            y = torch._grouped_mm(xs, self.w1, offs=offs)
            a, g = y.chunk(2, -1)
            ys = torch._grouped_mm((F.silu(a) * g).contiguous(), self.w2, offs=offs) * wts[order][:, None]
        return torch.zeros_like(x).index_add_(0, tok, ys)


def moe(tab):
    cfgs = [("qwen3-30b-a3b", MODELS.get("qwen3-30b-a3b")),
            ("qwen3-235b-a22b", dict(hidden=4096, experts=128, topk=8, moe_inter=1536))]
    if SMALL:
        cfgs = [("tiny-moe", MODELS["tiny-moe"])]
    impls = ["bmm", "grouped"] if M.DEV == "cuda" else ["bmm"]
    for _, cfg in cfgs:
        for impl in impls:
            try:
                layer = MoE(cfg, impl)
            except Exception as e:  # noqa: BLE001
                log("moe init fail", impl, repr(e)[:200])
                continue
            for t in [1, 4, 16, 64, 256, 1024, 4096] if not SMALL else [1, 8]:
                if left() < 60:
                    return
                x = M.rnd(t, cfg["hidden"])
                try:
                    us = M.timed(lambda: layer(x), inner=2, reps=11)
                except Exception as e:  # noqa: BLE001
                    log("moe fail", impl, t, repr(e)[:200])
                    us = float("nan")
                tab.add(impl, t, cfg["experts"], cfg["topk"], cfg["hidden"], cfg["moe_inter"], round(us, 3))
            del layer
            log("moe", impl, cfg["hidden"])


# ---------------------------------------------------------------- whole-model steps
class MoELayer(M.Layer):
    """The harness's Layer with its MLP replaced by a routed MoE MLP."""

    def __init__(self, cfg, impl):
        c = dict(cfg)
        c["inter"] = 8  # tiny dense MLP weights, unused
        super().__init__(c, 1, 1)
        self.moe = MoE(cfg, impl)

    def __call__(self, x, ql):
        c = self.cfg
        b = x.shape[0] // ql
        h = F.rms_norm(x, (x.shape[-1],), self.n1)
        qkv = F.linear(h, self.wqkv)
        q, k, v = qkv.split([c["heads"] * c["d"], c["kv"] * c["d"], c["kv"] * c["d"]], -1)
        q = q.view(b, ql, c["heads"], c["d"]).transpose(1, 2)
        k = k.view(b, ql, c["kv"], c["d"]).transpose(1, 2)
        v = v.view(b, ql, c["kv"], c["d"]).transpose(1, 2)
        self.kc[:, :, -ql:].copy_(k)
        self.vc[:, :, -ql:].copy_(v)
        o = M.sdpa(q, self.kc, self.vc)
        o = o.transpose(1, 2).reshape(b * ql, c["heads"] * c["d"])
        x = x + F.linear(o, self.wo)
        h = F.rms_norm(x, (x.shape[-1],), self.n2)
        return x + self.moe(h)


KV_BUDGET = 48e9 if not SMALL else 1e7
EAGER = os.environ.get("EAGER") == "1"  # steps without CUDA graphs: every kernel launched from Python


def timed_eager(fn, warm=3, reps=10):
    """Median microseconds of an eager (not graph-captured) call, by wall clock around a synchronize."""
    for _ in range(warm):
        fn()
    if M.DEV == "cuda":
        torch.cuda.synchronize()
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        if M.DEV == "cuda":
            torch.cuda.synchronize()
        ts.append((time.perf_counter() - t) * 1e6)
    ts.sort()
    return ts[len(ts) // 2]


def steps(tab, which=None):
    grid = os.environ.get("STEP_GRID", "1,4,16,64,256;1024,4096,16384")  # "batches;contexts"
    bs, cs = ([int(v) for v in part.split(",")] for part in grid.split(";"))
    cases = [(b, ql, ctx) for b in bs for ctx in cs for ql in [1, 4]]
    if SMALL:
        cases = [(2, 1, 32), (2, 4, 32)]
    for name, cfg in MODELS.items():
        if which and name not in which:
            continue
        impls = ["bmm", "grouped"] if cfg.get("experts") else ["dense"]
        if M.DEV != "cuda":
            impls = [i for i in impls if i != "grouped"]
        for impl in impls:
            if left() < 90:
                log("out of time before", name, impl)
                return
            if impl == "dense":
                layers = [M.Layer(cfg, 1, 1) for _ in range(cfg["layers"])]
            else:
                layers = [MoELayer(cfg, impl) for _ in range(cfg["layers"])]
            head = M.rnd(cfg["vocab"], cfg["hidden"])
            nf = torch.ones(cfg["hidden"], device=M.DEV, dtype=M.DT)
            for b, ql, ctx in cases:
                if left() < 60:
                    log("out of time in", name, impl)
                    return
                per_layer = b * cfg["kv"] * ctx * cfg["d"] * 2 * 2
                npool = int(max(1, min(cfg["layers"], KV_BUDGET // max(per_layer, 1))))
                if npool < 2 and per_layer * 2 > KV_BUDGET * 1.5:
                    log("skip (KV too large)", name, b, ql, ctx)
                    continue
                # random KV, as the harness's Layer allocates it (timings depend on the data: zeros run faster)
                pool = [(M.rnd(b, cfg["kv"], ctx, cfg["d"]), M.rnd(b, cfg["kv"], ctx, cfg["d"]))
                        for _ in range(npool)]
                for i, lay in enumerate(layers):
                    lay.kc, lay.vc = pool[i % npool]
                x = M.rnd(b * ql, cfg["hidden"])

                def fwd(x=x, ql=ql):
                    y = x
                    for lay in layers:
                        y = lay(y, ql)
                    y = F.rms_norm(y, (y.shape[-1],), nf)
                    return F.linear(y, head)

                try:
                    us = timed_eager(fwd) if EAGER else M.timed(fwd, inner=1, reps=7)
                except Exception as e:  # noqa: BLE001
                    log("step fail", name, impl, b, ql, ctx, repr(e)[:200])
                    us = float("nan")
                tab.add(name, impl, b, ql, ctx, round(us, 2))
                for lay in layers:
                    lay.kc = lay.vc = None
                del pool, x
                if M.DEV == "cuda":
                    torch.cuda.empty_cache()
            log("steps", name, impl)
            del layers, head
            if M.DEV == "cuda":
                torch.cuda.empty_cache()


def main():
    which = sys.argv[1:] or ["graph", "elementwise", "gemm", "attn", "prefill", "moe", "steps"]
    models = os.environ.get("STEP_MODELS")
    models = models.split(",") if models else None
    if "graph" in which:
        graph_overhead(M.Table("graph_overhead.csv", ["n_kernels", "us"]))
    if "elementwise" in which:
        elementwise(M.Table("elementwise.csv", ["op", "rows", "width", "us"]))
    if "steps" in which:
        steps(M.Table(os.environ.get("STEP_TABLE", "steps.csv"), ["model", "moe_impl", "batch", "q_len", "ctx", "us"]), models)
    if "gemm" in which:
        gemms(M.Table("gemm_extra.csv", ["op", "m", "n", "k", "us"]))
    if "attn" in which:
        attention(M.Table("attn_extra.csv", ["batch", "q_len", "ctx", "hq", "hkv", "d", "us"]))
    if "prefill" in which:
        prefill(M.Table("attn_prefill.csv", ["batch", "q_len", "ctx", "hq", "hkv", "d", "us"]))
    if "attn_big" in which:
        attention_big(M.Table("attn_big.csv", ["batch", "q_len", "ctx", "hq", "hkv", "d", "us"]))
    if "attn_mixed" in which:
        attention_mixed(M.Table("attn_mixed.csv", ["kind", "batch", "q_len", "hq", "hkv", "d", "ctx_list", "us"]))
    if "moe" in which:
        moe(M.Table("moe_extra.csv", ["impl", "tokens", "experts", "topk", "hidden", "inter", "us"]))
    log("done; attention backend", M.ATTN_BACKEND, "torch", torch.__version__)


if __name__ == "__main__":
    main()
