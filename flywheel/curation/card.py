"""The dataset card (markdown) of a dataset version, and the tables it shares with the asset's metadata."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from flywheel.core.markdown import markdown_table
from flywheel.curation.pipeline import CurationResult

ADMISSION_RULE = (
    "A synthetic or distilled file trains only once a person has reviewed a seeded sample of it (batch "
    "`admission-<file>-<hash>`) and passes / decided reach `curation.min_sample_pass_rate`. Rows of a pending or "
    "failed file are held out (`admission_pending`, `admission_failed`); in an admitted file a fixed sample row "
    "trains with the fixed answer and a rejected one is dropped (`admission_rejected`).")
CONFLICT_RULE = (
    "Verdicts on the `conflicts-<version>` batches: pass = the dropped answer is acceptable too (both rows train), "
    "fix = the edited answer replaces both (one human-fixed row), reject = the dropped answer stays out; a reject "
    "whose reason starts with \"both\" (e.g. \"both wrong\") drops the kept answer too.")
DIVERSITY_COLUMNS = ("n", "distinct_1", "distinct_2", "compression_ratio", "self_bleu", "cluster_coverage")


def rules_table(rules: Sequence[dict[str, Any]]) -> str:
    """The manifest's rules: name, blocking, passed, message."""
    return markdown_table(["rule", "blocking", "passed", "detail"], [[r["name"], r["blocking"], r["passed"], r["message"]] for r in rules])


def diversity_table(diversity: dict[str, Any]) -> str:
    """Overall and per-group diversity measures of a diversity report."""
    groups = [("overall", diversity.get("overall", {})), *diversity.get("groups", {}).items()]
    return markdown_table(["group", "n", "distinct-1", "distinct-2", "compression", "self-BLEU", "cluster coverage"],
                          [[g, *(s.get(k) for k in DIVERSITY_COLUMNS)] for g, s in groups])


def diversity_changes_table(changes: Sequence[dict[str, Any]]) -> str:
    """Each diversity measure against the previous version (change > 0 = less diverse)."""
    return markdown_table(["group", "metric", "previous", "current", "change", "warn"],
                          [[d["group"], d["metric"], d["previous"], d["current"], d["change"], d["warn"]] for d in changes])


def steps_table(steps: Sequence[dict[str, Any]]) -> str:
    """Per step: rows in and out, drops per reason, flags per rule, seconds."""
    return markdown_table(["step", "in", "out", "dropped", "flagged", "seconds"],
                          [[s["step"], s["n_in"], s["n_out"], ", ".join(f"{k}: {v}" for k, v in s["dropped"].items()) or "-",
                            ", ".join(f"{k}: {v}" for k, v in s["flagged"].items()) or "-", s["seconds"]] for s in steps])


def admission_table(entries: Sequence[dict[str, Any]]) -> str:
    """Per synthetic / distilled file (`FileAdmission.summary()`): its sample review and its status."""
    return markdown_table(
        ["file", "generator(s)", "rows", "batch", "decided", "pass rate", "status", "detail"],
        [[e["name"], ", ".join(e["generators"]) or "-", e["rows"], e["batch"] or "-", f"{e['decided']} of {e['items']}",
          "-" if e["pass_rate"] is None else f"{e['pass_rate']:.0%} ({e['passed']} passed)", e["status"], e["detail"]]
         for e in entries])


def conflict_review_table(review: dict[str, Any]) -> str:
    """The conflict batches whose verdicts a version applied (items, decided, verdicts) and what they did."""
    rows = [[b["batch"], b["items"], b["decided"], b["pass"], b["fix"], b["reject"], b["reject_both"]]
            for b in review.get("batches", [])]
    table = markdown_table(["batch", "items", "decided", "pass", "fix", "reject", "reject (both)"], rows)
    applied = ", ".join(f"{k}: {v}" for k, v in review.get("applied", {}).items()) or "nothing to apply"
    return f"{table}\n\nApplied to this version: {applied}."


def gap_table(gap: dict[str, Any]) -> str:
    """The production gap's measures (production vs training)."""
    if not gap.get("available"):
        return "no production traffic to compare with"
    rows = [["length KS", gap["length_ks"], ""], ["classifier AUC", gap["classifier_auc"], "0.5 = indistinguishable"],
            ["median words", gap["median_words"]["production"], gap["median_words"]["training"]]]
    rows += [[f"share {k}", v["production"], v["training"]] for k, v in gap["shares"].items()]
    rows.append(["under-covered kinds", ", ".join(gap["underrepresented_kinds"]) or "none", ""])
    return markdown_table(["measure", "production", "training"], rows)


