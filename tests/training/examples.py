"""Small QA datasets, eval sets and requests the training tests train the tiny model on."""

from __future__ import annotations

import random
from pathlib import Path

from flywheel.config import TrainingConfig
from flywheel.core.records import examples_table, make_example
from flywheel.core.storage import FlywheelHome, write_parquet
from flywheel.training.request import TrainingRequest

FAST = {
    "max_steps": 3,
    "batch_size": 4,
    "max_length": 256,
    "learning_rate": 2e-3,
    "lora": {"r": 4, "alpha": 8, "dropout": 0.0},
}


def qa_examples(n: int, seed: int = 0, offset: int = 0) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        a, b = rng.randint(1, 99), rng.randint(1, 99)
        messages = [
            {"role": "system", "content": "Answer briefly."},
            {"role": "user", "content": f"Q{i + offset}: what is {a} plus {b}?"},
            {"role": "assistant", "content": f"{a + b}"},
        ]
        rows.append(make_example(messages, "human", weight=rng.choice([0.5, 1.0, 2.0])))
    return rows


def write_dataset(home: FlywheelHome, rows: list[dict], version: str = "ds0001") -> str:
    write_parquet(examples_table(rows), home.dataset(version) / "train.parquet")
    home.path("datasets").mkdir(parents=True, exist_ok=True)
    home.path("datasets", "LATEST").write_text(version + "\n")
    return version


def write_eval_set(home: FlywheelHome, rows: list[dict]) -> Path:
    path = home.warehouse("fixed_eval_set", "current")
    write_parquet(examples_table(rows), path)
    return path


def request(home: FlywheelHome, eval_path: Path | None = None, **overrides) -> TrainingRequest:
    return TrainingRequest(
        home=str(home.root),
        training=TrainingConfig(**{**FAST, **overrides}),
        eval_set_path=str(eval_path) if eval_path else None,
    )
