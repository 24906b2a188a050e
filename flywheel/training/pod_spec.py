"""The Kubernetes side of a retrain as plain dicts, built from `training.pod` in flywheel.yaml.

Two consumers, both in dagster-k8s and both outside the library: the retrain run's `dagster-k8s/config`
tag, read by the K8sRunLauncher when it creates the run's pod (the GPU goes there with
`launcher: subprocess`), and the training pod's spec, handed to PipesK8sClient (`launcher: k8s`: the
run pod stays small and `python -m flywheel.training` gets a GPU pod of its own). No Dagster or
Kubernetes client import here: the dicts use the Kubernetes API's own field names.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from flywheel.config import TrainingConfig, TrainingPodConfig
from flywheel.training.request import TrainingRequest
from flywheel.training.tracking import EXPERIMENT_ENV, TRACKING_URI_ENV

RUN_K8S_CONFIG_TAG = "dagster-k8s/config"
GPU_TAG = "flywheel/gpu"  # the run coordinator lets one run with this tag run at a time (deploy/)
CONTAINER = "training"
HOME_VOLUME = "flywheel-home"
POD_PYTHON = "python"  # the image's interpreter (deploy/Dockerfile puts the package's venv first on PATH)
# variables of the run's environment the training process needs too (the same MLflow server)
PASSED_ENV = (TRACKING_URI_ENV, EXPERIMENT_ENV)
POD_LABELS = {"app.kubernetes.io/part-of": "flywheel", "app.kubernetes.io/component": "training"}


def resources(pod: TrainingPodConfig) -> dict[str, dict[str, str]]:
    """CPU and memory requests, the memory limit, and the GPUs (an extended resource: request = limit)."""
    requests = {"cpu": pod.cpu, "memory": pod.memory}
    limits = {"memory": pod.memory_limit} if pod.memory_limit else {}
    if pod.gpus:
        requests[pod.gpu_resource] = limits[pod.gpu_resource] = str(pod.gpus)
    return {"requests": requests, "limits": limits} if limits else {"requests": requests}


def tolerations(pod: TrainingPodConfig) -> list[dict[str, str]]:
    return [t.model_dump(exclude_none=True) for t in pod.tolerations]


def run_k8s_config(pod: TrainingPodConfig) -> dict[str, Any]:
    """The retrain run pod's `dagster-k8s/config` (dagster-k8s's snake_case keys): the GPU pod itself
    when training is its subprocess, nothing when training gets a pod of its own."""
    if pod.launcher == "k8s":
        return {}
    spec: dict[str, Any] = {"tolerations": tolerations(pod)}
    if pod.node_selector:
        spec["node_selector"] = dict(pod.node_selector)
    if pod.service_account:
        spec["service_account_name"] = pod.service_account
    return {"container_config": {"resources": resources(pod)}, "pod_spec_config": spec}


def retrain_run_tags(training: TrainingConfig) -> dict[str, str]:
    """The retrain job's run tags: the queue's GPU tag, the run pod's config, then `device_tags`."""
    tags = {GPU_TAG: str(training.pod.gpus)}
    config = run_k8s_config(training.pod)
    if config:
        tags[RUN_K8S_CONFIG_TAG] = json.dumps(config, sort_keys=True)
    return tags | dict(training.device_tags)


def training_command(request: TrainingRequest) -> list[str]:
    """The training pod's command: the same entry point the local subprocess runs."""
    return [POD_PYTHON, "-m", "flywheel.training", request.model_dump_json()]


def training_env(request: TrainingRequest, environ: Mapping[str, str]) -> dict[str, str]:
    """Plain variables of the training container: the home, the passed-through ones set in `environ`
    (the run's environment), then `training.pod.env`."""
    env = {"FLYWHEEL_HOME": request.home, "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1"}
    env |= {name: environ[name] for name in PASSED_ENV if environ.get(name)}
    return env | dict(request.training.pod.env)


def training_pod_spec(request: TrainingRequest, image: str, environ: Mapping[str, str]) -> dict[str, Any]:
    """The training pod's PodSpec (camelCase, as the API takes it): one container running
    `python -m flywheel.training REQUEST`, its GPUs, node selector, tolerations, service account, env
    from Secrets, and the home's volume mounted at the run's home path."""
    pod = request.training.pod
    env: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in training_env(request, environ).items()]
    env += [{"name": name, "valueFrom": {"secretKeyRef": {"name": ref.secret, "key": ref.key}}}
            for name, ref in pod.secret_env.items()]
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": image,
        "command": training_command(request),
        "env": env,
        "resources": resources(pod),
    }
    if pod.env_from_secrets:
        container["envFrom"] = [{"secretRef": {"name": name}} for name in pod.env_from_secrets]
    spec: dict[str, Any] = {"restartPolicy": "Never", "containers": [container]}
    if pod.home_volume_claim:
        container["volumeMounts"] = [{"name": HOME_VOLUME, "mountPath": request.home}]
        spec["volumes"] = [{"name": HOME_VOLUME, "persistentVolumeClaim": {"claimName": pod.home_volume_claim}}]
    if pod.node_selector:
        spec["nodeSelector"] = dict(pod.node_selector)
    if pod.tolerations:
        spec["tolerations"] = tolerations(pod)
    if pod.service_account:
        spec["serviceAccountName"] = pod.service_account
    return spec
