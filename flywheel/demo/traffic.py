"""The demo's production: the current champion answers the simulated users, the capture SDK logs what
it really said, and the users react to that answer (copy when right; resubmit, correct or thumbs-down
when wrong). Generation goes through the evaluation's loading path (`generation_model`), batched.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from flywheel.capture.sdk import CaptureWriter
from flywheel.core.storage import FlywheelHome
from flywheel.demo.scenario import Request, ScenarioSize, react, simulate_requests, truth_of
from flywheel.evaluation.generation import generate_answers, generation_model
from flywheel.models.artifact import ModelArtifact

MAX_NEW_TOKENS = 80
BATCH_SIZE = 32
NEGATIVE_KINDS = ("correction", "thumbs_down")


@dataclass
class ServedWeek:
    """What one week of served traffic produced: the ground truth for the reviewer and live figures."""

    truth: dict[str, str] = field(default_factory=dict)
    requests: int = 0
    right: int = 0
    negatives: int = 0  # interactions followed by a resubmission, a correction or a thumbs down
    by_day: dict[str, int] = field(default_factory=dict)

    @property
    def negative_rate(self) -> float:
        return self.negatives / self.requests if self.requests else 0.0

    @property
    def accuracy(self) -> float:
        return self.right / self.requests if self.requests else 0.0


def answer(home: FlywheelHome, model: ModelArtifact | str, requests: Sequence[Request]) -> list[str]:
    """The model's greedy answers to the requests (single-turn, as production sends them)."""
    if not requests:
        return []
    loaded, tokenizer = generation_model(home, model)
    try:
        prompts = [[{"role": "user", "content": r.text}] for r in requests]
        return generate_answers(loaded, tokenizer, prompts, MAX_NEW_TOKENS, BATCH_SIZE)
    finally:
        del loaded


def serve_week(home: FlywheelHome, days: Sequence[str], size: ScenarioSize, model: ModelArtifact | str,
               model_version: str, taken: set[str], drift_from: int | None = None) -> ServedWeek:
    """Simulate the days' requests (from day index `drift_from` on, the drifted users), let `model` answer
    them, simulate the users' reactions (a reworded resubmission is answered too) and log everything into
    the landing zone with the capture SDK."""
    requests = [r for i, day in enumerate(days)
                for r in simulate_requests(day, size, taken=taken, drift=drift_from is not None and i >= drift_from)]
    outputs = answer(home, model, requests)
    reactions = [react(r, o) for r, o in zip(requests, outputs, strict=True)]
    resubmitted = [x.resubmission for x in reactions if x.resubmission is not None]
    resubmitted_outputs = answer(home, model, resubmitted)
    week = ServedWeek(truth=truth_of(requests + resubmitted))
    with CaptureWriter(home) as writer:
        for req, out, reaction in zip(requests, outputs, reactions, strict=True):
            _log(writer, req, out, model_version)
            for fb in reaction.feedback:
                writer.log_feedback(fb["interaction_id"], fb["kind"], text=fb.get("text"), ts=fb["ts"])
            week.requests += 1
            week.right += reaction.right
            week.negatives += (not reaction.right) and (reaction.resubmission is not None
                                                        or any(f["kind"] in NEGATIVE_KINDS for f in reaction.feedback))
            day = req.ts.date().isoformat()
            week.by_day[day] = week.by_day.get(day, 0) + 1
        for req, out in zip(resubmitted, resubmitted_outputs, strict=True):
            _log(writer, req, out, model_version)
            for fb in react(req, out).feedback:
                if fb["kind"] == "copy":  # the reworded request's answer was taken; no second round of complaints
                    writer.log_feedback(fb["interaction_id"], fb["kind"], ts=fb["ts"])
        writer.flush()
    return week


def _log(writer: CaptureWriter, req: Request, output: str, model_version: str) -> None:
    writer.log_interaction(
        [{"role": "user", "content": req.text}], output, session_id=req.session_id, user_id=req.user_id,
        model_version=model_version, latency_ms=req.latency_ms, metadata={"app": "nimbus-web", "simulated": True},
        interaction_id=req.interaction_id, ts=req.ts,
    )
