"""`flywheel demo`: the whole loop, several cycles, on a laptop CPU, through the real Dagster jobs.

Scenario (flywheel.demo.scenario): a support assistant for the fictional Nimbus Notes. Cycles:
1. bootstrap: human seed + two synthetic generators -> dataset -> LoRA retrain -> eval -> gate -> promotion;
2. real traffic: a week of simulated production traffic (messy user messages, copies, resubmits,
   corrections) is logged with `CaptureWriter`, captured day by day, a review batch is selected, the
   *simulated* reviewer ("simulated-reviewer") decides it from the scenario's ground truth, the reviewed
   examples join the dataset -> retrain -> eval -> gate -> promotion (the messy slice improves);
3. (full size) another week of traffic, the same way;
4. a planted regression: a broken generator's file (answers paired with the wrong questions) joins the
   sources -> the candidate is worse -> the blocking `no_regression` check stops it; the champion stays.

This module never imports Dagster: it drives the jobs through a `flywheel.ops.runs.JobRunner` (the CLI
loads the code location's runner through its entry point; it executes them in-process on the instance).
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import yaml

from flywheel.core.storage import FlywheelHome, write_jsonl, write_text
from flywheel.curation.versions import latest_version
from flywheel.demo.scenario import (
    FULL,
    SIMULATED_REVIEWER,
    SMALL,
    ScenarioFiles,
    ScenarioSize,
    build_files,
    review_verdict,
    simulate_traffic,
    truth_of,
)
from flywheel.demo.scenario import RUBRIC as DEMO_RUBRIC
from flywheel.ops.runs import JobOutcomeLike, JobRunner

DEMO_PROJECT_DIR = "demo-project"
DEMO_MARKER = ".flywheel-demo"
REPORT_NAME = "demo.md"
PLOT_NAME = "demo_scores.png"
FIRST_TRAFFIC_WEEK = date(2026, 10, 26)  # a Monday, weeks before "today" in the scenario


@dataclass(frozen=True)
class Cycle:
    """One turn of the flywheel in the demo."""

    name: str
    traffic_week: date | None = None  # simulate, capture, label and review this week's traffic first
    model_skill: float = 0.4  # the deployed model's accuracy on messy input while that traffic was served
    add_broken_source: bool = False  # the planted regression


def cycles_for(size: ScenarioSize) -> list[Cycle]:
    week = FIRST_TRAFFIC_WEEK
    if size == SMALL:
        return [Cycle("bootstrap"), Cycle("real traffic", week, 0.35)]
    return [
        Cycle("bootstrap"),
        Cycle("real traffic", week, 0.35),
        Cycle("more traffic", week + timedelta(days=7), 0.55),
        Cycle("planted regression", add_broken_source=True),
    ]


# --- the demo project --------------------------------------------------------------------------
def project_config(size: ScenarioSize, broken: bool = False) -> dict[str, Any]:
    """The demo's flywheel.yaml: small thresholds and a training recipe tuned for the tiny model on a CPU."""
    synthetic = ["synthetic_polite.jsonl", "synthetic_terse.jsonl"] + (["synthetic_batch_job.jsonl"] if broken else [])
    return {
        "name": "nimbus-notes-support",
        "rubric": "rubric.md",
        "start_date": "2026-10-01",
        "labeling": {"batch_size": size.batch_size, "seed": 0},
        "sources": {"seed": ["seed.jsonl"], "synthetic": synthetic, "distilled": []},
        "curation": {"min_examples": size.min_examples, "answer_max_chars": 80, "max_generator_share": 0.8,
                     "review_sample_size": 10},
        "training": {
            "base_model": "tiny",
            "lora": {"r": 32, "alpha": 64, "dropout": 0.0, "target_modules": "all-linear",
                     "modules_to_save": ["embed_tokens", "lm_head"]},
            "learning_rate": 0.002,
            "epochs": 8.0,
            "batch_size": 4,
            "max_length": 256,
            "seed": 42,
        },
        # slices of 30-40 items: a tiny model's per-slice chrF moves by a few points between equally good
        # candidates, so the demo tolerates 0.08 per slice (the overall score must still rise)
        "evaluation": {"eval_set": "eval.jsonl", "max_new_tokens": 80, "batch_size": 32,
                       "bootstrap_samples": 200, "primary_metric": "chrf", "slice_tolerance": 0.08},
        "automation": {"timezone": "UTC"},
    }


