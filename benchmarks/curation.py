"""Curation at scale: time every step on generated examples, compare near-duplicate engines, measure recall.

    .venv/bin/python benchmarks/curation.py --rows 100000
    .venv/bin/python benchmarks/curation.py --rows 1000000 --no-baselines

The data is generated (seeded): production-like short inputs and longer answers from four sources and
three generators, with planted exact duplicates, near-duplicate inputs (a word changed / typos),
conflicting answers and eval-set leaks. Prints per-step seconds of `curate` and of the measurements
(diversity, production gap, writing the version), then the near-duplicate engines side by side:
this project's numpy MinHash + banding, datasketch (MinHash.bulk + MinHashLSH), and rapidfuzz
pairwise ratios on a sample (extrapolated), with recall against exact Jaccard on a sample.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from itertools import combinations

import numpy as np
import psutil
from rapidfuzz import fuzz, process

from flywheel.config import CurationConfig
from flywheel.core.records import make_example
from flywheel.core.storage import FlywheelHome
from flywheel.core.text import shingle_form
from flywheel.curation.context import EvalItems, input_text
from flywheel.curation.near_duplicates import MinHasher, exact_jaccard, near_duplicate_clusters
from flywheel.curation.pipeline import curate
from flywheel.curation.versions import write_dataset_version

TOPICS = "account billing password refund order shipping invoice login email phone plan upgrade delivery " \
         "subscription address payment card coupon return warranty battery screen printer router app".split()
VERBS = "reset change cancel track update find fix open close renew pay download install connect".split()
FILLER = "please quickly today now again asap really also still just maybe".split()
ANSWER_WORDS = ("open the settings page then choose the option and confirm with your code you will get an email "
                "within minutes if nothing arrives check the spam folder or contact support with your order number "
                "we can refund the payment to the original card after the return is received").split()
SOURCES = [("real", 0.25), ("human", 0.10), ("distilled", 0.20), ("synthetic", 0.45)]
GENERATORS = ["gen-alpha", "gen-beta", "gen-gamma"]


def _typo(word: str, rng: random.Random) -> str:
    if len(word) < 4:
        return word
    i = rng.randrange(len(word) - 1)
    return word[:i] + word[i + 1] + word[i] + word[i + 2 :]


def make_input(rng: random.Random) -> str:
    words = [rng.choice(VERBS), "my", rng.choice(TOPICS)] + [rng.choice(TOPICS + FILLER) for _ in range(rng.randint(3, 12))]
    words = [_typo(w, rng) if rng.random() < 0.1 else w for w in words]
    words.append(f"#{rng.randrange(10**6)}")  # an order number or similar makes inputs distinct
    return " ".join(words)


def make_answer(rng: random.Random) -> str:
    n = rng.randint(15, 70)
    return " ".join(rng.choice(ANSWER_WORDS) for _ in range(n)).capitalize() + "."


def generate(n: int, seed: int = 0) -> tuple[list[dict], list[dict], list[str], list[int]]:
    """(examples, eval rows, production inputs, indices of rows whose input was planted as a near/exact copy)."""
    rng = random.Random(seed)
    names, weights = zip(*SOURCES, strict=True)
    rows: list[dict] = []
    base: list[tuple[str, str]] = []
    planted: list[int] = []
    while len(rows) < n:
        r = rng.random()
        if base and r < 0.13:
            planted.append(len(rows))
        if base and r < 0.05:  # exact duplicate
            q, a = rng.choice(base)
        elif base and r < 0.12:  # near-duplicate input (one word changed), same answer
            q, a = rng.choice(base)
            w = q.split()
            w[rng.randrange(len(w) - 1)] = rng.choice(TOPICS)
            q = " ".join(w)
        elif base and r < 0.13:  # conflicting answer for the same input
            q, _ = rng.choice(base)
            a = make_answer(rng)
        else:
            q, a = make_input(rng), make_answer(rng)
            base.append((q, a))
        source = rng.choices(names, weights)[0]
        gen = rng.choice(GENERATORS) if source in ("synthetic", "distilled") else None
        rows.append(make_example([{"role": "user", "content": q}, {"role": "assistant", "content": a}], source,
                                 generator=gen, weight=rng.choice([0.5, 1.0, 2.0, 3.0])))
    eval_rows = []
    for i in range(150):
        q, a = (rng.choice(base) if i < 15 else (make_input(rng), make_answer(rng)))  # 10% leaked into training
        eval_rows.append(make_example([{"role": "user", "content": q}, {"role": "assistant", "content": a}], "human", slice="clean"))
    production = [make_input(rng).lower() for _ in range(20_000)]
    return rows, eval_rows, production, planted


def recall_against_exact_jaccard(texts: list[str], labels: np.ndarray, threshold: float, sample: int, seed: int,
                                 planted: list[int]) -> tuple[float, int]:
    """Share of the pairs with exact shingle Jaccard >= threshold, among all pairs of a sample, that the engine
    put in one cluster. The sample is half rows planted as copies and their originals (so it holds true pairs;
    chosen by construction, not by the engine), half random rows."""
    rng = np.random.default_rng(seed)
    planted_arr = np.array([i for i in planted if i < len(texts)], dtype=np.int64)
    chosen = rng.choice(planted_arr, size=min(sample // 4, len(planted_arr)), replace=False)
    originals = []
    for i in chosen.tolist():  # the earlier row with the most similar input (the planted copy's source)
        same = np.flatnonzero(labels[:i] == labels[i])
        originals.extend(same[:1].tolist())
        if not len(same):
            originals.extend(rng.choice(i, size=1).tolist() if i else [])
    pick = np.unique(np.concatenate([chosen, np.array(originals, dtype=np.int64),
                                     rng.choice(len(texts), size=sample // 2, replace=False)]))
    shingles = []
    for i in pick:
        t = shingle_form(texts[i]).ljust(5)
        shingles.append({t[j : j + 5] for j in range(len(t) - 4)})
    truth = found = 0
    for a, b in combinations(range(len(pick)), 2):
        sa, sb = shingles[a], shingles[b]
        inter = len(sa & sb)
        if inter and inter / (len(sa) + len(sb) - inter) >= threshold:
            truth += 1
            found += labels[pick[a]] == labels[pick[b]]
    return (found / truth if truth else 1.0), truth


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--no-baselines", action="store_true", help="skip the datasketch / rapidfuzz comparison")
    ap.add_argument("--recall-sample", type=int, default=1500)
    args = ap.parse_args()
    proc = psutil.Process()

    t0 = time.perf_counter()
    rows, eval_rows, production, planted = generate(args.rows)
    print(f"generated {len(rows):,} examples, {len(eval_rows)} eval items, {len(production):,} production inputs "
          f"in {time.perf_counter() - t0:.1f}s")

    cfg = CurationConfig(min_examples=200, target_examples=500, ceiling_examples=10**9)
    t_all = time.perf_counter()
    result = curate(rows, cfg, EvalItems(eval_rows))
    t_curate = time.perf_counter() - t_all
    with tempfile.TemporaryDirectory() as tmp:
        t1 = time.perf_counter()
        dv = write_dataset_version(FlywheelHome(tmp), result, rubric_text="# rubric", rubric_path="rubric.md",
                                   rubric_problem=None, production_inputs=production)
        t_write = time.perf_counter() - t1
    total = time.perf_counter() - t_all
    print(f"\n== curation of {len(rows):,} examples: {total:.1f}s total (limit 60s at 100k), peak RSS "
          f"{proc.memory_info().rss / 2**20:,.0f} MiB ==")
    print(f"{'step':<18}{'in':>10}{'out':>10}{'dropped':>10}{'seconds':>9}")
    for r in result.reports:
        print(f"{r.step:<18}{r.n_in:>10,}{r.n_out:>10,}{sum(r.dropped.values()):>10,}{r.seconds:>9.2f}")
    print(f"{'(steps sum)':<48}{t_curate:>9.2f}")
    print(f"{'measure+write':<48}{t_write:>9.2f}  (diversity, production gap, rules re-check, parquet, card)")
    print("drops by reason:", dv.manifest["counts"]["drops_by_reason"])
    print("rules:", {r.name: r.passed for r in dv.rules})

    # --- near-duplicate engines on the same inputs --------------------------------------------------
    texts = [shingle_form(input_text(r["messages"])) for r in rows]
    hasher = MinHasher(num_perm=cfg.minhash_permutations, seed=cfg.seed + 1)
    print(f"\n== near-duplicate inputs ({len(texts):,} texts, {cfg.minhash_permutations} permutations, threshold "
          f"{cfg.near_duplicate_threshold}) ==")
    t = time.perf_counter()
    hasher.signatures(texts)
    t_sig = time.perf_counter() - t
    t = time.perf_counter()
    labels = near_duplicate_clusters(texts, cfg.near_duplicate_threshold, cfg.minhash_permutations, cfg.seed + 1)
    t_np = time.perf_counter() - t
    print(f"numpy MinHash signatures {t_sig:.2f}s; signatures + banding + verify + union-find {t_np:.2f}s")
    rec, n_true = recall_against_exact_jaccard(texts, labels, cfg.near_duplicate_threshold, args.recall_sample, 0, planted)
    print(f"numpy engine recall vs exact Jaccard (sample of {args.recall_sample}, {n_true} true pairs): {rec:.3f}")
    if not args.no_baselines:
        n_ds = min(len(texts), 20_000)
        t = time.perf_counter()
        ds_labels = near_duplicate_clusters(texts[:n_ds], cfg.near_duplicate_threshold, cfg.minhash_permutations,
                                            cfg.seed + 1, engine="datasketch")
        t_ds = time.perf_counter() - t
        print(f"datasketch MinHash.bulk + MinHashLSH on {n_ds:,}: {t_ds:.2f}s -> ~{t_ds * len(texts) / n_ds:.1f}s for "
              f"{len(texts):,} (numpy engine: {t_np:.2f}s)")
        rec_ds, n_true_ds = recall_against_exact_jaccard(texts[:n_ds], ds_labels, cfg.near_duplicate_threshold,
                                                         min(args.recall_sample, n_ds // 4), 1, planted)
        np_labels_sub = near_duplicate_clusters(texts[:n_ds], cfg.near_duplicate_threshold, cfg.minhash_permutations, cfg.seed + 1)
        rec_np_sub, _ = recall_against_exact_jaccard(texts[:n_ds], np_labels_sub, cfg.near_duplicate_threshold,
                                                     min(args.recall_sample, n_ds // 4), 1, planted)
        print(f"recall on the same {n_ds:,}-text subset: datasketch {rec_ds:.3f}, numpy {rec_np_sub:.3f} ({n_true_ds} true pairs)")
        n_rf = 3000
        t = time.perf_counter()
        scores = process.cdist(texts[:n_rf], texts[:n_rf], scorer=fuzz.ratio, workers=-1, score_cutoff=80)
        t_rf = time.perf_counter() - t
        rf_pairs = int((np.count_nonzero(scores) - n_rf) / 2)
        print(f"rapidfuzz cdist ratio>=80 all pairs on {n_rf:,}: {t_rf:.2f}s ({rf_pairs} pairs) -> "
              f"~{t_rf * (len(texts) / n_rf) ** 2:,.0f}s for {len(texts):,} (quadratic)")
        exact_pairs = sum(exact_jaccard(texts[i], texts[j]) >= cfg.near_duplicate_threshold
                          for i, j in zip(*np.nonzero(np.triu(scores, 1)), strict=True))
        print(f"  of rapidfuzz's pairs, {exact_pairs} have exact shingle Jaccard >= {cfg.near_duplicate_threshold}")


if __name__ == "__main__":
    main()
