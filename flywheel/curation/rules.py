"""The quality rules of a dataset version: blocking rules stop the flywheel before training,
the others are warnings (each becomes a Dagster asset check of `training_dataset`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from flywheel.core.text import final_answer, shingle_form
from flywheel.curation.answer_format import AnswerFormat
from flywheel.curation.context import ratio_counts
from flywheel.curation.pipeline import CurationResult
from flywheel.curation.steps.admission import needs_admission, unadmitted_files
from flywheel.curation.steps.rubric import ANSWER_FORMAT


@dataclass
class Rule:
    """A quality rule of a dataset version: blocking rules stop the run before training."""

    name: str
    blocking: bool
    passed: bool
    message: str


def format_rule(result: CurationResult) -> Rule:
    """`format_consistent` (blocking): the format step ran, and every final row ends with an answer,
    carries the configured system prompt and complies with the answer format (rows breaking it were
    dropped by the rubric step; their count is part of the message)."""
    cfg = result.ctx.config
    rows = result.rows
    # full validation ran in the format step (later steps only remove rows); here: the step ran, and
    # every final row still ends with an answer, has the system prompt and the answer format
    format_ran = any(r.step == "format" for r in result.reports)
    prompt = shingle_form(cfg.system_prompt) if cfg.system_prompt is not None else None
    bad_format = [r["example_id"] for r in rows if not r["messages"] or r["messages"][-1]["role"] != "assistant"
                  or (prompt is not None and (r["messages"][0]["role"] != "system"
                      or shingle_form(r["messages"][0]["content"]) != prompt))]
    answer_format = AnswerFormat.from_config(cfg)
    bad_answers = [r["example_id"] for r in rows if answer_format.problem(final_answer(r["messages"])) is not None]
    n_format_drops = sum(1 for d in result.drops if d["reason"] == ANSWER_FORMAT)
    if not format_ran:
        message = "the format step did not run"
    elif bad_format:
        message = f"{len(bad_format)} rows lack a final answer or the system prompt (e.g. {bad_format[:3]})"
    elif bad_answers:
        message = f"{len(bad_answers)} rows break the answer format ({answer_format.describe()}; e.g. {bad_answers[:3]})"
    else:
        message = f"all {len(rows)} rows canonical ChatML" + (" with the configured system prompt" if cfg.system_prompt else "")
        if answer_format.configured:
            message += (f"; every answer complies with {answer_format.describe()} "
                        f"({n_format_drops} rows breaking it dropped)")
    return Rule("format_consistent", True, format_ran and not bad_format and not bad_answers, message)


def admission_rule(result: CurationResult) -> Rule:
    """`sources_admitted` (blocking): no row of a synthetic or distilled file whose admission sample is not
    reviewed and passed is in the dataset; names every held-out file and why."""
    admission = result.ctx.reviews.admission
    rows = result.rows
    n_gen = sum(1 for r in rows if needs_admission(r))
    bad = unadmitted_files(rows, admission)
    if admission is None:
        return Rule("sources_admitted", True, not n_gen, "no synthetic or distilled rows" if not n_gen else
                    f"{n_gen} synthetic or distilled rows and their files' admission was not checked")
    held = [fa for fa in admission.values() if not fa.admitted]
    held_text = "; ".join(f"{fa.name} {fa.status}: {fa.detail}" for fa in held)
    if bad:
        names = ", ".join(f"{admission[k].name if k in admission else k[0] or 'unknown file'} ({n} rows)"
                          for k, n in bad.items())
        return Rule("sources_admitted", True, False, f"rows of files not admitted are in the dataset: {names}")
    n_files = sum(1 for fa in admission.values() if fa.admitted)
    message = f"{n_gen} synthetic/distilled rows, all from {n_files} admitted files"
    return Rule("sources_admitted", True, True, message + (f"; held out: {held_text}" if held else ""))


def evaluate_rules(result: CurationResult, rubric_problem: str | None, diversity_rows: Sequence[dict[str, Any]],
                   gap: dict[str, Any]) -> list[Rule]:
    """Every blocking and warning rule of the dataset, computed on the final rows."""
    cfg = result.ctx.config
    rows = result.rows
    facts = result.ctx.facts
    n = len(rows)
    counts = ratio_counts(rows, set(cfg.self_generator_names) | result.ctx.production_model_versions)
    n_real, n_gen = counts["real_or_human"], counts["generated"]
    rules = [
        Rule("rubric_edited", True, rubric_problem is None, rubric_problem or "rubric present and edited"),
        format_rule(result),
        Rule("size_floor", True, n >= cfg.min_examples, f"{n} examples (floor {cfg.min_examples})"),
        Rule("real_synthetic_ratio", True, n_gen <= n_real * cfg.max_synthetic_per_real,
             f"{n_real} real/human : {n_gen} generated ({counts['synthetic']} synthetic + {counts['distilled']} "
             f"distilled; at most 1:{cfg.max_synthetic_per_real:g})"),
        admission_rule(result),
    ]
    eval_rows = result.ctx.eval_items.rows
    decon = next((r for r in result.reports if r.step == "decontamination"), None)
    if eval_rows is None:
        rules.append(Rule("no_eval_contamination", True, False,
                          f"the fixed eval set is missing ({result.ctx.eval_items.path}): materialize `fixed_eval_set` "
                          "first; a dataset cannot be checked for contamination without it"))
    elif decon is None:
        rules.append(Rule("no_eval_contamination", True, False, "the decontamination step did not run"))
    else:  # later steps only remove rows, so the rows the step let through stay clean
        rules.append(Rule("no_eval_contamination", True, True,
                          f"no overlap with {len(eval_rows)} eval items ({sum(decon.dropped.values())} examples removed)"))
    shares = facts.get("generator_shares", {})
    top = max(shares.items(), key=lambda kv: kv[1]) if shares else None
    rules.append(Rule("single_generator_share", False, top is None or top[1] <= cfg.max_generator_share,
                      f"top generator {top[0]} wrote {top[1]:.0%} of synthetic rows (max {cfg.max_generator_share:.0%})"
                      if top else "no synthetic rows"))
    falling = [d for d in diversity_rows if d["warn"]]
    rules.append(Rule("diversity_drop", False, not falling,
                      "; ".join(f"{d['group']} {d['metric']} {d['previous']}->{d['current']}" for d in falling[:5])
                      or "no diversity measure fell by more than the warning level"))
    gap_score = gap.get("gap_score")
    rules.append(Rule("distribution_gap", False, gap_score is None or gap_score <= cfg.distribution_gap_warn,
                      f"gap score {gap_score} (KS {gap.get('length_ks')}, AUC {gap.get('classifier_auc')}); "
                      f"under-represented: {', '.join(gap.get('underrepresented_kinds', [])) or 'none'}"
                      if gap.get("available") else "no production traffic to compare with"))
    n_conf = len(result.ctx.conflicts)
    rules.append(Rule("conflicts_pending_review", False, n_conf == 0, f"{n_conf} conflicting examples listed for review"))
    rules.append(Rule("size_target", False, n >= cfg.target_examples, f"{n} examples (target {cfg.target_examples})"))
    return rules