def write_project(folder: Path, files: ScenarioFiles, size: ScenarioSize, broken: bool = False) -> None:
    """Write the demo project: flywheel.yaml, the rubric, the seed, synthetic and eval files."""
    folder.mkdir(parents=True, exist_ok=True)
    write_text(yaml.safe_dump(project_config(size, broken), sort_keys=False), folder / "flywheel.yaml")
    write_text(DEMO_RUBRIC, folder / "rubric.md")
    write_jsonl([{"messages": r["messages"]} for r in files.seed], folder / "seed.jsonl")
    write_jsonl(files.synthetic_a, folder / "synthetic_polite.jsonl")
    write_jsonl(files.synthetic_b, folder / "synthetic_terse.jsonl")
    write_jsonl(files.broken, folder / "synthetic_batch_job.jsonl")
    write_jsonl([{"messages": r["messages"], "slice": r["slice"]} for r in files.eval_set], folder / "eval.jsonl")
    write_text("written by `flywheel demo`; re-running the demo replaces this folder and the demo data\n",
               folder / DEMO_MARKER)


def reset_home(home: FlywheelHome) -> None:
    """Start from a clean demo state: remove a previous demo's data (the cached tiny base model stays).

    Refuses a home that holds data but no demo project, so the demo never wipes real traffic."""
    root = home.root
    if not root.exists():
        return
    entries = [p for p in root.iterdir() if p.name not in ("models",)]
    models = [p for p in (root / "models").iterdir()] if (root / "models").is_dir() else []
    if (entries or [m for m in models if m.name != "base-tiny"]) and not (root / DEMO_PROJECT_DIR / DEMO_MARKER).exists():
        raise RuntimeError(f"{root}: holds data that the demo did not write; point FLYWHEEL_HOME at an empty "
                           f"folder for the demo (the demo replaces everything under it)")
    for p in entries:
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    for m in models:
        if m.name != "base-tiny":
            shutil.rmtree(m) if m.is_dir() else m.unlink()


# --- traffic and review --------------------------------------------------------------------------
def log_traffic(home: FlywheelHome, days: list[str], size: ScenarioSize, skill: float, model_version: str,
                taken: set[str]) -> dict[str, str]:
    """Write the days' simulated traffic into the landing zone with the capture SDK; returns the ground truth."""
    from flywheel.capture.sdk import CaptureWriter

    truth: dict[str, str] = {}
    with CaptureWriter(home) as writer:
        for day in days:
            interactions = simulate_traffic(day, size, skill, model_version, taken=taken)
            truth.update(truth_of(interactions))
            for it in interactions:
                writer.log_interaction(
                    [{"role": "user", "content": it.text}], it.output, session_id=it.session_id, user_id=it.user_id,
                    model_version=model_version, latency_ms=it.latency_ms, confidence=it.confidence,
                    metadata={"app": "nimbus-web", "simulated": True}, interaction_id=it.interaction_id, ts=it.ts,
                )
                for fb in it.feedback:
                    writer.log_feedback(fb["interaction_id"], fb["kind"], text=fb.get("text"), ts=fb["ts"])
            writer.flush()
    return truth


@dataclass
class ReviewCounts:
    items: int = 0
    passed: int = 0
    fixed: int = 0
    rejected: int = 0


