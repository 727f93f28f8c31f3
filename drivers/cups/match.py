"""Restart reconciliation, pure: which CUPS job (matched by ``job-name``) speaks for which letter."""

from __future__ import annotations

from dataclasses import dataclass

from appliance.core.errors import NamesHidden
from drivers.cups.ipp import COMPLETED, FINAL_STATES, job_event, reasons_of


@dataclass(frozen=True)
class StillActive:
    job_id: int
    letter_id: str
    state: int
    reasons: tuple[str, ...]
    impressions: int


def on_queue(attrs: dict, queue: str) -> bool:
    return str(attrs.get("job-printer-uri", "")).rstrip("/").endswith(f"/printers/{queue}")


def is_incomplete(attrs: dict) -> bool:
    """A job created but whose document never arrived: the appliance died in the middle of
    submitting it.  CUPS holds it ("job-incoming", no documents) for ever; it prints nothing."""
    return (attrs.get("job-state") not in FINAL_STATES and attrs.get("number-of-documents", 1) == 0
            and "job-incoming" in reasons_of(attrs.get("job-state-reasons")))


def incomplete_jobs(jobs: dict, queue: str) -> list[int]:
    """Ids of this queue's jobs whose submission never finished (see ``is_incomplete``)."""
    return sorted(int(jid) for jid, a in jobs.items() if on_queue(a, queue) and is_incomplete(a))


def match_jobs(jobs: dict, queue: str, letter_ids: list[str]) -> tuple[dict[str, str], list[StillActive]]:
    """letter id -> event kind, plus the jobs still in CUPS that must be followed again.

    Any successful completion wins (the letter is printed); else the newest job still in
    CUPS; else the newest job's end (aborted/cancelled: reroute).  No job at all: absent.
    """
    ours = sorted((int(jid), a) for jid, a in jobs.items() if on_queue(a, queue))
    if any("job-name" not in a for _, a in ours):
        raise NamesHidden(queue)
    by_name: dict[str, list[tuple[int, int, tuple[str, ...], dict]]] = {}
    for jid, a in ours:
        if is_incomplete(a):
            continue  # never printed, never will: as if it did not exist (the driver cancels it)
        by_name.setdefault(a["job-name"], []).append(
            (jid, a.get("job-state", 0), reasons_of(a.get("job-state-reasons")), a))
    found: dict[str, str] = {}
    active_jobs: list[StillActive] = []
    for lid in letter_ids:
        states = by_name.get(lid, [])
        if not states:
            found[lid] = "absent"
            continue
        done = [s for s in states if s[1] == COMPLETED and job_event(s[1], s[2]) == "job.completed"]
        active = [s for s in states if s[1] not in FINAL_STATES]
        if done:
            found[lid] = "job.completed"
        elif active:
            jid, state, reasons, a = active[-1]
            active_jobs.append(StillActive(jid, lid, state, reasons, a.get("job-impressions-completed", 0)))
            found[lid] = job_event(state, reasons) or "job.queued"
        else:
            _, state, reasons, _ = states[-1]
            found[lid] = job_event(state, reasons) or "job.aborted"
    return found, active_jobs