def pii_section(scan: dict[str, Any] | None) -> str:
    """What the PII scan of the version's rows found, and loudly whether NER ran."""
    if not scan:
        return "**Not scanned for PII** (built before the scan existed)."
    if scan["ner"]:
        ner = f"NER ran (spaCy pipeline `{scan['ner_model']}`): names and street addresses were redacted."
    else:
        ner = (f"**NER did not run** ({scan['ner_missing_reason']}): names and street addresses were checked by "
               "patterns only (\"my name is ...\", \"12 Main Street\"); others may remain in this dataset.")
    hits = markdown_table(["kind", "redacted"], sorted(scan["hits"].items())) if scan["hits"] else "Nothing redacted."
    return f"{ner}\n\n{scan['texts_changed']} of {scan['texts']} texts changed.\n\n{hits}"


def dataset_card(manifest: dict[str, Any], result: CurationResult, rubric_text: str, rubric_path: str) -> str:
    """The dataset card (markdown): sources, drops, ratios, diversity, gap, rubric, rules, hash."""
    m = manifest
    drops = Counter((d["step"], d["reason"]) for d in result.drops)
    parts = [
        f"# Training dataset {m['version']}",
        f"Content hash: `{m['content_hash']}` (sha256 of the sorted rows; the version is its first 12 hex).",
        f"Examples: **{m['counts']['train']}** (from {m['counts']['input']} input rows)."
        + (f" Previous version: `{m['previous_version']}`." if m.get("previous_version") else ""),
        "## Sources",
        markdown_table(["source", "in", "in training"], [[s, c, m["counts"]["by_source"].get(s, 0)] for s, c in result.sources_in.items()]),
        "## Source admission",
        ADMISSION_RULE,
        admission_table(m["admission"]) if m.get("admission") else (
            "No synthetic or distilled files." if m["facts"].get("admission_checked") else "Admission was not checked."),
        "## Steps",
        markdown_table(["step", "in", "out", "dropped", "flagged", "seconds"],
                       [[r.step, r.n_in, r.n_out, sum(r.dropped.values()), sum(r.flagged.values()), r.seconds] for r in result.reports]),
        "## PII",
        pii_section(m["facts"].get("pii_scan")),
        "## Drop reasons",
        markdown_table(["step", "reason", "count"], [[s, r, c] for (s, r), c in drops.most_common()]) if drops else "Nothing dropped.",
        "## Flagged for review (one rubric rule failed)",
        markdown_table(["rule", "count"], Counter(f["rule"] for f in result.ctx.flagged).most_common()) if result.ctx.flagged else "None.",
        f"Conflicts listed for review: {len(result.ctx.conflicts)}.",
        "## Conflict verdicts applied",
        CONFLICT_RULE,
        conflict_review_table(m["conflict_review"]) if m.get("conflict_review", {}).get("batches")
        else "No conflict batch has a decision yet.",
        "## Ratios",
        markdown_table(["measure", "value"], [[k, v] for k, v in m["ratios"].items()]),
        "## Diversity",
        diversity_table(m["diversity"]),
        f"Clusters fit on the {m['diversity'].get('reference', 'dataset')} inputs.",
    ]
    if m.get("diversity_changes"):
        parts += ["Change against the previous version (change > 0 = less diverse):", diversity_changes_table(m["diversity_changes"])]
    gap = m["production_gap"]
    parts.append("## Production distribution gap")
    if m.get("plots", {}).get("input_lengths"):
        parts.append(f"![Input length, training vs production]({m['plots']['input_lengths']})")
    if gap.get("available"):
        parts += [f"Production inputs (last weeks): {gap['production_inputs']}; median length {gap['median_words']['production']:g} "
                  f"words (training {gap['median_words']['training']:g}); KS (length) {gap['length_ks']}; "
                  f"classifier AUC {gap['classifier_auc']} (0.5 = indistinguishable); gap score {gap['gap_score']}.",
                  markdown_table(["kind", "production", "training"], [[k, v["production"], v["training"]] for k, v in gap["shares"].items()]),
                  f"Too few training examples of: {', '.join(gap['underrepresented_kinds']) or 'none'}."]
    else:
        parts.append("No production traffic to compare with.")
    parts += [
        "## Quality rules",
        rules_table(m["rules"]),
        "## Warnings", "\n".join(f"- {w}" for w in m["warnings"]) or "None.",
        "## Rubric",
        f"Checked against `{rubric_path}` (sha256 `{m['rubric_sha256']}`):",
        "\n".join("> " + line for line in rubric_text.splitlines()),
    ]
    return "\n\n".join(parts) + "\n"
