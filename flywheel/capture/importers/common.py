"""What every importer shares: reading an export file's rows, the feedback a score or label means, and
landing the records (idempotently, bad rows quarantined).

An importer turns its source's rows into `Row`s: an interaction (the `CaptureWriter.log_interaction`
arguments), a feedback event (`log_feedback`'s), a row that is not a model call (skipped), or a
`RowError`. `land_rows` then checks each record as capture will (`validate_interaction` /
`validate_feedback` on the day its `ts` names), skips what is already in the landing zone (the same
interaction id on that day; the same feedback event), writes the rest with a `CaptureWriter`, and
writes the rejected rows to `quarantine/imports/<kind>/<file>-<content hash>.parquet` with file, row
and reason. Importing a file twice adds nothing: ids are made from the source's own ids.
Rows read = interactions landed + already landed + skipped + quarantined, and the same for feedback.

Feedback is filed on the day of its interaction (or the next) when the interaction is in the file and
the event came later: capture matches feedback from those two days, and an annotation made a week
later is still about that interaction.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flywheel.capture.landing import landing_files
from flywheel.capture.openai_records import chat_messages, content_text
from flywheel.capture.records import FEEDBACK, INTERACTIONS, RowError, day_of, format_ts, next_day
from flywheel.capture.sdk import CaptureWriter
from flywheel.capture.validation import RowRules, validate_feedback, validate_interaction
from flywheel.core.errors import InputError
from flywheel.core.records import QUARANTINE_SCHEMA, quarantine_table
from flywheel.core.storage import FlywheelHome, write_parquet

INTERACTION, FEEDBACK_ROW, SKIP = "interaction", "feedback", "skip"

NEGATIVE_LABELS = frozenset({"thumbs_down", "thumbsdown", "down", "bad", "no", "false", "incorrect", "wrong",
                             "negative", "fail", "failed", "unhelpful", "not_helpful", "👎"})
POSITIVE_LABELS = frozenset({"thumbs_up", "thumbsup", "up", "good", "yes", "true", "correct", "right",
                             "positive", "pass", "passed", "helpful", "👍"})


@dataclass
class Row:
    """One record an importer made from row `number` of the file (`raw`: its text, for quarantine)."""

    number: int
    raw: str
    kind: str  # interaction | feedback | skip
    record: dict[str, Any] | None = None
    error: RowError | None = None


def interaction_row(number: int, raw: Any, record: dict[str, Any]) -> Row:
    return Row(number, raw_text(raw), INTERACTION, record)


def feedback_row(number: int, raw: Any, record: dict[str, Any]) -> Row:
    return Row(number, raw_text(raw), FEEDBACK_ROW, record)


def error_row(number: int, raw: Any, error: RowError, kind: str = INTERACTION) -> Row:
    return Row(number, raw_text(raw), kind, None, error)


def as_row_error(exc: Exception) -> RowError:
    """The RowError of whatever a row provoked (`unexpected:<Type>` for the unforeseen): no row stops an import."""
    return exc if isinstance(exc, RowError) else RowError(f"unexpected:{type(exc).__name__}", str(exc)[:1000] or repr(exc))


def raw_text(raw: Any) -> str:
    return raw if isinstance(raw, str) else json.dumps(raw, ensure_ascii=False, default=str)[:100_000]


def feedback_kind(value: Any) -> str | None:
    """The feedback a score or label means: True / >= 1 / a positive word -> thumbs_up; False / <= 0 / a
    negative word -> thumbs_down; anything else (0.7, "maybe") -> None (not feedback)."""
    if isinstance(value, bool):
        return "thumbs_up" if value else "thumbs_down"
    if isinstance(value, (int, float)):
        return "thumbs_up" if value >= 1 else "thumbs_down" if value <= 0 else None
    if isinstance(value, str):
        word = value.strip().lower().replace(" ", "_").replace("-", "_")
        return "thumbs_up" if word in POSITIVE_LABELS else "thumbs_down" if word in NEGATIVE_LABELS else None
    return None


def source_id(source: str, *ids: Any) -> str:
    """A deterministic interaction id from a source's own ids (`<source>:<id>[:<id>]`)."""
    return ":".join([source, *(str(i) for i in ids)])


