"""A backfill of `daily_capture` through Dagster's run launcher against `flywheel backfill capture`.

    .venv/bin/python benchmarks/backfill.py [--days 5] [--code DIR]

Lands the same small demo days (the SMALL scenario's simulated users, logged with the capture SDK)
into a fresh FLYWHEEL_HOME per side, then times, each from a cold process on its own fresh DAGSTER_HOME:
- warm_fork: `dagster job backfill -w workspace.yaml -j daily_capture --partitions ...` (what a UI
  backfill does: one run per partition) on an instance with the run launcher `make ui` configures
  (launcher/instance.yaml: each run a fork of a warm forkserver), timed until the last run has
  finished; the instances use the DefaultRunCoordinator, so runs launch at once instead of waiting
  for a daemon's dequeue tick;
- default: the same with Dagster's DefaultRunLauncher (the code server spawns a fresh Python per run);
- flywheel: `flywheel backfill capture --from --to` (one process, the runs in-process, oldest first);
- noop: the default launcher's backfill of a no-op code location (a `daily_capture` job of two
  assets that return at once, same daily partitions): Dagster's own cost of a run per partition (the
  CLI, a code server, a spawned run worker per run importing dagster), which no code location can go
  under with that launcher.
Prints the four wall times, their ratios to `flywheel backfill`, the runs' statuses and the DEBUG lines
the run workers printed;
`--repeat N` runs N rounds (fresh homes each) and reports the medians: a shared machine is noisy.
`--code DIR` loads the code location from another checkout (e.g. one at an older commit) for the
dagster sides.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import dagster as dg  # noqa: E402

from flywheel.capture.sdk import CaptureWriter  # noqa: E402
from flywheel.core.storage import FlywheelHome  # noqa: E402
from flywheel.demo.run import DEMO_PSEUDONYM_KEY  # noqa: E402
from flywheel.demo.scenario import ANSWERS, SMALL, react, simulate_requests  # noqa: E402

FIRST_DAY = date(2026, 10, 26)
INSTANCE_YAML = """telemetry:
  enabled: false
python_logs:
  python_log_level: INFO
run_coordinator:
  module: dagster._core.run_coordinator
  class: DefaultRunCoordinator
"""
NOOP_LOCATION = '''"""A code location whose `daily_capture` does nothing: the floor of a Dagster backfill."""
import dagster as dg

DAYS = dg.DailyPartitionsDefinition(start_date="{start}")


@dg.asset(partitions_def=DAYS, group_name="capture")
def interactions() -> None:
    return None


@dg.asset(partitions_def=DAYS, group_name="capture", deps=[interactions])
def interaction_signals() -> None:
    return None


defs = dg.Definitions(
    assets=[interactions, interaction_signals],
    jobs=[dg.define_asset_job("daily_capture", selection=dg.AssetSelection.groups("capture"),
                              executor_def=dg.in_process_executor)],
)
'''


def land(home: FlywheelHome, days: list[str]) -> int:
    """The SMALL scenario's requests of each day, answered right 2 times in 3, with their feedback."""
    n = 0
    with CaptureWriter(home) as writer:
        for day in days:
            for k, req in enumerate(simulate_requests(day, SMALL)):
                output = ANSWERS[req.intent] if k % 3 else ANSWERS["out_of_scope"]
                writer.log_interaction([{"role": "user", "content": req.text}], output, session_id=req.session_id,
                                       user_id=req.user_id, model_version="m1", latency_ms=req.latency_ms,
                                       interaction_id=req.interaction_id, ts=req.ts)
                for fb in react(req, output).feedback:
                    writer.log_feedback(fb["interaction_id"], fb["kind"], text=fb.get("text"), ts=fb["ts"])
                n += 1
    return n


def _tail(log: Path, lines: int = 30) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def dagster_home(root: Path, name: str, warm_fork: bool = False) -> Path:
    """A fresh DAGSTER_HOME; `warm_fork` adds the local instance's run launcher (launcher/instance.yaml)."""
    path = root / name
    path.mkdir()
    launcher = (REPO / "launcher" / "instance.yaml").read_text(encoding="utf-8") if warm_fork else ""
    (path / "dagster.yaml").write_text(INSTANCE_YAML + launcher, encoding="utf-8")
    return path


