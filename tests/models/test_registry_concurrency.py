"""One champion under any interleaving: promote / rollback raced in separate processes on SQLite and
PostgreSQL, the one-champion index on new and existing databases, and `flywheel models promote` run
twice at once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from flywheel.core.storage import FlywheelHome
from flywheel.models import registry
from tests.models.registry_race import race
from tests.models.registry_rows import record

TRIALS = 20


def test_racing_promotions_and_rollbacks_keep_one_champion(db: str, tmp_path: Path) -> None:
    # before the lock, guarded updates and the index: two champions in 20/20 promote||promote trials on
    # SQLite (14/20 on PostgreSQL), 18/20 (19/20) promote||rollback, and rollback||rollback logged the
    # same champion retired twice in 19/20 (20/20); champion.json named the other champion in ~half
    problems = race(db, tmp_path / "home", TRIALS)
    assert problems == {s: [] for s in problems}, "\n".join(p for ps in problems.values() for p in ps[:5])


def _drop_index(db: str) -> None:
    engine = registry.engine_for(db)
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP INDEX {registry.ONE_CHAMPION_INDEX}"))


def test_an_existing_database_gets_the_index_or_names_its_champions(db: str) -> None:
    for v in ("v1", "v2", "v3"):
        record(db, v, True)
    registry.promote(db, "v1", by="gate", reason="passed")
    engine = registry.engine_for(db)
    # a second champion is impossible, whoever writes it
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        conn.execute(registry.model_versions.update().where(registry.model_versions.c.version == "v2")
                     .values(status=registry.CHAMPION))

    # a registry from before the index that already holds two champions is refused, naming both
    _drop_index(db)
    with engine.begin() as conn:
        conn.execute(registry.model_versions.update().where(registry.model_versions.c.version == "v2")
                     .values(status=registry.CHAMPION))
    with pytest.raises(registry.RegistryError, match=r"2 model versions are champion at once: v1 .*, v2 "):
        registry.list_models(db)
    with engine.begin() as conn:
        conn.execute(registry.model_versions.update().where(registry.model_versions.c.version == "v1")
                     .values(status=registry.RETIRED))
    # repaired: opening it creates the index
    assert registry.current_champion(db).version == "v2"
    with engine.connect() as conn:
        assert sa.inspect(conn).has_index("model_versions", registry.ONE_CHAMPION_INDEX)
    registry.promote(db, "v3", by="gate", reason="passed")
    assert [m.version for m in registry.list_models(db) if m.status == registry.CHAMPION] == ["v3"]


def test_two_cli_promotions_at_once(tmp_path: Path) -> None:
    home = tmp_path / "home"
    db = FlywheelHome(home).database_url()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLYWHEEL_")}
    for t in range(3):
        for k in (0, 1):
            record(db, f"t{t}-{k}", True)
        procs = [subprocess.Popen([sys.executable, "-m", "flywheel.cli", "models", "promote", f"t{t}-{k}",
                                   "--reason", "race", "--by", f"w{k}", "--home", str(home)],
                                  env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                 for k in (0, 1)]
        outputs = [p.communicate(timeout=120)[0] for p in procs]
        assert [p.returncode for p in procs] == [0, 0], outputs
        champions = [m.version for m in registry.list_models(db) if m.status == registry.CHAMPION]
        assert len(champions) == 1
        assert json.loads((home / "models" / "champion.json").read_text())["version"] == champions[0]
