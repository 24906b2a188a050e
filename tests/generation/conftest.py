"""Generation fixtures: the real OpenAI-compatible test server, a project wired to it, captured traffic."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import yaml

from flywheel.capture.records import INTERACTIONS
from flywheel.capture.tables import INTERACTIONS_SCHEMA
from flywheel.config import ProjectConfig, load_project
from flywheel.core.storage import FlywheelHome, write_parquet
from tests.generation.openai_server import serve_openai

WEEK = "2026-01-05"  # a Monday
SEEDS = [
    ("How do I reset my password?", "Open Settings > Security and choose Reset password."),
    ("Can I change my plan mid-month?", "Yes. The difference is prorated on your next invoice."),
    ("Where do I find my invoices?", "Billing > Invoices lists every invoice as a PDF."),
    ("How do I delete a project?", "Open the project, Settings > Danger zone > Delete."),
    ("Is there a mobile app?", "Yes, for iOS and Android."),
    ("How do I invite a colleague?", "Team > Invite, then enter their email."),
]
MESSY = ["pls reset pwd", "how cancel order", "chnage adress pls", "refund??", "u guys open sunday",
         "wher invoice", "acct locked help", "cant login thx", "How do I export my data?", "update email"]


@pytest.fixture
def openai_server() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    with serve_openai() as served:
        yield served


def write_seed_file(folder: Path, pairs: list[tuple[str, str]] = SEEDS) -> Path:
    path = folder / "seed.jsonl"
    path.write_text("".join(json.dumps({"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]})
                            + "\n" for q, a in pairs), encoding="utf-8")
    return path


def endpoint(url: str, model: str, family: str, **kw: Any) -> dict[str, Any]:
    return {"base_url": url, "model": model, "family": family, "backoff_s": 0.01, "max_retries": 1, "timeout_s": 10, **kw}


def write_project(project_dir: Path, generation: dict[str, Any], **sections: Any) -> ProjectConfig:
    """The starter project with seed examples and this `generation` section."""
    data = yaml.safe_load((project_dir / "flywheel.yaml").read_text(encoding="utf-8"))
    data["sources"]["seed"] = [str(write_seed_file(project_dir))]
    data["generation"] = generation
    for key, value in sections.items():
        data.setdefault(key, {}).update(value)
    (project_dir / "flywheel.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    return load_project(project_dir)


def write_interactions(home: FlywheelHome, day: str, inputs: list[str], model_version: str = "champ-v1") -> None:
    """A day of captured interactions (the warehouse table capture writes)."""
    ts = dt.datetime.fromisoformat(day + "T10:00:00+00:00")
    rows = [{"interaction_id": f"{day}-{i}", "ts": ts, "session_id": f"s{i}", "user_id": "u", "model_version": model_version,
             "messages": [{"role": "user", "content": text}], "input_text": text, "output": "ok", "latency_ms": 5.0,
             "confidence": None, "metadata": "{}"} for i, text in enumerate(inputs)]
    write_parquet(pa.Table.from_pylist(rows, schema=INTERACTIONS_SCHEMA), home.warehouse(INTERACTIONS, day))
