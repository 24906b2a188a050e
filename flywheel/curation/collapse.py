"""The collapse watch: does generated data narrow from one generation to the next?

Recent work on models trained on generated data ("model collapse") sees the outputs lose diversity and
their perplexity under a fixed reference model narrow (the variance falls) before quality visibly drops.
This module follows both across generations, in two kinds of series:

- per generator (or teacher): each weekly generation run (`generated/<kind>/<week>.jsonl`) is a generation;
- per dataset version (`datasets/<version>/`, following `previous_version` back from `datasets/LATEST`):
  the generated rows of each version, all together and per generator.

Each generation gets `diversity.text_stats` of its answers and, with `generation.reference_model`, the
mean and variance of the per-answer perplexity of a seeded sample under it (`/completions` prompt
logprobs). The newest generation of a series is compared with the one before: a diversity measure falling
by more than `generation.collapse_diversity_drop_warn` (relative) or the perplexity variance by more than
`generation.collapse_variance_drop_warn` is a warning. Measures are cached per content under
`reports/collapse/`; the report is `reports/collapse/latest.json`.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from flywheel.config import GenerationConfig, ProjectConfig
from flywheel.core.markdown import markdown_table
from flywheel.core.sampling import seeded_sample
from flywheel.core.storage import FlywheelHome, read_jsonl, read_table, write_json
from flywheel.core.text import final_answer
from flywheel.curation.context import GENERATED_SOURCES
from flywheel.curation.diversity import diversity_changes, text_stats
from flywheel.curation.versions import latest_version, read_manifest
from flywheel.generation.client import ChatClient, EndpointError, client_for

MAX_VERSIONS = 6
GENERATED_KINDS = ("synthetic", "distilled")


@dataclass
class CollapseReport:
    """Measures per (series, generation), the warnings, and what could not be measured."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    reference: str | None = None

    def summary(self) -> dict[str, Any]:
        return {"rows": self.rows, "warnings": self.warnings, "notes": self.notes, "reference": self.reference}


def generator_series(home: FlywheelHome) -> dict[str, list[tuple[str, list[str]]]]:
    """Per generator or teacher: [(generation = `<kind>/<week>`, answers)], oldest first."""
    series: dict[str, list[tuple[str, list[str]]]] = {}
    for kind in GENERATED_KINDS:
        for path in sorted(home.generated(kind).glob("*.jsonl")):
            by_model: dict[str, list[str]] = {}
            for row in read_jsonl(path):
                name = row.get("generator") or row.get("teacher")
                if name and isinstance(row.get("messages"), list):
                    by_model.setdefault(f"{kind}:{name}", []).append(final_answer(row["messages"]))
            for name, answers in by_model.items():
                series.setdefault(name, []).append((f"{kind}/{path.stem}", answers))
    for runs in series.values():
        runs.sort(key=lambda r: r[0].split("/", 1)[1])
    return series


def dataset_series(home: FlywheelHome, limit: int = MAX_VERSIONS) -> dict[str, list[tuple[str, list[str]]]]:
    """The generated rows' answers of the last `limit` dataset versions (oldest first): all together
    (`dataset:generated`) and per generator (`dataset:<generator>`)."""
    chain: list[str] = []
    version = latest_version(home)
    while version and version not in chain and len(chain) < limit:
        chain.append(version)
        manifest = read_manifest(home, version) or {}
        version = manifest.get("previous_version")
    series: dict[str, list[tuple[str, list[str]]]] = {}
    for version in reversed(chain):
        path = home.dataset(version) / "train.parquet"
        if not path.exists():
            continue
        groups: dict[str, list[str]] = {}
        for row in read_table(path, columns=["messages", "source", "generator"]).to_pylist():
            if row["source"] in GENERATED_SOURCES:
                answer = final_answer(row["messages"])
                groups.setdefault("dataset:generated", []).append(answer)
                if row["generator"]:
                    groups.setdefault(f"dataset:{row['generator']}", []).append(answer)
        for name, answers in groups.items():
            series.setdefault(name, []).append((version, answers))
    return series


def perplexity_stats(client: ChatClient, answers: Sequence[str]) -> dict[str, float | None]:
    """Mean and variance of per-answer perplexity (exp of the mean negative token log-probability)."""
    ppl = []
    for text in answers:
        values = client.prompt_logprobs(text)
        if values:
            ppl.append(math.exp(-sum(values) / len(values)))
    if not ppl:
        return {"ppl_mean": None, "ppl_var": None}
    return {"ppl_mean": round(float(np.mean(ppl)), 4), "ppl_var": round(float(np.var(ppl)), 4)}


