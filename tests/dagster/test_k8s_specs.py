"""The Kubernetes deployment without a cluster: dagster-k8s's own K8sRunLauncher and PipesK8sClient talk to a
Kubernetes API served by the test on 127.0.0.1, which records what they submit; every object is checked
against Kubernetes' schemas (kubernetes-validate, offline, strict). deploy/k8s/dagster.yaml must be a
valid instance config, deploy/k8s/rbac.yaml valid objects, deploy/helm/values.yaml consistent with both."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import dagster as dg
import kubernetes
import kubernetes_validate
import pytest
import yaml
from dagster._core.code_pointer import ModuleCodePointer
from dagster._core.instance.config import dagster_instance_config
from dagster._core.launcher import LaunchRunContext
from dagster._core.origin import JobPythonOrigin, RepositoryPythonOrigin
from dagster._core.storage.dagster_run import DagsterRun
from dagster_k8s.pipes import build_pod_body

from assets.training_launch import run_training, training_pod_run_args
from flywheel.config import TrainingConfig, TrainingPodConfig
from flywheel.training.pod_spec import retrain_run_tags
from flywheel.training.request import TrainingRequest
from tests.shared_data import REPO

DEPLOY = REPO / "deploy"
IMAGE = "registry.example.com/flywheel:0.1.0"
K8S_VERSIONS = ("1.29.0", kubernetes_validate.latest_version())
SECRET_ENV = {"AWS_ACCESS_KEY_ID": "AKIA-TEST", "FLYWHEEL_DATABASE_URL": "postgresql+psycopg2://u:p@db/flywheel"}


def validate(obj: dict[str, Any]) -> None:
    for version in K8S_VERSIONS:
        kubernetes_validate.validate(obj, version, strict=True)


class FakeKubernetes(ThreadingHTTPServer):
    """The part of the Kubernetes API the launcher and the Pipes client use. A created pod "runs" its first
    container's command here, with the container's env (Secret references resolved from SECRET_ENV), in place
    of `python`: `sys.executable`, so the logs it serves are what the process printed."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.created: list[tuple[str, dict[str, Any]]] = []  # (path, body)
        self.logs: dict[str, str] = {}
        self.deleted: list[str] = []
        self.exit_codes: dict[str, int] = {}

    def run_pod(self, pod: dict[str, Any]) -> None:
        container = pod["spec"]["containers"][0]
        env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "OMP_WAIT_POLICY")}
        for item in container.get("env", []):
            ref = item.get("valueFrom", {}).get("secretKeyRef")
            env[item["name"]] = SECRET_ENV[item["name"]] if ref else item["value"]
        command = [sys.executable if c == "python" else c for c in container["command"]]
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, cwd=REPO)
        start = datetime.now(UTC)  # the kubelet stamps every line (`timestamps=true`)
        lines = (done.stdout + done.stderr).splitlines()
        self.logs[pod["metadata"]["name"]] = "".join(
            f"{(start + timedelta(microseconds=i)).strftime('%Y-%m-%dT%H:%M:%S.%f000Z')} {line}\n"
            for i, line in enumerate(lines))
        self.exit_codes[pod["metadata"]["name"]] = done.returncode


class _Handler(BaseHTTPRequestHandler):
    server: FakeKubernetes

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, status: int, body: Any, content_type: str = "application/json") -> None:
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.created.append((self.path, body))
        if body.get("kind", "Pod") == "Pod" and "/pods" in self.path:
            self.server.run_pod(body)
        self._send(201, body)

    def do_GET(self) -> None:
        if match := re.search(r"/pods/([^/?]+)/log", self.path):
            self._send(200, self.server.logs[match.group(1)], "text/plain")
            return
        name = re.search(r"metadata\.name%3D([^&]+)", self.path).group(1)
        pods = [b for p, b in self.server.created if "/pods" in p and b["metadata"]["name"] == name]
        items = [{**pod, "status": {"phase": "Succeeded", "containerStatuses": [{
            "name": pod["spec"]["containers"][0]["name"], "ready": False, "restartCount": 0, "image": "x",
            "imageID": "x", "state": {"terminated": {"exitCode": self.server.exit_codes[name]}}}]}} for pod in pods]
        self._send(200, {"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": items})

    def do_DELETE(self) -> None:
        self.server.deleted.append(self.path)
        self._send(200, {"apiVersion": "v1", "kind": "Status", "status": "Success"})


