"""Training-seed noise: how much the candidate's score moves when the same data is trained with other
seeds, measured on its seed replicates and pooled over the evaluations of the same eval set.

The bootstrap over eval items sees the eval sample's noise, not training randomness. With
`evaluation.seed_replicates` = k, `lora_adapter` also trains the candidate's dataset with seeds
`seed+1 .. seed+k`; each replicate answers the eval set, and its difference to the champion (overall
and per slice, on the primary metric) is one more draw of "this recipe on this data". The sample
variance of those k+1 differences is pooled with the variances of earlier evaluations on the same eval
set (each weighted by its degrees of freedom), because seed noise is a property of the recipe and a
couple of replicates alone estimate it poorly. The gate widens every interval by the pooled sd.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from flywheel.config import TrainingConfig
from flywheel.core.errors import StateError
from flywheel.core.storage import FlywheelHome, storage_path
from flywheel.evaluation.eval_set import EvalItem
from flywheel.evaluation.generation import generate_answers, generation_model
from flywheel.evaluation.metrics import score_answers
from flywheel.models.artifact import AdapterError, ModelArtifact, read_artifact, seed_replicate_ids

TRAINING_CONFIG = "training_config.json"


def replicate_artifacts(home: FlywheelHome, candidate: ModelArtifact, count: int) -> list[ModelArtifact]:
    """The candidate's `count` seed replicates (trained by `lora_adapter`); a missing one is an error."""
    if count <= 0:
        return []
    config_path = storage_path(candidate.path) / TRAINING_CONFIG
    try:
        cfg = TrainingConfig.model_validate(json.loads(config_path.read_text(encoding="utf-8")))
    except (OSError, ValueError) as exc:
        raise StateError(f"{config_path}: cannot read the candidate's training config to find its seed replicates "
                         f"({exc})") from exc
    ids = seed_replicate_ids(candidate.dataset_version or "", cfg, candidate.manifest.get("eval_set_hash"), count)
    try:
        return [read_artifact(home, rid) for rid in ids]
    except AdapterError as exc:
        raise StateError(f"evaluation.seed_replicates is {count} but a seed replicate of {candidate.version} is "
                         f"missing ({exc}); materialize lora_adapter again to train it") from exc


def _mean(values: Sequence[float]) -> float:
    kept = [v for v in values if not math.isnan(v)]
    return sum(kept) / len(kept) if kept else math.nan


def replicate_differences(
    home: FlywheelHome,
    replicates: Sequence[ModelArtifact],
    items: Sequence[EvalItem],
    champion_scores: Sequence[float],
    metric: str,
    max_new_tokens: int,
    batch_size: int,
    answer_format: Any = None,
) -> list[dict[str, Any]]:
    """Each replicate's difference to the champion on `metric`, overall and per slice."""
    out = []
    slices = sorted({it.slice for it in items})
    for rep in replicates:
        model, tokenizer = generation_model(home, rep)
        answers = generate_answers(model, tokenizer, [it.prompt for it in items], max_new_tokens, batch_size)
        del model
        scores = score_answers(items, answers, [metric], answer_format)[metric]
        diffs = [a - b for a, b in zip(scores, champion_scores, strict=True)]
        out.append({
            "version": rep.version,
            "overall": _mean(diffs),
            "slices": {s: _mean([d for d, it in zip(diffs, items, strict=True) if it.slice == s]) for s in slices},
        })
    return out


def _variance(values: Sequence[float]) -> tuple[float, int]:
    """(sample variance, degrees of freedom) of the finite values."""
    kept = [v for v in values if not math.isnan(v)]
    if len(kept) < 2:
        return 0.0, 0
    mean = sum(kept) / len(kept)
    return sum((v - mean) ** 2 for v in kept) / (len(kept) - 1), len(kept) - 1


def spread_of(main: dict[str, Any], replicates: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """This evaluation's own seed spread from the candidate (`main`: overall + slices diffs) and its
    replicates: variances and degrees of freedom, overall and per slice."""
    runs = [main, *replicates]
    var, df = _variance([r["overall"] for r in runs])
    slices = {}
    for s in main["slices"]:
        svar, sdf = _variance([r["slices"].get(s, math.nan) for r in runs])
        slices[s] = {"var": svar, "df": sdf}
    return {"runs": len(runs), "var": var, "df": df, "slices": slices,
            "diffs": [round(r["overall"], 6) for r in runs], "replicates": [r["version"] for r in replicates]}


def pooled_spread(own: dict[str, Any], earlier: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The sd the gate uses: variances pooled over this and earlier evaluations (df-weighted)."""
    parts = [own, *[e for e in earlier if e.get("df")]]
    df = sum(p["df"] for p in parts)
    if df == 0:
        return {}
    overall = math.sqrt(sum(p["var"] * p["df"] for p in parts) / df)
    slices = {}
    for s in own["slices"]:
        sparts = [p["slices"][s] for p in parts if s in p.get("slices", {}) and p["slices"][s]["df"]]
        sdf = sum(x["df"] for x in sparts)
        slices[s] = math.sqrt(sum(x["var"] * x["df"] for x in sparts) / sdf) if sdf else overall
    return {"overall": overall, "slices": slices, "runs": own["runs"], "df": df, "evaluations": len(parts),
            "own_sd": math.sqrt(own["var"]) if own["df"] else None}


def earlier_spreads(home: FlywheelHome, eval_hash: str, exclude: str) -> list[dict[str, Any]]:
    """The own seed spreads recorded by earlier evaluations on the same eval set."""
    root = home.reports() / "evaluations"
    out = []
    for path in sorted(root.glob("*/summary.json")) if root.is_dir() else []:
        if path.parent.name == exclude:
            continue
        try:
            summary = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if summary.get("eval_set_hash") == eval_hash and summary.get("seed_spread_own"):
            out.append(summary["seed_spread_own"])
    return out
