"""The serving export of the champion: `models/champion.json`, `reports/serving.md` and the vLLM
command line (base model + LoRA adapter), with what in the adapter vLLM would refuse.

`export_champion` is what a promotion or rollback calls after its transaction committed: it reads the
registry's champion under a file lock and writes the export, so the last export written is always of
the committed champion, however promotions in several processes interleave."""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa

from flywheel.core.errors import StateError
from flywheel.core.markdown import markdown_table
from flywheel.core.storage import FlywheelHome, sql_engine, storage_path, write_json, write_text
from flywheel.models.base import TINY, base_path
from flywheel.models.registry import ModelRecord, current_champion

VLLM_DEFAULT_MAX_LORA_RANK = 16
VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)  # the values vLLM's --max-lora-rank accepts


def vllm_max_lora_rank(r: int) -> int | None:
    """The `--max-lora-rank` vLLM needs for an adapter of rank `r` (None: its default 16 suffices)."""
    if r <= VLLM_DEFAULT_MAX_LORA_RANK:
        return None
    return next((v for v in VLLM_LORA_RANKS if v >= r), r)


def vllm_adapter_warnings(adapter_config: dict[str, Any]) -> list[str]:
    """What in a peft `adapter_config.json` vLLM's `--lora-modules` refuses or needs to be told about."""
    out = []
    if not adapter_config.get("base_model_name_or_path"):
        out.append("adapter_config.json has no base_model_name_or_path")
    for key in ("r", "lora_alpha", "target_modules"):
        if adapter_config.get(key) in (None, "", []):
            out.append(f"adapter_config.json has no {key}")
    if adapter_config.get("modules_to_save"):
        out.append(f"modules_to_save {adapter_config['modules_to_save']} is set (training.lora.modules_to_save): "
                   "most vLLM versions refuse such adapters (\"vLLM only supports modules_to_save being None\"); "
                   "retrain without it to serve with vLLM")
    if adapter_config.get("use_dora"):
        out.append("use_dora is set: vLLM does not serve DoRA adapters")
    if adapter_config.get("bias", "none") != "none":
        out.append(f"bias {adapter_config['bias']!r}: vLLM needs --enable-lora-bias for adapter biases")
    return out


def read_adapter_config(adapter_path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The adapter folder's `adapter_config.json`, or None when it is not readable here."""
    try:
        return json.loads((storage_path(adapter_path) / "adapter_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def vllm_command(base: str, lora_name: str, adapter_path: str, max_lora_rank: int | None = None) -> str:
    rank = f" --max-lora-rank {max_lora_rank}" if max_lora_rank else ""
    return f"vllm serve {base} --enable-lora{rank} --lora-modules {lora_name}={adapter_path}"


def write_serving_export(home: FlywheelHome, record: ModelRecord | None, lora_name: str | None = None) -> dict[str, Any]:
    """Write `models/champion.json` and `reports/serving.md` for the champion (or say there is none).

    `lora_name` is the model name clients request; by default the one of the previous export (so a
    manual promotion or rollback keeps it), else `champion`."""
    pointer = home.model("champion.json")
    if lora_name is None:
        try:
            lora_name = json.loads(pointer.read_text(encoding="utf-8")).get("lora_name") if pointer.exists() else None
        except ValueError:
            lora_name = None
        lora_name = lora_name or "champion"
    if record is None:
        info: dict[str, Any] = {"version": None}
        write_json(info, home.model("champion.json"))
        write_text("# Serving\n\nNo champion yet: serve the base model.\n", home.reports() / "serving.md")
        return info
    base = base_path(record.base_model or TINY, home)
    # stored relative to the home (a moved home still works); the vLLM line names where it is now
    adapter = home.relative(record.adapter_path or home.model(record.version))
    adapter_config = read_adapter_config(home.resolve(adapter))
    warnings = (vllm_adapter_warnings(adapter_config) if adapter_config is not None
                else [f"{home.resolve(adapter) / 'adapter_config.json'}: not readable here; check it before serving"])
    rank = vllm_max_lora_rank(int(adapter_config.get("r") or 0)) if adapter_config else None
    cmd = vllm_command(base, lora_name, str(home.resolve(adapter)), rank)
    info = {
        "version": record.version,
        "path": adapter,
        "base_model": record.base_model,
        "serving_base": base,
        "lora_name": lora_name,
        "dataset_version": record.dataset_version,
        "eval_set_hash": record.eval_set_hash,
        "scores": record.scores.get("overall", {}),
        "promoted_by": record.promoted_by,
        "promoted_at": record.promoted_at.isoformat() if record.promoted_at else None,
        "vllm_command": cmd,
        "lora_rank": adapter_config.get("r") if adapter_config else None,
        "warnings": warnings,
    }
    write_json(info, home.model("champion.json"))
    scores = markdown_table(["metric", "score (fixed eval set)"],
                            [(k, f"{v:.4f}") for k, v in sorted(info["scores"].items()) if isinstance(v, (int, float))])
    md = (
        f"# Serving the champion\n\n"
        f"- version: `{record.version}` (dataset `{record.dataset_version}`, eval set `{record.eval_set_hash}`)\n"
        f"- promoted by {record.promoted_by} at {info['promoted_at']}: {record.reason}\n"
        f"- base model: `{base}`\n- LoRA adapter: `{adapter}`\n\n"
        f"```bash\n{cmd}\n```\n\n"
        + "".join(f"> **Warning:** {w}\n\n" for w in warnings) +
        f"Clients request the model name `{lora_name}`.\n\n"
        f"{scores}\n"
    )
    write_text(md, home.reports() / "serving.md")
    return info


def export_champion(home: FlywheelHome, engine_or_url: sa.Engine | str, lora_name: str | None = None) -> dict[str, Any]:
    """Write the serving export of the registry's committed champion (see `write_serving_export`).

    The read and the write happen under an exclusive lock (`_export_lock`): every exporter reads after its
    own commit, so whichever writes last writes a champion no later commit replaced."""
    with _export_lock(home, engine_or_url):
        return write_serving_export(home, current_champion(engine_or_url), lora_name)


@contextmanager
def _export_lock(home: FlywheelHome, engine_or_url: sa.Engine | str) -> Iterator[None]:
    """An exclusive lock for the export: `flock` on `models/.champion.lock` for a local home; for a home
    on object storage (no file locks there) a PostgreSQL advisory lock in the registry's database."""
    if not home.remote:
        lock = home.model(".champion.lock")
        lock.parent.mkdir(parents=True, exist_ok=True)
        with lock.open("a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
        return
    engine = engine_or_url if isinstance(engine_or_url, sa.Engine) else sql_engine(engine_or_url)
    if engine.dialect.name != "postgresql":
        raise StateError(f"{home.root}: a home on object storage needs its registry in PostgreSQL (the export "
                         f"lock is an advisory lock there); the database is {engine.dialect.name}")
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT pg_advisory_lock(:key)"), {"key": _EXPORT_LOCK_KEY})
        try:
            yield
        finally:
            conn.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": _EXPORT_LOCK_KEY})
            conn.commit()


_EXPORT_LOCK_KEY = 0x666C7977  # "flyw": the serving export's advisory lock id