@pytest.fixture
def kube(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[FakeKubernetes, Path]]:
    server = FakeKubernetes()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    config = tmp_path / "kubeconfig"
    config.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "test",
        "clusters": [{"name": "test", "cluster": {"server": f"http://127.0.0.1:{server.server_port}"}}],
        "users": [{"name": "test", "user": {"token": "test"}}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test", "namespace": "flywheel"}}],
    }))
    # $KUBECONFIG as if set before the process started (the kubernetes client reads it at import)
    monkeypatch.setenv("KUBECONFIG", str(config))
    monkeypatch.setattr(kubernetes.config.kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(config))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    default = kubernetes.client.Configuration.get_default_copy()
    yield server, config
    kubernetes.client.Configuration.set_default(default)
    server.shutdown()
    server.server_close()


def _instance_yaml() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "k8s" / "dagster.yaml").read_text())


def test_instance_configs_are_valid_and_agree() -> None:
    for folder in (DEPLOY, DEPLOY / "k8s"):
        config, _ = dagster_instance_config(str(folder))  # Dagster's own schema check of the file
        assert config["storage"]["postgres"]["postgres_db"]["scheme"] == "postgresql+psycopg2"
    vm, k8s = yaml.safe_load((DEPLOY / "dagster.yaml").read_text()), _instance_yaml()
    assert {k: v for k, v in k8s.items() if k != "run_launcher"} == vm  # one story, two launchers
    assert k8s["run_launcher"]["class"] == "K8sRunLauncher"  # its config is checked when _launch builds it


def _launch(kube: tuple[FakeKubernetes, Path], job: str, tags: dict[str, str]) -> dict[str, Any]:
    """Launch a run of `job` with `tags` through the K8sRunLauncher of deploy/k8s/dagster.yaml; the Job it posted."""
    server, config = kube
    launcher = _instance_yaml()["run_launcher"]
    launcher["config"] |= {"load_incluster_config": False, "kubeconfig_file": str(config)}
    with dg.instance_for_test(overrides={"run_launcher": launcher}) as instance:
        origin = JobPythonOrigin(job, RepositoryPythonOrigin(
            "/opt/venv/bin/python", ModuleCodePointer("definitions", "defs", "/opt/flywheel"), container_image=IMAGE))
        run = instance.add_run(DagsterRun(job_name=job, tags=tags, job_code_origin=origin))
        instance.run_launcher.launch_run(LaunchRunContext(dagster_run=run, workspace=None))
        path, body = server.created[-1]
        assert path == "/apis/batch/v1/namespaces/flywheel/jobs"
        assert instance.get_run_by_id(run.run_id).tags["dagster/image"] == IMAGE
    validate(body)
    return body


def _container(job: dict[str, Any]) -> dict[str, Any]:
    (container,) = job["spec"]["template"]["spec"]["containers"]
    return container


def test_the_retrain_run_pod_gets_the_gpu_secrets_and_the_home(kube: tuple[FakeKubernetes, Path]) -> None:
    from jobs import retrain

    job = _launch(kube, "retrain", dict(retrain.tags))
    pod, container = job["spec"]["template"]["spec"], _container(job)
    assert container["image"] == IMAGE and container["args"][:5] == ["/opt/venv/bin/python", "-m", "dagster", "api", "execute_run"]
    assert container["resources"] == {"requests": {"cpu": "4", "memory": "32Gi", "nvidia.com/gpu": "1"},
                                      "limits": {"memory": "64Gi", "nvidia.com/gpu": "1"}}
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert pod["serviceAccountName"] == "flywheel-runs" and pod["restartPolicy"] == "Never"
    assert {"secretRef": {"name": "flywheel-secrets"}} in container["envFrom"]
    assert {"secretRef": {"name": "flywheel-object-storage"}} in container["envFrom"]
    assert {"configMapRef": {"name": "flywheel-env"}} in container["envFrom"]
    env = {e["name"]: e for e in container["env"]}
    assert env["DAGSTER_PG_PASSWORD"]["valueFrom"] == {"secretKeyRef": {"name": "flywheel-postgresql",
                                                                        "key": "postgresql-password"}}
    assert {"name": "flywheel-home", "persistentVolumeClaim": {"claimName": "flywheel-home"}} in pod["volumes"]
    assert {"name": "flywheel-home", "mountPath": "/mnt/flywheel"} in container["volumeMounts"]
    # the run pod gets the daemon's instance config in its arguments (its env: values resolve from the env above)
    assert json.loads(container["args"][5])["instance_ref"]["__class__"] == "InstanceRef"


