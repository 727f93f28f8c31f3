"""Route table and handlers of the sandbox API.

Each handler takes (sandbox, request, path params) and returns a Response; the checks
every API request goes through first (faults, auth, X-Request-ID) are in server.py.

Choices where the upstream contract leaves room (documented here, tested in tests/):
- ``POST /letters`` with an unknown letter id answers **400** (the OpenAPI document lists
  no 404 for that operation) and applies none of the updates.
- ``PATCH`` and ``POST`` answer 202: PATCH with the letter resource showing the update as
  sent, POST with no body.  As on the deployed server the updates are queued and applied
  later (``updates.py``); GET shows only applied state.
- ``Sandbox.refuse_updates`` (tests) makes updates for given letters answer 400/404/422;
  a POST holding any of them is refused whole.
- ``POST /mi`` with a ``specificationId`` that is not a known pack answers 404, like the
  upstream "unknown specification" sandbox scenario.
- Status moves are not checked against the transition model: the API records what the
  supplier reports (repeating a status is harmless).
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Awaitable, Callable

from appliance.core.packs import load_packs
from appliance.sandbox import bodies, storage, validation
from appliance.sandbox.auth import TokenRefused
from appliance.sandbox.httpserver import Request, Response
from appliance.sandbox.model import Server

MAX_LIMIT = 2500
_DIGITS = re.compile(r"^[0-9]+$")
_KNOWN_SPECS = frozenset(load_packs())


def resolve(method: str, path: str, auth_mode: bool) -> tuple[str, dict, str]:
    """(kind, params, allowed-methods-if-wrong-method) for a request line."""
    parts = path.split("/")[1:] if path.startswith("/") else []
    table: dict[str, str] = {}
    params: dict[str, str] = {}
    n = len(parts)
    if n == 1 and parts[0] == "letters":
        table = {"GET": "list", "POST": "post_letters"}
    elif n == 2 and parts[0] == "letters" and parts[1]:
        table, params = {"GET": "get", "PATCH": "patch"}, {"id": parts[1]}
    elif n == 3 and parts[0] == "letters" and parts[1] and parts[2] == "data":
        table, params = {"GET": "data"}, {"id": parts[1]}
    elif n == 1 and parts[0] == "mi":
        table = {"POST": "mi_post"}
    elif n == 2 and parts[0] == "mi" and parts[1]:
        table, params = {"GET": "mi_get"}, {"id": parts[1]}
    elif n == 1 and parts[0] == "_status":
        table = {"GET": "status"}
    elif n == 2 and parts[0] == "oauth2" and parts[1] == "token" and auth_mode:
        table = {"POST": "token"}
    elif (n == 3 and parts[0] == "_presigned" and parts[1] == "letters"
          and parts[2].endswith(".pdf") and len(parts[2]) > 4):
        table, params = {"GET": "presigned"}, {"id": parts[2][:-4]}
    if not table:
        return "other", {}, ""
    kind = table.get(method)
    if kind is None:
        return "other", {}, ", ".join(table)
    return kind, params, ""


# --- body helpers --------------------------------------------------------------------

def _media_problem(req: Request) -> int | None:
    """415 for a missing/other Content-Type, 406 for a charset other than utf-8."""
    ctype = req.headers.get("content-type")
    if not ctype:
        return 415
    media, *params = ctype.split(";")
    if media.strip().lower() not in (bodies.JSONAPI, bodies.JSON):
        return 415
    for p in params:
        name, _, value = p.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() != "utf-8":
            return 406
    return None


def _json_body(sb: Server, req: Request):
    """The parsed body, or a ready error Response."""
    status = _media_problem(req)
    if status is not None:
        return sb.api_error(req, status)
    try:
        return json.loads(req.body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return sb.api_error(req, 400, "The request body is not valid JSON")


def _refusal(sb: Server, req: Request, wanted: list[tuple[str, str]]) -> Response | None:
    """The error for (letter id, status) pairs ``sb.refuse_updates`` names, or None.  The
    first refused letter's status is the answer's; the detail names every refused one."""
    refused = [(i, s) for i, s in wanted if i in sb.refuse_updates]
    if not refused:
        return None
    status = sb.refuse_updates[refused[0][0]]
    why = [f"letter {i} is not known to this supplier" if sb.refuse_updates[i] == 404
           else f"letter {i} cannot take status {s}" for i, s in refused[:10]]
    return sb.api_error(req, status, "; ".join(why))


# --- handlers ------------------------------------------------------------------------

async def list_letters(sb: Server, req: Request, params: dict) -> Response:
    names = [k for k, _ in req.query]
    if any(k != "limit" for k in names):
        return sb.api_error(req, 400, bodies.UNKNOWN_PARAMETER)
    limit = MAX_LIMIT
    if names:
        raw = req.query[0][1]
        if len(names) > 1 or not _DIGITS.match(raw) or not 1 <= int(raw) <= MAX_LIMIT:
            return sb.api_error(req, 400, bodies.LIMIT_INVALID)
        limit = int(raw)
    chosen = sb.list_letters(limit)
    return sb.json_response(req, 200, {"data": [
        {"id": l.id, "type": "Letter", "attributes": {
            "specificationId": l.specification_id, "groupId": l.group_id,
            "status": l.status, "sha256Hash": l.sha256}} if l.listing is None else l.listing
        for l in chosen]})


async def get_letter(sb: Server, req: Request, params: dict) -> Response:
    letter = sb.letters.get(params["id"])
    if letter is None:
        return sb.api_error(req, 404)
    return sb.json_response(req, 200, {"data": letter.shown()})


async def letter_data(sb: Server, req: Request, params: dict) -> Response:
    if params["id"] not in sb.letters:
        return sb.api_error(req, 404)
    faults = sb.letters[params["id"]].data_faults
    if faults:
        mode = faults.pop(0)
        if mode == "deep-error":
            return Response(500, b"[" * 100_000, sb.echo_headers(req))
        return sb.api_error(req, int(mode))
    location = sb.letters[params["id"]].location
    if location is None:
        location = sb.presigned_url(params["id"])
    headers = sb.echo_headers(req, None) + ([("Location", location)] if location else [])
    return Response(303, b"", headers)


async def presigned(sb: Server, req: Request, params: dict) -> Response:
    xml = [("Content-Type", "application/xml")]
    if "authorization" in req.headers:
        return Response(403, bodies.s3_error_body(
            "AccessDenied", "Only one auth mechanism allowed; an Authorization header must "
            "not accompany a pre-signed URL"), xml)
    problem = sb.presign_problem(params["id"], dict(req.query))
    if problem:
        return Response(403, bodies.s3_error_body("AccessDenied", problem), xml)
    letter = sb.letters.get(params["id"])
    if letter is None:
        return Response(404, bodies.s3_error_body("NoSuchKey", "The specified key does not exist."), xml)
    if letter.storage_faults:
        return storage.answer(letter.storage_faults.pop(0), letter.pdf, sb.faults.redirect_to)
    return Response(200, letter.pdf, [("Content-Type", "application/pdf")])


async def patch_letter(sb: Server, req: Request, params: dict) -> Response:
    doc = _json_body(sb, req)
    if isinstance(doc, Response):
        return doc
    try:
        letter_id, status, code, text = validation.patch_body(doc)
    except validation.Invalid as e:
        return sb.api_error(req, 400, f"{bodies.INVALID_BODY}: {e}")
    if letter_id != params["id"]:
        return sb.api_error(req, 400, f"{bodies.INVALID_BODY}: body id does not match the path id")
    refused = _refusal(sb, req, [(letter_id, status)])
    if refused is not None:
        return refused
    letter = sb.letters.get(letter_id)
    if letter is None:
        return sb.api_error(req, 404)
    sb.accept_updates([(letter_id, status, code, text)])
    return sb.json_response(req, 202, {"data": letter.resource((status, code, text))})


async def post_letters(sb: Server, req: Request, params: dict) -> Response:
    doc = _json_body(sb, req)
    if isinstance(doc, Response):
        return doc
    try:
        updates = validation.post_letters_body(doc)
    except validation.Invalid as e:
        return sb.api_error(req, 400, f"{bodies.INVALID_BODY}: {e}")
    refused = _refusal(sb, req, [(u[0], u[1]) for u in updates])
    if refused is not None:
        return refused
    unknown = [u[0] for u in updates if u[0] not in sb.letters]
    if unknown:
        return sb.api_error(req, 400, f"{bodies.INVALID_BODY}: unknown letter id(s): "
                                      f"{', '.join(unknown[:10])}")
    sb.accept_updates(updates)
    return Response(202, b"", sb.echo_headers(req))


async def create_mi(sb: Server, req: Request, params: dict) -> Response:
    doc = _json_body(sb, req)
    if isinstance(doc, Response):
        return doc
    try:
        attrs = validation.mi_body(doc)
    except validation.Invalid as e:
        return sb.api_error(req, 400, f"{bodies.INVALID_BODY}: {e}")
    spec = attrs.get("specificationId")
    if spec is not None and spec not in _KNOWN_SPECS:
        return sb.api_error(req, 404, f"No specification found with id {spec}")
    record = {"id": uuid.uuid4().hex, "type": "ManagementInformation", "attributes": attrs}
    sb.mi[record["id"]] = record
    return sb.json_response(req, 201, {"data": record})


async def get_mi(sb: Server, req: Request, params: dict) -> Response:
    record = sb.mi.get(params["id"])
    if record is None:
        return sb.api_error(req, 404)
    return sb.json_response(req, 200, {"data": record})


async def status(sb: Server, req: Request, params: dict) -> Response:
    return Response(200, b'{"status":"pass"}', sb.echo_headers(req, bodies.JSON))


async def token(sb: Server, req: Request, params: dict) -> Response:
    headers = [("Content-Type", bodies.JSON), ("Cache-Control", "no-store")]
    try:
        answer = sb.issuer.exchange(req.headers.get("content-type", ""), req.body)
    except TokenRefused as e:
        return Response(e.status, bodies.oauth_error_body(e.error, e.description), headers)
    return Response(200, json.dumps(answer).encode(), headers)


HANDLERS: dict[str, Callable[[Server, Request, dict], Awaitable[Response]]] = {
    "list": list_letters, "get": get_letter, "data": letter_data, "presigned": presigned,
    "patch": patch_letter, "post_letters": post_letters, "mi_post": create_mi,
    "mi_get": get_mi, "status": status, "token": token,
}
