"""The data path on the tiny tokenizer: assistant masks, empty-mask refusal, weights, packing, the collator;
the eval leak check (the curation step's near-copy rule)."""

from __future__ import annotations

import pytest

from flywheel.config import CurationConfig
from flywheel.curation.near_duplicates import MinHasher
from flywheel.curation.steps.decontamination import contamination, eval_near_copies
from flywheel.models.base import build_tiny_tokenizer
from flywheel.training.data import (
    EvalLeakError,
    NoTrainableTokensError,
    check_eval_leaks,
    find_eval_leaks,
    pack_rows,
    repeats_for_weight,
    tokenize_conversation,
    tokenize_examples,
)
from tests.curation.eval_variants import demo_files, planted_rows, within_budget


def test_assistant_mask_covers_only_the_answer_and_fallback_agrees() -> None:
    tok = build_tiny_tokenizer()
    messages = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "yo"},
        {"role": "user", "content": "x"},
        {"role": "assistant", "content": "ok"},
    ]
    ids, mask = tokenize_conversation(tok, messages)
    trained = tok.decode([t for t, m in zip(ids, mask, strict=True) if m])
    assert trained == "yo<|im_end|>ok<|im_end|>"
    # a template without {% generation %} markers takes the prefix-diff route and gives the same mask
    tok.chat_template = tok.chat_template.replace("{% generation %}", "").replace("{% endgeneration %}", "")
    assert tokenize_conversation(tok, messages) == (ids, mask)


def test_empty_assistant_mask_is_refused() -> None:
    tok = build_tiny_tokenizer()
    no_answer = [[{"role": "user", "content": "only a question"}]] * 3
    with pytest.raises(NoTrainableTokensError, match="0 assistant tokens"):
        tokenize_examples(tok, no_answer, [1.0] * 3, max_length=128)
    # truncation that cuts every answer away is the same trap
    long_prompt = [[{"role": "user", "content": "x" * 300}, {"role": "assistant", "content": "answer"}]]
    with pytest.raises(NoTrainableTokensError, match="max_length=64"):
        tokenize_examples(tok, long_prompt, [1.0], max_length=64)


def test_weights_repeat_examples_and_counts_conserve() -> None:
    assert [repeats_for_weight(w) for w in (0.0, 0.3, 0.5, 1.0, 1.49, 1.5, 3.0, None)] == [
        0,
        1,
        1,
        1,
        1,
        2,
        3,
        1,
    ]
    tok = build_tiny_tokenizer()
    convs = [[{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "a"}] for i in range(4)]
    data = tokenize_examples(tok, convs, [0.0, 1.0, 2.0, 3.0], max_length=128)
    c = data.counts
    assert (
        c["examples"] == c["examples_kept"] + c["dropped_zero_weight"] + c["dropped_no_assistant_tokens"] == 4
    )
    assert c["rows"] == 6 and len(data.rows) == 6
    assert 0 < data.trained_token_share < 1


def test_packing_keeps_every_token_once_within_the_limit() -> None:
    rows = [{"input_ids": [i] * n, "labels": [i] * n} for i, n in enumerate([5, 9, 3, 7, 2, 10, 1])]
    packed = pack_rows(rows, 10)
    assert all(len(p["input_ids"]) <= 10 and sum(p["seq_lengths"]) == len(p["input_ids"]) for p in packed)
    assert sorted(t for p in packed for t in p["input_ids"]) == sorted(
        t for r in rows for t in r["input_ids"]
    )
    assert len(packed) == 4  # 37 tokens in bins of 10


def test_packed_rows_train_like_separate_examples() -> None:
    """Packing (per-row block-diagonal masks) and padding-free flattening give the same summed token
    loss as running each example alone: no attention crosses an example boundary. (transformers only
    derives the block mask from position ids without a KV cache: trl passes use_cache=False.)"""
    import torch

    from flywheel.models.base import build_tiny_model
    from flywheel.training.data import IGNORE_INDEX, PackedCollator

    tok = build_tiny_tokenizer()
    model = build_tiny_model(tok).eval()
    convs = [
        [{"role": "user", "content": "q" * n}, {"role": "assistant", "content": "a" * (n + 3)}]
        for n in (5, 17, 9)
    ]
    data = tokenize_examples(tok, convs, [1.0] * 3, max_length=128)

    def summed_loss(batch: dict) -> float:
        labels = batch["labels"]
        with torch.no_grad():
            logits = model(
                input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False
            ).logits
        logp = torch.log_softmax(logits[:, :-1].float(), -1)
        target = labels[:, 1:]
        keep = target != IGNORE_INDEX
        return float(-logp.gather(-1, target.clamp(min=0).unsqueeze(-1)).squeeze(-1)[keep].sum())

    alone = sum(summed_loss(PackedCollator(tok.pad_token_id)([r])) for r in data.rows)
    packed = pack_rows(data.rows, 96)
    assert len(packed) < len(data.rows)
    for padding_free in (False, True):
        collate = PackedCollator(tok.pad_token_id, padding_free=padding_free, pad_to_multiple_of=8)
        batch = collate(packed)
        assert batch["real_tokens"] == sum(len(r["input_ids"]) for r in data.rows)
        assert summed_loss(batch) == pytest.approx(alone, rel=1e-4)


# --- leak check ------------------------------------------------------------------------------
@pytest.mark.parametrize("edits", [1, 2])
def test_leak_check_finds_the_near_copies_curation_drops(edits: int) -> None:
    # before: only an input equal to an eval input (after normalisation) was a leak: 0/114 of these
    files, _ = demo_files()
    evals = files.eval_set
    planted = planted_rows(within_budget(evals, edits), edits)
    rows = files.seed + planted
    leaks = find_eval_leaks([r["messages"] for r in rows], [e["messages"] for e in evals])
    assert [lk.train_row for lk in leaks] == list(range(len(files.seed), len(rows)))
    assert all(lk.edits == edits for lk in leaks)
    assert {lk.train_row for lk in leaks} <= set(contamination(
        rows, evals, CurationConfig(), MinHasher(64, 1, 5)))
    assert [(lk.train_row, lk.eval_row) for lk in leaks] == [
        (c.train_row, c.eval_row) for c in eval_near_copies([r["messages"] for r in rows], [e["messages"] for e in evals])]
    with pytest.raises(EvalLeakError, match=rf"train.parquet row {len(files.seed)} ~ eval set row \d+ \({edits} character"):
        check_eval_leaks([r["messages"] for r in rows], [e["messages"] for e in evals])


def test_leak_check_takes_the_projects_thresholds() -> None:
    evals = [[{"role": "user", "content": "How do I export my notes?"}, {"role": "assistant", "content": "a"}]]
    train = [[{"role": "user", "content": q}, {"role": "assistant", "content": "x"}]
             for q in ("how do i exprt my notes", "HOW DO I EXPORT MY NOTES!", "how can i export my notes")]
    assert [lk.train_row for lk in find_eval_leaks(train, evals)] == [0, 1]
    assert [lk.train_row for lk in find_eval_leaks(train, evals, CurationConfig(decontamination_max_edits=0))] == [1]
    assert check_eval_leaks(train[2:], evals) == 0
