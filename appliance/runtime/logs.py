"""Logging set-up shared by the daemon and the demo: no secrets, no per-request noise.

httpx logs every request at INFO with its full URL, and a pre-signed URL's query string is
a bearer credential for the letter's PDF.  Its loggers are raised to WARNING, and a filter
on the root handlers removes any ``X-Amz-*`` / signature query that still reaches a log
line (from any library, at any level).  At ``--log-level DEBUG`` httpx speaks again.
"""

from __future__ import annotations

import logging
import re

_SIGNED_QUERY = re.compile(r"(\?|&)(X-Amz-[A-Za-z]+|Signature|Expires|AWSAccessKeyId|Policy|Key-Pair-Id)"
                           r"=[^\s&\"']*", re.IGNORECASE)


def redact(text: str) -> str:
    """``text`` with the values of pre-signed URL query parameters replaced."""
    return _SIGNED_QUERY.sub(lambda m: f"{m.group(1)}{m.group(2)}=<redacted>", text)


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


def quiet_http_logs() -> None:
    """httpx's per-request lines only at --log-level DEBUG; redaction at every level."""
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        for name in ("httpx", "httpcore"):
            logging.getLogger(name).setLevel(logging.WARNING)
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())


#: --log-level choices, quietest last.
LEVELS = ("debug", "info", "warning", "error")


def setup_logging(level: str = "info") -> None:
    """Log lines on stderr at ``level``, HTTP request lines only at debug, no signatures."""
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    quiet_http_logs()
