"""What a finishing batch may not mix, for every inserter and franker driver."""

from __future__ import annotations

from drivers.base import Work


def finishing_key(work: Work) -> tuple[str, str]:
    """The pack's envelope and its postage tariff: a batch (a serial machine's batch, a
    file inserter's run file) holds one of each, since the machine is loaded with one
    envelope and the franker applies one tariff per run."""
    return (work.pack.envelope_id or "", work.pack.postage_id or "")
