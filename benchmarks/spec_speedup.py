"""Speculative-decoding step economics, printed as figures:
- Llama-3.1-8B + EAGLE-3 on H200 (acceptance fitted from the ShareGPT trace): speedup by batch and k, and the
  goodput-optimal k per batch (speedup must fall with batch size and with k beyond the optimum);
- Qwen3-8B + EAGLE-3 (k=3) on GB200 at the paper's acceptance lengths (2.77 RL-Think, 3.32 RL-Zero): the
  per-iteration speedup by batch size, next to the paper's measured generation-stage speedup
  (../shared/published/paper_specdec_rl_8b.csv). The paper's figure is a whole-rollout ratio (prefill, contexts
  that grow, a batch that drains from hundreds of sequences to a few, verify batches past the largest CUDA
  graph), so it need not lie within these per-iteration figures; `rlsim validate` compares whole rollouts.
All iterations include vLLM's framework overheads fitted to its measured batch-1 TPOT
(simulator/fit/spec_overhead.py on workloads/published/vllm_eagle_bs1_tpot.csv), printed first.

    python benchmarks/spec_speedup.py
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from simulator.costmodel.step import StepCostModel
from simulator.fit.spec_overhead import fit_spec_overhead, read_tpot_table
from simulator.paths import project_root
from simulator.specdec.acceptance import AcceptanceProfile, Source, profile_from_mean_length
from simulator.specdec.costs import SpecDecodeCost, goodput_optimal_k


def table(spec, acc, batches, ks, context, step_overhead_s=0.0):
    rows = []
    for b in batches:
        cached = np.full(b, context)
        ar = spec.iteration(cached, 0).time_s + step_overhead_s
        taus = {k: (acc.tau(k) if k else 1.0) for k in ks}
        for k in ks:
            t = spec.iteration(cached, k, accepted=taus[k] if k else None).time_s + step_overhead_s
            rows.append({"batch": b, "k": k, "tau": taus[k], "step_ms": t * 1e3, "speedup": taus[k] / t * ar})
        rows[-1]["optimal_k"] = goodput_optimal_k(spec, taus, cached)[0]
    return pd.DataFrame(rows)


def main() -> None:
    root = project_root()
    fit = fit_spec_overhead(StepCostModel("h100", "llama-3.1-8b"),
                            read_tpot_table(root / "workloads/published/vllm_eagle_bs1_tpot.csv"), "eagle3")
    print(f"vLLM overheads (fitted on H100 batch-1 TPOT, max error {max(abs(r['error']) for r in fit.rows):.1%}): "
          f"step {fit.step_overhead_s * 1e3:.2f} ms, speculative iteration {fit.iteration_overhead_s * 1e3:.2f} ms, "
          f"draft step {fit.draft_step_overhead_s * 1e3:.2f} ms\n")
    oh = fit.step_overhead_s
    acc = AcceptanceProfile.load(root / "workloads/acceptance/llama3.1-8b-eagle3-sharegpt.yaml").model()
    spec = SpecDecodeCost(StepCostModel("h200", "llama-3.1-8b"), fit.draft_config("eagle3"))
    t = table(spec, acc, [1, 8, 32, 128, 256], range(8), 2048, oh)
    print("Llama-3.1-8B + EAGLE-3 on H200, context 2048: speedup over autoregressive decoding")
    print(t.pivot(index="batch", columns="k", values="speedup").round(2).to_string())
    opt = t.dropna(subset=["optimal_k"]).set_index("batch")["optimal_k"].astype(int)
    print("goodput-optimal k by batch:", opt.to_dict())
    paper = pd.read_csv(root / "workloads/published/paper_specdec_rl_8b.csv", comment="#")
    spec8 = SpecDecodeCost(StepCostModel("gb200", "qwen3-8b"), fit.draft_config("eagle3"))
    print("\nQwen3-8B + EAGLE-3 (k=3) on GB200, context 4096: per-iteration speedup vs the paper's generation speedup")
    for wl in ("rl-think", "rl-zero"):
        rows = paper[paper["workload"] == wl].set_index("method")
        tau = float(rows.loc["eagle3", "acceptance_length"])
        published = rows.loc["autoregressive", "generation_s"] / rows.loc["eagle3", "generation_s"]
        acc8 = profile_from_mean_length(tau, 3, method="eagle3", source=Source(format="published")).model()
        t8 = table(spec8, acc8, [1, 16, 64, 256, 1024], [0, 3], 4096, oh)
        sp = t8[t8["k"] == 3].set_index("batch")["speedup"]
        print(f"  {wl}: tau {tau:.2f}; per-iteration speedup {', '.join(f'b{b}: {v:.2f}x' for b, v in sp.items())}; "
              f"paper generation speedup {published:.2f}x")
    from simulator.validation.published import paper_checks
    print("\nWhole RL steps (rlsim's pipeline on the paper's scenarios, fitted on the autoregressive rows only):")
    for c in paper_checks():
        if c.tolerance is not None:
            print(f"  {c.row:9s} {c.quantity:34s} published {c.published:5.2f}x  predicted {c.predicted:5.2f}x  "
                  f"error {c.rel_error:+6.1%}  ({'within' if c.ok else 'outside'} {c.tolerance:.0%})")


if __name__ == "__main__":
    main()
