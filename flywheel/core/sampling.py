"""Seeded sampling: the one way a stage takes a reproducible sample of rows or texts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def seeded_sample(items: Sequence[Any], size: int, seed: int) -> list[Any]:
    """At most `size` items, drawn without replacement with a fixed seed, in their original order."""
    if len(items) <= size:
        return list(items)
    idx = np.sort(np.random.default_rng(seed).choice(len(items), size=size, replace=False))
    return [items[i] for i in idx]
