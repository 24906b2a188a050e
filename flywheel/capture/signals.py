"""Signals: one label per interaction from what the user did next.

Priority, strongest first (`capture.signal_weights` gives each its weight):
- `correction`: a `correction` feedback event; the latest corrected text (PII-redacted) is kept;
- `negative`: `thumbs_down`, an explicit `resubmit` event, or a resubmission: the same session sends
  a similar message (rapidfuzz ratio >= `capture.resubmit_similarity`) within
  `capture.resubmit_window_s` seconds after it;
- `positive`: `copy` or `thumbs_up`;
- `none`.

A day's interactions are matched against feedback from that day's and the next day's folder (late
feedback) and against the next day's first `resubmit_window_s` of interactions, read from the next
day's landing files (so resubmissions across midnight are found, and a day's signals depend only
on the landing files of that day and the next, never on which partition ran first). Every row of
the day's own feedback folder is accounted for: matched (to this day or the previous day), or
quarantined (invalid, or `unknown_interaction`); see `compute_signals`.
DuckDB does the session/time-window join and the aggregation; rapidfuzz scores the candidate pairs.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from rapidfuzz import fuzz
from rapidfuzz.process import cpdist

from flywheel.capture.landing import iter_landing_lines, landing_files, lines_at
from flywheel.capture.pii import PiiRedactor
from flywheel.capture.records import FEEDBACK, INTERACTIONS, day_start_us, next_day, previous_day
from flywheel.capture.tables import QuarantineSink, convert_each
from flywheel.capture.validation import (
    RowRules,
    checked_row,
    cyclic_gc_paused,
    decode_object,
    quarantine_row,
    rejected_row,
    row_rules,
    validate_feedback,
)
from flywheel.config import CaptureConfig
from flywheel.core.storage import FlywheelHome, atomic_path, duckdb_connection, read_table

SIGNALS = "interaction_signals"
SIGNAL_KINDS: tuple[str, ...] = ("correction", "negative", "positive", "none")

SIGNALS_SCHEMA = pa.schema(
    [
        ("interaction_id", pa.string()),
        ("ts", pa.timestamp("us", tz="UTC")),
        ("session_id", pa.string()),
        ("signal", pa.string()),
        ("weight", pa.float64()),
        ("correction_text", pa.string()),
        ("evidence", pa.string()),
    ]
)
FEEDBACK_SCHEMA = pa.schema(
    [
        ("interaction_id", pa.string()),
        ("ts", pa.timestamp("us", tz="UTC")),
        ("kind", pa.string()),
        ("text", pa.string()),
    ]
)
WINDOW_SCHEMA = pa.schema(
    [
        ("interaction_id", pa.string()),
        ("ts", pa.timestamp("us", tz="UTC")),
        ("session_id", pa.string()),
        ("input_text", pa.string()),
    ]
)


_FEEDBACK_ROWS = FEEDBACK_SCHEMA.append(pa.field("_file", pa.int32())).append(pa.field("_line", pa.int64()))
"""Feedback rows as read: FEEDBACK_SCHEMA and where each row is (file number, line)."""


@dataclass
class SignalsReport:
    """Counts of one day's signal computation. Feedback of the day's own folder is accounted for:
    `feedback_read == feedback_matched + feedback_quarantined` (`conserved`)."""

    day: str
    interactions: int = 0
    signals: Counter[str] = field(default_factory=Counter)
    feedback_read: int = 0  # rows in the day's own feedback folder
    feedback_matched: int = 0  # own-folder rows for an interaction of this day or of the previous day
    feedback_previous_day: int = 0  # of those, the previous day's (its run reads them as late feedback)
    feedback_quarantined: int = 0  # own-folder rows: invalid, or for an unknown interaction
    feedback_reasons: Counter[str] = field(default_factory=Counter)
    feedback_late: int = 0  # rows of the next day's folder for an interaction of this day
    candidate_pairs: int = 0
    resubmissions: int = 0
    resubmissions_across_midnight: int = 0

    @property
    def conserved(self) -> bool:
        return self.feedback_read == self.feedback_matched + self.feedback_quarantined


def read_feedback(
    files: list[Path], rules: RowRules, redactor: PiiRedactor | None, quarantine: QuarantineSink | None
) -> tuple[pa.Table, int]:
    """Valid feedback rows of `files` (texts redacted; `_FEEDBACK_ROWS`) and the number of rows read.
    A row that raises anything on its way in goes to `quarantine` when one is given (else it is
    skipped: the run of its own day quarantines it)."""
    rows: list[tuple[str, int, str, str | None, int, int]] = []
    counts: Counter[str] = Counter()
    read = 0
    for item in iter_landing_lines(files, counts):
        read += 1
        try:
            iid, ts_us, kind, text = validate_feedback(decode_object(item.raw), rules)
        except Exception as exc:  # noqa: BLE001 - whatever a row provokes quarantines that row
            if quarantine is not None:
                quarantine.add(*rejected_row(item, exc))
            continue
        rows.append((iid, ts_us, kind, text, item.file_index, item.line))
    parts, failed = convert_each(
        lambda: _feedback_table(rows, redactor), lambda i: _feedback_table(rows[i : i + 1], redactor),
        len(rows), redactor,
    )  # fmt: skip
    if failed and quarantine is not None:
        errors = {(rows[i][4], rows[i][5]): exc for i, exc in failed}
        for item in lines_at(files, set(errors)):
            quarantine.add(*rejected_row(item, errors[item.file_index, item.line]))
    return (pa.concat_tables(parts) if parts else _feedback_table([], None)), read


def _feedback_table(
    rows: list[tuple[str, int, str, str | None, int, int]], redactor: PiiRedactor | None
) -> pa.Table:
    ids, ts, kinds, texts, files, lines = zip(*rows, strict=True) if rows else ([], [], [], [], [], [])
    text_arr = pa.array(texts, pa.string())
    if redactor is not None:
        text_arr = redactor.redact_array(text_arr)
    ts_arr = pa.array(ts, pa.timestamp("us", tz="UTC"))
    arrays = [pa.array(ids, pa.string()), ts_arr, pa.array(kinds, pa.string()), text_arr,
              pa.array(files, pa.int32()), pa.array(lines, pa.int64())]  # fmt: skip
    return pa.Table.from_arrays(arrays, schema=_FEEDBACK_ROWS)


def interaction_ids(home: FlywheelHome, day: str, config: CaptureConfig) -> pa.Table:
    """The ids (one column, `interaction_id`) of `day`'s valid interactions: its warehouse table's, or,
    before that day is ingested, those of its landing rows that ingestion would accept."""
    path = home.warehouse(INTERACTIONS, day)
    if path.exists():
        return read_table(path, columns=["interaction_id"])
    rules = row_rules(day, config)  # the ids as ingestion stores them (pseudonymised)
    ids = set()
    for item in iter_landing_lines(landing_files(home, INTERACTIONS, day), Counter()):
        try:
            ids.add(checked_row(item, rules)[0])
        except Exception:  # noqa: BLE001, S112 - a rejected row has no interaction
            continue
    return pa.table({"interaction_id": pa.array(sorted(ids), pa.string())})


def first_window_interactions(
    home: FlywheelHome, day: str, window_s: int, config: CaptureConfig, redactor: PiiRedactor | None
) -> pa.Table:
    """Valid interactions of `day`'s landing files in its first `window_s` seconds (input redacted).
    Rows that ingestion of `day` quarantines are skipped (the same rules, whatever they raise)."""
    rules = row_rules(day, config)  # the ids as ingestion stores them (pseudonymised)
    end_us = rules.start_us + window_s * 1_000_000
    rows: list[tuple[str, int, str, str]] = []
    seen: set[str] = set()
    counts: Counter[str] = Counter()
    for item in iter_landing_lines(landing_files(home, INTERACTIONS, day), counts):
        try:
            row = checked_row(item, rules)
        except Exception:  # noqa: BLE001, S112 - quarantined by that day's own run
            continue
        iid, ts_us = row[0], row[1]
        if iid in seen:
            continue
        seen.add(iid)
        if ts_us < end_us:
            rows.append((iid, ts_us, row[2], row[6][row[7]]))
    parts, _ = convert_each(
        lambda: _window_table(rows, redactor), lambda i: _window_table(rows[i : i + 1], redactor),
        len(rows), redactor,
    )  # fmt: skip
    return pa.concat_tables(parts) if parts else _window_table([], None)


def _window_table(rows: list[tuple[str, int, str, str]], redactor: PiiRedactor | None) -> pa.Table:
    ids, ts, sessions, texts = zip(*rows, strict=True) if rows else ([], [], [], [])
    text_arr = pa.array(texts, pa.string())
    if redactor is not None:
        text_arr = redactor.redact_array(text_arr)
    arrays = [pa.array(ids, pa.string()), pa.array(ts, WINDOW_SCHEMA.field("ts").type),
              pa.array(sessions, pa.string()), text_arr]  # fmt: skip
    return pa.Table.from_arrays(arrays, schema=WINDOW_SCHEMA)


def _find_resubmissions(
    con: duckdb.DuckDBPyConnection,
    window_s: int,
    similarity: float,
    report: SignalsReport,
    next_start_us: int,
) -> pa.Table:
    """(interaction_id, resubmitted_by) for every interaction followed in its session, within the
    window, by a similar message; the earliest such message is named."""
    pairs = con.sql(
        f"""
        SELECT a.interaction_id AS a_id, b.interaction_id AS b_id, epoch_us(b.ts) AS b_us,
               a.input_text AS a_text, b.input_text AS b_text
        FROM cur a JOIN later b
          ON a.session_id = b.session_id
         AND b.ts > a.ts AND b.ts <= a.ts + INTERVAL {int(window_s)} SECOND
         AND a.interaction_id <> b.interaction_id
        """
    ).to_arrow_reader(200_000)
    cutoff = similarity * 100.0
    hits_a: list[str] = []
    hits_b: list[str] = []
    hits_us: list[int] = []
    for batch in pairs:
        report.candidate_pairs += batch.num_rows
        a_text = batch.column("a_text").to_pylist()
        b_text = batch.column("b_text").to_pylist()
        scores = cpdist(a_text, b_text, scorer=fuzz.ratio, score_cutoff=cutoff, workers=1)
        keep = np.flatnonzero(scores >= cutoff) if cutoff > 0 else np.arange(batch.num_rows)
        if len(keep):
            taken = batch.take(pa.array(keep))
            hits_a += taken.column("a_id").to_pylist()
            hits_b += taken.column("b_id").to_pylist()
            hits_us += taken.column("b_us").to_pylist()
    table = pa.table(
        {
            "a_id": pa.array(hits_a, pa.string()),
            "b_id": pa.array(hits_b, pa.string()),
            "b_us": pa.array(hits_us, pa.int64()),
        }
    )
    con.register("resubmit_pairs", table)
    resubmits = con.sql(
        "SELECT a_id AS interaction_id, arg_min(b_id, b_us) AS resubmitted_by, min(b_us) AS b_us "
        "FROM resubmit_pairs GROUP BY a_id"
    ).to_arrow_table()
    report.resubmissions = resubmits.num_rows
    report.resubmissions_across_midnight = sum(
        1 for us in resubmits.column("b_us").to_pylist() if us >= next_start_us
    )
    return resubmits


def compute_signals(
    home: FlywheelHome, day: str, config: CaptureConfig, *, threads: int | None = None
) -> SignalsReport:
    """One signal row per interaction of `day` -> `warehouse/interaction_signals/<day>.parquet`.

    Reads `warehouse/interactions/<day>.parquet`, the day's and next day's feedback folders and the
    next day's first window of landing interactions. Every row of the day's own feedback folder is
    accounted for (`SignalsReport.conserved`): it is matched to an interaction of the day, or of the
    previous day (whose run reads this folder as late feedback), or it goes to
    `quarantine/interaction_signals/<day>.parquet`: invalid (its reason), or `unknown_interaction`
    (in neither day's interactions: an interaction quarantined or never logged, or logged after its
    feedback on the next day by a skewed clock). The previous day's ids come from its warehouse
    table, or from its landing rows that ingestion would accept when it is not ingested yet.
    """
    with cyclic_gc_paused():
        return _compute_signals(home, day, config, threads)


def _compute_signals(
    home: FlywheelHome, day: str, config: CaptureConfig, threads: int | None
) -> SignalsReport:
    report = SignalsReport(day=day)
    redactor = PiiRedactor.from_config(config.pii)
    following = next_day(day)
    source = home.warehouse(INTERACTIONS, day)
    if not source.exists():
        raise FileNotFoundError(
            f"{source}: no interactions for {day}; materialize `interactions` for that partition first"
        )
    weights = config.signal_weights
    with (
        atomic_path(home.warehouse(SIGNALS, day)) as out_tmp,
        atomic_path(home.quarantine(SIGNALS, day)) as q_tmp,
    ):
        quarantine = QuarantineSink(q_tmp)
        own_files = landing_files(home, FEEDBACK, day)
        own, report.feedback_read = read_feedback(
            own_files, RowRules(day, config.max_field_chars), redactor, quarantine
        )
        late, _ = read_feedback(
            landing_files(home, FEEDBACK, following),
            RowRules(following, config.max_field_chars),
            redactor,
            None,
        )
        window = first_window_interactions(home, following, config.resubmit_window_s, config, redactor)

        con = duckdb_connection(threads, home=home)
        try:
            con.execute("SET TimeZone = 'UTC'")
            columns = ["interaction_id", "ts", "session_id", "input_text"]
            if home.remote:  # the view is read several times: one GET of its four columns, not a range read each time
                con.register("cur_columns", read_table(source, columns=columns))
                con.execute(f"CREATE TEMP VIEW cur AS SELECT {', '.join(columns)} FROM cur_columns")
            else:
                con.execute(f"CREATE TEMP VIEW cur AS SELECT {', '.join(columns)} FROM read_parquet('{_sql_path(source)}')")
            con.register("next_window", window)
            con.execute("CREATE TEMP VIEW later AS SELECT * FROM cur UNION ALL SELECT * FROM next_window")
            con.register("feedback", pa.concat_tables([own, late]))
            _account_for_feedback(con, own, late, own_files, interaction_ids(home, previous_day(day), config),
                                  quarantine, report)  # fmt: skip
            resubmits = _find_resubmissions(
                con, config.resubmit_window_s, config.resubmit_similarity, report, day_start_us(following)
            )
            con.register("resubmits", resubmits)
            con.execute(
                """
                CREATE TEMP TABLE fb AS
                SELECT f.interaction_id,
                       arg_max(f.text, f.ts) FILTER (WHERE f.kind = 'correction') AS correction_text,
                       bool_or(f.kind = 'thumbs_down') AS thumbs_down,
                       bool_or(f.kind = 'resubmit') AS resubmit,
                       bool_or(f.kind = 'copy') AS copy,
                       bool_or(f.kind = 'thumbs_up') AS thumbs_up
                FROM feedback f SEMI JOIN cur c ON f.interaction_id = c.interaction_id
                GROUP BY f.interaction_id
                """
            )
            con.execute(
                """
                CREATE TEMP VIEW labelled AS
                SELECT c.interaction_id, c.ts, c.session_id,
                       CASE WHEN fb.correction_text IS NOT NULL THEN 'correction'
                            WHEN fb.thumbs_down OR fb.resubmit OR r.resubmitted_by IS NOT NULL THEN 'negative'
                            WHEN fb.copy OR fb.thumbs_up THEN 'positive'
                            ELSE 'none' END AS signal,
                       fb.correction_text,
                       fb.thumbs_down, fb.resubmit, r.resubmitted_by, fb.copy, fb.thumbs_up
                FROM cur c
                LEFT JOIN fb USING (interaction_id)
                LEFT JOIN resubmits r USING (interaction_id)
                """
            )
            result = con.sql(
                f"""
                SELECT interaction_id, ts, session_id, signal,
                       CASE signal WHEN 'correction' THEN {float(weights.correction)!r}
                                   WHEN 'negative' THEN {float(weights.negative)!r}
                                   WHEN 'positive' THEN {float(weights.positive)!r}
                                   ELSE {float(weights.none)!r} END::DOUBLE AS weight,
                       CASE WHEN signal = 'correction' THEN correction_text END AS correction_text,
                       CASE signal
                         WHEN 'correction' THEN 'correction'
                         WHEN 'negative' THEN concat_ws(',',
                             CASE WHEN thumbs_down THEN 'thumbs_down' END,
                             CASE WHEN resubmit THEN 'resubmit' END,
                             CASE WHEN resubmitted_by IS NOT NULL THEN 'resubmit:' || resubmitted_by END)
                         WHEN 'positive' THEN concat_ws(',',
                             CASE WHEN copy THEN 'copy' END,
                             CASE WHEN thumbs_up THEN 'thumbs_up' END)
                         ELSE '' END AS evidence
                FROM labelled
                ORDER BY ts, interaction_id
                """
            )
            with pq.ParquetWriter(out_tmp, SIGNALS_SCHEMA, compression="zstd") as writer:
                for batch in result.to_arrow_reader(200_000):
                    writer.write_batch(batch.cast(SIGNALS_SCHEMA))
            for signal, n in con.execute("SELECT signal, count(*) FROM labelled GROUP BY signal").fetchall():
                report.signals[signal] = n
            report.interactions = sum(report.signals.values())
        finally:
            con.close()
    return report


def _account_for_feedback(
    con: duckdb.DuckDBPyConnection, own: pa.Table, late: pa.Table, own_files: list[Path],
    previous_ids: pa.Table, quarantine: QuarantineSink, report: SignalsReport,
) -> None:  # fmt: skip
    """Counts the own folder's rows matched to this day or the previous day and the next folder's rows
    for this day; quarantines the own rows for neither day as `unknown_interaction`, then closes the
    quarantine."""
    con.register("own", own)
    con.register("late", late)
    con.register("previous_ids", previous_ids)
    unknown = con.execute(
        "SELECT _file, _line, interaction_id FROM own ANTI JOIN cur USING (interaction_id) "
        "ANTI JOIN previous_ids USING (interaction_id) ORDER BY _file, _line"
    ).fetchall()
    report.feedback_previous_day = con.execute(
        "SELECT count(*) FROM own ANTI JOIN cur USING (interaction_id) "
        "SEMI JOIN previous_ids USING (interaction_id)"
    ).fetchall()[0][0]
    report.feedback_late = con.execute(
        "SELECT count(*) FROM late SEMI JOIN cur USING (interaction_id)"
    ).fetchall()[0][0]
    if unknown:
        ids = {(f, line): iid for f, line, iid in unknown}
        for item in lines_at(own_files, set(ids)):
            iid = ids[item.file_index, item.line]
            detail = (
                f"interaction_id {iid!r} is in neither {report.day}'s "
                f"nor {previous_day(report.day)}'s interactions"
            )
            quarantine.add(*quarantine_row(item, "unknown_interaction", detail))
    quarantine.close()
    report.feedback_reasons = quarantine.reasons
    report.feedback_quarantined = sum(quarantine.reasons.values())
    report.feedback_matched = own.num_rows - len(unknown)


def _sql_path(path: Path) -> str:
    return str(path).replace("'", "''")
