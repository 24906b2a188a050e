"""`flywheel demo`: the whole loop, several cycles, on a laptop CPU, through the real Dagster jobs.

Scenario (flywheel.demo.scenario): a support assistant for the fictional Nimbus Notes. The champion of
each week answers the simulated users (flywheel.demo.traffic), and the cycles (flywheel.demo.cycles) are:
1. bootstrap: human seed + two synthetic generators (each file admitted by its reviewed sample) ->
   dataset -> LoRA adapter (+ a seed replicate) -> evaluation -> gate: promoted over the base model;
2. week 1: the champion serves a week of messy users; from Wednesday the Android app's users write
   with device details, order numbers and e-mail addresses; the live negative rate is above the team's
   alert level and the metric-drop rule (the sensor's `decide_retrain`) asks for a retrain; capture, labeling, the *simulated*
   reviewer ("simulated-reviewer"), reviewed examples; a third generator's file arrives with answers
   paired to the wrong questions, its admission sample fails and it is held out -> promoted;
3. week 2: the new champion serves the next week (the live negative rate falls); a recipe change (2
   epochs instead of 8) -> the candidate under-fits -> blocked, slices named; the champion stays.

This package never imports Dagster: it drives the jobs through a `flywheel.ops.runs.JobRunner` (the CLI
loads the code location's runner through its entry point; it executes them in-process on the instance).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from flywheel.capture.pseudonyms import KEY_ENV
from flywheel.core.storage import FlywheelHome, write_text
from flywheel.demo.cycles import Cycle, CycleResult, Progress, cycles_for, run_cycle
from flywheel.demo.project import (
    DEFAULT_TRAINING_SEED,
    DEMO_MARKER,
    demo_project_dir,
    reset_home,
    write_project,
)
from flywheel.demo.report import write_report
from flywheel.demo.scenario import FULL, SMALL, ScenarioSize, build_files
from flywheel.ops.runs import JobRunner

DEMO_PSEUDONYM_KEY = "flywheel-demo-only-pseudonym-key"
"""The demo's own pseudonym key, used when $FLYWHEEL_PSEUDONYM_KEY is unset: public (it is in the source), so
fit only for the simulated users; a real project sets a secret key."""


@dataclass
class DemoResult:
    cycles: list[CycleResult]
    report: Path
    seconds: float
    project_dir: Path


def run_demo(runner: JobRunner, home: FlywheelHome, size: ScenarioSize = FULL, db_url: str | None = None,
             keep: bool = False, say: Progress = lambda _msg: None, cycles: list[Cycle] | None = None,
             training_seed: int = DEFAULT_TRAINING_SEED) -> DemoResult:
    """Run every cycle of the scenario through `runner`; write the report. Deterministic for a given size
    and training seed. Without $FLYWHEEL_PSEUDONYM_KEY, capture pseudonymises with `DEMO_PSEUDONYM_KEY`."""
    start = time.perf_counter()
    os.environ.setdefault(KEY_ENV, DEMO_PSEUDONYM_KEY)  # the jobs read it at run time, in this process
    if not keep:
        reset_home(home)
    project_dir = demo_project_dir(home)
    files = build_files(size)
    write_project(project_dir, files, size, training_seed=training_seed)
    if home.remote:  # what `reset_home` looks for before it replaces a home's data
        write_text("written by `flywheel demo`\n", home.path(DEMO_MARKER))
    db_url = db_url or home.database_url()
    results: list[CycleResult] = []
    for number, cycle in enumerate(cycles or cycles_for(size), start=1):
        result = run_cycle(number, cycle, runner, home, project_dir, db_url, files, size, say, training_seed)
        results.append(result)
        say(f"cycle {number} ({cycle.name}): chrF {result.scores.get('overall', float('nan')):.3f}, {result.outcome}"
            + ("" if result.promoted else f": {(result.reasons or [''])[0][:120]}"))
    seconds = time.perf_counter() - start
    report = write_report(home, results, seconds, "small" if size == SMALL else "full", training_seed)
    return DemoResult(results, report, seconds, project_dir)
