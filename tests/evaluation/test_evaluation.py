"""Evaluation: the fixed eval set, leaks, the gate, generation with real tiny LoRA models, adapter
errors, champion-answer caching, the LLM judge over real HTTP, and the Dagster cycle end to end
(a better candidate is promoted, a worse one is blocked and recorded as rejected)."""

from __future__ import annotations

import json
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest
import yaml

from assets.evaluation import (
    candidate_evaluation,
    champion_model,
    eval_set_frozen,
    eval_set_has_slices,
    eval_set_max_items,
    eval_set_min_items,
    eval_set_rows_valid,
    fixed_eval_set,
    no_regression,
)
from assets.resources import FlywheelResource
from flywheel.config import EvaluationConfig
from flywheel.core.records import examples_table, make_example
from flywheel.core.storage import FlywheelHome, write_json, write_parquet
from flywheel.evaluation.cycle import (
    AdapterLoadError,
    EvalItem,
    candidate_pointer,
    champion_answers,
    check_adapter_files,
    eval_items,
    eval_set_hash,
    find_eval_leaks,
    gate,
    generate_answers,
    load_adapter_model,
    load_eval_set,
    make_judge,
    model_version,
    score_answers,
)
from flywheel.evaluation.metrics import LLMJudge
from flywheel.models import registry

SLICE_ANSWERS = {"clean": "yes", "messy": "yes", "edge_case": "yes or no", "decline": "yes, sorry", "out_of_domain": "yes"}
MAX_NEW_TOKENS = 12


# --- data helpers ----------------------------------------------------------------------------
def eval_rows(n: int = 100) -> list[dict]:
    slices = list(SLICE_ANSWERS)
    rows = []
    for i in range(n):
        s = slices[i % len(slices)]
        rows.append({"messages": [{"role": "user", "content": f"{s} q{i}"},
                                  {"role": "assistant", "content": SLICE_ANSWERS[s]}], "slice": s})
    return rows


