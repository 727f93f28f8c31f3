"""The Supplier API's JSON:API shapes: letters and MI records checked against the contract,
status updates packed into requests, error answers read for their message.  No I/O: each
function takes an answer already read (under its size cap) or builds a request body."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import timezone
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, Callable

import httpx

from appliance.api.limits import MAX_FIELD_CHARS, is_safe_id, parse_json, shown
from appliance.core.errors import ApiError, BadJson, InvalidId, NotFound, RateLimited, ServerError
from appliance.core.status import ALL_STATUSES


@dataclass(frozen=True)
class LetterRef:
    id: str
    specification_id: str
    group_id: str
    status: str
    sha256: str
    reason_code: str | None = None
    reason_text: str | None = None


@dataclass(frozen=True)
class StatusUpdate:
    letter_id: str
    status: str
    reason_code: str | None = None
    reason_text: str | None = None


@dataclass(frozen=True)
class Download:
    path: Path
    sha256: str
    size: int


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta seconds or an HTTP-date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def error_from_response(resp: httpx.Response) -> ApiError:
    """A typed ApiError carrying the server's errors[0].detail/code when there is one."""
    detail, code = None, None
    try:
        body = parse_json(resp.content)
    except ValueError:
        body = None
    if isinstance(body, dict):
        errors = body.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            first = errors[0]
            detail = first.get("detail") or first.get("title")
            code = first.get("code") if isinstance(first.get("code"), str) else None
        elif isinstance(body.get("message"), str):  # API gateway errors (429, 502)
            detail = body["message"]
    if not isinstance(detail, str) or not detail:
        s3 = re.search(r"<Message>(.*?)</Message>", resp.text, re.S)  # storage (S3) errors are XML
        detail = s3.group(1) if s3 else resp.text.strip()[:200]
        detail = " ".join((detail or resp.reason_phrase or "no detail").split())
    detail = re.sub(r"[^ -~]", "?", detail)[:300]  # one printable line, whatever the server sent
    kind = ApiError
    if resp.status_code == 404:
        kind = NotFound
    elif resp.status_code == 429:
        kind = RateLimited
    elif resp.status_code >= 500:
        kind = ServerError
    return kind(resp.status_code, detail, code)


def json_body(resp: httpx.Response, what: str) -> dict:
    try:
        body = parse_json(resp.content)
    except BadJson as e:
        raise ApiError(resp.status_code, f"{what}: response is {e}") from None
    if not isinstance(body, dict):
        raise ApiError(resp.status_code, f"{what}: response is not a JSON object")
    if "data" not in body and "errors" in body:  # an error wearing a success status
        err = error_from_response(resp)
        raise ApiError(resp.status_code, f"{what}: {resp.status_code} answer carries errors: "
                                         f"{err.detail[:200]}", err.code)
    return body


def letter_from(item: Any, what: str, *, need_hash: bool) -> LetterRef:
    """One letter resource, checked against the contract; ApiError names what is wrong."""
    if not isinstance(item, dict) or not isinstance(item.get("attributes"), dict):
        raise ApiError(200, f"{what}: letter without attributes in response")
    attrs = item["attributes"]
    lid = item.get("id")
    required = ["specificationId", "status"] + (["sha256Hash"] if need_hash else [])
    missing = [k for k in required if not isinstance(attrs.get(k), str) or not attrs[k]]
    if not isinstance(lid, str) or not lid:
        missing.insert(0, "id")
    if missing:
        raise ApiError(200, f"{what}: letter {shown(lid)} is missing {', '.join(missing)} "
                            "(or has the wrong type)")
    if not is_safe_id(lid):
        raise InvalidId(what, lid)
    for key in ("specificationId", "groupId", "sha256Hash", "reasonCode"):
        value = attrs.get(key)
        if value is not None and (not isinstance(value, str) or len(value) > MAX_FIELD_CHARS):
            raise ApiError(200, f"{what}: letter {lid} has a bad {key} {shown(value)}")
    if attrs["status"] not in ALL_STATUSES:
        raise ApiError(200, f"{what}: letter {lid} has unknown status {shown(attrs['status'])}")
    text = attrs.get("reasonText")
    return LetterRef(
        id=lid,
        specification_id=attrs["specificationId"],
        group_id=attrs.get("groupId") or "",
        status=attrs["status"],
        sha256=(attrs.get("sha256Hash") or "").lower(),
        reason_code=attrs.get("reasonCode"),
        reason_text=text[:MAX_FIELD_CHARS] if isinstance(text, str) else None,
    )


def mi_record(body: dict, what: str) -> dict:
    data = body.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("id"), str):
        raise ApiError(200, f"{what}: response has no data.id")
    attrs = data.get("attributes") if isinstance(data.get("attributes"), dict) else {}
    return {"id": data["id"], **attrs}


def letter_item(letter_id: str, status: str, reason_code, reason_text) -> dict:
    attrs = {"status": str(status)}
    if reason_code is not None:
        attrs["reasonCode"] = reason_code
    if reason_text is not None:
        attrs["reasonText"] = reason_text
    return {"type": "Letter", "id": letter_id, "attributes": attrs}


def chunk_updates(updates: list, batch_size: int,
                  key: Callable[[Any], str] = lambda u: u.letter_id) -> list[list]:
    """Pack updates into as few requests of <= batch_size as the rules allow.

    Rules: no letter id twice in one request, and a letter's k-th update goes in a later
    request than its (k-1)-th (requests are sent one after another, so per-letter order
    holds).  First fit: each update joins the earliest request after its letter's
    previous one that has room, so letters moving quickly through several statuses do not
    each force a new request.  ``key`` gives an item's letter id (items need not be
    StatusUpdates: the outbox packs its own entries).
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    chunks: list[list[StatusUpdate]] = []
    last: dict[str, int] = {}
    first_open = 0  # every chunk before this one is full
    for u in updates:
        letter_id = key(u)
        i = max(last.get(letter_id, -1) + 1, first_open)
        while i < len(chunks) and len(chunks[i]) >= batch_size:
            i += 1
        if i == len(chunks):
            chunks.append([])
        chunks[i].append(u)
        last[letter_id] = i
        while first_open < len(chunks) and len(chunks[first_open]) >= batch_size:
            first_open += 1
    return chunks


def path_id(value: Any, what: str) -> str:
    if not is_safe_id(value):
        raise InvalidId(what, value)
    return value


