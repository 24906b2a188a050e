"""Optional experiment tracking: with `MLFLOW_TRACKING_URI` set, each training run is an MLflow run.

The run (named after the model version, in the experiment `$MLFLOW_EXPERIMENT_NAME`, default
`flywheel`) gets the hyperparameters as params, `train_loss` per logged step and `val_loss` per
evaluation as metrics (step = optimizer step), the run's summary metrics, and the adapter folder as
the artifact `adapter/`. Without the variable nothing is imported or sent; with it but without mlflow
installed (`pip install 'flywheel[mlflow]'`), or when the tracking server fails, the run goes on
untracked with a warning: tracking never changes what is trained, nor fails a run.
"""

from __future__ import annotations

import importlib.util
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from flywheel.config import TrainingConfig

TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
EXPERIMENT_ENV = "MLFLOW_EXPERIMENT_NAME"
DEFAULT_EXPERIMENT = "flywheel"
ARTIFACT_PATH = "adapter"
FLUSH_EVERY = 50


def training_params(cfg: TrainingConfig, **extra: Any) -> dict[str, str]:
    """The run's params: the training config flattened to dotted keys (lists joined), plus `extra`."""
    flat: dict[str, str] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else k, v)
        else:
            flat[prefix] = ",".join(map(str, value)) if isinstance(value, list) else str(value)

    walk("", cfg.model_dump(mode="json", exclude=TrainingConfig.PLACEMENT_KEYS))
    walk("", {k: v for k, v in extra.items() if v is not None})
    return flat


class Tracker:
    """Where a training run reports; this base class drops everything (tracking off)."""

    run_id: str | None = None
    experiment_id: str | None = None

    def train_point(self, point: dict[str, float]) -> None:
        """A logged training step: {step, loss, ...}."""

    def val_point(self, point: dict[str, float]) -> None:
        """An evaluation: {step, val_loss, ...}."""

    def finish(self, adapter_dir: Path, metrics: dict[str, Any]) -> None:
        """The run succeeded: its summary metrics and the adapter folder."""


class MlflowTracker(Tracker):
    """Buffers metrics and sends them in batches (each evaluation flushes) to one MLflow run; the first
    failed request is reported through `say` and ends the tracking of this run."""

    def __init__(self, client: Any, run_id: str, experiment_id: str, say: Callable[[str], None]) -> None:
        self.client, self.run_id, self.experiment_id, self.say = client, run_id, experiment_id, say
        self._pending: list[Any] = []
        self.broken = False

    def _send(self, call: Callable[..., Any], *args: Any) -> None:
        if self.broken:
            return
        try:
            call(*args)
        except Exception as exc:  # the tracking server must not fail a training run
            self.broken = True
            self.say(f"warning: MLflow tracking of run {self.run_id} stopped: {type(exc).__name__}: {exc}")

    def _metric(self, key: str, value: float, step: int) -> None:
        from mlflow.entities import Metric

        self._pending.append(Metric(key, float(value), int(time.time() * 1000), int(step)))

    def flush(self) -> None:
        if self._pending:
            self._send(lambda: self.client.log_batch(self.run_id, metrics=self._pending))
            self._pending = []

    def train_point(self, point: dict[str, float]) -> None:
        self._metric("train_loss", point["loss"], int(point["step"]))
        if "lr" in point:
            self._metric("learning_rate", point["lr"], int(point["step"]))
        if len(self._pending) >= FLUSH_EVERY:
            self.flush()

    def val_point(self, point: dict[str, float]) -> None:
        self._metric("val_loss", point["val_loss"], int(point["step"]))
        self._metric("epoch", point["epoch"], int(point["step"]))
        self.flush()

    def finish(self, adapter_dir: Path, metrics: dict[str, Any]) -> None:
        step = int(metrics.get("steps") or 0)
        for key, value in metrics.items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                self._metric(f"final/{key}", value, step)
        self.flush()
        self._send(self.client.log_artifacts, self.run_id, str(adapter_dir), ARTIFACT_PATH)


def _experiment_id(client: Any, name: str) -> str:
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    try:
        return client.create_experiment(name)
    except Exception:  # created meanwhile by a seed replicate's process
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


@contextmanager
def tracked_run(
    version: str, params: dict[str, str], tags: dict[str, str], say: Callable[[str], None]
) -> Iterator[Tracker]:
    """An MLflow run for one training run when `MLFLOW_TRACKING_URI` is set, else a tracker that drops
    everything. The run ends FINISHED when the block completes, FAILED (KILLED when interrupted) when it
    raises."""
    uri = os.environ.get(TRACKING_URI_ENV)
    if not uri:
        yield Tracker()
        return
    if importlib.util.find_spec("mlflow") is None:
        say(f"warning: {TRACKING_URI_ENV} is set but mlflow is not installed (pip install 'flywheel[mlflow]'): "
            "this run is not tracked")
        yield Tracker()
        return
    from mlflow.entities import Param, RunTag
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    try:
        experiment = _experiment_id(client, os.environ.get(EXPERIMENT_ENV) or DEFAULT_EXPERIMENT)
        run = client.create_run(experiment, run_name=version, tags={"flywheel.version": version, **tags})
        client.log_batch(run.info.run_id, params=[Param(k, v) for k, v in sorted(params.items())],
                         tags=[RunTag("flywheel.source", "flywheel.training")])
    except Exception as exc:
        say(f"warning: MLflow at {TRACKING_URI_ENV} is unusable ({type(exc).__name__}: {exc}): this run is not tracked")
        yield Tracker()
        return
    tracker = MlflowTracker(client, run.info.run_id, experiment, say)
    say(f"tracking in MLflow: experiment {experiment}, run {tracker.run_id}")
    try:
        yield tracker
    except BaseException as exc:
        tracker.flush()
        tracker._send(client.set_terminated, tracker.run_id, "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
        raise
    tracker._send(client.set_terminated, tracker.run_id, "FINISHED")
