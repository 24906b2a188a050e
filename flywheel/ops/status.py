"""`flywheel status`: where the flywheel stands, as one data object (the CLI renders it with rich).

It reads only what the stages wrote: the warehouse files, the decision store, `datasets/LATEST` and
its manifest, the model registry and its score history, and the project's `automation` schedule.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow.parquet as pq

from flywheel.config import ProjectConfig
from flywheel.core.cron import parse_cron
from flywheel.core.storage import FlywheelHome
from flywheel.curation.versions import latest_version, read_manifest

SPARK = "▁▂▃▄▅▆▇█"


@dataclass
class CaptureStatus:
    last_day: str | None
    last_day_interactions: int
    last_day_quarantined: int
    days_captured: int


@dataclass
class BatchStatus:
    batch_id: str
    state: str  # open | complete | closed
    items: int
    decided: int
    turned_into_examples: bool  # warehouse/reviewed_examples/<week>.parquet exists

    @property
    def progress(self) -> float:
        return self.decided / self.items if self.items else 0.0


@dataclass
class DatasetStatus:
    version: str
    created: str | None
    counts: dict[str, Any]  # train / input / dropped rows and training rows by source
    checks: dict[str, Any]  # rule name -> {passed, blocking, message} (the dataset's quality rules)


@dataclass
class ChampionStatus:
    version: str
    promoted_at: str | None
    promoted_by: str | None
    dataset_version: str | None
    score: float | None


@dataclass
class NextStep:
    name: str
    at: datetime
    what: str


@dataclass
class FlywheelStatus:
    """Everything `flywheel status` shows on one screen."""

    home: str
    project: str
    capture: CaptureStatus
    batches: list[BatchStatus]
    dataset: DatasetStatus | None
    champion: ChampionStatus | None
    primary_metric: str
    history: list[dict[str, Any]] = field(default_factory=list)  # flywheel.models.history.score_history rows
    next_steps: list[NextStep] = field(default_factory=list)

    @property
    def pending_batches(self) -> list[BatchStatus]:
        return [b for b in self.batches if not b.turned_into_examples]

    def sparkline(self) -> str:
        return sparkline([r["candidate_score"] for r in self.history])


def sparkline(values: list[float]) -> str:
    """A one-line chart of `values` (scaled between their min and max)."""
    if not values:
        return ""
    lo, hi = min(values), max(values)
    span = hi - lo
    return "".join(SPARK[0 if span == 0 else min(len(SPARK) - 1, int((v - lo) / span * (len(SPARK) - 1) + 0.5))]
                   for v in values)


# --- capture ---------------------------------------------------------------------------------
def capture_status(home: FlywheelHome) -> CaptureStatus:
    files = sorted(home.warehouse("interactions").glob("????-??-??.parquet"))
    if not files:
        return CaptureStatus(None, 0, 0, 0)
    last = files[-1]
    day = last.stem
    quarantine = home.quarantine("interactions", day)
    quarantined = pq.ParquetFile(quarantine).metadata.num_rows if quarantine.exists() else 0
    return CaptureStatus(day, pq.ParquetFile(last).metadata.num_rows, quarantined, len(files))


# --- review ----------------------------------------------------------------------------------
def batch_statuses(home: FlywheelHome, db_url: str) -> list[BatchStatus]:
    from flywheel.labeling.store import ReviewStore

    store = ReviewStore(db_url)
    out = []
    for batch_id in store.batch_ids(kind="weekly"):
        p = store.progress(batch_id)
        out.append(BatchStatus(batch_id, p.state, p.items, p.decided,
                               home.warehouse("reviewed_examples", batch_id).exists()))
    return sorted(out, key=lambda b: b.batch_id)


# --- dataset ---------------------------------------------------------------------------------
def dataset_status(home: FlywheelHome) -> DatasetStatus | None:
    version = latest_version(home)
    if version is None:
        return None
    manifest = read_manifest(home, version) or {}
    counts = manifest.get("counts") or {}
    shown = {k: counts[k] for k in ("train", "input", "dropped") if k in counts}
    shown.update({f"{k}": v for k, v in (counts.get("by_source") or {}).items()})
    checks = {r["name"]: r for r in manifest.get("rules") or [] if "name" in r}
    return DatasetStatus(version, manifest.get("created"), shown, checks)


# --- models ----------------------------------------------------------------------------------
def champion_status(db_url: str, primary_metric: str) -> ChampionStatus | None:
    from flywheel.models.registry import current_champion

    c = current_champion(db_url)
    if c is None:
        return None
    overall = (c.scores or {}).get("overall") or {}
    score = overall.get(primary_metric)
    if isinstance(score, dict):
        score = score.get("candidate")
    return ChampionStatus(c.version, c.promoted_at.isoformat(timespec="minutes") if c.promoted_at else None,
                          c.promoted_by, c.dataset_version, score)


# --- schedule --------------------------------------------------------------------------------
def next_cron_time(cron: str, after: datetime, timezone: str = "UTC") -> datetime:
    """The first time strictly after `after` that `cron` fires in `timezone` (returned in UTC)."""
    spec = parse_cron(cron)
    minutes, hours = sorted(spec.minutes), sorted(spec.hours)
    tz = ZoneInfo(timezone)
    local = after.astimezone(tz)
    day = local.date()
    for _ in range(800):
        if spec.fires_on(day):
            for h in hours:
                for m in minutes:
                    t = datetime(day.year, day.month, day.day, h, m, tzinfo=tz)
                    if t > local:
                        return t.astimezone(UTC)
        day += timedelta(days=1)
    raise ValueError(f"cron {cron!r} never fires")


def next_steps(project: ProjectConfig, now: datetime) -> list[NextStep]:
    a = project.automation
    steps = [
        NextStep("weekly labeling", next_cron_time(a.labeling_cron, now, a.timezone),
                 "select the review batch of the week that just ended"),
        NextStep("quarterly retrain", next_cron_time(a.retrain_cron, now, a.timezone),
                 "dataset -> LoRA retrain -> evaluation -> gate -> promotion"),
        NextStep("daily capture", next_cron_time(a.capture_cron, now, a.timezone),
                 "capture yesterday's traffic (the landing sensor usually does it sooner)"),
    ]
    return sorted(steps, key=lambda s: s.at)


def collect_status(project: ProjectConfig, home: FlywheelHome, db_url: str, now: datetime | None = None) -> FlywheelStatus:
    """Gather the status from the home, the decision store and the registry."""
    from flywheel.models.history import score_history

    now = now or datetime.now(UTC)
    metric = project.evaluation.primary_metric
    return FlywheelStatus(
        home=str(home.root),
        project=str(project.root),
        capture=capture_status(home),
        batches=batch_statuses(home, db_url),
        dataset=dataset_status(home),
        champion=champion_status(db_url, metric),
        primary_metric=metric,
        history=score_history(db_url, project.evaluation.eval_set_version),
        next_steps=next_steps(project, now),
    )


# --- rendering (rich) --------------------------------------------------------------------------
def render_status(st: FlywheelStatus) -> Any:
    """A rich renderable of the whole status (one screen)."""
    from rich.console import Group
    from rich.panel import Panel
    from rich.table import Table

    parts: list[Any] = []
    c = st.capture
    capture_line = ("nothing captured yet (write landing files, see README 'Point it at real traffic')" if c.last_day is None
                    else f"last captured day [bold]{c.last_day}[/]: {c.last_day_interactions} interactions, "
                         f"{c.last_day_quarantined} quarantined ({c.days_captured} days captured)")
    parts.append(Panel(capture_line, title="capture", expand=True))

    batches = Table(title="review batches", expand=True)
    for col in ("week", "state", "progress", "examples"):
        batches.add_column(col)
    for b in st.batches[-6:]:
        bar = "█" * int(b.progress * 20) + "░" * (20 - int(b.progress * 20))
        batches.add_row(b.batch_id, b.state, f"{bar} {b.decided}/{b.items}",
                        "written" if b.turned_into_examples else "[yellow]pending[/]")
    if not st.batches:
        batches.add_row("-", "no batches yet", "", "")
    parts.append(batches)

    if st.dataset is None:
        parts.append(Panel("no dataset version yet (materialize training_dataset)", title="dataset"))
    else:
        d = st.dataset
        counts = ", ".join(f"{k} {v}" for k, v in d.counts.items() if not isinstance(v, dict)) or "-"
        checks = ", ".join(f"{k}: {_check_mark(v)}" for k, v in d.checks.items()) or "-"
        parts.append(Panel(f"version [bold]{d.version}[/] ({d.created or '?'})\ncounts: {counts}\nchecks: {checks}",
                           title="latest dataset"))

    if st.champion is None:
        parts.append(Panel("no champion yet", title="champion"))
    else:
        ch = st.champion
        score = "-" if ch.score is None else f"{ch.score:.3f}"
        parts.append(Panel(f"[bold]{ch.version}[/] promoted {ch.promoted_at or '?'} by {ch.promoted_by or '?'}; "
                           f"dataset {ch.dataset_version or '?'}; {st.primary_metric} {score}", title="champion"))

    hist = Table(title=f"fixed-set {st.primary_metric} per cycle  {st.sparkline()}", expand=True)
    for col in ("cycle", "candidate", "score", "champion score", "diff", "outcome"):
        hist.add_column(col)
    for r in st.history[-8:]:
        color = {"promoted": "green", "passed": "green", "held": "yellow", "blocked": "red", "rejected": "red"}.get(r.get("outcome", ""), "white")
        champ = r.get("champion_score")
        diff = r.get("diff")
        hist.add_row(str(r["cycle"]), str(r.get("candidate")), f"{r['candidate_score']:.3f}",
                     "-" if champ is None else f"{champ:.3f}", "-" if diff is None else f"{diff:+.3f}",
                     f"[{color}]{r.get('outcome')}[/]")
    if not st.history:
        hist.add_row("-", "no evaluations yet", "", "", "", "")
    parts.append(hist)

    if st.next_steps:
        nxt = st.next_steps[0]
        later = "; ".join(f"{s.name} {s.at:%Y-%m-%d %H:%M} UTC" for s in st.next_steps[1:])
        parts.append(Panel(f"[bold]{nxt.name}[/] at {nxt.at:%Y-%m-%d %H:%M} UTC: {nxt.what}\nthen: {later}",
                           title="next scheduled step"))
    return Group(*parts)


def _check_mark(value: Any) -> str:
    if _passed(value):
        return "[green]ok[/]"
    blocking = value.get("blocking", True) if isinstance(value, dict) else True
    return "[red]failed[/]" if blocking else "[yellow]warn[/]"


def _passed(value: Any) -> bool:
    if isinstance(value, dict):
        return bool(value.get("passed", value.get("ok", False)))
    return bool(value)
