"""`flywheel check-config` beyond the YAML: can this project be used? Every problem at once.

The project file itself is validated when it loads (`flywheel.config.load_project`: keys, values,
rules across keys). These checks look at what it points to: the rubric (missing, empty, the unedited
template, every placeholder still in it), the fixed eval set (missing, empty, unusable rows, fewer
than `evaluation.min_items` usable items; more than `max_items` is a warning) and the files listed
under `sources:`, and the pseudonym keys capture needs (`$FLYWHEEL_PSEUDONYM_KEY`, old keys).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from flywheel.capture.pseudonyms import PseudonymKeyError, all_pseudonymizers
from flywheel.config import ProjectConfig
from flywheel.evaluation.eval_set import EvalSetError, load_eval_set
from flywheel.project import RUBRIC_PLACEHOLDERS, RUBRIC_TEMPLATE_MARKER


@dataclass
class ProjectReport:
    problems: list[str] = field(default_factory=list)  # any one makes the project unusable
    warnings: list[str] = field(default_factory=list)

    @property
    def usable(self) -> bool:
        return not self.problems


def rubric_problems(project: ProjectConfig) -> list[str]:
    """Every reason the rubric cannot be used yet: missing, empty, the template's marker, each placeholder."""
    path = project.resolve(project.rubric)
    if not path.is_file():
        return [f"rubric {path}: not found; write what a perfect and a bad example look like first"]
    text = path.read_text(encoding="utf-8")
    if not text.strip():
        return [f"rubric {path}: empty"]
    out = []
    if RUBRIC_TEMPLATE_MARKER in text:
        out.append(f"rubric {path}: still the unedited template (its first line says so); edit it and delete that line")
    out += [f"rubric {path}: placeholder {p!r} is still there" for p in RUBRIC_PLACEHOLDERS if p in text]
    return out


def eval_set_problems(project: ProjectConfig) -> tuple[list[str], list[str]]:
    """(problems, warnings) of the fixed eval set file against `evaluation.min_items` / `max_items`."""
    e = project.evaluation
    path = project.resolve(e.eval_set)
    try:
        loaded = load_eval_set(path, max_tokens=project.curation.max_tokens)
    except EvalSetError as exc:
        return [f"eval set: {exc}"], []
    items = loaded.table.num_rows
    problems, warnings = [], []
    if loaded.invalid:
        first = loaded.invalid[0]
        problems.append(f"eval set {path}: {len(loaded.invalid)} unusable row(s) (first: line {first['line']}, "
                        f"{first['reason']})")
    if items == 0:
        problems.append(f"eval set {path}: empty; write {e.min_items}-{e.max_items} examples, each with a `slice`")
    elif items < e.min_items:
        problems.append(f"eval set {path}: {items} usable item(s), fewer than evaluation.min_items {e.min_items}")
    elif items > e.max_items:
        warnings.append(f"eval set {path}: {items} items, more than evaluation.max_items {e.max_items} "
                        "(every cycle pays their eval time)")
    return problems, warnings


def source_problems(project: ProjectConfig) -> list[str]:
    """Files listed under `sources:` that do not exist."""
    return [f"sources.{key}: {project.resolve(name)} does not exist"
            for key in ("seed", "synthetic", "distilled") for name in getattr(project.sources, key)
            if not project.resolve(name).is_file()]


def pseudonym_key_problems(project: ProjectConfig) -> list[str]:
    """The pseudonym key capture would refuse to run without (missing or too short), or an unusable old key."""
    try:
        all_pseudonymizers(project.capture)
    except PseudonymKeyError as exc:
        return [str(exc)]
    return []


def check_project(project: ProjectConfig) -> ProjectReport:
    """Every problem and warning of a loaded project, all at once."""
    eval_problems, eval_warnings = eval_set_problems(project)
    return ProjectReport([*rubric_problems(project), *eval_problems, *source_problems(project),
                          *pseudonym_key_problems(project)], eval_warnings)
