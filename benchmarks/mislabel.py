"""The mislabel step: recall on the demo's shuffled generator, false positives, real files, cost at scale.

    .venv/bin/python benchmarks/mislabel.py
    .venv/bin/python benchmarks/mislabel.py --rows 10000 100000 --scenario-seeds 10

1. Planted mislabels: the demo's seed, two synthetic generators and the broken generator (every
   answer rotated to another intent) as curation rows; recall = broken rows found, false positives =
   legitimate rows found. The step alone (flag), over `--scenario-seeds` draws of the scenario, for the
   full demo and the reduced end-to-end scenario; then inside curation (dedup, conflicts, mislabel
   against dedup, mislabel, conflicts): broken rows left and legitimate rows lost.
2. Real files (no ground truth): the shared Alpaca and ShareGPT files, rows checked and found.
3. Cost: `--rows` generated examples, half intent-style rows (200 intents, one canned answer each,
   5% of them given another intent's answer) and half free-text rows (unique answers, classes of one);
   the step's seconds beside the dedup step's on the same rows, with recall and false positives.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.curation import ANSWER_WORDS, FILLER, TOPICS, VERBS, make_answer, make_input  # noqa: E402
from flywheel.config import CurationConfig  # noqa: E402
from flywheel.core.records import make_example  # noqa: E402
from flywheel.curation.context import CurationContext  # noqa: E402
from flywheel.curation.pipeline import curate, run_steps  # noqa: E402
from flywheel.curation.sources import load_source_examples  # noqa: E402
from flywheel.curation.steps import ConflictStep, DedupStep, MislabelStep  # noqa: E402
from flywheel.demo.scenario import FULL, GENERATOR_BROKEN, SMALL, ScenarioSize, build_files  # noqa: E402
from tests.shared_data import ALPACA_DEMO, SHAREGPT_DUMMY  # noqa: E402

Rows = list[dict[str, Any]]


def demo_rows(size: ScenarioSize, seed: int) -> tuple[Rows, set[str]]:
    """The demo's training files as curation rows, and the broken generator's row ids."""
    files = build_files(size, seed=seed)
    rows = [make_example(r["messages"], "human") for r in files.seed]
    for part in (files.synthetic_a, files.synthetic_b, files.broken):
        rows += [make_example(r["messages"], "synthetic", generator=r["generator"]) for r in part]
    return rows, {r["example_id"] for r in rows if r["generator"] == GENERATOR_BROKEN}


def found_ids(rows: Rows, cfg: CurationConfig) -> tuple[set[str], CurationContext, float]:
    ctx = CurationContext(cfg)
    t = time.perf_counter()
    run_steps(list(rows), ctx, [MislabelStep()])
    return {f["example_id"] for f in ctx.flagged}, ctx, time.perf_counter() - t


def planted(seeds: int) -> None:
    cfg = CurationConfig(mislabel_action="flag")
    print("== planted mislabels: the demo's broken generator (answers rotated to another intent) ==")
    for name, size in (("full demo", FULL), ("reduced (end-to-end test)", SMALL)):
        recalls, fps = [], []
        for seed in range(seeds):
            rows, broken = demo_rows(size, seed)
            found, ctx, secs = found_ids(rows, cfg)
            recalls.append(len(found & broken) / len(broken))
            fps.append(len(found - broken) / (len(rows) - len(broken)))
            if seed == 7:  # the demo's own draw (build_files' default seed)
                f = ctx.facts["mislabel"]
                print(f"{name}, scenario seed 7: {len(rows)} rows ({len(broken)} broken), {f['classes_checked']} classes, "
                      f"found {len(found & broken)}/{len(broken)} broken (recall {recalls[-1]:.3f}), "
                      f"{len(found - broken)}/{len(rows) - len(broken)} legitimate (FP {fps[-1]:.1%}), {secs:.2f}s")
                print("  by generator:", {g: f"{v['found']}/{v['checked']}" for g, v in f["by_generator"].items()})
        print(f"{name}, scenario seeds 0-{seeds - 1}: recall min {min(recalls):.3f} mean {np.mean(recalls):.3f}; "
              f"FP max {max(fps):.1%} mean {np.mean(fps):.1%}")
    print("\n-- inside curation (mean over the scenario seeds): broken rows left, legitimate rows lost --")
    orders = {"dedup, conflicts": [DedupStep, ConflictStep], "dedup, conflicts, mislabel": [DedupStep, ConflictStep, MislabelStep],
              "dedup, mislabel, conflicts": [DedupStep, MislabelStep, ConflictStep]}
    for name, size in (("full demo", FULL), ("reduced", SMALL)):
        for label, steps in orders.items():
            left, lost = [], []
            for seed in range(seeds):
                rows, broken = demo_rows(size, seed)
                result = curate(rows, CurationConfig(), steps=[s() for s in steps])
                left.append(sum(r["example_id"] in broken for r in result.rows) / len(broken))
                lost.append(1 - sum(r["example_id"] not in broken for r in result.rows) / (len(rows) - len(broken)))
            print(f"{name:>10} | {label:<28} broken left {np.mean(left):.1%}  legitimate lost {np.mean(lost):.1%} "
                  "(dedup's near-duplicates included)")


def real_files() -> None:
    print("\n== real files (no ground truth) ==")
    for path in (ALPACA_DEMO, SHAREGPT_DUMMY):
        if not path.exists():
            print(f"{path.name}: missing")
            continue
        rows = load_source_examples([path], "human").examples
        found, ctx, secs = found_ids(rows, CurationConfig(mislabel_action="flag"))
        f = ctx.facts["mislabel"]
        print(f"{path.name}: {len(rows)} rows, {f['answer_classes']} answer classes, {f['classes_checked']} checked "
              f"({f.get('classes_merged', 0)} merged as alternatives), {f['rows_checked']} rows checked, "
              f"{f['rows_in_small_classes']} in small classes, found {len(found)}, {secs:.2f}s"
              + (f" ({f['skipped']})" if "skipped" in f else ""))


def scale_rows(n: int, seed: int = 0, intents: int = 200, noise: float = 0.05) -> tuple[Rows, set[str]]:
    """Half intent rows (canned answer per intent, `noise` of them rotated to another intent), half free text."""
    rng = random.Random(seed)
    pairs = rng.sample([(v, t) for v in VERBS for t in TOPICS], intents)
    answers = [" ".join(rng.choice(ANSWER_WORDS) for _ in range(14)).capitalize() + f" (ref {i})." for i in range(intents)]
    templates = ["how do i {c}", "can you help me {c}", "i want to {c}", "{c} please", "steps to {c}", "need to {c} {f}"]
    rows, wrong = [], set()
    for i in range(n):
        if i % 2:
            rows.append(make_example([{"role": "user", "content": make_input(rng)},
                                      {"role": "assistant", "content": make_answer(rng)}], "real"))
            continue
        k = rng.randrange(intents)
        verb, topic = pairs[k]
        core = f"{verb} my {topic}" + (" " + rng.choice(FILLER) if rng.random() < 0.5 else "")
        text = rng.choice(templates).format(c=core, f=rng.choice(FILLER)) + f" #{rng.randrange(10**6)}"
        broken = rng.random() < noise
        answer = answers[(k + 1 + rng.randrange(intents - 1)) % intents] if broken else answers[k]
        row = make_example([{"role": "user", "content": text}, {"role": "assistant", "content": answer}], "synthetic",
                           generator="gen-batch" if broken else rng.choice(["gen-alpha", "gen-beta"]))
        rows.append(row)
        if broken:
            wrong.add(row["example_id"])
    return rows, wrong


def scale(sizes: list[int]) -> None:
    proc = psutil.Process()
    print("\n== cost at scale (half intent rows: 200 classes, 5% given another intent's answer; half free text) ==")
    print("(FP: share of the checked legitimate rows found; free-text rows are classes of one, never checked)")
    print(f"{'rows':>9}{'mislabel s':>12}{'dedup s':>10}{'checked':>10}{'recall':>8}{'FP':>8}{'peak RSS MiB':>14}")
    for n in sizes:
        rows, wrong = scale_rows(n)
        found, ctx, secs = found_ids(rows, CurationConfig(mislabel_action="flag"))
        t = time.perf_counter()
        run_steps(list(rows), CurationContext(CurationConfig()), [DedupStep()])
        t_dedup = time.perf_counter() - t
        f = ctx.facts["mislabel"]
        print(f"{n:>9,}{secs:>12.2f}{t_dedup:>10.2f}{f['rows_checked']:>10,}{len(found & wrong) / max(len(wrong), 1):>8.3f}"
              f"{len(found - wrong) / max(f['rows_checked'] - len(wrong), 1):>8.2%}{proc.memory_info().rss / 2**20:>14,.0f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, nargs="*", default=[10_000, 100_000])
    ap.add_argument("--scenario-seeds", type=int, default=10)
    args = ap.parse_args()
    planted(args.scenario_seeds)
    real_files()
    scale(args.rows)


if __name__ == "__main__":
    main()
