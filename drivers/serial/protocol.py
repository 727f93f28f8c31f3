"""Serial protocol engine, configured by a protocol TOML file: pure, no I/O.

A protocol file describes one family of machines: serial line settings, framing (text lines,
or STX/ETX frames with a checksum), the command templates the appliance sends and the
regular expressions that turn what the device says into device events.  An engineer adds a
new machine by writing such a file; nothing here knows any vendor.

Every mistake in a file is one ConfigError line naming the file, the key and the fix.
"""

# Size: the whole TOML-driven protocol engine (pure, no I/O: framing, checksums, messages,
# validation with one-line errors), like Klipper's msgproto.py.

from __future__ import annotations

import re
import string
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from appliance.core.errors import ConfigError
from appliance.core.tables import typed_table

# --- checksums -------------------------------------------------------------------------


def xor8(data: bytes) -> int:
    """Block check character: XOR of every byte (the classic "LRC" of STX/ETX protocols)."""
    out = 0
    for b in data:
        out ^= b
    return out


def lrc8(data: bytes) -> int:
    """Two's complement of the byte sum (the Modbus-ASCII style LRC)."""
    return (-sum(data)) & 0xFF


def _crc16(data: bytes, poly: int, init: int, reflected: bool) -> int:
    crc = init
    for b in data:
        if reflected:
            crc ^= b
            for _ in range(8):
                crc = (crc >> 1) ^ poly if crc & 1 else crc >> 1
        else:
            crc ^= b << 8
            for _ in range(8):
                crc = ((crc << 1) ^ poly) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


CHECKSUMS: dict[str, tuple[int, Any]] = {  # name -> (width in bytes, function)
    "none": (0, lambda d: 0),
    "xor8": (1, xor8),
    "lrc8": (1, lrc8),
    "crc16-ccitt": (2, lambda d: _crc16(d, 0x1021, 0xFFFF, False)),  # CRC-16/CCITT-FALSE
    "crc16-xmodem": (2, lambda d: _crc16(d, 0x1021, 0x0000, False)),
    "crc16-modbus": (2, lambda d: _crc16(d, 0xA001, 0xFFFF, True)),
    "crc16-arc": (2, lambda d: _crc16(d, 0xA001, 0x0000, True)),
}
CHECKSUM_ENCODINGS = ("hex", "binary-be", "binary-le")
CHECKSUM_SPANS = ("body", "body+etx", "stx+body+etx")

# --- frames ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Frame:
    """One unit received from the device: text when good, else ``error`` says why not."""

    text: str | None
    error: str | None = None
    raw: bytes = b""

    @property
    def ok(self) -> bool:
        return self.error is None


class LineFramer:
    """ASCII lines.  Any CR or LF ends a line; empty lines are skipped.  Bytes that are not
    printable in the encoding (line noise) are dropped and counted, never guessed at."""

    def __init__(self, terminator: bytes, encoding: str, max_length: int):
        self.terminator = terminator
        self.encoding = encoding
        self.max_length = max_length
        self.garbage_bytes = 0
        self._buf = bytearray()
        self._overlong = False

    def reset(self) -> None:
        self._buf.clear()
        self._overlong = False

    def encode(self, text: str) -> bytes:
        return text.encode(self.encoding) + self.terminator

    def feed(self, data: bytes) -> list[Frame]:
        out: list[Frame] = []
        for b in data:
            if b in (0x0A, 0x0D):
                if self._overlong:
                    out.append(Frame(None, "line too long", bytes(self._buf)))
                elif self._buf:
                    raw = bytes(self._buf)
                    try:
                        out.append(Frame(raw.decode(self.encoding), None, raw))
                    except UnicodeDecodeError:
                        out.append(Frame(None, "undecodable line", raw))
                self.reset()
            elif b == 0x09 or 0x20 <= b < 0x7F or (b >= 0x80 and self.encoding != "ascii"):
                if len(self._buf) >= self.max_length:
                    self._overlong = True
                else:
                    self._buf.append(b)
            else:
                self.garbage_bytes += 1
        return out


