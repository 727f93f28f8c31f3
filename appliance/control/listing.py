"""Paging archived letters for the consoles' letters listing (pure, no I/O).

A floor that has worked for months knows 100 000+ letters, nearly all archived.  A page of
the listing must cost about what the page holds, not what the archive holds: sorting or
copying every archived id for each key the operator presses made the letters screen slow
(about 70 ms per page on the daemon alone, and the ingest loop waited meanwhile).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from itertools import islice


def archived_page(archived: Mapping[str, str], counts: Mapping[str, int], *, q: str = "",
                  status: str | None = None, exclude: Collection[str] = frozenset(),
                  start: int = 0, limit: int = 100,
                  specs: Mapping[str, str] | None = None) -> tuple[int, list[dict]]:
    """(how many archived letters match, up to ``limit`` of them from ``start``).

    ``archived`` maps id -> status in the order letters were archived; the page lists the
    most recently archived first.  ``counts`` is archived letters per status, so without
    an id search the total needs no scan; a page walks only ``start + limit`` matches.
    Letters in ``exclude`` (those also listed as in flight) are left out.  ``specs``: id ->
    specification, shown where known.
    """

    def wanted(letter_id: str, st: str) -> bool:
        return (not q or q in letter_id) and (not status or st == status) and letter_id not in exclude

    if q:
        total = sum(1 for i, st in archived.items() if wanted(i, st))
    else:
        total = counts.get(status, 0) if status else len(archived)
        total -= sum(1 for i in exclude if i in archived and (not status or archived[i] == status))
    matches = ((i, st) for i, st in reversed(archived.items()) if wanted(i, st))
    specs = specs or {}
    page = [{"id": i, "status": st, "stage": "archived", "specification_id": specs.get(i)}
            for i, st in islice(matches, max(0, start), max(0, start) + max(0, limit))]
    return max(0, total), page

