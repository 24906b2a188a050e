"""Near-duplicate detection: MinHash signatures over character shingles and LSH banding.

Two engines build the same thing and are compared in `benchmarks/curation.py`:

- `numpy` (the default): shingles are hashed by a rolling polynomial over the UTF-8 bytes of all
  texts at once, each of the `num_perm` permutations is a multiply-shift hash applied to the whole
  array, and `np.minimum.reduceat` takes the per-text minimum. Banding hashes each band of rows to
  one 64-bit key and groups equal keys by sorting; the band count and width are datasketch's
  optimal parameters for the threshold (`datasketch.lsh._optimal_param`).
- `datasketch`: `datasketch.MinHash.bulk` per text and `datasketch.MinHashLSH` for banding.

Candidate pairs are verified by the signature-estimated Jaccard similarity and joined into
clusters with a union-find, so a bucket of k equal inputs costs k links, not k^2 pairs.

Short texts have too few shingles for a Jaccard threshold to tell a typo from another question:
`near_copies` finds the texts within a few character edits of a set of references instead (the eval
set's near-copies in the training data, see `flywheel.curation.steps.decontamination`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from rapidfuzz.distance import OSA
from rapidfuzz.process import cdist

from flywheel.core.errors import InputError
from flywheel.core.text import shingle_form

_MIX1 = np.uint64(0xFF51AFD7ED558CCD)
_MIX2 = np.uint64(0xC4CEB9FE1A85EC53)
_POLY = np.uint64(0x100000001B3)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_CHUNK_BYTES = 4_000_000


def _mix64(h: np.ndarray) -> np.ndarray:
    """A 64-bit finalizer (murmur3 fmix64) so that similar byte windows spread over all bits."""
    h = h ^ (h >> np.uint64(33))
    h = h * _MIX1
    h = h ^ (h >> np.uint64(33))
    h = h * _MIX2
    return h ^ (h >> np.uint64(33))


def shingle_hashes(texts: Sequence[str], k: int = 5, lowercase: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """64-bit hashes of every k-byte window of each normalized text, flattened.

    Returns `(hashes, offsets)`: the hashes of text i are `hashes[offsets[i]:offsets[i+1]]`.
    Texts shorter than k are padded with spaces, so every text has at least one shingle.
    """
    encoded = [shingle_form(t, lowercase).encode("utf-8").ljust(k) for t in texts]
    lengths = np.fromiter((len(b) for b in encoded), dtype=np.int64, count=len(encoded))
    counts = lengths - k + 1
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    if not encoded:
        return np.zeros(0, dtype=np.uint64), offsets
    buf = np.frombuffer(b"".join(encoded), dtype=np.uint8).astype(np.uint64)
    n_windows = len(buf) - k + 1
    rolling = np.zeros(n_windows, dtype=np.uint64)
    for j in range(k):
        rolling = rolling * _POLY + buf[j : j + n_windows]
    starts = np.zeros(len(encoded), dtype=np.int64)
    np.cumsum(lengths[:-1], out=starts[1:])
    # window start positions of each text: starts[i] + 0..counts[i]-1
    within = np.arange(offsets[-1], dtype=np.int64) - np.repeat(offsets[:-1], counts)
    positions = np.repeat(starts, counts) + within
    return _mix64(rolling[positions]), offsets


@dataclass(frozen=True)
class MinHasher:
    """Multiply-shift permutations `(a*x + b) >> 32` over 64-bit shingle hashes (seeded)."""

    num_perm: int = 64
    seed: int = 1
    shingle: int = 5

    def _params(self) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(self.seed)
        a = rng.integers(1, 2**63, size=self.num_perm, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
        b = rng.integers(0, 2**63, size=self.num_perm, dtype=np.uint64)
        return a, b

    def signatures(self, texts: Sequence[str]) -> np.ndarray:
        """A `(len(texts), num_perm)` uint32 signature matrix (numpy engine)."""
        a, b = self._params()
        out = np.empty((len(texts), self.num_perm), dtype=np.uint32)
        start = 0
        while start < len(texts):
            # chunk rows so the flat shingle array stays a few million entries
            size, stop = 0, start
            while stop < len(texts) and (size < _CHUNK_BYTES or stop == start):
                size += len(texts[stop]) + 1
                stop += 1
            hashes, offsets = shingle_hashes(texts[start:stop], self.shingle)
            seg = offsets[:-1]
            for p in range(self.num_perm):
                permuted = (hashes * a[p] + b[p]) >> np.uint64(32)
                out[start:stop, p] = np.minimum.reduceat(permuted, seg).astype(np.uint32)
            start = stop
        return out

    def signatures_datasketch(self, texts: Sequence[str]) -> np.ndarray:
        """The same shape built with `datasketch.MinHash.bulk` (the per-row reference engine)."""
        from datasketch import MinHash

        sets = []
        for t in texts:
            norm = shingle_form(t).ljust(self.shingle)
            sets.append([norm[i : i + self.shingle].encode("utf-8") for i in range(len(norm) - self.shingle + 1)])
        mhs = MinHash.bulk(sets, num_perm=self.num_perm, seed=self.seed)
        return np.array([m.hashvalues for m in mhs], dtype=np.uint64).astype(np.uint32)


def lsh_params(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows per band) by datasketch's optimizer, weighting missed pairs 4x false candidates:
    candidates are verified on the signatures anyway, so recall is what banding must protect
    (64 permutations at 0.8: 8 bands of 8, finding 99% of pairs at Jaccard 0.9)."""
    from datasketch.lsh import _optimal_param

    return _optimal_param(threshold, num_perm, 0.2, 0.8)


