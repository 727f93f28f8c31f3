"""The local Notify Supplier API sandbox: strictness rules, state, PDFs and request log.

Every test talks HTTP to a really started sandbox (run_in_thread) with httpx.
Fault injection and the token endpoint are in test_sandbox_faults_auth.py.
"""

from __future__ import annotations

import hashlib
import io
import json

import httpx
import pypdf
import pytest

from appliance.core.errors import UserError
from appliance.core.packs import load_packs
from appliance.core.status import RETURN_REASONS
from appliance.intake import coverage
from appliance.sandbox import RequestRecord, Sandbox, SandboxOptions, run_in_thread
from appliance.sandbox.model import DOCUMENT_ONLY

JSONAPI = "application/vnd.api+json"
H = {"X-Request-ID": "req-1"}


@pytest.fixture
def sb():
    with run_in_thread(SandboxOptions(**DOCUMENT_ONLY, letters=30, bad_ratio=0.2, seed=7)) as sandbox:
        yield sandbox


@pytest.fixture
def client(sb):
    with httpx.Client(base_url=sb.base_url, headers=H, timeout=5) as c:
        yield c


def body_for(letter_id, status, **extra):
    return {"data": {"type": "Letter", "id": letter_id, "attributes": {"status": status, **extra}}}


def patch(client, letter_id, doc, content_type=JSONAPI):
    return client.patch(f"/letters/{letter_id}", content=json.dumps(doc),
                        headers={"Content-Type": content_type})


def post(client, path, doc, content_type=JSONAPI):
    return client.post(path, content=json.dumps(doc), headers={"Content-Type": content_type})


def assert_error(resp, status, code, detail_part=""):
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == JSONAPI
    (err,) = resp.json()["errors"]
    assert err["code"] == code and err["status"] == str(status)
    assert err["links"]["about"].startswith("https://digital.nhs.uk/")
    assert detail_part in err["detail"]


def first_good(sb):
    return next(l for l in sb.letters.values() if l.kind == "good" and l.status == "PENDING")


# --- listing ---------------------------------------------------------------------------

def test_list_returns_pending_letters_in_jsonapi_shape(sb, client):
    resp = client.get("/letters")
    assert resp.status_code == 200 and resp.headers["content-type"] == JSONAPI
    data = resp.json()["data"]
    assert len(data) == 30
    item = data[0]
    assert item["type"] == "Letter" and set(item) == {"id", "type", "attributes"}
    assert set(item["attributes"]) == {"specificationId", "groupId", "status", "sha256Hash"}
    assert all(d["attributes"]["status"] == "PENDING" for d in data)
    assert client.get("/letters", params={"limit": 4}).json()["data"] == data[:4]


@pytest.mark.parametrize("limit", ["0", "2501", "abc", "1.5", "-3", ""])
def test_list_limit_must_be_integer_1_to_2500(client, limit):
    assert_error(client.get(f"/letters?limit={limit}"), 400, "NOTIFY_INVALID_REQUEST",
                 "limit parameter must be a positive number")


def test_list_refuses_unknown_query_parameter(client):
    assert_error(client.get("/letters?page=2"), 400, "NOTIFY_INVALID_REQUEST",
                 "Only 'limit' query parameter")


def test_updated_letters_leave_the_pending_list(sb, client):
    ids = [d["id"] for d in client.get("/letters").json()["data"]]
    assert patch(client, ids[0], body_for(ids[0], "ACCEPTED")).status_code == 202
    assert post(client, "/letters", {"data": [
        {"type": "Letter", "id": ids[1], "attributes": {"status": "REJECTED",
                                                         "reasonCode": "X1", "reasonText": "bad"}},
        {"type": "Letter", "id": ids[2], "attributes": {"status": "CANCELLED"}},
    ]}).status_code == 202
    listed = [d["id"] for d in client.get("/letters").json()["data"]]
    assert listed == ids[3:]
    assert client.get(f"/letters/{ids[0]}").json()["data"]["attributes"]["status"] == "ACCEPTED"
    assert [s for s, _ in sb.letters[ids[1]].history] == ["PENDING", "REJECTED"]
    # repeating a status is harmless
    assert patch(client, ids[0], body_for(ids[0], "ACCEPTED")).status_code == 202
    assert [s for s, _ in sb.letters[ids[0]].history] == ["PENDING", "ACCEPTED", "ACCEPTED"]


