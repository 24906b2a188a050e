"""Do generated (synthetic) and distilled examples help on the demo scenario? Runs `flywheel demo` in a temp home
(as benchmarks/dpo.py does) for its captured, reviewed traffic, then trains three variants through the library:

(a) baseline: seed + reviewed real traffic (the demo's synthetic files left out);
(b) + synthetic: generated THROUGH `flywheel.generation.synthetic.generate_synthetic` (the real client over HTTP)
    from two local OpenAI-compatible generator servers of different families started here on 127.0.0.1;
(c) + distilled: a local teacher server answers the captured production inputs through
    `flywheel.generation.distillation.distill_week`;
(d) + both.

The generator and teacher servers are SIMULATED: they answer from the scenario's ground truth (its intents and
canonical answers) with their own input style and noise; the teacher finds an input's intent by fuzzy matching
against the scenario's phrasings. The admission samples are decided by the demo's simulated reviewer
(`review_admission_samples`) with the ground truth the servers recorded for what they wrote.

Each variant: sources -> admission (reviewed) -> `build_training_dataset` -> `train` (the demo's recipe and seed) ->
`evaluate_candidate` on the frozen eval set against the baseline model (so the interval and the verdict are the
gate's: 95% paired bootstrap). Figures only; nothing is asserted.

Run: `.venv/bin/python benchmarks/generated_data.py [--full] [--seed 1] [--home DIR] [--json OUT]` (small scenario by
default).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.dpo import run_demo  # noqa: E402

_ASKED = re.compile(r"Write (\d+) new examples")
GENERATORS = {  # model -> (family, input templates, typo rate, share of answers given for another intent)
    "sim-qwen-casual": ("qwen", ["hey how do i {c}", "{c} pls", "quick q: {c}?", "trying to {c}, how"], 0.10, 0.05),
    "sim-phi-formal": ("phi", ["Please tell me how to {c}.", "What are the steps to {c}?", "I need to {c}."], 0.0, 0.02),
}
TEACHER = "sim-teacher-large"


def _reply(content: str) -> dict[str, Any]:
    return {"id": "x", "object": "chat.completion", "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 100, "completion_tokens": len(content) // 4 + 1,
                      "total_tokens": 100 + len(content) // 4 + 1}}


def production_truth(size: Any, taken: set[str]) -> dict[str, str]:
    """The intent of every request the demo's simulated users sent (regenerated from the scenario's seeds the way
    `serve_week` draws them; reworded resubmissions depend on the served model's answers and are not included)."""
    from flywheel.demo.cycles import cycles_for
    from flywheel.demo.scenario import simulate_requests

    out: dict[str, str] = {}
    for cycle in cycles_for(size):
        if cycle.traffic_week is None:
            continue
        for i in range(size.traffic_days):
            day = (cycle.traffic_week + dt.timedelta(days=i)).isoformat()
            drift = cycle.drift_from is not None and i >= cycle.drift_from
            for r in simulate_requests(day, size, taken=taken, drift=drift):
                out[r.text.lower().strip()] = r.intent
    return out


def simulated_app(truth: dict[str, str], production: dict[str, str], written: list[str]) -> Any:
    """The simulated generators and teacher (Starlette). Generators write inputs in their own style (the scenario's
    phrasings, their templates, typos) with the intent's canonical answer; the teacher answers a production input
    from its ground-truth intent (`production`) and, where that is unknown (a reworded resubmission, a redacted
    input), from the best fuzzy match against the scenario's phrasings. What they wrote goes into `truth`
    (the simulated reviewer's ground truth; `written`: the generators' inputs in order). A generator answers a
    small share of its inputs with another intent's answer (its noise; the admission sample may catch it)."""
    from rapidfuzz import fuzz, process
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from flywheel.demo.scenario import ABBREVIATIONS, ANSWERS, CORES, INTENTS, messify

    rngs = {m: random.Random(i) for i, m in enumerate(GENERATORS)}
    phrases = [(c, i) for i in INTENTS for c in CORES[i]] + [(a, i) for i in INTENTS for a in ABBREVIATIONS.get(i, [])]

    def examples(model: str, n: int) -> list[dict[str, str]]:
        _family, templates, typos, wrong = GENERATORS[model]
        rng, out = rngs[model], []
        while len(out) < n:
            intent = rng.choice(INTENTS)
            text = rng.choice(templates).format(c=rng.choice(CORES[intent]))
            text = messify(text, rng, typos) if typos else text
            if text.lower().strip() in truth:
                continue
            truth[text.lower().strip()] = intent
            written.append(text.lower().strip())
            said = rng.choice([i for i in INTENTS if i != intent]) if rng.random() < wrong else intent
            out.append({"input": text, "output": ANSWERS[said]})
        return out

    async def chat(request: Request) -> Any:
        body = await request.json()
        model = body.get("model", "")
        user = next((m["content"] for m in reversed(body["messages"]) if m["role"] == "user"), "")
        if model in GENERATORS:
            asked = _ASKED.search(user)
            return JSONResponse(_reply(json.dumps({"examples": examples(model, int(asked.group(1)) if asked else 1)})))
        key = user.lower().strip()
        intent = production.get(key)
        if intent is None:
            best = process.extractOne(key, [p for p, _ in phrases], scorer=fuzz.partial_ratio)
            intent = phrases[best[2]][1] if best and best[1] >= 60 else "out_of_scope"
        truth.setdefault(key, intent)
        return JSONResponse(_reply(ANSWERS[intent]))

    return Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])


