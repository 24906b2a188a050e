"""flywheel.formats.template: the chat-template round trip."""

from __future__ import annotations

from typing import Any

from flywheel.formats import check_template_round_trip, load_file, render_with_template
from tests.formats.samples import SHAREGPT_FILE, TOY, conv


def tiny_tokenizer() -> Any:
    from flywheel.models.base import build_tiny_tokenizer

    return build_tiny_tokenizer()


def test_template_round_trip_with_the_tiny_tokenizer() -> None:
    tok = tiny_tokenizer()
    for r in load_file(TOY).valid_rows + load_file(SHAREGPT_FILE).rows[:20]:
        check = check_template_round_trip(tok, r.messages)
        assert check.ok, check.problems
        assert check.rendered.startswith(check.prompt) and check.prompt.endswith("assistant\n")
    msgs = conv(("user", "héllo 日本 😀  two  spaces"), ("assistant", "\tok\n"))
    check = check_template_round_trip(tok, msgs)
    assert check.ok, check.problems
    assert render_with_template(tok, msgs) == check.rendered


def test_template_round_trip_finds_broken_templates() -> None:
    tok = tiny_tokenizer()
    msgs = conv(("system", "Be kind."), ("user", "hi"), ("assistant", "hello"))
    tok.chat_template = (  # drops the system prompt
        "{% for m in messages %}{% if m['role'] != 'system' %}<|im_start|>{{ m['role'] }}\n"
        "{{ m['content'] }}<|im_end|>\n{% endif %}{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    check = check_template_round_trip(tok, msgs)
    assert not check.ok and "turn 1 (system)" in check.problems[0]
    tok.chat_template = (  # the generation prompt differs from how answers are rendered
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>bot\n{% endif %}"
    )
    check = check_template_round_trip(tok, msgs)
    assert check.problems == ["the generation prompt is not a prefix of the full rendering"]


def test_template_round_trip_finds_lossy_tokenizers() -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    word = Tokenizer(models.WordLevel(vocab={"[UNK]": 0, "hi": 1}, unk_token="[UNK]"))
    word.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(tokenizer_object=word, unk_token="[UNK]")
    tok.chat_template = tiny_tokenizer().chat_template
    check = check_template_round_trip(tok, conv(("user", "hi"), ("assistant", "hi")))
    assert check.problems == ["tokenize then decode does not give the rendered text back"]