def test_add_letters_at_runtime(sb, client):
    new = sb.add_letters(5, bad_ratio=0)
    assert len(new) == 5 and all(sb.letters[i].kind == "good" for i in new)
    assert len(client.get("/letters").json()["data"]) == 35


# --- headers and routing ---------------------------------------------------------------

@pytest.mark.parametrize("method,path", [
    ("GET", "/letters"), ("GET", "/letters/{id}"), ("GET", "/letters/{id}/data"),
    ("PATCH", "/letters/{id}"), ("POST", "/letters"), ("POST", "/mi"), ("GET", "/mi/x"),
])
def test_x_request_id_required_on_every_api_route(sb, method, path):
    letter_id = next(iter(sb.letters))
    resp = httpx.request(method, sb.base_url + path.format(id=letter_id),
                         headers={"Content-Type": JSONAPI}, content=b"{}")
    assert_error(resp, 400, "NOTIFY_INVALID_REQUEST", "X-Request-ID")


def test_status_needs_no_request_id(sb):
    resp = httpx.get(sb.base_url + "/_status")
    assert resp.status_code == 200


def test_request_and_correlation_ids_are_echoed(sb, client):
    resp = client.get("/letters", headers={"X-Request-ID": "abc-123", "X-Correlation-ID": "corr-9"})
    assert resp.headers["x-request-id"] == "abc-123"
    assert resp.headers["x-correlation-id"] == "corr-9"
    err = client.get("/letters/nope", headers={"X-Correlation-ID": "corr-10"})
    assert err.headers["x-correlation-id"] == "corr-10" and err.headers["x-request-id"] == "req-1"


def test_unknown_route_404_and_wrong_method_405(client):
    assert_error(client.get("/nothing-here"), 404, "NOTIFY_RESOURCE_NOT_FOUND")
    resp = client.delete("/letters")
    assert resp.status_code == 405 and set(resp.headers["allow"].split(", ")) == {"GET", "POST"}
    assert client.put("/mi").status_code == 405
    assert client.post("/oauth2/token").status_code == 404  # no auth mode, no token endpoint


def test_get_letter_and_unknown_letter(sb, client):
    letter = first_good(sb)
    data = client.get(f"/letters/{letter.id}").json()["data"]
    assert data["id"] == letter.id and data["type"] == "Letter"
    assert data["attributes"]["specificationId"] == letter.specification_id
    assert data["attributes"]["groupId"] == letter.group_id
    assert data["attributes"]["status"] == "PENDING"
    assert_error(client.get("/letters/no-such-letter"), 404, "NOTIFY_RESOURCE_NOT_FOUND",
                 "No resource found")


# --- body strictness -------------------------------------------------------------------

def test_content_type_rules(sb, client):
    lid = first_good(sb).id
    doc = body_for(lid, "ACCEPTED")
    resp = client.patch(f"/letters/{lid}", content=json.dumps(doc))  # no Content-Type
    assert_error(resp, 415, "NOTIFY_UNSUPPORTED_MEDIA_TYPE")
    assert_error(patch(client, lid, doc, "text/plain"), 415, "NOTIFY_UNSUPPORTED_MEDIA_TYPE")
    assert_error(patch(client, lid, doc, JSONAPI + "; charset=iso-8859-1"), 406,
                 "NOTIFY_NOT_ACCEPTABLE")
    assert sb.letters[lid].status == "PENDING"
    assert patch(client, lid, doc, "application/json; charset=utf-8").status_code == 202


