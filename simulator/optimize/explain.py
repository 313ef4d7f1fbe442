"""Why one configuration beats another: the step-time (or throughput) difference, attributed to the stages that
moved and to the settings that moved them. Inputs are rows of the optimizer's table (seconds, tokens/s/GPU)."""
from __future__ import annotations

OBJECTIVES = {"step_time": ("total_step_time", "min", "s per step"),
              "tokens_per_s_per_gpu": ("tokens_per_s_per_gpu", "max", "tokens/s/GPU")}


def better(a: dict, b: dict, objective: str) -> bool:
    col, sense, _ = OBJECTIVES[objective]
    return a[col] < b[col] if sense == "min" else a[col] > b[col]


def _settings_diff(a: dict, b: dict) -> list[str]:
    out = []
    for key, name in (("speculation", "speculation"), ("engines", "engines"), ("placement", "placement")):
        if a.get(key) != b.get(key):
            out.append(f"{name} {a.get(key)} instead of {b.get(key)}")
    return out


def _causes(a: dict, b: dict) -> list[str]:
    """The settings of `a` and `b` that change generation time."""
    cause = []
    if a.get("speculation") != b.get("speculation"):
        tau = a.get("mean_acceptance_length")
        cause.append(f"{a.get('speculation')} instead of {b.get('speculation')}"
                     + (f", acceptance length {tau:.2f}" if tau and tau > 1.001 else ""))
    if a.get("engines") != b.get("engines"):
        cause.append(f"{a.get('engines')} instead of {b.get('engines')} engines")
    if a.get("generation_gpus") != b.get("generation_gpus"):
        cause.append(f"{a.get('generation_gpus')} instead of {b.get('generation_gpus')} generation GPUs")
    return cause


def reasons(a: dict, b: dict, min_s: float | None = None) -> list[str]:
    """Where `a`'s step differs from `b`'s, largest first. A step on the trainer's critical path is exposed
    generation + logprobs + training + weight sync (+ data and reward), in sync and async alike; generation
    hidden behind training (async, or generation of the next batch during training) does not count.
    Differences under `min_s` seconds (default: a fifth of the step-time difference, at least 1 ms) are left
    out."""
    if min_s is None:
        min_s = max(0.2 * abs(a["total_step_time"] - b["total_step_time"]), 1e-3)
    out: list[tuple[float, str]] = []
    d_exp = b["exposed_generation"] - a["exposed_generation"]
    if abs(d_exp) > min_s:
        parts = []
        hid_a = a["generation"] - a["exposed_generation"]
        hid_b = b["generation"] - b["exposed_generation"]
        if abs(hid_a - hid_b) > min_s:
            who, hid = (a, hid_a) if hid_a > hid_b else (b, hid_b)
            how = "async" if who.get("mode") == "async" else "overlap"
            parts.append(f"{how} hides {hid:.1f} s of {who['generation']:.1f} s of generation behind training"
                         + (" in the other" if who is b else ""))
        dg = b["generation"] - a["generation"]
        if abs(dg) > min_s:
            cause = _causes(a, b)
            parts.append(f"generation {b['generation']:.1f} -> {a['generation']:.1f} s"
                         + (f" with {', '.join(cause)}" if cause else ""))
        out.append((d_exp, f"exposed generation {b['exposed_generation']:.1f} -> {a['exposed_generation']:.1f} s"
                           + (f" ({'; '.join(parts)})" if parts else "")))
    tr_a = a["policy_training"] + a["policy_and_reference_logprobs"]
    tr_b = b["policy_training"] + b["policy_and_reference_logprobs"]
    if abs(tr_b - tr_a) > min_s:
        gp = "" if a.get("training_gpus") == b.get("training_gpus") else \
            f" on {a.get('training_gpus')} instead of {b.get('training_gpus')} training GPUs"
        out.append((tr_b - tr_a, f"training + logprobs {tr_b:.1f} -> {tr_a:.1f} s{gp}"))
    ds = b["weight_sync"] - a["weight_sync"]
    if abs(ds) > min_s:
        out.append((ds, f"weight sync {b['weight_sync']:.1f} -> {a['weight_sync']:.1f} s"))
    out.sort(key=lambda t: -t[0])  # what `a` gains first, then what it pays
    return [("saves " if d > 0 else "costs ") + f"{abs(d):.1f} s: " + t for d, t in out]


def why(a: dict, b: dict, objective: str, name_b: str) -> str:
    """One line: how much `a` beats `b` by and why."""
    col, sense, unit = OBJECTIVES[objective]
    va, vb = a[col], b[col]
    diff = vb - va if sense == "min" else va - vb
    if abs(diff) < 1e-9:
        return f"ties with {name_b} ({va:.2f} {unit})"
    head = (f"beats {name_b} by {diff:.2f} {unit} ({va:.2f} vs {vb:.2f})" if diff > 0 else
            f"is behind {name_b} by {-diff:.2f} {unit} ({va:.2f} vs {vb:.2f})")
    rs = reasons(a, b)
    if not rs:
        d = _settings_diff(a, b)
        rs = [", ".join(d) if d else "the same settings"]
    return head + ": " + "; ".join(rs[:3])
