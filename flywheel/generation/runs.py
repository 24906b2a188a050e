"""A generation run's bookkeeping: per-model tallies (asked, accepted, quarantined, tokens, why it stopped),
the rows it wrote and the replies it could not use, and where they go under FLYWHEEL_HOME.

A run writes `generated/<kind>/<partition>.jsonl` (ChatML rows naming their `generator` or `teacher`;
curation reads every such file as a synthetic or distilled source and sends it to admission review),
`quarantine/generated_<kind>/<partition>.parquet` (QUARANTINE_SCHEMA: every reply or item not used, with
its reason) and `reports/generation/<kind>/<partition>.json` (this module's `GenerationRun.summary`).
Items read = accepted + quarantined.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flywheel.core.errors import require
from flywheel.core.markdown import markdown_table
from flywheel.core.records import quarantine_table
from flywheel.core.storage import FlywheelHome, write_json, write_jsonl, write_parquet

SYNTHETIC = "synthetic"
DISTILLED = "distilled"


@dataclass
class ModelTally:
    """What one generator or teacher was asked for and what came of it."""

    name: str
    model: str
    family: str = ""
    prompt_version: str = ""
    quota: int = 0
    accepted: int = 0
    quarantined: int = 0
    requests: int = 0
    failed_requests: int = 0
    tokens: int = 0
    rate_limited: int = 0
    stopped: str = ""  # why it stopped before its quota ('' when it met it)
    failures: Counter[str] = field(default_factory=Counter)

    @property
    def missing(self) -> int:
        return max(0, self.quota - self.accepted)

    def summary(self) -> dict[str, Any]:
        return {"name": self.name, "model": self.model, "family": self.family, "prompt_version": self.prompt_version,
                "quota": self.quota, "accepted": self.accepted, "missing": self.missing,
                "quarantined": self.quarantined, "requests": self.requests, "failed_requests": self.failed_requests,
                "tokens": self.tokens, "rate_limited": self.rate_limited, "stopped": self.stopped,
                "failures": dict(self.failures.most_common())}


@dataclass
class GenerationRun:
    """One run of generators (synthetic) or of the teacher (distilled) for a partition."""

    kind: str
    partition: str
    target: int = 0
    token_budget: int = 0
    rows: list[dict[str, Any]] = field(default_factory=list)
    quarantine: list[dict[str, Any]] = field(default_factory=list)
    tallies: dict[str, ModelTally] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    @property
    def tokens(self) -> int:
        return sum(t.tokens for t in self.tallies.values())

    @property
    def read(self) -> int:
        return len(self.rows) + len(self.quarantine)

    def reject(self, source: str, line: int, reason: str, detail: str, raw: Any = "") -> None:
        """Quarantine one reply or item, counted against the model named by `source`."""
        text = raw if isinstance(raw, str) else json.dumps(raw, ensure_ascii=False, default=str)
        self.quarantine.append({"source_file": source, "line": line, "reason": reason, "detail": detail, "raw": text})

    def summary(self) -> dict[str, Any]:
        return {"kind": self.kind, "partition": self.partition, "target": self.target, "accepted": len(self.rows),
                "quarantined": len(self.quarantine), "tokens": self.tokens, "token_budget": self.token_budget,
                "models": [t.summary() for t in self.tallies.values()], "notes": self.notes, "facts": self.facts,
                "quarantine_reasons": dict(Counter(q["reason"] for q in self.quarantine).most_common()),
                "path": str(self.path) if self.path else None}


def report_path(home: FlywheelHome, kind: str, partition: str) -> Path:
    return home.reports() / "generation" / kind / f"{partition}.json"


def write_run(home: FlywheelHome, run: GenerationRun) -> GenerationRun:
    """Write the run's rows, quarantine and report (each atomically; a re-run replaces them). A run with no
    rows removes an earlier file of the partition, so nothing stale is curated."""
    per_model = Counter(q["source_file"] for q in run.quarantine)
    for t in run.tallies.values():
        t.quarantined = per_model.get(t.name, 0)
    require(len(run.rows) == sum(t.accepted for t in run.tallies.values()),
            f"{run.kind} run {run.partition}: {len(run.rows)} rows but the models' tallies accepted "
            f"{sum(t.accepted for t in run.tallies.values())}")
    target = home.generated(run.kind, run.partition)
    if run.rows:
        run.path = write_jsonl(run.rows, target)
    elif target.exists():
        target.unlink()
    write_parquet(quarantine_table(run.quarantine), home.quarantine(f"generated_{run.kind}", run.partition))
    write_json(run.summary(), report_path(home, run.kind, run.partition))
    return run


def tallies_markdown(run: GenerationRun) -> str:
    """Per model: quota, accepted, missing, quarantined, requests, failed, tokens, 429s, why it stopped."""
    return markdown_table(
        ["model", "family", "prompt", "asked", "accepted", "missing", "quarantined", "requests", "failed", "tokens",
         "429s", "stopped", "failures"],
        [[t.name, t.family or "-", t.prompt_version or "-", t.quota, t.accepted, t.missing, t.quarantined, t.requests,
          t.failed_requests, t.tokens, t.rate_limited, t.stopped or "-",
          ", ".join(f"{k}: {v}" for k, v in t.failures.most_common()) or "-"] for t in run.tallies.values()])
