"""`flywheel status`: where the flywheel stands and what needs a person, as one data object (the CLI
renders it with rich).

It reads only what the stages wrote: the landing zone and the warehouse files, the decision store,
`datasets/LATEST` and its manifest, the model registry and its score history, and the project's
`automation` schedule. `FlywheelStatus.findings()` is the doctor: stale capture, landing days not
captured, open review batches of every kind, automation that is off by default, the champion's age
and the last candidate's gate outcome. The home may be a local folder or on object storage
(`flywheel.core.storage`): files are listed and read through its paths.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flywheel.capture.landing import landing_days, landing_files
from flywheel.capture.pii import ner_available
from flywheel.capture.records import INTERACTIONS
from flywheel.config import ProjectConfig
from flywheel.core.cron import parse_cron
from flywheel.core.storage import FlywheelHome, parquet_file
from flywheel.curation.versions import latest_version, read_manifest

SPARK = "▁▂▃▄▅▆▇█"
STALE_CAPTURE_DAYS = 2  # no landing file for this many days (today counts as 0): the traffic stopped arriving
# the code location's schedules and sensors whose default status is STOPPED, and what covers for them
# (tests/ops/test_status.py keeps this in step with definitions.py)
OFF_BY_DEFAULT = {
    "daily_capture_schedule": "the capture_landing_sensor captures each day as its landing files arrive; "
                              "turn the schedule on only to capture at automation.capture_cron instead",
}


@dataclass
class CaptureStatus:
    last_day: str | None
    last_day_interactions: int
    last_day_quarantined: int
    days_captured: int
    last_landing_day: str | None = None  # the newest day with a completed landing file
    landing_age_days: int | None = None  # today (UTC) minus last_landing_day
    uncaptured_days: list[str] = field(default_factory=list)  # landing days without a warehouse file

    @property
    def stale(self) -> bool:
        return self.landing_age_days is not None and self.landing_age_days >= STALE_CAPTURE_DAYS


@dataclass
class BatchStatus:
    batch_id: str
    state: str  # open | complete | closed
    items: int
    decided: int
    turned_into_examples: bool  # weekly: warehouse/reviewed_examples/<week>.parquet exists; others: complete
    kind: str = "weekly"  # weekly | sample | conflict | admission

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
    age_days: int | None = None


@dataclass
class GateStatus:
    """The gate's verdict on the last evaluated candidate."""

    candidate: str
    outcome: str  # promoted | held | blocked (`passed`: promoted by the gate, not yet champion)
    first_reason: str | None
    at: str | None


@dataclass
class Finding:
    level: str  # ok | note | warn
    topic: str
    message: str


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
    last_gate: GateStatus | None = None
    pii_ner: str | None = None  # the spaCy pipeline NER runs with where rows become training data
    pii_ner_missing: str | None = None  # why NER does not run (None when it does)

    @property
    def pending_batches(self) -> list[BatchStatus]:
        """Weekly batches not yet turned into reviewed examples."""
        return [b for b in self.batches if b.kind == "weekly" and not b.turned_into_examples]

    @property
    def open_batches(self) -> list[BatchStatus]:
        """Batches of every kind still waiting for decisions."""
        return [b for b in self.batches if b.state == "open"]

    def findings(self) -> list[Finding]:
        """What needs attention, in words (the doctor)."""
        return doctor(self)

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
def capture_status(home: FlywheelHome, today: date | None = None) -> CaptureStatus:
    """The last captured day, the last day traffic landed and how old it is, and landing days not captured."""
    today = today or datetime.now(UTC).date()
    files = sorted(home.warehouse("interactions").glob("????-??-??.parquet"))
    landed = [d for d in landing_days(home, INTERACTIONS) if landing_files(home, INTERACTIONS, d)]
    captured = {f.stem for f in files}
    last_landing = landed[-1] if landed else None
    landing = {"last_landing_day": last_landing,
               "landing_age_days": (today - date.fromisoformat(last_landing)).days if last_landing else None,
               "uncaptured_days": [d for d in landed if d not in captured and d < today.isoformat()]}
    if not files:
        return CaptureStatus(None, 0, 0, 0, **landing)
    last = files[-1]
    day = last.stem
    quarantine = home.quarantine("interactions", day)
    quarantined = parquet_file(quarantine).metadata.num_rows if quarantine.exists() else 0
    return CaptureStatus(day, parquet_file(last).metadata.num_rows, quarantined, len(files), **landing)


