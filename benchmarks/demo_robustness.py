"""Does the demo's story depend on luck? Run `flywheel demo --seed N` for several training seeds, each in
a fresh data home and Dagster instance, and print seed x cycle: score, interval, verdict.

Run: `.venv/bin/python benchmarks/demo_robustness.py [--seeds 1,2,3,4,5] [--small] [--json OUT]`.
The pattern of verdicts must be the same for every seed, and every promotion's interval must exclude
zero. Prints figures only (exit 1 when the pattern differs between seeds).
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


def run_seed(seed: int, small: bool, workdir: Path) -> dict:
    home, dagster_home = workdir / f"home-{seed}", workdir / f"dagster-{seed}"
    dagster_home.mkdir(parents=True)
    env = {**os.environ, "FLYWHEEL_HOME": str(home), "DAGSTER_HOME": str(dagster_home), "OMP_WAIT_POLICY": "PASSIVE"}
    env.pop("FLYWHEEL_PROJECT", None)
    cmd = [sys.executable, "-m", "flywheel.cli", "demo", "--seed", str(seed)] + (["--small"] if small else [])
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"seed {seed}: flywheel demo failed ({done.returncode}):\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    result = json.loads((home / "reports" / "demo.json").read_text())
    result["wall_s"] = round(time.perf_counter() - start, 1)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", default="1,2,3,4,5")
    parser.add_argument("--small", action="store_true")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    runs = {}
    with tempfile.TemporaryDirectory(prefix="flywheel-robustness-") as tmp:
        for seed in seeds:
            runs[seed] = run_seed(seed, args.small, Path(tmp))
            print(f"seed {seed}: {runs[seed]['seconds']:.0f} s of cycles ({runs[seed]['wall_s']:.0f} s wall)", flush=True)
    names = [c["name"] for c in runs[seeds[0]]["cycles"]]
    print("\nseed | " + " | ".join(names))
    print("---|" + "---|" * len(names))
    for seed, run in runs.items():
        cells = []
        for c in run["cycles"]:
            lo, hi = c["interval"] or (float("nan"), float("nan"))
            cells.append(f"{c['scores'].get('overall', float('nan')):.3f} [{lo:+.3f}, {hi:+.3f}] {c['outcome']}")
        print(f"{seed} | " + " | ".join(cells))
    patterns = {seed: tuple(c["outcome"] for c in run["cycles"]) for seed, run in runs.items()}
    same = len(set(patterns.values())) == 1
    bad_promotions = [(s, c["name"]) for s, run in runs.items() for c in run["cycles"]
                      if c["outcome"] == "promoted" and (not c["interval"] or c["interval"][0] <= 0)]
    print(f"\nverdict pattern identical across seeds: {same} ({sorted(set(patterns.values()))})")
    print(f"promotions whose interval does not exclude zero: {bad_promotions or 'none'}")
    print(f"cycle seconds per run: {[run['seconds'] for run in runs.values()]}")
    if args.json:
        args.json.write_text(json.dumps(runs, indent=1))
    return 0 if same and not bad_promotions else 1


if __name__ == "__main__":
    raise SystemExit(main())
