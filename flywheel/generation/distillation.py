"""Distillation: a stronger teacher model answers the week's real production inputs (`distill_week`).

The inputs are the week's captured interactions (`warehouse/interactions/<day>.parquet`, their redacted
prompts as sent), one per distinct input, a seeded sample of at most `generation.max_distill_inputs` and
no more than the real:synthetic ratio leaves room for. Each (prompt, teacher answer) pair becomes a row
of `generated/distilled/<week>.jsonl` naming its `teacher` and the interaction it came from; curation reads
it as a distilled source (admission review included).

A teacher that is the deployed model itself (a model version seen in production traffic, or one of
`curation.self_generator_names`) is refused (`SelfTeacherRefused`): training on its own answers is the
self-consuming loop that collapses; `generation.allow_self_teacher` overrides. Whether the teacher is
genuinely better than the champion is measured by `flywheel.evaluation.teacher` on the fixed eval set.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import Any

from flywheel.capture.records import INTERACTIONS
from flywheel.config import ProjectConfig
from flywheel.core.errors import InputError
from flywheel.core.sampling import seeded_sample
from flywheel.core.storage import FlywheelHome, read_table
from flywheel.core.text import input_match_key
from flywheel.generation.client import EndpointError, client_for, estimate_tokens
from flywheel.generation.existing import ratio_room
from flywheel.generation.runs import DISTILLED, GenerationRun, ModelTally, write_run


class SelfTeacherRefused(InputError):
    """The configured teacher is the deployed model itself."""


def week_interactions(home: FlywheelHome, monday: dt.date) -> list[dict[str, Any]]:
    """The week's captured interactions (id, prompt messages, input text, model version), one per distinct
    input (the first seen), in day order."""
    out, seen = [], set()
    for d in range(7):
        path = home.warehouse(INTERACTIONS, (monday + dt.timedelta(days=d)).isoformat())
        if not path.exists():
            continue
        cols = ["interaction_id", "messages", "input_text", "model_version"]
        for row in read_table(path, columns=cols).to_pylist():
            key = input_match_key(row["input_text"])
            if key and row["messages"] and key not in seen:
                seen.add(key)
                out.append(row)
    return out


def deployed_models(project: ProjectConfig, interactions: list[dict[str, Any]]) -> set[str]:
    """Names that mean the deployed model: `curation.self_generator_names` and the versions serving traffic."""
    names = set(project.curation.self_generator_names)
    names |= {r["model_version"] for r in interactions if r.get("model_version")}
    return {n.strip().lower() for n in names if n and n.strip()}


def check_teacher(project: ProjectConfig, interactions: list[dict[str, Any]]) -> None:
    """Refuse a teacher that is the deployed model unless `generation.allow_self_teacher`."""
    teacher = project.generation.teacher
    if teacher is None or project.generation.allow_self_teacher:
        return
    if teacher.model.strip().lower() in deployed_models(project, interactions):
        raise SelfTeacherRefused(
            f"teacher {teacher.model!r} is the deployed model itself (it serves production traffic or is listed in "
            "curation.self_generator_names): distilling a model into itself narrows it toward collapse. Configure a "
            "stronger teacher, or set generation.allow_self_teacher: true to do it anyway")


def distill_week(project: ProjectConfig, home: FlywheelHome, partition: str,
                 sleep: Callable[[float], None] = time.sleep) -> GenerationRun:
    """The teacher's answers to the week `partition` (a Monday) of production inputs, written as
    `generated/distilled/<partition>.jsonl` with its quarantine and report."""
    cfg = project.generation
    teacher = cfg.teacher
    run = GenerationRun(DISTILLED, partition, token_budget=cfg.max_tokens)
    if teacher is None:
        run.notes.append("no teacher configured (generation.teacher)")
        return write_run(home, run)
    interactions = week_interactions(home, dt.date.fromisoformat(partition))
    check_teacher(project, interactions)
    room = ratio_room(project, home, DISTILLED, partition)
    run.target = min(cfg.max_distill_inputs, room.room, len(interactions))
    run.notes.append(f"{len(interactions)} distinct production inputs this week; target {run.target}: "
                     f"max_distill_inputs {cfg.max_distill_inputs}; {room.describe()}")
    chosen = seeded_sample(interactions, run.target, cfg.seed)
    tally = ModelTally(teacher.model, teacher.model, teacher.family, quota=len(chosen))
    run.tallies[tally.name] = tally
    answered = 0
    with client_for(teacher, role="teacher", sleep=sleep) as client:
        in_a_row = 0
        for i, row in enumerate(chosen, 1):
            prompt = [{"role": m["role"], "content": m["content"]} for m in row["messages"]]
            need = sum(estimate_tokens(m["content"] or "") for m in prompt) + teacher.max_output_tokens
            if run.tokens + need > cfg.max_tokens:
                tally.stopped = f"token budget spent ({run.tokens} of {cfg.max_tokens} used; a request needs ~{need})"
                break
            tally.requests += 1
            answered = i
            reason, detail, answer = "", "", None
            try:
                reply = client.chat(prompt, temperature=0.0, max_tokens=teacher.max_output_tokens)
                answer = (reply.content or "").strip()
                if not answer:
                    reason, detail = "empty_reply", "the teacher's reply holds no text"
            except EndpointError as exc:
                reason, detail = exc.reason, exc.detail
            finally:
                tally.tokens, tally.rate_limited = client.usage.tokens, client.usage.rate_limited
            if reason:
                tally.failed_requests += 1
                tally.failures[reason] += 1
                run.reject(tally.name, i, reason, f"teacher {tally.name}, interaction {row['interaction_id']}: {detail}",
                           {"interaction_id": row["interaction_id"], "input": row["input_text"]})
                in_a_row += 1
                if in_a_row >= cfg.max_failed_requests:
                    tally.stopped = f"{in_a_row} failed requests in a row (last: {reason}: {detail[:200]})"
                    break
                continue
            in_a_row = 0
            tally.accepted += 1
            run.rows.append({"messages": [*prompt, {"role": "assistant", "content": answer}], "teacher": teacher.model,
                             "teacher_family": teacher.family, "interaction_id": row["interaction_id"],
                             "served_by": row["model_version"], "id": f"{partition}-{row['interaction_id']}"})
    run.facts["inputs_this_week"] = len(interactions)
    run.facts["not_answered"] = len(chosen) - answered
    if tally.missing:
        run.notes.append(f"{tally.name}: {tally.accepted} of {tally.quota} inputs answered ({tally.stopped or 'failures'})")
    return write_run(home, run)