# --- review ----------------------------------------------------------------------------------
def batch_statuses(home: FlywheelHome, db_url: str) -> list[BatchStatus]:
    """Every review batch of every kind (weekly, dataset sample, conflicts, admission) with its progress."""
    from flywheel.labeling.store import ReviewStore

    store = ReviewStore(db_url)
    out = []
    for batch_id in store.batch_ids():
        kind = store.batch(batch_id).kind
        p = store.progress(batch_id)
        done = home.warehouse("reviewed_examples", batch_id).exists() if kind == "weekly" else p.complete
        out.append(BatchStatus(batch_id, p.state, p.items, p.decided, done, kind))
    return sorted(out, key=lambda b: (b.kind != "weekly", b.kind, b.batch_id))


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
def champion_status(db_url: str, primary_metric: str, now: datetime | None = None) -> ChampionStatus | None:
    from flywheel.models.registry import current_champion

    c = current_champion(db_url)
    if c is None:
        return None
    overall = (c.scores or {}).get("overall") or {}
    score = overall.get(primary_metric)
    if isinstance(score, dict):
        score = score.get("candidate")
    promoted = _utc(c.promoted_at)
    age = None if promoted is None else ((now or datetime.now(UTC)) - promoted).days
    return ChampionStatus(c.version, promoted.isoformat(timespec="minutes") if promoted else None,
                          c.promoted_by, c.dataset_version, score, age)


def last_gate(db_url: str, history: list[dict[str, Any]]) -> GateStatus | None:
    """The gate's verdict on the newest evaluated candidate, with its first reason (from the registry)."""
    from flywheel.models.registry import get_model

    if not history:
        return None
    row = history[-1]
    record = get_model(db_url, row["candidate"])
    reasons = (record.gate_reasons or ([record.reason] if record.reason else [])) if record else []
    at = _utc(row.get("at"))
    return GateStatus(row["candidate"], row.get("outcome") or "?", reasons[0] if reasons else None,
                      at.isoformat(timespec="minutes") if at else None)


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


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
    """The schedules that run by default, soonest first (daily_capture_schedule is off by default: the
    landing sensor captures instead, so it is never named here)."""
    a = project.automation
    steps = [
        NextStep("weekly labeling", next_cron_time(a.labeling_cron, now, a.timezone),
                 "select the review batch of the week that just ended"),
        NextStep("quarterly retrain", next_cron_time(a.retrain_cron, now, a.timezone),
                 "dataset -> LoRA retrain -> evaluation -> gate -> promotion"),
    ]
    return sorted(steps, key=lambda s: s.at)


def collect_status(project: ProjectConfig, home: FlywheelHome, db_url: str, now: datetime | None = None) -> FlywheelStatus:
    """Gather the status from the home, the decision store and the registry."""
    from flywheel.models.history import score_history

    now = now or datetime.now(UTC)
    metric = project.evaluation.primary_metric
    history = score_history(db_url, project.evaluation.eval_set_version)
    return FlywheelStatus(
        home=str(home.root),
        project=str(project.root),
        capture=capture_status(home, now.astimezone(UTC).date()),
        batches=batch_statuses(home, db_url),
        dataset=dataset_status(home),
        champion=champion_status(db_url, metric, now),
        primary_metric=metric,
        history=history,
        next_steps=next_steps(project, now),
        last_gate=last_gate(db_url, history),
        **pii_ner_status(project),
    )


def pii_ner_status(project: ProjectConfig) -> dict[str, str | None]:
    """Which spaCy pipeline the NER pass of training-bound rows uses, or why none runs."""
    pii = project.capture.pii
    if not pii.enabled or not pii.ner:
        return {"pii_ner": None, "pii_ner_missing": "capture.pii is off" if not pii.enabled else "capture.pii.ner is off"}
    model, why = ner_available(pii.ner_models)
    return {"pii_ner": model, "pii_ner_missing": why}