class StxEtxFramer:
    """``STX body ETX checksum``.  Bytes outside a frame are garbage; a new STX inside a
    frame abandons the partial one (the device restarted its message)."""

    def __init__(self, stx: int, etx: int, checksum: str, span: str, encoding: str, cs_encoding: str,
                 max_length: int, control: dict[int, str] | None = None):
        self.stx, self.etx = stx, etx
        self.checksum_name = checksum
        width, self._fn = CHECKSUMS[checksum]
        self.cs_len = width * 2 if cs_encoding == "hex" else width
        self.width = width
        self.span = span
        self.encoding = encoding
        self.cs_encoding = cs_encoding
        self.max_length = max_length
        self.control = control or {}  # single bytes outside frames with a meaning (ACK/NAK)
        self.garbage_bytes = 0
        self._state = "hunt"
        self._body = bytearray()
        self._cs = bytearray()

    def reset(self) -> None:
        self._state = "hunt"
        self._body.clear()
        self._cs.clear()

    def checksum(self, body: bytes) -> bytes:
        covered = {"body": body, "body+etx": body + bytes([self.etx]),
                   "stx+body+etx": bytes([self.stx]) + body + bytes([self.etx])}[self.span]
        value = self._fn(covered)
        if not self.width:
            return b""
        if self.cs_encoding == "hex":
            return f"{value:0{self.width * 2}X}".encode("ascii")
        return value.to_bytes(self.width, "big" if self.cs_encoding == "binary-be" else "little")

    def encode(self, text: str) -> bytes:
        body = text.encode(self.encoding)
        return bytes([self.stx]) + body + bytes([self.etx]) + self.checksum(body)

    def _finish(self) -> Frame:
        body, got = bytes(self._body), bytes(self._cs)
        raw = bytes([self.stx]) + body + bytes([self.etx]) + got
        self.reset()
        if self.cs_encoding == "hex":
            got = got.upper()
        if got != self.checksum(body):
            return Frame(None, "bad checksum", raw)
        try:
            return Frame(body.decode(self.encoding), None, raw)
        except UnicodeDecodeError:
            return Frame(None, "undecodable frame", raw)

    def feed(self, data: bytes) -> list[Frame]:
        out: list[Frame] = []
        for b in data:
            if self._state == "hunt":
                if b == self.stx:
                    self._state = "body"
                elif b in self.control:
                    out.append(Frame(None, self.control[b], bytes([b])))
                else:
                    self.garbage_bytes += 1
            elif self._state == "body":
                if b == self.stx:  # partial frame abandoned
                    self.garbage_bytes += len(self._body) + 1
                    self._body.clear()
                elif b == self.etx:
                    self._state = "check"
                    if not self.cs_len:
                        out.append(self._finish())
                elif len(self._body) >= self.max_length:
                    out.append(Frame(None, "frame too long", bytes(self._body)))
                    self.reset()
                else:
                    self._body.append(b)
            else:
                self._cs.append(b)
                if len(self._cs) == self.cs_len:
                    out.append(self._finish())
        return out


# --- the protocol file -----------------------------------------------------------------

#: Device messages a protocol can map, and the named groups each one understands.
EVENTS: dict[str, set[str]] = {
    "inserted": {"batch", "seq", "id"},
    "diverted": {"batch", "seq", "id", "code", "reason"},
    "franked": {"batch", "seq", "id", "value", "class"},
    "read": {"batch", "seq", "mark"},  # a camera read one sheet of a piece (see appliance.core.readback)
    "tray": {"tray", "count", "batch"},
    "jam": {"where", "code"},
    "stock": {"item", "count"},
    "error": {"code", "text"},
    "heartbeat": set(),
    "status": {"state", "batch", "count"},  # further numeric groups become counters
    "ready": set(),
    "ignore": set(),  # recognised chatter (acks, banners): counted as good, no action
}
PIECE_EVENTS = {"inserted", "diverted", "franked"}
#: Fields a command template may use.
TEMPLATE_FIELDS = {"batch", "seq", "letter_id", "sheets", "pages", "envelope", "inserts", "postage", "run"}
_SAMPLE = {"batch": 1, "seq": 1, "letter_id": "LETTER-1", "sheets": 1, "pages": 2, "envelope": "env",
           "inserts": "", "postage": "1ST", "run": 0}