def test_invalid_json_is_400(sb, client):
    lid = first_good(sb).id
    resp = client.patch(f"/letters/{lid}", content=b"{not json",
                        headers={"Content-Type": JSONAPI})
    assert_error(resp, 400, "NOTIFY_INVALID_REQUEST", "not valid JSON")


@pytest.mark.parametrize("mutate,detail", [
    (lambda d: d["data"]["attributes"].update(colour="red"), "unknown member"),
    (lambda d: d.update(meta={}), "unknown member"),
    (lambda d: d["data"].update(links={}), "unknown member"),
    (lambda d: d["data"]["attributes"].update(status="LOST"), "status must be one of"),
    (lambda d: d["data"]["attributes"].update(status="PENDING"), "PENDING"),
    (lambda d: d["data"]["attributes"].pop("status"), "status must be one of"),
    (lambda d: d["data"].update(type="Letters"), "type must be 'Letter'"),
    (lambda d: d["data"]["attributes"].update(reasonCode=7), "reasonCode must be a string"),
    (lambda d: d["data"]["attributes"].update(reasonText=["x"]), "reasonText must be a string"),
    (lambda d: d["data"].update(attributes="ACCEPTED"), "attributes must be an object"),
])
def test_patch_schema_is_strict(sb, client, mutate, detail):
    lid = first_good(sb).id
    doc = body_for(lid, "ACCEPTED")
    mutate(doc)
    assert_error(patch(client, lid, doc), 400, "NOTIFY_INVALID_REQUEST", detail)
    assert sb.letters[lid].status == "PENDING"


def test_returned_needs_exact_reason_pair(sb, client):
    lid = first_good(sb).id
    assert_error(patch(client, lid, body_for(lid, "RETURNED")), 400, "NOTIFY_INVALID_REQUEST",
                 "reasonCode R01-R10")
    assert_error(patch(client, lid, body_for(lid, "RETURNED", reasonCode="R11",
                                             reasonText="x")), 400, "NOTIFY_INVALID_REQUEST")
    assert_error(patch(client, lid, body_for(lid, "RETURNED", reasonCode="R09")), 400,
                 "NOTIFY_INVALID_REQUEST", "reasonText for R09")
    assert_error(patch(client, lid, body_for(lid, "RETURNED", reasonCode="R01",
                                             reasonText="gone away")), 400,
                 "NOTIFY_INVALID_REQUEST", "reasonText for R01")
    resp = patch(client, lid, body_for(lid, "RETURNED", reasonCode="R09",
                                       reasonText=RETURN_REASONS["R09"]))
    assert resp.status_code == 202
    attrs = resp.json()["data"]["attributes"]
    assert (attrs["status"], attrs["reasonCode"], attrs["reasonText"]) == ("RETURNED", "R09", "Deceased")
    got = client.get(f"/letters/{lid}").json()["data"]["attributes"]
    assert got["reasonCode"] == "R09" and got["reasonText"] == "Deceased"


def test_patch_id_must_match_path_and_exist(sb, client):
    a, b = list(sb.letters)[:2]
    assert_error(patch(client, a, body_for(b, "ACCEPTED")), 400, "NOTIFY_INVALID_REQUEST",
                 "does not match")
    assert_error(patch(client, "ghost", body_for("ghost", "ACCEPTED")), 404,
                 "NOTIFY_RESOURCE_NOT_FOUND")
    assert sb.letters[a].status == sb.letters[b].status == "PENDING"


def test_post_letters_rules(sb, client):
    a, b = list(sb.letters)[:2]
    item = lambda i, s="ACCEPTED": {"type": "Letter", "id": i, "attributes": {"status": s}}  # noqa: E731
    assert_error(post(client, "/letters", {"data": []}), 400, "NOTIFY_INVALID_REQUEST", "non-empty")
    assert_error(post(client, "/letters", {"data": [item(a), item(a, "PRINTED")]}), 400,
                 "NOTIFY_INVALID_REQUEST", "same id")
    # Unknown id: 400 (OpenAPI lists no 404 for POST /letters) and nothing is applied.
    assert_error(post(client, "/letters", {"data": [item(a), item("ghost")]}), 400,
                 "NOTIFY_INVALID_REQUEST", "ghost")
    assert sb.letters[a].status == "PENDING"
    assert_error(post(client, "/letters", {"data": [item(a, "PENDING")]}), 400,
                 "NOTIFY_INVALID_REQUEST")
    resp = post(client, "/letters", {"data": [item(a), item(b, "PRINTED")]})
    assert resp.status_code == 202 and resp.headers["x-request-id"] == "req-1"
    assert (sb.letters[a].status, sb.letters[b].status) == ("ACCEPTED", "PRINTED")


