"""Sandbox letters: deterministic PENDING letters over real pack specifications.

Letters are spread over all 24 embedded pack specifications (same-day ones included).
Each good PDF carries a filled area so its ink coverage is known and below every pack's
bound: page 1 black, 2 to 15 % of the page (a colour pack's: blue, 2 to 8 %, under its
colour bound of 10 %).  A share of them are deliberately bad so a client's checks can be
exercised: ``hash`` (listed sha256Hash does not match the bytes), ``corrupt`` (not a
parseable PDF, hash matches), ``sheets`` (valid PDF with more sheets than the pack
allows) and ``coverage`` (its last page 25 to 45 % black, over the 20 % every pack allows).  PDF
bytes are made lazily on first use; they are cheap (tens of microseconds each).

Like the deployed server's letters they carry a queue priority (lower is listed first,
default 10); about one in five made here is urgent (5), so a client sees order matter.
"""

from __future__ import annotations

import hashlib
import random
import uuid
from dataclasses import dataclass, field
from typing import Any

from appliance.core.packs import Pack, load_packs
from appliance.sandbox.pdfgen import BLACK, Fill, make_corrupt, make_pdf

#: Packs listed first in the spread (the rest follow in id order): plain, colour, C4,
#: admail, braille, client, first class, same day.
SPREAD = (
    "notify-c5", "notify-c5-colour", "notify-c4", "notify-admail", "notify-braille",
    "client3-invites", "notify-first", "notify-sameday",
)
BAD_KINDS = ("hash", "corrupt", "sheets", "coverage")
GOOD_MAX_PAGES = 8  # keep PDFs small even where the pack allows many sides
DEFAULT_PRIORITY = 10  # the deployed server's default
URGENT_PRIORITY = 5


def squeeze(seq: list[str]) -> list[str]:
    """``seq`` without repeats in a row."""
    return [s for i, s in enumerate(seq) if i == 0 or seq[i - 1] != s]


@dataclass
class SandboxLetter:
    id: str
    specification_id: str
    group_id: str
    pages: int
    kind: str = "good"  # good | hash | corrupt | sheets | coverage | given (Sandbox.add_letter)
    colour: bool = False  # its pack prints in colour (a good letter's fill is then colour)
    status: str = "PENDING"
    reason_code: str | None = None
    reason_text: str | None = None
    history: list[tuple[str, float]] = field(default_factory=list)  # applied statuses only
    #: Queue priority (lower first); never shown by the API, only its effect on order.
    priority: int = DEFAULT_PRIORITY
    #: When GET /letters returned this letter (so tests can check visibility hiding).
    listed: list[float] = field(default_factory=list)
    #: Hostile overrides (Sandbox.add_letter): the exact JSON shown for this letter in the
    #: list and by GET /letters/{id}; the 303's Location ("" = no header at all).
    listing: Any = None
    location: str | None = None
    #: Per-request faults, consumed one per request (then the letter behaves): what the
    #: pre-signed URL answers (``storage.STORAGE_FAULTS``) and what /data answers ("404", ...).
    storage_faults: list[str] = field(default_factory=list)
    data_faults: list[str] = field(default_factory=list)
    _pdf: bytes | None = field(default=None, repr=False)
    _sha256: str | None = field(default=None, repr=False)

    def supplier_statuses(self) -> list[str]:
        """The statuses suppliers moved this letter through, a repeat in a row counted once
        (a replayed update is harmless): what tests and the torture run check paths against."""
        return squeeze([s for s, _ in self.history if s != "PENDING"])

    def serve(self, pdf: bytes, sha256: str | None = None) -> None:
        """Serve exactly these bytes, listed with ``sha256`` (default: their real hash)."""
        self._pdf = pdf
        self._sha256 = sha256 if sha256 is not None else hashlib.sha256(pdf).hexdigest()

    @property
    def pdf(self) -> bytes:
        if self._pdf is None:
            if self.kind == "corrupt":
                self._pdf = make_corrupt(self.id)
            else:
                self._pdf = make_pdf(self.id, self.pages, (f"Specification {self.specification_id}",),
                                     fills=self.fills())
        return self._pdf

    def fills(self) -> tuple[Fill | None, ...]:
        """The filled area of each page (deterministic from the id, drawing nothing from the
        factory's random stream, so a seed still makes the same letters)."""
        h = int(self.id[:8], 16) if len(self.id) >= 8 and all(c in "0123456789abcdef" for c in self.id[:8]) \
            else sum(self.id.encode())
        if self.kind == "coverage":
            return (None,) * (self.pages - 1) + ((0.25 + (h % 21) / 100, BLACK),)
        if self.colour:
            return ((0.02 + (h % 7) / 100, (0.0, 0.0, 1.0)),)
        return ((0.02 + (h % 14) / 100, BLACK),)

    @property
    def sha256(self) -> str:
        """The hash the API lists (deliberately wrong for kind ``hash``)."""
        if self._sha256 is None:
            digest = hashlib.sha256(self.pdf).hexdigest()
            if self.kind == "hash":
                digest = hashlib.sha256(self.pdf + b"tampered").hexdigest()
            self._sha256 = digest
        return self._sha256

    def attributes(self, update: tuple[str, str | None, str | None] | None = None) -> dict:
        """The API attributes; ``update`` (status, reasonCode, reasonText) shows those
        instead of the applied ones (a 202 echoes what was sent, not yet applied)."""
        status, code, text = update or (self.status, self.reason_code, self.reason_text)
        attrs = {
            "specificationId": self.specification_id,
            "groupId": self.group_id,
            "status": status,
            "sha256Hash": self.sha256,
        }
        if code is not None:
            attrs["reasonCode"] = code
        if text is not None:
            attrs["reasonText"] = text
        return attrs

    def resource(self, update: tuple[str, str | None, str | None] | None = None) -> dict:
        return {"id": self.id, "type": "Letter", "attributes": self.attributes(update)}

    def shown(self) -> Any:
        """What GET /letters and GET /letters/{id} show for this letter."""
        return self.resource() if self.listing is None else self.listing