COMMANDS = ("hello", "status", "start_batch", "expect_piece", "end_batch", "pause", "resume")
DEVICE_STATES = ("idle", "busy", "paused", "stopped")
PARITIES = {"none": "N", "even": "E", "odd": "O", "mark": "M", "space": "S"}
FLOWS = ("none", "rtscts", "xonxoff", "dsrdtr")
TIMING = {"reply_timeout": 1.0, "heartbeat_timeout": 5.0, "piece_timeout": 60.0, "batch_idle": 1.0}


@dataclass(frozen=True)
class EventRule:
    on: str
    pattern: re.Pattern
    fields: dict[str, str]  # constants for groups the pattern does not capture


@dataclass(frozen=True)
class Match:
    on: str
    groups: dict[str, str]


@dataclass(frozen=True)
class Protocol:
    name: str
    family: str
    source: Path
    identify: str
    serial: dict[str, Any]
    framing: dict[str, Any]
    timing: dict[str, float]
    commands: dict[str, str]
    events: tuple[EventRule, ...]
    reasons: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    states: dict[str, str] = field(default_factory=dict)
    stock_low: int = 0

    def framer(self) -> LineFramer | StxEtxFramer:
        f = self.framing
        if f["kind"] == "line":
            return LineFramer(f["terminator"].encode(self.serial["encoding"]), self.serial["encoding"],
                              f["max_length"])
        control = {b: name for name, b in (("ack", f["ack"]), ("nak", f["nak"])) if b is not None}
        return StxEtxFramer(f["stx"], f["etx"], f["checksum"], f["checksum_over"], self.serial["encoding"],
                            f["checksum_encoding"], f["max_length"], control)

    def render(self, command: str, **values: Any) -> str | None:
        """The text of a command, or None when this protocol has no such command."""
        tpl = self.commands.get(command)
        return None if tpl is None else tpl.format(**{**_SAMPLE, **values})

    def match(self, text: str) -> Match | None:
        for rule in self.events:
            m = rule.pattern.search(text)
            if m:
                groups = {**rule.fields, **{k: v for k, v in m.groupdict().items() if v is not None}}
                return Match(rule.on, groups)
        return None


