"""The two files a file-driven inserter and the appliance exchange.  Pure: bytes in, bytes out.

Both are CSV (RFC 4180: comma separated, a header line first, CR LF or LF line ends,
UTF-8), the form job/run data files and result files take on most print floors.

Run data file ``<batch>.run.csv`` - written by the appliance, one record per envelope,
in the order the printed sheets reach the feeder::

    batch,seq,letter_id,sheets,inserts,envelope,postage_class
    files1-000007,1,0a1b2c...,2,CSP14,economy-c5-whitemail,admail-economy
    files1-000007,2,0d4e5f...,1,,economy-c5,economy

``inserts`` lists insert ids separated by ``;`` (empty: none).

Result file ``<batch>.result.csv`` - written by the machine, one record per piece::

    batch,seq,letter_id,outcome,reason_code
    files1-000007,1,0a1b2c...,inserted,
    files1-000007,2,0d4e5f...,diverted,E12

``outcome`` is ``inserted`` or ``diverted``; a diverted piece names its divert code.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field

RUN_COLUMNS = ("batch", "seq", "letter_id", "sheets", "inserts", "envelope", "postage_class")
RESULT_COLUMNS = ("batch", "seq", "letter_id", "outcome", "reason_code")
OUTCOMES = ("inserted", "diverted")
MAX_LINE = 1000  # characters; a real record is under 200


@dataclass(frozen=True)
class RunRecord:
    batch: str
    seq: int
    letter_id: str
    sheets: int
    inserts: tuple[str, ...]
    envelope: str
    postage_class: str


@dataclass(frozen=True)
class ResultRecord:
    line: int  # 1-based line number in the file (the header is line 1)
    batch: str
    seq: int
    letter_id: str
    outcome: str  # as written, lower-cased; may be one the appliance does not know
    reason_code: str


@dataclass
class ParsedResults:
    records: list[ResultRecord] = field(default_factory=list)
    problems: list[tuple[int, str]] = field(default_factory=list)  # (line, what is wrong)
    fatal: str | None = None  # the whole file is unusable (bad header)


def render_run(records: list[RunRecord]) -> bytes:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow(RUN_COLUMNS)
    for r in records:
        w.writerow([r.batch, r.seq, r.letter_id, r.sheets, ";".join(r.inserts), r.envelope, r.postage_class])
    return out.getvalue().encode("utf-8")


def render_results(records: list[tuple[str, int, str, str, str]]) -> bytes:
    """(batch, seq, letter_id, outcome, reason_code) rows as a result file (simulator, tests)."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow(RESULT_COLUMNS)
    w.writerows(records)
    return out.getvalue().encode("utf-8")


def _cells(text: str) -> list[str]:
    return next(csv.reader([text]), [])


def parse_results(data: bytes) -> ParsedResults:
    """Every well-formed record and a (line, problem) for each line that is not.

    A last line without a line end is reported as cut short and not used: a machine
    that renames its file into place never leaves one, so it means a truncated file.
    """
    parsed = ParsedResults()
    lines = data.split(b"\n")
    tail = lines.pop()  # b"" when the file ends with a line end
    if data.startswith(b"\xef\xbb\xbf"):
        lines[0:1] = [lines[0][3:]] if lines else []
    if not lines:
        parsed.fatal = "cut short: no complete header line" if data.strip() else "empty file"
        return parsed
    try:
        header = [c.strip().lower() for c in _cells(lines[0].decode("utf-8").rstrip("\r"))]
    except UnicodeDecodeError:
        header = None
    if header != list(RESULT_COLUMNS):
        got = lines[0][:80].decode("utf-8", "replace").rstrip("\r")
        parsed.fatal = f"line 1: header must be {','.join(RESULT_COLUMNS)!r}, got {got!r}"
        return parsed
    for number, raw in enumerate(lines[1:], start=2):
        problem, record = _parse_line(number, raw)
        if problem:
            parsed.problems.append((number, problem))
        elif record:
            parsed.records.append(record)
    if tail.strip():
        parsed.problems.append((len(lines) + 1, "cut short: the last line has no line end (truncated file?)"))
    return parsed


def _parse_line(number: int, raw: bytes) -> tuple[str | None, ResultRecord | None]:
    if len(raw) > MAX_LINE:
        return f"line too long ({len(raw)} bytes)", None
    try:
        text = raw.decode("utf-8").rstrip("\r")
    except UnicodeDecodeError as e:
        return f"not UTF-8 text (byte {e.start + 1})", None
    if not text.strip():
        return None, None
    try:
        cells = [c.strip() for c in _cells(text)]
    except csv.Error as e:
        return f"not CSV ({e})", None
    if len(cells) != len(RESULT_COLUMNS):
        return f"{len(RESULT_COLUMNS)} columns expected, got {len(cells)}", None
    batch, seq, letter_id, outcome, code = cells
    if not batch:
        return "batch is empty", None
    if not seq.isdigit() or int(seq) < 1:
        return f"seq {seq[:20]!r} is not a positive whole number", None
    if not letter_id:
        return "letter_id is empty", None
    return None, ResultRecord(number, batch, int(seq), letter_id, outcome.lower(), code)
