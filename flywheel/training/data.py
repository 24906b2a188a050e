"""Turning dataset rows into token ids and loss masks for LoRA SFT (no torch training here).

Steps, each reporting its counts:
- `read_examples`: the messages, weights and ids of an EXAMPLE_SCHEMA Parquet file.
- `check_eval_leaks`: refuse training rows that copy an eval item's input, up to a few character
  edits (`flywheel.curation.steps.decontamination.eval_near_copies`, the curation step's rule).
- `split_validation`: hold out a seeded share of the training examples (by example id) for the
  validation loss; the eval set is never touched.
- `repeats_for_weight`: sample weights become repetitions (rounded half up).
- `tokenize_conversation`: the base tokenizer's chat template renders the conversation; the loss mask
  covers assistant turns only. Templates with `{% generation %}` markers give the mask directly
  (`return_assistant_tokens_mask`); others fall back to rendering each prompt with
  `add_generation_prompt=True` and diffing it against the conversation up to that answer.
- `tokenize_examples`: all rows, truncated to `max_length`; counts assistant tokens and refuses a
  dataset with none (the trap where training looks healthy and learns nothing).
- `pack_rows`: best-fit-decreasing packing of whole examples into rows of at most `max_length`
  tokens, keeping each example's length so attention never crosses an example boundary.
- `PackedCollator`: packed rows -> batches whose position ids restart at every example.
"""

from __future__ import annotations

import hashlib
import math
import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from flywheel.config import CurationConfig
from flywheel.core.errors import InputError
from flywheel.core.storage import read_table
from flywheel.curation.steps.decontamination import eval_near_copies

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

IGNORE_INDEX = -100


class TrainingDataError(InputError):
    """Training data that must not be trained on; the message names the file, row and reason."""


class EvalLeakError(TrainingDataError):
    """A training example's input is an item of the fixed eval set."""


class NoTrainableTokensError(TrainingDataError):
    """After tokenization and truncation no token is an assistant token: the loss would be empty."""


# --- reading -------------------------------------------------------------------------------
Conversation = list[dict[str, str]]


def read_examples(path: Path) -> tuple[pa.Table, list[Conversation], list[float | None], list[str]]:
    """(table, messages, weights, example ids) of an EXAMPLE_SCHEMA Parquet file; a missing weight
    column counts every weight as 1, missing ids are row numbers."""
    if not path.is_file():
        raise TrainingDataError(f"{path}: missing")
    table = read_table(path)
    if "messages" not in table.column_names:
        raise TrainingDataError(f"{path}: no `messages` column (expected EXAMPLE_SCHEMA)")
    messages = [
        [{"role": m["role"], "content": m["content"]} for m in (msgs or [])]
        for msgs in table.column("messages").to_pylist()
    ]
    weights = table.column("weight").to_pylist() if "weight" in table.column_names else [1.0] * len(messages)
    ids = (
        table.column("example_id").to_pylist()
        if "example_id" in table.column_names
        else [str(i) for i in range(len(messages))]
    )
    return table, messages, weights, ids


# --- leak check ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Leak:
    train_row: int
    eval_row: int
    input_text: str
    edits: int = 0  # character edits between the training input and the eval input (normalised)


def find_eval_leaks(
    train_messages: Sequence[list[dict[str, str]]],
    eval_messages: Sequence[list[dict[str, str]]],
    config: CurationConfig | None = None,
) -> list[Leak]:
    """Training rows with a user turn within a few character edits of an eval item's input: the curation
    step's rule (`eval_near_copies`, thresholds from `config`, the project's curation section; defaults
    when None), so data that curation let through is never refused here, nor the reverse."""
    return [Leak(train_row=c.train_row, eval_row=c.eval_row, input_text=c.text[:120], edits=c.edits)
            for c in eval_near_copies(train_messages, eval_messages, config)]