def test_node_selector_from_the_project_and_small_pods_otherwise(kube: tuple[FakeKubernetes, Path]) -> None:
    training = TrainingConfig(pod=TrainingPodConfig(gpus=8, node_selector={"cloud.google.com/gke-accelerator": "nvidia-h100-80gb"}))
    pod = _launch(kube, "retrain", retrain_run_tags(training))["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"cloud.google.com/gke-accelerator": "nvidia-h100-80gb"}
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "8"
    # a training pod of its own: the retrain's run pod is an ordinary one, like the daily capture's
    for job, tags in (("retrain", retrain_run_tags(TrainingConfig(pod=TrainingPodConfig(launcher="k8s")))),
                      ("daily_capture", {})):
        pod = _launch(kube, job, tags)["spec"]["template"]["spec"]
        assert pod["containers"][0]["resources"] == {"requests": {"cpu": "1", "memory": "4Gi"}, "limits": {"memory": "8Gi"}}
        assert "tolerations" not in pod and "nodeSelector" not in pod


GPU_POD = {
    "launcher": "k8s", "namespace": "flywheel", "gpus": 1,
    "node_selector": {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"},
    "env_from_secrets": ["flywheel-secrets"],
    "secret_env": {"AWS_ACCESS_KEY_ID": {"secret": "flywheel-object-storage", "key": "access-key-id"}},
    "home_volume_claim": "flywheel-home",
}


def _request(home: str, **pod: Any) -> TrainingRequest:
    return TrainingRequest(home=home, training=TrainingConfig(pod=TrainingPodConfig(**(GPU_POD | pod))))


def test_the_training_pod_dagster_k8s_builds_is_valid() -> None:
    args = training_pod_run_args(_request("/mnt/flywheel"), {"DAGSTER_CURRENT_IMAGE": IMAGE + "-cuda"})
    pod = build_pod_body(pod_name="dagster-abc-lora-adapter", image=args["image"], command=args["command"],
                         env_vars={"DAGSTER_PIPES_CONTEXT": "ctx", "DAGSTER_PIPES_MESSAGES": "msg"},
                         base_pod_meta=args["base_pod_meta"], base_pod_spec=args["base_pod_spec"])
    # what the client posts to /api/v1/namespaces/NS/pods (the path names the kind)
    body = {"apiVersion": "v1", "kind": "Pod", **kubernetes.client.ApiClient().sanitize_for_serialization(pod)}
    validate(body)
    (container,) = body["spec"]["containers"]
    assert container["image"] == IMAGE + "-cuda" and container["command"][:3] == ["python", "-m", "flywheel.training"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert body["spec"]["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    assert body["spec"]["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    names = [e["name"] for e in container["env"]]
    assert {"FLYWHEEL_HOME", "AWS_ACCESS_KEY_ID", "DAGSTER_PIPES_CONTEXT", "DAGSTER_PIPES_MESSAGES"} <= set(names)
    assert container["envFrom"] == [{"secretRef": {"name": "flywheel-secrets"}}]
    assert body["metadata"]["labels"]["app.kubernetes.io/component"] == "training"
    with pytest.raises(dg.Failure, match="no image is known"):
        training_pod_run_args(_request("/mnt/flywheel"), {})


PIPES_STUB = """
import os
from dagster_pipes import open_dagster_pipes
with open_dagster_pipes() as pipes:
    pipes.log.info("training in the pod")
    pipes.report_asset_materialization(metadata={
        "home": {"raw_value": os.environ["FLYWHEEL_HOME"], "type": "text"},
        "key_id": {"raw_value": os.environ["AWS_ACCESS_KEY_ID"], "type": "text"}}, data_version="v1")
"""


def test_training_through_pipes_k8s_client(kube: tuple[FakeKubernetes, Path], tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """run_training with launcher k8s: the real PipesK8sClient posts the pod, follows its logs and reads the
    Pipes messages the pod's process wrote (here a stub in place of the trainer: same protocol)."""
    server, _ = kube
    monkeypatch.setattr("flywheel.training.pod_spec.training_command",
                        lambda request: ["python", "-c", PIPES_STUB])
    request = _request(str(tmp_path / "home"), image=IMAGE + "-cuda")

    @dg.asset
    def lora_adapter(context) -> dg.MaterializeResult:  # unannotated: a string annotation under __future__
        return run_training(context, request, ["unused"], REPO).get_materialize_result()

    result = dg.materialize([lora_adapter])
    metadata = result.asset_materializations_for_node("lora_adapter")[0].metadata
    assert metadata["home"].value == str(tmp_path / "home") and metadata["key_id"].value == "AKIA-TEST"
    ((path, pod),) = server.created
    assert path == "/api/v1/namespaces/flywheel/pods" and pod["spec"]["containers"][0]["image"] == IMAGE + "-cuda"
    validate({"apiVersion": "v1", "kind": "Pod", **pod})
    assert server.deleted == [f"/api/v1/namespaces/flywheel/pods/{pod['metadata']['name']}"]


def test_training_in_a_subprocess_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """launcher: subprocess (the default, and every local run): the same Pipes messages from a child process."""
    monkeypatch.setenv("FLYWHEEL_HOME", str(tmp_path))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "local")
    request = TrainingRequest(home=str(tmp_path))

    @dg.asset
    def lora_adapter(context) -> dg.MaterializeResult:  # unannotated: a string annotation under __future__
        return run_training(context, request, [sys.executable, "-c", PIPES_STUB], REPO).get_materialize_result()

    metadata = dg.materialize([lora_adapter]).asset_materializations_for_node("lora_adapter")[0].metadata
    assert metadata["home"].value == str(tmp_path) and metadata["key_id"].value == "local"


def test_rbac_objects_are_valid() -> None:
    docs = list(yaml.safe_load_all((DEPLOY / "k8s" / "rbac.yaml").read_text()))
    assert [d["kind"] for d in docs] == ["ServiceAccount", "Role", "RoleBinding"]
    for doc in docs:
        validate(doc)
    rules = {(r, v) for rule in docs[1]["rules"] for r in rule["resources"] for v in rule["verbs"]}
    assert {("pods", "create"), ("pods", "delete"), ("pods/log", "get"), ("jobs", "create")} <= rules
    assert docs[0]["metadata"]["name"] == _instance_yaml()["run_launcher"]["config"]["service_account_name"]


def test_helm_values_carry_the_same_deployment() -> None:
    """The chart's values schema is not on PyPI and `helm` is not here: the Kubernetes objects inside the
    values are checked against Kubernetes' schemas, and the values against the instance config."""
    values = yaml.safe_load((DEPLOY / "helm" / "values.yaml").read_text())
    (code,) = values["dagster-user-deployments"]["deployments"]
    assert code["dagsterApiGrpcArgs"][:2] == ["--module-name", "definitions"]
    assert code["includeConfigInLaunchedRuns"] == {"enabled": True}
    container = {"name": "code", "image": "x", "env": code["env"], "resources": code["resources"],
                 "envFrom": [{"secretRef": s} for s in code["envSecrets"]], "volumeMounts": code["volumeMounts"]}
    validate({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "v"}, "spec": {
        "containers": [container], "volumes": code["volumes"], "securityContext": code["podSecurityContext"]}})
    k8s = _instance_yaml()["run_launcher"]["config"]
    assert {s["name"] for s in code["envSecrets"]} == set(k8s["env_secrets"])
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    assert values["runLauncher"]["type"] == "K8sRunLauncher" and launcher["resources"] == k8s["resources"]
    coordinator = values["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    assert coordinator["tagConcurrencyLimits"] == [{"key": "flywheel/gpu", "limit": 1}]
    assert values["postgresql"]["postgresqlScheme"] == "postgresql+psycopg2"