def _byte(where: str, key: str, value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 255:
        return value
    raise ConfigError(f"{where} {key}: expected a byte value 0-255 such as 0x02, got {value!r}")


def _table(path: Path, data: dict, name: str, required: bool = False) -> dict:
    value = data.get(name, {})
    if name not in data and required:
        raise ConfigError(f"{path}: missing [{name}] table; add it (see README: Writing a protocol file)")
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: {name} must be a table: write [{name}]")
    return value


def _keys(where: str, table: dict, allowed: dict[str, type]) -> None:
    typed_table(where, table, allowed)


def _choice(where: str, key: str, value: Any, options) -> Any:
    if value not in options:
        raise ConfigError(f"{where} {key}: {value!r} is not one of {', '.join(map(str, options))}")
    return value


def _template(where: str, key: str, tpl: str) -> str:
    try:
        for _, name, spec, _ in string.Formatter().parse(tpl):
            if name is None:
                continue
            if name not in TEMPLATE_FIELDS:
                raise ConfigError(f"{where} {key}: unknown field {{{name}}}; use {', '.join(sorted(TEMPLATE_FIELDS))}")
        tpl.format(**_SAMPLE)
    except (ValueError, IndexError, KeyError) as e:
        raise ConfigError(f"{where} {key}: bad template {tpl!r} ({e}); write fields as {{seq:04d}}") from None
    return tpl


def _event(path: Path, i: int, rule: Any) -> EventRule:
    where = f"{path}: [[event]] #{i + 1}"
    if not isinstance(rule, dict):
        raise ConfigError(f"{where}: must be a table; write [[event]] with on = and match =")
    _keys(where, rule, {"on": str, "match": str, "fields": dict, "note": str})
    for key in ("on", "match"):
        if key not in rule:
            raise ConfigError(f"{where} {key}: missing; every [[event]] needs on = \"...\" and match = '...'")
    on = _choice(where, "on", rule["on"], list(EVENTS))
    try:
        pattern = re.compile(rule["match"])
    except re.error as e:
        raise ConfigError(f"{where} match: not a valid regular expression ({e}); fix the pattern") from None
    fields = {str(k): str(v) for k, v in rule.get("fields", {}).items()}
    names = set(pattern.groupindex) | set(fields)
    if on != "status":
        extra = names - EVENTS[on]
        if extra:
            raise ConfigError(f"{where} match: group(s) {', '.join(sorted(extra))} mean nothing for "
                              f"{on!r}; use {', '.join(sorted(EVENTS[on])) or 'no groups'}")
    if on in PIECE_EVENTS and not names & {"seq", "id"}:
        raise ConfigError(f"{where} match: a {on!r} pattern needs a (?P<seq>...) or (?P<id>...) group "
                          "to say which piece it is")
    if on == "read" and not {"seq", "mark"} <= names:
        raise ConfigError(f"{where} match: a 'read' pattern needs (?P<seq>...) and (?P<mark>...) groups "
                          "(which piece, what its sheet mark says)")
    if on == "stock" and "count" not in names:
        raise ConfigError(f"{where} match: a 'stock' pattern needs (?P<count>...) or fields = {{count = \"0\"}}")
    if on == "error" and "code" not in names:
        raise ConfigError(f"{where} match: an 'error' pattern needs a (?P<code>...) group")
    return EventRule(on, pattern, fields)


def _framing(path: Path, data: dict, encoding: str) -> dict:
    where = f"{path}: [framing]"
    table = _table(path, data, "framing", required=True)
    _keys(where, table, {"kind": str, "terminator": str, "max_length": int, "stx": int, "etx": int,
                         "checksum": str, "checksum_over": str, "checksum_encoding": str,
                         "ack": int, "nak": int})
    kind = _choice(where, "kind", table.get("kind", "line"), ("line", "stx-etx"))
    out: dict[str, Any] = {"kind": kind, "max_length": table.get("max_length", 256)}
    if kind == "line":
        term = table.get("terminator", "\r\n")
        if not term or any(c not in "\r\n" for c in term):
            raise ConfigError(f"{where} terminator: use \"\\r\\n\", \"\\r\" or \"\\n\", got {term!r}")
        out["terminator"] = term
        return out
    out["stx"] = _byte(where, "stx", table.get("stx", 0x02))
    out["etx"] = _byte(where, "etx", table.get("etx", 0x03))
    out["checksum"] = _choice(where, "checksum", table.get("checksum", "xor8"), list(CHECKSUMS))
    out["checksum_over"] = _choice(where, "checksum_over", table.get("checksum_over", "body+etx"), CHECKSUM_SPANS)
    out["checksum_encoding"] = _choice(where, "checksum_encoding", table.get("checksum_encoding", "binary-be"),
                                       CHECKSUM_ENCODINGS)
    out["ack"] = _byte(where, "ack", table["ack"]) if "ack" in table else None
    out["nak"] = _byte(where, "nak", table["nak"]) if "nak" in table else None
    return out


def load_protocol(path: str | Path) -> Protocol:
    path = Path(path)
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"{path}: protocol file not found; check the device's protocol = setting") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read protocol file ({e.strerror}); fix its owner or mode") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML ({e}); fix the syntax") from None
    allowed = {"protocol", "serial", "framing", "timing", "commands", "event", "reasons", "errors", "states"}
    for key in data:
        if key not in allowed:
            raise ConfigError(f"{path}: unknown section {key!r}; expected one of {', '.join(sorted(allowed))}")

    head = _table(path, data, "protocol", required=True)
    _keys(f"{path}: [protocol]", head, {"name": str, "family": str, "description": str, "identify": str,
                                         "stock_low": int})
    family = _choice(f"{path}: [protocol]", "family", head.get("family"), ("inserter", "franker"))
    identify = _choice(f"{path}: [protocol]", "identify", head.get("identify", "sequence"),
                       ("sequence", "letter_id"))

    ser = _table(path, data, "serial")
    where = f"{path}: [serial]"
    _keys(where, ser, {"baud": int, "bytesize": int, "parity": str, "stopbits": float, "flow": str,
                       "encoding": str})
    serial = {"baud": ser.get("baud", 9600),
              "bytesize": _choice(where, "bytesize", ser.get("bytesize", 8), (5, 6, 7, 8)),
              "parity": _choice(where, "parity", ser.get("parity", "none"), list(PARITIES)),
              "stopbits": _choice(where, "stopbits", float(ser.get("stopbits", 1)), (1.0, 1.5, 2.0)),
              "flow": _choice(where, "flow", ser.get("flow", "none"), FLOWS),
              "encoding": _choice(where, "encoding", ser.get("encoding", "ascii"), ("ascii", "latin-1", "utf-8"))}
    framing = _framing(path, data, serial["encoding"])

    tim = _table(path, data, "timing")
    _keys(f"{path}: [timing]", tim, {k: float for k in TIMING})
    timing = {k: float(tim.get(k, v)) for k, v in TIMING.items()}
    for k, v in timing.items():
        if v <= 0:
            raise ConfigError(f"{path}: [timing] {k}: must be greater than 0")

    cmds = _table(path, data, "commands")
    _keys(f"{path}: [commands]", cmds, {k: str for k in COMMANDS})
    commands = {k: _template(f"{path}: [commands]", k, v) for k, v in cmds.items()}
    if "expect_piece" not in commands:
        raise ConfigError(f"{path}: [commands] expect_piece: missing; the device must be told of each piece")

    rules = data.get("event", [])
    if not isinstance(rules, list) or not rules:
        raise ConfigError(f"{path}: no [[event]] tables; describe what the device sends")
    events = tuple(_event(path, i, r) for i, r in enumerate(rules))
    done = "inserted" if family == "inserter" else "franked"
    if not any(r.on == done for r in events):
        raise ConfigError(f"{path}: no [[event]] with on = {done!r}; a {family} must report finished pieces")

    tables = {}
    for name in ("reasons", "errors", "states"):
        t = _table(path, data, name)
        _keys(f"{path}: [{name}]", t, {k: str for k in t})
        tables[name] = dict(t)
    for word, state in tables["states"].items():
        _choice(f"{path}: [states]", word, state, DEVICE_STATES)
    return Protocol(name=head.get("name", path.stem), family=family, source=path, identify=identify,
                    serial=serial, framing=framing, timing=timing, commands=commands, events=events,
                    stock_low=head.get("stock_low", 0), **tables)


def serial_kwargs(serial: dict[str, Any]) -> dict[str, Any]:
    """pyserial ``Serial(...)`` keyword arguments for a [serial] table."""
    return {"baudrate": serial["baud"], "bytesize": serial["bytesize"], "parity": PARITIES[serial["parity"]],
            "stopbits": serial["stopbits"] if serial["stopbits"] == 1.5 else int(serial["stopbits"]),
            "rtscts": serial["flow"] == "rtscts", "xonxoff": serial["flow"] == "xonxoff",
            "dsrdtr": serial["flow"] == "dsrdtr"}
