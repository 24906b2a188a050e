"""flywheel.formats.detect: one format per file, mixed files refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from flywheel.formats import FormatFileError, MixedFormatError, detect_format, load_file
from tests.formats.samples import conv, write_jsonl


def test_mixed_file_is_refused_naming_the_first_row_of_each_format(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "mixed.jsonl", [
        {"messages": conv(("user", "hi"), ("assistant", "hello"))},
        {"messages": conv(("user", "a"), ("assistant", "b"))},
        {"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}]},
        {"instruction": "say hi", "input": "", "output": "hi"},
    ])
    with pytest.raises(MixedFormatError) as info:
        load_file(path)
    assert isinstance(info.value, FormatFileError)
    assert info.value.first_rows == {"chatml": 1, "sharegpt": 3, "alpaca": 4}
    msg = str(info.value)
    assert str(path) in msg and "sharegpt first at line 3" in msg and "alpaca first at line 4" in msg
    with pytest.raises(MixedFormatError):
        load_file(path, fmt="chatml")
    rows = [{"messages": []}, {"instruction": "x", "output": "y"}]
    with pytest.raises(MixedFormatError, match="alpaca first at row 2"):
        detect_format(rows)
