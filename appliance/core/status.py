"""The Notify letter status model: statuses, forward transitions, reason codes.

Pure: no I/O.  Everything that decides "may this letter move to that status" lives here so
that the pipeline, the store, the CLI and the sandbox all agree.
"""

from __future__ import annotations

from enum import StrEnum

from appliance.core.errors import TransitionError


class Status(StrEnum):
    PENDING = "PENDING"
    ACCEPTED = "ACCEPTED"
    REJECTED = "REJECTED"
    PRINTED = "PRINTED"
    ENCLOSED = "ENCLOSED"
    CANCELLED = "CANCELLED"
    DISPATCHED = "DISPATCHED"
    DELIVERED = "DELIVERED"
    FAILED = "FAILED"
    RETURNED = "RETURNED"
    FORWARDED = "FORWARDED"


ALL_STATUSES = frozenset(s.value for s in Status)

#: Statuses a supplier may send (the API refuses PENDING).
SETTABLE = ALL_STATUSES - {Status.PENDING}

#: Allowed forward moves.  Anything not listed is refused (statuses never go backwards).
TRANSITIONS: dict[str, frozenset[str]] = {
    Status.PENDING: frozenset({Status.ACCEPTED, Status.REJECTED, Status.CANCELLED}),
    Status.ACCEPTED: frozenset({Status.PRINTED, Status.FAILED, Status.CANCELLED}),
    Status.PRINTED: frozenset({Status.ENCLOSED, Status.FAILED, Status.CANCELLED}),
    Status.ENCLOSED: frozenset({Status.DISPATCHED, Status.FAILED}),
    Status.DISPATCHED: frozenset(
        {Status.DELIVERED, Status.FORWARDED, Status.RETURNED, Status.FAILED}
    ),
    Status.FORWARDED: frozenset({Status.DELIVERED, Status.RETURNED}),
    Status.DELIVERED: frozenset({Status.RETURNED}),
    Status.REJECTED: frozenset(),
    Status.CANCELLED: frozenset(),
    Status.FAILED: frozenset(),
    Status.RETURNED: frozenset(),
}

#: Statuses after which the appliance has nothing left to do for a letter.
FINAL = frozenset(
    {Status.REJECTED, Status.CANCELLED, Status.FAILED, Status.RETURNED, Status.DISPATCHED,
     Status.DELIVERED, Status.FORWARDED}
)

#: Statuses that must carry a reasonCode and reasonText.
NEEDS_REASON = frozenset({Status.REJECTED, Status.FAILED, Status.RETURNED, Status.CANCELLED})

#: The fixed list of return reasons (RETURNED needs one of these, code and text exactly).
RETURN_REASONS: dict[str, str] = {
    "R01": "Addressee gone away",
    "R02": "Address incomplete",
    "R03": "Address inaccessible",
    "R04": "Addressee unknown",
    "R05": "Addressee gone away/Refused",
    "R06": "Not called for",
    "R07": "No such address",
    "R08": "No reason given",
    "R09": "Deceased",
    "R10": "Miscellaneous",
}

#: Reasons the appliance itself gives when it rejects or fails a letter.
REJECT_REASONS: dict[str, str] = {
    "HASH_MISMATCH": "PDF sha256 does not match the listed sha256Hash",
    "PDF_UNREADABLE": "PDF could not be parsed",
    "PDF_EMPTY": "PDF has no pages",
    "TOO_MANY_SHEETS": "PDF has more sheets than the pack specification allows",
    "TOO_MANY_SIDES": "PDF has more sides than the pack specification allows",
    "UNKNOWN_SPECIFICATION": "specificationId is not a pack this supplier knows",
    "DOWNLOAD_FAILED": "PDF could not be downloaded",
    "TOO_LARGE": "PDF is larger than the configured size cap",
    "PAGE_SIZE_MISMATCH": "a page is not the pack specification's paper size",
    "BAD_ROTATION": "a page is rotated by an angle that is not a multiple of 90 degrees",
    "ACTIVE_CONTENT": "PDF carries active content (JavaScript, launch actions, embedded files, "
                      "rich media or XFA)",
    "PDF_TOO_COMPLEX": "PDF is over the appliance's complexity budget for one letter",
    "COVERAGE_EXCEEDED": "a page has more ink coverage than the pack specification allows",
    "TOO_HEAVY": "the mailpiece would weigh more than the pack's postage allows",
    "TOO_THICK": "the mailpiece would be thicker than the pack's postage allows",
}


