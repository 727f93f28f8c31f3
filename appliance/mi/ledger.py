"""Submitting a day's MI so that no line is ever sent twice.

The ledger (``<state_dir>/mi/ledger.json``, replaced atomically: temp file, fsync,
``os.replace``, fsync of the directory) holds one entry per POST /mi this appliance has
made or was about to make::

    intent     written *before* the POST; the appliance may have died during it
    posted     the API answered 201 and its MI id is recorded
    verified   GET /mi/{id} read back the same line
    mismatch   GET /mi/{id} read back something else (an alert; never re-sent)
    uncertain  the POST may or may not have created a record (died mid-request, timeout,
               5xx): never re-sent automatically -- see ``resolve``
    refused    the API refused it (4xx): nothing was created; sent again on the next run
    abandoned  an operator confirmed an uncertain line never reached Notify

A line's quantity already submitted is the sum over its entries that are not refused or
abandoned.  ``submit`` sends only what is missing (later events for a day already sent go
as an extra entry with the next ``seq``), so reruns and crashes never count a unit twice.

Residual risk, stated plainly: the API takes no client-chosen key and cannot list MI
records, so a POST that died without an answer cannot be matched automatically.  Such a
line is held as *uncertain* -- possibly missing, never doubled -- until a person checks
with Notify and runs ``appliance mi resolve``.  The client used here makes exactly one
attempt per POST (no transparent retries), so a lost answer is never re-sent on its own.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from appliance.api.client import ApiError
from appliance.core.errors import RateLimited, SubmissionBusy, UserError
from appliance.mi.journal import DayReport, MiLine
from appliance.store.storage import atomic_write_bytes

log = logging.getLogger("appliance.mi.journal")

COUNTED_STATES = frozenset({"intent", "posted", "verified", "mismatch", "uncertain"})
ATTRIBUTES = {"lineItem": "line_item", "timestamp": "timestamp", "quantity": "quantity",
              "specificationId": "specification_id", "groupId": "group_id",
              "stockRemaining": "stock_remaining"}


class Ledger:
    def __init__(self, directory: Path, clock=time.time):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path = self.dir / "ledger.json"
        self.clock = clock
        self.entries: list[dict[str, Any]] = self._read()

    def _read(self) -> list[dict[str, Any]]:
        try:
            doc = json.loads(self.path.read_text())
        except FileNotFoundError:
            return []
        except ValueError:
            raise UserError(f"{self.path} is not readable JSON; restore it from {self.path.name}.bak "
                            "or a backup before submitting MI (refusing, to avoid sending twice)") from None
        return list(doc.get("entries", []))

    def save(self) -> None:
        doc = {"schema": 1, "entries": self.entries}
        atomic_write_bytes(self.path, json.dumps(doc, indent=1).encode())

    def for_day(self, day: str) -> list[dict[str, Any]]:
        return [e for e in self.entries if e["day"] == day]

    def submitted(self, line_key: str) -> int:
        return sum(e["quantity"] for e in self.entries
                   if e["line"] == line_key and e["state"] in COUNTED_STATES)

    def find(self, entry_key: str) -> dict[str, Any]:
        for e in self.entries:
            if e["key"] == entry_key:
                return e
        raise UserError(f"no MI entry {entry_key!r}; see 'appliance mi preview --date DAY' for the keys")

    def add_intent(self, line: MiLine, quantity: int) -> dict[str, Any]:
        seq = 1 + max((e["seq"] for e in self.entries if e["line"] == line.key), default=0)
        now = round(self.clock(), 3)
        entry = {"key": f"{line.key}#{seq}", "line": line.key, "seq": seq, "day": line.day,
                 "line_item": line.line_item, "specification_id": line.specification_id,
                 "group_id": line.group_id, "quantity": quantity,
                 "stock_remaining": line.stock_remaining, "timestamp": line.timestamp,
                 "state": "intent", "mi_id": None, "error": None, "created": now, "updated": now}
        self.entries.append(entry)
        self.save()  # durable before the POST: a crash now leaves evidence, never silence
        return entry

    def set(self, entry: dict[str, Any], state: str, **fields: Any) -> None:
        entry.update(state=state, updated=round(self.clock(), 3), **fields)
        self.save()


@dataclass
class SubmitResult:
    day: str
    sent: list[dict] = field(default_factory=list)
    verified: list[dict] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # one line each: what was not sent and why
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"day": self.day, "sent": self.sent, "verified": self.verified,
                "skipped": self.skipped, "problems": self.problems}


class lock_submissions:
    """flock on ``mi/submit.lock``: one submitter at a time (daemon or CLI)."""

    def __init__(self, directory: Path):
        self.path = Path(directory) / "submit.lock"

    def __enter__(self):
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            raise SubmissionBusy("another MI submission is running (daemon or CLI); wait for it "
                                 "and run the command again") from None
        return self

    def __exit__(self, *exc):
        os.close(self.fd)


def _expected(entry: dict[str, Any]) -> dict[str, Any]:
    return {api: entry[ours] for api, ours in ATTRIBUTES.items() if entry.get(ours) is not None}


async def verify(client, ledger: Ledger, entry: dict[str, Any]) -> str:
    """GET /mi/{id} and compare with what was sent; the entry's new state."""
    record = await client.get_mi(entry["mi_id"])
    got = record.get("attributes", record) if isinstance(record, dict) else {}
    want = _expected(entry)
    diff = {k: (v, got.get(k)) for k, v in want.items() if got.get(k) != v}
    if diff:
        ledger.set(entry, "mismatch", error=f"GET /mi/{entry['mi_id']} differs: {diff}")
        return "mismatch"
    ledger.set(entry, "verified", error=None)
    return "verified"