def check_eval_leaks(
    train_messages: Sequence[list[dict[str, str]]],
    eval_messages: Sequence[list[dict[str, str]]],
    *,
    train_source: str = "train.parquet",
    eval_source: str = "eval set",
    example_ids: Sequence[str] | None = None,
    config: CurationConfig | None = None,
) -> int:
    """Raise `EvalLeakError` naming the rows when any training input copies an eval input; else return 0."""
    leaks = find_eval_leaks(train_messages, eval_messages, config)
    if leaks:
        shown = "; ".join(
            f"{train_source} row {lk.train_row}"
            + (f" (example_id {example_ids[lk.train_row]})" if example_ids is not None else "")
            + (f" = {eval_source} row {lk.eval_row}" if lk.edits == 0
               else f" ~ {eval_source} row {lk.eval_row} ({lk.edits} character edit(s))")
            + f": {lk.input_text!r}"
            for lk in leaks[:5]
        )
        more = f" and {len(leaks) - 5} more" if len(leaks) > 5 else ""
        raise EvalLeakError(
            f"refusing to train: {len(leaks)} training example(s) leak eval items: {shown}{more}"
        )
    return 0


# --- validation split ------------------------------------------------------------------------
@dataclass(frozen=True)
class ValidationSplit:
    """Which training rows are held out for the validation loss (row indices of train.parquet)."""

    fit_rows: list[int]
    validation_rows: list[int]
    validation_ids: list[str]
    skipped: str | None = None  # why there is no split (disabled, too few examples)

    def summary(self) -> dict[str, Any]:
        return {"examples": len(self.validation_ids), "rows": len(self.validation_rows),
                "fit_rows": len(self.fit_rows), "skipped": self.skipped,
                "ids_hash": hashlib.sha256("\n".join(sorted(self.validation_ids)).encode()).hexdigest()[:16]}


def split_validation(
    example_ids: Sequence[str], weights: Sequence[float | None], share: float, min_examples: int, seed: int
) -> ValidationSplit:
    """Hold out `share` of the distinct training examples (by example id, ranked by a seeded hash, so the
    same ids are held out for every seed replicate and whatever the row order) for the validation loss.

    Only rows of the training data are candidates (never the eval set), and every row of a held-out id
    leaves the fitted rows, so the two are disjoint. Examples with weight <= 0 are never held out (they
    are not trained on either). No split when `share` is 0 or would hold out fewer than `min_examples`."""
    rows = range(len(example_ids))
    candidates = sorted({example_ids[i] for i in rows if repeats_for_weight(weights[i]) > 0})
    n = round(share * len(candidates))
    if share <= 0:
        return ValidationSplit(list(rows), [], [], "validation_share is 0")
    if n < min_examples:
        return ValidationSplit(list(rows), [], [], f"{len(candidates)} examples x validation_share {share} = {n} "
                               f"< validation_min_examples {min_examples}")
    ranked = sorted(candidates, key=lambda i: hashlib.sha256(f"{seed}:{i}".encode()).hexdigest())
    held = set(ranked[:n])
    validation = [i for i in rows if example_ids[i] in held]
    return ValidationSplit([i for i in rows if example_ids[i] not in held], validation, sorted(held))


# --- sample weights --------------------------------------------------------------------------
def repeats_for_weight(weight: float | None) -> int:
    """How often an example appears per epoch: its weight rounded half up; 0 for weight <= 0.

    A missing weight counts as 1. Weights between 0 and 0.5 still train once (a kept example is never
    silently dropped); only explicit non-positive weights drop it."""
    if weight is None or (isinstance(weight, float) and math.isnan(weight)):
        return 1
    if weight <= 0:
        return 0
    return max(1, math.floor(weight + 0.5))


# --- tokenization ----------------------------------------------------------------------------
def has_generation_markers(chat_template: str | None) -> bool:
    return bool(chat_template) and re.search(r"\{%-?\s*generation\s*-?%\}", chat_template or "") is not None


def _ids(encoded: Any) -> list[int]:
    if isinstance(encoded, dict) or hasattr(encoded, "keys"):
        encoded = encoded["input_ids"]
    return list(encoded)


def _masks_from_markers(
    tokenizer: PreTrainedTokenizerBase, messages: list[dict[str, str]]
) -> tuple[list[int], list[int]]:
    out = tokenizer.apply_chat_template(
        messages, tokenize=True, return_dict=True, return_assistant_tokens_mask=True
    )
    return list(out["input_ids"]), [int(b) for b in out["assistant_masks"]]


