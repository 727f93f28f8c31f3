"""The hot file's journal: what changed since the last snapshot, one line per flush.

A flush used to rewrite ``hot.json`` whole: with 2 500 letters in flight that is ~2 MB
encoded and written per group commit, most of the daemon's CPU at full ingest.  Now a flush
appends one line to ``hot.journal`` naming only what changed since the previous flush:

    {"g": 7, "put": [[doc_id, record], ...], "del": [letter ids],
     "ob": {letter_id: [its outbox entries]}, "meta": {...}}

``put`` and ``ob`` carry whole records and a letter's whole outbox list, so a line is
idempotent and a line applied twice (a retried append) changes nothing.  ``hot.json`` is
rewritten (a *compaction*) only when the journal outgrows it, and on a clean close.

Generations: every snapshot carries ``meta.gen``; every line the generation of the snapshot
it follows.  Compaction writes ``hot.json`` at gen + 1 (the old one kept as
``hot.json.bak``), then renames the journal to ``hot.journal.bak``.  Opening replays, over
whichever snapshot it read (gen G), the lines of gen >= G from ``hot.journal.bak`` and then
``hot.journal``: over ``hot.json`` that is just the current journal; over the ``.bak``
fallback it is the previous journal and then the current one, so a corrupt ``hot.json``
costs nothing that was flushed.  A crash between the two renames of a compaction leaves
old-generation lines in ``hot.journal``; they are below ``hot.json``'s gen and skipped.

Pure: no files here (``Store`` does the I/O).
"""

from __future__ import annotations

from typing import Any, Iterable

from appliance.store.journal import dumps

JOURNAL_NAME = "hot.journal"


def encode_line(gen: int, puts: Iterable[tuple[int, bytes]], dels: Iterable[str],
                outbox: dict[str, list[dict[str, Any]]], meta: dict[str, Any]) -> bytes:
    """One journal line; ``puts`` are (doc id, the record's JSON already encoded)."""
    put = b",".join(b"[%d,%b]" % (doc_id, text) for doc_id, text in puts)
    return b'{"g":%d,"put":[%b],"del":%b,"ob":%b,"meta":%b}' % (
        gen, put, dumps(list(dels)), dumps(outbox), dumps(meta))


def replay(doc: dict[str, Any], lines: Iterable[dict[str, Any]]) -> tuple[dict[str, Any], int]:
    """``doc`` (a hot.json document) with every line of its generation or later applied,
    and how many lines were applied."""
    meta = dict((doc.get("meta") or {}).get("1") or {})
    gen = int(meta.get("gen", 0))
    letters = {rec["id"]: (int(doc_id), rec) for doc_id, rec in (doc.get("letters") or {}).items()}
    outbox: dict[str, list[dict[str, Any]]] = {}
    for entry in (doc.get("outbox") or {}).values():
        outbox.setdefault(entry["letter_id"], []).append(entry)
    applied = 0
    for line in lines:
        if not isinstance(line, dict) or int(line.get("g", -1)) < gen:
            continue
        for letter_id in line.get("del", ()):
            letters.pop(letter_id, None)
            outbox.pop(letter_id, None)
        for doc_id, rec in line.get("put", ()):
            letters[rec["id"]] = (int(doc_id), rec)
        for letter_id, entries in (line.get("ob") or {}).items():
            if entries:
                outbox[letter_id] = entries
            else:
                outbox.pop(letter_id, None)
        meta.update(line.get("meta") or {})
        applied += 1
    return {"letters": {str(doc_id): rec for doc_id, rec in letters.values()},
            "outbox": {str(e["seq"]): e for entries in outbox.values() for e in entries},
            "meta": {"1": meta}}, applied

