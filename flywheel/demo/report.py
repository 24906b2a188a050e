"""The demo's report: a table per cycle (trigger, live traffic, admission, dataset, scores, verdict with
its interval), what each cycle did, and a plot of the fixed-set score beside the live negative rate."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from flywheel.core.markdown import markdown_table
from flywheel.core.quarters import quarter_label
from flywheel.core.storage import FlywheelHome, atomic_path, write_json, write_text
from flywheel.demo.cycles import CycleResult
from flywheel.demo.scenario import SIMULATED_REVIEWER

REPORT_NAME = "demo.md"
RESULTS_NAME = "demo.json"
PLOT_NAME = "demo_scores.png"
SLICES = ("clean", "messy", "edge_case")
COLORS = {"promoted": "green", "held": "orange", "blocked": "red"}


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def interval_text(r: CycleResult) -> str:
    if r.interval is None or not r.scores:
        return "-"
    diff = r.scores["overall"] - r.champion_scores["overall"]
    return f"{diff:+.3f} [{r.interval[0]:+.3f}, {r.interval[1]:+.3f}]"


def verdict_text(r: CycleResult, width: int | None = None) -> str:
    """The verdict and what it rests on, short: `blocked: regression; slices clean, messy`."""
    kinds = []
    for reason in r.reasons:
        kind = reason.split(":", 1)[0]
        if kind.startswith(("under-powered", "training-seed", "slice '")) or kind in kinds:
            continue
        kinds.append(kind)
    slices = sorted({part.split("'")[1] for reason in r.reasons if reason.startswith(("slice regression", "slice '"))
                     for part in [reason[reason.index("slice '"):]] if "'" in part})
    detail = "; ".join([k for k in kinds if k != "slice regression"] + ([f"slices {', '.join(slices)}"] if slices else []))
    text = f"{r.outcome}: {detail}" if detail and not r.promoted else r.outcome
    return text if width is None or len(text) <= width else text[: width - 1] + "…"


def summary_rows(results: Sequence[CycleResult]) -> list[dict[str, str]]:
    """The per-cycle summary (one dict per cycle, ready for a table)."""
    rows = []
    for r in results:
        rows.append({
            "cycle": f"{r.number} {r.name}",
            "trigger": r.trigger,
            "live negative rate": f"{r.served.negative_rate:.1%}" if r.served else "-",
            "examples by source": ", ".join(f"{k} {v}" for k, v in sorted(r.by_source.items())) or "-",
            "held out": ", ".join(r.held_out) or "-",
            "overall": _fmt(r.scores.get("overall")),
            **{s: _fmt(r.scores.get(s)) for s in SLICES},
            "Δ vs champion [95% interval]": interval_text(r),
            "outcome": verdict_text(r),
        })
    return rows


def write_report(home: FlywheelHome, results: Sequence[CycleResult], seconds: float, size_name: str,
                 training_seed: int) -> Path:
    """`reports/demo.md` (the summary table, what each cycle did) and the score / negative-rate plot."""
    plot_cycles(results, home.reports() / PLOT_NAME)
    rows = summary_rows(results)
    lines = [
        "# flywheel demo: Nimbus Notes support assistant",
        "",
        f"Scenario size: {size_name}; training seed {training_seed}; {len(results)} cycles in {seconds:.0f} s. The "
        "champion of each week answers the simulated users; their reactions, every review decision and the "
        f"users themselves are **simulated** (reviewer `{SIMULATED_REVIEWER}`, deciding from the scenario's "
        "ground truth). chrF on the fixed eval set; the interval is the paired bootstrap widened by the "
        "training-seed spread.",
        "",
        markdown_table(list(rows[0]), [list(r.values()) for r in rows]) if rows else "",
        "",
        f"![fixed-set score and live negative rate per cycle]({PLOT_NAME})",
        "",
        "## Cycles",
    ]
    for r in results:
        lines.append(f"### {r.number}. {r.name}")
        if r.served:
            lines.append(f"- served by {r.served_by}: {r.served.requests} requests, {r.served.accuracy:.1%} answered "
                         f"right, live negative rate {r.served.negative_rate:.1%}")
        if r.traffic:
            lines.append(f"- captured {r.traffic['interactions']} interactions over {r.traffic['days']} days, "
                         f"{r.traffic['quarantined']} quarantined")
        lines.append(f"- retrain of {quarter_label(r.quarter) if r.quarter else '-'}, trigger: {r.trigger}"
                     + (f" ({r.trigger_reason})" if r.trigger_reason else ""))
        if r.review:
            lines.append(f"- simulated review: {r.review.items} items: {r.review.passed} passed, {r.review.fixed} fixed, "
                         f"{r.review.rejected} rejected")
        for batch, c in r.admission.items():
            lines.append(f"- admission sample {batch}: {c.items} rows reviewed, {c.passed} passed, {c.rejected} rejected")
        if r.held_out:
            lines.append(f"- held out by the admission gate: {', '.join(r.held_out)}")
        lines.append(f"- dataset {r.dataset_version}: " + (", ".join(f"{k} {v}" for k, v in r.by_source.items()) or "-"))
        lines.append(f"- candidate {r.candidate}: chrF " + ", ".join(f"{k} {v:.3f}" for k, v in r.scores.items())
                     + f" (champion: {_fmt(r.champion_scores.get('overall'))}); difference {interval_text(r)}")
        lines.append(f"- **{r.outcome}**")
        lines += [f"  - {reason}" for reason in r.reasons]
        lines.append(f"- Dagster runs: {', '.join(x[:8] for x in r.run_ids)} ({r.seconds:.0f} s)")
        lines.append("")
    lines += ["Open the runs, the asset lineage and the check results with `make ui`; `flywheel status` shows the "
              "flywheel's state (run it with FLYWHEEL_PROJECT pointing at the demo project, as `make ui` does)."]
    target = home.reports() / REPORT_NAME
    write_text("\n".join(lines) + "\n", target)
    write_json({"seconds": round(seconds, 1), "size": size_name, "training_seed": training_seed,
                "cycles": [cycle_record(r) for r in results]}, home.reports() / RESULTS_NAME)
    return target


def cycle_record(r: CycleResult) -> dict[str, object]:
    """One cycle as plain values (reports/demo.json, read by benchmarks/demo_robustness.py)."""
    return {"number": r.number, "name": r.name, "trigger": r.trigger, "outcome": r.outcome,
            "scores": {k: round(v, 4) for k, v in r.scores.items()},
            "champion_scores": {k: round(v, 4) for k, v in r.champion_scores.items()},
            "interval": [round(x, 4) for x in r.interval] if r.interval else None, "reasons": r.reasons,
            "held_out": r.held_out, "negative_rate": round(r.served.negative_rate, 4) if r.served else None,
            "seconds": round(r.seconds, 1)}


def plot_cycles(results: Sequence[CycleResult], target: Path) -> Path:
    """Candidate chrF per cycle (overall with its interval, and per slice; marker colour = verdict) and
    the live negative-signal rate of the weeks served (right axis)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    target.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    try:
        xs = [r.number for r in results]
        overall = [r.scores.get("overall", float("nan")) for r in results]
        ax.plot(xs, overall, color="black", linewidth=2, label="overall (candidate)")
        for s in SLICES:
            ax.plot(xs, [r.scores.get(s, float("nan")) for r in results], linewidth=1, alpha=0.7, label=s)
        for r in results:
            y = r.scores.get("overall", float("nan"))
            if r.interval is not None:
                champ = r.champion_scores.get("overall", float("nan"))
                ax.vlines(r.number, champ + r.interval[0], champ + r.interval[1], color=COLORS.get(r.outcome, "grey"),
                          linewidth=3, alpha=0.5)
            ax.scatter([r.number], [y], s=90, zorder=5, color=COLORS.get(r.outcome, "grey"),
                       marker={"promoted": "^", "held": "s"}.get(r.outcome, "x"))
        ax.set_xticks(xs, [f"{r.number}\n{r.name[:18]}" for r in results], fontsize=7)
        ax.set_ylabel("chrF on the fixed eval set (0-1)")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
        live = [(r.number, r.served.negative_rate) for r in results if r.served]
        if live:
            ax2 = ax.twinx()
            ax2.plot([x for x, _ in live], [y for _, y in live], color="purple", linestyle=":", marker="o",
                     label="live negative rate (week served)")
            ax2.set_ylabel("live negative-signal rate", color="purple")
            ax2.set_ylim(0, 1)
            ax2.legend(fontsize=7, loc="upper right")
        ax.set_title("Nimbus Notes demo: green promoted, orange held, red blocked (bars: interval)")
        ax.legend(fontsize=7, loc="lower right")
        fig.tight_layout()
        with atomic_path(target) as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)
    return target
