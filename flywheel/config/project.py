"""The project file (`flywheel.yaml`) as a whole: its sections, rules across keys, and reading it.

A wrong key or value is refused with the file, the line, the key and what was expected (`ConfigError`):
so are values that cannot work (a cron expression that does not parse or never fires, an unknown time
zone, a broken regular expression or JSON schema, bounds in the wrong order), duplicate keys, and YAML
anchors and aliases (refused outright: no expansion bombs).
"""

from __future__ import annotations

import difflib
import typing
from datetime import date, datetime
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from flywheel.config.automation import AutomationConfig
from flywheel.config.base import PROJECT_FILE, ConfigError, StrictModel
from flywheel.config.capture import CaptureConfig
from flywheel.config.curation import CurationConfig, SourcesConfig
from flywheel.config.evaluation import EvaluationConfig
from flywheel.config.generation import GenerationConfig
from flywheel.config.labeling import LabelingConfig
from flywheel.config.training import TrainingConfig


class ProjectConfig(StrictModel):
    """The whole project file."""

    name: str = "flywheel-project"
    rubric: str = "rubric.md"
    start_date: str = Field("2026-01-01", description="first day of captured traffic (partitions start here)")
    capture: CaptureConfig = Field(default_factory=CaptureConfig)
    labeling: LabelingConfig = Field(default_factory=LabelingConfig)
    sources: SourcesConfig = Field(default_factory=SourcesConfig)
    generation: GenerationConfig = Field(default_factory=GenerationConfig)
    curation: CurationConfig = Field(default_factory=CurationConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    automation: AutomationConfig = Field(default_factory=AutomationConfig)

    # where the file was read from; relative paths in it resolve against this folder
    root: Path = Field(default_factory=Path.cwd, exclude=True)

    @field_validator("start_date", mode="before")
    @classmethod
    def _iso_date(cls, value: Any) -> str:
        if isinstance(value, date) and not isinstance(value, datetime):  # YAML reads 2026-01-01 as a date
            return value.isoformat()
        try:
            return date.fromisoformat(value).isoformat()
        except (TypeError, ValueError):
            raise ValueError("expected a date YYYY-MM-DD") from None

    @model_validator(mode="after")
    def _consistent(self) -> ProjectConfig:
        """Rules across keys: each problem names the key it is reported at and the values."""
        problems: list[tuple[tuple[str, ...], str]] = []
        c, e, lab = self.curation, self.evaluation, self.labeling
        if not c.min_examples <= c.target_examples <= c.ceiling_examples:
            problems.append((("curation",), "expected min_examples <= target_examples <= ceiling_examples "
                             f"(got {c.min_examples}, {c.target_examples}, {c.ceiling_examples})"))
        if c.answer_min_chars > c.answer_max_chars:
            problems.append((("curation", "answer_min_chars"), "expected answer_min_chars <= answer_max_chars "
                             f"(got {c.answer_min_chars} > {c.answer_max_chars})"))
        if e.min_items > e.max_items:
            problems.append((("evaluation", "min_items"),
                             f"expected min_items <= max_items (got {e.min_items} > {e.max_items})"))
        if e.primary_metric not in e.metrics:
            problems.append((("evaluation", "primary_metric"), f"{e.primary_metric!r} is not computed: add it to "
                             f"evaluation.metrics (got {', '.join(e.metrics) or 'none'})"))
        if e.judge is None and "judge" in (*e.metrics, e.primary_metric):
            problems.append((("evaluation", "metrics"), "metric 'judge' needs evaluation.judge (base_url, model)"))
        fix_room = 4 * (lab.max_fix_chars + lab.max_reason_chars) + 4096  # UTF-8, JSON-escaped, the other fields
        for key in ("max_request_bytes", "max_import_line_bytes"):
            if getattr(lab, key) < fix_room:
                problems.append((("labeling", key), f"expected at least 4 x (max_fix_chars + max_reason_chars) "
                                 f"+ 4096 = {fix_room} so a fix of the longest allowed length fits (got {getattr(lab, key)})"))
        if problems:
            raise _CrossKeyError(problems)
        return self

    def resolve(self, relative: str) -> Path:
        """A path from the project file, resolved against the project folder."""
        p = Path(relative)
        return p if p.is_absolute() else self.root / p


def _section_model(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The pydantic model of the mapping at `loc` in the project file (None when it is not one)."""
    model: type[BaseModel] = ProjectConfig
    for part in loc:
        info = model.model_fields.get(str(part))
        if info is None:
            return None
        candidates = [info.annotation, *typing.get_args(info.annotation)]
        nested = [c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)]
        if not nested:
            return None
        model = nested[0]
    return model


class _CrossKeyError(ValueError):
    """Rules across keys that failed: (key path, message) each."""

    def __init__(self, problems: list[tuple[tuple[str, ...], str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"key '{'.'.join(k)}': {m}" for k, m in problems))


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _describe(error: dict[str, Any], lines: dict[tuple[str, ...], int] | None = None) -> str:
    loc = tuple(str(p) for p in error["loc"])
    key = ".".join(loc) or "(top level)"
    where = f"line {lines[loc]}, " if lines and loc in lines else ""
    if error["type"] == "extra_forbidden":
        model = _section_model(loc[:-1])
        known = [n for n, f in model.model_fields.items() if not f.exclude] if model else []
        close = difflib.get_close_matches(loc[-1], known, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        return f"{where}key '{key}': unknown key; {hint}expected one of: {', '.join(known)}"
    cause = error.get("ctx", {}).get("error")
    if error["type"] == "value_error" and not loc:  # rules across keys; each message names its key
        if isinstance(cause, _CrossKeyError):
            return "\n  ".join(
                f"{f'line {lines[k]}, ' if lines and k in lines else ''}key '{'.'.join(k)}': {m}" for k, m in cause.problems
            )
        return str(cause or error["msg"])
    return f"{where}key '{key}': {error['msg']} (got {_short(error.get('input'))})"


class _Refused(yaml.YAMLError):
    """YAML the project file does not accept (an anchor, an alias, a duplicate key), at a 1-based line."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


class _ProjectLoader(yaml.SafeLoader):
    """Safe YAML that refuses anchors and aliases (no expansion bombs: nothing is ever expanded) and
    duplicate keys (the last one would win silently)."""

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        event = self.peek_event()
        anchor = getattr(event, "anchor", None)
        if anchor is not None:
            kind = "alias *" if isinstance(event, yaml.AliasEvent) else "anchor &"
            raise _Refused(event.start_mark.line + 1, f"YAML {kind}{anchor}: anchors and aliases are not accepted "
                           "in a project file; write the value out where it is used")
        return super().compose_node(parent, index)

    def compose_mapping_node(self, anchor: str | None) -> yaml.MappingNode:
        node = super().compose_mapping_node(anchor)
        first: dict[tuple[str, str], int] = {}
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                k, line = (key_node.tag, key_node.value), key_node.start_mark.line + 1
                if k in first:
                    raise _Refused(line, f"duplicate key '{key_node.value}' (first at line {first[k]}); "
                                   "each key may appear once in a mapping")
                first[k] = line
        return node


def _key_lines(root: yaml.Node | None) -> dict[tuple[str, ...], int]:
    """The 1-based line of every mapping key of a composed YAML document, by its path of keys."""
    found: dict[tuple[str, ...], int] = {}

    def walk(node: yaml.Node, path: tuple[str, ...]) -> None:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                child = (*path, str(key_node.value))
                found[child] = key_node.start_mark.line + 1
                walk(value_node, child)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                found.setdefault((*path, str(i)), item.start_mark.line + 1)
                walk(item, (*path, str(i)))

    if root is not None:
        walk(root, ())
    return found


def read_yaml(text: str, source: str) -> tuple[Any, dict[tuple[str, ...], int]]:
    """Parse a project file's YAML (safe, without anchors, aliases or duplicate keys): the data and the
    line of every key. Raises `ConfigError` naming `source` and the line."""
    loader = _ProjectLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except _Refused as exc:
        raise ConfigError(f"{source}: line {exc.line}: {exc.message}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{source}: nested too deeply to be a project file") from None
    finally:
        loader.dispose()
    return data, _key_lines(node)


def parse_project(
    data: Any, source: str = PROJECT_FILE, root: Path | None = None, key_lines: dict[tuple[str, ...], int] | None = None
) -> ProjectConfig:
    """Validate an already-parsed project mapping; errors name `source`, the key (and its line, when
    `key_lines` maps key paths to lines) and what was expected."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of keys at the top level, got {type(data).__name__}")
    try:
        cfg = ProjectConfig.model_validate(data)
    except ValidationError as exc:
        lines = "\n  ".join(_describe(e, key_lines) for e in exc.errors())
        raise ConfigError(f"{source}: invalid project file\n  {lines}") from None
    if root is not None:
        cfg.root = root
    return cfg


def load_project(path: str | Path) -> ProjectConfig:
    """Read and validate a project file (a path to `flywheel.yaml` or to the folder holding it)."""
    p = Path(path)
    if p.is_dir():
        p = p / PROJECT_FILE
    if not p.exists():
        raise ConfigError(f"{p}: project file not found (run `flywheel init DIR` to create one)")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: cannot read the project file: {exc}") from None
    data, lines = read_yaml(text, str(p))
    return parse_project(data, source=str(p), root=p.parent.resolve(), key_lines=lines)
