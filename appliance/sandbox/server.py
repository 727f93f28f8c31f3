"""The stateful local Notify Supplier API sandbox: state, lifecycle, faults and request log.

Route handlers live in ``routes.py``; this module decides what every request goes through
first (routing, the TPS limit, fault injection, auth, X-Request-ID) and records what
arrived.  The deployed server's queues are their own modules: ``queue.py`` (the PENDING
letters GET /letters serves, with visibility timeout) and ``updates.py`` (status updates
applied after the 202).
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import random
import secrets
import ssl
import time
from dataclasses import replace

from appliance.core.errors import UserError
from appliance.sandbox import bodies, hostile, routes
from appliance.sandbox.auth import TokenIssuer
from appliance.sandbox.httpserver import Request, Response, serve_connection
from appliance.sandbox.letters import DEFAULT_PRIORITY, LetterFactory, SandboxLetter
from appliance.sandbox.model import ALL_KINDS, API_KINDS, Faults, RequestRecord, SandboxOptions, UpdateRecord
from appliance.sandbox.pdfgen import make_pdf
from appliance.sandbox.presign import Presigner
from appliance.sandbox.queue import LetterQueue
from appliance.sandbox.throttle import SlidingWindow
from appliance.sandbox.updates import UpdateQueue

log = logging.getLogger(__name__)


class Sandbox:
    """One sandbox server.  ``Sandbox(opts)`` or ``Sandbox(letters=10, seed=3)``."""

    def __init__(self, opts: SandboxOptions | None = None, **overrides):
        self.opts = replace(opts or SandboxOptions(), **overrides)
        self.faults = Faults.from_options(self.opts)
        self.letters: dict[str, SandboxLetter] = {}
        self.pending = LetterQueue()  # PENDING letters, in the order GET /letters serves
        self.mi: dict[str, dict] = {}
        self.log: list[RequestRecord] = []
        #: letter id -> HTTP status (400, 404 or 422) its updates are refused with, until
        #: the entry is deleted; a refused update is not accepted, so not in ``updates``.
        self.refuse_updates: dict[str, int] = {}
        self._applier = UpdateQueue(lambda: self.faults, self.opts.seed + 2,
                                    self._apply_update)
        self.updates: list[UpdateRecord] = self._applier.records  # given 202, arrival order
        self._tps = SlidingWindow()
        self._applier_task: asyncio.Task | None = None
        self.base_url = ""
        self.token_url = ""
        self.issuer: TokenIssuer | None = None
        self._counts = dict.fromkeys(ALL_KINDS, 0)
        self._factory = LetterFactory(self.opts.seed)
        self._rng = random.Random(self.opts.seed + 1)
        self._presigner = Presigner()
        self._api_calls = 0
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._conn_tasks: set[asyncio.Task] = set()
        self._log_file = None
        self.add_letters(self.opts.letters)

    # --- state -----------------------------------------------------------------------

    @property
    def auth_mode(self) -> bool:
        return self.opts.auth_keys is not None

    def add_letters(self, n: int, bad_ratio: float | None = None,
                    priority: int | None = None) -> list[str]:
        """Make ``n`` more PENDING letters; returns their ids.  ``priority`` None = the
        factory's mix (about one in five urgent), else that priority for all of them."""
        ratio = self.opts.bad_ratio if bad_ratio is None else bad_ratio
        now = time.time()
        made = self._factory.make(n, ratio, priority)
        for letter in made:
            self._queue(letter, now)
        return [letter.id for letter in made]

    def _queue(self, letter: SandboxLetter, now: float) -> None:
        letter.history.append(("PENDING", now))
        self.letters[letter.id] = letter
        self.pending.add(letter, now)

    def add_letter(self, pdf: bytes | None = None, *, letter_id: str | None = None,
                   specification_id: str = "notify-c5", pages: int = 2, sha256: str | None = None,
                   group_id: str = "hostile-tests", listing=None, location: str | None = None,
                   kind: str = "given", storage_faults: list[str] | None = None,
                   data_faults: list[str] | None = None,
                   priority: int = DEFAULT_PRIORITY) -> str:
        """One PENDING letter made to order, for bad-input tests.

        ``pdf``: the exact bytes the pre-signed URL serves (default: a valid ``pages``-page
        PDF); ``sha256``: the listed hash (default: the bytes' real hash); ``letter_id``: any
        string, hostile ones included; ``listing``: the exact JSON value GET /letters shows
        for it (missing fields, wrong types...); ``location``: the 303's Location header
        ("" = none); ``storage_faults`` / ``data_faults``: how its next pre-signed and
        /data requests fail (``storage.STORAGE_FAULTS``; /data: an HTTP status such as
        "404", or "deep-error"), one per request; ``priority``: its place in the queue
        (lower is listed first).  Returns the id.
        """
        lid = letter_id if letter_id is not None else secrets.token_hex(16)
        body = make_pdf(lid, pages, (f"Specification {specification_id}",)) if pdf is None else pdf
        letter = SandboxLetter(id=lid, specification_id=specification_id, group_id=group_id,
                               pages=pages, kind=kind, listing=listing, location=location,
                               storage_faults=list(storage_faults or ()),
                               data_faults=list(data_faults or ()), priority=priority)
        letter.serve(body, sha256)
        self._queue(letter, time.time())
        return lid

    def set_status(self, letter: SandboxLetter, status: str, code: str | None,
                   text: str | None) -> None:
        """Apply a status (no transition check, as the real server's worker)."""
        letter.status, letter.reason_code, letter.reason_text = status, code, text
        letter.history.append((status, time.time()))
        if status != "PENDING":
            self.pending.pop(letter.id, None)

    def _apply_update(self, rec: UpdateRecord) -> None:
        self.set_status(self.letters[rec.letter_id], rec.status, rec.reason_code,
                        rec.reason_text)

    def list_letters(self, limit: int) -> list[SandboxLetter]:
        """The next ``limit`` visible PENDING letters, hidden for the visibility timeout."""
        return self.pending.take(limit, time.time(), self.faults.visibility_timeout)

    def accept_updates(self, updates: list[tuple[str, str, str | None, str | None]]) -> None:
        """Queue checked (id, status, reasonCode, reasonText) updates a 202 is given for."""
        self._applier.accept(updates, time.time())

    def applied_status(self, letter_id: str) -> str:
        """The letter's status as applied (what GET /letters/{id} shows)."""
        return self.letters[letter_id].status

    def quiescent(self) -> bool:
        """True when no accepted update is still waiting to be applied."""
        return self._applier.waiting() == 0

    @property
    def throttled(self) -> int:
        """How many API requests the TPS limit answered 429."""
        return self._tps.refused

    def counts(self) -> dict[str, int]:
        return dict(self._counts)

    def revoke_tokens(self) -> None:
        if self.issuer:
            self.issuer.revoke_all()

    # --- pre-signed URLs -------------------------------------------------------------

    def presigned_url(self, letter_id: str, expires: int | None = None,
                      issued_at: float | None = None) -> str:
        """A pre-signed-style URL for the letter's PDF (what the 303 points at)."""
        return self._presigner.url(self.base_url, letter_id,
                                   self.opts.presign_ttl if expires is None else expires,
                                   time.time() if issued_at is None else issued_at)

    def presign_problem(self, letter_id: str, query: dict[str, str]) -> str | None:
        """Why a pre-signed request is refused, or None if signature and expiry are good."""
        return self._presigner.problem(letter_id, query, time.time())

    # --- lifecycle -------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0,
                    ssl_context: ssl.SSLContext | None = None) -> None:
        """Listen (over TLS when ``ssl_context`` is given: base_url is then https)."""
        try:
            self._server = await asyncio.start_server(self._on_connection, host, port,
                                                      limit=64 * 1024, ssl=ssl_context)
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise UserError(f"sandbox: port {port} on {host} is already in use; stop the "
                                f"other process or choose another with --port") from None
            raise UserError(f"sandbox: cannot listen on {host}:{port} ({e.strerror}); "
                            f"check --host and --port") from None
        bound = self._server.sockets[0].getsockname()
        shown = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
        self.base_url = f"{'https' if ssl_context else 'http'}://{shown}:{bound[1]}"
        self.token_url = self.base_url + "/oauth2/token"
        if self.auth_mode:
            self.issuer = TokenIssuer(self.opts.auth_keys or {}, self.opts.api_key,
                                      self.token_url, self.opts.token_ttl)
        if self.opts.log_path:
            self._log_file = open(self.opts.log_path, "a", encoding="utf-8")
        self._applier_task = asyncio.create_task(self._applier.run(), name="sandbox-updates")
        self._applier_task.add_done_callback(_log_death)

    async def stop(self) -> None:
        if self._applier_task is not None:
            self._applier_task.cancel()
            await asyncio.gather(self._applier_task, return_exceptions=True)
            self._applier_task = None
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.transport.abort()
            for task in list(self._conn_tasks):
                task.cancel()
            await asyncio.gather(*self._conn_tasks, return_exceptions=True)
            await self._server.wait_closed()
            self._server = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    async def _on_connection(self, reader: asyncio.StreamReader,
                             writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._writers.add(writer)
        self._conn_tasks.add(task)
        try:
            await serve_connection(reader, writer, self.handle, self._bad_http)
        except asyncio.CancelledError:
            # Only stop() cancels these; finishing normally keeps asyncio's stream
            # callback from logging the cancellation as an error.
            pass
        finally:
            self._writers.discard(writer)
            self._conn_tasks.discard(task)

    @staticmethod
    def _bad_http(status: int) -> Response:
        return Response(status, bodies.error_body(status if status in bodies.ERROR_KINDS
                                                  else 400, "bad-request"),
                        [("Content-Type", bodies.JSONAPI)])

    # --- per request -----------------------------------------------------------------

    async def handle(self, req: Request) -> Response:
        kind, params, allowed = routes.resolve(req.method, req.path, self.auth_mode)
        self._counts[kind] += 1
        received = time.time()
        try:
            if kind in API_KINDS and not self._tps.admit(received, self.faults.tps_limit):
                resp = self._too_many(req, 1)
            else:
                resp = await self._answer(req, kind, params, allowed)
        except Exception:  # a sandbox bug must still answer, and be visible
            log.exception("sandbox: unexpected error answering %s %s", req.method, req.path)
            resp = self._api_error(req, 500)
        self._record(req, kind, received, 0 if resp.drop else resp.status)
        return resp

    async def _answer(self, req: Request, kind: str, params: dict, allowed: str) -> Response:
        if kind == "other":
            status = 405 if allowed else 404
            resp = self._api_error(req, status)
            if allowed:
                resp.headers.append(("Allow", allowed))
            return resp
        if kind in self.faults.scope:
            fault = await self._fault(req)
            if fault is not None:
                return fault
        if kind in API_KINDS:
            if self.issuer is not None and not self.issuer.is_valid(req.headers.get("authorization")):
                return self._api_error(req, 401)
            if not req.headers.get("x-request-id"):
                return self._api_error(req, 400, "The X-Request-ID header is required")
        mode = hostile.take(self, kind)
        if mode is not None:
            return hostile.answer(self, req, mode)
        return await routes.HANDLERS[kind](self, req, params)

    async def _fault(self, req: Request) -> Response | None:
        f = self.faults
        if f.latency_ms:
            await asyncio.sleep(f.latency_ms / 1000)
        if f.drop_ratio and self._rng.random() < f.drop_ratio:
            return Response(0, drop=True)
        self._api_calls += 1
        limited = False
        if f.rate_limit_next > 0:
            f.rate_limit_next -= 1
            limited = True
        elif f.rate_limit_every and self._api_calls % f.rate_limit_every == 0:
            limited = True
        if limited:
            return self._too_many(req, f.retry_after)
        if f.error_ratio and self._rng.random() < f.error_ratio:
            if self._rng.random() < 0.5:
                return self._api_error(req, 500)
            return Response(502, bodies.BAD_GATEWAY_BODY, self.echo_headers(req, bodies.JSON))
        return None

    # --- helpers the routes share --------------------------------------------------

    @staticmethod
    def request_id(req: Request) -> str:
        return req.headers.get("x-request-id") or "rrt-sandbox-" + secrets.token_hex(8)

    @staticmethod
    def echo_headers(req: Request, content_type: str | None = bodies.JSONAPI) -> list[tuple[str, str]]:
        headers = [("Content-Type", content_type)] if content_type else []
        rid = req.headers.get("x-request-id")
        if rid:
            headers.append(("X-Request-ID", rid))
        headers.append(("X-Correlation-ID", req.headers.get("x-correlation-id")
                        or secrets.token_hex(16)))
        return headers

    def _too_many(self, req: Request, retry: float) -> Response:
        shown = str(int(retry)) if float(retry).is_integer() else str(retry)
        return Response(429, bodies.too_many_requests_body(self.request_id(req), retry),
                        self.echo_headers(req, bodies.JSON) + [("Retry-After", shown)])

    def _api_error(self, req: Request, status: int, detail: str | None = None) -> Response:
        return Response(status, bodies.error_body(status, self.request_id(req), detail),
                        self.echo_headers(req))

    api_error = _api_error

    def json_response(self, req: Request, status: int, doc) -> Response:
        return Response(status, json.dumps(doc).encode(), self.echo_headers(req))

    def _record(self, req: Request, kind: str, received: float, status: int) -> None:
        rec = RequestRecord(received, req.method, req.path, dict(req.query), req.headers,
                            req.body, status, kind)
        self.log.append(rec)
        if self._log_file is not None:
            headers = dict(req.headers)
            present = "authorization" in headers
            if present:
                headers["authorization"] = "<redacted>"
            self._log_file.write(json.dumps({
                "time": rec.time, "kind": kind, "method": rec.method, "path": rec.path,
                "query": rec.query, "headers": headers, "authorization_present": present,
                "body": rec.body.decode("utf-8", "replace"), "status": status,
            }) + "\n")
            self._log_file.flush()


def _log_death(task: asyncio.Task) -> None:
    """The update worker ends only by cancellation; anything else must be seen."""
    if not task.cancelled() and task.exception() is not None:
        log.error("sandbox: update worker died", exc_info=task.exception())
