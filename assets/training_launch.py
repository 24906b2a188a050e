"""Where `lora_adapter` runs `python -m flywheel.training`: the Dagster Pipes client for `training.pod`.

`launcher: subprocess` (the default): a `PipesSubprocessClient` in the run's process, so locally the
machine's CPU or GPU, and on Kubernetes the run pod's GPU (its run tags ask for one). `launcher: k8s`:
a pod of its own through dagster-k8s's `PipesK8sClient`, whose spec is built by
`flywheel.training.pod_spec` from the project; logs and the materialization come back through the pod's
logs, the same Pipes messages as the subprocess's.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import dagster as dg

from flywheel.training.pod_spec import POD_LABELS, training_pod_spec
from flywheel.training.request import TrainingRequest

CURRENT_IMAGE_ENV = "DAGSTER_CURRENT_IMAGE"  # the code location's image (the Helm chart's user deployment sets it)


def training_pod_run_args(request: TrainingRequest, environ: Mapping[str, str]) -> dict[str, Any]:
    """The keyword arguments of `PipesK8sClient.run` (besides `context`) for this training request."""
    pod = request.training.pod
    image = pod.image or environ.get(CURRENT_IMAGE_ENV)
    if not image:
        raise dg.Failure(f"training.pod.launcher is k8s but no image is known: set training.pod.image, or run the "
                         f"code location from an image that sets ${CURRENT_IMAGE_ENV} (the Helm chart does)")
    return {
        "image": None,  # in the spec's container, with the command
        "command": None,
        "namespace": pod.namespace,
        "base_pod_meta": {"labels": dict(POD_LABELS)},
        "base_pod_spec": training_pod_spec(request, image, environ),
        "pod_wait_timeout": float(pod.timeout_s),
    }


def run_training(
    context: dg.AssetExecutionContext, request: TrainingRequest, command: Sequence[str], cwd: Path
) -> dg.PipesClientCompletedInvocation:
    """Run the training through Pipes where `training.pod.launcher` says; `command` and `cwd` are the
    local subprocess's (`python -m flywheel.training REQUEST` from the repository)."""
    if request.training.pod.launcher == "k8s":
        try:
            from dagster_k8s import PipesK8sClient
        except ImportError:
            raise dg.Failure("training.pod.launcher is k8s but dagster-k8s is not installed: "
                             "pip install 'flywheel[k8s]'") from None
        return PipesK8sClient().run(context=context, **training_pod_run_args(request, os.environ))
    client = dg.PipesSubprocessClient(cwd=str(cwd), env={"PYTHONPATH": str(cwd), "TOKENIZERS_PARALLELISM": "false"})
    return client.run(context=context, command=list(command))
