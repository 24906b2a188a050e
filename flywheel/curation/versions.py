"""Dataset versions: `datasets/<version>/` where the version is the content hash of the training rows
(the same inputs give the same version), and `datasets/LATEST`, the version training reads by default.

`latest_version` is the one reader of `datasets/LATEST`; `write_dataset_version` its one writer (it
moves only when every blocking rule passes).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flywheel.core.records import EXAMPLE_SCHEMA, examples_table
from flywheel.core.storage import FlywheelHome, write_json, write_jsonl, write_parquet, write_text
from flywheel.core.text import final_answer, last_user_text
from flywheel.curation.card import dataset_card
from flywheel.curation.context import (
    CONFLICTS_SCHEMA,
    DROPS_SCHEMA,
    FLAGGED_SCHEMA,
    ratio_counts,
    records_table,
)
from flywheel.curation.diversity import diversity_changes, diversity_report, seeded_sample
from flywheel.curation.pipeline import CurationResult
from flywheel.curation.production_gap import (
    INPUT_LENGTHS_PNG,
    build_vocabulary,
    input_length_histogram,
    production_gap,
)
from flywheel.curation.rules import Rule, evaluate_rules

LATEST = "LATEST"


def content_hash(rows: Sequence[dict[str, Any]]) -> str:
    """sha256 of the training rows (sorted by example_id; every EXAMPLE_SCHEMA field, no timestamps)."""
    h = hashlib.sha256()
    for r in sorted(rows, key=lambda r: (r["example_id"], r.get("lineage") or "")):
        h.update(json.dumps([r.get(k) for k in EXAMPLE_SCHEMA.names], ensure_ascii=False, sort_keys=True,
                            separators=(",", ":")).encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()


def latest_path(home: FlywheelHome) -> Path:
    """Where the pointer to the latest dataset version lives (`datasets/LATEST`)."""
    return home.path("datasets", LATEST)


def latest_version(home: FlywheelHome) -> str | None:
    """The version `datasets/LATEST` points at; None when it is missing or empty."""
    path = latest_path(home)
    return path.read_text(encoding="utf-8").strip() or None if path.exists() else None


def read_manifest(home: FlywheelHome, version: str) -> dict[str, Any] | None:
    """The manifest of a dataset version (None when it has none)."""
    path = home.dataset(version) / "manifest.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


@dataclass
class DatasetVersion:
    """A written dataset version: its id, folder, manifest and rules."""

    version: str
    path: Path
    manifest: dict[str, Any]
    rules: list[Rule]
    review_sample: list[dict[str, Any]]
    conflicts: list[dict[str, Any]] = field(default_factory=list)

    @property
    def blocking_failures(self) -> list[Rule]:
        return [r for r in self.rules if r.blocking and not r.passed]


def write_dataset_version(
    home: FlywheelHome,
    result: CurationResult,
    *,
    rubric_text: str,
    rubric_path: str,
    rubric_problem: str | None,
    production_inputs: Sequence[str] = (),
    created: str = "",
    move_latest: bool = True,
) -> DatasetVersion:
    """Measure (diversity, production gap), check the rules and write `datasets/<version>/`:
    train.parquet, drops.parquet, flagged.parquet, conflicts.parquet, review_sample.jsonl,
    input_lengths.png (training vs production), card.md, manifest.json. `datasets/LATEST` moves to
    it only when every blocking rule passes (and `move_latest`: a past quarter's rebuild leaves it)."""
    cfg = result.ctx.config
    rows = result.rows
    digest = content_hash(rows)
    version = digest[:12]
    previous_id = latest_version(home)
    previous = read_manifest(home, previous_id) if previous_id else None
    if previous and previous.get("version") == version:  # a rebuild: compare with what came before it
        previous_id = previous.get("previous_version")
        previous = read_manifest(home, previous_id) if previous_id else None
    inputs = [last_user_text(r["messages"]) for r in rows]
    answers = [final_answer(r["messages"]) for r in rows]
    diversity = diversity_report(inputs, answers, [r.get("source") or "" for r in rows], [r.get("generator") for r in rows],
                                 reference_inputs=production_inputs, seed=cfg.seed)
    changes = diversity_changes(diversity, previous.get("diversity") if previous else None, cfg.diversity_drop_warn)
    gap = production_gap(inputs, production_inputs, build_vocabulary(answers, seed=cfg.seed), seed=cfg.seed)
    rules = evaluate_rules(result, rubric_problem, changes, gap)
    counts = ratio_counts(rows, set(cfg.self_generator_names) | result.ctx.production_model_versions)
    n_real, n_gen, n_self = counts["real_or_human"], counts["generated"], counts["self_generated"]
    reviews = result.ctx.reviews
    warnings = list(result.ctx.warnings) + [f"{r.name}: {r.message}" for r in rules if not r.blocking and not r.passed]
    manifest = {
        "version": version,
        "content_hash": digest,
        "created": created,
        "previous_version": previous_id,
        "counts": {
            "input": sum(result.sources_in.values()),
            "train": len(rows),
            "dropped": len(result.drops),
            "flagged": len(result.ctx.flagged),
            "conflicts": len(result.ctx.conflicts),
            "by_source": dict(Counter(("human_fixed" if r.get("human_fixed") else r.get("source")) for r in rows).most_common()),
            "sources_in": result.sources_in,
            "drops_by_reason": dict(Counter(d["reason"] for d in result.drops).most_common()),
        },
        "steps": [vars(r) for r in result.reports],
        "ratios": {
            "real_or_human": n_real,
            "synthetic": counts["synthetic"],
            "distilled": counts["distilled"],
            "synthetic_per_real": round(n_gen / n_real, 3) if n_real else None,  # synthetic + distilled
            "self_generated": n_self,
            "self_generated_share": round(n_self / len(rows), 4) if rows else 0.0,
            "generator_shares": result.ctx.facts.get("generator_shares", {}),
        },
        # per synthetic / distilled file: its admission sample's review and what this version took of it
        "admission": [fa.summary() for fa in (reviews.admission or {}).values()],  # facts.admission_checked: checked?
        # the conflict batches whose verdicts this version applied, and what they did
        "conflict_review": {"batches": reviews.conflict_batches,
                            "applied": result.ctx.facts.get("conflict_verdicts_applied", {})},
        "facts": {k: v for k, v in result.ctx.facts.items()
                  if k not in ("generator_shares", "conflict_verdicts_applied") and not k.startswith("_")},
        "diversity": diversity,
        "diversity_changes": changes,
        "production_gap": gap,
        "rules": [vars(r) for r in rules],
        "warnings": warnings,
        "plots": {"input_lengths": INPUT_LENGTHS_PNG},
        "rubric_path": rubric_path,
        "rubric_sha256": hashlib.sha256(rubric_text.encode("utf-8")).hexdigest(),
    }
    review = seeded_sample(rows, cfg.review_sample_size, cfg.seed)
    folder = home.dataset(version)
    write_parquet(examples_table([{k: r.get(k) for k in EXAMPLE_SCHEMA.names} for r in rows]), folder / "train.parquet")
    write_parquet(records_table(result.drops, DROPS_SCHEMA), folder / "drops.parquet")
    write_parquet(records_table(result.ctx.flagged, FLAGGED_SCHEMA), folder / "flagged.parquet")
    write_parquet(records_table(result.ctx.conflicts, CONFLICTS_SCHEMA), folder / "conflicts.parquet")
    write_jsonl([{k: r.get(k) for k in EXAMPLE_SCHEMA.names} for r in review], folder / "review_sample.jsonl")
    input_length_histogram(inputs, production_inputs, folder / INPUT_LENGTHS_PNG, seed=cfg.seed)
    write_text(dataset_card(manifest, result, rubric_text, rubric_path), folder / "card.md")
    write_json(manifest, folder / "manifest.json")
    dv = DatasetVersion(version, folder, manifest, rules, review, list(result.ctx.conflicts))
    if not dv.blocking_failures and move_latest:
        write_text(version + "\n", latest_path(home))
    return dv