def _page_limit(pack: Pack) -> int:
    """Most pages a letter may have and still fit the pack (sides and sheets)."""
    limits = [GOOD_MAX_PAGES]
    if pack.max_sides is not None:
        limits.append(pack.max_sides)
    if pack.max_sheets is not None:
        limits.append(pack.max_sheets * pack.sides_per_sheet)
    return max(1, min(limits))


def _too_many_pages(pack: Pack) -> int:
    sheets = (pack.max_sheets if pack.max_sheets is not None else 10) + 1
    return sheets * pack.sides_per_sheet


class LetterFactory:
    """Makes letters deterministically from a seed; successive batches continue the stream."""

    def __init__(self, seed: int, packs: dict[str, Pack] | None = None):
        self.rng = random.Random(seed)
        self.packs = packs or load_packs()
        first = [p for p in SPREAD if p in self.packs]
        self.spread = first + sorted(set(self.packs) - set(first))
        self.groups = [uuid.UUID(int=self.rng.getrandbits(128), version=4).hex for _ in range(4)]
        self.made = 0
        self.bad_made = 0

    def make(self, n: int, bad_ratio: float, priority: int | None = None) -> list[SandboxLetter]:
        """``n`` letters; ``priority`` None = the factory's spread (2 in 9 urgent; the pack
        spread shifts each round, so urgent letters come in every pack and kind), else that
        priority for all of them."""
        out = []
        for _ in range(n):
            self.made += 1
            kind = "good"
            # Spread bad letters evenly: the k-th bad one appears once made*ratio crosses k.
            if bad_ratio > 0 and int(self.made * bad_ratio) > self.bad_made:
                kind = BAD_KINDS[self.bad_made % len(BAD_KINDS)]
                self.bad_made += 1
            # Each round over the packs starts one further on, so neither the urgent letters
            # nor the bad ones (whose spacings share factors with 24) keep to some packs.
            n_packs = len(self.spread)
            spec = self.spread[(self.made + self.made // n_packs) % n_packs]
            pack = self.packs[spec]
            pages = (_too_many_pages(pack) if kind == "sheets"
                     else self.rng.randint(1, _page_limit(pack)))
            letter_id = uuid.UUID(int=self.rng.getrandbits(128), version=4).hex
            out.append(SandboxLetter(
                id=letter_id, specification_id=spec, group_id=self.rng.choice(self.groups),
                pages=pages, kind=kind, colour=pack.colour,
                priority=(priority if priority is not None else
                          URGENT_PRIORITY if self.made % 9 in (2, 6) else DEFAULT_PRIORITY),
            ))
        return out