async def submit_day(client, ledger: Ledger, report: DayReport, *, allow_default_names: bool = False
                     ) -> SubmitResult:
    """Send what is missing for one day and verify every line sent.  Caller holds the lock."""
    res = SubmitResult(report.day)
    for entry in ledger.entries:  # a previous run died between intent and answer
        if entry["state"] == "intent":
            ledger.set(entry, "uncertain", error="the appliance stopped while posting; "
                                                 "it may or may not have reached Notify")
    for line in report.lines:
        missing = line.quantity - ledger.submitted(line.key)
        if missing <= 0:
            continue
        if not (line.named or allow_default_names):
            res.skipped.append(f"{line.key}: line item {line.line_item!r} is a default name; "
                               "name it in the profile's [mi] table (or allow_default_names)")
            continue
        entry = ledger.add_intent(line, missing)
        try:
            created = await client.post_mi(line.line_item, line.timestamp, missing,
                                           specification_id=line.specification_id,
                                           group_id=line.group_id,
                                           stock_remaining=line.stock_remaining)
        except RateLimited as e:  # 429: not processed; drop the intent, try again later
            ledger.entries.remove(entry)
            ledger.save()
            res.problems.append(f"rate limited by the API ({e}); run the submission again later")
            break
        except ApiError as e:
            if 400 <= e.status < 500:
                ledger.set(entry, "refused", error=str(e)[:300])
                res.problems.append(f"{entry['key']}: refused by the API: {str(e)[:200]}")
            else:
                ledger.set(entry, "uncertain", error=str(e)[:300])
                res.problems.append(f"{entry['key']}: uncertain ({e}); not re-sent, see 'appliance mi resolve'")
            continue
        except UserError as e:  # unreachable or timed out: the request may have been processed
            ledger.set(entry, "uncertain", error=str(e)[:300])
            res.problems.append(f"{entry['key']}: uncertain ({e}); not re-sent, see 'appliance mi resolve'")
            continue
        ledger.set(entry, "posted", mi_id=created["id"])
        res.sent.append({"key": entry["key"], "mi_id": created["id"], "quantity": missing})
    for entry in ledger.for_day(report.day):
        if entry["state"] == "posted":
            try:
                state = await verify(client, ledger, entry)
            except (ApiError, UserError) as e:
                res.problems.append(f"{entry['key']}: could not verify {entry['mi_id']} yet ({e})")
                continue
            if state == "verified":
                res.verified.append({"key": entry["key"], "mi_id": entry["mi_id"]})
            else:
                res.problems.append(f"{entry['key']}: {entry['error']}")
    for entry in ledger.for_day(report.day):
        if entry["state"] == "uncertain":
            res.skipped.append(f"{entry['key']}: uncertain, not re-sent; resolve with "
                               f"'appliance mi resolve {entry['key']} --mi-id ID | --not-sent'")
    return res


async def resolve(client, ledger: Ledger, entry_key: str, *, mi_id: str | None, not_sent: bool) -> str:
    """An operator settles an uncertain entry: Notify has it (``mi_id``), or never got it."""
    entry = ledger.find(entry_key)
    if entry["state"] not in ("uncertain", "intent"):
        raise UserError(f"{entry_key} is {entry['state']}, not uncertain; nothing to resolve")
    if bool(mi_id) == bool(not_sent):
        raise UserError("say either --mi-id ID (Notify has the line) or --not-sent (it never arrived)")
    if not_sent:
        ledger.set(entry, "abandoned", error="operator confirmed it never reached Notify")
        return f"{entry_key} abandoned: the next submission sends that quantity again"
    ledger.set(entry, "posted", mi_id=mi_id)
    state = await verify(client, ledger, entry)
    return f"{entry_key} is {state} as MI {mi_id}" + (f": {entry['error']}" if state != "verified" else "")


def ledger_view(ledger: Ledger, report: DayReport) -> list[dict[str, Any]]:
    """The day's lines with what has been submitted, for previews and exports."""
    rows = []
    for line in report.lines:
        entries = [e for e in ledger.entries if e["line"] == line.key]
        submitted = ledger.submitted(line.key)
        rows.append({**line.as_dict(), "submitted": submitted,
                     "to_submit": max(0, line.quantity - submitted),
                     "entries": [{k: e[k] for k in ("key", "seq", "state", "mi_id", "quantity", "error")}
                                 for e in entries]})
    return rows
