"""Plain data for the sandbox: its options, the mutable fault settings, the request log."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

#: Request kinds that are API routes (need X-Request-ID, a bearer in auth mode, get faults).
API_KINDS = frozenset({"list", "get", "data", "patch", "post_letters", "mi_post", "mi_get"})
#: Every kind ``Sandbox.counts()`` reports ("other" = unknown route or wrong method).
ALL_KINDS = (*sorted(API_KINDS), "presigned", "status", "token", "other")


@dataclass
class SandboxOptions:
    letters: int = 50
    bad_ratio: float = 0.1
    seed: int = 1
    rate_limit_every: int = 0
    rate_limit_next: int = 0
    retry_after: float = 1
    error_ratio: float = 0.0
    latency_ms: float = 0
    drop_ratio: float = 0.0
    auth_keys: dict[str, bytes] | None = None
    api_key: str = ""
    token_ttl: int = 599
    log_path: str | None = None
    presign_ttl: int = 300  # seconds a pre-signed data URL stays valid
    hostile: str | None = None  # see hostile.py; off by default


@dataclass
class Faults:
    """Fault injection, changeable while the server runs (``sb.faults.error_ratio = 0.5``).

    ``scope`` holds the request kinds faults apply to: the API routes by default; add
    "presigned", "status" or "token" to extend them there.

    ``hostile`` (a mode of ``hostile.MODES``) replaces the answer to requests of a kind in
    ``hostile_scope``; ``hostile_count`` (None = no limit) is how many more get it.
    """

    rate_limit_every: int = 0
    rate_limit_next: int = 0
    retry_after: float = 1
    error_ratio: float = 0.0
    latency_ms: float = 0
    drop_ratio: float = 0.0
    scope: set[str] = field(default_factory=lambda: set(API_KINDS))
    hostile: str | None = None
    hostile_scope: set[str] = field(default_factory=lambda: {"list"})
    hostile_count: int | None = None
    huge_bytes: int = 21 * 1024 * 1024
    redirect_to: str = ""

    @classmethod
    def from_options(cls, o: SandboxOptions) -> "Faults":
        return cls(o.rate_limit_every, o.rate_limit_next, o.retry_after, o.error_ratio,
                   o.latency_ms, o.drop_ratio, hostile=o.hostile)


@dataclass
class RequestRecord:
    time: float
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-cased names
    body: bytes
    status: int  # 0 when the connection was dropped without an answer
    kind: str = "other"


class Server(Protocol):
    """What the route handlers (``routes``, ``hostile``) use of the sandbox server, so they
    need not import it (the server imports them)."""

    letters: dict[str, Any]
    pending: dict[str, Any]
    mi: dict[str, dict]
    faults: Faults
    issuer: Any

    def api_error(self, req: Any, status: int, detail: str | None = None) -> Any: ...
    def echo_headers(self, req: Any, content_type: str | None = ...) -> list[tuple[str, str]]: ...
    def json_response(self, req: Any, status: int, doc: Any) -> Any: ...
    def request_id(self, req: Any) -> str: ...
    def set_status(self, letter: Any, status: str, code: str | None, text: str | None) -> None: ...
    def presigned_url(self, letter_id: str, expires: int | None = None,
                      issued_at: float | None = None) -> str: ...
    def presign_problem(self, letter_id: str, query: dict[str, str]) -> str | None: ...
