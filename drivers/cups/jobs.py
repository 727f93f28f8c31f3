"""A CUPS job the printer driver follows (shared by the driver and its batcher)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from drivers.cups.ipp import PENDING


@dataclass
class Tracked:
    job_id: int
    letter_id: str
    pages: int
    sheets: int
    state: int = PENDING
    reasons: tuple[str, ...] = ()
    impressions: int = 0
    last_change: float = 0.0
    started: bool = False  # reached processing: the device may have paper out already
    stalled: bool = False
    batch: Any = None  # drivers.cups.batch.BatchJob when this job carries a batch of letters