def output_text(output: Any) -> str:
    """The answer in a logged output: text, a message (`content`), a list of messages, an OpenAI response."""
    if isinstance(output, str):
        return output
    if isinstance(output, dict):
        if isinstance(output.get("choices"), list) and output["choices"]:
            return content_text((output["choices"][0].get("message") or {}).get("content"), "output")[0]
        if "content" in output:
            return content_text(output["content"], "output.content")[0]
    if isinstance(output, list) and output and isinstance(output[-1], dict):
        return content_text(output[-1].get("content"), "output[-1].content")[0]
    raise RowError("missing_field" if output is None else "wrong_type",
                   f"output: expected text, a message or an OpenAI response, got {type(output).__name__}")


def input_messages(value: Any) -> list[dict[str, str]]:
    """ChatML of a logged input: a list of chat messages, `{"messages": [...]}`, or a prompt string."""
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if isinstance(value, dict) and isinstance(value.get("messages"), list):
        value = value["messages"]
    return chat_messages(value, "input")[0]


# --- reading export files --------------------------------------------------------------------------
def json_rows(path: Path, list_keys: tuple[str, ...] = ("data",)) -> Iterator[tuple[int, Any]]:
    """(row number, object | RowError) of a JSON file (an array, or an object holding one under one of
    `list_keys`, else the object itself) or a JSONL file (one object a line; a bad line is its RowError)."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    try:
        whole = json.loads(text)
    except ValueError:
        whole = None
    if whole is not None or text.strip() == "null":
        if isinstance(whole, dict):
            found = next((whole[k] for k in list_keys if isinstance(whole.get(k), list)), None)
            whole = found if found is not None else [whole]
        yield from enumerate(whole if isinstance(whole, list) else [whole], start=1)
        return
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except ValueError as exc:
            yield number, RowError("invalid_json", f"not JSON: {str(exc)[:200]}")


# --- landing ---------------------------------------------------------------------------------------
@dataclass
class ImportReport:
    """What one import read, landed, found already landed, skipped and quarantined."""

    kind: str
    file: str
    rows_read: int = 0
    interactions: int = 0
    feedback: int = 0
    already_landed: int = 0
    skipped: int = 0  # not a model call, or a score that is not feedback
    quarantined: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    days: set[str] = field(default_factory=set)
    quarantine_file: str | None = None

    @property
    def conserved(self) -> bool:
        return self.rows_read == self.interactions + self.feedback + self.already_landed + self.skipped + self.quarantined

    def summary(self) -> str:
        reasons = ", ".join(f"{k} {v}" for k, v in self.reasons.most_common())
        return (f"{self.file}: {self.rows_read} rows -> {self.interactions} interactions and {self.feedback} "
                f"feedback events landed ({', '.join(sorted(self.days)) or 'no day'}), {self.already_landed} "
                f"already landed, {self.skipped} skipped, {self.quarantined} quarantined"
                + (f" ({reasons})" if reasons else ""))


class LandedIndex:
    """What the landing zone already holds, per day: interaction ids and feedback events."""

    def __init__(self, home: FlywheelHome) -> None:
        self.home = home
        self._ids: dict[str, set[str]] = {}
        self._feedback: dict[str, set[tuple[Any, ...]]] = {}

    def ids(self, day: str) -> set[str]:
        if day not in self._ids:
            self._ids[day] = {obj.get("interaction_id") for obj in self._objects(INTERACTIONS, day)}
        return self._ids[day]

    def feedback(self, day: str) -> set[tuple[Any, ...]]:
        if day not in self._feedback:
            self._feedback[day] = {feedback_key(obj) for obj in self._objects(FEEDBACK, day)}
        return self._feedback[day]

    def _objects(self, stream: str, day: str) -> Iterator[dict[str, Any]]:
        for path in landing_files(self.home, stream, day):
            with open(path, "rb") as fh:
                for line in fh:
                    try:
                        obj = json.loads(line)
                    except ValueError:
                        continue
                    if isinstance(obj, dict):
                        yield obj


def feedback_key(obj: dict[str, Any]) -> tuple[Any, ...]:
    return obj.get("interaction_id"), obj.get("kind"), obj.get("text"), obj.get("ts")


def _refile(record: dict[str, Any], interaction_ts: dict[str, str]) -> dict[str, Any]:
    """Feedback later than the day after its (imported) interaction is filed at the interaction's ts."""
    ts = interaction_ts.get(record["interaction_id"])
    if ts is None:
        return record
    if day_of(record["ts"]) not in (day_of(ts), next_day(day_of(ts))) or record["ts"] < ts:
        return {**record, "ts": ts}
    return record


