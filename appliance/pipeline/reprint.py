"""Automatic reprint of spoiled pieces: diverted, damaged, or failed by the read-back.

The profile's ``[reprint]`` table says how often a letter may go back to the print queue
(``tries``, default 1; 0 = hold at once) and on which printer (``printer``, "" = any capable
one).  A spoiled piece with tries left is printed again under a new print run and its
timeline says "reprint 1/1: <reason>"; its status does not move (PRINTED again is a no-op
at the API).  With no tries left the letter is put before an operator with the reason.

Why this cannot produce a second ENCLOSED or DISPATCHED: a piece is acted on only while
its letter is at the inserter that reported it (stage "enclosing", same device) and the
report carries the letter's current print run; an ENCLOSED letter is never reprinted, and
the status model refuses ENCLOSED twice.  A late report about a spoiled print's piece
(older run) is ignored (``stale_run``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from appliance.core.errors import ConfigError

#: Device event kinds whose piece the pipeline may reprint (with action "reprint").
SPOILED_KINDS = ("piece.suspect", "piece.diverted")


@dataclass(frozen=True)
class ReprintPolicy:
    tries: int = 1  # automatic reprints per letter; 0 = never, hold at once
    printer: str = ""  # "" = any capable printer


def parse_reprint(path: Path, table: Any, printer_names: set[str]) -> ReprintPolicy:
    if table is None:
        return ReprintPolicy()
    where = f"{path}: [reprint]"
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: reprint must be a table: write [reprint] then tries = 1")
    for key in table:
        if key not in ("tries", "printer"):
            raise ConfigError(f"{where} {key}: unknown key; expected tries or printer")
    tries = table.get("tries", 1)
    if not isinstance(tries, int) or isinstance(tries, bool) or not 0 <= tries <= 10:
        raise ConfigError(f"{where} tries: expected a whole number 0-10 (0 = never reprint), got {tries!r}")
    printer = table.get("printer", "")
    if not isinstance(printer, str):
        raise ConfigError(f"{where} printer: expected a printer name or \"\", got {printer!r}")
    if printer and printer not in printer_names:
        raise ConfigError(f"{where} printer: {printer!r} is not a [[printer]] of this profile; use one of "
                          f"{', '.join(sorted(printer_names))} or \"\" for any")
    return ReprintPolicy(tries, printer)


@dataclass(frozen=True)
class Decision:
    reprint: bool
    timeline: str  # the event written in the letter's timeline (or the hold reason)


def decide(reprints_done: int, policy: ReprintPolicy, reason: str) -> Decision:
    """Pure: print again, or hold for a person?"""
    if reprints_done < policy.tries:
        n = reprints_done + 1
        return Decision(True, f"reprint {n}/{policy.tries}: {reason}")
    if policy.tries == 0:
        return Decision(False, f"{reason}; automatic reprint is off ([reprint] tries = 0)")
    return Decision(False, f"{reason}; failed again after {reprints_done} reprint(s)")


def stale_run(detail: dict[str, Any], rec: dict[str, Any]) -> bool:
    """Is this report about a piece of an earlier print run than the letter's current one?"""
    run, current = detail.get("run"), rec.get("print_run")
    return bool(run) and bool(current) and run != current


def wants_reprint(action: str | None, detail: dict[str, Any]) -> bool:
    """The event map says "reprint", or a read-back inserter marks its divert reprintable."""
    return action == "reprint" or (action == "FAILED" and bool(detail.get("reprintable")))


async def on_spoiled_piece(p, ev, rec: dict[str, Any]) -> None:
    """Reprint or hold the letter of a spoiled piece (``p`` is the running Pipeline)."""
    lid = ev.letter_id
    if rec.get("device") != ev.device or rec["stage"] not in ("enclosing", "franking") or stale_run(ev.detail, rec):
        # Late or repeated news: a piece of a spoiled print, or from a device we moved away from.
        p.store.update(lid, event=f"{ev.kind} (ignored)")
        p.counters["stale_events"] += 1
        return
    reason = ev.detail.get("reason") or f"{ev.kind} on {ev.device}"
    if rec["stage"] != "enclosing":  # the franker's divert of an ENCLOSED letter: never reprinted here
        p.audit.decided(ev, "held")
        p.operator_hold(lid, f"{reason}; already ENCLOSED, not reprinted automatically")
        return
    policy = p.profile.reprint
    d = decide(rec.get("reprints", 0), policy, reason)
    if not d.reprint:
        p.audit.decided(ev, "held")
        p.operator_hold(lid, d.timeline)
        p.publish("letter", p.letter_brief(lid))
        return
    p.audit.decided(ev, "reprinted")
    p.counters["reprints"] += 1
    p.store.update(lid, event=d.timeline, reprints=rec.get("reprints", 0) + 1, stage="verified",
                   printer=None, device=None, attempts=0, reprint_reason=reason,
                   reprint_code=ev.detail.get("reason_code") or "DEVICE_" + ev.kind.split(".")[1].upper(),
                   reprint_of=ev.detail.get("run"))
    p.alert(ev.device, d.timeline, lid)
    p.tried.pop(lid, None)
    if policy.printer:  # only the named printer: every other one counts as tried
        p.tried[lid] = {s.name for s in p.profile.printers if s.name != policy.printer}
    await p.route_any(lid)
    p.publish("letter", p.letter_brief(lid))
