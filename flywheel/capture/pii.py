"""PII detection and redaction for captured traffic: compiled patterns, validators, counts per kind.

Kinds (`capture.pii.kinds` in flywheel.yaml), applied in this order, each match replaced by `[KIND]`:
- `secret`: API keys and tokens (OpenAI/Anthropic-style `sk-...`, AWS `AKIA...`, GitHub, Slack,
  Google, JWTs, `Bearer ...`, PEM private keys) and `api_key=... / password: ...` assignments
  (only the value is replaced);
- `email`;
- `card`: 13-19 digits, optionally grouped by spaces or dashes, that pass the Luhn check;
- `ip`: IPv4 (octets <= 255) and IPv6 (checked with `ipaddress`);
- `phone`: 8-15 digits in phone-like groups, optional `+country` prefix and `(area)` code, not
  glued to further digit groups (so a card number that fails Luhn is not taken for a phone).

Each kind has an exact Python pattern (with look-arounds and a validator) and a looser RE2 pattern
that matches a superset of it. `redact_array` runs the RE2 patterns vectorised in Arrow C++ over a
whole column and applies the exact Python pattern only to the rows they flag, which keeps the
capture stage at millions of texts per minute. `redact` (one string) gives identical results.

Why not Presidio: presidio-analyzer's pattern recognizers cover most of the same kinds (no API
keys), but each recognizer runs per text in Python, and the package pulls in spaCy (plus, for its
AnalyzerEngine, a spaCy language model to download). Measured with `benchmarks/capture.py
--pii-compare` on the same 3,000 Alpaca texts (10% with PII), on 2 CPU cores: presidio's email,
card, IP and phone recognizers ran 430-540 texts/s, this module 26,000-53,000 texts/s (50-120x
faster) with secrets included. At 3 texts per event, presidio alone would need about 2 hours per
million events; the whole capture stage here takes about a minute.
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from flywheel.core.errors import InputError

PII_KINDS: tuple[str, ...] = ("secret", "email", "card", "ip", "phone")

_SECRET_VALUE_RULES = r"""
    -----BEGIN[ A-Z]*PRIVATE[ ]KEY-----[\s\S]*?-----END[ A-Z]*PRIVATE[ ]KEY-----
  | \b(?:sk|pk|rk)[-_](?:live_|test_|proj-|ant-)?[A-Za-z0-9_-]{16,}
  | \bAKIA[0-9A-Z]{16}\b
  | \bgh[pousr]_[A-Za-z0-9]{30,}
  | \bgithub_pat_[A-Za-z0-9_]{30,}
  | \bxox[abprs]-[A-Za-z0-9-]{10,}
  | \bAIza[0-9A-Za-z_-]{35}
  | \beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}
  | (?i:\bbearer\s+)[A-Za-z0-9._~+/=-]{20,}"""
_SECRET_ASSIGN_KEY = (
    r"""(?i:\b(?:api[_-]?key|secret|token|password|passwd|pwd|access[_-]?key)\b["']?\s*[:=]\s*["']?)"""
)
_SECRET_ASSIGN_VALUE = r"""[^\s"',;]{6,}"""

# kind -> exact Python pattern. The `value` group, when present, is the part that gets replaced.
_EXACT: dict[str, str] = {
    "secret": rf"(?:{_SECRET_VALUE_RULES})|(?:{_SECRET_ASSIGN_KEY}(?P<value>{_SECRET_ASSIGN_VALUE}))",
    "email": r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b",
    "card": r"(?<![\d.-])\d(?:[ -]?\d){12,18}(?![\d-])",
    "ip": r"""
        (?<![\d.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?![\d.]|\.\d)
      | (?<![\w:])(?:[0-9A-Fa-f]{1,4}:){1,7}(?::|(?::[0-9A-Fa-f]{1,4}){1,7}|[0-9A-Fa-f]{1,4})(?![\w:])""",
    "phone": r"""
        (?<![\w+.-])(?<!\d[ ])(?:\+\d{1,3}[\s.-]?)?(?:\(\d{2,4}\)[\s.-]?|\d{2,4}[\s.-])\d{3,4}[\s.-]?\d{3,4}(?!\w|[.-]\d|[ ]\d)""",
}
# kind -> RE2 pattern matching a superset of the exact one (look-arounds dropped, validators ignored)
_CANDIDATE: dict[str, str] = {
    "secret": r"(?i)-----BEGIN|\b(?:sk|pk|rk)[-_]|AKIA|\bgh[pousr]_|github_pat_|xox[abprs]-|AIza|eyJ|bearer[\t\n\v\f\r ]|"
    r"(?:api[_-]?key|secret|token|password|passwd|pwd|access[_-]?key)\b[\"']?[\t\n\v\f\r ]*[:=]",
    "email": r"@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2}",
    "card": r"\d(?:[ -]?\d){12,18}",
    "ip": r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}|[0-9A-Fa-f]{0,4}:[0-9A-Fa-f]{0,4}:",
    "phone": r"\d{2,4}\)?[\t\n\v\f\r .-]?\d{3,4}[\t\n\v\f\r .-]?\d{3,4}",
}
# ASCII: \d, \w, \s and \b mean what RE2 means by them, so the candidates stay a superset
_COMPILED = {kind: re.compile(p, re.VERBOSE | re.ASCII) for kind, p in _EXACT.items()}


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum of a string of digits (payment card numbers pass it)."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _is_pii(kind: str, text: str) -> bool:
    if kind == "card":
        digits = text.replace(" ", "").replace("-", "")
        return 13 <= len(digits) <= 19 and luhn_valid(digits)
    if kind == "ip" and ":" in text:
        try:
            ipaddress.IPv6Address(text)
        except ValueError:
            return False
    return True


