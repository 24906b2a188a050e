"""The demo's project folder: flywheel.yaml tuned for the tiny model on a CPU, the rubric, the files."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import yaml

from flywheel.core.storage import FlywheelHome, cache_dir, remove, write_jsonl, write_text
from flywheel.demo.scenario import RUBRIC as DEMO_RUBRIC
from flywheel.demo.scenario import ScenarioFiles, ScenarioSize

DEMO_PROJECT_DIR = "demo-project"
DEMO_MARKER = ".flywheel-demo"
BROKEN_FILE = "synthetic_batch_job.jsonl"
DEFAULT_TRAINING_SEED = 42


def project_config(size: ScenarioSize, broken: bool = False, training_seed: int = DEFAULT_TRAINING_SEED,
                   recipe: dict[str, Any] | None = None) -> dict[str, Any]:
    """The demo's flywheel.yaml: small thresholds and a training recipe tuned for the tiny model on a CPU.

    `broken` lists the broken generator's file among the synthetic sources; `recipe` overrides training keys."""
    synthetic = ["synthetic_polite.jsonl", "synthetic_terse.jsonl"] + ([BROKEN_FILE] if broken else [])
    training = {
        "base_model": "tiny",
        "lora": {"r": 32, "alpha": 64, "dropout": 0.0, "target_modules": "all-linear",
                 "modules_to_save": ["embed_tokens", "lm_head"]},
        # a gentler step with a longer warmup: at 0.002 the training seed alone moved a week-1 candidate by
        # more than the week's real gain (seed 5's was held); benchmarks/demo_robustness.py measures the pattern
        "learning_rate": 0.001,
        "warmup_ratio": 0.1,
        "epochs": 8.0,
        "batch_size": 4,
        "max_length": 256,
        "seed": training_seed,
        # every example trains: the demo's sets are small and its verdicts are calibrated on the full data
        "validation_share": 0.0,
    } | (recipe or {})
    return {
        "name": "nimbus-notes-support",
        "rubric": "rubric.md",
        # the retrain chain's quarters start at 2026-Q2: the bootstrap is the quarterly schedule's retrain of
        # 2026-Q3 (on 2026-10-01), the weeks' retrains are 2026-Q4's; Q2 and Q3 can be backfilled
        "start_date": "2026-04-01",
        # the product's own support address stays in captured answers (what a reviewer passes trains the model)
        "capture": {"pii": {"allow": ["nimbus.example"]}},
        "labeling": {"batch_size": size.batch_size, "seed": 0},
        "sources": {"seed": ["seed.jsonl"], "synthetic": synthetic, "distilled": []},
        "curation": {"min_examples": size.min_examples, "answer_max_chars": 80, "max_generator_share": 0.8,
                     "review_sample_size": 10, "admission_sample_size": size.admission_sample},
        "training": training,
        # slices of 34-45 items: the gate judges each by its interval; training-seed noise is measured on
        # one seed replicate per candidate and pooled over the cycles
        "evaluation": {"eval_set": "eval.jsonl", "max_new_tokens": 80, "batch_size": 32,
                       "bootstrap_samples": 1000, "primary_metric": "chrf", "slice_tolerance": 0.05,
                       "seed_replicates": size.seed_replicates},
        # the team's alert level: a retrain when more than 30% of the last 3 days' interactions drew a
        # negative signal (or the rate rose by 10 points over the champion's first 2 days)
        "automation": {"timezone": "UTC", "negative_rate_threshold": 0.3, "metric_min_interactions": 50,
                       "metric_window_days": 3, "metric_baseline_days": 2},
    }


def write_project_config(folder: Path, size: ScenarioSize, **options: Any) -> None:
    write_text(yaml.safe_dump(project_config(size, **options), sort_keys=False), folder / "flywheel.yaml")


def write_project(folder: Path, files: ScenarioFiles, size: ScenarioSize, training_seed: int = DEFAULT_TRAINING_SEED) -> None:
    """Write the demo project: flywheel.yaml, the rubric, the seed, synthetic and eval files."""
    folder.mkdir(parents=True, exist_ok=True)
    write_project_config(folder, size, training_seed=training_seed)
    write_text(DEMO_RUBRIC, folder / "rubric.md")
    write_jsonl([{"messages": r["messages"]} for r in files.seed], folder / "seed.jsonl")
    write_jsonl(files.synthetic_a, folder / "synthetic_polite.jsonl")
    write_jsonl(files.synthetic_b, folder / "synthetic_terse.jsonl")
    write_jsonl(files.broken, folder / BROKEN_FILE)
    write_jsonl([{"messages": r["messages"], "slice": r["slice"]} for r in files.eval_set], folder / "eval.jsonl")
    write_text("written by `flywheel demo`; re-running the demo replaces this folder and the demo data\n",
               folder / DEMO_MARKER)


def demo_project_dir(home: FlywheelHome) -> Path:
    """Where the demo writes its project: `<home>/demo-project` for a local home; for a home on object
    storage a local folder in the cache (a project is configuration a deployment ships with its code)."""
    if not home.remote:
        return Path(home.path(DEMO_PROJECT_DIR))
    return cache_dir() / "demo-projects" / hashlib.sha256(str(home.root).encode()).hexdigest()[:16]


def reset_home(home: FlywheelHome) -> None:
    """Start from a clean demo state: remove a previous demo's data (the cached tiny base model stays).

    Refuses a home that holds data but no demo project, so the demo never wipes real traffic."""
    root = home.root
    if not root.exists():
        return
    entries = [p for p in root.iterdir() if p.name not in ("models",)]
    models = [p for p in (root / "models").iterdir()] if (root / "models").is_dir() else []
    marker = demo_project_dir(home) / DEMO_MARKER
    if home.remote:
        entries = [p for p in entries if p.name != DEMO_MARKER]
        marker = root / DEMO_MARKER
    if (entries or [m for m in models if m.name != "base-tiny"]) and not marker.exists():
        raise RuntimeError(f"{root}: holds data that the demo did not write; point FLYWHEEL_HOME at an empty "
                           f"folder for the demo (the demo replaces everything under it)")
    for p in entries:
        remove(p)
    for m in models:
        if m.name != "base-tiny":
            remove(m)
