"""`rlsim fit kernels`: a base (datasheet) profile + kernel measurements -> a calibrated hardware profile."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from simulator.fit.fit_attention import (cross_validate_attention, fit_attention, fit_prefill,
                                         fit_scheduled_attention, fit_split, fit_varlen, predict_attention,
                                         predict_mixed, predict_prefill)
from simulator.fit.fit_collectives import fit_collectives
from simulator.fit.fit_gemm import cross_validate, fit_gemm, predict
from simulator.fit.fit_misc import (cross_validate_moe, fit_elementwise, fit_graph_floor, fit_host_copy, fit_moe,
                                    fit_moe_train, fit_train_backward, host_copy_fit_rows, predict_elementwise,
                                    predict_host_copy, predict_moe, predict_moe_train)
from simulator.fit.measurements import Measurements
from simulator.hardware import DTYPE_BYTES, Efficiency, HardwareProfile

EW_OPS = ("rms_norm", "add", "silu", "mul", "copy")
FUSED_MOE_KERNELS = 5  # routing/gather kernels of vLLM's fused_moe path besides the two expert GEMMs
# kernels per MoE block besides the router GEMM before an eager fit replaces them: Python ops counted in
# calibration/h200/measure_extra.py's MoE (an upper bound), and vLLM's fused_moe (topk_softmax,
# moe_align_block_size, 2 fused GEMMs, silu_and_mul, moe_sum, scatter)
MOE_KERNELS = {"padded_bmm": 33, "grouped": 25, "fused": 7}


@dataclass
class FitReport:
    """Relative errors (predicted / measured - 1) by kind, in-sample and cross-validated."""

    rows: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, kind: str, errs, how: str) -> None:
        e = np.abs(np.asarray(errs, dtype=float))
        if e.size:
            self.rows.append({"kind": kind, "check": how, "n": int(e.size), "median_abs_err": float(np.median(e)),
                              "p90_abs_err": float(np.percentile(e, 90)), "max_abs_err": float(e.max())})

    def table(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows)


def fit_profile(base: HardwareProfile, m: Measurements, like: HardwareProfile | None = None,
                cross_validation: bool = True) -> tuple[HardwareProfile, FitReport]:
    rep = FitReport()
    eff = like.efficiency.model_copy(deep=True) if like is not None else Efficiency()
    bw = base.hbm_bandwidth
    derived: list[str] = []
    transferred: list[str] = []

    gemm = m.table("gemm")
    if not gemm.empty:
        for dtype, rows in gemm.groupby("dtype"):
            peak = base.peak(dtype)
            wb = DTYPE_BYTES[dtype]
            ab = 2.0 if dtype == "bf16" else 1.5  # fp8 GEMMs read fp8 inputs and write bf16 outputs
            rows = rows.reset_index(drop=True)
            c = fit_gemm(rows, peak, bw, wb, ab)
            eff.gemm[dtype] = c
            rep.add(f"gemm {dtype}", predict(c, rows, peak, bw, wb, ab) / rows["us"].to_numpy() - 1, "in-sample")
            if cross_validation:
                rep.add(f"gemm {dtype}", cross_validate(rows, peak, bw, wb, ab), "5-fold CV (rows held out)")
                rep.add(f"gemm {dtype}", cross_validate(rows, peak, bw, wb, ab, by_shape=True),
                        "leave-one-shape-out CV")
            derived.append(f"gemm.{dtype}: {c.fit_note}")
    attn = m.table("attention")
    peak16 = base.peak("bf16")
    if not attn.empty:
        for backend, rows in attn.groupby("backend"):
            rows = rows.reset_index(drop=True)
            reread = backend == "sdpa_gqa"
            c = fit_attention(rows, bw, peak16, reread)
            eff.attention[backend] = c
            rep.add(f"attention {backend}", predict_attention(c, rows, bw, peak16) / rows["us"].to_numpy() - 1,
                    "in-sample")
            if cross_validation:
                rep.add(f"attention {backend}", cross_validate_attention(rows, bw, peak16, reread),
                        "5-fold CV (rows held out)")
            derived.append(f"attention.{backend}: {c.fit_note}")
    varlen = m.table("attention_varlen")
    for backend, rows in (varlen.groupby("backend") if not varlen.empty else []):
        if backend in eff.attention:
            uniform = attn[attn["backend"] == backend].reset_index(drop=True)
            c, errors, note = fit_scheduled_attention(eff.attention[backend], uniform, rows, bw, peak16,
                                                      backend == "sdpa_gqa")
            eff.attention[backend] = c
            rep.add(f"attention {backend} (mixed contexts)", errors, "in-sample")
            rep.add(f"attention {backend} (with waves)", predict_attention(c, uniform, bw, peak16)
                    / uniform["us"].to_numpy() - 1, "in-sample")
            derived.append(f"attention.{backend}.split_schedule: {note}")
    mixed = m.table("attention_mixed")
    if not mixed.empty:
        c = fit_varlen(mixed, bw, peak16)
        eff.attention["varlen_fa2"] = c
        rep.add("attention varlen_fa2 (mixed contexts)",
                predict_mixed(c, mixed, bw, peak16) / mixed["us"].to_numpy() - 1, "in-sample")
        derived.append(f"attention.varlen_fa2: {c.fit_note}")
        if "packed" in eff.attention and not attn.empty:
            pk = eff.attention["packed"]
            rows = attn[attn["backend"] == "packed"]
            pk.cta_bytes_per_s = c.cta_bytes_per_s
            pk.split_tokens = fit_split(pk, rows.reset_index(drop=True), bw, peak16, c.cta_bytes_per_s)
            pk.cta_bytes_per_s = c.cta_bytes_per_s if pk.split_tokens else 0.0
            derived.append("attention.packed critical path: " + (
                f"the varlen per-CTA rate, split_tokens ({pk.split_tokens}) = the largest KV chunk per CTA that "
                "leaves the dense timings' fit within 1% (p90)" if pk.split_tokens else
                "none: no KV chunk of 128+ tokens at the varlen per-CTA rate is consistent with the dense timings "
                "(the dense kernel splits long sequences finely)"))
    pre = m.table("prefill")
    if not pre.empty:
        c = fit_prefill(pre, peak16)
        eff.prefill = c
        rep.add("prefill attention", predict_prefill(c, pre, peak16) / pre["us"].to_numpy() - 1, "in-sample")
        derived.append(f"prefill: {c.fit_note}")
    moe = m.table("moe")
    if not moe.empty:
        g = eff.gemm.get("bf16")
        for kernel, impls, reads_all in (("padded_bmm", ("experts", "bmm"), True), ("grouped", ("grouped",), False)):
            rows = moe[moe["impl"].isin(impls)].reset_index(drop=True)
            if rows.empty:
                continue
            c = fit_moe(rows, reads_all, peak16, bw, g)
            c.kernels = MOE_KERNELS[kernel]
            eff.moe[kernel] = c
            rep.add(f"moe {kernel}", predict_moe(c, rows, peak16, bw, g) / rows["us"].to_numpy() - 1, "in-sample")
            derived.append(f"moe.{kernel}: {c.fit_note}")
    mt = m.table("moe_train")
    if not mt.empty:
        c = eff.moe_train = fit_moe_train(mt, peak16, bw)
        rep.add("moe training experts", predict_moe_train(c, mt, peak16, bw) / mt["us"].to_numpy() - 1, "in-sample")
        derived.append(f"moe_train: {c.fit_note}")
    tl = m.table("train_layer")
    if not tl.empty:
        c = eff.train_backward = fit_train_backward(tl)
        derived.append(f"train_backward: {c.fit_note}")
    hc = m.table("host_copy")
    if not hc.empty:
        c = eff.host_copy = fit_host_copy(hc, base.host_bandwidth)
        big = host_copy_fit_rows(hc)
        rep.add("host copies (sets >= 4 GiB)",
                predict_host_copy(c, big, base.host_bandwidth) / big["seconds"].to_numpy() - 1, "in-sample")
        derived.append(f"host_copy: {c.fit_note}")
    ew = m.table("elementwise")
    for op in EW_OPS:
        rows = ew[ew["op"] == op] if not ew.empty else ew
        if len(rows) >= 2:
            c = eff.elementwise[op] = fit_elementwise(rows, op, bw, base.l2_bytes)
            rep.add(f"elementwise {op}", predict_elementwise(c, rows, op, bw) / rows["us"].to_numpy() - 1,
                    "in-sample")
            derived.append(f"elementwise.{op}: linear least squares on {len(rows)} timings "
                           f"({', '.join(sorted(set(rows['source'])))})")
    vllm_rows = moe[moe["impl"].str.startswith("vllm_fused_")] if not moe.empty else moe
    if not vllm_rows.empty and "copy" in eff.elementwise:
        kernel_s = eff.elementwise["copy"].overhead_s
        for config, kernel in (("tuned", "fused"), ("default", "fused_default")):
            rows = vllm_rows[vllm_rows["impl"] == f"vllm_fused_{config}"].reset_index(drop=True)
            if rows.empty:
                continue
            c = fit_moe(rows, False, peak16, bw, None)
            rep.add(f"moe {kernel} (vLLM fused_moe, {config} tiles)",
                    predict_moe(c, rows, peak16, bw, None) / rows["us"].to_numpy() - 1, "in-sample")
            if cross_validation:
                rep.add(f"moe {kernel} (vLLM fused_moe, {config} tiles)",
                        cross_validate_moe(rows, False, peak16, bw), "leave-one-shape-out CV")
            eff.moe[kernel] = c.model_copy(update={
                "route_s": c.route_s + FUSED_MOE_KERNELS * kernel_s, "kernels": MOE_KERNELS["fused"],
                "fit_note": f"vLLM fused_moe Triton kernel with its {config} tile configs: {c.fit_note}, the two "
                            f"expert launches alone; plus {FUSED_MOE_KERNELS} routing kernels (topk_softmax, "
                            f"moe_align_block_size, silu_and_mul, moe_sum, scatter) at the fitted overhead of a "
                            f"small copy kernel ({kernel_s * 1e6:.2f} us)"})
            derived.append(f"moe.{kernel}: {eff.moe[kernel].fit_note}")
    elif "padded_bmm" in eff.moe and not moe.empty and "copy" in eff.elementwise:
        pb = eff.moe["padded_bmm"]
        kernel_s = eff.elementwise["copy"].overhead_s
        eff.moe["fused"] = pb.model_copy(update={
            "reads_all_experts": False, "route_s": FUSED_MOE_KERNELS * kernel_s, "kernels": MOE_KERNELS["fused"],
            "fit_note": f"vLLM fused_moe (no measurement): only the experts the batch touches and the routed rows, at "
                        f"the expert-GEMM efficiencies fitted for padded_bmm; routing = {FUSED_MOE_KERNELS} small "
                        f"kernels (topk_softmax, moe_align_block_size, silu_and_mul, moe_sum, scatter) at the fitted "
                        f"overhead of a small copy kernel ({kernel_s * 1e6:.2f} us) plus padded_bmm's per-row cost"})
        derived.append("moe.fused: derived, see its fit_note")
    gr = m.table("graph")
    if not gr.empty:
        eff.graph_kernel_s = fit_graph_floor(gr)
        derived.append("graph_kernel_s: slope of graph_overhead.csv")
    eager = m.table("eager_steps")
    if not eager.empty and eff.gemm and eff.attention:
        (eff.eager_launch_s, eff.eager_gap_s), errs, counts = fit_eager_launch(
            base.model_copy(update={"efficiency": eff}), eager)
        for k, c in counts.items():
            eff.moe[k].kernels = c
            derived.append(f"moe.{k}.kernels: {c}, fitted to its eager whole-model steps")
        rep.add("eager whole-model steps", errs, "in-sample")
        derived.append(f"eager_launch_s, eager_gap_s: CPU launch time and GPU gap per kernel fitted to {len(eager)} "
                       f"whole-model steps launched "
                       f"eagerly ({', '.join(sorted(set(eager['source'])))})")
    elif m.eager_launch_s:
        eff.eager_launch_s = float(np.median(m.eager_launch_s))
        derived.append("eager_launch_s: profiler traces' span per kernel (eager PyTorch, profiler on: an upper bound)")
    net = m.table("network")
    if not net.empty:  # NVLink groups -> scale_up, groups across nodes -> scale_out (see fit/fit_collectives.py)
        cf = fit_collectives(net[net["group"] >= 2], base)
        for (link, op), c in sorted(cf.curves.items()):
            eff.collectives.setdefault(link, {})[op] = c
            derived.append(f"collectives.{link}.{op}: {c.fit_note}")
            r = cf.rows[(cf.rows["link"] == link) & (cf.rows["collective"] == op)]
            rep.add(f"collective {link} {op}", r["err"].to_numpy(), "in-sample")
        rep.notes += [f"collectives: {n}" for n in cf.notes]
        if like is not None:
            kept = sorted(f"{lk}.{op}" for lk, ops in eff.collectives.items() for op in ops
                          if (lk, op) not in cf.curves)
            if kept:
                derived.append(f"collectives {', '.join(kept)}: transferred unchanged from {like.name}")
    if like is not None:
        fitted = {d.split(":")[0].split(".")[0] for d in derived}
        for part in ("gemm", "attention", "prefill", "moe", "moe_train", "train_backward", "host_copy", "elementwise",
                     "collectives"):
            if part not in fitted and getattr(eff, part):
                transferred.append(part)
    text = [base.derivation.strip()]
    if derived:
        text.append("Fitted by `rlsim fit kernels` from: " + "; ".join(sorted(set(m.sources))) + ".")
        text += derived
    if "host_copy" in transferred:
        transferred.remove("host_copy")
        text.append(f"host_copy transferred unchanged from {like.name} (assumption: its host's measured pageable-copy "
                    f"rates, which the host CPU's page handling bounds, hold here; pinned copies at the same fraction "
                    f"of this profile's host link).")
    if transferred:
        text.append(f"Transferred unchanged from {like.name} (assumption: the same fraction of peak FLOP/s and HBM "
                    f"bandwidth per kernel size, the same fixed overheads): {', '.join(transferred)}.")
    if m.device:
        text.append(f"Measured ceilings on the device ({m.device.get('name', '?')}): bf16 8192^3 GEMM "
                    f"{m.device.get('bf16_tflops_8192', float('nan')):.0f} TFLOP/s, 1 GiB copy "
                    f"{m.device.get('copy_GBps_rw', float('nan')):.0f} GB/s (read + write).")
    prof = base.model_copy(update={"efficiency": eff, "derivation": "\n".join(text)})
    for t in m.traces:
        rep.notes.append(f"trace {t['file']}: {t['kernels']} kernels, per class (us): "
                         + ", ".join(f"{k} {v:.0f}" for k, v in sorted(t["class_us"].items()))
                         + (f"; {t.get('note')}" if t.get("note") else f"; {t['rows']} fit rows"))
    if m.validation:
        rep.notes.append("validation-only tables, not fitted on: " + ", ".join(m.validation))
    return prof, rep


def missing_parts(prof: HardwareProfile) -> list[str]:
    """The curves a profile needs to price a dense model's inference and training steps that it lacks."""
    eff = prof.efficiency
    need = {"gemm.bf16": "bf16" in eff.gemm, f"attention.{prof.attention_backend}": prof.attention_backend
            in eff.attention, "prefill": eff.prefill is not None, "train_backward": eff.train_backward is not None}
    need.update({f"elementwise.{op}": op in eff.elementwise for op in EW_OPS})
    return [k for k, ok in need.items() if not ok]


