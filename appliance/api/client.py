"""Async client for the NHS Notify Supplier API (JSON:API over HTTPS).

Every API call goes through one rate limiter, carries a fresh ``X-Request-ID`` and, when
auth is "jwt", a bearer token (one transparent retry after a 401).  429, 5xx, timeouts and
connection failures are retried with capped exponential backoff and full jitter, honouring
``Retry-After``.  Each answer also adjusts the shared limiter (a 429 halves its rate, other
answers let it climb back to ``rate_limit``), so boxes sharing one API app find their shares
(see ``ratelimit.py``).  Other 4xx answers are not retried: they raise ``ApiError`` with the
server's own detail.  PDFs come from a pre-signed URL fetched by a separate client that
never carries the bearer token; no client follows redirects.

Nothing from the server is trusted: bodies are read under a size cap (``caps.py``), list
items that break the contract are skipped one by one (logged, counted, handed to
``on_malformed``) so one bad letter cannot block the others, and letter ids are checked
before they go into a URL.
"""

# Size: one class on purpose: every endpoint goes through ``_request`` (limiter, retries,
# token refresh, error mapping), and reading them side by side shows they all do.

from __future__ import annotations

import asyncio
import collections
import json
import logging
import random
import ssl
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urljoin, urlsplit

import httpx

from appliance.api.auth import TokenProvider
from appliance.api.limits import (
    MAX_ERROR_BODY,
    MAX_JSON_BODY,
    MAX_LIST_BODY,
    parse_json,
    read_capped,
    shown,
)
from appliance.api.ratelimit import RateLimiter
from appliance.api.resources import (
    Download,
    LetterRef,
    StatusUpdate,
    chunk_updates,
    error_from_response,
    json_body,
    letter_from,
    letter_item,
    mi_record,
    parse_retry_after,
    path_id,
)
from appliance.api.transport import api_transport
from appliance.config.settings import ApiConfig
from appliance.core.errors import (
    ApiError,
    ApiUnavailable,
    BadJson,
    BodyTooLarge,
    FetchFault,
    NotFound,
    PdfTooLarge,
    ResponseTooLarge,
    SendTooLate,
    ServerError,
    TokenError,
    TooLarge,
)
from appliance.core.status import Status

log = logging.getLogger("appliance.api.client")

#: Connections per host kept by each HTTP client (see SupplierClient.__init__).
CONNECTIONS = 16

JSON_API = "application/vnd.api+json"
#: What an httpx client would add to every API request.
BASE_HEADERS = {"Accept-Encoding": "gzip, deflate", "Connection": "keep-alive",
                "User-Agent": f"python-httpx/{httpx.__version__}"}
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
#: Longest Retry-After we will sit through before trying again.
MAX_RETRY_AFTER = 120.0


class _NoCookies(httpx.Cookies):
    """A cookie jar that keeps nothing."""

    def extract_cookies(self, response: httpx.Response) -> None:
        pass


class _CookielessClient(httpx.AsyncClient):
    """An httpx client that never stores cookies: the Supplier API authenticates with a
    bearer token and pre-signed URLs carry their own signature, so a cookie could only
    leak state between requests; and httpx's cookie handling builds two urllib request
    objects for every response (4 % of the daemon's CPU at full ingest)."""

    @property
    def cookies(self) -> httpx.Cookies:
        return _NO_COOKIES

    @cookies.setter
    def cookies(self, cookies) -> None:
        pass


_NO_COOKIES = _NoCookies()


