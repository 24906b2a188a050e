"""Step 1, format: canonical ChatML and the configured system prompt."""

from __future__ import annotations

import json

from flywheel.config import CurationConfig
from flywheel.core.records import make_example
from flywheel.curation.context import CurationContext
from flywheel.curation.pipeline import run_steps
from flywheel.curation.steps.format import FormatStep
from tests.curation.examples import ex


def test_format_step_system_prompt_policy() -> None:
    cfg = CurationConfig(system_prompt="You are the support bot.")
    same = make_example([{"role": "system", "content": "You are the support bot."}, {"role": "user", "content": "hi"},
                         {"role": "assistant", "content": "Hello."}], "human")
    other = make_example([{"role": "system", "content": "You are a pirate."}, {"role": "user", "content": "hi"},
                          {"role": "assistant", "content": "Arr."}], "human")
    missing = ex("reset pw", "Go to Settings > Security.")
    broken = make_example([{"role": "assistant", "content": "no user"}], "human")
    ctx = CurationContext(cfg)
    rows, _ = run_steps([same, other, missing, broken], ctx, [FormatStep()])
    assert {d["reason"] for d in ctx.drops} == {"system_prompt_mismatch", "no_user_turn"}
    fixed = next(r for r in rows if r["messages"][-1]["content"].startswith("Go to"))
    assert fixed["messages"][0] == {"role": "system", "content": "You are the support bot."}
    assert fixed["example_id"] != missing["example_id"]
    assert json.loads(fixed["lineage"])["original_example_id"] == missing["example_id"]
