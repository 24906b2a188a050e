"""The demo's cycles: what happens in each turn of the flywheel, driven through the real Dagster jobs.

A cycle may serve a week of traffic with the current champion (capture, labeling, the simulated
reviewer, reviewed examples), may ask the metric-drop rule whether the live negative rate calls for a
retrain (the same `decide_retrain` the sensor runs), may change the sources or the training recipe,
and always ends with the source admission (new synthetic files' samples reviewed) and a retrain whose
gate verdict is promoted, held or blocked.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from flywheel.config import load_project
from flywheel.core.errors import FlywheelError
from flywheel.core.quarters import previous_quarter, quarter_key, quarter_label
from flywheel.core.storage import FlywheelHome
from flywheel.curation.versions import latest_version, read_manifest
from flywheel.demo.project import BROKEN_FILE, write_project_config
from flywheel.demo.scenario import (
    SIMULATED_REVIEWER,
    ScenarioFiles,
    ScenarioSize,
    review_verdict,
    sample_verdict,
)
from flywheel.demo.traffic import ServedWeek, serve_week
from flywheel.evaluation.cycle import read_summary
from flywheel.labeling.decisions import record_decision
from flywheel.labeling.store import ReviewStore
from flywheel.models.artifact import read_artifact
from flywheel.models.registry import current_champion
from flywheel.ops.monitoring import decide_retrain
from flywheel.ops.runs import JobOutcomeLike, JobRunner

FIRST_TRAFFIC_WEEK = date(2026, 10, 26)  # a Monday, weeks before "today" in the scenario
ADMISSION_PREFIX = "admission-"
Progress = Callable[[str], None]


@dataclass(frozen=True)
class Cycle:
    """One turn of the flywheel in the demo."""

    name: str
    traffic_week: date | None = None  # serve, capture, label and review this week's traffic first
    drift_from: int | None = None  # from this day of the week on, users write differently (the Android launch)
    trigger: str = "quarterly"  # what starts the retrain: quarterly (the schedule) | metric_drop (the sensor's rule)
    add_broken_source: bool = False  # a generator whose batch job paired questions with wrong answers
    recipe: dict[str, Any] | None = None  # training keys changed for this cycle's candidate


def cycles_for(size: ScenarioSize) -> list[Cycle]:
    """bootstrap; week 1 (the Android app launches mid-week: the metric-drop rule asks for a retrain, and a
    broken generator's file arrives); week 2 served by the new champion, with a recipe change to block."""
    week = FIRST_TRAFFIC_WEEK
    return [
        Cycle("bootstrap"),
        Cycle("week 1: Android launch", week, drift_from=2, trigger="metric_drop", add_broken_source=True),
        # a teammate cuts the epochs from 8 to 2 to save GPU hours: the candidate under-fits (the gate must block it)
        Cycle("week 2: recipe change", week + timedelta(days=7), drift_from=0, recipe={"epochs": 2.0}),
    ]


@dataclass
class ReviewCounts:
    items: int = 0
    passed: int = 0
    fixed: int = 0
    rejected: int = 0

    def add(self, verdict: str) -> None:
        self.items += 1
        field_name = {"pass": "passed", "fix": "fixed", "reject": "rejected"}[verdict]
        setattr(self, field_name, getattr(self, field_name) + 1)


@dataclass
class CycleResult:
    number: int
    name: str
    trigger: str = "quarterly"
    trigger_reason: str = ""
    quarter: str = ""  # the retrain chain's partition (key), e.g. 2026-10-01 (2026-Q4)
    served_by: str | None = None
    served: ServedWeek | None = None
    traffic: dict[str, int] = field(default_factory=dict)  # captured interactions, quarantined
    review: ReviewCounts | None = None
    admission: dict[str, ReviewCounts] = field(default_factory=dict)  # batch -> its simulated sample review
    held_out: list[str] = field(default_factory=list)  # source files the admission gate kept out
    dataset_version: str | None = None
    by_source: dict[str, int] = field(default_factory=dict)
    candidate: str | None = None
    scores: dict[str, float] = field(default_factory=dict)  # overall + per slice, candidate
    champion_scores: dict[str, float] = field(default_factory=dict)
    outcome: str = ""
    interval: tuple[float, float] | None = None
    reasons: list[str] = field(default_factory=list)
    run_ids: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def promoted(self) -> bool:
        return self.outcome == "promoted"


class DemoError(FlywheelError, RuntimeError):
    """A demo step failed; names the job, run and error."""


def _require(outcome: JobOutcomeLike, what: str) -> JobOutcomeLike:
    if not outcome.success:
        raise DemoError(f"{what}: job {outcome.job} failed (run {outcome.run_id}): {outcome.error}")
    return outcome


def simulated_review(db_url: str, batch_id: str, truth: dict[str, str]) -> ReviewCounts:
    """The SIMULATED reviewer decides every item of a weekly batch from the scenario's ground truth,
    through the decision store (the same path the review page and `flywheel labeling import` use)."""
    store = ReviewStore(db_url)
    counts = ReviewCounts()
    for item in store.items(batch_id):
        verdict, fixed = review_verdict(item.get("input_text") or "", item.get("output") or "",
                                        truth.get(item.get("interaction_id") or ""))
        record_decision(store, batch_id, item["item_id"], SIMULATED_REVIEWER, verdict, text=fixed,
                        reason="simulated reviewer: no intent in the scenario's ground truth" if verdict == "reject" else None)
        counts.add(verdict)
    return counts


def review_admission_samples(db_url: str, truth: dict[str, str]) -> dict[str, ReviewCounts]:
    """The simulated reviewer decides every undecided item of the source files' admission samples: a
    right answer passes, a wrong one (the broken generator's) is rejected."""
    store = ReviewStore(db_url)
    done: dict[str, ReviewCounts] = {}
    for batch_id in store.batch_ids():
        if not batch_id.startswith(ADMISSION_PREFIX) or store.progress(batch_id).state != "open":
            continue
        counts = ReviewCounts()
        for item in store.items(batch_id):
            verdict, fixed = sample_verdict(item.get("input_text") or "", item.get("output") or "", truth)
            record_decision(store, batch_id, item["item_id"], SIMULATED_REVIEWER, verdict, text=fixed,
                            reason="simulated reviewer: the answer belongs to another question" if verdict == "reject" else None)
            counts.add(verdict)
        done[batch_id] = counts
    return done


def _metric_drop(home: FlywheelHome, project_dir: Path, week: date, days: int) -> tuple[bool, str]:
    """The metric-drop rule (the sensor's `decide_retrain`) at the end of the week's last served day on the
    simulated clock; the champion has served since the week's Monday, its first days are the baseline."""
    automation = load_project(project_dir).automation
    now = datetime.combine(week + timedelta(days=days), datetime.min.time(), tzinfo=UTC)
    since = datetime.combine(week, datetime.min.time(), tzinfo=UTC)
    decision = decide_retrain(home, automation, now=now, champion_promoted_at=since, last_triggered=None)
    return decision.retrain, decision.reason


def run_cycle(number: int, cycle: Cycle, runner: JobRunner, home: FlywheelHome, project_dir: Path, db_url: str,
              files: ScenarioFiles, size: ScenarioSize, say: Progress, training_seed: int) -> CycleResult:
    """[serve a week -> capture -> (metric-drop rule) -> labeling -> simulated review -> reviewed examples]
    -> [sources / recipe change] -> source admission -> retrain -> the gate's verdict."""
    start = time.perf_counter()
    result = CycleResult(number, cycle.name, trigger=cycle.trigger)
    tags = {"flywheel/demo-cycle": str(number), "flywheel/trigger": "demo"}
    if cycle.traffic_week is not None:
        week = cycle.traffic_week.isoformat()
        days = [(cycle.traffic_week + timedelta(days=i)).isoformat() for i in range(size.traffic_days)]
        champion = current_champion(db_url)
        model = read_artifact(home, champion.version, champion.adapter_path) if champion else "tiny"
        result.served_by = champion.version if champion else "base model"
        say(f"cycle {number}: {result.served_by} answers {len(days)} days of simulated users"
            + ("" if cycle.drift_from is None else " (Android users all week)" if cycle.drift_from == 0
               else f" (the Android app launches on {days[cycle.drift_from]})"))
        result.served = serve_week(home, days, size, model, result.served_by, files.taken_inputs,
                                   drift_from=cycle.drift_from)
        captured = quarantined = 0
        for day in days:
            say(f"cycle {number}: daily_capture {day}")
            out = _require(runner.run("daily_capture", partition_key=day, tags=tags), f"capture {day}")
            result.run_ids.append(out.run_id)
            meta = out.materialized.get("interactions", {})
            captured += int(meta.get("rows_accepted", meta.get("accepted", meta.get("rows", 0))) or 0)
            quarantined += int(meta.get("rows_quarantined", meta.get("quarantined", 0)) or 0)
        result.traffic = {"interactions": captured, "quarantined": quarantined, "days": len(days)}
        if cycle.trigger == "metric_drop":
            retrain, reason = _metric_drop(home, project_dir, cycle.traffic_week, len(days))
            say(f"cycle {number}: metric-drop rule: {'retrain' if retrain else 'no retrain'}: {reason}")
            result.trigger_reason = reason
            if not retrain:
                result.trigger = "quarterly"  # the rule did not fire: the next scheduled retrain picks the week up
        say(f"cycle {number}: weekly_labeling {week}")
        result.run_ids.append(_require(runner.run("weekly_labeling", partition_key=week, tags=tags), "labeling").run_id)
        say(f"cycle {number}: {SIMULATED_REVIEWER} reviews batch {week}")
        result.review = simulated_review(db_url, week, result.served.truth)
        say(f"cycle {number}: weekly_reviewed_examples {week}")
        result.run_ids.append(_require(runner.run("weekly_reviewed_examples", partition_key=week, tags=tags),
                                       "reviewed examples").run_id)
    if cycle.add_broken_source or cycle.recipe:
        if cycle.add_broken_source:
            say(f"cycle {number}: a third generator's file joins sources.synthetic")
        if cycle.recipe:
            say(f"cycle {number}: the training recipe changes: {cycle.recipe}")
        broken = cycle.add_broken_source or BROKEN_FILE in load_project(project_dir).sources.synthetic
        write_project_config(project_dir, size, broken=broken, training_seed=training_seed, recipe=cycle.recipe)

    say(f"cycle {number}: source admission (each synthetic file's sample is reviewed before it may train)")
    result.run_ids.append(_require(runner.run("source_admission", tags=tags), "source admission").run_id)
    result.admission = review_admission_samples(db_url, files.truth)

    why = result.trigger_reason if result.trigger == "metric_drop" else f"demo cycle {number}: {cycle.name}"
    result.quarter = retrain_quarter(cycle)
    say(f"cycle {number}: retrain {quarter_label(result.quarter)} ({result.trigger}) -> evaluation -> gate")
    out = runner.run("retrain", partition_key=result.quarter,
                     tags={**tags, "flywheel/reason": why[:255], "flywheel/retrain-trigger": result.trigger})
    result.run_ids.append(out.run_id)
    _read_retrain(result, out, home, db_url, number)
    result.seconds = time.perf_counter() - start
    return result


def retrain_quarter(cycle: Cycle) -> str:
    """The quarter a cycle's retrain materializes: the bootstrap is the quarterly schedule's tick on the first day
    of the traffic's quarter (it retrains the quarter that just closed); a week's retrain, by the metric-drop rule
    or the next scheduled one, is the quarter of its traffic."""
    if cycle.traffic_week is None:
        return previous_quarter(quarter_key(FIRST_TRAFFIC_WEEK))
    return quarter_key(cycle.traffic_week)


def _read_retrain(result: CycleResult, out: JobOutcomeLike, home: FlywheelHome, db_url: str, number: int) -> None:
    """The retrain run's dataset, scores and gate verdict into `result`; a failed run is an error."""
    if not out.success:
        raise DemoError(f"cycle {number}: the retrain run {out.run_id} failed: {out.error}")
    ds = out.materialized.get("training_dataset", {})
    result.dataset_version = ds.get("version") or latest_version(home)
    manifest = read_manifest(home, result.dataset_version) if result.dataset_version else None
    if manifest is not None:
        result.by_source = manifest["counts"].get("by_source", {})
        result.held_out = [a["name"] for a in manifest.get("admission", []) if a.get("status") != "admitted"]
    ev = out.materialized.get("candidate_evaluation")
    if ev is None:
        raise DemoError(f"cycle {number}: the retrain run {out.run_id} did not evaluate a candidate: {out.error}")
    result.candidate = ev.get("candidate")
    summary = read_summary(home, str(result.candidate))
    gate = summary.get("gate") or {}
    result.outcome = gate.get("outcome", "")
    result.reasons = list(gate.get("reasons") or [])
    overall = gate.get("overall") or {}
    if overall:
        result.interval = (overall["low"], overall["high"])
    primary = summary["primary_metric"]
    result.scores = {"overall": summary["overall"][primary]["candidate"],
                     **{s: v["metrics"][primary]["candidate"] for s, v in sorted(summary["slices"].items())}}
    result.champion_scores = {"overall": summary["overall"][primary]["champion"],
                              **{s: v["metrics"][primary]["champion"] for s, v in sorted(summary["slices"].items())}}
    champion = current_champion(db_url)
    if result.promoted and (champion is None or champion.version != result.candidate):
        raise DemoError(f"cycle {number}: {result.candidate} was promoted but the registry's champion is "
                        f"{champion.version if champion else None}")
    if not result.promoted and champion is not None and champion.version == result.candidate:
        raise DemoError(f"cycle {number}: {result.candidate} was {result.outcome} but became the champion")