def fit_eager_launch(prof: HardwareProfile, rows: pd.DataFrame) -> tuple[tuple[float, float], np.ndarray, dict]:
    """Eager (no CUDA graph) steps take max(kernels x launch, GPU time + kernels x gap). Fit (launch, gap) on the
    dense models' steps, then each MoE implementation's kernel count on its own steps (grid searches on the median
    absolute log error). Returns ((launch s, gap s), relative errors, {moe kernel: count})."""
    from simulator.costmodel.step import StepCostModel
    impl = {"bmm": "padded_bmm", "grouped": "grouped"}
    t = rows["us"].to_numpy(float) * 1e-6
    graph, base_n, layers, kind = [], [], [], []
    cache: dict = {}
    for r in rows.itertuples():
        key = (r.model, getattr(r, "moe_impl", "dense"))
        if key not in cache:
            cache[key] = StepCostModel(prof, r.model, moe_kernel=impl.get(key[1]))
        sm = cache[key]
        res = sm.step(np.full(r.batch, r.q_len), np.full(r.batch, r.ctx))
        graph.append(res.time_s)
        base_n.append(res.kernels - sm.model.moe_layers * sm.moe_kernels + (2 * sm.model.layers if r.q_len > 1 else 0))
        layers.append(sm.model.moe_layers)
        kind.append(impl.get(key[1], "dense"))
    graph, base_n, layers, kind = np.array(graph), np.array(base_n, float), np.array(layers, float), np.array(kind)
    dense = kind == "dense"

    def err(n, L, g, sel):
        return np.log(np.maximum(n[sel] * L, graph[sel] + n[sel] * g) / t[sel])

    best = None
    for L in np.geomspace(1e-6, 200e-6, 160):
        for g in np.concatenate([[0.0], np.geomspace(0.1e-6, 20e-6, 60)]):
            score = float(np.median(np.abs(err(base_n, L, g, dense))))
            if best is None or score < best[0]:
                best = (score, L, g)
    _, L, g = best
    counts = {}
    n = base_n.copy()
    for k in sorted(set(kind) - {"dense"}):
        sel = kind == k
        scores = {c: float(np.median(np.abs(err(base_n + layers * c, L, g, sel)))) for c in range(1, 81)}
        counts[k] = min(scores, key=scores.get)
        n[sel] = base_n[sel] + layers[sel] * counts[k]
    e = np.log(np.maximum(n * L, graph + n * g) / t)
    return (float(L), float(g)), np.exp(e) - 1, counts
