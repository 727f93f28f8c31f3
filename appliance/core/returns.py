"""Bulk status updates from the post room: stacks of returned letters, carrier tracking.

Two inputs, both checked line by line before anything is applied:

* a **returns stack** -- one scanned id per line (``--reason R01`` for the whole stack),
  or ``id,reason`` per line; blank lines and ``#`` comments are skipped;
* a **tracking CSV** from a carrier -- a header row naming at least ``letter_id`` (or
  ``id``) and ``status`` (DELIVERED or FORWARDED; RETURNED too, with a ``reason`` column
  holding R01-R10); other columns are ignored.

Bad rows are reported by line number and never sent; good rows are applied.  RETURNED
only ever carries an exact R01-R10 code and its text (``status.return_reason``), so a
wrong reason stops here, never at the API.  ``apply_rows`` works on a ``Store`` directly
(the daemon wraps it in ``Operator.bulk``); archived letters are brought back by the store.
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass
from typing import Any, Iterable

from appliance.core.status import RETURN_REASONS, Status, TransitionError, return_reason

TRACKING_STATUSES = (Status.DELIVERED.value, Status.FORWARDED.value, Status.RETURNED.value)
MAX_ID = 128


@dataclass
class Row:
    line: int
    letter_id: str
    status: str
    reason_code: str | None = None
    reason_text: str | None = None


@dataclass
class BadRow:
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass
class Parsed:
    rows: list[Row]
    bad: list[BadRow]

    def as_dict(self) -> dict[str, Any]:
        return {"rows": [asdict(r) for r in self.rows], "bad": [asdict(b) for b in self.bad]}


def _reason(text: str) -> tuple[str, str]:
    try:
        return return_reason(text)
    except TransitionError:
        raise ValueError(f"reason {text.strip()!r} is not a return reason; use one of "
                         f"{', '.join(RETURN_REASONS)}") from None


def _id_problem(letter_id: str) -> str | None:
    if not letter_id:
        return "no letter id"
    if len(letter_id) > MAX_ID or any(c.isspace() or not c.isprintable() for c in letter_id):
        return f"{letter_id[:40]!r} is not a letter id"
    return None


def check_stack_reason(reason: str | None) -> tuple[str, str] | None:
    """The stack-wide reason, checked before any line is read (ValueError: one line)."""
    return None if reason is None else _reason(reason)


def parse_returns(text: str, reason: str | None = None) -> Parsed:
    """A stack of scanned returns: ``id`` (with the stack's ``reason``) or ``id,reason``."""
    stack = check_stack_reason(reason)
    rows, bad, seen = [], [], {}
    for n, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip().lstrip("\ufeff")
        if not line or line.startswith("#"):
            continue
        parts = [p.strip() for p in (line.split(",") if "," in line else line.split(None, 1))]
        letter_id = parts[0]
        if problem := _id_problem(letter_id):
            bad.append(BadRow(n, problem))
            continue
        if len(parts) > 2:
            bad.append(BadRow(n, f"expected 'id' or 'id,reason', got {len(parts)} fields"))
            continue
        try:
            code, text_ = _reason(parts[1]) if len(parts) == 2 and parts[1] else (stack or (None, None))
        except ValueError as e:
            bad.append(BadRow(n, f"{letter_id}: {e}"))
            continue
        if code is None:
            bad.append(BadRow(n, f"{letter_id}: no reason; give --reason R01..R10 for the stack "
                                 "or write id,R01 on the line"))
            continue
        if letter_id in seen:
            bad.append(BadRow(n, f"{letter_id}: already on line {seen[letter_id]}"))
            continue
        seen[letter_id] = n
        rows.append(Row(n, letter_id, Status.RETURNED.value, code, text_))
    return Parsed(rows, bad)


def parse_tracking_csv(text: str) -> Parsed:
    """Carrier tracking results; line numbers count the header as line 1."""
    text = text.lstrip("\ufeff")
    reader = csv.reader(io.StringIO(text))
    rows, bad, seen = [], [], {}
    try:
        header = next(reader)
    except StopIteration:
        return Parsed([], [BadRow(1, "empty file; expected a header row with letter_id,status")])
    except csv.Error as e:
        return Parsed([], [BadRow(1, f"not CSV ({e})")])
    cols = [h.strip().lower() for h in header]
    id_col = next((cols.index(c) for c in ("letter_id", "id", "letterid") if c in cols), None)
    st_col = cols.index("status") if "status" in cols else None
    rs_col = next((cols.index(c) for c in ("reason", "reason_code", "reasoncode") if c in cols), None)
    if id_col is None or st_col is None:
        return Parsed([], [BadRow(1, f"header {header!r} must name letter_id and status columns")])
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as e:
            bad.append(BadRow(reader.line_num, f"not CSV ({e})"))
            continue
        n = reader.line_num
        if not any(f.strip() for f in fields):
            continue
        if len(fields) <= max(id_col, st_col):
            bad.append(BadRow(n, f"{len(fields)} field(s); the header has {len(cols)}"))
            continue
        letter_id, status = fields[id_col].strip(), fields[st_col].strip().upper()
        if problem := _id_problem(letter_id):
            bad.append(BadRow(n, problem))
            continue
        if status not in TRACKING_STATUSES:
            bad.append(BadRow(n, f"{letter_id}: status {fields[st_col].strip()!r} is not one of "
                                 f"{', '.join(TRACKING_STATUSES)}"))
            continue
        code = text_ = None
        if status == Status.RETURNED:
            given = fields[rs_col].strip() if rs_col is not None and rs_col < len(fields) else ""
            try:
                code, text_ = _reason(given) if given else (None, None)
            except ValueError as e:
                bad.append(BadRow(n, f"{letter_id}: {e}"))
                continue
            if code is None:
                bad.append(BadRow(n, f"{letter_id}: RETURNED needs a reason column with R01..R10"))
                continue
        if letter_id in seen:
            bad.append(BadRow(n, f"{letter_id}: already on line {seen[letter_id]}"))
            continue
        seen[letter_id] = n
        rows.append(Row(n, letter_id, status, code, text_))
    return Parsed(rows, bad)


def row_from_dict(d: dict[str, Any]) -> Row:
    """Rebuild a row sent over the control socket, re-checking it (never trust the wire)."""
    row = Row(int(d.get("line") or 0), str(d.get("letter_id") or ""), str(d.get("status") or "").upper(),
              d.get("reason_code"), d.get("reason_text"))
    if problem := _id_problem(row.letter_id):
        raise ValueError(problem)
    if row.status not in TRACKING_STATUSES:
        raise ValueError(f"status {row.status!r} is not one of {', '.join(TRACKING_STATUSES)}")
    if row.status == Status.RETURNED:
        row.reason_code, row.reason_text = _reason(row.reason_code or "")
    else:
        row.reason_code = row.reason_text = None
    return row


def apply_rows(store, rows: Iterable[Row]) -> list[dict[str, Any]]:
    """Set each row's status in the store; one result per row (ok or the reason it was not).

    The caller makes the store durable afterwards (one flush for the whole stack).
    """
    results = []
    for row in rows:
        out = {"line": row.line, "letter_id": row.letter_id, "status": row.status, "ok": False}
        rec = store.get(row.letter_id)
        if rec is None:
            out["message"] = f"line {row.line}: {row.letter_id} is not known to this appliance"
        else:
            event = "bulk return" if row.status == Status.RETURNED else "tracking import"
            try:
                changed = store.set_status(row.letter_id, row.status, row.reason_code, row.reason_text,
                                           event=event)
            except TransitionError as e:
                out["message"] = f"line {row.line}: {row.letter_id}: {e}"
            else:
                out["ok"] = True
                what = f"{row.status} {row.reason_code}" if row.reason_code else row.status
                out["message"] = (f"{row.letter_id} {what}" if changed
                                  else f"{row.letter_id} already {row.status}")
        results.append(out)
    return results


def summary(parsed_bad: list[BadRow], results: list[dict[str, Any]]) -> tuple[list[str], int]:
    """Report lines for a person, and the exit code (0 only if every line was applied)."""
    lines = [r["message"] for r in results if r["ok"]]
    refused = [r["message"] for r in results if not r["ok"]]
    problems = sorted([(b.line, str(b)) for b in parsed_bad] +
                      [(r["line"], r["message"]) for r in results if not r["ok"]])
    lines += [f"NOT APPLIED {text}" for _, text in problems]
    ok = sum(1 for r in results if r["ok"])
    lines.append(f"{ok} applied, {len(parsed_bad) + len(refused)} not applied")
    return lines, (0 if not problems else 1)
