"""The chat template round trip: does a tokenizer render a conversation so that training = inference?

Also loads the tokenizer to check with (`tiny` or any `transformers` tokenizer) and gives
`validate_messages` / `load_file` its exact token counts.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flywheel.core.errors import require
from flywheel.formats.files import FileReport


@dataclass
class TemplateCheck:
    """Whether a tokenizer's chat template renders a conversation so that training = inference."""

    ok: bool
    problems: list[str]
    rendered: str
    prompt: str


def _plain(messages: list[dict[str, Any]]) -> list[dict[str, str]]:
    return [{"role": m["role"], "content": m["content"]} for m in messages]


def render_with_template(tokenizer: Any, messages: list[dict[str, Any]], add_generation_prompt: bool = False) -> str:
    """The text `tokenizer.apply_chat_template` makes of `messages` (roles and contents only)."""
    text = tokenizer.apply_chat_template(_plain(messages), tokenize=False, add_generation_prompt=add_generation_prompt)
    if not isinstance(text, str):
        raise TypeError(f"apply_chat_template returned {type(text).__name__}, not str")
    return text


def check_template_round_trip(tokenizer: Any, messages: list[dict[str, Any]]) -> TemplateCheck:
    """Render `messages` (ending with the assistant) and check the template round trip.

    The rendering holds every turn's content in order; the prompt (all but the final answer, with
    the generation prompt) is a prefix of the full rendering; encoding then decoding gives the
    same text.
    """
    problems: list[str] = []
    rendered = render_with_template(tokenizer, messages)
    pos = 0
    for i, m in enumerate(messages):
        found = rendered.find(m["content"], pos)
        if found < 0:
            problems.append(f"turn {i + 1} ({m['role']}) content missing or out of order in the rendering")
            break
        pos = found + len(m["content"])
    prompt = ""
    if messages and messages[-1]["role"] == "assistant":
        prompt = render_with_template(tokenizer, messages[:-1], add_generation_prompt=True)
        if not rendered.startswith(prompt):
            problems.append("the generation prompt is not a prefix of the full rendering")
    else:
        problems.append("the last turn is not from the assistant")
    ids = tokenizer.encode(rendered, add_special_tokens=False, verbose=False)
    decoded = tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)
    if decoded != rendered:
        problems.append("tokenize then decode does not give the rendered text back")
    return TemplateCheck(ok=not problems, problems=problems, rendered=rendered, prompt=prompt)


def load_tokenizer(name: str) -> Any:
    """A tokenizer with a chat template: `tiny` (the built-in test tokenizer) or a local folder or hub
    id that `transformers.AutoTokenizer` reads."""
    if name == "tiny":
        from flywheel.models.base import build_tiny_tokenizer

        return build_tiny_tokenizer()
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(name)


def tokenizer_counter(tokenizer: Any) -> Callable[[str], int]:
    """A `token_counter` for `validate_messages` / `load_file`: exact token counts of `tokenizer`."""
    return lambda text: len(tokenizer.encode(text, add_special_tokens=False, verbose=False))


def check_template_file(tokenizer: Any, report: FileReport) -> dict[str, Any]:
    """`check_template_round_trip` on every valid row of `report`: rows checked, rows failed, and per
    problem its count and first row."""
    problems: Counter[str] = Counter()
    first: dict[str, str] = {}
    failed = 0
    valid = report.valid_rows
    for r in valid:
        require(r.messages is not None, "a valid row has messages")
        check = check_template_round_trip(tokenizer, r.messages)
        failed += not check.ok
        for problem in check.problems:
            problems[problem] += 1
            first.setdefault(problem, r.where)
    return {"checked": len(valid), "failed": failed, "problems": dict(problems.most_common()), "first": first}
