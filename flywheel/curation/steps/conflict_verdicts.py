"""Step 1b, conflict verdicts: what reviewers decided on earlier versions' conflicts, applied to this build.

Each conflict item (batch `conflicts-<version>`) shows an example D that was dropped as conflicting
beside the answer of the example K kept instead. The reviewer's verdict on D:

- pass: D's answer is acceptable too. Both rows stay, and the conflicts step no longer drops D
  against K (nor lists the pair again).
- fix: the edited answer replaces both: D becomes one row with D's prompt and the reviewer's answer
  (human_fixed), K is dropped (`conflict_fixed`).
- reject: D's answer is wrong: D stays dropped (`conflict_rejected`, before the conflicts step, so it
  is not listed again) and K stays.
- reject with a reason starting with "both" (e.g. "both wrong: the refund window is 14 days"): both
  answers are wrong, D and K are dropped (`conflict_rejected`, `conflict_rejected_both`).

Verdicts come from every conflict batch in the decision store (a later batch's verdict on the same D wins);
a verdict whose example is not in this build is counted as not applied. Runs after the format step:
conflict ids are the ids the conflicts step saw.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from flywheel.curation.context import CurationContext, Step, with_fixed_answer

CONFLICT_FIXED = "conflict_fixed"
CONFLICT_REJECTED = "conflict_rejected"
CONFLICT_REJECTED_BOTH = "conflict_rejected_both"
ACCEPTED_PAIRS = "_conflict_accepted_pairs"
"""ctx.facts key: (dropped id, kept id) pairs a reviewer passed; the conflicts step keeps both."""


class ConflictVerdictStep(Step):
    """Reviewers' verdicts on earlier conflicts: pass keeps both, fix replaces both, reject keeps D out."""

    name = "conflict_verdicts"

    def run(self, rows: list[dict[str, Any]], ctx: CurationContext) -> list[dict[str, Any]]:
        verdicts = ctx.reviews.conflict_verdicts
        applied: Counter[str] = Counter()
        accepted: set[tuple[str, str | None]] = set()
        ctx.facts[ACCEPTED_PAIRS] = accepted
        if not verdicts:
            ctx.facts["conflict_verdicts_applied"] = {}
            return rows
        by_id: dict[str, list[int]] = {}
        for i, r in enumerate(rows):
            by_id.setdefault(r["example_id"], []).append(i)
        drop: dict[int, tuple[str, str, str | None]] = {}
        replace: dict[int, dict[str, Any]] = {}
        for cv in verdicts:
            v = cv.verdict
            dropped, kept = by_id.get(cv.dropped_id, []), by_id.get(cv.kept_id or "", [])
            if v.verdict == "pass":
                if dropped:
                    accepted.add((cv.dropped_id, cv.kept_id))
                applied["passed: both kept" if dropped else "not applied (example not in this build)"] += 1
            elif v.verdict == "fix" and v.text:
                if not dropped:
                    applied["not applied (example not in this build)"] += 1
                    continue
                for i in dropped:
                    replace[i] = with_fixed_answer(rows[i], v.text, conflict_batch=v.batch_id, reviewer=v.reviewer,
                                                   verdict="fix", replaces=[cv.dropped_id, cv.kept_id])
                new_id = replace[dropped[0]]["example_id"]
                for i in kept:
                    drop[i] = (CONFLICT_FIXED, f"replaced by the reviewer's fix in {v.batch_id}", new_id)
                applied["fixed: one row replaces both"] += 1
            elif v.verdict == "reject":
                why = f"rejected in {v.batch_id}" + (f": {v.reason}" if v.reason else "")
                for i in dropped:
                    drop[i] = (CONFLICT_REJECTED, why, cv.kept_id if not cv.both_wrong else None)
                if cv.both_wrong:
                    for i in kept:
                        drop[i] = (CONFLICT_REJECTED_BOTH, why, None)
                applied[("rejected: both dropped" if cv.both_wrong else "rejected: dropped one stays out")
                        if dropped or kept else "not applied (example not in this build)"] += 1
        out = []
        for i, r in enumerate(rows):
            if i in drop:
                reason, detail, instead = drop[i]
                ctx.drop(r, self.name, reason, detail, instead)
            else:
                out.append(replace.get(i, r))
        ctx.facts["conflict_verdicts_applied"] = dict(applied.most_common())
        return out
