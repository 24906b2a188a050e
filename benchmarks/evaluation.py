"""Evaluation throughput on the tiny model: batched left-padded greedy generation (what
`candidate_evaluation` does) vs one prompt at a time (the baseline), plus scoring and bootstrap cost.

Run: `.venv/bin/python benchmarks/evaluation.py [N_ITEMS] [MAX_NEW_TOKENS]`. Prints figures only.
"""

from __future__ import annotations

import sys
import tempfile
import time

from flywheel.core.storage import FlywheelHome
from flywheel.evaluation.eval_set import EvalItem
from flywheel.evaluation.generation import generate_answers
from flywheel.evaluation.metrics import paired_bootstrap, score_answers
from flywheel.models.base import load_base


def main(n: int = 100, max_new_tokens: int = 24) -> None:
    home = FlywheelHome(tempfile.mkdtemp(prefix="bench-eval-"))
    model, tok = load_base("tiny", home)
    prompts = [[{"role": "user", "content": f"question number {i}: what is {i} plus {i}?"}] for i in range(n)]
    items = [EvalItem(str(i), "clean", p, f"{2 * i}") for i, p in enumerate(prompts)]

    t = time.perf_counter()
    one_by_one = [generate_answers(model, tok, [p], max_new_tokens, batch_size=1)[0] for p in prompts]
    base_s = time.perf_counter() - t
    print(f"baseline  one prompt at a time : {n} items x {max_new_tokens} tokens in {base_s:6.2f} s "
          f"({n / base_s:6.1f} items/s)")
    for bs in (16, 64):
        t = time.perf_counter()
        batched = generate_answers(model, tok, prompts, max_new_tokens, batch_size=bs)
        s = time.perf_counter() - t
        same = sum(a == b for a, b in zip(batched, one_by_one, strict=True))
        print(f"batched   batch_size={bs:<3}         : {s:6.2f} s ({n / s:6.1f} items/s, x{base_s / s:4.1f}); "
              f"identical answers {same}/{n}")

    t = time.perf_counter()
    scores = score_answers(items, one_by_one, ["exact_match", "token_f1", "chrf", "format"])
    print(f"scoring   4 metrics            : {1000 * (time.perf_counter() - t):6.1f} ms for {n} answers")
    t = time.perf_counter()
    paired_bootstrap(scores["chrf"], scores["token_f1"], samples=1000)
    print(f"bootstrap 1000 samples         : {1000 * (time.perf_counter() - t):6.1f} ms")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
