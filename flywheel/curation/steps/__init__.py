"""The curation steps, one module each, and the order `curate` runs them in.

0. admission        synthetic / distilled files train only once their reviewed sample passes; its verdicts apply
1. format           canonical ChatML; the configured system prompt (mismatch dropped, missing prepended)
1b. conflict_verdicts reviewers' verdicts on earlier conflicts (pass keeps both, fix replaces both, reject)
2. rubric           the answer format (a break drops); rubric proxies (2+ failed drop, 1 flags)
3. dedup            exact duplicates and near-duplicate inputs whose answers agree
4. conflicts        near-same inputs whose answers disagree: kept the most trusted, the rest for review
4b. mislabel        an input paired with another answer class's answer (confident learning): drop or flag
5. decontamination  no shared n-gram or near-duplicate input with the fixed eval set
6. balance          real:synthetic ratio, self-generated share, generator-share warning
7. size             floor, target and ceiling (reported)
"""

from __future__ import annotations

from collections.abc import Callable

from flywheel.curation.context import Step
from flywheel.curation.steps.admission import AdmissionStep
from flywheel.curation.steps.balance import BalanceStep
from flywheel.curation.steps.conflict_verdicts import ConflictVerdictStep
from flywheel.curation.steps.conflicts import ConflictStep
from flywheel.curation.steps.decontamination import DecontaminationStep
from flywheel.curation.steps.dedup import DedupStep
from flywheel.curation.steps.format import FormatStep
from flywheel.curation.steps.mislabel import MislabelStep
from flywheel.curation.steps.rubric import RubricStep
from flywheel.curation.steps.size import SizeStep

DEFAULT_STEPS: tuple[Callable[[], Step], ...] = (AdmissionStep, FormatStep, ConflictVerdictStep, RubricStep, DedupStep,
                                                  ConflictStep, MislabelStep, DecontaminationStep, BalanceStep, SizeStep)

__all__ = ["DEFAULT_STEPS", "AdmissionStep", "BalanceStep", "ConflictStep", "ConflictVerdictStep", "DecontaminationStep",
           "DedupStep", "FormatStep", "MislabelStep", "RubricStep", "SizeStep", "Step"]