def _masks_from_prefix_diff(
    tokenizer: PreTrainedTokenizerBase, messages: list[dict[str, str]]
) -> tuple[list[int], list[int]]:
    """Mask built by rendering, for each assistant turn, the prompt with `add_generation_prompt=True`
    and the conversation up to and including that answer: the tokens in between are the answer."""
    full = _ids(tokenizer.apply_chat_template(messages, tokenize=True))
    mask = [0] * len(full)
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        prompt = _ids(tokenizer.apply_chat_template(messages[:i], tokenize=True, add_generation_prompt=True))
        upto = _ids(tokenizer.apply_chat_template(messages[: i + 1], tokenize=True))
        if upto[: len(prompt)] != prompt or full[: len(upto)] != upto:
            raise TrainingDataError(
                "chat template is not prefix-stable (rendering a prompt is not a prefix of the rendered conversation); "
                "cannot derive the assistant mask: add {% generation %} markers to the template"
            )
        end = len(upto)
        eos = getattr(tokenizer, "eos_token_id", None)
        if (
            eos is not None and eos in upto[len(prompt) : end]
        ):  # the template's text after end-of-turn is not the answer
            end = len(upto) - upto[::-1].index(eos)
        for j in range(len(prompt), end):
            mask[j] = 1
    return full, mask


def tokenize_conversation(
    tokenizer: PreTrainedTokenizerBase, messages: list[dict[str, str]]
) -> tuple[list[int], list[int]]:
    """(input_ids, assistant mask) of one conversation rendered by the tokenizer's chat template."""
    if has_generation_markers(getattr(tokenizer, "chat_template", None)):
        return _masks_from_markers(tokenizer, messages)
    return _masks_from_prefix_diff(tokenizer, messages)


@dataclass
class TokenizedData:
    """Token rows ready for the trainer plus the counts of every step."""

    rows: list[dict[str, list[int]]]  # input_ids, labels (IGNORE_INDEX outside assistant turns)
    counts: dict[str, int] = field(default_factory=dict)
    mask_route: str = "generation_markers"

    @property
    def total_tokens(self) -> int:
        return self.counts.get("tokens", 0)

    @property
    def trained_tokens(self) -> int:
        return self.counts.get("assistant_tokens", 0)

    @property
    def trained_token_share(self) -> float:
        return self.trained_tokens / self.total_tokens if self.total_tokens else 0.0

    def summary(self) -> dict[str, Any]:
        return {
            **self.counts,
            "trained_token_share": round(self.trained_token_share, 6),
            "mask_route": self.mask_route,
        }


def tokenize_examples(
    tokenizer: PreTrainedTokenizerBase,
    conversations: Iterable[list[dict[str, str]]],
    weights: Iterable[float | None],
    *,
    max_length: int,
    seed: int = 0,
    source: str = "train.parquet",
) -> TokenizedData:
    """Tokenize, mask, truncate and weight-expand all conversations; refuse when nothing is trainable.

    Counts: examples (read) = examples_kept + dropped_zero_weight + dropped_no_assistant_tokens;
    rows = sum of repeats of kept examples."""
    counts = {
        "examples": 0,
        "examples_kept": 0,
        "dropped_zero_weight": 0,
        "dropped_no_assistant_tokens": 0,
        "truncated": 0,
        "rows": 0,
        "tokens": 0,
        "assistant_tokens": 0,
    }
    route = (
        "generation_markers"
        if has_generation_markers(getattr(tokenizer, "chat_template", None))
        else "prefix_diff"
    )
    rows: list[dict[str, list[int]]] = []
    for index, (messages, weight) in enumerate(zip(conversations, weights, strict=True)):
        counts["examples"] += 1
        repeats = repeats_for_weight(weight)
        if repeats == 0:
            counts["dropped_zero_weight"] += 1
            continue
        try:
            ids, mask = tokenize_conversation(tokenizer, list(messages))
        except TrainingDataError as exc:
            raise TrainingDataError(f"{source} row {index}: {exc}") from None
        if len(ids) > max_length:
            counts["truncated"] += 1
            ids, mask = ids[:max_length], mask[:max_length]
        n_assistant = sum(mask)
        if n_assistant == 0:
            counts["dropped_no_assistant_tokens"] += 1
            continue
        counts["examples_kept"] += 1
        labels = [t if m else IGNORE_INDEX for t, m in zip(ids, mask, strict=True)]
        for _ in range(repeats):
            rows.append({"input_ids": ids, "labels": labels})
            counts["rows"] += 1
            counts["tokens"] += len(ids)
            counts["assistant_tokens"] += n_assistant
    if counts["assistant_tokens"] == 0:
        raise NoTrainableTokensError(
            f"{source}: refusing to train: 0 assistant tokens after tokenization and truncation to "
            f"max_length={max_length} ({counts['examples']} examples read, {counts['dropped_zero_weight']} with weight <= 0, "
            f"{counts['dropped_no_assistant_tokens']} with no assistant tokens); the loss mask is empty, so training "
            "would look healthy and learn nothing"
        )
    random.Random(seed).shuffle(rows)
    return TokenizedData(rows=rows, counts=counts, mask_route=route)


