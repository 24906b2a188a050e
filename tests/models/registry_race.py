"""Champion races in separate processes: two spawned workers run promote / rollback at the same moment
(a barrier releases them together), then write the serving export as the CLI does; the parent checks
the registry after every trial."""

from __future__ import annotations

import json
import multiprocessing as mp
from pathlib import Path
from typing import Any

from flywheel.core.storage import FlywheelHome
from flywheel.models import registry, serving
from tests.models.registry_rows import record

CHAMPION_MAKING = ("promoted", "forced", "rollback")


def _worker(db: str, home: str, commands: Any, results: Any, barrier: Any) -> None:
    while (cmd := commands.get()) is not None:
        op, arg, actor = cmd
        barrier.wait()
        try:
            if op == "promote":
                registry.promote(db, arg, by=actor, reason="race")
            else:
                registry.rollback(db, by=actor, reason="race")
            serving.export_champion(FlywheelHome(home), db)
            results.put((actor, "ok", ""))
        except registry.RegistryError as exc:
            results.put((actor, "refused", str(exc)))
        except Exception as exc:  # noqa: BLE001 - reported to the parent, which fails the test with it
            results.put((actor, "error", repr(exc)))


def _promote(db: str, version: str) -> None:
    record(db, version, True)
    registry.promote(db, version, by="setup", reason="setup")


def _reset(db: str, chain: tuple[str, ...]) -> None:
    """An empty registry (every trial starts alike), then `chain` promoted in order."""
    engine = registry.engine_for(db)
    with engine.begin() as conn:
        for table in (registry.model_events, registry.model_evaluations, registry.model_versions):
            conn.execute(table.delete())
    for version in chain:
        _promote(db, version)


def _problems(db: str, home: Path, trial: str, outcomes: list[tuple[str, str, str]]) -> list[str]:
    """What is wrong with the registry after one trial (empty when all is well)."""
    # every race is set up so that both operations succeed in either order
    out = [f"{actor}: {status} {detail}" for actor, status, detail in outcomes if status != "ok"]
    models = {m.version: m.status for m in registry.list_models(db)}
    champions = sorted(v for v, s in models.items() if s == registry.CHAMPION)
    if len(champions) != 1:
        out.append(f"{len(champions)} champions: {champions}")
    # replaying the event log gives the table, every event starts from the status it changes
    state: dict[str, str] = {}
    for e in registry.model_events_log(db):
        if e["from_status"] is not None and state.get(e["version"]) != e["from_status"]:
            out.append(f"event {e['id']} {e['action']} {e['version']}: from {e['from_status']} "
                       f"but it was {state.get(e['version'])}")
        state[e["version"]] = e["to_status"]
        if sum(s == registry.CHAMPION for s in state.values()) > 1:
            out.append(f"event {e['id']} {e['action']} {e['version']} made a second champion")
    if state != models:
        out.append("the event log does not replay to the registry table")
    # one champion-making event per operation that said it succeeded, none for a refused one
    events = [e for e in registry.model_events_log(db) if e["action"] in CHAMPION_MAKING]
    for actor, status, _ in outcomes:
        made = sum(e["actor"] == actor for e in events)
        if made != (status == "ok"):
            out.append(f"{actor} ({status}) logged {made} champion changes")
    pointer = json.loads((home / "models" / "champion.json").read_text())["version"]
    if champions and pointer != champions[-1]:
        out.append(f"champion.json names {pointer}, the registry {champions}")
    return [f"{trial}: {p}" for p in out]


def race(db: str, home: Path, trials: int, scenarios: tuple[str, ...] = ("promote/promote", "promote/rollback",
                                                                          "rollback/rollback")) -> dict[str, list[str]]:
    """Run `trials` races of each scenario; {scenario: problems (one line each, prefixed by the trial)}."""
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(2)
    results = ctx.Queue()
    queues = [ctx.Queue(), ctx.Queue()]
    workers = [ctx.Process(target=_worker, args=(db, str(home), q, results, barrier), daemon=True) for q in queues]
    for w in workers:
        w.start()
    try:
        problems: dict[str, list[str]] = {}
        for scenario in scenarios:
            problems[scenario] = []
            for t in range(trials):
                tag = f"{scenario.replace('/', '-')}-{t}"
                _reset(db, ("root-0", "root-1"))
                serving.export_champion(FlywheelHome(home), db)
                ops = scenario.split("/")
                if ops == ["promote", "rollback"]:
                    _promote(db, f"{tag}-base")
                elif ops == ["rollback", "rollback"]:
                    _promote(db, f"{tag}-x")
                    _promote(db, f"{tag}-y")
                cmds = []
                for k, op in enumerate(ops):
                    arg = f"{tag}-{k}" if op == "promote" else ""
                    if arg:
                        record(db, arg, True)
                    cmds.append((op, arg, f"{tag}-w{k}"))
                for q, cmd in zip(queues, cmds, strict=True):
                    q.put(cmd)
                outcomes = [results.get(timeout=60) for _ in cmds]
                problems[scenario] += _problems(db, home, tag, outcomes)
        return problems
    finally:
        for q in queues:
            q.put(None)
        for w in workers:
            w.join(timeout=10)
            if w.is_alive():
                w.terminate()
