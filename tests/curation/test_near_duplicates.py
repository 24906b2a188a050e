"""Near-duplicate engines: MinHash signatures and LSH banding (numpy and datasketch); edit-distance near-copies."""

from __future__ import annotations

import random

import numpy as np
import pytest
from rapidfuzz.distance import OSA

from flywheel.curation.near_duplicates import MinHasher, exact_jaccard, near_copies, near_duplicate_clusters


@pytest.mark.parametrize("engine", ["numpy", "datasketch"])
def test_near_duplicate_engines_find_planted_pairs(engine: str) -> None:
    rng = random.Random(3)
    words = [f"w{i}" for i in range(400)]
    base = [" ".join(rng.choice(words) for _ in range(80)) for _ in range(200)]
    texts = base + [b.replace(b.split()[5], "changed", 1) for b in base[:50]]
    labels = near_duplicate_clusters(texts, 0.8, engine=engine)
    truth = [i for i in range(50) if exact_jaccard(texts[i], texts[200 + i]) >= 0.88]
    assert len(truth) >= 40
    assert sum(labels[200 + i] == labels[i] for i in truth) >= 0.9 * len(truth)
    assert len(set(labels[:200].tolist())) == 200  # unrelated texts stay apart


def test_minhash_estimates_jaccard() -> None:
    a = "the cat sat on the mat and looked at the door for a while"
    b = "the cat sat on the mat and looked at the window for a while"
    sig = MinHasher(num_perm=256).signatures([a, b])
    est = float((sig[0] == sig[1]).mean())
    assert abs(est - exact_jaccard(a, b)) < 0.1
    assert np.array_equal(MinHasher(num_perm=256).signatures([a]), sig[:1])


def test_near_copies_agree_with_every_pair_compared() -> None:
    rng = random.Random(5)
    alphabet = "abcde "
    refs = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 9))) for _ in range(40)]
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 11))) for _ in range(600)] + refs[:5]
    budgets = [rng.randint(0, 3) for _ in refs]
    expected = sorted((i, j, OSA.distance(t, r)) for i, t in enumerate(texts) for j, r in enumerate(refs)
                      if t and r and OSA.distance(t, r) <= budgets[j])
    assert near_copies(texts, refs, budgets) == expected
    assert len(expected) > 100
    assert near_copies(["ab", "ba", "abc"], ["ab"], [1]) == [(0, 0, 0), (1, 0, 1), (2, 0, 1)]  # a swap is one edit