# --- data and PDFs ---------------------------------------------------------------------

def test_data_redirects_to_presigned_pdf(sb, client):
    letter = first_good(sb)
    resp = client.get(f"/letters/{letter.id}/data")
    assert resp.status_code == 303
    location = resp.headers["location"]
    assert location.startswith(f"{sb.base_url}/_presigned/letters/{letter.id}.pdf?")
    assert "X-Amz-Signature=" in location and "X-Amz-Expires=" in location
    pdf = httpx.get(location)  # no X-Request-ID needed on the "other host"
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert hashlib.sha256(pdf.content).hexdigest() == letter.sha256
    reader = pypdf.PdfReader(io.BytesIO(pdf.content))
    assert len(reader.pages) == letter.pages
    assert [float(x) for x in reader.pages[0].mediabox] == [0, 0, 595, 842]
    text = reader.pages[-1].extract_text()
    assert letter.id in text and f"page {letter.pages} of {letter.pages}" in text
    assert_error(client.get("/letters/ghost/data"), 404, "NOTIFY_RESOURCE_NOT_FOUND")


def test_presigned_refuses_authorization_bad_signature_and_expiry(sb, client):
    letter = first_good(sb)
    url = client.get(f"/letters/{letter.id}/data").headers["location"]
    assert httpx.get(url, headers={"Authorization": "Bearer secret"}).status_code == 403
    tampered = url[:-4] + ("0000" if not url.endswith("0000") else "1111")
    assert httpx.get(tampered).status_code == 403
    other = next(i for i in sb.letters if i != letter.id)
    assert httpx.get(url.replace(letter.id, other)).status_code == 403  # signature is per letter
    expired = sb.presigned_url(letter.id, expires=60, issued_at=1_000_000_000)
    resp = httpx.get(expired)
    assert resp.status_code == 403 and b"expired" in resp.content
    assert httpx.get(url.split("?")[0]).status_code == 403  # unsigned
    assert httpx.get(sb.presigned_url("ghost")).status_code == 404
    assert httpx.get(url).status_code == 200


def _fetch_pdf(client, letter_id):
    return httpx.get(client.get(f"/letters/{letter_id}/data").headers["location"]).content


def test_bad_letter_kinds_behave_as_described(sb, client, tmp_path):
    packs = load_packs()
    kinds = {l.kind for l in sb.letters.values()}
    assert kinds == {"good", "hash", "corrupt", "sheets", "coverage"}
    for letter in sb.letters.values():
        listed = client.get(f"/letters/{letter.id}").json()["data"]["attributes"]["sha256Hash"]
        content = _fetch_pdf(client, letter.id)
        pack = packs[letter.specification_id]
        matches = hashlib.sha256(content).hexdigest() == listed
        if letter.kind == "hash":
            assert not matches
            continue
        assert matches, letter
        if letter.kind == "corrupt":
            with pytest.raises(Exception):
                pypdf.PdfReader(io.BytesIO(content)).pages[0]
            continue
        pages = len(pypdf.PdfReader(io.BytesIO(content)).pages)
        if letter.kind == "sheets":
            assert pack.sheets_for(pages) > pack.max_sheets
            continue
        assert pages <= pack.max_sides and pack.sheets_for(pages) <= pack.max_sheets
        (tmp_path / "l.pdf").write_bytes(content)
        black, colour = coverage.measure(tmp_path / "l.pdf")
        over = not all(map(pack.black_coverage.allows, black)) or (
            pack.colour_coverage is not None and not all(map(pack.colour_coverage.allows, colour)))
        assert over == (letter.kind == "coverage"), (letter.kind, black, colour)


