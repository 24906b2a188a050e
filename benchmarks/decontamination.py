"""Decontamination of short eval items: recall on planted near-copies, false drops, cost at scale.

    .venv/bin/python benchmarks/decontamination.py
    .venv/bin/python benchmarks/decontamination.py --rows 100000 --eval-items 120

1. Recall: every item of the demo's fixed eval set is planted into the training rows with 1, 2 and 3
   character edits (substitute, insert, delete or swap two adjacent letters; seeded, and the
   normalised input is exactly that many edits from the eval input), with the eval item's answer.
   Counted for the curation step's rule (`contamination`) and the training-time leak check
   (`find_eval_leaks`, which the gate's re-check calls).
2. False drops: the demo's legitimate training rows (seed, both synthetic generators, the two weeks of
   simulated production traffic) that either rule flags, each shown with the eval item it resembles.
3. Cost: `contamination` on `--rows` generated examples (benchmarks/curation.py's generator) against
   `--eval-items` eval items.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.curation import generate  # noqa: E402
from flywheel.config import CurationConfig  # noqa: E402
from flywheel.core.text import input_match_key, last_user_text  # noqa: E402
from flywheel.curation.near_duplicates import MinHasher  # noqa: E402
from flywheel.curation.steps.decontamination import contamination  # noqa: E402
from flywheel.training.data import find_eval_leaks  # noqa: E402
from tests.curation.eval_variants import demo_files, planted_rows  # noqa: E402


def demo_rows() -> tuple[list[dict], dict[str, list[dict]]]:
    """(eval rows, {source: legitimate training rows}) of the demo."""
    files, traffic = demo_files()
    evals = [{**r, "example_id": f"eval-{i:03d}"} for i, r in enumerate(files.eval_set)]
    legit = {"seed": files.seed, "synthetic_a": files.synthetic_a, "synthetic_b": files.synthetic_b,
             "traffic": traffic}
    return evals, legit


def flagged(rows: list[dict], evals: list[dict], cfg: CurationConfig) -> tuple[dict[int, tuple[str, str]], set[int]]:
    """(curation step's findings {row: (reason, detail)}, rows the training leak check flags)."""
    hasher = MinHasher(num_perm=cfg.minhash_permutations, seed=cfg.seed + 1, shingle=cfg.shingle_chars)
    found = contamination(rows, evals, cfg, hasher)
    leaks = {lk.train_row for lk in find_eval_leaks([r["messages"] for r in rows], [e["messages"] for e in evals], cfg)}
    return found, leaks


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--eval-items", type=int, default=120)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=3, help="timing runs (the best is shown)")
    args = ap.parse_args()
    cfg = CurationConfig()
    exact = cfg.model_copy(update={"decontamination_max_edits": 0})  # n-gram, MinHash and equal inputs only
    evals, legit = demo_rows()

    print(f"== recall: {len(evals)} demo eval items planted with k character edits "
          f"(max_edits {cfg.decontamination_max_edits}, max_edit_share {cfg.decontamination_max_edit_share}) ==")
    for k in (1, 2, 3):
        rows = planted_rows(evals, k, args.seed)
        found, leaks = flagged(rows, evals, cfg)
        base, _ = flagged(rows, evals, exact)
        missed = [last_user_text(rows[i]["messages"]) for i in range(len(rows)) if i not in found][:3]
        print(f"k={k}: curation {len(found)}/{len(rows)} ({len(found) / len(rows):.0%}; with max_edits 0: "
              f"{len(base)}), training leak check {len(leaks)}/{len(rows)}; missed e.g. {missed}")

    print("\n== the demo's legitimate training rows flagged (new: not flagged with max_edits 0) ==")
    for source, rows in legit.items():
        found, leaks = flagged(rows, evals, cfg)
        base, base_leaks = flagged(rows, evals, exact)
        new = sorted(set(found) - set(base))
        print(f"{source}: {len(rows)} rows; curation drops {len(found)} (max_edits 0: {len(base)}), training leak "
              f"check flags {len(leaks)} (max_edits 0: {len(base_leaks)}); new:")
        for i in new:
            print(f"    {last_user_text(rows[i]['messages'])!r}: {found[i][1]}")

    print(f"\n== cost: {args.rows:,} generated training rows x {args.eval_items} eval items ==")
    rows, gen_evals, _, _ = generate(args.rows)
    gen_evals = (gen_evals * (args.eval_items // len(gen_evals) + 1))[: args.eval_items]
    hasher = MinHasher(num_perm=cfg.minhash_permutations, seed=cfg.seed + 1, shingle=cfg.shingle_chars)
    sig = hasher.signatures([" ".join(m["content"] for m in r["messages"][:-1]) for r in rows])
    best = best_check = float("inf")
    for _ in range(args.repeat):
        t = time.perf_counter()
        found = contamination(rows, gen_evals, cfg, hasher, sig)
        best = min(best, time.perf_counter() - t)
        t = time.perf_counter()
        leaks = find_eval_leaks([r["messages"] for r in rows], [e["messages"] for e in gen_evals])
        best_check = min(best_check, time.perf_counter() - t)
    print(f"curation decontamination (signatures given, as in the pipeline): {best:.2f}s, {len(found):,} rows flagged")
    print(f"training leak check: {best_check:.2f}s, {len(leaks):,} rows flagged")
    keys = {input_match_key(last_user_text(e["messages"])) for e in gen_evals}
    print(f"(eval inputs: {len(keys)} distinct)")


if __name__ == "__main__":
    main()