def env_for(home: FlywheelHome, dhome: Path, project: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLYWHEEL_", "DAGSTER_"))}
    return env | {"FLYWHEEL_HOME": str(home.root), "DAGSTER_HOME": str(dhome), "FLYWHEEL_PROJECT": str(project),
                  "OMP_WAIT_POLICY": "PASSIVE", "FLYWHEEL_PSEUDONYM_KEY": DEMO_PSEUDONYM_KEY}


def noop_location(root: Path, start: str) -> Path:
    """A folder holding the no-op `definitions.py` (partitions from `start`)."""
    folder = root / "noop-location"
    folder.mkdir()
    (folder / "definitions.py").write_text(NOOP_LOCATION.format(start=start), encoding="utf-8")
    return folder


def run_dagster(days: list[str], env: dict[str, str], code: Path, log: Path, timeout_s: float) -> tuple[float, dict]:
    """`dagster job backfill`, then wait until every run it launched has finished."""
    bin_dir = Path(sys.executable).parent
    workspace = log.parent / f"workspace-{log.stem}.yaml"
    workspace.write_text("load_from:\n  - python_module:\n      module_name: definitions\n"
                         f"      location_name: flywheel\n      working_directory: {code}\n", encoding="utf-8")
    start = time.perf_counter()
    with log.open("w") as out:
        cli = subprocess.Popen([str(bin_dir / "dagster"), "job", "backfill", "-w", str(workspace), "-j", "daily_capture",
                                "--partitions", ",".join(days), "--noprompt"], cwd=code, env=env, stdout=out,
                               stderr=subprocess.STDOUT)
        with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
            while True:
                runs = instance.get_runs(dg.RunsFilter(job_name="daily_capture"))
                if cli.poll() not in (None, 0):
                    raise SystemExit(f"dagster job backfill failed:\n{_tail(log)}")
                if len(runs) == len(days) and all(r.is_finished for r in runs):
                    break
                if time.perf_counter() - start > timeout_s:
                    raise SystemExit(f"the backfill did not finish in {timeout_s:.0f} s:\n{_tail(log)}")
                time.sleep(0.2)
            seconds = time.perf_counter() - start
            statuses = {r.tags.get("dagster/partition"): r.status.value for r in runs}
        cli.wait(timeout=120)  # the code server it started stops once its runs have ended
    return seconds, statuses


def run_flywheel(days: list[str], env: dict[str, str], log: Path) -> float:
    start = time.perf_counter()
    with log.open("w") as out:
        proc = subprocess.run([str(Path(sys.executable).parent / "flywheel"), "backfill", "capture", "--from", days[0],
                               "--to", days[-1]], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    if proc.returncode:
        raise SystemExit(f"flywheel backfill failed:\n{_tail(log)}")
    return time.perf_counter() - start


SIDES = {
    "warm_fork": "dagster job backfill, warm-fork run launcher (make ui's instance)",
    "default": "dagster job backfill, Dagster's DefaultRunLauncher",
    "flywheel": "flywheel backfill capture (in-process)",
    "noop": "dagster job backfill, DefaultRunLauncher, no-op location",
}


def one_round(days: list[str], code: Path, timeout_s: float) -> tuple[dict[str, float], set[str], int]:
    """Every side once, each on fresh homes: ({side: seconds}, run statuses, DEBUG lines the workers printed)."""
    with tempfile.TemporaryDirectory(prefix="flywheel-backfill-") as tmp:
        root = Path(tmp)
        project = root / "project"  # an empty project folder: the defaults
        project.mkdir()
        seconds, statuses = {}, set()
        for side in SIDES:
            home = FlywheelHome(root / f"home-{side}")
            if side != "noop":  # the no-op location reads nothing
                land(home, days)
            env = env_for(home, dagster_home(root, f"dh-{side}", warm_fork=side == "warm_fork"), project)
            log = root / f"{side}.log"
            if side == "flywheel":
                seconds[side] = run_flywheel(days, env, log)
                continue
            location = noop_location(root, days[0]) if side == "noop" else code
            seconds[side], run_statuses = run_dagster(days, env, location, log, timeout_s)
            statuses |= set(run_statuses.values())
        debug_lines = sum("DEBUG" in line for side in ("warm_fork", "default")
                          for line in (root / f"{side}.log").read_text(errors="replace").splitlines())
    return seconds, statuses, debug_lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=1, help="rounds (the median is reported)")
    parser.add_argument("--code", type=Path, default=REPO, help="the checkout the dagster sides load")
    parser.add_argument("--timeout", type=float, default=900.0)
    args = parser.parse_args()
    days = [(FIRST_DAY + timedelta(days=i)).isoformat() for i in range(args.days)]
    with tempfile.TemporaryDirectory() as tmp:
        rows = land(FlywheelHome(Path(tmp)), days)
    print(f"{len(days)} days ({days[0]}..{days[-1]}), {rows} interactions landed per home; code: {args.code}")
    rounds = []
    for i in range(args.repeat):
        seconds, statuses, debug = one_round(days, args.code.resolve(), args.timeout)
        rounds.append(seconds)
        print(f"round {i + 1}: " + ", ".join(f"{side} {s:5.1f} s" for side, s in seconds.items())
              + f"; runs {sorted(statuses)}, DEBUG lines from the run workers {debug}, "
              f"load average {os.getloadavg()[0]:.1f}")
    median = {side: statistics.median(r[side] for r in rounds) for side in SIDES}
    for side, label in SIDES.items():
        print(f"{label + ':':<72}{median[side]:6.1f} s (median)")
    fly = median["flywheel"]
    print(f"ratio to flywheel backfill: warm fork {median['warm_fork'] / fly:.1f}x (target <= 2x), "
          f"Dagster's default launcher {median['default'] / fly:.1f}x, "
          f"its floor with a no-op location {median['noop'] / fly:.1f}x")


if __name__ == "__main__":
    main()
