"""training.pod -> the retrain run's tags and the training pod's spec, checked against the Kubernetes
schema (kubernetes-validate's offline, strict schemas); what the config accepts, Kubernetes accepts."""

from __future__ import annotations

import json
from pathlib import Path

import kubernetes_validate
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flywheel.config import ConfigError, TrainingConfig, TrainingPodConfig, load_project
from flywheel.models.artifact import model_version_id
from flywheel.training.pod_spec import (
    CONTAINER,
    GPU_TAG,
    HOME_VOLUME,
    RUN_K8S_CONFIG_TAG,
    retrain_run_tags,
    run_k8s_config,
    training_pod_spec,
)
from flywheel.training.request import TrainingRequest

K8S_VERSIONS = ("1.29.0", kubernetes_validate.latest_version())  # an old supported release and the newest


def _pod(spec: dict) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "flywheel-training"}, "spec": spec}


def validate_pod_spec(spec: dict) -> None:
    for version in K8S_VERSIONS:
        kubernetes_validate.validate(_pod(spec), version, strict=True)


def _request(pod: dict, home: str = "/mnt/flywheel") -> TrainingRequest:
    return TrainingRequest(home=home, training=TrainingConfig(pod=TrainingPodConfig(**pod)), dataset_version="abc123")


GPU_POD = {
    "launcher": "k8s",
    "gpus": 2,
    "node_selector": {"cloud.google.com/gke-accelerator": "nvidia-h100-80gb"},
    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
                    {"key": "team", "operator": "Equal", "value": "ml", "effect": "NoExecute"}],
    "service_account": "flywheel-training",
    "env": {"HF_HOME": "/mnt/flywheel/hf"},
    "env_from_secrets": ["flywheel-secrets"],
    "secret_env": {"AWS_ACCESS_KEY_ID": {"secret": "object-storage", "key": "access-key-id"},
                   "AWS_SECRET_ACCESS_KEY": {"secret": "object-storage", "key": "secret-access-key"}},
    "home_volume_claim": "flywheel-home",
}


