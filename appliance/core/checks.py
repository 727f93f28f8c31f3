"""What ``appliance doctor`` (and each device family's own checks) report: one line each."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Check:
    ok: bool
    subject: str  # what was checked, e.g. "printer mono-duplex"
    message: str  # what was found; for a failure, also the fix
