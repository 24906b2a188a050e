"""Is the teacher genuinely better than the champion? Its answers to the fixed eval set, scored with the
same metrics beside the champion's (`teacher_scorecard`).

Distilling a teacher only helps when it is better than the model it teaches. The configured teacher
(`generation.teacher`, an OpenAI-compatible endpoint) answers every eval item; the champion's answers come
from the cycle's cache (`generation.champion_answers`, the base model before the first promotion). Both are
scored by `metrics.score_answers` and compared with the paired bootstrap (`metrics.summarize`, teacher in
the candidate's place). Verdict on the primary metric: `better` (the interval is above zero), `worse`
(below zero) or `not shown better`. Written to `reports/teacher/<model>.json`.
"""

from __future__ import annotations

import re
from typing import Any

from flywheel.config import ProjectConfig
from flywheel.core.errors import InputError
from flywheel.core.storage import FlywheelHome, write_json
from flywheel.curation.answer_format import AnswerFormat
from flywheel.evaluation.eval_set import eval_items, eval_set_table, read_eval_set_info
from flywheel.evaluation.generation import champion_answers, generation_model
from flywheel.evaluation.judge import make_judge
from flywheel.evaluation.metrics import score_answers, summarize
from flywheel.generation.client import EndpointError, client_for
from flywheel.models import registry
from flywheel.models.artifact import read_artifact

BETTER, WORSE, UNSHOWN = "better", "worse", "not shown better"


def teacher_path(home: FlywheelHome, model: str) -> Any:
    return home.reports() / "teacher" / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', model)}.json"


def teacher_scorecard(project: ProjectConfig, home: FlywheelHome, db_url: str) -> dict[str, Any]:
    """Score the configured teacher and the champion on the fixed eval set (see the module doc)."""
    teacher = project.generation.teacher
    if teacher is None:
        raise InputError("no teacher configured (generation.teacher in flywheel.yaml)")
    cfg = project.evaluation
    info = read_eval_set_info(home)
    items = eval_items(eval_set_table(home))
    answers, failures = [], []
    with client_for(teacher, role="teacher") as client:
        for it in items:
            try:
                answers.append((client.chat(it.prompt, temperature=0.0, max_tokens=teacher.max_output_tokens).content
                                or "").strip())
            except EndpointError as exc:
                answers.append("")  # an unanswered item scores as an empty answer
                failures.append(f"{it.example_id}: {exc.reason}")
        tokens = client.usage.tokens
    if items and len(failures) == len(items):
        raise EndpointError(client.url, "all_failed", f"the teacher answered none of {len(items)} eval items "
                            f"(first: {failures[0]})")
    champ = registry.current_champion(db_url)
    if champ is not None:
        champion = read_artifact(home, champ.version, champ.adapter_path)
        label, load = champion.version, (lambda: generation_model(home, champion))
    else:
        base = project.training.base_model
        label, load = f"base:{base}", (lambda: generation_model(home, base))
    champ_answers, cached = champion_answers(home, label, info["content_hash"], items, cfg.max_new_tokens, load,
                                             cfg.batch_size)
    rule = AnswerFormat.from_config(project.curation)
    judge = make_judge(project) if "judge" in cfg.metrics else None
    try:
        t_scores = score_answers(items, answers, cfg.metrics, rule, judge)
        c_scores = score_answers(items, champ_answers, cfg.metrics, rule, judge)
    finally:
        if judge is not None:
            judge.close()
    summary = summarize(items, t_scores, c_scores, cfg.bootstrap_samples)
    primary = summary["overall"][cfg.primary_metric]
    verdict = BETTER if primary["ci_low"] > 0 else WORSE if primary["ci_high"] < 0 else UNSHOWN
    result = {"teacher": teacher.model, "champion": label, "champion_answers_cached": cached,
              "eval_set_hash": info["content_hash"], "n_items": len(items), "primary_metric": cfg.primary_metric,
              "verdict": verdict, "failed_items": failures, "tokens": tokens, **summary}
    write_json(result, teacher_path(home, teacher.model))
    return result
