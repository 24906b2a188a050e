"""The capture assets and their checks in Dagster."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest

import assets.capture as capture_assets
from assets.capture import (
    interaction_signals,
    interactions,
    interactions_quarantine_rate,
    interactions_rows_conserved,
)
from assets.resources import FlywheelResource
from flywheel.capture.ingestion import ingest_interactions
from flywheel.capture.records import FEEDBACK, INTERACTIONS
from flywheel.capture.sdk import CaptureWriter
from flywheel.core.storage import FlywheelHome, read_parquet
from tests.capture.traffic import (
    DAY,
    NEXT,
    bad_lines,
    hostile_feedback_lines,
    interaction_record,
    log_question,
)


def test_capture_assets_and_checks_on_real_chatml_rows(
    home: FlywheelHome, flywheel_resource: FlywheelResource, shared_datasets: Path
) -> None:
    """The OpenAI cookbook's toy ChatML file as traffic: one conversation has no user turn."""
    rows = [
        json.loads(line)
        for line in (shared_datasets / "chatml_openai_toy.jsonl").read_text().splitlines()
        if line.strip()
    ]
    with CaptureWriter(home) as writer:
        for i, row in enumerate(rows):
            prompt, answer = row["messages"][:-1], row["messages"][-1]["content"]
            iid = writer.log_interaction(prompt, answer, session_id=f"s{i}", user_id="u", model_version="m0",
                                         latency_ms=100 + i, ts=f"{DAY}T09:0{i}:00Z")  # fmt: skip
            writer.log_feedback(iid, "copy", ts=f"{DAY}T09:0{i}:30Z")
    resources = {"flywheel": flywheel_resource}
    result = dg.materialize(
        [interactions, interaction_signals, interactions_rows_conserved, interactions_quarantine_rate],
        partition_key=DAY,
        resources=resources,
    )
    assert result.success
    meta = result.asset_materializations_for_node("interactions")[0].metadata
    assert (
        meta["rows_read"].value == len(rows) == meta["rows_accepted"].value + meta["rows_quarantined"].value
    )
    assert meta["quarantine_reasons"].value == {"bad_messages": 1}
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert checks["interactions_rows_conserved"].passed
    assert not checks["interactions_quarantine_rate"].passed  # 1 of 5 > 5%: a warning, the run goes on
    assert checks["interactions_quarantine_rate"].severity == dg.AssetCheckSeverity.WARN
    signals = read_parquet(home.warehouse("interaction_signals", DAY))
    assert signals.num_rows == len(rows) - 1 and set(signals.column("signal").to_pylist()) == {"positive"}


def test_rows_conserved_check_counts_the_written_files(
    home: FlywheelHome, flywheel_resource: FlywheelResource, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The blocking check opens the day's warehouse and quarantine files: a row lost on disk fails it."""
    folder = home.landing(INTERACTIONS, DAY)
    folder.mkdir(parents=True)
    (folder / "a.jsonl").write_text(
        "\n".join([json.dumps(interaction_record()), json.dumps(interaction_record()), "{oops"]) + "\n"
    )
    resources = {"flywheel": flywheel_resource}
    first = dg.materialize(
        [interactions, interactions_rows_conserved], partition_key=DAY, resources=resources
    )
    check = first.get_asset_check_evaluations()[0]
    assert check.passed and check.metadata["rows_in_warehouse"].value == 2
    assert check.metadata["rows_in_quarantine"].value == 1

    def ingest_then_lose_a_row(*args: object, **kwargs: object) -> object:
        report = ingest_interactions(*args, **kwargs)  # type: ignore[arg-type]
        table = pq.read_table(home.warehouse(INTERACTIONS, DAY))
        pq.write_table(table.slice(0, 1), home.warehouse(INTERACTIONS, DAY))
        return report

    monkeypatch.setattr(capture_assets, "ingest_interactions", ingest_then_lose_a_row)
    again = dg.materialize([interactions, interactions_rows_conserved], partition_key=DAY, resources=resources,
                           raise_on_error=False)  # fmt: skip
    check = again.get_asset_check_evaluations()[0]
    assert not check.passed and "read 3 rows but the files hold 1 accepted + 1 quarantined" in (
        check.description or ""
    )


def test_capture_runs_succeed_whatever_the_rows(
    home: FlywheelHome, flywheel_resource: FlywheelResource
) -> None:
    """Rows that used to fail the day's runs (and, through late feedback, the day before's), in every
    folder the runs read: both days' runs succeed, and every row read is accepted or quarantined."""
    with CaptureWriter(home) as writer:
        ids = [
            log_question(writer, f"question {i}", ts=f"{DAY}T10:0{i}:00Z", session_id=f"s{i}")
            for i in range(5)
        ]
        nxt = log_question(writer, "question 0!", ts=f"{NEXT}T00:00:30Z")
        for iid in ids[:3]:
            writer.log_feedback(iid, "copy", ts=f"{DAY}T11:00:00Z")
        writer.log_feedback(ids[4], "thumbs_down", ts=f"{NEXT}T00:01:00Z")  # late feedback for DAY
        writer.log_feedback(nxt, "thumbs_up", ts=f"{NEXT}T00:02:00Z")
    bad = [line for line, _ in bad_lines()]
    for stream, day, lines in [
        (INTERACTIONS, DAY, bad),
        (INTERACTIONS, NEXT, [line.replace(DAY.encode(), NEXT.encode()) for line in bad]),
        (FEEDBACK, DAY, [line for line, _ in hostile_feedback_lines(ids[3])]),
        (
            FEEDBACK,
            NEXT,
            [line.replace(DAY.encode(), NEXT.encode()) for line, _ in hostile_feedback_lines(nxt)],
        ),
    ]:
        (home.landing(stream, day) / "hostile.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    resources = {"flywheel": flywheel_resource}
    assets = [interactions, interaction_signals, interactions_rows_conserved]
    for day in (NEXT, DAY):  # the late feedback's own day first: it must not block the day before
        result = dg.materialize(assets, partition_key=day, resources=resources)
        assert result.success
        meta = result.asset_materializations_for_node("interactions")[0].metadata
        assert meta["rows_read"].value == meta["rows_accepted"].value + meta["rows_quarantined"].value
        assert meta["rows_ts_outside_day"].value == (
            3 if day == DAY else 2
        )  # NEXT's "next day" row is its own
        assert result.get_asset_check_evaluations()[0].passed
        signals = result.asset_materializations_for_node("interaction_signals")[0].metadata
        assert (
            signals["feedback_read"].value
            == signals["feedback_matched"].value + signals["feedback_quarantined"].value
        )
        assert signals["feedback_reasons"].value["unencodable_text"] == 2
    assert set(ids) <= set(
        read_parquet(home.warehouse(INTERACTIONS, DAY)).column("interaction_id").to_pylist()
    )
    assert signals["feedback_late"].value == 1
    assert signals["feedback_matched"].value == 3 and signals["signal_negative"].value == 1
