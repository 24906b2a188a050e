"""Messy inputs in production's proportions: which generated inputs get which production trait, and the
seeded rewrites that give an input a trait the generator did not write.

`plan_styles` assigns each of n examples its traits so that exactly round(share x n) of them carry each
kind (short, lower-case, typo-laden, abbreviation-heavy, no punctuation); the generator is asked for
them in its prompt, and `apply_style` rewrites what it returned (lower-case, punctuation dropped, adjacent
letters swapped, common words abbreviated, then vowels dropped as in txt-speak) where the trait is still
missing. Short inputs are only asked
for: cutting a sentence would change its meaning.
"""

from __future__ import annotations

import random
import re

import numpy as np

from flywheel.capture.profile import input_kinds

STYLE_KINDS = ("short", "lower_case", "typo_laden", "abbreviation_heavy", "no_punctuation")
STYLE_WORDS = {
    "short": "short (at most 4 words)",
    "lower_case": "all lower-case",
    "typo_laden": "with typos",
    "abbreviation_heavy": "with chat abbreviations (pls, u, thx)",
    "no_punctuation": "without punctuation",
}
ABBREVIATE = {
    "please": "pls", "you": "u", "your": "ur", "are": "r", "thanks": "thx", "thank you": "ty", "before": "b4",
    "information": "info", "account": "acct", "password": "pwd", "message": "msg", "because": "bc",
    "appointment": "appt", "quantity": "qty", "amount": "amt", "with": "w/", "without": "w/o", "by the way": "btw",
    "i don't know": "idk", "as soon as possible": "asap", "okay": "ok", "department": "dept",
}
_ABBREV = re.compile(r"\b(" + "|".join(sorted(map(re.escape, ABBREVIATE), key=len, reverse=True)) + r")\b", re.I)
_PUNCT = re.compile(r"[.!?,;:]")
_LONG_WORD = re.compile(r"[A-Za-z]{4,}")
_SQUEEZABLE = re.compile(r"\b[b-df-hj-np-tv-zB-DF-HJ-NP-TV-Z][A-Za-z]{3,6}\b")  # 4-7 letters, a consonant first
_INNER_VOWELS = re.compile(r"[aeiouyAEIOUY]")


def plan_styles(n: int, shares: dict[str, float], seed: int) -> list[tuple[str, ...]]:
    """For each of `n` examples the style kinds it should carry: round(shares[k] x n) examples per kind,
    picked by a seeded permutation per kind."""
    rng = np.random.default_rng(seed)
    styles: list[set[str]] = [set() for _ in range(n)]
    for kind in STYLE_KINDS:
        count = min(n, round(shares.get(kind, 0.0) * n))
        for i in rng.permutation(n)[:count]:
            styles[int(i)].add(kind)
    return [tuple(k for k in STYLE_KINDS if k in s) for s in styles]


def describe_style(style: tuple[str, ...]) -> str:
    """The words a generator prompt uses for a style ('as written' when it has none)."""
    return ", ".join(STYLE_WORDS[k] for k in style) or "as a careful writer would"


def _typos(text: str, rng: random.Random) -> str:
    """Swap two inner adjacent letters in about half of the words of 4+ letters (at least two words)."""
    words = list(_LONG_WORD.finditer(text))
    if not words:
        return text
    picked = {m.start() for m in words if rng.random() < 0.5}
    picked |= {m.start() for m in rng.sample(words, min(2, len(words)))}
    out, last = [], 0
    for m in words:
        w = m.group()
        if m.start() in picked:
            i = rng.randrange(1, len(w) - 2)
            w = w[:i] + w[i + 1] + w[i] + w[i + 2:]
        out += [text[last:m.start()], w]
        last = m.end()
    return "".join(out) + text[last:]


def apply_style(text: str, style: tuple[str, ...], vocabulary: set[str], seed: int) -> str:
    """`text` rewritten until it carries each trait of `style` it lacks (short is left to the generator)."""
    rng = random.Random(seed)
    have = input_kinds(text, vocabulary)
    if "abbreviation_heavy" in style and not have["abbreviation_heavy"]:
        text = _ABBREV.sub(lambda m: ABBREVIATE[m.group().lower()], text)
        for m in reversed(list(_SQUEEZABLE.finditer(text))):  # then txt-speak: vowels dropped, last words first
            if input_kinds(text, vocabulary)["abbreviation_heavy"]:
                break
            squeezed = m.group()[0] + _INNER_VOWELS.sub("", m.group()[1:])
            if 2 <= len(squeezed) <= 4:
                text = text[:m.start()] + squeezed + text[m.end():]
    if "typo_laden" in style and not input_kinds(text, vocabulary)["typo_laden"]:
        text = _typos(text, rng)
    if "no_punctuation" in style and not have["no_punctuation"]:
        text = " ".join(_PUNCT.sub(" ", text).split())
    if "lower_case" in style and not have["lower_case"]:
        text = text.lower()
    return text
