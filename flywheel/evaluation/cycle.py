"""One evaluation cycle, one entry point per asset: build and freeze the fixed eval set
(`build_fixed_eval_set`), evaluate the candidate of `models/candidate.json` against the champion and
record it (`run_evaluation_cycle`, which runs `evaluate_candidate`), re-check its gate
(`check_candidate_gate`), and promote it (`promote_candidate`).

Held and blocked candidates are outcomes, not errors: the cycle records them and the champion stays.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from flywheel.config import ProjectConfig
from flywheel.core.errors import StateError
from flywheel.core.records import quarantine_table
from flywheel.core.storage import FlywheelHome, write_json, write_parquet
from flywheel.curation.answer_format import AnswerFormat
from flywheel.evaluation.eval_set import (
    EVAL_SET,
    EvalSetError,
    eval_items,
    eval_set_info,
    eval_set_table,
    load_eval_set,
    read_eval_set_info,
)
from flywheel.evaluation.gate import GateDecision, gate, training_data_leaks
from flywheel.evaluation.generation import champion_answers, generate_answers, generation_model
from flywheel.evaluation.judge import make_judge
from flywheel.evaluation.judge_calibration import calibrate_judge, gate_metric
from flywheel.evaluation.metrics import BOOTSTRAP_SEED, score_answers, summarize
from flywheel.evaluation.report import answers_table
from flywheel.evaluation.seed_spread import (
    earlier_spreads,
    pooled_spread,
    replicate_artifacts,
    replicate_differences,
    spread_of,
)
from flywheel.labeling.store import ReviewStore
from flywheel.models import history, registry
from flywheel.models.artifact import ModelArtifact, eval_set_hash, read_artifact, read_candidate
from flywheel.models.serving import export_champion


@dataclass
class EvaluationOutcome:
    summary: dict[str, Any]
    answers: pa.Table
    decision: GateDecision
    report_dir: Path
    champion_cached: bool
    history: list[dict[str, Any]] = field(default_factory=list)  # the score history after this cycle


def evaluate_candidate(
    project: ProjectConfig,
    home: FlywheelHome,
    candidate: ModelArtifact,
    eval_table: pa.Table,
    eval_info: dict[str, Any],
    champion: ModelArtifact | None,
    frozen_hash: str | None = None,
    db_url: str | None = None,
) -> EvaluationOutcome:
    """Generate and score the candidate's and the champion's (or base model's) answers on the fixed
    set, summarise per slice with bootstrap CIs, measure the training-seed spread on the candidate's
    seed replicates (pooled with earlier evaluations), check for eval leaks and the frozen eval-set
    hash, apply the gate, and write `reports/evaluations/<candidate>/answers.parquet` and `summary.json`.
    With a judge and `db_url` the judge is first calibrated against the reviewers' verdicts there."""
    cfg = project.evaluation
    items = eval_items(eval_table)
    prompts = [it.prompt for it in items]
    model, tokenizer = generation_model(home, candidate)
    cand_answers = generate_answers(model, tokenizer, prompts, cfg.max_new_tokens, cfg.batch_size)
    del model

    if champion is None:
        base = candidate.base_model
        champion_label = f"base:{base}"
        champ_answers, cached = champion_answers(home, champion_label, eval_info["content_hash"], items,
                                                 cfg.max_new_tokens, lambda: generation_model(home, base),
                                                 cfg.batch_size)
    else:
        champion_label = champion.version
        champ_answers, cached = champion_answers(home, champion_label, eval_info["content_hash"], items,
                                                 cfg.max_new_tokens, lambda: generation_model(home, champion),
                                                 cfg.batch_size)

    rule = AnswerFormat.from_config(project.curation)
    judge = make_judge(project) if "judge" in cfg.metrics else None
    try:
        cand_scores = score_answers(items, cand_answers, cfg.metrics, rule, judge)
        champ_scores = score_answers(items, champ_answers, cfg.metrics, rule, judge)
        calibration = (calibrate_judge(judge, ReviewStore(db_url), cfg.judge).as_dict()
                       if judge is not None and cfg.judge is not None and db_url else None)
    finally:
        if judge is not None:
            judge.close()

    summary = {
        "candidate": candidate.version,
        "champion": champion_label,
        "champion_is_base": champion is None,
        "base_model": candidate.base_model,
        "dataset_version": candidate.dataset_version,
        "eval_set_hash": eval_info["content_hash"],
        "eval_set_version": eval_info["eval_set_version"],
        "primary_metric": cfg.primary_metric,
        "metrics": list(cfg.metrics),
        "n_items": len(items),
        "max_new_tokens": cfg.max_new_tokens,
        "bootstrap_samples": cfg.bootstrap_samples,
        "bootstrap_seed": BOOTSTRAP_SEED,
        "champion_answers_cached": cached,
        "created_at": datetime.now(UTC).isoformat(),
        **summarize(items, cand_scores, champ_scores, cfg.bootstrap_samples),
        "judge_calibration": calibration,
    }
    replicates = replicate_artifacts(home, candidate, cfg.seed_replicates)
    if replicates:
        primary = gate_metric(cfg, calibration)[0] or cfg.primary_metric
        main = {"version": candidate.version, "overall": summary["overall"][primary]["diff"],
                "slices": {sl: v["metrics"][primary]["diff"] for sl, v in summary["slices"].items()}}
        diffs = replicate_differences(home, replicates, items, champ_scores[primary], primary, cfg.max_new_tokens,
                                      cfg.batch_size, rule)
        own = spread_of(main, diffs)
        summary["seed_spread_own"] = own
        summary["seed_spread"] = pooled_spread(own, earlier_spreads(home, eval_info["content_hash"], candidate.version))
    leaks, problem = training_data_leaks(home, candidate.dataset_version, eval_table, project.curation)
    summary["leaks"] = leaks
    summary["leak_problem"] = problem
    summary["frozen_eval_set_hash"] = frozen_hash
    decision = gate(summary, cfg, leaks, problem, frozen_hash)
    summary["gate"] = decision.as_dict()

    table = answers_table(items, cand_answers, champ_answers, cand_scores, champ_scores)
    report_dir = home.reports() / "evaluations" / candidate.version
    write_parquet(table, report_dir / "answers.parquet")
    write_json(summary, report_dir / "summary.json")
    return EvaluationOutcome(summary, table, decision, report_dir, cached)


def read_summary(home: FlywheelHome, version: str) -> dict[str, Any]:
    """The `summary.json` of a candidate's evaluation."""
    path = home.reports() / "evaluations" / version / "summary.json"
    if not path.exists():
        raise FileNotFoundError(f"{path}: candidate {version!r} has not been evaluated")
    return json.loads(path.read_text(encoding="utf-8"))


# --- entry points (one per asset) ----------------------------------------------------------
def build_fixed_eval_set(project: ProjectConfig, home: FlywheelHome, db_url: str) -> dict[str, Any]:
    """Read the eval file, write `warehouse/fixed_eval_set/current.parquet` + `current.json` (and the
    unusable rows to `quarantine/fixed_eval_set/current.parquet`), and freeze its hash in the registry
    the first time this eval-set version is seen complete (>= min_items, no invalid rows)."""
    cfg = project.evaluation
    loaded = load_eval_set(project.resolve(cfg.eval_set), project.curation.max_tokens, project.capture.pii)
    info = eval_set_info(loaded.table, cfg.eval_set_version)
    write_parquet(loaded.table, home.warehouse(*EVAL_SET))
    write_parquet(quarantine_table(loaded.invalid), home.quarantine(*EVAL_SET))
    frozen = None
    if info["items"] >= cfg.min_items and not loaded.invalid:
        frozen = registry.freeze_eval_set(db_url, cfg.eval_set_version, info["content_hash"], info["items"], info["slices"])
    else:
        frozen = registry.frozen_eval_set(db_url, cfg.eval_set_version)
    info.update({
        "file": str(loaded.path),
        "format": loaded.format,
        "read": loaded.read,
        "invalid": len(loaded.invalid),
        "invalid_reasons": dict(Counter(r["reason"] for r in loaded.invalid)),
        "frozen_hash": frozen["content_hash"] if frozen else None,
        "pii_scan": loaded.pii_scan,
    })
    write_json(info, home.warehouse(EVAL_SET[0]) / "current.json")
    return info


def run_evaluation_cycle(project: ProjectConfig, home: FlywheelHome, db_url: str,
                         candidate: ModelArtifact | None = None) -> EvaluationOutcome:
    """Evaluate `candidate` (default: the one `models/candidate.json` names) against the registry's champion
    (the base model before the first promotion), record it in the registry (status candidate or rejected with
    the gate's reasons) and append the cycle to the score history (with its plot)."""
    info = read_eval_set_info(home)
    table = eval_set_table(home)
    if eval_set_hash(table) != info["content_hash"]:
        raise EvalSetError(f"{home.warehouse(*EVAL_SET)}: content does not match current.json; "
                           "re-materialize fixed_eval_set")
    candidate = candidate or read_candidate(home)
    champ = registry.current_champion(db_url)
    champion = read_artifact(home, champ.version, champ.adapter_path) if champ else None
    frozen = registry.frozen_eval_set(db_url, info["eval_set_version"])
    outcome = evaluate_candidate(project, home, candidate, table, info, champion,
                                 frozen["content_hash"] if frozen else None, db_url)
    s = outcome.summary
    scores = {
        "overall": {m: v["candidate"] for m, v in s["overall"].items()},
        "slices": {sl: {m: v["candidate"] for m, v in b["metrics"].items()} for sl, b in s["slices"].items()},
    }
    registry.record_candidate(
        db_url, candidate.version, dataset_version=candidate.dataset_version, base_model=candidate.base_model,
        adapter_path=home.relative(candidate.path), eval_set_hash=s["eval_set_hash"], eval_set_version=s["eval_set_version"],
        scores=scores, gate_passed=outcome.decision.passed,
        gate_reasons=[f"{outcome.decision.outcome}: {r}" for r in outcome.decision.reasons],
    )
    if frozen is None or frozen["content_hash"] == s["eval_set_hash"]:
        # a score on a changed eval set is not comparable: it stays out of the version's history
        history.record_evaluation(db_url, s, outcome.decision.outcome)
    outcome.history = history.score_history(db_url, s["eval_set_version"])
    history.plot_score_history(outcome.history, outcome.report_dir / "score_history.png")
    history.plot_score_history(outcome.history, home.reports() / "score_history.png")
    return outcome


def check_candidate_gate(project: ProjectConfig, home: FlywheelHome, db_url: str, candidate: ModelArtifact | None = None,
                         ) -> tuple[ModelArtifact, dict[str, Any], GateDecision, int]:
    """The gate applied again to the candidate's recorded evaluation, with a fresh look for eval items
    in its training data and at the frozen hash of its eval-set version (whatever was selected in the
    run): (candidate, summary, decision, leaked items)."""
    candidate = candidate or read_candidate(home)
    summary = read_summary(home, candidate.version)
    leaks, problem = training_data_leaks(home, candidate.dataset_version, eval_set_table(home), project.curation)
    frozen = registry.frozen_eval_set(db_url, summary.get("eval_set_version", project.evaluation.eval_set_version))
    decision = gate(summary, project.evaluation, leaks, problem, frozen["content_hash"] if frozen else None)
    return candidate, summary, decision, len(leaks)


def candidate_verdict(home: FlywheelHome, candidate: ModelArtifact | None = None) -> tuple[ModelArtifact, str, list[str]]:
    """(candidate, outcome, reasons) of the candidate's (default: `models/candidate.json`'s) recorded evaluation."""
    candidate = candidate or read_candidate(home)
    verdict = read_summary(home, candidate.version).get("gate") or {}
    outcome = verdict.get("outcome") or ("promoted" if verdict.get("passed") else "blocked")
    return candidate, outcome, list(verdict.get("reasons") or [])


class PromotionRefused(StateError):
    """The candidate cannot become the champion (not evaluated, or it did not pass the gate)."""


@dataclass
class Promotion:
    record: registry.ModelRecord
    serving: dict[str, Any]
    history: list[dict[str, Any]]
    plot: Path


def promote_candidate(project: ProjectConfig, home: FlywheelHome, db_url: str, actor: str,
                      candidate: ModelArtifact | None = None) -> Promotion:
    """Make the candidate that passed the gate the champion (the old one retired), write the serving
    export (`models/champion.json`, `reports/serving.md`) and redraw the score history. A candidate
    that is already the champion is exported again; one that was not evaluated or failed the gate is
    refused (`PromotionRefused`) and nothing changes."""
    candidate = candidate or read_candidate(home)
    record = registry.get_model(db_url, candidate.version)
    if record is None or record.status not in (registry.CANDIDATE, registry.CHAMPION):
        why = "not evaluated" if record is None else f"status {record.status}: {record.reason}"
        raise PromotionRefused(f"candidate {candidate.version} cannot be promoted ({why}); the champion is unchanged")
    if record.status == registry.CANDIDATE:
        record = registry.promote(db_url, candidate.version, by=actor,
                                  reason=f"passed the gate: {'; '.join(record.gate_reasons)}")
    serving = export_champion(home, db_url, lora_name=project.name)
    rows = history.score_history(db_url, record.eval_set_version or project.evaluation.eval_set_version)
    plot = history.plot_score_history(rows, home.reports() / "score_history.png")
    return Promotion(record, serving, rows, plot)