# --- the doctor ------------------------------------------------------------------------------
def doctor(st: FlywheelStatus) -> list[Finding]:
    """Findings in words, most pressing first: capture, review, automation, champion, gate."""
    out: list[Finding] = []
    c = st.capture
    if c.last_landing_day is None:
        out.append(Finding("warn", "capture", "no landing files yet: nothing is writing traffic to "
                           f"{st.home}/landing (README 'Point it at real traffic')"))
    elif c.stale:
        out.append(Finding("warn", "capture", f"stale: the last landing files are from {c.last_landing_day}, "
                           f"{c.landing_age_days} days old; is the serving fleet still writing to this home?"))
    else:
        out.append(Finding("ok", "capture", f"traffic landed {c.last_landing_day} "
                           f"({'today' if c.landing_age_days == 0 else f'{c.landing_age_days} day(s) ago'})"))
    if c.uncaptured_days:
        out.append(Finding("warn", "capture", f"{len(c.uncaptured_days)} landing day(s) not captured "
                           f"({', '.join(c.uncaptured_days[-3:])}): is the dagster daemon running the "
                           f"capture_landing_sensor? (`flywheel backfill capture --from {c.uncaptured_days[0]} "
                           f"--to {c.uncaptured_days[-1]}` catches up)"))
    for b in st.open_batches:
        out.append(Finding("note", "review", f"{b.kind} batch {b.batch_id} open: {b.decided}/{b.items} decided"))
    for b in st.pending_batches:
        if b.state != "open":
            out.append(Finding("note", "review", f"weekly batch {b.batch_id} is {b.state} but not yet turned into "
                               "reviewed examples (the review_complete_sensor does it)"))
    if st.pii_ner_missing:
        out.append(Finding("warn", "pii", f"NER does not run ({st.pii_ner_missing}): names and street addresses in "
                           "labeling batches, dataset versions, the eval set and fixed answers are checked by "
                           "patterns only"))
    elif st.pii_ner:
        out.append(Finding("ok", "pii", f"NER with spaCy pipeline {st.pii_ner} on rows that become training data"))
    for name, covered in OFF_BY_DEFAULT.items():
        out.append(Finding("note", "automation", f"{name} is off by default: {covered}"))
    if st.champion is None:
        out.append(Finding("note", "champion", "no champion yet (the first candidate the gate promotes becomes it)"))
    else:
        ch = st.champion
        age = "?" if ch.age_days is None else f"{ch.age_days} day(s)"
        out.append(Finding("ok", "champion", f"{ch.version}, champion for {age} (by {ch.promoted_by or '?'})"))
    g = st.last_gate
    if g is not None:
        outcome = "promoted by the gate, not yet champion" if g.outcome == "passed" else g.outcome
        level = {"blocked": "warn", "held": "note"}.get(g.outcome, "ok")
        out.append(Finding(level, "gate", f"last candidate {g.candidate}: {outcome}"
                           + (f" ({g.first_reason})" if g.first_reason else "")))
    return out


# --- rendering (rich) --------------------------------------------------------------------------
def render_status(st: FlywheelStatus) -> Any:
    """A rich renderable of the whole status (one screen)."""
    from rich.console import Group
    from rich.markup import escape
    from rich.panel import Panel
    from rich.table import Table

    parts: list[Any] = []
    c = st.capture
    capture_line = ("nothing captured yet (write landing files, see README 'Point it at real traffic')" if c.last_day is None
                    else f"last captured day [bold]{c.last_day}[/]: {c.last_day_interactions} interactions, "
                         f"{c.last_day_quarantined} quarantined ({c.days_captured} days captured)")
    parts.append(Panel(capture_line, title="capture", expand=True))
    colors = {"ok": "green", "note": "yellow", "warn": "red"}
    findings = "\n".join(f"[{colors[f.level]}]{f.level:>4}[/] {f.topic}: {escape(f.message)}" for f in st.findings())
    parts.append(Panel(findings or "all clear", title="doctor", expand=True))

    batches = Table(title="review batches", expand=True)
    for col in ("kind", "batch", "state", "progress", "examples"):
        batches.add_column(col)
    shown = [b for b in st.batches if b.kind == "weekly"][-6:]
    shown += [b for b in st.open_batches if b.kind != "weekly"]
    for b in shown:
        bar = "█" * int(b.progress * 20) + "░" * (20 - int(b.progress * 20))
        done = "written" if b.kind == "weekly" else "done"
        batches.add_row(b.kind, b.batch_id, b.state, f"{bar} {b.decided}/{b.items}",
                        done if b.turned_into_examples else "[yellow]pending[/]")
    if not st.batches:
        batches.add_row("-", "-", "no batches yet", "", "")
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
        age = "" if ch.age_days is None else f" ({ch.age_days} day(s) ago)"
        parts.append(Panel(f"[bold]{ch.version}[/] promoted {ch.promoted_at or '?'}{age} by {ch.promoted_by or '?'}; "
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