def test_default_tags_are_the_gpu_run_pod_they_always_were() -> None:
    tags = retrain_run_tags(TrainingConfig())
    assert tags[GPU_TAG] == "1"
    assert json.loads(tags[RUN_K8S_CONFIG_TAG]) == {
        "container_config": {"resources": {"requests": {"cpu": "4", "memory": "32Gi", "nvidia.com/gpu": "1"},
                                           "limits": {"memory": "64Gi", "nvidia.com/gpu": "1"}}},
        "pod_spec_config": {"tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]},
    }


def test_run_pod_tags_carry_node_selector_and_device_tags_on_top() -> None:
    training = TrainingConfig(pod=TrainingPodConfig(gpus=4, gpu_resource="amd.com/gpu", node_selector={"pool": "mi300"},
                                                    service_account="trainer"),
                              device_tags={"team": "search", GPU_TAG: "big"})
    tags = retrain_run_tags(training)
    config = json.loads(tags[RUN_K8S_CONFIG_TAG])
    assert config["container_config"]["resources"]["limits"]["amd.com/gpu"] == "4"
    assert config["pod_spec_config"]["node_selector"] == {"pool": "mi300"}
    assert config["pod_spec_config"]["service_account_name"] == "trainer"
    assert tags["team"] == "search" and tags[GPU_TAG] == "big"


def test_with_a_training_pod_the_run_pod_asks_for_no_gpu() -> None:
    training = TrainingConfig(pod=TrainingPodConfig(launcher="k8s"))
    assert run_k8s_config(training.pod) == {}
    assert retrain_run_tags(training) == {GPU_TAG: "1"}  # still queued as the one retrain at a time


def test_training_pod_spec_has_gpus_placement_secrets_and_the_home() -> None:
    request = _request(GPU_POD)
    spec = training_pod_spec(request, "registry.example.com/flywheel:1.0-cuda",
                             {"MLFLOW_TRACKING_URI": "http://mlflow:5000", "UNRELATED": "x"})
    validate_pod_spec(spec)
    (container,) = spec["containers"]
    assert container["name"] == CONTAINER and container["image"] == "registry.example.com/flywheel:1.0-cuda"
    assert container["command"][:3] == ["python", "-m", "flywheel.training"]
    assert TrainingRequest.model_validate_json(container["command"][3]) == request
    assert container["resources"] == {"requests": {"cpu": "4", "memory": "32Gi", "nvidia.com/gpu": "2"},
                                      "limits": {"memory": "64Gi", "nvidia.com/gpu": "2"}}
    assert spec["nodeSelector"] == {"cloud.google.com/gke-accelerator": "nvidia-h100-80gb"}
    assert spec["tolerations"][1] == {"key": "team", "operator": "Equal", "value": "ml", "effect": "NoExecute"}
    assert spec["serviceAccountName"] == "flywheel-training" and spec["restartPolicy"] == "Never"
    assert container["envFrom"] == [{"secretRef": {"name": "flywheel-secrets"}}]
    env = {e["name"]: e for e in container["env"]}
    assert env["AWS_ACCESS_KEY_ID"] == {"name": "AWS_ACCESS_KEY_ID", "valueFrom": {
        "secretKeyRef": {"name": "object-storage", "key": "access-key-id"}}}
    assert env["FLYWHEEL_HOME"]["value"] == "/mnt/flywheel" and env["HF_HOME"]["value"] == "/mnt/flywheel/hf"
    assert env["MLFLOW_TRACKING_URI"]["value"] == "http://mlflow:5000" and "UNRELATED" not in env
    assert container["volumeMounts"] == [{"name": HOME_VOLUME, "mountPath": "/mnt/flywheel"}]
    assert spec["volumes"] == [{"name": HOME_VOLUME, "persistentVolumeClaim": {"claimName": "flywheel-home"}}]


def test_a_cpu_pod_without_extras_is_still_valid() -> None:
    spec = training_pod_spec(_request({"launcher": "k8s", "gpus": 0, "tolerations": [], "memory_limit": None}), "img", {})
    validate_pod_spec(spec)
    assert spec["containers"][0]["resources"] == {"requests": {"cpu": "4", "memory": "32Gi"}}
    assert not {"tolerations", "nodeSelector", "volumes", "serviceAccountName"} & set(spec)


def test_the_schema_check_is_not_vacuous() -> None:
    spec = training_pod_spec(_request(GPU_POD), "img", {})
    spec["tolerations"] = {"key": "nvidia.com/gpu"}  # a mapping where Kubernetes wants a list
    with pytest.raises(kubernetes_validate.ValidationError):
        validate_pod_spec(spec)
    spec = training_pod_spec(_request(GPU_POD), "img", {})
    spec["containers"][0]["envFrom"] = [{"secret": {"name": "x"}}]  # unknown field (strict)
    with pytest.raises(kubernetes_validate.ValidationError):
        validate_pod_spec(spec)


def test_placement_does_not_change_the_model_version() -> None:
    plain = TrainingConfig()
    placed = TrainingConfig(pod=TrainingPodConfig(**GPU_POD), device_tags={"team": "search"})
    assert model_version_id("d1", plain, "e1") == model_version_id("d1", placed, "e1")
    assert model_version_id("d1", plain, "e1") != model_version_id("d1", plain.model_copy(update={"seed": 7}), "e1")


@pytest.mark.parametrize(("pod_yaml", "expected"), [
    ("cpu: 4 cores", "training.pod.cpu"),
    ("memory_limit: lots", "training.pod.memory_limit"),
    ("gpus: -1", "training.pod.gpus"),
    ("launcher: slurm", "training.pod.launcher"),
    ("gpu_resource: gpu", "training.pod.gpu_resource"),
    ("namespace: Flywheel_NS", "training.pod.namespace"),
    ("env_from_secrets: [Bad_Name]", "training.pod.env_from_secrets.0"),
    ("node_selector: {'bad key!': x}", "node_selector 'bad key!'"),
    ("env: {'A=B': x}", "env 'A=B'"),
    ("env: {DAGSTER_PIPES_CONTEXT: x}", "not DAGSTER_PIPES_*"),
    ("env: {AWS_REGION: x}\n    secret_env: {AWS_REGION: {secret: s, key: k}}", "AWS_REGION: set in both"),
    ("tolerations: [{key: a, operator: Exists, value: b}]", "operator Exists takes no value"),
    ("tolerations: [{operator: Equal, value: b}]", "operator Equal needs a key"),
    ("tolerations: [{key: a, effect: Sometimes}]", "training.pod.tolerations.0.effect"),
    ("secret_env: {TOKEN: {secret: s}}", "training.pod.secret_env.TOKEN.key"),
    ("gpu: 1", "unknown key; did you mean 'gpus'?"),
])
def test_bad_pod_config_is_refused_naming_the_key(tmp_path: Path, pod_yaml: str, expected: str) -> None:
    path = tmp_path / "flywheel.yaml"
    path.write_text(f"training:\n  pod:\n    {pod_yaml}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        load_project(path)
    assert str(exc.value).startswith(f"{path}: ") and expected in str(exc.value)


def test_device_tags_may_not_replace_the_pod_config(tmp_path: Path) -> None:
    path = tmp_path / "flywheel.yaml"
    path.write_text("training:\n  device_tags: {dagster-k8s/config: '{}'}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="line 2, key 'training.device_tags'.*built from training.pod"):
        load_project(path)


_label = st.from_regex(r"\A[a-z0-9]([-a-z0-9]{0,10}[a-z0-9])?\Z")
_env_name = st.from_regex(r"\A[A-Z_][A-Z0-9_]{0,12}\Z").filter(lambda n: not n.startswith("DAGSTER_PIPES_"))
_quantity = st.from_regex(r"\A[1-9][0-9]{0,3}(m|Mi|Gi|G)?\Z")
_toleration = st.one_of(
    st.builds(dict, key=_label, operator=st.just("Exists"),
              effect=st.sampled_from(["NoSchedule", "PreferNoSchedule", "NoExecute"])),
    st.builds(dict, key=_label, operator=st.just("Equal"), value=_label),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(gpus=st.integers(0, 8), cpu=_quantity, memory=_quantity, limit=st.one_of(st.none(), _quantity),
       selector=st.dictionaries(st.builds(lambda p, n: f"{p}.io/{n}", _label, _label), _label, max_size=3),
       tolerations=st.lists(_toleration, max_size=3), env=st.dictionaries(_env_name, st.text(max_size=20), max_size=3),
       secrets=st.lists(_label, max_size=2), claim=st.one_of(st.none(), _label), account=st.one_of(st.none(), _label))
def test_whatever_the_config_accepts_kubernetes_accepts(gpus, cpu, memory, limit, selector, tolerations, env, secrets,
                                                        claim, account) -> None:
    pod = TrainingPodConfig(launcher="k8s", gpus=gpus, cpu=cpu, memory=memory, memory_limit=limit,
                            node_selector=selector, tolerations=tolerations, env=env, env_from_secrets=secrets,
                            home_volume_claim=claim, service_account=account)
    request = TrainingRequest(home="/data/home", training=TrainingConfig(pod=pod))
    kubernetes_validate.validate(_pod(training_pod_spec(request, "img:1", {})), K8S_VERSIONS[-1], strict=True)
    run_pod = run_k8s_config(pod.model_copy(update={"launcher": "subprocess"}))
    container = {"name": "dagster", "image": "img:1", "resources": run_pod["container_config"]["resources"]}
    spec = {"containers": [container], "tolerations": run_pod["pod_spec_config"]["tolerations"]}
    kubernetes_validate.validate(_pod(spec), K8S_VERSIONS[-1], strict=True)
