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
   then benchmarks/curation.py's rows (all free text). The step's seconds beside the dedup step's on
   the same rows (best of `--repeat`), with recall and false positives.
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

from benchmarks.curation import (  # noqa: E402
    ANSWER_WORDS,
    FILLER,
    TOPICS,
    VERBS,
    generate,
    make_answer,
    make_input,
)
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
            n_legit = len(rows) - len(broken)
            recalls.append(len(found & broken) / len(broken))
            fps.append(len(found - broken) / n_legit)
            if seed == 7:  # the demo's own draw (build_files' default seed)
                f = ctx.facts["mislabel"]
                print(f"{name}, scenario seed 7: {len(rows)} rows ({len(broken)} broken), "
                      f"{f['classes_checked']} classes, found {len(found & broken)}/{len(broken)} broken "
                      f"(recall {recalls[-1]:.3f}), {len(found - broken)}/{n_legit} legitimate "
                      f"(FP {fps[-1]:.1%}), {secs:.2f}s")
                print("  found/checked by generator:",
                      {g: f"{v['found']}/{v['checked']}" for g, v in f["by_generator"].items()})
        print(f"{name}, scenario seeds 0-{seeds - 1}: recall min {min(recalls):.3f} mean "
              f"{np.mean(recalls):.3f}; FP max {max(fps):.1%} mean {np.mean(fps):.1%}")
    print("\n-- inside curation (mean over the scenario seeds): broken rows left, legitimate rows lost --")
    orders = {"dedup, conflicts": [DedupStep, ConflictStep],
              "dedup, conflicts, mislabel": [DedupStep, ConflictStep, MislabelStep],
              "dedup, mislabel, conflicts": [DedupStep, MislabelStep, ConflictStep]}
    for name, size in (("full demo", FULL), ("reduced", SMALL)):
        for label, steps in orders.items():
            left, lost = [], []
            for seed in range(seeds):
                rows, broken = demo_rows(size, seed)
                result = curate(rows, CurationConfig(), steps=[s() for s in steps])
                kept = {r["example_id"] for r in result.rows}
                left.append(len(kept & broken) / len(broken))
                lost.append(1 - len(kept - broken) / (len(rows) - len(broken)))
            print(f"{name:>10} | {label:<28} broken left {np.mean(left):.1%}  legitimate lost "
                  f"{np.mean(lost):.1%} (dedup's near-duplicates included)")


def real_files() -> None:
    print("\n== real files (no ground truth) ==")
    for path in (ALPACA_DEMO, SHAREGPT_DUMMY):
        if not path.exists():
            print(f"{path.name}: missing")
            continue
        rows = load_source_examples([path], "human").examples
        found, ctx, secs = found_ids(rows, CurationConfig(mislabel_action="flag"))
        f = ctx.facts["mislabel"]
        print(f"{path.name}: {len(rows)} rows, {f['answer_classes']} answer classes, {f['classes_checked']} "
              f"checked ({f.get('classes_merged', 0)} merged as alternatives), {f['rows_checked']} rows "
              f"checked, {f['rows_in_small_classes']} in small classes, found {len(found)}, {secs:.2f}s"
              + (f" ({f['skipped']})" if "skipped" in f else ""))


def scale_rows(n: int, seed: int = 0, intents: int = 200, noise: float = 0.05) -> tuple[Rows, set[str]]:
    """Half intent rows (a canned answer per intent, `noise` of them another intent's), half free text."""
    rng = random.Random(seed)
    pairs = rng.sample([(v, t) for v in VERBS for t in TOPICS], intents)
    answers = [" ".join(rng.choice(ANSWER_WORDS) for _ in range(14)).capitalize() + f" (ref {i})."
               for i in range(intents)]
    templates = ["how do i {c}", "can you help me {c}", "i want to {c}", "{c} please", "steps to {c}",
                 "need to {c} {f}"]
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
        generator = "gen-batch" if broken else rng.choice(["gen-alpha", "gen-beta"])
        row = make_example([{"role": "user", "content": text}, {"role": "assistant", "content": answer}],
                           "synthetic", generator=generator)
        rows.append(row)
        if broken:
            wrong.add(row["example_id"])
    return rows, wrong


def scale(sizes: list[int], repeat: int) -> None:
    proc = psutil.Process()
    print("\n== cost at scale, best of --repeat (the machine may be shared) ==")
    print("intent: half intent rows (200 classes, 5% given another intent's answer), half free text;")
    print("free text: benchmarks/curation.py's rows (every answer distinct: nothing to check, the answer")
    print("classes' MinHash is the whole cost). FP: share of the checked legitimate rows found.")
    print(f"{'data':<11}{'rows':>9}{'mislabel s':>12}{'dedup s':>10}{'checked':>10}{'recall':>8}{'FP':>8}"
          f"{'peak RSS MiB':>14}")
    for n in sizes:
        for data, (rows, wrong) in (("intent", scale_rows(n)), ("free text", (generate(n)[0], set()))):
            secs = t_dedup = float("inf")
            for _ in range(repeat):
                found, ctx, took = found_ids(rows, CurationConfig(mislabel_action="flag"))
                secs = min(secs, took)
                t = time.perf_counter()
                run_steps(list(rows), CurationContext(CurationConfig()), [DedupStep()])
                t_dedup = min(t_dedup, time.perf_counter() - t)
            checked = ctx.facts["mislabel"]["rows_checked"]
            recall = f"{len(found & wrong) / len(wrong):.3f}" if wrong else "-"
            fp = f"{len(found - wrong) / max(checked - len(wrong), 1):.2%}" if checked else "-"
            print(f"{data:<11}{n:>9,}{secs:>12.2f}{t_dedup:>10.2f}{checked:>10,}{recall:>8}{fp:>8}"
                  f"{proc.memory_info().rss / 2**20:>14,.0f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, nargs="*", default=[10_000, 100_000])
    ap.add_argument("--scenario-seeds", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=3, help="timing runs at scale (the best is shown)")
    args = ap.parse_args()
    planted(args.scenario_seeds)
    real_files()
    scale(args.rows, args.repeat)


if __name__ == "__main__":
    main()