def simulated_review(db_url: str, batch_id: str, truth: dict[str, str]) -> ReviewCounts:
    """The SIMULATED reviewer decides every item of a batch from the scenario's ground truth, through the
    labeling engineer's decision store (the same path the review page and `flywheel labeling import` use)."""
    from flywheel.labeling.decisions import record_decision
    from flywheel.labeling.store import ReviewStore

    store = ReviewStore(db_url)
    counts = ReviewCounts()
    for item in store.items(batch_id):
        verdict, fixed = review_verdict(item.get("input_text") or "", item.get("output") or "",
                                        truth.get(item.get("interaction_id") or ""))
        record_decision(store, batch_id, item["item_id"], SIMULATED_REVIEWER, verdict, text=fixed,
                        reason="simulated reviewer: no intent in the scenario's ground truth" if verdict == "reject" else None)
        counts.items += 1
        setattr(counts, {"pass": "passed", "fix": "fixed", "reject": "rejected"}[verdict],
                getattr(counts, {"pass": "passed", "fix": "fixed", "reject": "rejected"}[verdict]) + 1)
    return counts


# --- one cycle -----------------------------------------------------------------------------------
@dataclass
class CycleResult:
    number: int
    name: str
    traffic: dict[str, int] = field(default_factory=dict)  # captured interactions, quarantined
    review: ReviewCounts | None = None
    dataset_version: str | None = None
    by_source: dict[str, int] = field(default_factory=dict)
    candidate: str | None = None
    scores: dict[str, float] = field(default_factory=dict)  # overall + per slice, candidate
    champion_scores: dict[str, float] = field(default_factory=dict)
    promoted: bool = False
    blocked_reason: str | None = None
    run_ids: list[str] = field(default_factory=list)
    seconds: float = 0.0


class DemoError(RuntimeError):
    """A demo step failed; names the job, run and error."""


def _require(outcome: JobOutcomeLike, what: str) -> JobOutcomeLike:
    if not outcome.success:
        raise DemoError(f"{what}: job {outcome.job} failed (run {outcome.run_id}): {outcome.error}")
    return outcome


Progress = Callable[[str], None]