def test_letters_spread_over_real_packs_and_are_deterministic():
    packs = load_packs()
    a, b = Sandbox(**DOCUMENT_ONLY, letters=40, seed=3), Sandbox(**DOCUMENT_ONLY, letters=40, seed=3)
    assert list(a.letters) == list(b.letters)
    assert [l.sha256 for l in a.letters.values()] == [l.sha256 for l in b.letters.values()]
    specs = {l.specification_id for l in a.letters.values()}
    assert len(specs) >= 5 and specs <= set(packs)
    assert any("BRAILLE" in packs[s].features for s in specs)
    assert any(packs[s].colour for s in specs)
    assert list(Sandbox(**DOCUMENT_ONLY, letters=5, seed=4).letters) != list(a.letters)[:5]
    assert sum(l.kind != "good" for l in a.letters.values()) == 4  # default bad_ratio 0.1


# --- MI --------------------------------------------------------------------------------

MI = {"data": {"type": "ManagementInformation", "attributes": {
    "lineItem": "envelope-business-standard", "timestamp": "2023-11-17T14:27:51.413Z",
    "quantity": 22, "specificationId": "notify-c5", "groupId": "abc123", "stockRemaining": 2000}}}


def test_mi_round_trip(sb, client):
    resp = post(client, "/mi", MI)
    assert resp.status_code == 201
    created = resp.json()["data"]
    assert created["type"] == "ManagementInformation" and created["id"]
    assert created["attributes"] == MI["data"]["attributes"]
    got = client.get(f"/mi/{created['id']}")
    assert got.status_code == 200 and got.json()["data"] == created
    assert sb.mi[created["id"]]["attributes"]["quantity"] == 22
    assert_error(client.get("/mi/unknown"), 404, "NOTIFY_RESOURCE_NOT_FOUND")


@pytest.mark.parametrize("change", [
    {"timestamp": "yesterday"}, {"timestamp": "2023-11-17"}, {"quantity": -1},
    {"quantity": "22"}, {"quantity": True}, {"quantity": 1.5}, {"stockRemaining": -5},
    {"lineItem": ""}, {"groupId": 4}, {"colour": "red"},
])
def test_mi_validation(client, change):
    doc = json.loads(json.dumps(MI))
    doc["data"]["attributes"].update(change)
    assert_error(post(client, "/mi", doc), 400, "NOTIFY_INVALID_REQUEST")


def test_mi_structure_and_unknown_specification(client):
    doc = json.loads(json.dumps(MI))
    del doc["data"]["attributes"]["quantity"]
    assert_error(post(client, "/mi", doc), 400, "NOTIFY_INVALID_REQUEST", "quantity")
    doc = json.loads(json.dumps(MI))
    doc["data"]["type"] = "Letter"
    assert_error(post(client, "/mi", doc), 400, "NOTIFY_INVALID_REQUEST", "ManagementInformation")
    doc = json.loads(json.dumps(MI))
    doc["data"]["attributes"]["specificationId"] = "123456"
    assert_error(post(client, "/mi", doc), 404, "NOTIFY_RESOURCE_NOT_FOUND")
    assert_error(client.post("/mi", content=json.dumps(MI)), 415, "NOTIFY_UNSUPPORTED_MEDIA_TYPE")


# --- request log -----------------------------------------------------------------------