def generate(project: Any, home: Any, url: str, weeks: list[str]) -> dict[str, Any]:
    """Synthetic (the last week) and distilled (every week) runs through flywheel.generation; returns their tallies."""
    from flywheel.config import EndpointConfig, GeneratorConfig
    from flywheel.generation.distillation import distill_week
    from flywheel.generation.synthetic import generate_synthetic

    ep = {"base_url": url, "backoff_s": 0.01, "max_retries": 1, "timeout_s": 30}
    gen_cfg = project.generation.model_copy(update={
        "generators": [GeneratorConfig.model_validate({**ep, "model": m, "family": fam})
                       for m, (fam, *_rest) in GENERATORS.items()],
        "teacher": EndpointConfig.model_validate({**ep, "model": TEACHER, "family": "sim-large"}),
    })
    project = project.model_copy(update={"generation": gen_cfg})
    syn = generate_synthetic(project, home, weeks[-1])
    dist = [distill_week(project, home, w) for w in weeks]
    return {"synthetic": syn.summary(), "distilled": [d.summary() for d in dist]}


def recognise_styled_inputs(home: Any, truth: dict[str, str], written: list[str]) -> int:
    """flywheel restyles a generated input like production's (typos, abbreviations: `generation.messy`), so the
    row's input is not the one the generator wrote: the simulated reviewer recognises it as the closest input the
    generators wrote (rapidfuzz) and takes that one's intent. Returns how many inputs it had to recognise."""
    from rapidfuzz import fuzz, process

    n = 0
    for path in sorted(home.generated("synthetic").glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            key = next(m["content"] for m in row["messages"] if m["role"] == "user").lower().strip()
            if key not in truth:
                best = process.extractOne(key, written, scorer=fuzz.ratio)
                truth[key] = truth[best[0]]
                n += 1
    return n


def variant(name: str, project: Any, home: Any, db_url: str, truth: dict[str, str], stash: Path, kinds: list[str],
            baseline: Any, eval_args: tuple, say=print) -> dict[str, Any]:
    from flywheel.curation.admission import materialize_source
    from flywheel.curation.build import build_training_dataset
    from flywheel.curation.sources import SOURCE_TABLES
    from flywheel.demo.cycles import review_admission_samples
    from flywheel.evaluation.cycle import evaluate_candidate
    from flywheel.evaluation.eval_set import EVAL_SET
    from flywheel.models.artifact import read_artifact
    from flywheel.training.request import TrainingRequest
    from flywheel.training.trainer import train

    start = time.perf_counter()
    for kind in ("synthetic", "distilled"):
        shutil.rmtree(home.generated(kind), ignore_errors=True)
        if kind in kinds:
            shutil.copytree(stash / kind, home.generated(kind))
    for table in SOURCE_TABLES:
        materialize_source(project, home, db_url, table)
    review_admission_samples(db_url, truth)
    build = build_training_dataset(project, home, db_url)
    by_source = build.version.manifest["counts"].get("by_source", {})
    admission = [{"file": Path(a.file).name, "status": a.status, "kept": a.kept, "held_out": a.held_out}
                 for a in build.admission]
    say(f"{name}: dataset {build.version.version} {by_source}; admission {admission}")
    table, info = eval_args
    result = train(TrainingRequest(home=str(home.root), training=project.training, dataset_version=build.version.version,
                                   eval_set_path=str(home.warehouse(*EVAL_SET)),
                                   leak_rule=project.curation), log=None)
    artifact = read_artifact(home, result.version)
    outcome = evaluate_candidate(project, home, artifact, table, info, baseline)
    metric = project.evaluation.primary_metric
    ov = outcome.summary["overall"][metric]
    say(f"{name}: chrF {ov['candidate']:.3f} ({time.perf_counter() - start:.0f} s)")
    return {"variant": name, "by_source": by_source, "admission": admission, "model": result.version, "artifact": artifact,
            "score": ov["candidate"], "diff": ov["diff"], "low": ov["ci_low"], "high": ov["ci_high"],
            "verdict": outcome.decision.outcome, "reasons": outcome.decision.reasons[:2],
            "seconds": round(time.perf_counter() - start)}


def compare(home_dir: Path, small: bool, say=print) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    from flywheel.config import TrainingConfig, load_project
    from flywheel.core.storage import FlywheelHome
    from flywheel.demo.cycles import FIRST_TRAFFIC_WEEK
    from flywheel.demo.project import DEMO_PROJECT_DIR, project_config
    from flywheel.demo.scenario import FULL, SMALL, build_files
    from flywheel.evaluation.eval_set import eval_set_table, read_eval_set_info
    from tests.live_server import live_server

    home = FlywheelHome(home_dir)
    db_url = home.database_url()
    project = load_project(home.path(DEMO_PROJECT_DIR))
    size = SMALL if small else FULL
    files = build_files(size)
    truth = dict(files.truth)
    production = production_truth(size, files.taken_inputs)
    seed = json.loads((home_dir / "reports" / "demo.json").read_text())["training_seed"]
    recipe = TrainingConfig.model_validate(project_config(size, training_seed=seed)["training"])  # cycle 3 changed it
    project = project.model_copy(update={
        "training": recipe,
        "sources": project.sources.model_copy(update={"synthetic": [], "distilled": []}),
        "evaluation": project.evaluation.model_copy(update={"seed_replicates": 0}),
    })
    eval_args = (eval_set_table(home), read_eval_set_info(home))
    weeks = [FIRST_TRAFFIC_WEEK.isoformat(), (FIRST_TRAFFIC_WEEK + dt.timedelta(days=7)).isoformat()]
    stash = home_dir.parent / "generated-stash"
    written: list[str] = []
    with live_server(simulated_app(truth, production, written)) as url:
        tallies = generate(project, home, url + "/v1", weeks)
    tallies["restyled_inputs_recognised"] = recognise_styled_inputs(home, truth, written)
    for kind in ("synthetic", "distilled"):
        shutil.rmtree(stash / kind, ignore_errors=True)
        shutil.copytree(home.generated(kind), stash / kind)
    say(f"generation: {json.dumps(tallies, default=str)[:1500]}")
    rows = [variant("(a) baseline", project, home, db_url, truth, stash, [], None, eval_args, say)]
    base = rows[0]["artifact"]
    rows[0].update(diff=0.0, low=0.0, high=0.0, verdict="-")
    rows.append(variant("(b) + synthetic", project, home, db_url, truth, stash, ["synthetic"], base, eval_args, say))
    rows.append(variant("(c) + distilled", project, home, db_url, truth, stash, ["distilled"], base, eval_args, say))
    rows.append(variant("(d) + both", project, home, db_url, truth, stash, ["synthetic", "distilled"], base, eval_args,
                        say))
    return rows, tallies


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--full", action="store_true", help="the full scenario (default: the small one)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--home", type=Path, default=None, help="the demo's home (reused when the demo finished there)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="flywheel-generated-bench-") as tmp:
        home = args.home or Path(tmp) / "home"
        if not (home / "reports" / "demo.json").is_file():
            run_demo(home, Path(tmp) / "dagster", not args.full, args.seed)
            print(f"demo ({'full' if args.full else 'small'}, seed {args.seed}): {time.perf_counter() - start:.0f} s")
        rows, tallies = compare(home, not args.full, say=lambda m: print(m, flush=True))
    print("\nchrF on the fixed eval set; difference vs the baseline model with the gate's 95% paired-bootstrap interval")
    print("variant | rows seed / real (reviewed traffic) / synthetic / distilled | chrF | diff vs baseline [95%] | verdict")
    print("---|---|---|---|---")
    for r in rows:
        s = r["by_source"]
        real = s.get("human_fixed", 0) + s.get("real", 0)
        print(f"{r['variant']} | {s.get('human', 0)} / {real} / {s.get('synthetic', 0)} / {s.get('distilled', 0)} | "
              f"{r['score']:.3f} | "
              f"{r['diff']:+.3f} [{r['low']:+.3f}, {r['high']:+.3f}] | {r['verdict']}")
    for r in rows[1:]:
        print(f"{r['variant']}: {r['verdict']}: {(r['reasons'] or [''])[0][:300]}")
    print(f"total {time.perf_counter() - start:.0f} s")
    if args.json:
        args.json.write_text(json.dumps({"rows": [{k: v for k, v in r.items() if k != "artifact"} for r in rows],
                                         "tallies": tallies}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
