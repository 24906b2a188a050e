"""Does the DPO stage help on the demo scenario? Runs `flywheel demo` (SFT only, as shipped) in a temp home,
then for every cycle whose dataset version has preference pairs runs the DPO stage on that cycle's SFT
candidate through the library (`flywheel.training.dpo.preference_stage`) and evaluates it like the gate
does (`flywheel.evaluation.cycle.evaluate_candidate`, same eval set, same champion).

Prints per cycle: the pairs, the SFT candidate's and the DPO'd candidate's chrF against the cycle's champion
(95% paired-bootstrap intervals), the DPO-minus-SFT difference with its interval, and the verdict each
would get. Figures only; nothing is asserted.

Run: `.venv/bin/python benchmarks/dpo.py [--small] [--seed 1] [--beta 0.1] [--epochs 1] [--lr 5e-5]
[--home DIR (the demo's home: reused when it holds a finished demo)] [--json OUT]`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def run_demo(home: Path, dagster_home: Path, small: bool, seed: int) -> dict:
    dagster_home.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "FLYWHEEL_HOME": str(home), "DAGSTER_HOME": str(dagster_home), "OMP_WAIT_POLICY": "PASSIVE"}
    env.pop("FLYWHEEL_PROJECT", None)
    cmd = [sys.executable, "-m", "flywheel.cli", "demo", "--seed", str(seed)] + (["--small"] if small else [])
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"flywheel demo failed ({done.returncode}):\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    return json.loads((home / "reports" / "demo.json").read_text())


def compare(home_dir: Path, dpo: dict, say=print) -> list[dict]:
    import pyarrow.parquet as pq

    from flywheel.config import TrainingConfig, load_project
    from flywheel.core.storage import FlywheelHome
    from flywheel.curation.preference_pairs import read_preference_pairs
    from flywheel.demo.project import DEMO_PROJECT_DIR
    from flywheel.evaluation.cycle import evaluate_candidate, read_summary
    from flywheel.evaluation.eval_set import eval_set_table, read_eval_set_info
    from flywheel.evaluation.metrics import paired_bootstrap
    from flywheel.models.artifact import read_artifact
    from flywheel.training.dpo import preference_stage

    home = FlywheelHome(home_dir)
    project = load_project(home.path(DEMO_PROJECT_DIR))
    project = project.model_copy(update={"evaluation": project.evaluation.model_copy(update={"seed_replicates": 0})})
    table, info = eval_set_table(home), read_eval_set_info(home)
    eval_messages = table.column("messages").to_pylist()
    metric = project.evaluation.primary_metric
    rows = []
    for name, version in _cycle_candidates(home):
        sft = read_artifact(home, version)
        pairs = read_preference_pairs(home, sft.dataset_version or "") or []
        sft_summary = read_summary(home, version)
        if not pairs:
            say(f"{name}: dataset {sft.dataset_version} has no preference pairs: nothing to compare")
            continue
        cfg = TrainingConfig.model_validate(json.loads((sft.path / "training_config.json").read_text()))
        cfg = cfg.model_copy(update={"dpo": cfg.dpo.model_copy(update={"enabled": True, "min_pairs": 1, **dpo})})
        start = time.perf_counter()
        candidate, report = preference_stage(home, sft, cfg, eval_messages, project.curation, say=say)
        label = sft_summary["champion"]
        champion = None if sft_summary.get("champion_is_base") else read_artifact(home, label)
        outcome = evaluate_candidate(project, home, candidate, table, info, champion)
        sft_scores = pq.read_table(home.reports() / "evaluations" / version / "answers.parquet").column(f"candidate_{metric}")
        dpo_scores = outcome.answers.column(f"candidate_{metric}")
        versus = paired_bootstrap(dpo_scores.to_pylist(), sft_scores.to_pylist(), project.evaluation.bootstrap_samples)
        s_ov, d_ov = sft_summary["overall"][metric], outcome.summary["overall"][metric]
        rows.append({"cycle": name, "pairs": len(pairs), "dpo": report, "champion": label,
                     "sft": {"score": s_ov["candidate"], "diff": s_ov["diff"], "low": s_ov["ci_low"], "high": s_ov["ci_high"],
                             "verdict": sft_summary["gate"]["outcome"]},
                     "dpo_candidate": {"score": d_ov["candidate"], "diff": d_ov["diff"], "low": d_ov["ci_low"],
                                       "high": d_ov["ci_high"], "verdict": outcome.decision.outcome},
                     "dpo_minus_sft": versus.as_dict(), "seconds": round(time.perf_counter() - start, 1)})
    return rows


def _cycle_candidates(home) -> list[tuple[str, str]]:
    """(cycle, SFT candidate) of every evaluation the demo ran, oldest first (DPO'd candidates left out)."""
    summaries = [json.loads(p.read_text()) for p in (home.reports() / "evaluations").glob("*/summary.json")]
    sft = sorted((s for s in summaries
                  if "sft_version" not in json.loads((home.model(s["candidate"]) / "manifest.json").read_text())),
                 key=lambda s: s["created_at"])
    return [(f"cycle {i}", s["candidate"]) for i, s in enumerate(sft, start=1)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--small", action="store_true")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--beta", type=float, default=0.1)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--home", type=Path, default=None, help="the demo's home (reused when the demo finished there)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    dpo = {"beta": args.beta, "epochs": args.epochs, "learning_rate": args.lr}
    with tempfile.TemporaryDirectory(prefix="flywheel-dpo-bench-") as tmp:
        home = args.home or Path(tmp) / "home"
        if not (home / "reports" / "demo.json").is_file():
            start = time.perf_counter()
            run_demo(home, Path(tmp) / "dagster", args.small, args.seed)
            print(f"demo ({'small' if args.small else 'full'}, seed {args.seed}): {time.perf_counter() - start:.0f} s", flush=True)
        rows = compare(home, dpo, say=lambda m: print(m, flush=True))
    print(f"\nDPO {dpo} on each cycle's SFT candidate; chrF, 95% paired-bootstrap intervals")
    print("cycle | pairs | SFT vs champion | verdict | SFT+DPO vs champion | verdict | DPO - SFT | reward acc.")
    print("---|---|---|---|---|---|---|---")
    for r in rows:
        s, d, v = r["sft"], r["dpo_candidate"], r["dpo_minus_sft"]
        print(f"{r['cycle']} | {r['pairs']} | {s['score']:.3f} ({s['diff']:+.3f} [{s['low']:+.3f}, {s['high']:+.3f}]) | "
              f"{s['verdict']} | {d['score']:.3f} ({d['diff']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]) | {d['verdict']} | "
              f"{v['diff']:+.4f} [{v['ci_low']:+.4f}, {v['ci_high']:+.4f}] | {r['dpo'].get('reward_accuracy')}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