@dataclass
class PiiRedactor:
    """Replaces PII of the enabled kinds with `[KIND]`; `hits` counts replacements per kind."""

    kinds: tuple[str, ...] = PII_KINDS

    def __post_init__(self) -> None:
        unknown = set(self.kinds) - set(PII_KINDS)
        if unknown:
            raise InputError(f"unknown PII kinds {sorted(unknown)}; expected some of {list(PII_KINDS)}")
        self.kinds = tuple(k for k in PII_KINDS if k in self.kinds)  # fixed order: secret first
        self.hits: Counter[str] = Counter()
        self._subs: dict[str, Callable[[str], str]] = {k: self._substituter(k) for k in self.kinds}

    def _substituter(self, kind: str) -> Callable[[str], str]:
        pattern = _COMPILED[kind]
        label = f"[{kind.upper()}]"
        hits = self.hits

        def replace(match: re.Match[str]) -> str:
            text = match.group(0)
            if not _is_pii(kind, text):
                return text
            hits[kind] += 1
            if match.lastgroup == "value":  # `api_key=` stays, the value goes
                return text[: match.start("value") - match.start()] + label
            return label

        return lambda s: pattern.sub(replace, s)

    def redact(self, text: str) -> str:
        """`text` with every enabled PII kind replaced."""
        for kind in self.kinds:
            text = self._subs[kind](text)
        return text

    def redact_array(self, texts: pa.Array | pa.ChunkedArray) -> pa.Array:
        """A string column with every enabled PII kind replaced (nulls stay null).

        One RE2 pass flags the rows that may hold any enabled kind; on those rows only, one RE2 pass
        per kind picks the texts that go through that kind's exact Python pattern.
        """
        arr = texts.combine_chunks() if isinstance(texts, pa.ChunkedArray) else texts
        if not self.kinds or len(arr) == 0:
            return arr
        any_kind = "|".join(f"(?:{_CANDIDATE[k]})" for k in self.kinds)
        flagged = pc.fill_null(pc.match_substring_regex(arr, any_kind), False)
        if not pc.any(flagged).as_py():
            return arr
        subset = arr.filter(flagged)
        for kind in self.kinds:
            mask = pc.fill_null(pc.match_substring_regex(subset, _CANDIDATE[kind]), False)
            if not pc.any(mask).as_py():
                continue
            sub = self._subs[kind]
            replaced = pa.array([sub(t) for t in subset.filter(mask).to_pylist()], pa.string())
            subset = pc.replace_with_mask(subset, mask, replaced)
        return pc.replace_with_mask(arr, flagged, subset)


def find_pii(text: str, kinds: Iterable[str] = PII_KINDS) -> list[tuple[str, str]]:
    """The (kind, matched text) pairs in `text`, kind by kind in redaction order."""
    wanted = set(kinds)
    found = []
    for kind in PII_KINDS:
        if kind in wanted:
            found += [(kind, m.group(0)) for m in _COMPILED[kind].finditer(text) if _is_pii(kind, m.group(0))]
    return found
