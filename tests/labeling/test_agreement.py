"""flywheel.labeling.agreement: Cohen's kappa of two reviewers."""

from __future__ import annotations

import pytest

from flywheel.labeling.agreement import cohens_kappa


def test_cohens_kappa() -> None:
    assert cohens_kappa([("pass", "pass"), ("fix", "fix"), ("reject", "reject")]) == pytest.approx(1.0)
    # textbook example: 20 items, po = 0.7, pe = 0.5 -> kappa 0.4
    pairs = [("pass", "pass")] * 7 + [("fix", "fix")] * 7 + [("pass", "fix")] * 3 + [("fix", "pass")] * 3
    assert cohens_kappa(pairs) == pytest.approx(0.4)
    assert cohens_kappa([]) is None