class _Measurer:
    """Text stats and perplexity of one generation's answers, cached by content and reference model."""

    def __init__(self, home: FlywheelHome, cfg: GenerationConfig) -> None:
        self.cfg = cfg
        self.path = home.reports() / "collapse" / "cache.json"
        self.cache: dict[str, Any] = json.loads(self.path.read_text(encoding="utf-8")) if self.path.exists() else {}
        self.reference = cfg.reference_model
        self.client: ChatClient | None = None
        self.failure: str | None = None

    def measure(self, answers: list[str]) -> dict[str, Any]:
        sample = seeded_sample(answers, self.cfg.collapse_sample_size, self.cfg.seed)
        ref = self.reference.model if self.reference else ""
        key = hashlib.sha256(json.dumps([ref, self.cfg.seed, sample]).encode("utf-8")).hexdigest()[:24]
        if key in self.cache:
            return {**self.cache[key], "n": len(answers)}
        stats: dict[str, Any] = text_stats(sample, self.cfg.seed, bleu_sample=self.cfg.collapse_sample_size)
        stats.update(ppl_mean=None, ppl_var=None)
        complete = True
        if self.reference is not None and self.failure is None:
            try:
                self.client = self.client or client_for(self.reference, role="reference model")
                stats.update(perplexity_stats(self.client, sample))
            except (EndpointError, ValueError) as exc:
                self.failure, complete = f"perplexity not measured: {exc}", False
        elif self.reference is not None:
            complete = False
        if complete:
            self.cache[key] = stats
        return {**stats, "n": len(answers)}

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
        write_json(self.cache, self.path)


def _compare(series: str, runs: list[dict[str, Any]], cfg: GenerationConfig) -> list[str]:
    """Warnings of the newest generation of a series against the one before it."""
    if len(runs) < 2:
        return []
    prev, cur = runs[-2], runs[-1]
    out = []
    for change in diversity_changes({"overall": cur}, {"overall": prev}, cfg.collapse_diversity_drop_warn):
        if change["warn"]:
            out.append(f"{series}: {change['metric']} {change['previous']} -> {change['current']} "
                       f"({change['change']:.0%} less diverse) from {prev['generation']} to {cur['generation']}")
    a, b = prev.get("ppl_var"), cur.get("ppl_var")
    if a and b is not None and (a - b) / a > cfg.collapse_variance_drop_warn:
        out.append(f"{series}: perplexity variance under the reference fell {(a - b) / a:.0%} ({a} -> {b}) from "
                   f"{prev['generation']} to {cur['generation']}: outputs are narrowing")
    return out


def collapse_watch(project: ProjectConfig, home: FlywheelHome) -> CollapseReport:
    """Measure every series' generations, compare each series' newest with the one before, and write
    `reports/collapse/latest.json`."""
    cfg = project.generation
    report = CollapseReport(reference=cfg.reference_model.model if cfg.reference_model else None)
    if report.reference is None:
        report.notes.append("no generation.reference_model: diversity only, no perplexity")
    measurer = _Measurer(home, cfg)
    try:
        for name, runs in [*generator_series(home).items(), *dataset_series(home).items()]:
            measured = [{"series": name, "generation": gen, **measurer.measure(answers)} for gen, answers in runs]
            report.rows += measured
            report.warnings += _compare(name, measured, cfg)
    finally:
        measurer.close()
    if measurer.failure:
        report.notes.append(measurer.failure)
    if not report.rows:
        report.notes.append("no generated rows yet (no generation runs, no dataset version with generated rows)")
    write_json(report.summary(), home.reports() / "collapse" / "latest.json")
    return report


def collapse_markdown(report: CollapseReport) -> str:
    """One row per (series, generation): size, distinct-1/2, compression, self-BLEU, perplexity mean and variance."""
    def cell(v: Any) -> Any:
        return "-" if v is None else v

    return markdown_table(
        ["series", "generation", "n", "distinct-1", "distinct-2", "compression", "self-BLEU", "ppl mean", "ppl var"],
        [[r["series"], r["generation"], r["n"], cell(r.get("distinct_1")), cell(r.get("distinct_2")),
          cell(r.get("compression_ratio")), cell(r.get("self_bleu")), cell(r.get("ppl_mean")), cell(r.get("ppl_var"))]
         for r in report.rows])