def run_cycle(number: int, cycle: Cycle, runner: JobRunner, home: FlywheelHome, project_dir: Path, db_url: str,
              files: ScenarioFiles, size: ScenarioSize, say: Progress) -> CycleResult:
    """Traffic (optional) -> capture -> labeling -> simulated review -> reviewed examples -> retrain."""
    from flywheel.models.history import score_history
    from flywheel.models.registry import current_champion

    start = time.perf_counter()
    result = CycleResult(number, cycle.name)
    tags = {"flywheel/demo-cycle": str(number), "flywheel/trigger": "demo"}
    if cycle.traffic_week is not None:
        week = cycle.traffic_week.isoformat()
        days = [(cycle.traffic_week + timedelta(days=i)).isoformat() for i in range(size.traffic_days)]
        champion = current_champion(db_url)
        model_version = champion.version if champion else "none"
        say(f"cycle {number}: simulating {len(days)} days of production traffic served by {model_version}")
        truth = log_traffic(home, days, size, cycle.model_skill, model_version, files.taken_inputs)
        captured = quarantined = 0
        for day in days:
            say(f"cycle {number}: daily_capture {day}")
            out = _require(runner.run("daily_capture", partition_key=day, tags=tags), f"capture {day}")
            result.run_ids.append(out.run_id)
            meta = out.materialized.get("interactions", {})
            captured += int(meta.get("rows_accepted", meta.get("accepted", meta.get("rows", 0))) or 0)
            quarantined += int(meta.get("rows_quarantined", meta.get("quarantined", 0)) or 0)
        result.traffic = {"interactions": captured or len(truth), "quarantined": quarantined, "days": len(days)}
        say(f"cycle {number}: weekly_labeling {week}")
        result.run_ids.append(_require(runner.run("weekly_labeling", partition_key=week, tags=tags), "labeling").run_id)
        say(f"cycle {number}: {SIMULATED_REVIEWER} reviews batch {week}")
        result.review = simulated_review(db_url, week, truth)
        say(f"cycle {number}: weekly_reviewed_examples {week}")
        result.run_ids.append(_require(runner.run("weekly_reviewed_examples", partition_key=week, tags=tags),
                                       "reviewed examples").run_id)
    if cycle.add_broken_source:
        say(f"cycle {number}: adding the broken generator's file to sources.synthetic (the planted regression)")
        write_text(yaml.safe_dump(project_config(size, broken=True), sort_keys=False), project_dir / "flywheel.yaml")

    say(f"cycle {number}: retrain (dataset -> LoRA adapter -> evaluation -> gate -> promotion)")
    before = current_champion(db_url)
    out = runner.run("retrain", tags={**tags, "flywheel/reason": f"demo cycle {number}: {cycle.name}"})
    result.run_ids.append(out.run_id)
    ds = out.materialized.get("training_dataset", {})
    result.dataset_version = ds.get("version") or latest_version(home)
    manifest = home.dataset(result.dataset_version) / "manifest.json" if result.dataset_version else None
    if manifest and manifest.exists():
        result.by_source = json.loads(manifest.read_text())["counts"].get("by_source", {})
    ev = out.materialized.get("candidate_evaluation")
    if ev is None:
        raise DemoError(f"cycle {number}: the retrain run {out.run_id} did not evaluate a candidate: {out.error}")
    result.candidate = ev.get("candidate")
    history = score_history(db_url, 1)
    row = next((r for r in reversed(history) if r["candidate"] == result.candidate), None)
    if row is not None:
        result.scores = {"overall": row["candidate_score"],
                         **{s: v["candidate"] for s, v in sorted(row["slices"].items())}}
        result.champion_scores = {"overall": row["champion_score"],
                                  **{s: v["champion"] for s, v in sorted(row["slices"].items())}}
    after = current_champion(db_url)
    result.promoted = after is not None and after.version == result.candidate and (before is None or before.version != after.version)
    if not result.promoted:
        failed = [c for c in out.failed_checks() if c.name == "no_regression"] or out.failed_checks()
        result.blocked_reason = failed[0].description if failed else (out.error or "not promoted")
        if before is not None and (after is None or after.version != before.version):
            raise DemoError(f"cycle {number}: the champion changed although the candidate was blocked")
    result.seconds = time.perf_counter() - start
    return result


# --- report ----------------------------------------------------------------------------------
SLICES = ("clean", "messy", "edge_case")


def summary_rows(results: list[CycleResult]) -> list[dict[str, str]]:
    """The per-cycle summary (one dict per cycle, ready for a table)."""
    rows = []
    for r in results:
        sources = ", ".join(f"{k} {v}" for k, v in sorted(r.by_source.items())) or "-"
        rows.append({
            "cycle": f"{r.number} {r.name}",
            "examples by source": sources,
            "dataset": r.dataset_version or "-",
            "overall": _fmt(r.scores.get("overall")),
            **{s: _fmt(r.scores.get(s)) for s in SLICES},
            "outcome": "promoted" if r.promoted else f"blocked: {r.blocked_reason}",
        })
    return rows


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def write_report(home: FlywheelHome, results: list[CycleResult], seconds: float, size_name: str) -> Path:
    """`reports/demo.md` (the summary table, what each cycle did) and the score-per-cycle PNG."""
    plot_cycles(results, home.reports() / PLOT_NAME)
    rows = summary_rows(results)
    header = list(rows[0]) if rows else []
    lines = [
        "# flywheel demo: Nimbus Notes support assistant",
        "",
        f"Scenario size: {size_name}; {len(results)} cycles in {seconds:.0f} s. All traffic and every review "
        f"decision are **simulated** (reviewer `{SIMULATED_REVIEWER}`, deciding from the scenario's ground truth).",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(r[h].replace("|", "/") for h in header) + " |" for r in rows),
        "",
        f"![fixed-set score per cycle]({PLOT_NAME})",
        "",
        "## Cycles",
    ]
    for r in results:
        lines.append(f"### {r.number}. {r.name}")
        if r.traffic:
            lines.append(f"- traffic: {r.traffic['interactions']} interactions over {r.traffic['days']} days captured, "
                         f"{r.traffic['quarantined']} quarantined")
        if r.review:
            lines.append(f"- simulated review: {r.review.items} items: {r.review.passed} passed, {r.review.fixed} fixed, "
                         f"{r.review.rejected} rejected")
        lines.append(f"- dataset {r.dataset_version}: " + (", ".join(f"{k} {v}" for k, v in r.by_source.items()) or "-"))
        lines.append(f"- candidate {r.candidate}: chrF " + ", ".join(f"{k} {v:.3f}" for k, v in r.scores.items())
                     + f" (champion before: {_fmt(r.champion_scores.get('overall'))})")
        lines.append(f"- **{'promoted' if r.promoted else 'blocked'}**" + ("" if r.promoted else f": {r.blocked_reason}"))
        lines.append(f"- Dagster runs: {', '.join(x[:8] for x in r.run_ids)} ({r.seconds:.0f} s)")
        lines.append("")
    lines += ["Open the runs, the asset lineage and the check results with `make ui`; `flywheel status` shows the "
              "flywheel's state (run it with FLYWHEEL_PROJECT pointing at the demo project, as `make ui` does)."]
    target = home.reports() / REPORT_NAME
    write_text("\n".join(lines) + "\n", target)
    return target


