"""Strict request-body checks, as the upstream schema validator applies them.

Each check raises ``Invalid(detail)``; the server turns that into a 400 with the upstream
JSON:API error shape.  Unknown members are refused everywhere (the server schema is strict).
"""

from __future__ import annotations

import re
from datetime import datetime

from appliance.core.status import ALL_STATUSES, RETURN_REASONS, Status


class Invalid(ValueError):
    """A request the API refuses with 400; the message is the error detail."""


LETTER_MEMBERS = {"type", "id", "attributes"}
LETTER_ATTRIBUTES = {"status", "reasonCode", "reasonText"}
MI_MEMBERS = {"type", "attributes"}
MI_REQUIRED = {"lineItem", "timestamp", "quantity"}
MI_OPTIONAL = {"specificationId", "groupId", "stockRemaining"}
_DATE_TIME = re.compile(
    r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$"
)


def _object(value, what: str) -> dict:
    if not isinstance(value, dict):
        raise Invalid(f"{what} must be an object")
    return value


def _only(obj: dict, allowed: set[str], what: str) -> None:
    extra = sorted(set(obj) - allowed)
    if extra:
        raise Invalid(f"{what} has unknown member(s): {', '.join(extra)}")


def _string(value, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise Invalid(f"{what} must be a non-empty string")
    return value


def _count(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise Invalid(f"{what} must be an integer >= 0")
    return value


def letter_update(item) -> tuple[str, str, str | None, str | None]:
    """Check one ``{type, id, attributes}`` item; return (id, status, reasonCode, reasonText)."""
    item = _object(item, "data")
    _only(item, LETTER_MEMBERS, "data")
    if item.get("type") != "Letter":
        raise Invalid("type must be 'Letter'")
    letter_id = _string(item.get("id"), "id")
    attrs = _object(item.get("attributes"), "attributes")
    _only(attrs, LETTER_ATTRIBUTES, "attributes")
    status = attrs.get("status")
    if not isinstance(status, str) or status not in ALL_STATUSES:
        raise Invalid(f"status must be one of {', '.join(sorted(ALL_STATUSES - {'PENDING'}))}")
    if status == Status.PENDING:
        raise Invalid("status cannot be set to PENDING")
    code, text = attrs.get("reasonCode"), attrs.get("reasonText")
    if code is not None and not isinstance(code, str):
        raise Invalid("reasonCode must be a string")
    if text is not None and not isinstance(text, str):
        raise Invalid("reasonText must be a string")
    if status == Status.RETURNED:
        if code not in RETURN_REASONS:
            raise Invalid("RETURNED needs a reasonCode R01-R10")
        if text != RETURN_REASONS[code]:
            raise Invalid(f"reasonText for {code} must be {RETURN_REASONS[code]!r}")
    return letter_id, status, code, text


def patch_body(doc) -> tuple[str, str, str | None, str | None]:
    doc = _object(doc, "body")
    _only(doc, {"data"}, "body")
    return letter_update(doc.get("data"))


def post_letters_body(doc) -> list[tuple[str, str, str | None, str | None]]:
    doc = _object(doc, "body")
    _only(doc, {"data"}, "body")
    data = doc.get("data")
    if not isinstance(data, list) or not data:
        raise Invalid("data must be a non-empty list of letters")
    updates = [letter_update(item) for item in data]
    ids = [u[0] for u in updates]
    if len(set(ids)) != len(ids):
        raise Invalid("the request contains multiple letter objects with the same id")
    return updates


def is_date_time(value) -> bool:
    if not isinstance(value, str) or not _DATE_TIME.match(value):
        return False
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def mi_body(doc) -> dict:
    """Check a createMI body; return its attributes."""
    doc = _object(doc, "body")
    _only(doc, {"data"}, "body")
    data = _object(doc.get("data"), "data")
    _only(data, MI_MEMBERS, "data")
    if data.get("type") != "ManagementInformation":
        raise Invalid("type must be 'ManagementInformation'")
    attrs = _object(data.get("attributes"), "attributes")
    _only(attrs, MI_REQUIRED | MI_OPTIONAL, "attributes")
    missing = sorted(MI_REQUIRED - set(attrs))
    if missing:
        raise Invalid(f"attributes missing: {', '.join(missing)}")
    _string(attrs["lineItem"], "lineItem")
    if not is_date_time(attrs["timestamp"]):
        raise Invalid("timestamp must be an ISO-8601 date-time")
    _count(attrs["quantity"], "quantity")
    for name in ("specificationId", "groupId"):
        if name in attrs:
            _string(attrs[name], name)
    if "stockRemaining" in attrs:
        _count(attrs["stockRemaining"], "stockRemaining")
    return dict(attrs)
