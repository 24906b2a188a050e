"""Loss curves of a training run: the points the trainer logs (training loss per logged step, validation
loss per evaluation), the per-epoch table, the PNG and a compact SVG small enough to show inline.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

if TYPE_CHECKING:
    from transformers import TrainerCallback

MAX_CURVE_POINTS = 200
Point = dict[str, float]
T = TypeVar("T")


def loss_curve_callback(
    points: list[Point],
    val_points: list[Point],
    on_point: Callable[[Point], None] | None = None,
    on_eval: Callable[[Point], None] | None = None,
) -> TrainerCallback:
    """A callback appending {step, epoch, loss[, lr]} per logged step to `points` and {step, epoch,
    val_loss} per evaluation to `val_points` (calling `on_point` / `on_eval` with each)."""
    from transformers import TrainerCallback

    class LossCurve(TrainerCallback):
        def on_log(
            self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None, **kwargs: Any
        ) -> None:
            if not logs:
                return
            where = {"step": int(state.global_step), "epoch": round(float(state.epoch or 0), 4)}
            if "loss" in logs:
                point = {**where, "loss": float(logs["loss"])}
                if "learning_rate" in logs:
                    point["lr"] = float(logs["learning_rate"])
                points.append(point)
                if on_point is not None:
                    on_point(point)
            if "eval_loss" in logs:
                val = {**where, "val_loss": float(logs["eval_loss"])}
                val_points.append(val)
                if on_eval is not None:
                    on_eval(val)

    return LossCurve()


def epoch_table(points: Sequence[Point], val_points: Sequence[Point]) -> list[dict[str, Any]]:
    """One row per evaluation: epoch, step, the mean training loss of the steps logged since the
    previous evaluation, and the validation loss."""
    rows, start = [], 0
    for v in val_points:
        window = [p["loss"] for p in points if start < p["step"] <= v["step"]]
        rows.append({"epoch": round(v["epoch"], 2), "step": int(v["step"]),
                     "train_loss": round(sum(window) / len(window), 4) if window else None,
                     "val_loss": round(v["val_loss"], 4)})
        start = int(v["step"])
    return rows


def downsample(points: list[T], n: int = MAX_CURVE_POINTS) -> list[T]:
    """At most `n` points, evenly spaced, always keeping the last."""
    if len(points) <= n:
        return points
    stride = len(points) / n
    picked = [points[int(i * stride)] for i in range(n - 1)]
    return [*picked, points[-1]]


def render_loss_curve(
    points: Sequence[Point], target: Path, title: str = "training loss", val_points: Sequence[Point] = ()
) -> Path | None:
    """A PNG of training loss over steps and validation loss at each evaluation (matplotlib Agg); None
    when matplotlib is missing or there are no points."""
    if not points or importlib.util.find_spec("matplotlib") is None:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=100)
    ax.plot([p["step"] for p in points], [p["loss"] for p in points], marker="." if len(points) < 40 else None,
            label="training loss")
    if val_points:
        ax.plot([p["step"] for p in val_points], [p["val_loss"] for p in val_points], marker="o",
                color="tab:orange", label="validation loss")
        ax.legend(loc="upper right", fontsize=8)
    ax.set_xlabel("step")
    ax.set_ylabel("loss (assistant tokens)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(target, format="png")
    plt.close(fig)
    return target


# --- the inline SVG ------------------------------------------------------------------------------
def _svg(train: Sequence[tuple[float, float]], val: Sequence[tuple[float, float]], width: int, height: int) -> str:
    xs = [x for x, _ in (*train, *val)]
    ys = [y for _, y in (*train, *val)]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    top, bottom, left = 10, height - 2, 22

    def pts(series: Sequence[tuple[float, float]]) -> str:
        def sx(x: float) -> int:
            return left + round((x - x0) / (x1 - x0 or 1) * (width - left - 2))

        def sy(y: float) -> int:
            return top + round((y1 - y) / (y1 - y0 or 1) * (bottom - top))

        return ",".join(f"{sx(x)},{sy(y)}" for x, y in series)

    parts = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' font-size='8'>",
             f"<text y='8'>{y1:.2f}</text><text y='{height - 2}'>{y0:.2f}</text>",
             f"<polyline fill='none' stroke='#1f77b4' points='{pts(train)}'/>",
             f"<text x='{width - 60}' y='8' fill='#1f77b4'>train</text>"]
    if val:
        parts += [f"<polyline fill='none' stroke='#ff7f0e' points='{pts(val)}'/>",
                  f"<text x='{width - 30}' y='8' fill='#ff7f0e'>val</text>"]
    return "".join(parts) + "</svg>"


def svg_data_url(svg: str) -> str:
    """`svg` as a data URL (percent-encoded, no spaces, fit for a markdown image)."""
    return "data:image/svg+xml," + quote(svg, safe="/:=',.")


def loss_curve_svg(points: Sequence[Point], val_points: Sequence[Point] = (), max_url_chars: int = 900,
                   width: int = 240, height: int = 70) -> str | None:
    """A small SVG of both curves whose data URL fits in `max_url_chars` (fewer points until it does);
    None when there are no training points."""
    if not points:
        return None
    val = [(p["step"], p["val_loss"]) for p in val_points]
    for n in (40, 30, 24, 18, 12, 8, 4):
        train = [(p["step"], p["loss"]) for p in downsample(list(points), n)]
        svg = _svg(train, downsample(val, n), width, height)
        if len(svg_data_url(svg)) <= max_url_chars:
            return svg
    return None

