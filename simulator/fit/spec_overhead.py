"""Fit a serving framework's speculative-path overheads from measured time per output token (TPOT).

The kernel model prices the GPU work of a speculative iteration (draft steps, verify, rejection sampling).
A real engine adds CPU and launch work outside the kernels: a fixed cost per iteration (plain decoding too,
`step_overhead_s`), a further cost per speculative iteration (proposer bookkeeping, rejection-sampler
outputs, metadata for the draft) and a cost per draft step (the draft loop's small ops and launches). At batch
size 1 the measured iteration time is

    plain:        TPOT_0                = gpu_ar + step_overhead_s
    speculative:  TPOT_k * tau_k        = gpu_spec(k, tau_k) + step_overhead_s
                                          + iteration_overhead_s + k * draft_step_overhead_s

so the vanilla row gives step_overhead_s and a least-squares line through the speculative rows (residual
against k) gives the other two. All times in seconds.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from simulator.costmodel.step import StepCostModel
from simulator.errors import RlsimError
from simulator.scenario import MAX_SPEC_TOKENS
from simulator.specdec.costs import DraftConfig, SpecDecodeCost
from simulator.tableio import read_csv_table

COLUMNS = ("drafter", "k", "acceptance_length", "tpot_ms")


@dataclass(frozen=True)
class SpecOverheadFit:
    """Fitted overheads (seconds) and the per-row comparison of the fit."""

    step_overhead_s: float
    iteration_overhead_s: float
    draft_step_overhead_s: float
    rows: list[dict] = field(default_factory=list)

    def draft_config(self, method: str, draft_model: str | None = None) -> DraftConfig:
        return DraftConfig(method=method, draft_model=draft_model, iteration_overhead_s=self.iteration_overhead_s,
                           draft_step_overhead_s=self.draft_step_overhead_s)


def read_tpot_table(path: str | Path) -> pd.DataFrame:
    """Rows of (drafter, k, acceptance_length, tpot_ms); one line naming the problem on bad input."""
    df = read_csv_table(path, COLUMNS, "TPOT table", "tpot table")
    for c in COLUMNS[1:]:
        vals = pd.to_numeric(df[c], errors="coerce")
        if not np.isfinite(vals).all() or (vals < 0).any():  # a word is NaN here
            raise RlsimError(f"{path}: column {c} must hold finite non-negative numbers", c)
        df[c] = vals
    if ((df.k % 1) != 0).any() or (df.k > MAX_SPEC_TOKENS).any():
        raise RlsimError(f"{path}: column k must hold whole numbers of speculative tokens, 0..{MAX_SPEC_TOKENS}", "k")
    if not ((df.drafter == "none") & (df.k == 0)).any():
        raise RlsimError(f"{path} needs a plain-decoding row (drafter none, k 0)", "drafter")
    bad = df[(df.drafter != "none") & ((df.acceptance_length < 1) | (df.acceptance_length > df.k + 1))]
    if len(bad):
        raise RlsimError(f"{path}: acceptance_length must lie in [1, k+1] (row k={int(bad.k.iloc[0])})",
                         "acceptance_length")
    return df


def _gpu_iteration_s(spec: SpecDecodeCost, k: int, tau: float, context: int) -> float:
    """Kernel seconds of one batch-1 iteration at `context` cached tokens (no framework overheads; k = 0: plain
    decoding)."""
    cached = np.array([context], dtype=np.int64)
    return spec.iteration(cached, k, accepted=tau if k else None).time_s


def fit_spec_overhead(target: StepCostModel, table: pd.DataFrame, method: str = "eagle3",
                      draft_model: str | None = None, context: int = 300,
                      fit_ks: list[int] | None = None) -> SpecOverheadFit:
    """Fit step/iteration/draft-step overheads to the `method` rows of a batch-1 TPOT table.

    context: tokens in the KV cache at a typical step (batch 1: attention is a small part, so a rough value
    does). fit_ks: the k values to fit on (default all); the other rows are reported as held out.
    """
    rows = table[table.drafter == method].sort_values("k")
    if rows.empty:
        raise RlsimError(f"no rows of drafter {method!r} in the table", "drafter")
    fit_on = rows if fit_ks is None else rows[rows.k.isin(fit_ks)]
    if fit_on.k.nunique() < 2:
        raise RlsimError("needs speculative rows at two or more k values to fit", "k")
    bare = SpecDecodeCost(target, DraftConfig(method=method, draft_model=draft_model))
    plain = table[(table.drafter == "none") & (table.k == 0)].iloc[0]
    step_oh = float(plain.tpot_ms) * 1e-3 - _gpu_iteration_s(bare, 0, 1.0, context)
    ks = fit_on.k.to_numpy(dtype=float)
    resid = np.array([r.tpot_ms * 1e-3 * r.acceptance_length
                      - _gpu_iteration_s(bare, int(r.k), float(r.acceptance_length), context) - step_oh
                      for r in fit_on.itertuples()])
    slope, intercept = np.polyfit(ks, resid, 1)
    fit = SpecOverheadFit(step_oh, float(intercept), float(slope))
    return replace(fit, rows=compare(target, fit, table, method, draft_model, context, fit_ks))


def compare(target: StepCostModel, fit: SpecOverheadFit, table: pd.DataFrame, method: str,
            draft_model: str | None = None, context: int = 300, fit_ks: list[int] | None = None) -> list[dict]:
    """Predicted vs measured TPOT (ms) of the `method` rows with the fitted overheads."""
    spec = SpecDecodeCost(target, fit.draft_config(method, draft_model))
    cached = np.array([context], dtype=np.int64)
    out = []
    for r in table[table.drafter == method].sort_values("k").itertuples():
        k, tau = int(r.k), float(r.acceptance_length)
        it = spec.iteration(cached, k, accepted=tau).time_s + fit.step_overhead_s
        pred = it / tau * 1e3
        out.append({"drafter": method, "k": k, "acceptance_length": tau, "measured_tpot_ms": float(r.tpot_ms),
                    "predicted_tpot_ms": float(pred), "error": float(pred / float(r.tpot_ms) - 1.0),
                    "held_out": fit_ks is not None and k not in fit_ks})
    return out
