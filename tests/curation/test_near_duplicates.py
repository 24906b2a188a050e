"""Near-duplicate engines: MinHash signatures and LSH banding (numpy and datasketch)."""

from __future__ import annotations

import random

import numpy as np
import pytest

from flywheel.curation.near_duplicates import MinHasher, exact_jaccard, near_duplicate_clusters


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
