"""Every exception the appliance and its drivers raise, in one hierarchy.

``UserError`` and its children are mistakes or conditions a person can fix: the CLI prints
their message as one line naming the thing and the fix, and exits with ``exit_code`` --
never a traceback.  The rest are signals between parts of the code, each caught where it
has a meaning (a fault class, a reroute, a retry).

    Exception
    ├── UserError                   one line for a person: the CLI prints it, exit 2
    │   ├── ConfigError             appliance.toml, a hardware profile, a protocol file
    │   ├── StateError              the state folder cannot be used (corrupt, locked)
    │   ├── ApiUnavailable          the Supplier API cannot be reached (after retries)
    │   ├── TokenError              the OAuth2 token endpoint refused us (.retryable)
    │   ├── ActionRefused           an operator action that cannot be done now
    │   ├── MarkError               a PDF that cannot carry sheet marks
    │   ├── SubmissionBusy          another MI submission holds the lock
    │   ├── DaemonNotRunning        nothing listens on the control socket
    │   └── ControlError            the daemon refused a console's request
    ├── ApiError                    the API answered with an error (.status .code .detail)
    │   ├── NotFound                404
    │   ├── RateLimited             429 (after retries)
    │   ├── ServerError             5xx (after retries)
    │   ├── TooLarge                a PDF over [api] max_pdf_mb (CLI download)
    │   ├── ResponseTooLarge        an API answer over its size cap
    │   └── InvalidId               an id that must not go into a URL (never sent)
    ├── BodyTooLarge                an answer read over its cap (api.limits)
    ├── CorruptFile                 a state file that is not a complete database
    ├── UnknownLetter (KeyError)    the store knows no such letter
    ├── TransitionError (ValueError)  a status move the model forbids
    ├── BadJson (ValueError)        JSON we will not use: malformed or nested too deep
    ├── UnsupportedEncoding (ValueError)  a Content-Encoding we do not decode
    ├── Overflow (ValueError)       a decoded body over its cap
    ├── intake (a letter's fault class follows from which one)
    │   ├── FetchFault              transport/service fault of a download (.kind ...)
    │   ├── HostRefused             a pre-signed URL the host policy refuses
    │   ├── PdfTooLarge             content: the PDF is over the size cap
    │   ├── PdfTooComplex           content: over a check budget
    │   ├── PdfUnreadable           content: not a PDF that can be printed as sent
    │   └── WorkerDied              a worker was killed or died (.kind: the limit)
    └── drivers
        ├── CupsUnavailable         cupsd did not answer
        ├── CupsRefused             cupsd answered an IPP error (.status)
        ├── NamesHidden             CUPS hides job names (JobPrivateValues)
        └── LinkDown                a serial port is not open
"""

from __future__ import annotations

from pathlib import Path


