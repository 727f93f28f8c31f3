"""Response bodies in the shapes the upstream Notify Supplier API uses.

Encoded here (not read from the contract material) so the sandbox is self-contained.
Errors use the JSON:API ``{"errors": [...]}`` shape; the gateway errors (429, 502) use
the API gateway shapes shown in the upstream examples.
"""

from __future__ import annotations

import json
import time

ABOUT = "https://digital.nhs.uk/developer/api-catalogue/nhs-notify-supplier"
JSONAPI = "application/vnd.api+json"
JSON = "application/json"

#: (code, title, default detail) per HTTP status, as upstream.
ERROR_KINDS: dict[int, tuple[str, str, str]] = {
    400: ("NOTIFY_INVALID_REQUEST", "Invalid request",
          "Invalid request, please refer to the API specifications"),
    401: ("NOTIFY_UNAUTHORIZED", "Unauthorized",
          "Missing or invalid bearer token"),
    404: ("NOTIFY_RESOURCE_NOT_FOUND", "Resource not found", "No resource found with that ID"),
    405: ("NOTIFY_METHOD_NOT_ALLOWED", "Method not allowed",
          "The method is not allowed on this resource"),
    406: ("NOTIFY_NOT_ACCEPTABLE", "Not acceptable",
          "The Content-Type charset must be utf-8"),
    413: ("NOTIFY_INVALID_REQUEST", "Invalid request", "The request body is too large"),
    415: ("NOTIFY_UNSUPPORTED_MEDIA_TYPE", "Unsupported media type",
          "Content-Type must be application/vnd.api+json or application/json"),
    # Not in the upstream examples: for Sandbox.refuse_updates (a status the letter cannot take).
    422: ("NOTIFY_UNPROCESSABLE_ENTITY", "Unprocessable entity",
          "The request could not be processed"),
    500: ("NOTIFY_INTERNAL_SERVER_ERROR", "Internal Server Error",
          "An unexpected error occurred, please contact support"),
}

# Details the upstream examples use for specific 400s.
LIMIT_INVALID = "The limit parameter must be a positive number not greater than 2500"
UNKNOWN_PARAMETER = "Only 'limit' query parameter is supported"
INVALID_BODY = "The request body is invalid"


def error_body(status: int, request_id: str, detail: str | None = None) -> bytes:
    code, title, default = ERROR_KINDS[status]
    return json.dumps({"errors": [{
        "code": code,
        "detail": detail or default,
        "id": request_id,
        "links": {"about": ABOUT},
        "status": str(status),
        "title": title,
    }]}).encode()


def too_many_requests_body(message_id: str, retry_after: float) -> bytes:
    """The API gateway's quota body (upstream tooManyRequests example)."""
    return json.dumps({
        "interval": 1,
        "limit": 1,
        "message": "Your application, Notify-Supplier-Sandbox, has exceeded its quota and "
                   "is being rate limited.",
        "message_id": message_id,
        "policy": "quota",
        "ratelimiting_expiry_time_ms": int((time.time() + retry_after) * 1000),
        "scope": "application",
        "timeunit": "minute",
    }).encode()


BAD_GATEWAY_BODY = json.dumps({"message": "Bad Gateway"}).encode()


def s3_error_body(code: str, message: str) -> bytes:
    """The XML error an S3 pre-signed URL answers with."""
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
            f"<Message>{message}</Message></Error>").encode()


def oauth_error_body(error: str, description: str) -> bytes:
    return json.dumps({"error": error, "error_description": description}).encode()