def plot_cycles(results: list[CycleResult], target: Path) -> Path:
    """Candidate chrF per cycle (overall and per slice); promoted cycles green, blocked red."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    target.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    try:
        xs = [r.number for r in results]
        ax.plot(xs, [r.scores.get("overall", float("nan")) for r in results], color="black", linewidth=2, label="overall")
        for s in SLICES:
            ax.plot(xs, [r.scores.get(s, float("nan")) for r in results], linewidth=1, alpha=0.8, label=s)
        for r in results:
            ax.scatter([r.number], [r.scores.get("overall", float("nan"))], s=90, zorder=5,
                       color="green" if r.promoted else "red", marker="^" if r.promoted else "x")
        ax.set_xticks(xs, [f"{r.number}\n{r.name}" for r in results], fontsize=8)
        ax.set_ylabel("chrF on the fixed eval set (0-1)")
        ax.set_title("Nimbus Notes demo: score per cycle (green promoted, red blocked)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        tmp = target.with_name(f".{target.name}.tmp.png")
        fig.savefig(tmp, format="png")
        tmp.replace(target)
    finally:
        plt.close(fig)
    return target


# --- the whole demo ------------------------------------------------------------------------------
@dataclass
class DemoResult:
    cycles: list[CycleResult]
    report: Path
    seconds: float
    project_dir: Path


def run_demo(runner: JobRunner, home: FlywheelHome, size: ScenarioSize = FULL, db_url: str | None = None,
             keep: bool = False, say: Progress = lambda _msg: None, cycles: list[Cycle] | None = None) -> DemoResult:
    """Run every cycle of the scenario through `runner`; write the report. Deterministic for a given size."""
    start = time.perf_counter()
    if not keep:
        reset_home(home)
    project_dir = home.path(DEMO_PROJECT_DIR)
    files = build_files(size)
    write_project(project_dir, files, size)
    db_url = db_url or home.database_url()
    results = []
    for number, cycle in enumerate(cycles or cycles_for(size), start=1):
        results.append(run_cycle(number, cycle, runner, home, project_dir, db_url, files, size, say))
        r = results[-1]
        say(f"cycle {number} ({cycle.name}): chrF {_fmt(r.scores.get('overall'))}, "
            + ("promoted" if r.promoted else f"blocked: {r.blocked_reason}"))
    seconds = time.perf_counter() - start
    report = write_report(home, results, seconds, "small" if size == SMALL else "full")
    return DemoResult(results, report, seconds, project_dir)