def check_transition(current: str, new: str) -> bool:
    """True if ``current -> new`` is a real move, False if it is a no-op (same status).

    Raises TransitionError for a backwards or unknown move.
    """
    if new not in ALL_STATUSES:
        raise TransitionError(f"unknown status {new!r}")
    if current == new:
        return False
    if new not in TRANSITIONS.get(current, frozenset()):
        raise TransitionError(f"cannot move a letter from {current} to {new}")
    return True


def validate_reason(status: str, code: str | None, text: str | None) -> None:
    """Refuse a reason the API would refuse (RETURNED needs an exact R01-R10 pair)."""
    if status == Status.RETURNED:
        if code not in RETURN_REASONS:
            raise TransitionError(
                f"RETURNED needs a reason code R01-R10, got {code!r}"
            )
        if text is not None and text != RETURN_REASONS[code]:
            raise TransitionError(
                f"reason text for {code} must be {RETURN_REASONS[code]!r}, got {text!r}"
            )


def return_reason(code: str) -> tuple[str, str]:
    """(code, text) for a return reason, normalising case; TransitionError if unknown."""
    c = code.strip().upper()
    if c not in RETURN_REASONS:
        raise TransitionError(
            f"unknown return reason {code!r}: use one of {', '.join(RETURN_REASONS)}"
        )
    return c, RETURN_REASONS[c]


def reached(current: str, status: str) -> bool:
    """Has a letter now at ``current`` already been through ``status`` (or is at it)?

    Used after a restart: an update the API may or may not have received is dropped when
    the API's status shows the letter is already there or beyond, so a replay never moves
    a letter backwards at the API."""
    seen, todo = set(), [status]
    while todo:
        s = todo.pop()
        if s == current:
            return True
        if s not in seen:
            seen.add(s)
            todo.extend(TRANSITIONS.get(s, ()))
    return False


def is_final(status: str) -> bool:
    return status in FINAL


# --- device events -> statuses ---------------------------------------------------------

#: Normalised device event kinds (drivers emit these; see drivers/base.py).
EVENT_KINDS = (
    "job.queued", "job.processing", "job.held", "job.stopped", "job.completed",
    "job.aborted", "job.canceled", "piece.inserted", "piece.diverted", "piece.franked",
    "tray.complete", "piece.unknown", "piece.suspect",
)

#: Default mapping from device event kind to the Notify status it proves.  A hardware
#: profile may override entries in its ``[events]`` table.  The value ``"reroute"``
#: means "no status: give the letter to another capable printer"; ``"reprint"`` "print
#: it again, within the profile's [reprint] tries, else hold it for an operator".
DEFAULT_EVENT_MAP: dict[str, str | None] = {
    "job.queued": None,
    "job.processing": None,
    "job.held": None,
    "job.stopped": None,
    "job.completed": Status.PRINTED,
    "job.aborted": "reroute",
    "job.canceled": "reroute",
    "piece.inserted": Status.ENCLOSED,
    "piece.diverted": Status.FAILED,
    "piece.franked": Status.DISPATCHED,
    "tray.complete": Status.DISPATCHED,
    # The device lost track of a piece (link dropped mid-batch): an operator decides.
    "piece.unknown": "hold",
    # The read-back found the envelope wrong (missing/foreign/double sheet, pulled by hand):
    # print the letter again (appliance.core.reprint; the profile's [reprint] bounds it).
    "piece.suspect": "reprint",
}


def status_for_event(kind: str, mapping: dict[str, str | None] | None = None) -> str | None:
    """The status (or action such as ``"reroute"``) a device event maps to, or None."""
    table = DEFAULT_EVENT_MAP if mapping is None else {**DEFAULT_EVENT_MAP, **mapping}
    if kind not in table:
        raise KeyError(f"unknown device event kind {kind!r}")
    return table[kind]
