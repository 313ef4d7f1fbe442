"""CPU seconds NeMo-RL's math environment spends scoring one sample (reward.s_per_sample).

NeMo-RL's HFVerifyWorker (nemo_rl/environments/math_environment.py) scores each response with Math-Verify's
`math_metric(gold_extraction_target=(LatexExtractionConfig(),), pred_extraction_target=(ExprExtractionConfig(),
LatexExtractionConfig()))` against "\\boxed{<ground truth>}". This script times that call on synthetic
chain-of-thought responses (step headers, prose, inline and display LaTeX, a final "\\boxed{...}"; the real
OpenMathInstruct-2 responses are not available here) of several lengths, with right and wrong final answers.

    python -m venv /tmp/mv && /tmp/mv/bin/pip install math-verify==0.8.0
    /tmp/mv/bin/python calibration/reward/measure_math_verify.py --out calibration/reward/math_verify.csv

Output columns: chars (response length), correct (final answer equals the ground truth), samples, ms_per_sample.
"""
from __future__ import annotations

import argparse
import csv
import logging
import random
import time

ANSWERS = ["4", "\\frac{3}{2}", "2\\sqrt{3}", "(1, 2)", "12", "\\frac{\\pi}{4}", "-7", "0.25", "x^2+1", "\\{1, 3\\}"]
EQUATIONS = ["$x^2 - 4x + 3 = 0$", "$(x-1)(x-3) = 0$", "\\[ \\frac{a+b}{2} = \\sqrt{ab} \\]", "$2^{10} = 1024$",
             "$\\sin^2\\theta + \\cos^2\\theta = 1$", "$3 \\cdot 7 = 21$", "\\[ S_n = \\frac{n(n+1)}{2} \\]",
             "$y = mx + c$"]
WORDS = "we need to find the value so let us compute the next term using the formula above and simplify".split()


def response(rng: random.Random, chars: int, answer: str) -> str:
    """A synthetic step-by-step solution of about `chars` characters ending in \\boxed{answer}."""
    out = ["To solve this problem, we first rewrite the given expression."]
    step = 0
    while sum(map(len, out)) < chars:
        step += 1
        out.append(f"## Step {step}: " + " ".join(rng.choice(WORDS) for _ in range(12)))
        out.append(" ".join(rng.choice(WORDS) for _ in range(20)) + " " + rng.choice(EQUATIONS))
    out.append(f"The final answer is: $\\boxed{{{answer}}}$")
    return "\n\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--lengths", default="1000,4000,12000", help="response lengths in characters")
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    from math_verify.metric import math_metric
    from math_verify.parser import ExprExtractionConfig, LatexExtractionConfig

    logging.getLogger("math_verify").setLevel(logging.CRITICAL)
    verify = math_metric(gold_extraction_target=(LatexExtractionConfig(),),
                         pred_extraction_target=(ExprExtractionConfig(), LatexExtractionConfig()))
    rng = random.Random(a.seed)
    rows = []
    for chars in (int(x) for x in a.lengths.split(",")):
        for correct in (True, False):
            cases = []
            for _ in range(a.samples):
                truth = rng.choice(ANSWERS)
                pred = truth if correct else rng.choice([x for x in ANSWERS if x != truth])
                cases.append(("\\boxed{" + truth + "}", response(rng, chars, pred)))
            t = time.perf_counter()
            for gold, pred in cases:
                try:
                    verify([gold], [pred])
                except Exception:  # noqa: BLE001 - NeMo-RL scores a failure 0 and goes on
                    pass
            ms = (time.perf_counter() - t) / a.samples * 1e3
            rows.append({"chars": chars, "correct": int(correct), "samples": a.samples, "ms_per_sample": round(ms, 3)})
            print(rows[-1])
    with open(a.out, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


if __name__ == "__main__":
    main()
