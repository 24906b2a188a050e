"""`PiiRedactor`: every enabled kind replaced by `[KIND]`, except what the allowlist names; a whole
Arrow column at once (RE2 prefilter) or one text; and quarantine lines redacted with their shape kept."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from flywheel.capture.pii.rules import CANDIDATE, DEFAULT_PHONE_REGIONS, PII_KINDS, RULES, validators
from flywheel.config import PiiConfig
from flywheel.core.errors import InputError

_PHONE_LIKE = re.compile(r"^\+?[\d\s().-]{7,}$")
_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})")


def placeholder(kind: str) -> str:
    """What a `kind` match becomes: `[EMAIL]`, `[PHONE]`, ... (a reviewer can write the real value back)."""
    return f"[{kind.upper()}]"


@dataclass(frozen=True)
class Allowlist:
    """What is never redacted (`capture.pii.allow`): exact strings (case-insensitive), e-mail domains
    (`example.com` or `@example.com`: that domain and its subdomains) and phone numbers (same digits,
    national or international form)."""

    entries: tuple[str, ...] = ()
    exact: frozenset[str] = field(init=False)
    domains: tuple[str, ...] = field(init=False)
    phones: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        folded = [e.strip().casefold() for e in self.entries if e.strip()]
        object.__setattr__(self, "exact", frozenset(folded))
        domains = tuple(
            e.lstrip("@")
            for e in folded
            if "@" not in e.lstrip("@") and "." in e and not _PHONE_LIKE.match(e)
        )
        object.__setattr__(self, "domains", domains)
        object.__setattr__(
            self, "phones", tuple(re.sub(r"\D", "", e) for e in folded if _PHONE_LIKE.match(e))
        )

    def allows(self, kind: str, text: str) -> bool:
        folded = text.strip().casefold()
        if folded in self.exact:
            return True
        if kind == "email" and "@" in folded:
            domain = folded.rsplit("@", 1)[1]
            return any(domain == d or domain.endswith("." + d) for d in self.domains)
        if kind == "phone" and self.phones:
            digits = re.sub(r"\D", "", folded)
            return any(
                len(min(digits, p, key=len)) >= 7 and (digits.endswith(p) or p.endswith(digits))
                for p in self.phones
            )
        return False


@dataclass
class PiiRedactor:
    """Replaces PII of the enabled kinds with `[KIND]` (the allowlist's entries stay); `hits` counts
    replacements per kind."""

    kinds: Sequence[str] = PII_KINDS
    allow: Sequence[str] = ()
    phone_regions: Sequence[str] = DEFAULT_PHONE_REGIONS

    def __post_init__(self) -> None:
        unknown = set(self.kinds) - set(PII_KINDS)
        if unknown:
            raise InputError(f"unknown PII kinds {sorted(unknown)}; expected some of {list(PII_KINDS)}")
        self.kinds = tuple(k for k in PII_KINDS if k in self.kinds)  # fixed order: secrets first
        self.allowlist = Allowlist(tuple(self.allow))
        try:
            checks = validators(tuple(self.phone_regions))
        except ValueError as exc:
            raise InputError(str(exc)) from None
        self.hits: Counter[str] = Counter()
        self._weight = 1  # how many rows the text being redacted stands for (redact_array: distinct texts)
        self._subs: dict[str, list[Callable[[str], str]]] = {
            k: [self._substituter(k, pattern, checks.get(k)) for pattern, _ in RULES[k]] for k in self.kinds
        }

    @classmethod
    def from_config(cls, pii: PiiConfig) -> PiiRedactor | None:
        """The redactor of a `capture.pii` section (`flywheel.config.PiiConfig`); None when disabled."""
        if not pii.enabled:
            return None
        return cls(tuple(pii.kinds), tuple(pii.allow), tuple(pii.phone_regions))

    def _substituter(
        self, kind: str, pattern: re.Pattern[str], check: Callable[[str], bool] | None
    ) -> Callable[[str], str]:
        label = placeholder(kind)
        hits = self.hits
        allows = self.allowlist.allows
        names = [n for n in pattern.groupindex if n.startswith("v")]

        def replace(match: re.Match[str]) -> str:
            group = next((n for n in names if match.group(n) is not None), None)
            found = match.group(group or 0)
            if (check is not None and not check(found)) or allows(kind, found):
                return match.group(0)
            hits[kind] += self._weight
            if group is None:
                return label
            whole, start, end = (
                match.group(0),
                match.start(group) - match.start(),
                match.end(group) - match.start(),
            )
            return whole[:start] + label + whole[end:]

        return lambda s: pattern.sub(replace, s)

    def redact(self, text: str) -> str:
        """`text` with every enabled PII kind replaced."""
        for kind in self.kinds:
            for sub in self._subs[kind]:
                text = sub(text)
        return text

    def redact_array(self, texts: pa.Array | pa.ChunkedArray) -> pa.Array:
        """A string column with every enabled PII kind replaced (nulls stay null); the same as `redact`
        on each text.

        One RE2 pass flags the rows that may hold any enabled kind; their distinct texts (a system
        prompt, a canned answer repeat) go once through one RE2 pass per rule, which picks the texts
        for that rule's exact Python pattern and validator. Hits count every row.
        """
        arr = texts.combine_chunks() if isinstance(texts, pa.ChunkedArray) else texts
        if not self.kinds or len(arr) == 0:
            return arr
        any_kind = "|".join(f"(?:{CANDIDATE[k]})" for k in self.kinds)
        flagged = pc.fill_null(pc.match_substring_regex(arr, any_kind), False)
        if not pc.any(flagged).as_py():
            return arr
        flagged_texts = arr.filter(flagged)
        counts = pc.value_counts(flagged_texts)
        subset, weights = counts.field("values"), counts.field("counts").to_numpy()
        try:
            for kind in self.kinds:
                for (_, candidate), sub in zip(RULES[kind], self._subs[kind], strict=True):
                    mask = pc.match_substring_regex(subset, candidate)
                    rows = pc.indices_nonzero(mask).to_numpy()
                    if not len(rows):
                        continue
                    replaced = []
                    for row, text in zip(rows, subset.take(rows).to_pylist(), strict=True):
                        self._weight = int(weights[row])
                        replaced.append(sub(text))
                    subset = pc.replace_with_mask(subset, mask, pa.array(replaced, pa.string()))
        finally:
            self._weight = 1
        redacted = subset.take(pc.index_in(flagged_texts, value_set=counts.field("values")))
        return pc.replace_with_mask(arr, flagged, redacted)

    def redact_raw(self, raw: str) -> str:
        """A rejected input line, PII redacted and its shape kept for debugging: a JSON line keeps its
        structure, keys and non-text values (every string and every number's digits are redacted); any
        other line is redacted as text after `\\uXXXX` escapes are decoded (so `\\u0040` hides no `@`)."""
        try:
            redacted = self._redact_json(json.loads(raw))
            text = json.dumps(redacted, ensure_ascii=False)
        except (ValueError, RecursionError):  # not JSON, or nested too deeply to walk
            return self.redact(_ESCAPE.sub(_unescape, raw))
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate (`"\ud800"`) stays an escape
            text = json.dumps(redacted)
        return text

    def _redact_json(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, dict):
            return {self.redact(k): self._redact_json(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._redact_json(v) for v in value]
        if isinstance(value, int | float) and not isinstance(value, bool):
            text = str(value)
            redacted = self.redact(text)
            return value if redacted == text else redacted
        return value


def redact_quarantine_rows(
    rows: Iterable[dict[str, Any]], redactor: PiiRedactor | None = None
) -> list[dict[str, Any]]:
    """Quarantine rows (QUARANTINE_SCHEMA dicts) with their detail and raw line redacted (`redact_raw`)."""
    redactor = redactor or PiiRedactor()
    return [
        {**r, "detail": redactor.redact(r["detail"] or ""), "raw": redactor.redact_raw(r["raw"] or "")}
        for r in rows
    ]


def _unescape(match: re.Match[str]) -> str:
    ch = chr(int(match.group(1), 16))
    return match.group(0) if 0xD800 <= ord(ch) <= 0xDFFF else ch


def find_pii(text: str, kinds: Iterable[str] = PII_KINDS, allow: Sequence[str] = ()) -> list[tuple[str, str]]:
    """The (kind, found text) pairs in `text`, kind by kind in redaction order (each kind sees the text
    with the earlier kinds already redacted, as redaction does)."""
    redactor = PiiRedactor(tuple(kinds), allow)
    found: list[tuple[str, str]] = []
    checks = validators(tuple(redactor.phone_regions))
    for kind in redactor.kinds:
        check = checks.get(kind)
        for (pattern, _), sub in zip(RULES[kind], redactor._subs[kind], strict=True):
            names = [n for n in pattern.groupindex if n.startswith("v")]
            for m in pattern.finditer(text):
                group = next((n for n in names if m.group(n) is not None), None)
                value = m.group(group or 0)
                if (check is None or check(value)) and not redactor.allowlist.allows(kind, value):
                    found.append((kind, value))
            text = sub(text)
    return found