def _shown(value: object, n: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= n else text[: n - 3] + "..."


# --- for a person ------------------------------------------------------------------------

class UserError(Exception):
    """A mistake a user can fix; ``str(err)`` names the thing and the fix in one line."""

    exit_code = 2


class ConfigError(UserError):
    """Invalid appliance.toml, hardware profile or protocol file."""


class StateError(UserError):
    """The state directory cannot be used (corrupt files, locked by another process)."""


class ApiUnavailable(UserError):
    """Cannot reach the API (connection failures or timeouts until retries ran out)."""


class TokenError(UserError):
    """The token endpoint refused us or answered nonsense.

    ``retryable`` is True for answers worth trying again (429, 5xx); the API client's retry
    loop uses it.  The message never contains the assertion or a token.
    """

    def __init__(self, message: str, status: int | None = None, retryable: bool = False):
        super().__init__(message)
        self.status = status
        self.retryable = retryable


class ActionRefused(UserError):
    """An operator action that cannot be done now; the message says why and what to do."""


class MarkError(UserError):
    """The letter's PDF could not be marked (unreadable, or a page the zone does not fit)."""


class SubmissionBusy(UserError):
    """Another submission holds the MI lock."""


class DaemonNotRunning(UserError):
    """Nothing is listening on the control socket."""


class ControlError(UserError):
    """The daemon refused a request; the message is its one-line reason."""


# --- the Supplier API ----------------------------------------------------------------------

class ApiError(Exception):
    """The API answered with an error we do not retry (or stopped retrying)."""

    def __init__(self, status: int, detail: str, code: str | None = None):
        super().__init__(f"HTTP {status}{' ' + code if code else ''}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail


class NotFound(ApiError):
    pass


class SendTooLate(Exception):
    """A request with a ``send_by`` time got its rate-limit token only after it: it was
    not sent (an ACCEPTED must reach Notify inside the listing's visibility window)."""


class RateLimited(ApiError):
    pass


class ServerError(ApiError):
    pass


class TooLarge(ApiError):
    """The PDF is bigger than the configured cap; the download was abandoned."""


class ResponseTooLarge(ApiError):
    """An API answer was bigger than its size cap; it was not parsed (not retried)."""


class InvalidId(ApiError):
    """A letter or MI id that must not go into a URL; refused before any request."""

    def __init__(self, what: str, value: object):
        super().__init__(400, f"{what}: id {_shown(value)} is not a plain id (letters, digits, "
                              "_ and -, at most 128); refused before sending", "INVALID_ID")


class BodyTooLarge(Exception):
    def __init__(self, cap: int, declared: int | None = None):
        said = f"{declared} bytes, " if declared is not None else ""
        super().__init__(f"response too large: {said}over the {cap}-byte size cap")
        self.cap = cap
        self.declared = declared


class BadJson(ValueError):
    """A JSON answer we will not use: not JSON, or nested deeper than MAX_JSON_DEPTH."""


class UnsupportedEncoding(ValueError):
    """A Content-Encoding this appliance does not decode (it asks for gzip/deflate only)."""


class Overflow(ValueError):
    """The decoded body would be larger than allowed."""


# --- state --------------------------------------------------------------------------------

class CorruptFile(Exception):
    """A state file exists but does not hold a complete database."""

    def __init__(self, path: Path, detail: str):
        super().__init__(f"{path}: {detail}")
        self.path = path
        self.detail = detail


class UnknownLetter(KeyError):
    """No letter with this id is known to the store."""


class TransitionError(ValueError):
    """A status change the model forbids."""


# --- intake -------------------------------------------------------------------------------

class FetchFault(Exception):
    """Transport or service fault.  ``kind`` is one of: policy, dns, connect, tls, timeout,
    stall, short, reset, redirect, http, encoding.  ``status`` is the HTTP status if any,
    ``s3_code`` the storage's own error code (e.g. AccessDenied), ``expired`` when the
    storage said the pre-signed URL has expired."""

    def __init__(self, kind: str, detail: str, *, status: int | None = None,
                 s3_code: str = "", expired: bool = False):
        super().__init__(detail)
        self.kind = kind
        self.detail = detail
        self.status = status
        self.s3_code = s3_code
        self.expired = expired


class HostRefused(Exception):
    """A URL or address the policy does not allow; the message is one line."""


class PdfTooLarge(Exception):
    """The PDF is over the size cap (a content fault: the letter is REJECTED TOO_LARGE)."""


class PdfTooComplex(Exception):
    """Over a check budget: the letter is REJECTED PDF_TOO_COMPLEX."""


class PdfUnreadable(Exception):
    """Not a PDF that can be printed as sent: REJECTED PDF_UNREADABLE."""


class WorkerDied(Exception):
    """The task's worker was killed or died; ``kind`` names the limit (timeout, cpu, killed,
    crashed) and the message says it in one line."""

    def __init__(self, kind: str, detail: str):
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


# --- drivers ------------------------------------------------------------------------------

class CupsUnavailable(Exception):
    """CUPS did not answer (down, unreachable, connection dropped)."""


class CupsRefused(Exception):
    """CUPS answered with an IPP error."""

    def __init__(self, status: int, message: str):
        super().__init__(f"{message} (IPP 0x{status:04x})")
        self.status = status


class NamesHidden(Exception):
    """CUPS returned jobs on the queue without their names (job privacy policy)."""


class LinkDown(Exception):
    """The port is not open (unplugged, not yet reconnected, or closing)."""
