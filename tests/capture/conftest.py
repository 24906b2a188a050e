"""Fixtures of the capture tests."""

from __future__ import annotations

import pyarrow as pa
import pytest

from flywheel.capture.pii import PiiRedactor


@pytest.fixture
def redactor_crashes_on_boom(monkeypatch: pytest.MonkeyPatch) -> None:
    """PII redaction raises for any batch holding the text BOOM (a row the redactor cannot handle)."""
    real = PiiRedactor.redact_array

    def fragile(self: PiiRedactor, texts: pa.Array) -> pa.Array:
        if any("BOOM" in (t or "") for t in texts.to_pylist()):
            raise RuntimeError("redactor crashed")
        return real(self, texts)

    monkeypatch.setattr(PiiRedactor, "redact_array", fragile)
