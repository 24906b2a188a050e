"""`build_training_dataset`, the training_dataset asset's one library call (its Dagster tests:
tests/dagster/test_dataset_assets.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from flywheel.capture.pii.ner import ner_available
from flywheel.config import PiiConfig, load_project
from flywheel.core.errors import InputError
from flywheel.core.records import examples_table, make_example
from flywheel.core.storage import FlywheelHome, read_parquet, write_parquet
from flywheel.curation.build import CurationError, build_training_dataset
from flywheel.project import template_text
from tests.capture.test_pii_ner import NER_MODELS


def test_an_unwritten_rubric_refuses_before_reading_anything(project_dir: Path, home: FlywheelHome) -> None:
    (project_dir / "rubric.md").write_text(template_text("rubric.md"), encoding="utf-8")
    with pytest.raises(
        CurationError, match="refusing to build a training dataset: .*unedited template"
    ) as info:
        build_training_dataset(load_project(project_dir), home, "sqlite://")
    assert isinstance(info.value, InputError) and isinstance(info.value, ValueError)
    assert not home.path("datasets").exists()


def _seed_rows_with_pii(home: FlywheelHome) -> None:
    questions = ["how do I export my invoices as a spreadsheet?", "why was my card charged twice this month?",
                 "can the team plan be paused during the summer holidays?", "where do I change the billing currency?",
                 "is there a discount for registered charities and schools?"]  # fmt: skip
    rows = [make_example([{"role": "user", "content": f"Jane Doe here, {q} Mail jane.doe@example.com"},
                          {"role": "assistant", "content": f"{q.split()[-1]} write to billing@nimbus.example"}], "human")
            for q in questions]  # fmt: skip
    write_parquet(examples_table(rows), home.warehouse("seed_examples", "all"))


@pytest.mark.parametrize("ner_models", [["no_such_pipeline"], NER_MODELS], ids=["without-ner", "with-ner"])
def test_dataset_rows_are_scrubbed_and_the_card_says_whether_ner_ran(
    project_dir: Path, home: FlywheelHome, tmp_path: Path, ner_models: list[str]
) -> None:
    model, why_not = ner_available(ner_models)
    if ner_models == NER_MODELS and model is None:
        pytest.skip(f"no spaCy English NER pipeline: {why_not}")
    project = load_project(project_dir)
    project.capture.pii = PiiConfig(allow=["nimbus.example"], ner_models=ner_models)
    _seed_rows_with_pii(home)
    build = build_training_dataset(project, home, f"sqlite:///{tmp_path / 'decisions.db'}")
    train = read_parquet([build.version.path / "train.parquet"]).to_pylist()
    texts = [m["content"] for r in train for m in r["messages"]]
    assert len(train) == 5 and not any("jane.doe@example.com" in t for t in texts)
    assert all(t.endswith("write to billing@nimbus.example") for t in texts[1::2])  # the allowlist holds
    card = (build.version.path / "card.md").read_text(encoding="utf-8")
    scan = build.version.manifest["facts"]["pii_scan"]
    assert scan["hits"]["email"] == 5 and scan["ner"] is (model is not None)
    if model is None:
        assert "**NER did not run** (no spaCy pipeline of ['no_such_pipeline']" in card
        assert any(w.startswith("PII: NER did not run") for w in build.version.manifest["warnings"])
        assert all("Jane Doe" in t for t in texts[0::2])  # patterns alone cannot see a bare name
    else:
        assert f"NER ran (spaCy pipeline `{model}`)" in card
        assert not any("Jane Doe" in t for t in texts) and scan["hits"]["person"] == 5
