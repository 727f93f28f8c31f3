"""Fetch one pre-signed PDF into the spool, inside an intake worker process.

The standard library's ``http.client`` over a socket this module connects itself, so
that the address connected to is the one the host policy checked (no second DNS lookup
between check and connect).  One kept-alive connection per storage host and worker.

Budgets, each ending the download with a one-line reason:

* the PDF's size: a declared ``Content-Length`` over the cap ends it before reading, the
  decoded body is counted as it arrives (``Content-Encoding`` is decoded here, with the
  same cap, so a gzip bomb costs a few kilobytes);
* time: a wall-clock deadline for the whole download (``SIGALRM`` in the worker's main
  thread, so a server dripping its headers cannot hold it either), a timeout on every
  socket operation, and after a short grace period a minimum average rate (or, when the
  length is declared, a projected finish within the deadline: a drip is seen at once);
* redirects from the storage host are never followed.

``FetchFault`` is a transport or service fault (retried later with a fresh URL);
``PdfTooLarge`` is a content fault (the letter's PDF is over the cap).
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import re
import signal
import socket
import ssl
import threading
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from appliance.core.decoding import Overflow, UnsupportedEncoding, decode_bounded, decoders_for
from appliance.core.errors import FetchFault, PdfTooLarge
from appliance.intake.hosts import HostPolicy, HostRefused

CHUNK = 64 * 1024
#: Error answers are read only for their S3 <Code>.
MAX_ERROR_BODY = 16 * 1024
USER_AGENT = "nhs-notify-appliance"


@dataclass(frozen=True)
class FetchLimits:
    max_bytes: int = 20 * 1024 * 1024  # decoded PDF size cap
    deadline: float = 60.0  # seconds for the whole download
    min_rate: float = 16 * 1024  # bytes per second, averaged, once ``grace`` has passed
    grace: float = 2.0
    io_timeout: float = 15.0  # any one connect, send or read
    verify_tls: bool = True


@dataclass(frozen=True)
class Fetched:
    sha256: str
    size: int


class _Deadline(Exception):
    pass


def redact(url: str) -> str:
    """A URL safe for logs: scheme, host and path; the query (signature) removed."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    shown = f"{parts.scheme}://{parts.hostname or ''}{':' + str(parts.port) if parts.port else ''}"
    return shown + parts.path + ("?<redacted>" if parts.query else "")


# --- connections ---------------------------------------------------------------------

_pool: dict[tuple, http.client.HTTPConnection] = {}  # one kept-alive connection per host


class _Connection(http.client.HTTPConnection):
    """An HTTPConnection over a socket we connected (and, for https, wrapped) ourselves."""

    def __init__(self, host: str, port: int, sock: socket.socket, timeout: float):
        super().__init__(host, port, timeout=timeout)
        self.sock = sock

    def connect(self) -> None:  # never reconnect behind our back (it would resolve again)
        raise http.client.NotConnected("connection closed")


