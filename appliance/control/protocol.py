"""The control socket's wire protocol: how consoles (CLI, TUI) talk to the running daemon.

A local Unix socket (mode 0660, optionally chgrp'd to an operators' group) carrying
newline-delimited JSON, one object per line, UTF-8.

Request::

    {"id": 7, "cmd": "letters", "args": {"status": "ACCEPTED", "limit": 50}}

Response (same ``id``)::

    {"id": 7, "ok": true, "result": ...}
    {"id": 7, "ok": false, "error": "one line saying why and what to do"}

Commands (``args`` in brackets):

``status`` []
    counts by status, devices (state, load, queue depth, counters), outbox, counters,
    api_ok, throughput (letters reaching a final status per minute, last 10 minutes,
    oldest first); ``held`` / ``refused`` / ``waiting_for_retry`` counted from the store
    the letter lists read; ``failure_reasons`` (the profile's agreed FAILED codes);
    ``alerts`` (every open alert, most severe first then newest: {key, severity, source,
    message, letter_id, device, opened, t (= last_seen), last_seen, count, state}),
    ``alerts_closed`` (the 50 newest closed ones, plus closed_at and closed_by: "cleared"
    or the person who acknowledged it) and ``alert_counts`` {critical, warning, info}.
    An alert is one cause (``appliance.core.alerts``): a repeat only bumps its count.
``alerts`` [closed=false]
    ``{"open": [...], "closed": [...]}`` (closed: every closed alert still kept).
``ack`` [key, who]
    a person has seen to an alert: it closes, with who and when in the letter's timeline
    (if it has a letter) and in ``<state>/audit/alerts/acks.jsonl``.
``letters`` [q, group, specification, status, device, stage, min_age, refused, limit=100, offset=0]
    ``{"total": N, "letters": [brief...]}``.  ``q`` is an id substring.  Hot (in-flight)
    letters carry full fields, newest first; archived letters follow with id and status
    only, most recently archived first (group/specification/device/stage/min_age filters
    exclude them: the archive index does not know those).  A page costs what it holds,
    not the archive's size, so the listing stays cheap with 100 000 letters.  ``refused``:
    only letters with an update refused by Notify (``brief["refused"]``: {status,
    http_status, detail, at}).
``letter`` [id]
    the full record with ``history`` (the timeline: listed, verified, device events,
    every status queued, ``sent`` (202) and ``proven`` applied by a read-back) plus
    ``outbox`` (updates not yet proven).
``pause`` / ``resume`` / ``drain`` [device]
``reprint`` / ``cancel`` [id, reason?] / ``fail`` [id, reason?, code?] / ``return`` [id, reason]
``retry`` [id]
    try again what waits for a person: a letter held at intake (fetched again, now or when
    Notify lists it again), an update refused by Notify (sent again), an ACCEPTED left
    unanswered before its deadline (printed here).
``handled`` [id, note]
    a person dealt with it at Notify: a refused update is dropped (later ones leave), an
    unanswered-ACCEPTED letter is let go.
``resolve`` [id, outcome: enclosed|dispatched|reprint|fail, code?]
    operator actions; the result is a one-line message.  ``fail`` (and ``resolve ...
    fail``, and a FAILED row of ``bulk_status``) needs a ``code`` from the profile's
    ``[failure_reasons]`` when the profile has that table: no way round the CLI's rule.
``bulk_status`` [rows: [{line, letter_id, status, reason_code?, reason_text?}]]
    RETURNED (R01-R10) / DELIVERED / FORWARDED for many letters, archived ones too, one
    durable commit; FAILED rows as ``fail`` each (agreed code);
    ``{"results": [{line, letter_id, status, ok, message}]}``.
``failure_reasons`` []
    the profile's agreed FAILED codes ``{code: text}``.
``mi_report`` [date] / ``mi_submit`` [date, partial?, allow_default_names?] /
``mi_resolve`` [key, mi_id?, not_sent?]
    management information (see appliance.mi.service); refused when the daemon records
    no MI (``ControlServer.mi`` is None).
``audit`` [device?, limit=200]
    ``{"rows": [...]}``: one row per inserter batch, newest first, with pieces expected,
    enclosed, diverted (incl. read-back suspects), reprinted, held and outstanding, and
    the first/last fact time (see appliance.pipeline.audit).
``subscribe`` []
    answers ``{"ok": true}`` then streams ``{"event": kind, "data": {...}}`` lines on that
    connection: kind is ``letter`` (brief), ``device`` ({name, state, ...}) or ``alert``
    (the alert as in ``status``: on open, on close, and count updates at most once a
    second per alert).  A console that does not keep up is disconnected
    (it may reconnect and ask ``status`` again); printing never waits for a console.
"""

from __future__ import annotations

import json
from typing import Any

DEFAULT_SOCKET = "/run/appliance/control.sock"
MAX_LINE = 1 << 20
EVENT_QUEUE = 5000  # events buffered per console before it is dropped as too slow
HOW_TO_START = "start it with 'appliance run --config PATH' or 'appliance demo --hold'"

BRIEF_FIELDS = ("id", "status", "stage", "specification_id", "group_id", "device", "created",
                "updated", "reason_code", "refused")


def brief(rec: dict[str, Any]) -> dict[str, Any]:
    return {k: rec.get(k) for k in BRIEF_FIELDS}


def dumps(obj: Any) -> bytes:
    return (json.dumps(obj, default=str, separators=(",", ":")) + "\n").encode()


