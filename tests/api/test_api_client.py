"""SupplierClient against the real local sandbox: endpoints, headers, retries, limiter."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import uuid
from dataclasses import replace

import httpx
import pytest

from appliance.api.client import (
    ApiError,
    ApiUnavailable,
    NotFound,
    ServerError,
    StatusUpdate,
    SupplierClient,
    TooLarge,
    chunk_updates,
    parse_retry_after,
)
from appliance.api.ratelimit import RateLimiter, max_in_window
from appliance.config.settings import sandbox_api
from appliance.core.errors import RateLimited
from appliance.sandbox import Sandbox, SandboxOptions
from appliance.sandbox.model import DOCUMENT_ONLY

JSONAPI = "application/vnd.api+json"


@pytest.fixture
async def sb():
    sandbox = Sandbox(SandboxOptions(**DOCUMENT_ONLY, letters=50, seed=1, bad_ratio=0.2))
    await sandbox.start(host="127.0.0.1", port=0)
    yield sandbox
    await sandbox.stop()


def make_client(sandbox, **api_overrides) -> SupplierClient:
    api = replace(sandbox_api(sandbox.base_url), **api_overrides)
    return SupplierClient(api, backoff_base=0.01, backoff_cap=0.05)


@pytest.fixture
async def client(sb):
    async with make_client(sb) as c:
        yield c


def records(sandbox, kind):
    return [r for r in sandbox.log if r.kind == kind]


# --- endpoints -------------------------------------------------------------------------

async def test_list_letters_returns_the_pending_letters(sb, client):
    letters = await client.list_letters()
    assert [x.id for x in letters] == list(sb.pending)
    for x in letters:
        real = sb.letters[x.id]
        assert (x.specification_id, x.group_id, x.status, x.sha256) == (
            real.specification_id, real.group_id, "PENDING", real.sha256)
    assert len(await client.list_letters(limit=7)) == 7
    assert records(sb, "list")[-1].query == {"limit": "7"}


async def test_every_api_request_carries_the_contract_headers(sb, client):
    some = next(iter(sb.letters))
    await client.list_letters(limit=3)
    await client.get_letter(some)
    await client.patch_letter(some, "ACCEPTED")
    api = [r for r in sb.log if r.kind in ("list", "get", "patch")]
    assert len(api) == 3
    ids = [r.headers["x-request-id"] for r in api]
    assert len(set(ids)) == 3 and all(uuid.UUID(i).version == 4 for i in ids)
    assert all(r.headers["accept"] == JSONAPI for r in api)
    assert "authorization" not in api[0].headers  # sandbox mode: auth "none"
    get, patch = api[1], api[2]
    assert get.headers["x-correlation-id"] == some == patch.headers["x-correlation-id"]
    assert patch.headers["content-type"] == JSONAPI
    assert json.loads(patch.body) == {
        "data": {"type": "Letter", "id": some, "attributes": {"status": "ACCEPTED"}}}


async def test_get_letter_and_not_found(sb, client):
    some = next(iter(sb.letters))
    got = await client.get_letter(some)
    assert (got.id, got.status, got.specification_id) == (some, "PENDING",
                                                           sb.letters[some].specification_id)
    with pytest.raises(NotFound) as e:
        await client.get_letter("no-such-letter")
    assert e.value.status == 404 and e.value.detail
    assert len(records(sb, "get")) == 2  # a 404 is not retried


async def test_download_good_letters_match_listed_hash(sb, client, tmp_path):
    good = [x for x in sb.letters.values() if x.kind == "good"][:5]
    for letter in good:
        dest = tmp_path / "pdf" / f"{letter.id}.pdf"
        got = await client.download(letter.id, dest)
        assert got.sha256 == letter.sha256
        assert dest.read_bytes() == letter.pdf and got.size == len(letter.pdf)
        assert os.stat(dest).st_mode & 0o777 == 0o600
    assert sorted(p.name for p in (tmp_path / "pdf").iterdir()) == sorted(
        f"{x.id}.pdf" for x in good)  # no temp files left behind
    bad = next(x for x in sb.letters.values() if x.kind == "hash")
    assert (await client.download(bad.id, tmp_path / "bad.pdf")).sha256 != bad.sha256
    assert client.stats["data"] == client.stats["presigned"] == 6


async def test_download_size_cap_enforced(sb, client, tmp_path):
    letter = next(iter(sb.letters.values()))
    dest = tmp_path / "x.pdf"
    with pytest.raises(TooLarge) as e:
        await client.download(letter.id, dest, max_bytes=len(letter.pdf) - 1)
    assert e.value.code == "TOO_LARGE"
    assert list(tmp_path.iterdir()) == []
    # the configured cap applies by default
    async with make_client(sb, max_pdf_bytes=100) as small:
        with pytest.raises(TooLarge):
            await small.download(letter.id, dest)
    assert list(tmp_path.iterdir()) == []


async def test_download_unknown_letter(client, tmp_path):
    with pytest.raises(NotFound):
        await client.download("no-such-letter", tmp_path / "x.pdf")


async def test_presigned_download_retried_on_server_error(sb, client, tmp_path):
    letter = next(x for x in sb.letters.values() if x.kind == "good")
    sb.faults.scope.add("presigned")
    sb.faults.rate_limit_next = 0
    sb.faults.error_ratio = 1.0
    sb.faults.scope.discard("data")  # let the 303 through, fail the pre-signed GET
    task = asyncio.create_task(client.download(letter.id, tmp_path / "x.pdf"))
    while len(records(sb, "presigned")) < 2:
        await asyncio.sleep(0.01)
    sb.faults.error_ratio = 0.0
    got = await task
    assert got.sha256 == letter.sha256
    statuses = [r.status for r in records(sb, "presigned")]
    assert statuses[-1] == 200 and all(s >= 500 for s in statuses[:-1])
    assert len(records(sb, "data")) == 1  # the API call itself was not repeated


async def test_expired_presigned_url_is_fetched_again_once(tmp_path):
    # presign_ttl=0: every pre-signed URL has expired by the time it is used
    sandbox = Sandbox(SandboxOptions(letters=1, seed=1, bad_ratio=0, **{**DOCUMENT_ONLY, "presign_ttl": 0}))
    await sandbox.start(host="127.0.0.1", port=0)
    try:
        async with make_client(sandbox) as c:
            with pytest.raises(ApiError) as e:
                await c.download(next(iter(sandbox.letters)), tmp_path / "x.pdf")
        assert e.value.status == 403 and "expired" in e.value.detail
        assert [r.kind for r in sandbox.log] == ["data", "presigned", "data", "presigned"]
        assert list(tmp_path.iterdir()) == []
    finally:
        await sandbox.stop()


async def test_patch_letter_sets_status_and_reason(sb, client):
    a, b = list(sb.pending)[:2]
    await client.patch_letter(a, "ACCEPTED")
    await client.patch_letter(b, "REJECTED", "HASH_MISMATCH", "PDF sha256 does not match")
    assert sb.letters[a].status == "ACCEPTED"
    assert (sb.letters[b].status, sb.letters[b].reason_code) == ("REJECTED", "HASH_MISMATCH")
    assert a not in [x.id for x in await client.list_letters()]


async def test_client_error_surfaces_server_detail_without_retry(sb, client):
    some = next(iter(sb.letters))
    with pytest.raises(ApiError) as e:
        await client.patch_letter(some, "PENDING")
    err = e.value
    assert err.status == 400 and err.detail and "\n" not in str(err)
    assert type(err) is ApiError
    assert len(records(sb, "patch")) == 1
    assert sb.letters[some].status == "PENDING"


async def test_post_letters_chunks_of_batch_size():
    sandbox = Sandbox(SandboxOptions(**DOCUMENT_ONLY, letters=1200, seed=2, bad_ratio=0))
    await sandbox.start(host="127.0.0.1", port=0)
    try:
        async with make_client(sandbox) as c:
            updates = [StatusUpdate(i, "ACCEPTED") for i in sandbox.letters]
            assert await c.post_letters(updates, batch_size=500) == 3
        sizes = [len(json.loads(r.body)["data"]) for r in records(sandbox, "post_letters")]
        assert sizes == [500, 500, 200]
        assert all(r.headers["content-type"] == JSONAPI for r in records(sandbox, "post_letters"))
        assert all(x.status == "ACCEPTED" for x in sandbox.letters.values())
    finally:
        await sandbox.stop()


async def test_post_letters_never_repeats_an_id_in_a_request(sb, client):
    a, b, c = list(sb.pending)[:3]
    updates = [StatusUpdate(a, "ACCEPTED"), StatusUpdate(b, "ACCEPTED"),
               StatusUpdate(a, "PRINTED"), StatusUpdate(c, "ACCEPTED"),
               StatusUpdate(a, "ENCLOSED"), StatusUpdate(b, "PRINTED")]
    assert await client.post_letters(updates, batch_size=500) == 3
    bodies = [[(d["id"], d["attributes"]["status"]) for d in json.loads(r.body)["data"]]
              for r in records(sb, "post_letters")]
    # first fit: c's only update and b's second ride in the earliest request allowed
    assert bodies == [[(a, "ACCEPTED"), (b, "ACCEPTED"), (c, "ACCEPTED")],
                      [(a, "PRINTED"), (b, "PRINTED")],
                      [(a, "ENCLOSED")]]
    assert [s for s, _ in sb.letters[a].history] == ["PENDING", "ACCEPTED", "PRINTED", "ENCLOSED"]
    assert [s for s, _ in sb.letters[b].history] == ["PENDING", "ACCEPTED", "PRINTED"]


def test_chunk_updates_rules():
    u = [StatusUpdate(str(i % 4), "X") for i in range(10)]
    chunks = chunk_updates(u, 5)
    assert sorted(id(x) for ch in chunks for x in ch) == sorted(id(x) for x in u)  # nothing lost
    for ch in chunks:
        assert len({x.letter_id for x in ch}) == len(ch)  # no id twice in one request
    assert [len(ch) for ch in chunks] == [4, 4, 2]  # split at the repeat, not at 5
    assert [len(ch) for ch in chunk_updates(u, 3)] == [3, 3, 3, 1]
    assert chunk_updates([], 5) == []


def test_chunk_updates_packs_interleaved_progress_and_keeps_letter_order():
    # A, B, C, D each move ACCEPTED -> PRINTED while the outbox gathers a batch
    seq = [StatusUpdate(l, s) for l, s in [("A", "ACCEPTED"), ("B", "ACCEPTED"), ("A", "PRINTED"),
                                           ("B", "PRINTED"), ("C", "ACCEPTED"), ("C", "PRINTED"),
                                           ("D", "ACCEPTED"), ("D", "PRINTED")]]
    chunks = chunk_updates(seq, 500)
    assert [[(x.letter_id, x.status) for x in ch] for ch in chunks] == [
        [("A", "ACCEPTED"), ("B", "ACCEPTED"), ("C", "ACCEPTED"), ("D", "ACCEPTED")],
        [("A", "PRINTED"), ("B", "PRINTED"), ("C", "PRINTED"), ("D", "PRINTED")],
    ]
    # per letter, the order across requests is the order given
    position = {}
    for n, ch in enumerate(chunk_updates(seq * 1, 3)):
        for x in ch:
            position.setdefault(x.letter_id, []).append((n, x.status))
    for letter, seen in position.items():
        assert [s for _, s in sorted(seen)] == ["ACCEPTED", "PRINTED"]
        assert len({n for n, _ in seen}) == 2


async def test_mi_round_trip(sb, client):
    created = await client.post_mi("envelope-business-standard", "2024-01-02T03:04:05.000Z", 22,
                                   specification_id="notify-c5", group_id="g1", stock_remaining=2000)
    assert created["id"] in sb.mi
    assert created["lineItem"] == "envelope-business-standard" and created["quantity"] == 22
    assert await client.get_mi(created["id"]) == created
    sent = json.loads(records(sb, "mi_post")[0].body)
    assert sent["data"]["type"] == "ManagementInformation"
    assert sent["data"]["attributes"]["stockRemaining"] == 2000
    with pytest.raises(NotFound):
        await client.get_mi("no-such-mi")


async def test_status_endpoint(sb, client):
    assert isinstance(await client.status(), dict)
    assert records(sb, "status")[0].status == 200


# --- retries ---------------------------------------------------------------------------

async def test_429_retry_after_honoured(sb, client):
    sb.faults.retry_after = 1
    sb.faults.rate_limit_next = 1
    assert len(await client.list_letters(limit=1)) == 1
    first, second = records(sb, "list")
    assert (first.status, second.status) == (429, 200)
    assert second.time - first.time >= 1.0
    assert client.stats["list"] == 2
    assert client.stats["error.list.429"] == 1  # failures by kind and answer, for the metrics


async def test_429_until_retries_run_out_raises_rate_limited(sb):
    sb.faults.retry_after = 0
    sb.faults.rate_limit_next = 100
    async with make_client(sb, max_retries=2) as c:
        with pytest.raises(RateLimited):
            await c.list_letters()
    assert len(records(sb, "list")) == 3


async def test_server_errors_retried(sb):
    sb.faults.error_ratio = 0.5
    async with make_client(sb, max_retries=12) as c:
        for _ in range(10):
            await c.list_letters(limit=1)
    statuses = [r.status for r in records(sb, "list")]
    assert statuses.count(200) == 10 and {500, 502} & set(statuses)
    assert sum(c.stats[f"error.list.{n}"] for n in (500, 502, 503)) == len(statuses) - 10
    sb.faults.error_ratio = 1.0
    async with make_client(sb, max_retries=2) as c:
        with pytest.raises(ServerError):
            await c.list_letters()


async def test_dropped_connections_retried_then_unavailable(sb):
    sb.faults.drop_ratio = 0.5
    async with make_client(sb, max_retries=12) as c:
        for _ in range(5):
            await c.list_letters(limit=1)
    assert 0 in [r.status for r in records(sb, "list")]
    sb.faults.drop_ratio = 1.0
    async with make_client(sb, max_retries=1) as c:
        with pytest.raises(ApiUnavailable, match=sb.base_url):
            await c.list_letters()


async def test_timeout_becomes_unavailable(sb):
    sb.faults.latency_ms = 400
    async with make_client(sb, timeout=0.05, max_retries=1) as c:
        with pytest.raises(ApiUnavailable):
            await c.get_letter(next(iter(sb.letters)))


async def test_connection_refused_is_one_line_naming_the_url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    async with SupplierClient(replace(sandbox_api(url), max_retries=2), backoff_base=0.01) as c:
        with pytest.raises(ApiUnavailable) as e:
            await c.status()
    msg = str(e.value)
    assert url in msg and "\n" not in msg and "3 attempt" in msg and "check" in msg


# --- rate limiter ----------------------------------------------------------------------

async def test_limiter_never_exceeded_over_2000_calls(sb):
    limiter = RateLimiter(300, burst=10, record=True)
    async with SupplierClient(sandbox_api(sb.base_url), limiter=limiter) as c:
        await asyncio.gather(*(c.status() for _ in range(2000)))
    assert limiter.acquired == 2000 == len(records(sb, "status"))
    assert max_in_window(limiter.times) <= 300 + 10
    # What the server saw: requests can bunch in flight after leaving the limiter (event
    # loop and connection scheduling on a busy 2-core machine), so check the server side
    # over 2-second windows and over the whole run rather than per second.
    seen = sorted(r.time for r in records(sb, "status"))
    assert max_in_window(seen, window=2.0) <= 2 * 300 + 10 + 40
    assert seen[-1] - seen[0] >= (2000 - 10) / 300 * 0.97
    assert limiter.times[-1] - limiter.times[0] >= (2000 - 10) / 300 * 0.99


async def test_limiter_counts_every_retry(sb):
    limiter = RateLimiter(1000, burst=5, record=True)
    sb.faults.retry_after = 0
    sb.faults.rate_limit_next = 3
    async with SupplierClient(sandbox_api(sb.base_url), limiter=limiter, backoff_base=0.001) as c:
        await c.list_letters(limit=1)
    assert limiter.acquired == len(records(sb, "list")) == 4


async def test_limiter_bucket_with_fake_clock():
    now = [0.0]

    async def fake_sleep(dt):
        now[0] += dt

    lim = RateLimiter(10, burst=3, clock=lambda: now[0], sleep=fake_sleep, record=True)
    for _ in range(23):
        await lim.acquire()
    assert lim.times[:3] == [0.0, 0.0, 0.0]  # the burst goes at once
    assert lim.times[-1] == pytest.approx(2.0)  # then 10 per second
    assert max_in_window(lim.times) <= 10 + 3


def test_max_in_window():
    assert max_in_window([]) == 0
    assert max_in_window([0, 0.5, 0.99, 1.0, 1.5]) == 3
    assert max_in_window([0, 1, 2]) == 1


# --- parsing ---------------------------------------------------------------------------

def test_parse_retry_after_seconds_and_http_date():
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470) == 10.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412490) == 0.0


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"nodata": 1}'])
async def test_malformed_list_answers_raise_api_error(body):
    # a server that answers nonsense cannot be the sandbox: a mock transport stands in
    transport = httpx.MockTransport(lambda req: httpx.Response(200, content=body))
    async with SupplierClient(sandbox_api("http://127.0.0.1:9"), transport=transport) as c:
        with pytest.raises(ApiError) as e:
            await c.list_letters()
    assert "GET /letters" in str(e.value)


@pytest.mark.parametrize("body", [b'{"data": [{"id": "x"}]}',
                                  b'{"data": [{"id": "x", "attributes": {"status": "PENDING"}}]}'])
async def test_malformed_list_items_are_skipped_not_fatal(body):
    # one broken letter must not block the rest: skipped with a warning (tests/test_bad_inputs.py)
    transport = httpx.MockTransport(lambda req: httpx.Response(200, content=body))
    async with SupplierClient(sandbox_api("http://127.0.0.1:9"), transport=transport) as c:
        assert await c.list_letters() == []
    assert c.stats["malformed"] == 1


async def test_303_without_location_is_an_api_error(tmp_path):
    transport = httpx.MockTransport(lambda req: httpx.Response(303))
    async with SupplierClient(sandbox_api("http://127.0.0.1:9"), transport=transport) as c:
        with pytest.raises(ApiError, match="Location"):
            await c.download("x", tmp_path / "x.pdf")


async def test_size_cap_enforced_while_streaming_without_content_length(tmp_path):
    # the sandbox always sends Content-Length; storage answering chunked is a small real server
    async def storage(reader, writer):
        head = await reader.readuntil(b"\r\n\r\n")
        assert b"authorization" not in head.lower()
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
        for _ in range(10):
            writer.write(b"3e8\r\n" + b"x" * 1000 + b"\r\n")
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(storage, "127.0.0.1", 0)
    blob = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"

    def handler(req: httpx.Request) -> httpx.Response:
        return httpx.Response(303, headers={"Location": blob + "/blob"})

    api = replace(sandbox_api("http://127.0.0.1:9"), presigned_hosts=(blob,))
    try:
        async with SupplierClient(api, transport=httpx.MockTransport(handler)) as c:
            with pytest.raises(TooLarge):
                await c.download("x", tmp_path / "x.pdf", max_bytes=4500)
            assert list(tmp_path.iterdir()) == []
            got = await c.download("x", tmp_path / "x.pdf", max_bytes=10_000)
    finally:
        server.close()
    assert got.size == 10_000 and (tmp_path / "x.pdf").stat().st_size == 10_000


@pytest.mark.parametrize("base, location, expect", [
    ("http://127.0.0.1:9", "/blob/x?sig=a%2Fb", "http://127.0.0.1:9/blob/x?sig=a%2Fb"),  # relative: joined
    ("http://127.0.0.1:9", "https://bucket.example/x?X-Amz-Signature=ab", "https://bucket.example/x?X-Amz-Signature=ab"),
    ("https://api.example", "https://bucket.example/x", "https://bucket.example/x"),
    ("https://api.example", "http://bucket.example/x", "would leave https"),
    ("http://127.0.0.1:9", "http:///nohost", "not an http"),
    ("http://127.0.0.1:9", "ftp://bucket.example/x", "not an http"),
    ("http://127.0.0.1:9", "http://bucket.example/a b", "not an http"),
])
async def test_data_url_joins_and_checks_the_303_location(base, location, expect):
    """The Location is joined and checked with urllib (httpx.URL parsed long pre-signed URLs a
    character at a time): same verdicts, the URL handed on as sent."""
    transport = httpx.MockTransport(lambda req: httpx.Response(303, headers={"Location": location}))
    async with SupplierClient(sandbox_api(base), transport=transport) as c:
        if expect.startswith("http"):
            assert await c.data_url("x") == expect
        else:
            with pytest.raises(ApiError, match=expect):
                await c.data_url("x")


async def test_the_client_keeps_no_cookies():
    """A Set-Cookie from the API (or a load balancer before it) is never sent back: the API
    is authorised by its bearer token alone, and no state leaks from one request to the next."""
    seen = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req.headers.get("cookie"))
        return httpx.Response(200, json={"data": []}, headers={"Set-Cookie": "AWSALB=abc; Path=/"})

    async with SupplierClient(sandbox_api("http://127.0.0.1:9"), transport=httpx.MockTransport(handler)) as c:
        await c.list_letters()
        await c.list_letters()
    assert seen == [None, None]


async def test_api_requests_go_to_the_transport_as_an_httpx_client_would_send_them():
    """The client hands requests straight to its transport (no httpx client between, for
    CPU): each still carries the client's headers and timeouts, under a base URL with a
    path, and a 303 is the answer, never followed."""
    seen = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        if req.url.path.endswith("/data"):
            return httpx.Response(303, headers={"Location": "https://bucket.example/a.pdf?X-Sig=1"})
        return httpx.Response(200, json={"data": []})

    api = replace(sandbox_api("http://127.0.0.1:9/supplier/v1/"), timeout=7.5)
    async with SupplierClient(api, transport=httpx.MockTransport(handler)) as c:
        await c.list_letters(limit=30)
        assert await c.data_url("L1") == "https://bucket.example/a.pdf?X-Sig=1"
    listing, data = seen
    assert str(listing.url) == "http://127.0.0.1:9/supplier/v1/letters?limit=30"
    assert str(data.url) == "http://127.0.0.1:9/supplier/v1/letters/L1/data"
    for req in seen:
        assert req.headers["accept"] == "application/vnd.api+json"
        assert req.headers["accept-encoding"] == "gzip, deflate" and req.headers["host"] == "127.0.0.1:9"
        assert req.headers["user-agent"].startswith("python-httpx/") and len(req.headers["x-request-id"]) == 36
        assert req.extensions["timeout"] == {"connect": 7.5, "read": 7.5, "write": 7.5, "pool": 7.5}