def _resolve(host: str, port: int, timeout: float) -> list[str]:
    """The host's addresses; the lookup runs in a thread so a resolver that hangs costs
    ``timeout``, not the worker (getaddrinfo cannot be interrupted)."""
    answer: list = []

    def lookup() -> None:
        try:
            answer.append(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except OSError as e:
            answer.append(e)

    t = threading.Thread(target=lookup, daemon=True, name="dns")
    t.start()
    t.join(timeout)
    if not answer:
        raise FetchFault("dns", f"looking up {host} took over {timeout:.0f} s")
    if isinstance(answer[0], OSError):
        raise FetchFault("dns", f"cannot resolve {host} ({getattr(answer[0], 'strerror', None) or answer[0]})")
    return list(dict.fromkeys(info[4][0] for info in answer[0]))


def _connect(scheme: str, host: str, port: int, addresses: list[str],
             limits: FetchLimits) -> socket.socket:
    last: OSError | None = None
    for address in addresses:
        try:
            sock = socket.create_connection((address, port), timeout=limits.io_timeout)
        except OSError as e:
            last = e
            continue
        if scheme == "https":
            ctx = ssl.create_default_context()
            if not limits.verify_tls:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            try:
                sock = ctx.wrap_socket(sock, server_hostname=host)
            except ssl.SSLCertVerificationError as e:
                sock.close()
                raise FetchFault("tls", f"TLS certificate of {host} is not trusted "
                                        f"({e.verify_message or e.reason})") from None
            except (ssl.SSLError, OSError) as e:
                sock.close()
                raise FetchFault("tls", f"TLS handshake with {host} failed ({type(e).__name__})") from None
        return sock
    kind = "timeout" if isinstance(last, TimeoutError) else "connect"
    why = "timed out" if kind == "timeout" else (getattr(last, "strerror", None) or type(last).__name__)
    raise FetchFault(kind, f"cannot connect to {host}:{port} ({why})")


def _connection(scheme: str, host: str, port: int, policy: HostPolicy, limits: FetchLimits,
                reuse: bool = True) -> tuple[http.client.HTTPConnection, tuple, bool]:
    rule = policy.rule_for(scheme, host, port)
    key = (scheme, host, port, limits.verify_tls)
    conn = _pool.pop(key, None)
    if conn is not None and conn.sock is not None and reuse:
        return conn, key, True
    if conn is not None:
        conn.close()
    addresses = [str(rule.ip)] if rule.ip is not None else _resolve(host, port, limits.io_timeout)
    policy.check_addresses(rule, host, addresses)
    sock = _connect(scheme, host, port, addresses, limits)
    return _Connection(host, port, sock, limits.io_timeout), key, False


def close_connections() -> None:
    while _pool:
        _pool.popitem()[1].close()


# --- the download --------------------------------------------------------------------

@contextlib.contextmanager
def _alarm(seconds: float):
    """Raise ``_Deadline`` in this thread after ``seconds`` (main thread only; elsewhere
    the per-operation timeouts and the rate check bound the download)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def ring(signum, frame):
        raise _Deadline()

    old = signal.signal(signal.SIGALRM, ring)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.001))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _s3_error(resp: http.client.HTTPResponse) -> tuple[str, str]:
    """(Code, Message) from an S3-style XML error body, sanitised: short, printable."""
    try:
        body = resp.read(MAX_ERROR_BODY).decode("utf-8", "replace")
    except (OSError, http.client.HTTPException):
        body = ""
    code = re.search(r"<Code>([A-Za-z0-9]{1,40})</Code>", body)
    msg = re.search(r"<Message>([^<]{1,200})</Message>", body)
    clean = re.sub(r"[^ -~]", "?", msg.group(1)) if msg else ""
    return (code.group(1) if code else ""), clean[:120]


def fetch(url: str, dest: Path, limits: FetchLimits, policy: HostPolicy, *,
          clock=time.monotonic) -> Fetched:
    """Download ``url`` to ``dest`` (mode 0600, replaced atomically), hashing it on the way."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise FetchFault("policy", "pre-signed URL cannot be parsed") from None
    if not parts.hostname:
        raise FetchFault("policy", "pre-signed URL has no host")
    scheme, host = parts.scheme.lower(), parts.hostname.lower()
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    started = clock()
    try:
        with _alarm(limits.deadline):
            return _download(scheme, host, port, target, dest, limits, policy, started, clock)
    except HostRefused as e:
        raise FetchFault("policy", str(e)) from None
    except _Deadline:
        raise FetchFault("timeout", f"download from {host} took over {limits.deadline:.0f} s") from None


def _request(conn: http.client.HTTPConnection, target: str, host: str, port: int | None,
             limits: FetchLimits) -> http.client.HTTPResponse:
    headers = {"Host": host if port is None else f"{host}:{port}", "User-Agent": USER_AGENT,
               "Accept-Encoding": "gzip, deflate, identity", "Accept": "application/pdf"}
    try:
        conn.request("GET", target, headers=headers)
        return conn.getresponse()
    except TimeoutError:
        raise FetchFault("timeout", f"{host} did not answer within {limits.io_timeout:.0f} s") from None
    except (ConnectionError, http.client.HTTPException, OSError) as e:
        raise FetchFault("reset", f"connection to {host} failed ({type(e).__name__})") from None


def _download(scheme, host, port, target, dest, limits, policy, started, clock) -> Fetched:
    conn, key, reused = _connection(scheme, host, port, policy, limits)
    reusable = False
    try:
        try:
            resp = _request(conn, target, host, port, limits)
        except FetchFault as e:
            if not reused or e.kind != "reset":
                raise
            conn.close()  # the storage closed the idle kept-alive connection: one fresh try
            conn, key, _ = _connection(scheme, host, port, policy, limits, reuse=False)
            resp = _request(conn, target, host, port, limits)
        if resp.status != 200:
            raise _status_fault(resp, host)
        declared = resp.getheader("content-length")
        encoding = resp.getheader("content-encoding") or ""
        if declared and declared.isdigit() and int(declared) > limits.max_bytes and not encoding:
            raise PdfTooLarge()
        try:
            decoders = decoders_for(encoding)
        except UnsupportedEncoding as e:
            raise FetchFault("encoding", f"storage {host}: {e}") from None
        got = _stream_to(resp, dest, limits, decoders, host, started, clock)
        reusable = not resp.will_close
        return got
    finally:
        if reusable:
            _pool[key] = conn
        else:
            conn.close()


def _status_fault(resp: http.client.HTTPResponse, host: str) -> FetchFault:
    status = resp.status
    if 300 <= status < 400:
        return FetchFault("redirect", f"storage {host} answered {status} (a redirect); "
                                      "redirects from the pre-signed host are not followed",
                          status=status)
    code, message = _s3_error(resp)
    expired = status == 403 and "expired" in message.lower()
    said = f" {code}" if code else ""
    return FetchFault("http", f"storage {host} answered {status}{said}"
                              f"{' (URL expired)' if expired else ''}",
                      status=status, s3_code=code, expired=expired)


def _check_rate(host: str, raw: int, length: int | None, elapsed: float, limits: FetchLimits) -> None:
    """A transfer too slow to finish: by its projected end when the length is known, else
    by its average rate."""
    if length is not None:
        projected = elapsed * length / max(raw, 1)
        if projected > limits.deadline:
            raise FetchFault("stall", f"{host} sends {raw / elapsed / 1024:.1f} kB/s: the {length}-byte "
                                      f"PDF would take {projected:.0f} s, over {limits.deadline:.0f} s")
    elif raw / elapsed < limits.min_rate:
        raise FetchFault("stall", f"{host} sends slower than {limits.min_rate / 1024:.0f} kB/s")


def _stream_to(resp, dest: Path, limits: FetchLimits, decoders: list, host: str,
               started: float, clock) -> Fetched:
    dest.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.part")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    digest, size, raw = hashlib.sha256(), 0, 0
    declared = resp.getheader("content-length")
    length = int(declared) if declared and declared.isdigit() else None
    try:
        with os.fdopen(fd, "wb") as f:
            while True:
                try:
                    chunk = resp.read1(CHUNK)
                except TimeoutError:
                    raise FetchFault("stall", f"{host} sent nothing for {limits.io_timeout:.0f} s") from None
                except http.client.IncompleteRead as e:
                    raise FetchFault("short", f"{host} closed the connection after {raw + len(e.partial)} "
                                              "bytes, before the end of the body") from None
                except (ConnectionError, http.client.HTTPException, OSError) as e:
                    raise FetchFault("reset", f"connection to {host} broke ({type(e).__name__})") from None
                if not chunk:
                    break
                raw += len(chunk)
                try:
                    pieces = decode_bounded(decoders, chunk, limits.max_bytes - size) if decoders else (chunk,)
                except Overflow:
                    raise PdfTooLarge() from None
                except zlib.error as e:
                    raise FetchFault("encoding", f"{host} sent a body that does not decode ({e})") from None
                for piece in pieces:
                    size += len(piece)
                    if size > limits.max_bytes:
                        raise PdfTooLarge()
                    digest.update(piece)
                    f.write(piece)
                elapsed = clock() - started
                if elapsed > limits.deadline:
                    raise FetchFault("timeout", f"download from {host} took over {limits.deadline:.0f} s")
                if elapsed > limits.grace and (length is None or raw < length):
                    _check_rate(host, raw, length, elapsed, limits)
            if length is not None and raw < length:
                raise FetchFault("short", f"{host} sent {raw} of {length} bytes")
            resp.close()  # read1 leaves a Content-Length response open at its end: the
            # connection would refuse its next request (ResponseNotReady)
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return Fetched(digest.hexdigest(), size)
