"""A flywheel project on disk: `flywheel init`, and the rubric that must be written first."""

from __future__ import annotations

import os
from pathlib import Path

from flywheel.config import PROJECT_FILE, ProjectConfig, load_project, parse_project

PROJECT_ENV = "FLYWHEEL_PROJECT"

RUBRIC_TEMPLATE_MARKER = "flywheel:rubric-template"
STARTER_FILES = (PROJECT_FILE, "rubric.md", "eval.jsonl")
# the starter rubric's stand-ins for the perfect and the bad example: while one is left, the rubric is unwritten
RUBRIC_PLACEHOLDERS = (
    "(paste a real production input)",
    "(the answer you want every time: tone, length, structure)",
    "(a real input)",
    "(a tempting but wrong answer, and why it is wrong)",
)
TEMPLATES = Path(__file__).parent / "templates"


def template_text(name: str) -> str:
    return (TEMPLATES / name).read_text(encoding="utf-8")


def init_project(directory: str | Path, force: bool = False) -> list[Path]:
    """Write a commented starter project (flywheel.yaml, rubric.md, an empty eval set) into `directory`."""
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    existing = [target / n for n in STARTER_FILES if (target / n).exists()]
    if existing and not force:
        raise FileExistsError(f"{existing[0]}: already exists (use --force to overwrite)")
    written = []
    for name in STARTER_FILES:
        path = target / name
        path.write_text(template_text(name), encoding="utf-8")
        written.append(path)
    return written


def rubric_problem(project: ProjectConfig) -> str | None:
    """Why the project's rubric cannot be used yet (missing, empty, or the unedited template), else None."""
    path = project.resolve(project.rubric)
    if not path.exists():
        return f"{path}: rubric not found; write what a perfect and a bad example look like first"
    text = path.read_text(encoding="utf-8")
    if not text.strip():
        return f"{path}: rubric is empty"
    if RUBRIC_TEMPLATE_MARKER in text or text == template_text("rubric.md"):
        return f"{path}: rubric is still the unedited template; edit it (and delete its first line) before building a dataset"
    left = [p for p in RUBRIC_PLACEHOLDERS if p in text]
    if left:
        return (f"{path}: rubric still holds the template's placeholder {left[0]!r}; "
                "write a real perfect and a real bad example before building a dataset")
    return None


def rubric_text(project: ProjectConfig) -> str:
    path = project.resolve(project.rubric)
    return path.read_text(encoding="utf-8") if path.exists() else ""


def project_folder(explicit: str | os.PathLike[str] | None = None) -> Path:
    """`explicit` when given, else `$FLYWHEEL_PROJECT`, else the working directory."""
    return Path(explicit or os.environ.get(PROJECT_ENV) or Path.cwd())


def load_project_or_defaults(folder: str | os.PathLike[str] | None = None) -> ProjectConfig:
    """The project file in `folder` (or the file itself), or every default when the folder has none.

    `folder` defaults to `project_folder()`; a broken project file raises `ConfigError`.
    """
    path = project_folder(folder)
    if (path / PROJECT_FILE).exists() or path.suffix in (".yaml", ".yml"):
        return load_project(path)
    return parse_project({}, source=f"{path} (no {PROJECT_FILE}: defaults)", root=path.resolve())
