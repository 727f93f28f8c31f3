"""Plain data for the sandbox: its options, the mutable fault settings, the request log
and the status-update log."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

#: Request kinds that are API routes (need X-Request-ID, a bearer in auth mode, get faults).
API_KINDS = frozenset({"list", "get", "data", "patch", "post_letters", "mi_post", "mi_get"})
#: Every kind ``Sandbox.counts()`` reports ("other" = unknown route or wrong method).
ALL_KINDS = (*sorted(API_KINDS), "presigned", "status", "token", "other")

#: What the deployed server does (its upstream code's defaults): ``SandboxOptions()`` and
#: ``appliance sandbox`` start with these values.
FAITHFUL = {
    "visibility_timeout": 300.0,  # a listed letter is hidden from every client this long
    "apply_delay": 1.0,  # updates are queued (202 at once) and applied about this much later
    "presign_ttl": 60,  # pre-signed data URLs live 60 s, then S3 answers 403 expired
    "tps_limit": 300,  # transactions per second per API app; beyond that 429
}
#: The OpenAPI document alone (``--faithful-off``; ``SandboxOptions(**DOCUMENT_ONLY)``):
#: nothing hidden after listing, updates applied before the 202, 300 s URLs, no TPS limit.
DOCUMENT_ONLY = {"visibility_timeout": 0.0, "apply_delay": 0.0, "presign_ttl": 300, "tps_limit": 0}


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
    presign_ttl: int = 60  # seconds a pre-signed data URL stays valid
    hostile: str | None = None  # see hostile.py; off by default
    # Imitating the deployed server (FAITHFUL; 0 turns one off, DOCUMENT_ONLY all of them).
    # These four are start values: change them live in ``sb.faults``.
    visibility_timeout: float = 300.0  # seconds a listed letter stays hidden (0: never hidden)
    apply_delay: float = 1.0  # seconds before a queued update applies (0: before the 202)
    drop_updates: float = 0.0  # share of accepted updates silently never applied
    tps_limit: int = 300  # API requests served per sliding second; beyond: 429 (0: no limit)


@dataclass
class Faults:
    """Fault injection, changeable while the server runs (``sb.faults.error_ratio = 0.5``).

    ``scope`` holds the request kinds faults apply to: the API routes by default; add
    "presigned", "status" or "token" to extend them there.

    ``hostile`` (a mode of ``hostile.MODES``) replaces the answer to requests of a kind in
    ``hostile_scope``; ``hostile_count`` (None = no limit) is how many more get it.

    The deployed server's own behaviours (``SandboxOptions`` has their meaning; ``scope``
    does not apply to them): ``visibility_timeout`` counts from each listing (letters
    hidden already keep their time), ``apply_delay`` from each update's arrival,
    ``drop_updates`` is drawn per update as it is due, ``tps_limit`` over the last second.
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
    visibility_timeout: float = 0
    apply_delay: float = 0
    drop_updates: float = 0.0
    tps_limit: int = 0

    @classmethod
    def from_options(cls, o: SandboxOptions) -> "Faults":
        return cls(o.rate_limit_every, o.rate_limit_next, o.retry_after, o.error_ratio,
                   o.latency_ms, o.drop_ratio, hostile=o.hostile,
                   visibility_timeout=o.visibility_timeout, apply_delay=o.apply_delay,
                   drop_updates=o.drop_updates, tps_limit=o.tps_limit)


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


@dataclass
class UpdateRecord:
    """One status update a PATCH or POST /letters was given 202 for (``Sandbox.updates``)."""

    received: float
    letter_id: str
    status: str
    reason_code: str | None
    reason_text: str | None
    applied_at: float | None = None  # None: waiting, or dropped
    dropped: bool = False  # the server said 202 but never applied it (drop_updates)


class Server(Protocol):
    """What the route handlers (``routes``, ``hostile``) use of the sandbox server, so they
    need not import it (the server imports them)."""

    letters: dict[str, Any]
    pending: Any  # queue.LetterQueue
    mi: dict[str, dict]
    faults: Faults
    issuer: Any
    refuse_updates: dict[str, int]

    def api_error(self, req: Any, status: int, detail: str | None = None) -> Any: ...
    def echo_headers(self, req: Any, content_type: str | None = ...) -> list[tuple[str, str]]: ...
    def json_response(self, req: Any, status: int, doc: Any) -> Any: ...
    def request_id(self, req: Any) -> str: ...
    def set_status(self, letter: Any, status: str, code: str | None, text: str | None) -> None: ...
    def list_letters(self, limit: int) -> list[Any]: ...
    def accept_updates(self, updates: list[tuple[str, str, str | None, str | None]]) -> None: ...
    def presigned_url(self, letter_id: str, expires: int | None = None,
                      issued_at: float | None = None) -> str: ...
    def presign_problem(self, letter_id: str, query: dict[str, str]) -> str | None: ...