class SupplierClient:
    def __init__(
        self,
        api: ApiConfig,
        *,
        limiter: RateLimiter | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        backoff_base: float = 0.2,
        backoff_cap: float = 10.0,
    ):
        self.api = api
        self.limiter = limiter or RateLimiter(api.rate_limit)
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.stats: collections.Counter = collections.Counter()
        # Few connections, all kept alive: the pipeline runs a handful of requests at once
        # (download workers, poll, outbox), and httpcore scans its whole pool on every
        # request, so a big pool cost more CPU than it saved (ingest profile).
        limits = httpx.Limits(max_connections=CONNECTIONS, max_keepalive_connections=CONNECTIONS)
        # API calls go straight to the transport (aiohttp's, transport.py; a test's replaces
        # it): no httpx client between. It would merge every path into the base URL, build
        # the redirect request of every 303 (parsing the long pre-signed Location a
        # character at a time) and run its auth, cookie and hook machinery for nothing: half
        # of an API call's CPU (0.7 of 1.5 ms, measured against the sandbox). Each request
        # carries the same headers and timeouts an httpx client would give it.
        self._base_url = api.base_url.rstrip("/")
        self._transport = transport or api_transport(verify=api.verify_tls, limits=limits)
        self._timeouts = httpx.Timeout(api.timeout).as_dict()
        # No base URL, no auth: pre-signed PDF URLs and the token endpoint live elsewhere.
        self._raw = _CookielessClient(
            timeout=api.timeout, verify=api.verify_tls,
            transport=transport or api_transport(verify=api.verify_tls, limits=limits),
            limits=limits, follow_redirects=False,
        )
        #: Called with a one-line message for each list item skipped as malformed.
        self.on_malformed: Callable[[str], None] | None = None
        self.tokens: TokenProvider | None = None
        #: The ``Date`` header of the last status() answer (``appliance doctor``'s clock check).
        self.server_date: str | None = None
        if api.auth == "jwt":
            # Loads the private key now: a key others can read stops start-up, not a poll.
            self.tokens = TokenProvider(api, self._raw, limiter=self.limiter)

    async def __aenter__(self) -> "SupplierClient":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._transport.aclose()
        await self._raw.aclose()

    # --- the retry loop ----------------------------------------------------------------

    def _backoff(self, attempt: int) -> float:
        return random.uniform(0, min(self.backoff_cap, self.backoff_base * 2 ** (attempt - 1)))

    def _unavailable(self, url: str, attempts: int, reason: str) -> ApiUnavailable:
        return ApiUnavailable(
            f"cannot reach the Supplier API at {url} after {attempts} attempt(s) ({reason}); "
            "check [api] base_url, the network and that the service is up"
        )

    def _malformed(self, message: str) -> None:
        self.stats["malformed"] += 1
        log.warning("%s", message)
        if self.on_malformed is not None:
            self.on_malformed(message)

    def _tls_refused(self, url: str, e: Exception) -> ApiUnavailable | None:
        """A certificate we do not trust is a set-up problem: say so, do not retry."""
        seen: BaseException | None = e
        while seen is not None:
            if isinstance(seen, ssl.SSLCertVerificationError):
                real = getattr(seen, "certificate_error", seen)  # aiohttp wraps the ssl error
                why = (getattr(real, "verify_message", None) or getattr(real, "reason", None)
                       or "verification failed")
                return ApiUnavailable(
                    f"TLS certificate of {httpx.URL(url).host} is not trusted ({why}); install the "
                    "right CA certificate (for a development server only: [api] verify_tls = false)")
            seen = seen.__cause__ or seen.__context__
        return None

    async def _send(self, request: httpx.Request, cap: int, what: str) -> httpx.Response:
        """Send (a redirect is an answer, never followed); read the body under ``cap``
        (error bodies are only kept for their message, so they are truncated instead)."""
        resp = await self._transport.handle_async_request(request)
        resp.request = request
        failed = resp.status_code >= 400
        try:
            return await read_capped(resp, MAX_ERROR_BODY if failed else cap, truncate=failed)
        except BodyTooLarge as e:
            raise ResponseTooLarge(resp.status_code, f"{what}: {e}", "TOO_LARGE") from None
        except BadJson as e:
            raise ApiError(resp.status_code, f"{what}: {e}") from None

    async def _request(
        self, kind: str, method: str, path: str, *, expect: tuple[int, ...] = (200,),
        params: dict | None = None, body: Any = None, correlation_id: str | None = None,
        cap: int = MAX_JSON_BODY, prepaid: bool = False, retries: int | None = None,
        send_by: float | None = None, urgent: bool = False,
    ) -> httpx.Response:
        """``prepaid``: the caller already took the first attempt's token; ``retries``
        overrides ``[api] max_retries``; ``send_by`` (epoch seconds): raise SendTooLate,
        sending nothing, if the first attempt's token comes after it (the limiter may have
        waited out a Retry-After); ``urgent``: served before other calls by the limiter.
        Every answer tells the limiter how the shared budget is doing: a 429 penalises it,
        anything else rewards it (AIMD)."""
        content = None if body is None else json.dumps(body).encode()
        max_retries = self.api.max_retries if retries is None else retries
        attempt = 0
        reauthorised = False
        url = f"{self._base_url}{path}"
        while True:
            if prepaid:
                prepaid = False
            else:
                await self.limiter.acquire(urgent)
            if send_by is not None and attempt == 0 and time.time() > send_by:
                raise SendTooLate(f"{method} {path}: not sent, its deadline passed waiting for the rate limit")
            self.stats[kind] += 1
            headers = {**BASE_HEADERS, "X-Request-ID": str(uuid.uuid4()), "Accept": JSON_API}
            if correlation_id:
                headers["X-Correlation-ID"] = str(correlation_id)
            if content is not None:
                headers["Content-Type"] = JSON_API
            retry_after: float | None = None
            try:
                if self.tokens is not None:
                    bearer = await self.tokens.token()
                    self.stats["token"] = self.tokens.requests
                    headers["Authorization"] = f"Bearer {bearer}"
                request = httpx.Request(method, url, params=params, content=content, headers=headers,
                                        extensions={"timeout": self._timeouts})
                resp = await self._send(request, cap, f"{method} {path}")
            except TokenError as e:
                self.stats[f"error.{kind}.token"] += 1
                if not e.retryable:
                    raise
                failure: Exception = e
            except httpx.TransportError as e:  # timeouts, refused/reset connections
                self.stats[f"error.{kind}.{type(e).__name__}"] += 1
                if tls := self._tls_refused(url, e):
                    raise tls from None
                failure = e
            else:
                if resp.status_code not in expect:  # by kind and answer, for the metrics
                    self.stats[f"error.{kind}.{resp.status_code}"] += 1
                if resp.status_code == 429:
                    retry_after = parse_retry_after(resp.headers.get("retry-after"))
                    self.limiter.penalise(retry_after)
                else:
                    self.limiter.reward()
                if resp.status_code in expect:
                    return resp
                if resp.status_code == 401 and self.tokens is not None and not reauthorised:
                    reauthorised = True  # token revoked or expired early: one fresh try
                    self.tokens.invalidate()
                    continue
                if resp.status_code not in RETRY_STATUSES:
                    raise error_from_response(resp)
                failure = error_from_response(resp)
            attempt += 1
            if attempt > max_retries:
                if isinstance(failure, (ApiError, TokenError)):
                    raise failure
                raise self._unavailable(url, attempt, type(failure).__name__) from None
            delay = self._backoff(attempt)
            if retry_after is not None:
                delay = min(retry_after, MAX_RETRY_AFTER) + delay * 0.1
            await asyncio.sleep(delay)

    # --- letters ------------------------------------------------------------------------

    async def list_letters(self, limit: int = 2500) -> list[LetterRef]:
        """PENDING letters.  Items that break the contract (missing or mistyped fields, an
        unsafe id, a status other than PENDING) are skipped with a warning, not fatal: the
        rest of the list still gets printed."""
        resp = await self._request("list", "GET", "/letters", params={"limit": limit},
                                   cap=MAX_LIST_BODY)
        data = json_body(resp, "GET /letters").get("data")
        if not isinstance(data, list):
            raise ApiError(resp.status_code, "GET /letters: response has no data list")
        if len(data) > limit:
            self._malformed(f"GET /letters: {len(data)} letters for limit {limit}; "
                            f"took the first {limit}")
        refs, seen = [], set()
        for item in data[:limit]:
            try:
                ref = letter_from(item, "GET /letters", need_hash=True)
            except ApiError as e:
                self._malformed(f"{e.detail}; letter skipped")
                continue
            if ref.status != Status.PENDING:
                self._malformed(f"GET /letters: letter {ref.id} listed as {ref.status}, not "
                                "PENDING; letter skipped")
                continue
            if ref.id in seen:
                self._malformed(f"GET /letters: letter {ref.id} listed twice; kept the first")
                continue
            seen.add(ref.id)
            refs.append(ref)
        return refs

    async def get_letter(self, letter_id: str) -> LetterRef:
        return await self._get_letter("get", letter_id)

    async def read_back(self, letter_id: str) -> LetterRef | None:
        """GET /letters/{id} from spare rate budget only, for the prover: None at once when
        the limiter has no token to spare (someone is waiting, the bucket is empty or a
        Retry-After runs), so intake never waits for it; otherwise one attempt, no retries,
        raising what ``get_letter`` raises."""
        path_id(letter_id, "GET /letters/{id}")  # a bad id is refused before a token is spent
        if not self.limiter.try_acquire():
            return None
        return await self._get_letter("read_back", letter_id, prepaid=True, retries=0)

    async def _get_letter(self, kind: str, letter_id: str, **options: Any) -> LetterRef:
        path = f"/letters/{path_id(letter_id, 'GET /letters/{id}')}"
        resp = await self._request(kind, "GET", path, correlation_id=letter_id, **options)
        ref = letter_from(json_body(resp, f"GET {path}").get("data"), f"GET {path}", need_hash=False)
        if ref.id != letter_id:
            raise ApiError(resp.status_code, f"GET {path}: answered with letter {ref.id}")
        return ref

    async def patch_letter(self, letter_id: str, status: str, reason_code: str | None = None,
                           reason_text: str | None = None, *, retries: int | None = None,
                           send_by: float | None = None) -> None:
        """``retries`` overrides ``[api] max_retries`` (the outbox makes one attempt and
        keeps its own retry schedule, durable across restarts); ``send_by``: see ``_request``."""
        path_id(letter_id, "PATCH /letters/{id}")
        body = {"data": letter_item(letter_id, status, reason_code, reason_text)}
        await self._request("patch", "PATCH", f"/letters/{letter_id}", expect=(200, 202),
                            body=body, correlation_id=letter_id, retries=retries, send_by=send_by,
                            urgent=True)  # status updates go before downloads

    async def post_letters(self, updates: list[StatusUpdate], *, batch_size: int = 500,
                           retries: int | None = None, send_by: float | None = None) -> int:
        """Send updates in order; returns the number of requests made.  ``retries`` and
        ``send_by`` as for ``patch_letter``."""
        chunks = chunk_updates(list(updates), batch_size)
        for chunk in chunks:
            body = {"data": [letter_item(u.letter_id, u.status, u.reason_code, u.reason_text)
                             for u in chunk]}
            await self._request("post_letters", "POST", "/letters", expect=(200, 202), body=body,
                                retries=retries, send_by=send_by, urgent=True)
        return len(chunks)

    # --- PDF download -------------------------------------------------------------------

    async def download(self, letter_id: str, dest: Path, *, correlation_id: str | None = None,
                       max_bytes: int | None = None) -> Download:
        """Fetch a letter's PDF to ``dest`` (for ``appliance api data``; the daemon fetches
        in its intake workers instead).  The same fetcher and host rules as the workers,
        run in a thread; one fresh URL if the first has expired."""
        from appliance.intake.fetch import FetchLimits, fetch
        from appliance.intake.hosts import HostPolicy

        dest = Path(dest)
        cap = self.api.max_pdf_bytes if max_bytes is None else max_bytes
        limits = FetchLimits(max_bytes=cap, verify_tls=self.api.verify_tls)
        policy = HostPolicy.parse(self.api.presigned_hosts)
        url = await self.data_url(letter_id, correlation_id=correlation_id)
        attempt, relocated = 0, False
        while True:
            self.stats["presigned"] += 1
            try:
                got = await asyncio.to_thread(fetch, url, dest, limits, policy)
                return Download(path=dest, sha256=got.sha256, size=got.size)
            except PdfTooLarge:
                raise TooLarge(413, f"letter {letter_id} PDF too large: over the {cap}-byte size cap",
                               "TOO_LARGE") from None
            except FetchFault as e:
                failure = e
            if failure.expired and not relocated:
                relocated = True  # the pre-signed URL expired on the way: ask for a fresh one
                url = await self.data_url(letter_id, correlation_id=correlation_id)
                continue
            retryable = (failure.kind not in ("policy", "redirect", "encoding")
                         and (failure.status is None or failure.status in RETRY_STATUSES))
            attempt += 1
            if not retryable or attempt > self.api.max_retries:
                if failure.status is not None:
                    kind = ServerError if failure.status >= 500 else NotFound if failure.status == 404 else ApiError
                    raise kind(failure.status, f"pre-signed download failed: {failure.detail}",
                               failure.s3_code or None)
                raise ApiUnavailable(f"cannot download letter {letter_id} PDF: {failure.detail}; "
                                     "check the network and storage service") from None
            await asyncio.sleep(self._backoff(attempt))

    async def data_url(self, letter_id: str, *, correlation_id: str | None = None) -> str:
        """GET /letters/{id}/data: the 303's pre-signed Location, made absolute.  Only an
        http(s) URL is returned, and never plain http when the API itself is https; whether
        its host may be fetched is the intake's host policy (``[api] presigned_hosts``)."""
        path = f"/letters/{path_id(letter_id, 'GET /letters/{id}/data')}/data"
        resp = await self._request("data", "GET", path, expect=(303,),
                                   correlation_id=correlation_id or letter_id)
        location = resp.headers.get("location")
        if not location:
            raise ApiError(resp.status_code, f"GET {path}: 303 without a Location header")
        # urllib, not httpx.URL: a pre-signed URL is long, and httpx parses it a character
        # at a time (a tenth of the daemon's CPU per letter); the worker that fetches it
        # parses it again, and the intake's host policy is checked there.
        try:
            given = urlsplit(location)
            target = urljoin(self.api.base_url + path, location)
            parts = urlsplit(target)
            host = parts.hostname if given.netloc or not given.scheme else None  # "http:///x": no host
            parts.port  # noqa: B018 - raises ValueError for a port that is not a number
        except ValueError:
            parts, host = None, None
        if parts is None or parts.scheme not in ("http", "https") or not host or any(
                c in target for c in "\r\n\t "):
            raise ApiError(resp.status_code, f"GET {path}: 303 Location {shown(location)} is not "
                                             "an http(s) URL; not followed")
        if self.api.base_url.startswith("https:") and parts.scheme != "https":
            raise ApiError(resp.status_code, f"GET {path}: 303 Location would leave https for "
                                             f"plain http ({host}); not followed")
        return target

    # --- management information and health -----------------------------------------------

    async def post_mi(self, line_item: str, timestamp: datetime | str, quantity: int, *,
                      specification_id: str | None = None, group_id: str | None = None,
                      stock_remaining: int | None = None) -> dict:
        if isinstance(timestamp, datetime):
            ts = timestamp if timestamp.tzinfo else timestamp.replace(tzinfo=timezone.utc)
            timestamp = ts.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace(
                "+00:00", "Z")
        attrs: dict[str, Any] = {"lineItem": line_item, "timestamp": timestamp, "quantity": quantity}
        for key, value in (("specificationId", specification_id), ("groupId", group_id),
                           ("stockRemaining", stock_remaining)):
            if value is not None:
                attrs[key] = value
        body = {"data": {"type": "ManagementInformation", "attributes": attrs}}
        resp = await self._request("mi_post", "POST", "/mi", expect=(200, 201), body=body)
        return mi_record(json_body(resp, "POST /mi"), "POST /mi")

    async def get_mi(self, mi_id: str) -> dict:
        resp = await self._request("mi_get", "GET", f"/mi/{path_id(mi_id, 'GET /mi/{id}')}")
        return mi_record(json_body(resp, f"GET /mi/{mi_id}"), f"GET /mi/{mi_id}")

    async def status(self) -> dict:
        """GET /_status: the service's own answer, or {"status": "ok"} for an empty 200."""
        resp = await self._request("status", "GET", "/_status")
        self.server_date = resp.headers.get("date")
        try:
            body = parse_json(resp.content)
        except ValueError:
            body = None
        return body if isinstance(body, dict) else {"status": "ok", "body": resp.text.strip()}
