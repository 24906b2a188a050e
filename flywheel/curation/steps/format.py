"""Step 1, format: one canonical ChatML form, validated; the configured system prompt enforced.

A row whose system prompt differs from `curation.system_prompt` (compared lower-cased, spaces
collapsed) is dropped (`system_prompt_mismatch`); a row without one gets it prepended, because
inference always sends it. A changed conversation gets a new example id (the old one in its lineage).
"""

from __future__ import annotations

import json
from typing import Any

from flywheel import formats
from flywheel.core.records import example_id
from flywheel.core.text import shingle_form
from flywheel.curation.context import CurationContext, Step


class FormatStep(Step):
    """Canonical ChatML, validated; the configured system prompt enforced (mismatch dropped, missing prepended)."""

    name = "format"

    def run(self, rows: list[dict[str, Any]], ctx: CurationContext) -> list[dict[str, Any]]:
        prompt = ctx.config.system_prompt
        kept = []
        prepended = 0
        for row in rows:
            msgs = [{"role": m["role"], "content": (m["content"] or "").replace("\r\n", "\n").strip()}
                    for m in (row.get("messages") or [])]
            if prompt is not None:
                if msgs and msgs[0]["role"] == "system":
                    if shingle_form(msgs[0]["content"]) != shingle_form(prompt):
                        ctx.drop(row, self.name, "system_prompt_mismatch", msgs[0]["content"][:200])
                        continue
                else:
                    msgs = [{"role": "system", "content": prompt.strip()}, *msgs]
                    prepended += 1
            check = formats.validate_messages(msgs, max_tokens=ctx.config.max_tokens)
            if not check.ok:
                reason = check.errors[0]
                ctx.drop(row, self.name, reason, "; ".join(f"{e}: {check.details.get(e, '')}" for e in check.errors))
                continue
            if msgs != row["messages"]:
                new_id = example_id(msgs)
                if new_id != row["example_id"]:
                    lineage = json.loads(row.get("lineage") or "{}")
                    lineage["original_example_id"] = row["example_id"]
                    row = {**row, "lineage": json.dumps(lineage, sort_keys=True, ensure_ascii=False), "example_id": new_id}
                row = {**row, "messages": msgs}
            kept.append(row)
        ctx.facts["system_prompt_prepended"] = prepended
        return kept
