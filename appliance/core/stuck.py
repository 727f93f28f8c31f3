"""Which letters have stayed too long in one stage.  Pure.

Every working stage has a deadline (``PipelineSettings.stage_deadline``); a letter past it
is reported once, with its stage and age, so that nothing waits silently (a demo run once
hung with one letter ENCLOSED and no alert).  Stages where a person already decides
(held for a printer, operator hold, intake hold) were alerted when the letter entered
them and are not reported again; a letter waiting for a fetch retry is judged by its
retry time instead.
"""

from __future__ import annotations

from typing import Iterable

#: Stages already before a person (alerted on entry).
WITH_A_PERSON = frozenset({"held", "operator-hold", "intake-hold"})
#: A retry due this long ago and not started means the letter was lost by the scheduler.
RETRY_GRACE = 60.0


def overdue(records: Iterable[dict], now: float, deadline: float) -> list[tuple[str, str, float]]:
    """(id, stage, seconds in that stage) for every letter past its stage's deadline."""
    out = []
    for rec in records:
        stage = rec.get("stage")
        if stage in WITH_A_PERSON or stage in (None, "done"):
            continue
        retry_at = rec.get("intake_retry_at")
        if stage == "new" and retry_at:
            if now - retry_at > RETRY_GRACE:
                out.append((rec["id"], stage, now - retry_at))
            continue
        since = rec.get("stage_at") or rec.get("created") or now
        if now - since > deadline:
            out.append((rec["id"], stage, now - since))
    return out
