"""The `training.pod` section: the Kubernetes pod a deployment trains in (names checked as Kubernetes checks them)."""

from __future__ import annotations

import re
import typing
from typing import Literal

from pydantic import AfterValidator, Field, model_validator

from flywheel.config.base import StrictModel

_LABEL_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_LABEL_KEY = re.compile(rf"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?{_LABEL_NAME}$")
_LABEL_VALUE = re.compile(rf"^({_LABEL_NAME})?$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")


def _matching(pattern: str, expected: str) -> AfterValidator:
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if not compiled.match(value):
            raise ValueError(f"expected {expected}")
        return value

    return AfterValidator(check)


_Quantity = typing.Annotated[str, _matching(r"^[0-9]+(\.[0-9]+)?(m|k|Ki|Mi|Gi|Ti|Pi|Ei|M|G|T|P|E)?$",
                                            "a Kubernetes quantity such as 4, 500m or 32Gi")]
_Name = typing.Annotated[str, Field(max_length=253), _matching(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$", "a Kubernetes name (lowercase a-z, 0-9, - and .)")]


class Toleration(StrictModel):
    """A Kubernetes toleration (the GPU nodes' taint)."""

    key: str | None = None
    operator: Literal["Exists", "Equal"] = "Equal"
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None

    @model_validator(mode="after")
    def _coherent(self) -> Toleration:
        if self.operator == "Exists" and self.value:
            raise ValueError("operator Exists takes no value")
        if self.operator == "Equal" and not self.key:
            raise ValueError("operator Equal needs a key")
        return self


class SecretKey(StrictModel):
    """One key of a Kubernetes Secret, read into one environment variable."""

    secret: _Name
    key: typing.Annotated[str, _matching(r"^[-._a-zA-Z0-9]+$", "a Secret key (letters, digits, - _ .)")]


class TrainingPodConfig(StrictModel):
    """Where the retrain's training process runs on Kubernetes, and with what (used only by a deployment:
    local runs train in a subprocess). `launcher: subprocess` gives the retrain's run pod these resources
    (its run tags); `launcher: k8s` starts a pod of its own per training (Dagster Pipes, PipesK8sClient)
    and the run pod stays small."""

    launcher: Literal["subprocess", "k8s"] = "subprocess"
    image: str | None = Field(None, min_length=1, description="the training pod's image (the [train] extra); default: the run's own ($DAGSTER_CURRENT_IMAGE)")
    namespace: _Name | None = Field(None, description="default: the run pod's namespace")
    service_account: _Name | None = None
    gpus: int = Field(1, ge=0, le=64)
    gpu_resource: typing.Annotated[str, _matching(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?/[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$",
                                                  "an extended resource name such as nvidia.com/gpu")] = "nvidia.com/gpu"
    cpu: _Quantity = Field("4", description="CPU request (a Kubernetes quantity)")
    memory: _Quantity = Field("32Gi", description="memory request")
    memory_limit: _Quantity | None = Field("64Gi")
    node_selector: dict[str, str] = Field(default_factory=dict, description="e.g. cloud.google.com/gke-accelerator: nvidia-h100-80gb")
    tolerations: list[Toleration] = Field(
        default_factory=lambda: [Toleration(key="nvidia.com/gpu", operator="Exists", effect="NoSchedule")])
    env: dict[str, str] = Field(default_factory=dict, description="plain environment variables of the training process")
    env_from_secrets: list[_Name] = Field(default_factory=list, description="Secrets whose every key becomes an env var (envFrom)")
    secret_env: dict[str, SecretKey] = Field(default_factory=dict, description="env var -> one Secret key (e.g. AWS_ACCESS_KEY_ID)")
    home_volume_claim: _Name | None = Field(None, description="PersistentVolumeClaim holding FLYWHEEL_HOME, mounted at the run's home path")
    timeout_s: int = Field(86_400, gt=0, description="fail the training when its pod has not finished after this long")

    @model_validator(mode="after")
    def _valid_names(self) -> TrainingPodConfig:
        for k, v in self.node_selector.items():
            if not _LABEL_KEY.match(k) or not _LABEL_VALUE.match(v):
                raise ValueError(f"node_selector {k!r}: {v!r} is not a Kubernetes label key and value")
        for name in (*self.env, *self.secret_env):
            if not _ENV_NAME.match(name) or name.startswith("DAGSTER_PIPES_"):
                raise ValueError(f"env {name!r}: expected a variable name (letters, digits, _ . -), not DAGSTER_PIPES_*")
        if both := sorted(set(self.env) & set(self.secret_env)):
            raise ValueError(f"{', '.join(both)}: set in both env and secret_env")
        return self
