"""Step 4, conflicts: near-same inputs whose answers disagree.

What is left of a near-input group after deduplication disagrees with its most trusted member
(answer similarity below `conflict_answer_similarity`): that member is kept, the others are dropped
and listed in `ctx.conflicts` (`conflicts.parquet`, and the review batch `conflicts-<version>`). A pair a
reviewer already passed (the dropped answer is acceptable too; `steps.conflict_verdicts`) keeps both.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from flywheel.core.text import final_answer
from flywheel.curation.context import CurationContext, Step, input_text
from flywheel.curation.steps.conflict_verdicts import ACCEPTED_PAIRS
from flywheel.curation.steps.dedup import answer_similarity, near_input_groups


class ConflictStep(Step):
    """Near-same inputs with contradicting answers: keep the most trusted, list the rest for review."""

    name = "conflicts"

    def run(self, rows: list[dict[str, Any]], ctx: CurationContext) -> list[dict[str, Any]]:
        drop = np.zeros(len(rows), dtype=bool)
        accepted = ctx.facts.get(ACCEPTED_PAIRS) or set()
        for keeper, members in near_input_groups(rows, ctx):
            k = rows[keeper]
            kept_answer = final_answer(k["messages"])
            for i, input_sim in members:
                r = rows[i]
                if (r["example_id"], k["example_id"]) in accepted:
                    continue
                answer = final_answer(r["messages"])
                sim = answer_similarity(answer, kept_answer)
                drop[i] = True
                ctx.drop(r, self.name, "conflicting_answer",
                         f"input ~{input_sim:.2f} Jaccard, answer similarity {sim:.2f} to the kept one", k["example_id"])
                ctx.conflicts.append({
                    "example_id": r["example_id"], "source": r.get("source"), "generator": r.get("generator"),
                    "input": input_text(r["messages"]), "answer": answer, "kept_example_id": k["example_id"],
                    "kept_source": k.get("source"), "kept_answer": kept_answer, "similarity": round(sim, 4),
                    "messages": r["messages"],  # for the review batch; not a column of conflicts.parquet
                })
        return [r for r, d in zip(rows, drop, strict=True) if not d]