# --- packing ---------------------------------------------------------------------------------
def pack_rows(rows: Sequence[dict[str, list[int]]], max_length: int) -> list[dict[str, list[int]]]:
    """Best-fit-decreasing packing of whole rows into bins of at most `max_length` tokens.

    Each packed row keeps `seq_lengths` (the lengths of the examples in it) so position ids restart per
    example and the attention mask stays block-diagonal. Deterministic for a given input order."""
    order = sorted(range(len(rows)), key=lambda i: (-len(rows[i]["input_ids"]), i))
    bins: list[list[int]] = []
    space: list[int] = []
    for i in order:
        n = len(rows[i]["input_ids"])
        best, best_left = -1, max_length + 1
        for b, left in enumerate(space):
            if n <= left < best_left:
                best, best_left = b, left
                if left == n:
                    break
        if best < 0:
            bins.append([i])
            space.append(max_length - n)
        else:
            bins[best].append(i)
            space[best] -= n
    packed = []
    for members in bins:
        ids: list[int] = []
        labels: list[int] = []
        lengths: list[int] = []
        for i in sorted(members):
            ids.extend(rows[i]["input_ids"])
            labels.extend(rows[i]["labels"])
            lengths.append(len(rows[i]["input_ids"]))
        packed.append({"input_ids": ids, "labels": labels, "seq_lengths": lengths})
    return packed


# --- batching --------------------------------------------------------------------------------
class PackedCollator:
    """Batches packed rows (`input_ids`, `labels`, `seq_lengths`) without an attention mask.

    Position ids restart at every example, so transformers builds a block-diagonal causal mask (SDPA,
    eager) or varlen boundaries (flash attention); right padding needs no mask in causal training.
    `padding_free` flattens the batch into one row (best with flash attention). The first token of
    every example is never a label (it would be predicted from the previous example)."""

    def __init__(
        self, pad_token_id: int, padding_free: bool = False, pad_to_multiple_of: int | None = None
    ) -> None:
        self.pad_token_id = pad_token_id
        self.padding_free = padding_free
        self.pad_to_multiple_of = pad_to_multiple_of

    def _pad_len(self, n: int) -> int:
        m = self.pad_to_multiple_of
        return n if not m else int(math.ceil(n / m) * m)

    def __call__(self, examples: Sequence[dict[str, Any]]) -> dict[str, Any]:
        import torch

        rows = []
        for ex in examples:
            lengths = ex.get("seq_lengths") or [len(ex["input_ids"])]
            pos = [p for n in lengths for p in range(n)]
            rows.append((list(ex["input_ids"]), list(ex["labels"]), pos))
        if self.padding_free:
            rows = [tuple(sum((list(r[k]) for r in rows), []) for k in range(3))]
        width = self._pad_len(max(len(r[0]) for r in rows))
        ids = torch.full((len(rows), width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
        pos = torch.zeros((len(rows), width), dtype=torch.long)
        real = 0
        for i, (r_ids, r_labels, r_pos) in enumerate(rows):
            n = len(r_ids)
            real += n
            ids[i, :n] = torch.tensor(r_ids)
            labels[i, :n] = torch.tensor(r_labels)
            pos[i, :n] = torch.tensor(r_pos)
            if width > n:  # padding forms its own "sequence" so no real token attends to it
                pos[i, n:] = torch.arange(width - n)
        labels[pos == 0] = IGNORE_INDEX
        out: dict[str, Any] = {"input_ids": ids, "labels": labels, "position_ids": pos, "real_tokens": real}
        if self.padding_free:
            starts = (pos[0] == 0).nonzero().flatten()
            cu = torch.cat([starts, torch.tensor([width])]).to(torch.int32)
            out["cu_seq_lens_q"] = out["cu_seq_lens_k"] = cu
            out["max_length_q"] = out["max_length_k"] = int(cu.diff().max())
        return out
