"""`python -m flywheel.training CONFIG_JSON`: one training run as its own process.

CONFIG_JSON is a JSON file path or an inline JSON object of `TrainingRequest`. Launched by Dagster
Pipes the run streams logs and reports the materialization (loss curve, tokens/s, path, version)
back; standalone it prints the result as JSON. The same command runs in a GPU pod.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from flywheel.core.storage import storage_path
from flywheel.training.request import TrainingResult, parse_request
from flywheel.training.trainer import LOSS_PNG, train


def pipes_metadata(result: TrainingResult) -> dict[str, Any]:
    """The materialization metadata reported through Pipes (raw values with Pipes types)."""
    m = result.manifest
    metrics = m.get("metrics", {})
    return {
        "version": {"raw_value": result.version, "type": "text"},
        "path": {"raw_value": result.path, "type": "path"},
        "dataset_version": {"raw_value": result.dataset_version, "type": "text"},
        "eval_set_hash": {"raw_value": result.eval_set_hash or "", "type": "text"},
        "base_model": {"raw_value": m.get("base_model", ""), "type": "text"},
        "reused": {"raw_value": result.reused, "type": "bool"},
        "train_loss": {"raw_value": metrics.get("train_loss"), "type": "float"},
        "final_loss": {"raw_value": metrics.get("final_loss"), "type": "float"},
        "steps": {"raw_value": metrics.get("steps"), "type": "int"},
        "tokens_per_s": {"raw_value": metrics.get("tokens_per_s"), "type": "float"},
        "train_runtime_s": {"raw_value": metrics.get("train_runtime_s"), "type": "float"},
        "trained_token_share": {"raw_value": m.get("trained_token_share"), "type": "float"},
        "examples": {"raw_value": m.get("data", {}).get("examples"), "type": "int"},
        "rows": {"raw_value": m.get("data", {}).get("rows"), "type": "int"},
        "device": {"raw_value": m.get("device", {}), "type": "json"},
        "loss_curve": {"raw_value": {"points": m.get("loss_curve", [])}, "type": "json"},
        "loss_curve_png": {"raw_value": str(storage_path(result.path) / LOSS_PNG), "type": "path"},
        "seed_replicates": {"raw_value": ", ".join(result.replicates) or "none", "type": "text"},
        "preference_stage": {"raw_value": result.preference or {"stage": "not run"}, "type": "json"},
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print(
            "usage: python -m flywheel.training CONFIG_JSON (a file path or an inline JSON object)",
            file=sys.stderr,
        )
        return 2
    request = parse_request(args[0])
    # Before torch loads OpenMP: busy-waiting worker threads slow CPU training ~10x on a shared machine.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if importlib.util.find_spec("dagster_pipes") is not None:
        from dagster_pipes import PipesEnvVarParamsLoader, open_dagster_pipes

        if PipesEnvVarParamsLoader().is_dagster_pipes_process():
            with open_dagster_pipes() as pipes:
                result = train(
                    request,
                    log=pipes.log.info,
                    on_loss=lambda p: pipes.log.info(f"step {p['step']} loss {p['loss']:.4f}"),
                )
                pipes.report_asset_materialization(
                    metadata=pipes_metadata(result), data_version=result.version
                )
            return 0
    result = train(request, log=lambda msg: print(msg, file=sys.stderr))
    print(
        json.dumps(
            {k: v for k, v in result.to_dict().items() if k != "manifest"}
            | {"metrics": result.manifest.get("metrics")}
        )
    )
    return 0
