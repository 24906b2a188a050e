"""Generation with real tiny LoRA models: batching, broken adapters named by file, the champion-answer
cache, and the inference device."""

from __future__ import annotations

from pathlib import Path

import pytest

from flywheel.core.storage import FlywheelHome
from flywheel.evaluation.eval_set import EvalItem
from flywheel.evaluation.generation import (
    champion_answers,
    generate_answers,
    generation_model,
    inference_device,
)
from flywheel.models.artifact import AdapterError, read_candidate
from tests.evaluation.eval_files import MAX_NEW_TOKENS
from tests.models.artifacts import install_model


def test_generation_batched_equals_one_by_one(adapters: dict[str, Path], tmp_path: Path) -> None:
    home = FlywheelHome(tmp_path / "home")
    install_model(home, "vb", adapters["better"])
    model, tok = generation_model(home, read_candidate(home))
    prompts = [[{"role": "user", "content": "clean q1"}], [{"role": "user", "content": "a much longer edge_case q7 ..."}],
               [{"role": "user", "content": "edge_case q2"}]]
    batched = generate_answers(model, tok, prompts, MAX_NEW_TOKENS, batch_size=3)
    single = [generate_answers(model, tok, [p], MAX_NEW_TOKENS, batch_size=1)[0] for p in prompts]
    assert batched == single
    assert batched[0] == "yes"  # learned, and stopped at eos
    assert tok.padding_side == "left"


def test_corrupt_adapter_fails_naming_the_file(adapters: dict[str, Path], tmp_path: Path) -> None:
    home = FlywheelHome(tmp_path / "home")
    target = install_model(home, "vbad", adapters["better"])
    weights = target / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(AdapterError, match="adapter_model.safetensors"):
        generation_model(home, read_candidate(home))
    (target / "adapter_config.json").write_text("{not json")
    with pytest.raises(AdapterError, match="adapter_config.json"):
        generation_model(home, read_candidate(home))


def test_champion_answers_are_cached(tmp_path: Path) -> None:
    home = FlywheelHome(tmp_path / "home")
    items = [EvalItem("a", "clean", [{"role": "user", "content": "hi"}], "yes")]
    calls: list[int] = []

    def load() -> tuple:
        from flywheel.models.base import load_base

        calls.append(1)
        return load_base("tiny", home)

    first, cached1 = champion_answers(home, "base:tiny", "h1", items, 4, load)
    second, cached2 = champion_answers(home, "base:tiny", "h1", items, 4, load)
    assert (cached1, cached2, len(calls)) == (False, True, 1) and first == second
    _, cached3 = champion_answers(home, "base:tiny", "h2", items, 4, load)
    assert not cached3 and len(calls) == 2


def test_inference_device_uses_a_gpu_in_bf16_when_there_is_one(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert inference_device() == ("cuda", "bfloat16")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert inference_device() == ("cuda", "float16")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert inference_device() == ("cpu", "float32")