def land_rows(home: FlywheelHome, kind: str, path: Path, rows: Iterable[Row], max_field_chars: int) -> ImportReport:
    """Check, deduplicate and land an importer's rows; quarantine the bad ones (see the module doc)."""
    report = ImportReport(kind=kind, file=str(path))
    index = LandedIndex(home)
    quarantine: list[dict[str, Any]] = []
    rows = list(rows)
    interaction_ts: dict[str, str] = {}
    for row in rows:
        if row.kind == INTERACTION and row.record is not None:
            try:
                row.record["ts"] = format_ts(row.record["ts"])
                interaction_ts.setdefault(row.record["interaction_id"], row.record["ts"])
            except (RowError, ValueError, TypeError, OverflowError) as exc:
                row.error = exc if isinstance(exc, RowError) else RowError("bad_timestamp", f"ts: {exc}")
    seen_ids: set[str] = set()
    seen_feedback: set[tuple[Any, ...]] = set()
    with CaptureWriter(home) as writer:
        for row in rows:
            report.rows_read += 1
            if row.kind == SKIP:
                report.skipped += 1
                continue
            try:
                if row.error is not None:
                    raise row.error
                record = dict(row.record or {})
                if row.kind == INTERACTION:
                    day = day_of(record["ts"])
                    validate_interaction(record, RowRules(day, max_field_chars))
                    iid = record["interaction_id"]
                    if iid in seen_ids or iid in index.ids(day):
                        report.already_landed += 1
                        continue
                    seen_ids.add(iid)
                    writer.log_interaction(**record)
                    report.interactions += 1
                else:
                    record = _refile({**record, "ts": format_ts(record.get("ts"))}, interaction_ts)
                    day = day_of(record["ts"])
                    validate_feedback(record, RowRules(day, max_field_chars))
                    key = feedback_key(record)
                    if key in seen_feedback or key in index.feedback(day):
                        report.already_landed += 1
                        continue
                    seen_feedback.add(key)
                    writer.log_feedback(**record)
                    report.feedback += 1
                report.days.add(day)
            except Exception as exc:  # noqa: BLE001 - whatever a row provokes quarantines that row
                reason, detail = (exc.reason, exc.detail) if isinstance(exc, RowError) else (
                    f"unexpected:{type(exc).__name__}", str(exc)[:1000])
                report.quarantined += 1
                report.reasons[reason] += 1
                quarantine.append(dict(zip(QUARANTINE_SCHEMA.names, (
                    str(path), row.number, reason, f"{path.name}:{row.number}: {detail}", row.raw), strict=True)))
    if quarantine:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
        target = home.quarantine("imports") / kind / f"{path.stem}-{digest}.parquet"
        write_parquet(quarantine_table(quarantine), target)
        report.quarantine_file = str(target)
    return report
