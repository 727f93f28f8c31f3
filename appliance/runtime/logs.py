"""Logging set-up shared by the daemon and the demo: human lines, journald fields under
systemd, no secrets, no per-request noise.

- On a terminal or a file: one human line per record: time, level, the device and letter
  when the record names them (``log.info(..., extra={"device": d, "letter_id": i})``).
- Under systemd (``JOURNAL_STREAM`` names our stderr and the journal socket exists): each
  record goes to journald as structured fields over its native datagram protocol
  (``MESSAGE``, ``PRIORITY``, ``LETTER_ID``, ``DEVICE``, ``STATUS``, ``CODE_FILE``...), so
  ``journalctl -u appliance LETTER_ID=...`` finds a letter's lines.  If a send fails the
  line goes to stderr instead (journald reads that too).
- A pre-signed URL's query string is a bearer credential for the letter's PDF: every
  http(s) URL in every record (message, arguments, traceback) loses its query string.
- httpx logs every request at INFO; its loggers stay at WARNING unless --log-level debug.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import struct
import sys

#: --log-level choices, noisiest first.
LEVELS = ("debug", "info", "warning", "error")
JOURNAL_SOCKET = "/run/systemd/journal/socket"
#: A datagram bigger than this is cut (journald's own limit is far above a log line).
MAX_JOURNAL_FIELD = 48 * 1024
#: Record attributes sent as journal fields when a log call passes them in ``extra``.
EXTRA_FIELDS = {"letter_id": "LETTER_ID", "device": "DEVICE", "status": "STATUS", "stage": "STAGE"}
_PRIORITY = {logging.CRITICAL: 2, logging.ERROR: 3, logging.WARNING: 4, logging.INFO: 6, logging.DEBUG: 7}

_URL_QUERY = re.compile(r"(https?://[^\s?#\"'<>]*)\?[^\s#\"'<>]*", re.IGNORECASE)


def redact(text: str) -> str:
    """``text`` with the query string of every http(s) URL cut (pre-signed URLs carry
    their signature there: X-Amz-Signature, X-Amz-Credential, Signature, Policy...)."""
    return _URL_QUERY.sub(lambda m: f"{m.group(1)}?<query removed>", text)


class RedactingFilter(logging.Filter):
    """Cuts URL query strings out of a record's message, arguments and traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: let the handler report it as usual
            return True
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


def _context(record: logging.LogRecord) -> str:
    parts = [f"{label} {getattr(record, attr)}" for attr, label in
             (("device", "device"), ("letter_id", "letter"), ("status", "status"))
             if getattr(record, attr, None)]
    return f"[{', '.join(parts)}] " if parts else ""


class HumanFormatter(logging.Formatter):
    """``2026-12-03 17:30:01 WARNING appliance.pipeline: [device fm200, letter L1] text``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(context)s%(message)s", "%Y-%m-%d %H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        record.context = _context(record)
        return redact(super().format(record))


def journal_fields(record: logging.LogRecord, message: str) -> list[tuple[str, str]]:
    fields = [("MESSAGE", message), ("PRIORITY", str(_PRIORITY.get(record.levelno, 6))),
              ("SYSLOG_IDENTIFIER", "appliance"), ("LOGGER", record.name),
              ("CODE_FILE", record.pathname), ("CODE_LINE", str(record.lineno)),
              ("CODE_FUNC", record.funcName), ("THREAD_NAME", record.threadName or "")]
    for attr, name in EXTRA_FIELDS.items():
        value = getattr(record, attr, None)
        if value not in (None, ""):
            fields.append((name, redact(str(value))))
    return fields


def encode_journal(fields: list[tuple[str, str]]) -> bytes:
    """journald's native protocol: ``KEY=value\\n``, or for a value with a newline
    ``KEY\\n`` + its length (64-bit little endian) + the value + ``\\n``."""
    out = bytearray()
    for key, value in fields:
        data = value.encode("utf-8", "replace")[:MAX_JOURNAL_FIELD]
        if b"\n" in data:
            out += key.encode() + b"\n" + struct.pack("<Q", len(data)) + data + b"\n"
        else:
            out += key.encode() + b"=" + data + b"\n"
    return bytes(out)


class JournalHandler(logging.Handler):
    """Sends each record to journald as fields; stderr lines if the socket fails."""

    def __init__(self, path: str = JOURNAL_SOCKET):
        super().__init__()
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.fallback = logging.StreamHandler(sys.stderr)
        self.fallback.setFormatter(HumanFormatter())
        self.text = logging.Formatter("%(message)s")

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = redact(self.text.format(record))
            self.sock.sendto(encode_journal(journal_fields(record, message)), self.path)
        except OSError:
            self.fallback.emit(record)  # journald gone or busy: the line still reaches stderr
        except Exception:
            self.handleError(record)

    def close(self) -> None:
        self.sock.close()
        super().close()


def journal_socket(env=None, path: str = JOURNAL_SOCKET) -> str | None:
    """The journal socket when we run under systemd: ``JOURNAL_STREAM`` (device:inode)
    names our own stderr (not one inherited by a shell) and the socket exists."""
    env = os.environ if env is None else env
    stream = env.get("JOURNAL_STREAM", "")
    try:
        st = os.fstat(sys.stderr.fileno())
    except (OSError, ValueError, AttributeError):
        return None
    if stream != f"{st.st_dev}:{st.st_ino}" or not os.path.exists(path):
        return None
    return path


def quiet_http_logs() -> None:
    """httpx's per-request lines only at --log-level DEBUG; redaction at every level."""
    debug = logging.getLogger().getEffectiveLevel() <= logging.DEBUG
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.NOTSET if debug else logging.WARNING)
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())


_installed: logging.Handler | None = None


def setup_logging(level: str = "info", *, env=None, socket_path: str = JOURNAL_SOCKET) -> logging.Handler:
    """The root logger at ``level`` with one handler: journald fields under systemd, human
    lines on stderr otherwise.  Returns the handler (tests and callers may remove it)."""
    root = logging.getLogger()
    path = journal_socket(env, socket_path)
    handler: logging.Handler = JournalHandler(path) if path else logging.StreamHandler(sys.stderr)
    if not path:
        handler.setFormatter(HumanFormatter())
    handler.addFilter(RedactingFilter())
    global _installed
    if _installed is not None:  # set up twice in one process (tests): one handler, not two
        root.removeHandler(_installed)
        _installed.close()
    _installed = handler
    root.addHandler(handler)
    root.setLevel(level.upper())
    quiet_http_logs()
    return handler
