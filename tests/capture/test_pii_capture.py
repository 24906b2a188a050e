"""The PII corpus through the real capture path: landing files written by the SDK (plus broken and
rejected lines) -> ingestion and signals -> warehouse and quarantine tables. No pattern-detectable PII
survives anywhere; ordinary text and the allowlisted support address come through untouched."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq

from flywheel.capture.ingestion import ingest_interactions
from flywheel.capture.records import FEEDBACK, INTERACTIONS
from flywheel.capture.sdk import CaptureWriter
from flywheel.capture.signals import SIGNALS, compute_signals
from flywheel.config import CaptureConfig
from flywheel.core.storage import FlywheelHome
from tests.capture.pii_corpus import ALLOW, NEGATIVES, PII_CASES
from tests.capture.traffic import DAY, interaction_record


def _all_text(path: Path) -> str:
    """Every value of a Parquet file as JSON text (nested messages included)."""
    return json.dumps(pq.read_table(path).to_pylist(), default=str, ensure_ascii=False)


def test_no_pattern_detectable_pii_survives_capture(home: FlywheelHome) -> None:
    config = CaptureConfig(pii={"allow": ALLOW})
    ts = f"{DAY}T09:00:00Z"
    with CaptureWriter(home) as writer:
        for i, (_, text, _) in enumerate(PII_CASES):
            field = i % 3  # the user's message, the model's answer or the metadata
            iid = writer.log_interaction(
                [{"role": "system", "content": "Be brief."}, {"role": "user", "content": text if field == 0 else "hi"}],
                text if field == 1 else "ok", session_id=f"s{i}", user_id="u", model_version="m", latency_ms=5.0,
                metadata={"note": text} if field == 2 else None, ts=ts,
            )  # fmt: skip
            writer.log_feedback(iid, "correction", text=f"Better: {text}", ts=f"{DAY}T09:05:00Z")
        for text in NEGATIVES:
            writer.log_interaction([{"role": "user", "content": text}], text, session_id="n", user_id="u",
                                   model_version="m", latency_ms=5.0, ts=ts)  # fmt: skip
    # rejected lines holding PII: broken JSON, a bad timestamp, a repeated id, escaped characters
    rejected = []
    for i, (_, text, _) in enumerate(PII_CASES):
        record = interaction_record(messages=[{"role": "user", "content": text}], output=text)
        line = json.dumps(record, ensure_ascii=i % 2 == 0)  # \\uXXXX escapes in half of them
        rejected += [line[: len(line) // 2 + len(text)], json.dumps({**record, "ts": "soon"})]
    dup = interaction_record(
        interaction_id="dup-1", output="mail jane.doe@example.com, card 4111 1111 1111 1111"
    )
    rejected += [json.dumps(dup)] * 2
    (home.landing(INTERACTIONS, DAY) / "zz-rejected.jsonl").write_text(
        "\n".join(rejected) + "\n", encoding="utf-8"
    )

    report = ingest_interactions(home, DAY, config)
    signals = compute_signals(home, DAY, config)
    assert report.conserved and report.rows_quarantined >= len(PII_CASES) * 2 + 1
    assert signals.signals["correction"] == len(PII_CASES)

    tables = {name: _all_text(path) for name, path in [
        ("warehouse", home.warehouse(INTERACTIONS, DAY)), ("quarantine", home.quarantine(INTERACTIONS, DAY)),
        ("signals", home.warehouse(SIGNALS, DAY)), ("signals quarantine", home.quarantine(SIGNALS, DAY)),
    ]}  # fmt: skip
    survivors = [(kind, needle, name) for kind, _, needle in PII_CASES for name, text in tables.items()
                 if needle in text or json.dumps(needle)[1:-1] in text]  # fmt: skip
    assert survivors == []
    for kind in {k for k, _, _ in PII_CASES}:
        assert f"[{kind.upper()}]" in tables["warehouse"] and f"[{kind.upper()}]" in tables["quarantine"]
    warehouse = pq.read_table(home.warehouse(INTERACTIONS, DAY)).to_pylist()
    outputs = {r["output"] for r in warehouse}
    assert set(NEGATIVES) <= outputs  # ordinary text and the product's own address and phone kept
    # the quarantine keeps what debugging needs: the reason, the keys and structure of a JSON line
    quarantine = pq.read_table(home.quarantine(INTERACTIONS, DAY)).to_pylist()
    bad_ts = [q for q in quarantine if q["reason"] == "bad_timestamp"]
    assert bad_ts and all(json.loads(q["raw"])["ts"] == "soon" for q in bad_ts)
    assert set(json.loads(bad_ts[0]["raw"])) == set(interaction_record()) | {"ts"}
    dup_row = next(q for q in quarantine if q["reason"] == "duplicate_id")
    assert json.loads(dup_row["raw"])["output"] == "mail [EMAIL], card [CARD]"


def test_feedback_landing_without_interactions_is_still_redacted_in_quarantine(home: FlywheelHome) -> None:
    folder = home.landing(FEEDBACK, DAY)
    folder.mkdir(parents=True)
    (folder / "f.jsonl").write_text(
        '{"interaction_id": "x", "kind": "nope", "text": "iban GB82WEST12345698765432"}\n'
    )
    ingest_interactions(home, DAY, CaptureConfig())
    compute_signals(home, DAY, CaptureConfig())
    text = _all_text(home.quarantine(SIGNALS, DAY))
    assert "GB82WEST12345698765432" not in text and "[IBAN]" in text