def band_keys(sig: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """One 64-bit key per (text, band): shape `(n, bands)`."""
    keys = np.zeros((sig.shape[0], bands), dtype=np.uint64)
    for band in range(bands):
        block = sig[:, band * rows : (band + 1) * rows].astype(np.uint64)
        key = np.full(sig.shape[0], np.uint64(band + 1), dtype=np.uint64)
        for c in range(rows):
            key = _mix64(key * _GOLDEN + block[:, c])
        keys[:, band] = key
    return keys


def candidate_links(sig: np.ndarray, threshold: float) -> np.ndarray:
    """Pairs `(i, j)` (i > j) of texts sharing a band bucket: each member linked to its bucket's first."""
    bands, rows = lsh_params(threshold, sig.shape[1])
    keys = band_keys(sig, bands, rows)
    links = []
    for band in range(bands):
        order = np.argsort(keys[:, band], kind="stable")
        k = keys[order, band]
        new_group = np.ones(len(k), dtype=bool)
        new_group[1:] = k[1:] != k[:-1]
        group_first = order[np.maximum.accumulate(np.where(new_group, np.arange(len(k)), 0))]
        member = ~new_group
        if member.any():
            links.append(np.stack([order[member], group_first[member]], axis=1))
    if not links:
        return np.zeros((0, 2), dtype=np.int64)
    pairs = np.concatenate(links)
    pairs.sort(axis=1)
    pairs = pairs[:, ::-1]
    return np.unique(pairs, axis=0)


def candidate_links_datasketch(sig: np.ndarray, threshold: float, seed: int = 1) -> np.ndarray:
    """The same candidate links found with `datasketch.MinHashLSH` over LeanMinHash objects."""
    from datasketch import LeanMinHash, MinHashLSH

    lsh = MinHashLSH(threshold=threshold, num_perm=sig.shape[1], params=lsh_params(threshold, sig.shape[1]))
    links = []
    for i, row in enumerate(sig):
        mh = LeanMinHash(seed=seed, hashvalues=row.astype(np.uint32), scheme="affine32")
        found = lsh.query(mh)
        if found:
            links.append((i, min(found)))
        lsh.insert(i, mh)
    return np.array(links, dtype=np.int64).reshape(-1, 2)


def estimated_jaccard(sig: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """Share of equal signature positions for each pair (the MinHash Jaccard estimate)."""
    if len(pairs) == 0:
        return np.zeros(0)
    return (sig[pairs[:, 0]] == sig[pairs[:, 1]]).mean(axis=1)


def clusters_from_pairs(n: int, pairs: np.ndarray) -> np.ndarray:
    """Union-find over `pairs`: a cluster label per item (the smallest member index)."""
    parent = list(range(n))

    def find(x: int) -> int:
        root = x
        while parent[root] != root:
            root = parent[root]
        while parent[x] != root:
            parent[x], x = root, parent[x]
        return root

    for i, j in pairs.tolist():
        ri, rj = find(i), find(j)
        if ri != rj:
            if ri < rj:
                parent[rj] = ri
            else:
                parent[ri] = rj
    return np.array([find(i) for i in range(n)], dtype=np.int64)


def near_duplicate_clusters(
    texts: Sequence[str], threshold: float, num_perm: int = 64, seed: int = 1, shingle: int = 5, engine: str = "numpy"
) -> np.ndarray:
    """Cluster label per text: texts whose estimated Jaccard (char shingles) >= threshold share a label."""
    hasher = MinHasher(num_perm=num_perm, seed=seed, shingle=shingle)
    if engine == "numpy":
        sig = hasher.signatures(texts)
        pairs = candidate_links(sig, threshold)
    elif engine == "datasketch":
        sig = hasher.signatures_datasketch(texts)
        pairs = candidate_links_datasketch(sig, threshold, seed=seed)
    else:
        raise InputError(f"unknown near-duplicate engine {engine!r}; expected numpy or datasketch")
    pairs = pairs[estimated_jaccard(sig, pairs) >= threshold] if len(pairs) else pairs
    return clusters_from_pairs(len(texts), pairs)


def exact_jaccard(a: str, b: str, shingle: int = 5) -> float:
    """Jaccard similarity of the character-shingle sets (the ground truth MinHash estimates)."""

    def shingles(t: str) -> set[str]:
        n = shingle_form(t).ljust(shingle)
        return {n[i : i + shingle] for i in range(len(n) - shingle + 1)}

    sa, sb = shingles(a), shingles(b)
    return len(sa & sb) / len(sa | sb) if sa or sb else 1.0


def near_copies(texts: Sequence[str], references: Sequence[str], budgets: Sequence[int]) -> list[tuple[int, int, int]]:
    """(text, reference, edits) for every text within `budgets[reference]` edits of a reference: the
    optimal-string-alignment distance (insert, delete, substitute, swap two adjacent characters).
    Empty texts and references match nothing.

    A distance is at least the length difference, so each reference is compared only with the texts
    whose length lies within its budget (one `rapidfuzz.process.cdist` per reference length and budget,
    distinct texts only): linear in the texts, whatever the number of references."""
    distinct: dict[str, list[int]] = {}
    for i, t in enumerate(texts):
        if t:
            distinct.setdefault(t, []).append(i)
    uniq = list(distinct)
    lengths = np.fromiter(map(len, uniq), dtype=np.int64, count=len(uniq))
    order = np.argsort(lengths, kind="stable")
    sorted_lengths = lengths[order]
    groups: dict[tuple[int, int], list[int]] = {}
    for j, (ref, budget) in enumerate(zip(references, budgets, strict=True)):
        if ref and budget >= 0:
            groups.setdefault((len(ref), int(budget)), []).append(j)
    out: list[tuple[int, int, int]] = []
    for (length, budget), refs in groups.items():
        lo, hi = np.searchsorted(sorted_lengths, [length - budget, length + budget + 1])
        if lo == hi:
            continue
        candidates = order[lo:hi]
        dist = cdist([uniq[c] for c in candidates], [references[j] for j in refs], scorer=OSA.distance,
                     score_cutoff=budget, dtype=np.int32)
        for c, r in zip(*np.nonzero(dist <= budget), strict=True):
            edits = int(dist[c, r])
            out.extend((i, refs[r], edits) for i in distinct[uniq[candidates[c]]])
    return sorted(out)
