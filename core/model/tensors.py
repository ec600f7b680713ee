"""A tensor's values beside its `TensorNode`: statistics and the first elements.

Computed in the kernel, where the tensor lives; only capped previews travel, as
numpy buffers. The limits below are the only ones: every run sends up to
VALUES_LIMIT elements of a tensor and of each gradient, and statistics of tensors
up to STATS_LIMIT elements (bigger ones on request, when the inspector asks).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

VALUES_LIMIT = 256
STATS_LIMIT = 1 << 16


@dataclass
class Stats:
    min: float | None = None
    max: float | None = None
    mean: float | None = None
    std: float | None = None
    nan: int = 0
    inf: int = 0


@dataclass
class TensorValues:
    numel: int
    stats: Stats | None  # None: not computed yet (a big tensor; see STATS_LIMIT)
    preview: np.ndarray | None = None  # flat, first VALUES_LIMIT elements
    grad_stats: Stats | None = None
    grad_preview: np.ndarray | None = None
    shares_storage_with: list[str] = field(default_factory=list)