def write_eval_file(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def write_dataset(home: FlywheelHome, version: str, inputs: list[str]) -> None:
    rows = [make_example([{"role": "user", "content": t}, {"role": "assistant", "content": "ok"}], "human")
            for t in inputs]
    write_parquet(examples_table(rows), home.dataset(version) / "train.parquet")


def install_model(home: FlywheelHome, version: str, adapter: Path, dataset_version: str = "ds1") -> Path:
    target = home.model(version)
    shutil.copytree(adapter, target, dirs_exist_ok=True)
    write_json({"version": version, "dataset_version": dataset_version, "eval_set_hash": "x", "base_model": "tiny"},
               target / "manifest.json")
    write_json({"version": version, "path": str(target)}, home.model("candidate.json"))
    return target


# --- real tiny LoRA adapters (built once per module) -----------------------------------------
@pytest.fixture(scope="module")
def adapters(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """`better`: a LoRA trained for a few steps on the eval references; `worse`: a random non-zero LoRA."""
    import torch
    from peft import LoraConfig, get_peft_model

    from flywheel.models.base import load_base

    root = tmp_path_factory.mktemp("adapters")
    home = FlywheelHome(root / "home")
    model, tok = load_base("tiny", home)
    torch.manual_seed(0)
    cfg = LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", lora_dropout=0.0, init_lora_weights=False)
    worse = get_peft_model(model, cfg)
    worse.save_pretrained(root / "worse")

    model, tok = load_base("tiny", home)
    better = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", lora_dropout=0.0))
    rows = eval_rows(10)
    tok.padding_side = "right"
    texts = [tok.apply_chat_template(r["messages"], tokenize=False) for r in rows]
    prompt_lens = [len(tok(tok.apply_chat_template(r["messages"][:1], tokenize=False, add_generation_prompt=True),
                           add_special_tokens=False)["input_ids"]) for r in rows]
    enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    labels = enc["input_ids"].clone()
    for i, n in enumerate(prompt_lens):
        labels[i, :n] = -100
    labels[enc["attention_mask"] == 0] = -100
    opt = torch.optim.AdamW([p for p in better.parameters() if p.requires_grad], lr=1e-2)
    better.train()
    for _ in range(20):
        better(**enc, labels=labels).loss.backward()
        opt.step()
        opt.zero_grad()
    better.save_pretrained(root / "better")
    return {"better": root / "better", "worse": root / "worse"}


# --- eval set --------------------------------------------------------------------------------
def test_load_eval_set_keeps_slices_and_reports_bad_rows(tmp_path: Path) -> None:
    rows = eval_rows(10)
    rows.append({"messages": [{"role": "user", "content": "no answer"}], "slice": "clean"})
    rows.append(rows[0])
    path = write_eval_file(tmp_path / "eval.jsonl", rows)
    loaded = load_eval_set(path)
    assert loaded.table.num_rows == 10 and loaded.read == 12
    assert set(loaded.table.column("slice").to_pylist()) == set(SLICE_ANSWERS)
    assert set(loaded.table.column("source").to_pylist()) == {"human"}
    bad = {r["line"]: r for r in loaded.invalid}
    assert set(bad) == {11, 12}
    assert bad[12]["reason"] == "duplicate" and str(path) == bad[11]["source_file"]


def test_load_eval_set_reads_alpaca_with_slices(tmp_path: Path) -> None:
    rows = [{"instruction": f"say {i}", "input": "", "output": str(i), "slice": "clean"} for i in range(5)]
    path = tmp_path / "eval.json"
    path.write_text(json.dumps(rows), encoding="utf-8")
    loaded = load_eval_set(path)
    assert loaded.format == "alpaca" and loaded.table.num_rows == 5 and not loaded.invalid
    assert eval_items(loaded.table)[2].reference == "2"


def test_eval_set_hash_ignores_order_but_not_content_or_slices(tmp_path: Path) -> None:
    rows = eval_rows(20)
    h = eval_set_hash(load_eval_set(write_eval_file(tmp_path / "a.jsonl", rows)).table)
    assert eval_set_hash(load_eval_set(write_eval_file(tmp_path / "b.jsonl", rows[::-1])).table) == h
    changed = [dict(r) for r in rows]
    changed[3] = {**changed[3], "slice": "messy"}
    assert eval_set_hash(load_eval_set(write_eval_file(tmp_path / "c.jsonl", changed)).table) != h
    edited = json.loads(json.dumps(rows))
    edited[0]["messages"][1]["content"] = "maybe"
    assert eval_set_hash(load_eval_set(write_eval_file(tmp_path / "d.jsonl", edited)).table) != h


def test_find_eval_leaks_matches_normalized_inputs(tmp_path: Path) -> None:
    table = load_eval_set(write_eval_file(tmp_path / "e.jsonl", eval_rows(10))).table
    train = examples_table([make_example([{"role": "user", "content": "  CLEAN   q0 "},
                                          {"role": "assistant", "content": "other"}], "real"),
                            make_example([{"role": "user", "content": "clean q0 extra"},
                                          {"role": "assistant", "content": "x"}], "real")])
    leaks = find_eval_leaks(table, train)
    assert [x["input"] for x in leaks] == ["clean q0"]


# --- gate ------------------------------------------------------------------------------------
def _summary(overall: float, slices: dict[str, float], champion_is_base: bool = False, champ: float = 0.5) -> dict:
    def block(d: float) -> dict:
        return {"chrf": {"candidate": champ + d, "champion": champ, "diff": d, "ci_low": d - 0.01, "ci_high": d + 0.01}}

    return {"candidate": "v2", "champion": "base:tiny" if champion_is_base else "v1", "champion_is_base": champion_is_base,
            "base_model": "tiny", "dataset_version": "ds", "overall": block(overall),
            "slices": {s: {"n": 20, "metrics": block(d)} for s, d in slices.items()}}


def test_gate_passes_a_clear_improvement() -> None:
    d = gate(_summary(0.05, {"clean": 0.06, "messy": 0.0}), EvaluationConfig(min_improvement=0.01))
    assert d.passed and "champion v1" in d.reasons[0]


def test_gate_requires_min_improvement_and_a_real_gain() -> None:
    cfg = EvaluationConfig(min_improvement=0.02)
    d = gate(_summary(0.01, {"clean": 0.01}), cfg)
    assert not d.passed and "not an improvement of at least 0.02" in d.reasons[0]
    tie = gate(_summary(0.0, {"clean": 0.0}), EvaluationConfig(min_improvement=0.0))
    assert not tie.passed


def test_gate_blocks_a_slice_regression_beyond_tolerance() -> None:
    cfg = EvaluationConfig(slice_tolerance=0.02)
    d = gate(_summary(0.05, {"clean": 0.1, "decline": -0.05}), cfg)
    assert not d.passed and len(d.reasons) == 1 and "slice 'decline'" in d.reasons[0]
    within = gate(_summary(0.05, {"clean": 0.1, "decline": -0.015}), cfg)
    assert within.passed


def test_gate_first_model_must_beat_base() -> None:
    d = gate(_summary(-0.1, {"clean": -0.1}, champion_is_base=True), EvaluationConfig())
    assert not d.passed and "base model tiny" in d.reasons[0]
    assert gate(_summary(0.2, {"clean": 0.2}, champion_is_base=True), EvaluationConfig()).passed


def test_gate_refuses_leaks_and_unchecked_training_data() -> None:
    s = _summary(0.2, {"clean": 0.2})
    d = gate(s, EvaluationConfig(), leaks=[{"example_id": "abc", "input": "clean q0"}])
    assert not d.passed and "1 eval item(s) appear in the candidate's training data" in d.reasons[0]
    d = gate(s, EvaluationConfig(), leak_problem="train.parquet not found")
    assert not d.passed and "train.parquet not found" in d.reasons[0]
    missing = gate(s, EvaluationConfig(primary_metric="judge"))
    assert not missing.passed and "not computed" in missing.reasons[0]


# --- models ----------------------------------------------------------------------------------
def test_generation_batched_equals_one_by_one(adapters: dict[str, Path], tmp_path: Path) -> None:
    home = FlywheelHome(tmp_path / "home")
    install_model(home, "vb", adapters["better"])
    model, tok = load_adapter_model(candidate_pointer(home), home)
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
    with pytest.raises(AdapterLoadError, match="adapter_model.safetensors"):
        load_adapter_model(candidate_pointer(home), home)
    (target / "adapter_config.json").write_text("{not json")
    with pytest.raises(AdapterLoadError, match="adapter_config.json"):
        load_adapter_model(candidate_pointer(home), home)


def test_adapter_differing_from_manifest_checksum_is_refused(adapters: dict[str, Path], tmp_path: Path) -> None:
    import hashlib

    home = FlywheelHome(tmp_path / "home")
    target = install_model(home, "vsum", adapters["better"])
    weights = target / "adapter_model.safetensors"
    manifest = json.loads((target / "manifest.json").read_text())
    manifest["files"] = {"adapter_model.safetensors": hashlib.sha256(weights.read_bytes()).hexdigest()}
    write_json(manifest, target / "manifest.json")
    check_adapter_files(target, manifest)  # intact
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF  # a flipped byte in the tensor data still parses as safetensors
    weights.write_bytes(bytes(data))
    with pytest.raises(AdapterLoadError, match=r"adapter_model.safetensors: corrupted \(sha256"):
        load_adapter_model(candidate_pointer(home), home)


def test_hidden_temp_folder_is_never_a_model_version(adapters: dict[str, Path], tmp_path: Path) -> None:
    home = FlywheelHome(tmp_path / "home")
    tmp = home.model(".v9.abc.tmp")
    shutil.copytree(adapters["better"], tmp)
    write_json({"version": "v9", "path": str(tmp)}, home.model("candidate.json"))
    with pytest.raises(AdapterLoadError, match="temporary folder"):
        candidate_pointer(home)
    with pytest.raises(AdapterLoadError, match="manifest.json: missing"):
        model_version(home, "v9")


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


# --- LLM judge over a real local HTTP endpoint -----------------------------------------------
@pytest.fixture
def judge_server() -> Iterator[tuple[str, list[dict]]]:
    """A tiny OpenAI-compatible server: grades 5 when the answer equals the reference, else 1."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    seen: list[dict] = []

    async def completions(request: Request) -> JSONResponse:
        body = await request.json()
        seen.append({"auth": request.headers.get("authorization"), "body": body})
        user = body["messages"][-1]["content"]
        ref = user.split("Reference answer:\n")[1].split("\n\nAnswer to grade:")[0]
        answer = user.split("Answer to grade:\n")[1]
        if answer == "garbled":
            return JSONResponse({"choices": [{"message": {"role": "assistant", "content": "no idea"}}]})
        grade = 5 if answer == ref else 1
        content = json.dumps({"score": grade, "reason": "compared with the reference"})
        return JSONResponse({"choices": [{"message": {"role": "assistant", "content": content}}]})

    app = Starlette(routes=[Route("/v1/chat/completions", completions, methods=["POST"])])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 10
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/v1", seen
    server.should_exit = True
    thread.join(timeout=5)


def test_judge_scores_through_openai_compatible_endpoint(judge_server: tuple[str, list[dict]]) -> None:
    url, seen = judge_server
    items = [EvalItem(str(i), "clean", [{"role": "user", "content": f"q{i}"}], "yes") for i in range(3)]
    with LLMJudge(url, "judge-model", "Answers must be yes.", api_key="sekret") as judge:
        scores = score_answers(items, ["yes", "no", "garbled"], ["judge", "exact_match"], judge=judge)
    assert scores["exact_match"] == [1.0, 0.0, 0.0]
    assert scores["judge"][:2] == [1.0, 0.0]
    assert scores["judge"][2] != scores["judge"][2]  # NaN: the reply held no grade
    assert seen[0]["auth"] == "Bearer sekret" and seen[0]["body"]["model"] == "judge-model"
    assert "Answers must be yes." in seen[0]["body"]["messages"][0]["content"]


def test_make_judge_from_project_config(judge_server: tuple[str, list[dict]], project_dir: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from flywheel.config import load_project

    url, seen = judge_server
    (project_dir / "flywheel.yaml").write_text(yaml.safe_dump(
        {"evaluation": {"metrics": ["judge"], "primary_metric": "judge",
                        "judge": {"base_url": url, "model": "local-judge", "api_key_env": "MY_JUDGE_KEY"}}}))
    monkeypatch.setenv("MY_JUDGE_KEY", "k123")
    judge = make_judge(load_project(project_dir))
    assert judge is not None
    with judge:
        assert judge.score("q", "yes", "yes") == 1.0
    assert seen[-1]["auth"] == "Bearer k123"
    assert "A perfect answer is correct" in seen[-1]["body"]["messages"][0]["content"]  # the project's rubric


def test_judge_endpoint_failure_is_a_clear_error() -> None:
    from flywheel.evaluation.metrics import JudgeError

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    judge = LLMJudge(f"http://127.0.0.1:{port}/v1", "m", "rubric", retries=0, timeout_s=2)
    with pytest.raises(JudgeError, match=f"127.0.0.1:{port}/v1/chat/completions"):
        judge.score("q", "a", "b")


# --- Dagster end to end ----------------------------------------------------------------------
EVAL_ASSETS = [fixed_eval_set, candidate_evaluation, champion_model, eval_set_min_items, eval_set_rows_valid,
               eval_set_has_slices, eval_set_frozen, no_regression]


def _project(tmp_path: Path, **evaluation: object) -> Path:
    project = tmp_path / "project"
    project.mkdir(exist_ok=True)
    cfg = {"name": "e2e", "evaluation": {"eval_set": "eval.jsonl", "max_new_tokens": MAX_NEW_TOKENS, "batch_size": 50,
                                         "bootstrap_samples": 200, **evaluation}}
    (project / "flywheel.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return project


def _run(project: Path, home: FlywheelHome, selection: list | None = None) -> dg.ExecuteInProcessResult:
    resource = FlywheelResource(project_dir=str(project), home_dir=str(home.root))
    return dg.materialize(selection or EVAL_ASSETS, resources={"flywheel": resource}, raise_on_error=False)


def _check(result: dg.ExecuteInProcessResult, name: str) -> dg.AssetCheckEvaluation:
    return next(e for e in result.get_asset_check_evaluations() if e.check_name == name)


def test_eval_set_is_frozen_until_a_new_version(tmp_path: Path) -> None:
    home = FlywheelHome(tmp_path / "home")
    project = _project(tmp_path)
    write_eval_file(project / "eval.jsonl", eval_rows(100))
    only_set = [fixed_eval_set, eval_set_min_items, eval_set_max_items, eval_set_rows_valid, eval_set_has_slices,
                eval_set_frozen]
    r = _run(project, home, only_set)
    assert all(e.passed for e in r.get_asset_check_evaluations())
    info = json.loads((home.warehouse("fixed_eval_set") / "current.json").read_text())
    assert info["items"] == 100 and info["slices"] == {s: 20 for s in sorted(SLICE_ANSWERS)}
    assert pq.read_table(home.warehouse("fixed_eval_set", "current")).num_rows == 100

    edited = eval_rows(100)
    edited[0]["messages"][1]["content"] = "changed"
    write_eval_file(project / "eval.jsonl", edited)
    r = _run(project, home, only_set)
    frozen = _check(r, "eval_set_frozen")
    assert not frozen.passed and "raise evaluation.eval_set_version" in frozen.description

    _project(tmp_path, eval_set_version=2)
    r = _run(project, home, only_set)
    assert _check(r, "eval_set_frozen").passed

    write_eval_file(project / "eval.jsonl", [{k: v for k, v in row.items() if k != "slice"} for row in eval_rows(50)])
    _project(tmp_path, eval_set_version=3)
    r = _run(project, home, only_set)
    assert not _check(r, "eval_set_min_items").passed
    assert not _check(r, "eval_set_frozen").passed
    slices = _check(r, "eval_set_has_slices")
    assert not slices.passed and slices.severity == dg.AssetCheckSeverity.WARN
    assert _check(r, "eval_set_max_items").passed

    write_eval_file(project / "eval.jsonl", eval_rows(205))
    _project(tmp_path, eval_set_version=4)
    r = _run(project, home, only_set)
    too_big = _check(r, "eval_set_max_items")
    assert not too_big.passed and too_big.severity == dg.AssetCheckSeverity.WARN and "205 items" in too_big.description
    assert _check(r, "eval_set_frozen").passed


def test_better_candidate_promoted_worse_blocked(adapters: dict[str, Path], tmp_path: Path) -> None:
    home = FlywheelHome(tmp_path / "home")
    project = _project(tmp_path)
    write_eval_file(project / "eval.jsonl", eval_rows(100))
    write_dataset(home, "ds1", ["unrelated question", "another one"])
    db = home.database_url()

    # cycle 1: the trained adapter beats the base model -> promoted
    install_model(home, "v-better", adapters["better"])
    r = _run(project, home)
    assert _check(r, "no_regression").passed, _check(r, "no_regression").description
    assert r.get_asset_materialization_events()[-1].asset_key == dg.AssetKey("champion_model")
    champ_meta = r.get_asset_materialization_events()[-1].materialization.metadata
    assert champ_meta["serving_warnings"].value == "none"  # a real trained adapter is servable by vLLM as is
    assert "| 1 | v-better | base:tiny |" in champ_meta["score_history_table"].value
    champ = registry.current_champion(db)
    assert champ.version == "v-better" and champ.promoted_by.startswith("dagster run")
    serving = json.loads(home.model("champion.json").read_text())
    assert serving["version"] == "v-better"
    assert "--enable-lora --lora-modules e2e=" in (home.reports() / "serving.md").read_text()
    answers = pq.read_table(home.reports() / "evaluations" / "v-better" / "answers.parquet")
    assert answers.num_rows == 100 and {"candidate_chrf", "champion_chrf", "reference"} <= set(answers.column_names)

    # cycle 2: a random LoRA is worse -> blocked, recorded as rejected, champion untouched
    install_model(home, "v-worse", adapters["worse"])
    r = _run(project, home)
    check = _check(r, "no_regression")
    assert not check.passed and "chrf" in check.description
    materialized = {e.asset_key for e in r.get_asset_materialization_events()}
    assert dg.AssetKey("champion_model") not in materialized
    assert registry.current_champion(db).version == "v-better"
    rejected = registry.get_model(db, "v-worse")
    assert rejected.status == registry.REJECTED and rejected.gate_reasons
    summary = json.loads((home.reports() / "evaluations" / "v-worse" / "summary.json").read_text())
    assert summary["champion"] == "v-better" and summary["overall"]["chrf"]["diff"] < 0
    meta = next(e for e in r.get_asset_materialization_events()
                if e.asset_key == dg.AssetKey("candidate_evaluation")).materialization.metadata
    assert "| slice | input | reference | candidate | champion |" in meta["worst_regressions"].value
    assert meta["gate_passed"].value is False and "**overall**" in meta["scores"].value
    assert "| 2 | v-worse | v-better |" in meta["score_history_table"].value

    # cycle 3: the same worse model trained on data holding an eval item is refused for the leak too;
    # the champion's answers come from the cache
    write_dataset(home, "ds-leak", ["unrelated question", "Clean Q0"])
    install_model(home, "v-leak", adapters["worse"], dataset_version="ds-leak")
    r = _run(project, home)
    check = _check(r, "no_regression")
    assert not check.passed and "appear in the candidate's training data" in check.description
    summary = json.loads((home.reports() / "evaluations" / "v-leak" / "summary.json").read_text())
    assert summary["champion_answers_cached"] is True

    history = registry.score_history(db, 1)
    assert [(h["candidate"], h["outcome"]) for h in history] == [
        ("v-better", "promoted"), ("v-worse", "rejected"), ("v-leak", "rejected")]
    assert (home.reports() / "evaluations" / "v-leak" / "score_history.png").exists()


def test_inference_device_uses_a_gpu_in_bf16_when_there_is_one(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from flywheel.evaluation.cycle import inference_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert inference_device() == ("cuda", "bfloat16")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert inference_device() == ("cuda", "float16")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert inference_device() == ("cpu", "float32")
