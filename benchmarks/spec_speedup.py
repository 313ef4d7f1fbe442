"""Speculative-decoding step economics, printed as figures:
- Llama-3.1-8B + EAGLE-3 on H200 (acceptance fitted from the ShareGPT trace): speedup by batch and k, and the
  goodput-optimal k per batch (speedup must fall with batch size and with k beyond the optimum);
- Qwen3-8B + EAGLE-3 (k=3) on GB200 at the paper's acceptance lengths (2.77 RL-Think, 3.32 RL-Zero): the
  per-iteration speedup by batch size, next to the paper's measured generation-stage speedup
  (../shared/published/paper_specdec_rl_8b.csv). The paper's figure is a whole-rollout ratio (the batch drains
  from hundreds of sequences to a few over a rollout), so it lies between the large- and small-batch
  iteration speedups; `rlsim validate` compares whole rollouts.

    python benchmarks/spec_speedup.py
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from simulator.costmodel.step import StepCostModel
from simulator.paths import project_root
from simulator.specdec.acceptance import AcceptanceProfile, Source, profile_from_mean_length
from simulator.specdec.costs import DraftConfig, SpecDecodeCost, goodput_optimal_k


def table(spec, acc, batches, ks, context):
    rows = []
    for b in batches:
        cached = np.full(b, context)
        ar = spec.iteration(cached, 0).time_s
        taus = {k: (acc.tau(k) if k else 1.0) for k in ks}
        for k in ks:
            it = spec.iteration(cached, k, accepted=taus[k] if k else None)
            rows.append({"batch": b, "k": k, "tau": taus[k], "step_ms": it.time_s * 1e3,
                         "speedup": taus[k] / it.time_s * ar})
        rows[-1]["optimal_k"] = goodput_optimal_k(spec, taus, cached)[0]
    return pd.DataFrame(rows)


def main() -> None:
    root = project_root()
    acc = AcceptanceProfile.load(root / "workloads/acceptance/llama3.1-8b-eagle3-sharegpt.yaml").model()
    spec = SpecDecodeCost(StepCostModel("h200", "llama-3.1-8b"), DraftConfig("eagle3"))
    t = table(spec, acc, [1, 8, 32, 128, 256], range(8), 2048)
    print("Llama-3.1-8B + EAGLE-3 on H200, context 2048: speedup over autoregressive decoding")
    print(t.pivot(index="batch", columns="k", values="speedup").round(2).to_string())
    opt = t.dropna(subset=["optimal_k"]).set_index("batch")["optimal_k"].astype(int)
    print("goodput-optimal k by batch:", opt.to_dict())
    paper = pd.read_csv(root / "workloads/published/paper_specdec_rl_8b.csv", comment="#")
    spec8 = SpecDecodeCost(StepCostModel("gb200", "qwen3-8b"), DraftConfig("eagle3"))
    print("\nQwen3-8B + EAGLE-3 (k=3) on GB200, context 4096: per-iteration speedup vs the paper's generation speedup")
    for wl in ("rl-think", "rl-zero"):
        rows = paper[paper["workload"] == wl].set_index("method")
        tau = float(rows.loc["eagle3", "acceptance_length"])
        published = rows.loc["autoregressive", "generation_s"] / rows.loc["eagle3", "generation_s"]
        acc8 = profile_from_mean_length(tau, 3, method="eagle3", source=Source(format="published")).model()
        t8 = table(spec8, acc8, [1, 16, 64, 256, 1024], [0, 3], 4096)
        sp = t8[t8["k"] == 3].set_index("batch")["speedup"]
        lo, hi = sp.min(), sp.max()
        inside = lo <= published <= hi
        print(f"  {wl}: tau {tau:.2f}; per-iteration speedup {', '.join(f'b{b}: {v:.2f}x' for b, v in sp.items())}; "
              f"paper generation speedup {published:.2f}x ({'within' if inside else 'OUTSIDE'} the per-batch range)")
    from simulator.validation.published import paper_checks
    print("\nWhole RL steps (rlsim's pipeline on the paper's scenarios, fitted on the autoregressive rows only):")
    for c in paper_checks():
        if c.tolerance is not None:
            print(f"  {c.row:9s} {c.quantity:34s} published {c.published:5.2f}x  predicted {c.predicted:5.2f}x  "
                  f"error {c.rel_error:+6.1%}  ({'within' if c.ok else 'outside'} {c.tolerance:.0%})")


if __name__ == "__main__":
    main()
