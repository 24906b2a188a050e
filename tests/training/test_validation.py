"""The validation split (held out from the training rows only, by example id, the same for every seed
replicate), validation loss per epoch beside training loss, and early stopping on it."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pyarrow.parquet as pq
import pytest
from safetensors.torch import load_file
from transformers import TrainerCallback

from flywheel.core.storage import FlywheelHome
from flywheel.models.artifact import verify_adapter
from flywheel.training.curves import epoch_table
from flywheel.training.data import EvalLeakError, split_validation
from flywheel.training.trainer import train
from tests.training.examples import qa_examples, request, write_dataset, write_eval_set

EPOCHS = {"max_steps": None, "epochs": 2}


# --- the split ---------------------------------------------------------------------------------
def test_split_is_seeded_by_id_disjoint_and_never_holds_out_unweighted_rows() -> None:
    ids = [f"ex{i:03d}" for i in range(200)]
    weights = [0.0 if i % 10 == 0 else 1.0 for i in range(200)]
    split = split_validation(ids, weights, 0.1, 8, seed=42)
    assert len(split.validation_ids) == 18  # 10% of the 180 trainable examples
    assert set(split.fit_rows).isdisjoint(split.validation_rows)
    assert sorted(split.fit_rows + split.validation_rows) == list(range(200))
    assert all(weights[i] > 0 for i in split.validation_rows)
    # the same ids whatever the row order (ranked by a seeded hash of the id, not by position)
    order = list(range(200))
    random.Random(1).shuffle(order)
    shuffled = split_validation([ids[i] for i in order], [weights[i] for i in order], 0.1, 8, seed=42)
    assert shuffled.validation_ids == split.validation_ids
    assert split_validation(ids, weights, 0.1, 8, seed=7).validation_ids != split.validation_ids


def test_every_row_of_a_held_out_id_leaves_the_fitted_rows() -> None:
    ids = [f"ex{i % 50:02d}" for i in range(100)]  # each example twice
    split = split_validation(ids, [1.0] * 100, 0.2, 1, seed=0)
    held = set(split.validation_ids)
    assert len(held) == 10 and len(split.validation_rows) == 20
    assert not held & {ids[i] for i in split.fit_rows}


def test_no_split_when_disabled_or_too_small() -> None:
    ids = [str(i) for i in range(40)]
    off = split_validation(ids, [1.0] * 40, 0.0, 8, seed=0)
    small = split_validation(ids, [1.0] * 40, 0.1, 8, seed=0)
    for split in (off, small):
        assert split.validation_rows == [] and split.fit_rows == list(range(40)) and split.skipped
    assert "validation_min_examples 8" in small.skipped


def test_epoch_table_means_training_loss_between_evaluations() -> None:
    points = [{"step": s, "epoch": s / 4, "loss": float(10 - s)} for s in range(1, 9)]
    val = [{"step": 4, "epoch": 1.0, "val_loss": 5.5}, {"step": 8, "epoch": 2.0, "val_loss": 2.25}]
    assert epoch_table(points, val) == [
        {"epoch": 1.0, "step": 4, "train_loss": 7.5, "val_loss": 5.5},
        {"epoch": 2.0, "step": 8, "train_loss": 3.5, "val_loss": 2.25},
    ]


# --- training -------------------------------------------------------------------------------------
def test_a_leaked_eval_item_is_refused_before_any_split(home: FlywheelHome) -> None:
    rows = qa_examples(100)
    write_dataset(home, rows)
    leaked = json.loads(json.dumps(rows[40]))
    leaked["messages"][1]["content"] = "  " + leaked["messages"][1]["content"].upper()
    eval_path = write_eval_set(home, [*qa_examples(3, seed=5, offset=500), leaked])
    with pytest.raises(EvalLeakError, match="row 40"):
        train(request(home, eval_path, **EPOCHS))


def test_validation_split_comes_from_training_rows_and_loss_is_recorded_per_epoch(home: FlywheelHome) -> None:
    write_dataset(home, qa_examples(100))
    eval_path = write_eval_set(home, qa_examples(5, seed=9, offset=1000))
    req = request(home, eval_path, **EPOCHS).model_copy(update={"seed_replicates": 1})
    result = train(req)
    m = result.manifest
    train_ids = pq.read_table(home.dataset("ds0001") / "train.parquet").column("example_id").to_pylist()
    eval_ids = set(pq.read_table(eval_path).column("example_id").to_pylist())
    expected = split_validation(train_ids, [1.0] * 100, 0.1, 8, seed=req.training.seed)
    assert m["validation"]["examples"] == 10 and m["validation"]["fit_rows"] == 90
    assert set(expected.validation_ids) <= set(train_ids) and not set(expected.validation_ids) & eval_ids
    assert m["data"]["examples"] == 90  # only the fitted rows are trained on
    # loss per epoch: training and validation side by side, and in the plot
    assert [(p["epoch"], p["step"]) for p in m["val_curve"]] == [(1.0, m["metrics"]["steps"] // 2),
                                                                (2.0, m["metrics"]["steps"])]
    assert [r["epoch"] for r in m["epochs"]] == [1.0, 2.0]
    assert all(r["train_loss"] > 0 and r["val_loss"] > 0 for r in m["epochs"])
    assert m["metrics"]["val_loss"] == m["val_curve"][-1]["val_loss"]
    assert (Path(result.path) / "loss_curve.png").is_file()
    # the seed replicate holds out the very same examples
    (replicate,) = result.replicates
    assert verify_adapter(home.model(replicate))["validation"] == m["validation"]


class Snapshot(TrainerCallback):
    """The LoRA weights at each evaluation, as save_pretrained would write them."""

    def __init__(self) -> None:
        self.states: dict[int, dict] = {}

    def on_evaluate(self, args, state, control, model=None, **kwargs):  # noqa: ANN001, ANN201
        from peft import get_peft_model_state_dict

        self.states[state.global_step] = {k: v.detach().clone() for k, v in get_peft_model_state_dict(model).items()}


def test_early_stopping_keeps_the_best_epoch(home: FlywheelHome) -> None:
    write_dataset(home, qa_examples(100))
    # a learning rate that overshoots: the validation loss rises after the first epoch
    req = request(home, max_steps=None, epochs=6, learning_rate=0.05, early_stopping_patience=1)
    snapshot = Snapshot()
    result = train(req, callbacks=[snapshot])
    m = result.manifest
    losses = [p["val_loss"] for p in m["val_curve"]]
    stop = m["early_stopping"]
    assert stop["stopped_early"] and stop["restored_best"] and len(losses) == 2 and losses[1] > losses[0]
    assert m["metrics"]["steps"] < 6 * m["val_curve"][0]["step"]  # fewer than the 6 epochs asked for
    assert stop["best_step"] == m["val_curve"][0]["step"] and m["metrics"]["val_loss"] == losses[0]
    saved = load_file(Path(result.path) / "adapter_model.safetensors")
    best = snapshot.states[stop["best_step"]]
    assert saved.keys() == best.keys()
    assert all((saved[k] == best[k]).all() for k in saved)
    assert not all((saved[k] == snapshot.states[m["metrics"]["steps"]][k]).all() for k in saved)
