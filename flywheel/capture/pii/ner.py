"""Where rows become training data: every pattern kind again, plus NER for names and street addresses.

`TrainingTextScrubber` runs on each row that enters a labeling batch, a dataset version or the eval
set, and on reviewers' fixed answers: the pattern redactor of `capture.pii` (seed, synthetic,
distilled and eval files were never captured, so never redacted), then a spaCy NER pipeline
(`capture.pii.ner_models`, the first one installed) for `PERSON` entities and facilities next to a
house number ("42 Baker Street"). NER costs milliseconds per text, too slow for every captured row,
cheap for the few thousand rows a week that reach a person or a model.

Without a pipeline NER does not run, and says so: `TextScan.ner` is False and `TextScan.notice()`
is the sentence the dataset card, `flywheel status` and asset check metadata show. spaCy English
pipelines are not on PyPI; `pip install 'flywheel[ner]'` then `python -m spacy download en_core_web_sm`.
"""

from __future__ import annotations

import importlib.util
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import pyarrow as pa

from flywheel.capture.pii.redactor import PiiRedactor, placeholder
from flywheel.config import PiiConfig

_UNUSED_PIPES = ("parser", "lemmatizer", "tagger", "attribute_ruler", "senter")
_PLACES = ("FAC", "GPE", "LOC")


@dataclass
class TextScan:
    """What a scrub of training-bound text did: texts seen and changed, hits per kind, whether NER ran."""

    ner: bool
    model: str | None = None
    reason: str | None = None  # why NER did not run
    texts: int = 0
    changed: int = 0
    hits: Counter[str] = field(default_factory=Counter)

    def notice(self) -> str | None:
        """The loud sentence when NER did not run (None when it did)."""
        if self.ner:
            return None
        return (
            f"PII: NER did not run ({self.reason}): names and street addresses were checked by patterns only"
        )

    def summary(self) -> dict[str, Any]:
        """JSON-ready: for manifests, cards and asset metadata."""
        return {"ner": self.ner, "ner_model": self.model, "ner_missing_reason": self.reason, "texts": self.texts,
                "texts_changed": self.changed, "hits": dict(sorted(self.hits.items()))}  # fmt: skip


def ner_available(models: Sequence[str]) -> tuple[str | None, str | None]:
    """(the first installed spaCy pipeline of `models`, None) or (None, why none can run)."""
    if importlib.util.find_spec("spacy") is None:
        return None, f"no spaCy pipeline of {list(models)} is installed: spaCy itself is not (pip install 'flywheel[ner]')"
    import spacy.util

    for name in models:
        if spacy.util.is_package(name):
            return name, None
    return None, (f"no spaCy pipeline of {list(models)} is installed: python -m spacy download "
                  f"{models[0] if models else 'en_core_web_sm'}")  # fmt: skip


@lru_cache(maxsize=4)
def _load(name: str) -> Any:
    import spacy

    return spacy.load(name, exclude=list(_UNUSED_PIPES))  # NER only: a few times faster


class TrainingTextScrubber:
    """Patterns and NER over training-bound texts (`capture.pii`); `scan` says what it did."""

    def __init__(self, pii: PiiConfig) -> None:
        self.redactor = PiiRedactor.from_config(pii)
        self.kinds = set(pii.kinds) if pii.enabled else set()
        self.nlp = None
        model, reason = (None, "capture.pii is off") if not pii.enabled else (
            (None, "capture.pii.ner is off") if not pii.ner else ner_available(pii.ner_models))  # fmt: skip
        if model is not None and self.kinds & {"person", "address"}:
            self.nlp = _load(model)
        elif model is not None:
            model, reason = None, "neither person nor address is in capture.pii.kinds"
        self.scan = TextScan(ner=self.nlp is not None, model=model, reason=reason)

    def scrub_texts(self, texts: Sequence[str | None]) -> list[str | None]:
        """`texts` with every enabled kind replaced, NER entities included (None stays None)."""
        out: list[str | None] = list(texts)
        if self.redactor is not None and out:
            before = Counter(self.redactor.hits)
            out = self.redactor.redact_array(pa.array(out, pa.string())).to_pylist()
            self.scan.hits.update(self.redactor.hits - before)
        if self.nlp is not None:
            todo = [i for i, t in enumerate(out) if t and t.strip()]
            docs = self.nlp.pipe([out[i] for i in todo], batch_size=64)
            for i, doc in zip(todo, docs, strict=True):
                out[i] = self._redact_entities(doc)
        self.scan.texts += len(out)
        self.scan.changed += sum(a != b for a, b in zip(texts, out, strict=True))
        return out

    def _redact_entities(self, doc: Any) -> str:
        text: str = doc.text
        spans: list[tuple[int, int, str]] = []
        for ent in doc.ents:
            start, end, kind = ent.start_char, ent.end_char, None
            if ent.label_ == "PERSON" and "person" in self.kinds:
                kind = "person"
            elif ent.label_ in _PLACES and "address" in self.kinds:
                before = doc[ent.start - 1] if ent.start > 0 else None
                after = doc[ent.end] if ent.end < len(doc) else None
                if before is not None and before.like_num:  # "42 Baker Street"
                    start, kind = before.idx, "address"
                elif after is not None and after.like_num and ent.label_ == "FAC":  # "Baker Street 42"
                    end, kind = after.idx + len(after.text), "address"
            found = text[start:end]
            if (
                kind is None
                or "[" in found
                or self.redactor is not None
                and self.redactor.allowlist.allows(kind, found)
            ):
                continue
            spans.append((start, end, kind))
        for start, end, kind in sorted(spans, reverse=True):
            text = text[:start] + placeholder(kind) + text[end:]
            self.scan.hits[kind] += 1
        return text

    def scrub_messages(
        self, conversations: Sequence[Sequence[dict[str, Any]] | None]
    ) -> list[list[dict[str, Any]] | None]:
        """ChatML conversations with every message's content scrubbed (one NER batch for all)."""
        contents = [m.get("content") for conv in conversations for m in (conv or [])]
        scrubbed = iter(self.scrub_texts(contents))
        return [
            None if conv is None else [{**m, "content": next(scrubbed)} for m in conv]
            for conv in conversations
        ]

    def scrub_rows(self, rows: Sequence[dict[str, Any]], message_keys: Sequence[str] = ("messages",),
                   text_keys: Sequence[str] = ()) -> None:  # fmt: skip
        """Scrub rows in place: their ChatML `message_keys` and plain `text_keys` columns."""
        for key in message_keys:
            for row, conv in zip(rows, self.scrub_messages([r.get(key) for r in rows]), strict=True):
                if conv is not None:
                    row[key] = conv
        for key in text_keys:
            for row, text in zip(rows, self.scrub_texts([r.get(key) for r in rows]), strict=True):
                row[key] = text