def test_request_log_and_counts(tmp_path):
    log_file = tmp_path / "requests.jsonl"
    with run_in_thread(SandboxOptions(**DOCUMENT_ONLY, letters=3, log_path=str(log_file))) as sb:
        lid = next(iter(sb.letters))
        with httpx.Client(base_url=sb.base_url) as c:
            c.get("/letters", params={"limit": "2"}, headers={"X-Request-ID": "r-1"})
            c.patch(f"/letters/{lid}", content=json.dumps(body_for(lid, "ACCEPTED")),
                    headers={"X-Request-ID": "r-2", "Content-Type": JSONAPI,
                             "Authorization": "Bearer topsecret"})
            loc = c.get(f"/letters/{lid}/data", headers={"X-Request-ID": "r-3"}).headers["location"]
            c.get(loc)
            c.get("/_status")
            c.get("/letters")  # missing X-Request-ID, still logged
        counts = sb.counts()
        assert counts["list"] == 2 and counts["patch"] == 1 and counts["data"] == 1
        assert counts["presigned"] == 1 and counts["status"] == 1 and counts["token"] == 0
        log = sb.log
        assert all(isinstance(r, RequestRecord) for r in log)
        assert [(r.method, r.path, r.status) for r in log] == [
            ("GET", "/letters", 200), ("PATCH", f"/letters/{lid}", 202),
            ("GET", f"/letters/{lid}/data", 303), ("GET", f"/_presigned/letters/{lid}.pdf", 200),
            ("GET", "/_status", 200), ("GET", "/letters", 400)]
        assert log[0].query == {"limit": "2"} and log[0].headers["x-request-id"] == "r-1"
        assert json.loads(log[1].body)["data"]["id"] == lid
        assert log[1].headers["authorization"] == "Bearer topsecret"
        assert "X-Amz-Signature" in log[3].query
    lines = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert len(lines) == 6
    assert lines[1]["headers"]["authorization"] == "<redacted>"
    assert lines[1]["authorization_present"] is True and lines[0]["authorization_present"] is False
    assert "topsecret" not in log_file.read_text()
    assert json.loads(lines[1]["body"])["data"]["attributes"]["status"] == "ACCEPTED"
    assert lines[5]["status"] == 400 and lines[0]["query"] == {"limit": "2"}


# --- lifecycle -------------------------------------------------------------------------

async def test_async_start_and_stop():
    sb = Sandbox(SandboxOptions(**DOCUMENT_ONLY, letters=2))
    await sb.start(host="127.0.0.1", port=0)
    try:
        async with httpx.AsyncClient(base_url=sb.base_url, headers=H) as c:
            assert len((await c.get("/letters")).json()["data"]) == 2
        assert sb.token_url == sb.base_url + "/oauth2/token"
    finally:
        await sb.stop()


def test_port_in_use_is_one_line_user_error(sb):
    port = int(sb.base_url.rsplit(":", 1)[1])
    with pytest.raises(UserError, match=f"port {port} .*already in use.*--port"):
        with run_in_thread(SandboxOptions(**DOCUMENT_ONLY, letters=1), port=port):
            pass


def test_keep_alive_and_chunked_request_body(sb):
    import socket

    lid = first_good(sb).id
    body = json.dumps(body_for(lid, "ACCEPTED")).encode()
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    with socket.create_connection(sb.base_url[7:].split(":")) as s:
        s.sendall(b"GET /_status HTTP/1.1\r\nHost: x\r\n\r\n")
        s.sendall(b"PATCH /letters/%s HTTP/1.1\r\nHost: x\r\nX-Request-ID: k\r\n"
                  b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n%s"
                  % (lid.encode(), chunked))
        received = b""
        while received.count(b"HTTP/1.1 ") < 2 or not received.rstrip().endswith(b"}}}"):
            received += s.recv(65536)
    assert received.startswith(b"HTTP/1.1 200") and b"HTTP/1.1 202 Accepted" in received
    assert sb.letters[lid].status == "ACCEPTED"


def test_cli_registers_sandbox_command():
    from appliance.cli.main import build_parser

    args = build_parser().parse_args(["sandbox", "--port", "0", "--letters", "3",
                                      "--rate-limit-every", "4", "--log", "x.jsonl"])
    from appliance.cli.sandbox import options_from_args

    opts = options_from_args(args)
    assert (opts.letters, opts.rate_limit_every, opts.log_path) == (3, 4, "x.jsonl")
