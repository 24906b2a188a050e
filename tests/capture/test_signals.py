"""Signals: priority, resubmissions in a session window (also across midnight), late feedback, idempotent days."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import dagster as dg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from assets.capture import interaction_signals, interactions
from assets.resources import FlywheelResource
from flywheel.capture.ingestion import ingest_interactions
from flywheel.capture.records import FEEDBACK, INTERACTIONS, next_day
from flywheel.capture.sdk import CaptureWriter
from flywheel.capture.signals import SIGNALS, SIGNALS_SCHEMA, compute_signals
from flywheel.config import CaptureConfig
from flywheel.core.storage import FlywheelHome, read_parquet
from tests.capture.traffic import (
    FEEDBACK_FIELDS,
    INTERACTION_FIELDS,
    bad_lines,
    hostile_feedback_lines,
    hostile_line,
    interaction_record,
    non_blank_count,
)

DAY, NEXT = "2026-01-05", "2026-01-06"


def _ask(w: CaptureWriter, text: str, ts: str, session: str = "s1") -> str:
    return w.log_interaction([{"role": "user", "content": text}], "answer", session_id=session, user_id="u",
                             model_version="m1", latency_ms=5.0, ts=ts)  # fmt: skip


def _signals(home: FlywheelHome, day: str = DAY, config: CaptureConfig | None = None) -> dict[str, dict]:
    config = config or CaptureConfig()
    ingest_interactions(home, day, config)
    compute_signals(home, day, config)
    table = read_parquet(home.warehouse(SIGNALS, day))
    assert table.schema == SIGNALS_SCHEMA
    return {row["interaction_id"]: row for row in table.to_pylist()}


def test_feedback_priority_weights_and_redacted_correction(home: FlywheelHome) -> None:
    with CaptureWriter(home) as w:
        ids = [
            _ask(w, f"distinct question number {i}", f"{DAY}T08:{i:02d}:00Z", session=f"s{i}")
            for i in range(6)
        ]
        w.log_feedback(ids[0], "thumbs_down", ts=f"{DAY}T09:00:00Z")
        w.log_feedback(ids[0], "correction", text="write to me at al@ex.com", ts=f"{DAY}T09:00:01Z")
        w.log_feedback(ids[0], "correction", text="the final fix", ts=f"{DAY}T09:00:02Z")
        w.log_feedback(ids[1], "thumbs_up", ts=f"{DAY}T09:00:00Z")
        w.log_feedback(ids[1], "thumbs_down", ts=f"{DAY}T09:00:01Z")
        w.log_feedback(ids[2], "copy", ts=f"{DAY}T09:00:00Z")
        w.log_feedback(ids[3], "resubmit", ts=f"{DAY}T09:00:00Z")
        w.log_feedback(ids[4], "thumbs_up", ts=f"{NEXT}T01:00:00Z")  # late: in the next day's folder
        w.log_feedback("unknown-id", "copy", ts=f"{DAY}T09:00:00Z")
    got = _signals(home)
    weights = CaptureConfig().signal_weights
    assert [got[i]["signal"] for i in ids] == [
        "correction",
        "negative",
        "positive",
        "negative",
        "positive",
        "none",
    ]
    assert [got[i]["weight"] for i in ids] == [weights.correction, weights.negative, weights.positive,
                                               weights.negative, weights.positive, weights.none]  # fmt: skip
    assert got[ids[0]]["correction_text"] == "the final fix"
    assert [got[i]["evidence"] for i in ids[1:]] == ["thumbs_down", "copy", "resubmit", "thumbs_up", ""]
    assert got[ids[1]]["correction_text"] is None


def test_correction_text_is_redacted(home: FlywheelHome) -> None:
    with CaptureWriter(home) as w:
        iid = _ask(w, "q", f"{DAY}T08:00:00Z")
        w.log_feedback(iid, "correction", text="reach me at al@ex.com", ts=f"{DAY}T08:01:00Z")
    assert _signals(home)[iid]["correction_text"] == "reach me at [EMAIL]"


def test_resubmission_window_similarity_and_session(home: FlywheelHome) -> None:
    with CaptureWriter(home) as w:
        a = _ask(w, "how do I reset my password?", f"{DAY}T10:00:00Z")
        b = _ask(w, "how do i reset my password??", f"{DAY}T10:01:00Z")  # similar, 60 s later: a resubmitted
        c = _ask(
            w, "what is the weather in Paris", f"{DAY}T10:01:30Z"
        )  # different topic: not a resubmission of b
        d = _ask(w, "how do I cancel my order", f"{DAY}T11:00:00Z")
        _ask(w, "how do I cancel my order!", f"{DAY}T11:05:00Z")  # similar but 300 s later
        e = _ask(w, "change my shipping address", f"{DAY}T12:00:00Z", session="s1")
        _ask(w, "change my shipping address", f"{DAY}T12:00:10Z", session="other")  # other session
    got = _signals(home)
    assert got[a]["signal"] == "negative" and got[a]["evidence"] == f"resubmit:{b}"
    assert [got[x]["signal"] for x in (b, c, d, e)] == ["none"] * 4
    wider = _signals(home, config=CaptureConfig(resubmit_window_s=600))
    assert wider[d]["signal"] == "negative"
    strict = _signals(home, config=CaptureConfig(resubmit_similarity=1.0))
    assert strict[a]["signal"] == "none"


def test_resubmission_across_midnight_and_late_feedback(home: FlywheelHome) -> None:
    with CaptureWriter(home) as w:
        a = _ask(w, "translate 'good night' to French", f"{DAY}T23:59:30Z")
        b = _ask(w, "translate 'good night' into French", f"{NEXT}T00:00:40Z")
        c = _ask(w, "summarise this article", f"{DAY}T23:58:00Z", session="s2")
        w.log_feedback(c, "correction", text="A better summary.", ts=f"{NEXT}T00:03:00Z")
    ingest_interactions(home, NEXT, CaptureConfig())  # the next day's warehouse is not needed, but may exist
    got = _signals(home)
    assert got[a]["signal"] == "negative" and got[a]["evidence"] == f"resubmit:{b}"
    assert got[c]["signal"] == "correction"
    assert _signals(home, NEXT)[b]["signal"] == "none"


def test_bad_feedback_is_quarantined_for_its_own_day(home: FlywheelHome) -> None:
    with CaptureWriter(home) as w:
        iid = _ask(w, "q", f"{DAY}T08:00:00Z")
        w.log_feedback(iid, "copy", ts=f"{DAY}T08:00:05Z")
    folder = home.landing(FEEDBACK, DAY)
    bad = [{"interaction_id": iid, "ts": f"{DAY}T08:00:06Z", "kind": "love"},
           {"interaction_id": iid, "ts": f"{DAY}T08:00:07Z", "kind": "correction"},
           {"ts": f"{DAY}T08:00:08Z", "kind": "copy"}]  # fmt: skip
    (folder / "bad.jsonl").write_text("\n".join(json.dumps(b) for b in bad) + "\nnot json\n")
    ingest_interactions(home, DAY, CaptureConfig())
    report = compute_signals(home, DAY, CaptureConfig())
    assert report.feedback_read == 5 and report.feedback_quarantined == 4
    assert report.feedback_reasons == {"bad_kind": 1, "missing_field": 1, "missing_id": 1, "invalid_json": 1}
    assert read_parquet(home.quarantine(SIGNALS, DAY)).num_rows == 4


def test_signals_need_the_interactions_partition(home: FlywheelHome) -> None:
    with pytest.raises(FileNotFoundError, match="materialize `interactions`"):
        compute_signals(home, DAY, CaptureConfig())


def _traffic(home: FlywheelHome) -> None:
    with CaptureWriter(home) as w:
        for day in ("2026-01-04", DAY, NEXT):
            for s in range(3):
                first = _ask(
                    w, f"question {s} about {day}", f"{day}T23:59:{10 * s:02d}Z", session=f"{day}-{s}"
                )
                _ask(
                    w,
                    f"question {s} about {day}!",
                    f"{next_of(day)}T00:00:{10 * s + 30:02d}Z",
                    session=f"{day}-{s}",
                )
                w.log_feedback(first, "thumbs_up", ts=f"{next_of(day)}T00:05:00Z")


def next_of(day: str) -> str:
    return next_day(day)


def test_backfill_in_any_order_equals_one_by_one_runs(tmp_path: Path, project_dir: Path) -> None:
    days = ["2026-01-04", DAY, NEXT]
    traffic = FlywheelHome(tmp_path / "traffic")
    _traffic(traffic)
    outputs = []
    for order in (days, list(reversed(days))):
        home = FlywheelHome(tmp_path / f"home-{order[0]}")
        shutil.copytree(traffic.landing(INTERACTIONS).parent, home.path("landing"))
        resources = {"flywheel": FlywheelResource(project_dir=str(project_dir), home_dir=str(home.root))}
        for day in order:
            assert dg.materialize(
                [interactions, interaction_signals], partition_key=day, resources=resources
            ).success
        # re-running a day replaces its output
        assert dg.materialize(
            [interactions, interaction_signals], partition_key=DAY, resources=resources
        ).success
        outputs.append({d: read_parquet(home.warehouse(SIGNALS, d)).to_pylist() for d in days})
    assert outputs[0] == outputs[1]
    # sorted by ts: the 2026-01-04 sessions' resubmissions after midnight, then the day's own sessions
    assert [r["signal"] for r in outputs[0][DAY]] == ["none"] * 3 + ["negative"] * 3
    assert all(r["evidence"].startswith("resubmit:") for r in outputs[0][DAY][3:])


# --- every feedback row accounted for; no row can stop a run ---------------------------------------
def test_feedback_for_an_unknown_interaction_is_counted_and_quarantined(home: FlywheelHome) -> None:
    """read 4 = matched 2 + quarantined 2 (one invalid, one for an interaction no day has)."""
    with CaptureWriter(home) as w:
        iid = _ask(w, "q", f"{DAY}T08:00:00Z")
        w.log_feedback(iid, "copy", ts=f"{DAY}T08:00:05Z")
        w.log_feedback(iid, "thumbs_up", ts=f"{DAY}T08:00:06Z")
        w.log_feedback("nobody-logged-me", "thumbs_down", ts=f"{DAY}T08:00:07Z")
    (home.landing(FEEDBACK, DAY) / "bad.jsonl").write_text("not json\n")
    ingest_interactions(home, DAY, CaptureConfig())
    report = compute_signals(home, DAY, CaptureConfig())
    assert (report.feedback_read, report.feedback_matched, report.feedback_quarantined) == (4, 2, 2)
    assert report.feedback_reasons == {"invalid_json": 1, "unknown_interaction": 1} and report.conserved
    q = {r["reason"]: r for r in read_parquet(home.quarantine(SIGNALS, DAY)).to_pylist()}
    assert (
        "'nobody-logged-me' is in neither 2026-01-05's nor 2026-01-04's" in q["unknown_interaction"]["detail"]
    )
    assert json.loads(q["unknown_interaction"]["raw"])["kind"] == "thumbs_down"


@pytest.mark.parametrize("previous_day_ingested", [True, False])
def test_feedback_for_the_previous_day_is_matched_not_quarantined(
    home: FlywheelHome, previous_day_ingested: bool
) -> None:
    """Feedback landing after midnight for the day before is that day's late feedback (its signal),
    and counted as matched by the day whose folder holds it, whichever day ran first."""
    with CaptureWriter(home) as w:
        a = _ask(w, "late question", f"{DAY}T23:59:00Z")
        b = _ask(w, "next question", f"{NEXT}T08:00:00Z")
        w.log_feedback(a, "correction", text="better", ts=f"{NEXT}T00:01:00Z")
        w.log_feedback(b, "copy", ts=f"{NEXT}T08:01:00Z")
        w.log_feedback("unknown", "copy", ts=f"{NEXT}T08:02:00Z")
    if previous_day_ingested:
        ingest_interactions(home, DAY, CaptureConfig())
    ingest_interactions(home, NEXT, CaptureConfig())
    report = compute_signals(home, NEXT, CaptureConfig())
    assert (report.feedback_read, report.feedback_matched, report.feedback_previous_day) == (3, 2, 1)
    assert report.feedback_reasons == {"unknown_interaction": 1} and report.conserved
    assert _signals(home)[a]["signal"] == "correction"


def _write_lines(folder: Path, lines: list[bytes]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "hostile.jsonl").write_bytes(b"\n".join(lines) + b"\n")


def test_hostile_feedback_is_quarantined_with_its_reason(home: FlywheelHome) -> None:
    with CaptureWriter(home) as w:
        iid = _ask(w, "q", f"{DAY}T08:00:00Z")
        w.log_feedback(iid, "copy", ts=f"{DAY}T08:00:05Z")
    cases = hostile_feedback_lines(iid)
    _write_lines(home.landing(FEEDBACK, DAY), [line for line, _ in cases])
    _write_lines(home.landing(FEEDBACK, NEXT), [line for line, _ in cases])  # late: skipped, not fatal
    _write_lines(home.landing(INTERACTIONS, NEXT), [line for line, _ in bad_lines()])  # the next window
    ingest_interactions(home, DAY, CaptureConfig())
    report = compute_signals(home, DAY, CaptureConfig())
    assert report.feedback_read == len(cases) + 1 and report.feedback_matched == 1 and report.conserved
    got = [(r["line"], r["reason"]) for r in read_parquet(home.quarantine(SIGNALS, DAY)).to_pylist()]
    assert got == [(i + 1, reason) for i, (_, reason) in enumerate(cases)]


_GOOD_FEEDBACK = {"interaction_id": "good-0", "ts": f"{DAY}T12:00:00Z", "kind": "correction", "text": "fixed"}
_GOOD_NEXT = interaction_record(interaction_id="next", ts=f"{NEXT}T00:00:10Z")


@settings(max_examples=25, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])  # fmt: skip
@given(
    feedback=st.lists(hostile_line(_GOOD_FEEDBACK, FEEDBACK_FIELDS), max_size=10),
    late=st.lists(hostile_line({**_GOOD_FEEDBACK, "ts": f"{NEXT}T00:10:00Z"}, FEEDBACK_FIELDS), max_size=6),
    window=st.lists(hostile_line(_GOOD_NEXT, INTERACTION_FIELDS), max_size=6),
    interactions=st.lists(hostile_line(interaction_record(), INTERACTION_FIELDS), max_size=6),
)
def test_hostile_rows_never_stop_signals(
    feedback: list[bytes], late: list[bytes], window: list[bytes], interactions: list[bytes]
) -> None:
    """Generated hostile lines in the day's and next day's feedback and interactions: the signals run
    succeeds, feedback read = matched + quarantined, and good feedback gives its signal."""
    with tempfile.TemporaryDirectory() as tmp:
        home = FlywheelHome(Path(tmp))
        good = [interaction_record(interaction_id=f"good-{i}", ts=f"{DAY}T10:00:0{i}Z") for i in range(3)]
        _write_lines(home.landing(INTERACTIONS, DAY), [json.dumps(g).encode() for g in good] + interactions)
        fb = [
            json.dumps({**_GOOD_FEEDBACK, "interaction_id": f"good-{i}", "kind": "copy"}).encode()
            for i in (1, 2)
        ]
        _write_lines(home.landing(FEEDBACK, DAY), fb + feedback)
        _write_lines(home.landing(FEEDBACK, NEXT), late)
        _write_lines(home.landing(INTERACTIONS, NEXT), window)
        ingest_interactions(home, DAY, CaptureConfig())
        report = compute_signals(home, DAY, CaptureConfig())
        data = (home.landing(FEEDBACK, DAY) / "hostile.jsonl").read_bytes()
        assert report.feedback_read == non_blank_count(data) and report.conserved
        assert read_parquet(home.quarantine(SIGNALS, DAY)).num_rows == report.feedback_quarantined
        signals = {
            r["interaction_id"]: r["signal"] for r in read_parquet(home.warehouse(SIGNALS, DAY)).to_pylist()
        }
        assert signals["good-1"] != "none" and signals["good-2"] != "none"
