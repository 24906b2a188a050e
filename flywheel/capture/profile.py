"""The production-input profile: what production inputs look like, read from the captured interactions.

Production inputs are short, lower-case, typo-laden and abbreviated; hand-written or generated inputs are
usually clean. `input_kinds` names the traits of one input, `kind_shares` their shares over a set of inputs,
`under_covered_kinds` the traits a set of inputs has too few of against production, and `production_profile`
all of it over the last weeks of `warehouse/interactions/<day>.parquet`. Curation's production gap and
generation's messy synthetic inputs both read production through this module.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flywheel.core.sampling import seeded_sample
from flywheel.core.storage import parquet_file, read_table, storage_path

_WORD = re.compile(r"[A-Za-z']+")
_TOKEN = re.compile(r"\S+")
_VOWEL = re.compile(r"[aeiouy]", re.I)
SHORT_WORDS = 4
ABBREVIATIONS = frozenset(
    "pls plz thx thnx ty u ur r y b4 asap btw fyi imo imho idk tbh omg lol brb msg info acct pwd pw "
    "appt qty amt dept govt approx w/ w/o wrt pls. vs etc eta faq nvm cuz bc gonna wanna dunno k ok".split()
)
COMMON_WORDS = frozenset(
    """a about after again all also am an and any are as at be because been before being but by can
    could did do does doing don't down for from get got had has have having he her here him his how i
    i'm if in into is isn't it it's its just know like make me more most my need no not now of off
    on one only or other our out over please right same see she should so some still such than that
    the their them then there these they this those through to too try up us use very want was we
    well were what when where which while who why will with won't work would yes you your hi hello
    thanks thank help cancel order account password reset login email change update refund price
    time today tomorrow day week month year new old good bad problem issue error""".split()
)
KINDS = ("short", "lower_case", "typo_laden", "abbreviation_heavy", "no_punctuation", "question")
UNDER_COVERED_MIN_SHARE = 0.05
"""A kind counts as under-covered only where production has at least this share of it ..."""
UNDER_COVERED_RATIO = 0.5
"""... and the other side less than this fraction of production's share."""


def day_files(warehouse_dir: str | Path) -> list[tuple[dt.date, Path]]:
    """The `<YYYY-MM-DD>.parquet` partitions of a daily warehouse table, by day."""
    out = []
    for f in sorted(storage_path(warehouse_dir).glob("*.parquet")):
        try:
            out.append((dt.date.fromisoformat(f.stem), f))
        except ValueError:
            continue
    return out


def recent_production_inputs(warehouse_dir: str | Path, weeks: int = 4,
                             until: dt.date | None = None) -> tuple[list[str], set[str]]:
    """`input_text` of the last `weeks` weeks of interaction partitions (by the newest day present before
    `until`, when given), and the model versions seen in them."""
    days = [(d, f) for d, f in day_files(warehouse_dir) if until is None or d < until]
    if not days:
        return [], set()
    newest = max(d for d, _ in days)
    keep = [f for d, f in days if d > newest - dt.timedelta(weeks=weeks)]
    texts: list[str] = []
    versions: set[str] = set()
    for f in keep:
        names = parquet_file(f).schema_arrow.names
        cols = [c for c in ("input_text", "model_version") if c in names]
        table = read_table(f, columns=cols)
        if "input_text" in cols:
            texts.extend(t for t in table.column("input_text").to_pylist() if t)
        if "model_version" in cols:
            versions.update(v for v in table.column("model_version").to_pylist() if v)
    return texts, versions


def build_vocabulary(texts: Sequence[str], max_texts: int = 20_000, seed: int = 0) -> set[str]:
    """Lower-case words of (a sample of) `texts` plus a small list of common words."""
    vocab = set(COMMON_WORDS)
    for t in seeded_sample(list(texts), max_texts, seed):
        vocab.update(w.lower() for w in _WORD.findall(t))
    return vocab


def input_kinds(text: str, vocabulary: set[str]) -> dict[str, bool]:
    """Which production-style traits an input has."""
    tokens = _TOKEN.findall(text)
    words = [w.lower() for w in _WORD.findall(text)]
    long_words = [w for w in words if len(w) >= 3]
    unknown = sum(1 for w in long_words if w not in vocabulary)
    abbreviated = sum(1 for t in tokens if t.lower().strip(".,!?") in ABBREVIATIONS
                      or (2 <= len(t) <= 4 and t.isalpha() and not _VOWEL.search(t)))
    letters = [c for c in text if c.isalpha()]
    return {
        "short": len(tokens) <= SHORT_WORDS,
        "lower_case": bool(letters) and not any(c.isupper() for c in letters),
        "typo_laden": len(long_words) >= 2 and unknown / len(long_words) >= 0.3,
        "abbreviation_heavy": bool(tokens) and abbreviated / len(tokens) >= 0.2,
        "no_punctuation": bool(text.strip()) and not re.search(r"[.!?,;:]", text),
        "question": text.rstrip().endswith("?"),
    }


def kind_shares(texts: Sequence[str], vocabulary: set[str]) -> dict[str, float]:
    """The share of `texts` with each of KINDS (0 for every kind when there are no texts)."""
    kinds = [input_kinds(t, vocabulary) for t in texts]
    return {k: round(sum(x[k] for x in kinds) / len(kinds), 4) if kinds else 0.0 for k in KINDS}


def under_covered_kinds(production: dict[str, float], other: dict[str, float]) -> list[str]:
    """The kinds production has at least UNDER_COVERED_MIN_SHARE of and `other` less than
    UNDER_COVERED_RATIO x production's share."""
    return [k for k in KINDS if production.get(k, 0.0) >= UNDER_COVERED_MIN_SHARE
            and other.get(k, 0.0) < UNDER_COVERED_RATIO * production[k]]


@dataclass
class ProductionProfile:
    """The recent production inputs and their traits: kind shares, median length, vocabulary."""

    inputs: list[str] = field(default_factory=list)
    model_versions: set[str] = field(default_factory=set)
    shares: dict[str, float] = field(default_factory=dict)
    median_words: float = 0.0
    vocabulary: set[str] = field(default_factory=set)

    @property
    def available(self) -> bool:
        return bool(self.inputs)

    def summary(self) -> dict[str, Any]:
        return {"inputs": len(self.inputs), "shares": self.shares, "median_words": self.median_words,
                "model_versions": sorted(self.model_versions)}


def production_profile(warehouse_dir: str | Path, weeks: int = 4, until: dt.date | None = None,
                       seed: int = 0, sample_size: int = 5000,
                       vocabulary_texts: Sequence[str] | None = None) -> ProductionProfile:
    """The profile of the last `weeks` weeks of production inputs (kind shares on a seeded sample).

    Typos are words outside the vocabulary: built from `vocabulary_texts` (carefully written text such as
    reference answers, so production's misspellings stay unknown), else from the inputs themselves."""
    inputs, versions = recent_production_inputs(warehouse_dir, weeks, until)
    vocabulary = build_vocabulary(inputs if vocabulary_texts is None else vocabulary_texts, seed=seed)
    sample = seeded_sample(inputs, sample_size, seed)
    lengths = sorted(len(t.split()) for t in sample)
    median = 0.0
    if lengths:
        mid = len(lengths) // 2
        median = float(lengths[mid]) if len(lengths) % 2 else (lengths[mid - 1] + lengths[mid]) / 2
    return ProductionProfile(inputs, versions, kind_shares(sample, vocabulary), median, vocabulary)
