"""Optional MLflow tracking: a training run logs params, train/val loss and the adapter folder to a real
`mlflow server` (started here on 127.0.0.1 with a temp backend store and artifact root), read back
through the MLflow client.

The server needs the full `mlflow` package, which pins pyarrow below the version this project runs
with, so it may live in its own environment: `$FLYWHEEL_TEST_MLFLOW` (an `mlflow` executable), else
`<venv>/mlflow-server/bin/mlflow`, else this interpreter when it has the full package. The client side
is the `mlflow` extra (mlflow-skinny)."""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest

from flywheel.config import TrainingConfig
from flywheel.core.storage import FlywheelHome
from flywheel.training.tracking import EXPERIMENT_ENV, TRACKING_URI_ENV, training_params
from flywheel.training.trainer import train
from tests.training.examples import qa_examples, request, write_dataset, write_eval_set

SERVER_ENV = "FLYWHEEL_TEST_MLFLOW"


def _server_command() -> list[str] | None:
    for candidate in (os.environ.get(SERVER_ENV), str(Path(sys.prefix) / "mlflow-server" / "bin" / "mlflow")):
        if candidate and Path(candidate).is_file():
            return [candidate]
    if importlib.util.find_spec("mlflow") and importlib.util.find_spec("flask"):  # the full package here
        return [sys.executable, "-m", "mlflow"]
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def mlflow_server(tmp_path: Path) -> Iterator[str]:
    if importlib.util.find_spec("mlflow") is None:
        pytest.skip("the mlflow client is not installed (pip install -e '.[mlflow]')")
    command = _server_command()
    if command is None:
        pytest.skip(f"no `mlflow server` available: install mlflow (full package) or set ${SERVER_ENV}")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = (tmp_path / "mlflow-server.log").open("wb")
    proc = subprocess.Popen(
        [*command, "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{tmp_path / 'mlflow.db'}",
         "--artifacts-destination", str(tmp_path / "mlflow-artifacts")],
        stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"mlflow server did not start: {(tmp_path / 'mlflow-server.log').read_text()[-2000:]}")
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def test_params_flatten_the_training_config() -> None:
    params = training_params(TrainingConfig(), version="v1", device="cpu", missing=None)
    assert params["learning_rate"] == "0.0002" and params["lora.r"] == "16" and params["lora.alpha"] == "32"
    assert params["lora.target_modules"] == "all-linear" and params["version"] == "v1" and "missing" not in params
    assert "device_tags" not in params


def test_a_training_run_is_an_mlflow_run(home: FlywheelHome, mlflow_server: str,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv(TRACKING_URI_ENV, mlflow_server)
    monkeypatch.setenv(EXPERIMENT_ENV, "flywheel-test")
    write_dataset(home, qa_examples(100))
    eval_path = write_eval_set(home, qa_examples(5, seed=9, offset=1000))
    result = train(request(home, eval_path, max_steps=None, epochs=2))
    m = result.manifest

    client = MlflowClient(mlflow_server)
    experiment = client.get_experiment_by_name("flywheel-test")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.run_id == m["tracking"]["mlflow_run_id"] and run.info.status == "FINISHED"
    assert run.info.run_name == result.version
    params = run.data.params
    assert params["learning_rate"] == "0.002" and params["epochs"] == "2.0" and params["lora.r"] == "4"
    assert params["version"] == result.version and params["dataset_version"] == "ds0001"
    assert params["validation_examples"] == "10" and params["base_model"] == "tiny"
    train_loss = client.get_metric_history(run.info.run_id, "train_loss")
    assert [(h.step, h.value) for h in sorted(train_loss, key=lambda h: h.step)] == [
        (p["step"], p["loss"]) for p in m["loss_curve"]]
    val_loss = client.get_metric_history(run.info.run_id, "val_loss")
    assert [(h.step, h.value) for h in sorted(val_loss, key=lambda h: h.step)] == [
        (p["step"], p["val_loss"]) for p in m["val_curve"]]
    assert len(val_loss) == 2  # one per epoch
    assert run.data.metrics["final/tokens_per_s"] == m["metrics"]["tokens_per_s"]
    artifacts = {Path(a.path).name for a in client.list_artifacts(run.info.run_id, "adapter")}
    assert {"adapter_model.safetensors", "adapter_config.json", "manifest.json", "loss_curve.png"} <= artifacts
    local = client.download_artifacts(run.info.run_id, "adapter/adapter_model.safetensors", str(home.root))
    assert Path(local).read_bytes() == (Path(result.path) / "adapter_model.safetensors").read_bytes()


def test_an_unreachable_server_does_not_fail_training(home: FlywheelHome, monkeypatch: pytest.MonkeyPatch) -> None:
    if importlib.util.find_spec("mlflow") is None:
        pytest.skip("the mlflow client is not installed (pip install -e '.[mlflow]')")
    monkeypatch.setenv(TRACKING_URI_ENV, f"http://127.0.0.1:{_free_port()}")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    write_dataset(home, qa_examples(20))
    messages: list[str] = []
    result = train(request(home, max_steps=1), log=messages.append)
    assert result.manifest["tracking"] is None
    assert any("MLflow" in msg and "not tracked" in msg for msg in messages)
