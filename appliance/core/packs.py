"""Pack specifications: what a letter's ``specificationId`` asks of paper, print and post.

The embedded table (``pack_specifications.json``) is distilled from the Notify pack
specifications known at build time.  A floor may add more with ``packs_dir`` in
appliance.toml: JSON files in the upstream pack-specification format.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from appliance.core.errors import ConfigError


@dataclass(frozen=True)
class Bound:
    """An upstream ``{operator, value}`` constraint on a measured quantity."""

    operator: str  # LESS_THAN | LESS_THAN_OR_EQUAL | EQUAL | GREATER_THAN ...
    value: float

    def allows(self, x: float) -> bool:
        op, v = self.operator, self.value
        return {"LESS_THAN": x < v, "LESS_THAN_OR_EQUAL": x <= v, "EQUAL": x == v,
                "GREATER_THAN": x > v, "GREATER_THAN_OR_EQUAL": x >= v}.get(op, True)

    def describe(self) -> str:
        words = {"LESS_THAN": "below", "LESS_THAN_OR_EQUAL": "at most", "EQUAL": "exactly",
                 "GREATER_THAN": "above", "GREATER_THAN_OR_EQUAL": "at least"}
        return f"{words.get(self.operator, self.operator)} {self.value:g}"


@dataclass(frozen=True)
class Postage:
    """The pack's ``postage``: tariff, speed and the mailpiece bounds it allows."""

    id: str = ""
    size: str = ""
    delivery_days: int | None = None
    max_weight_g: float | None = None
    max_thickness_mm: float | None = None


@dataclass(frozen=True)
class Pack:
    id: str
    name: str
    duplex: bool
    colour: bool
    paper_id: str
    paper_size: str
    paper_weight: int
    features: frozenset[str] = field(default_factory=frozenset)
    envelope_id: str | None = None
    insert_ids: tuple[str, ...] = ()
    postage_id: str = ""
    max_sheets: int | None = None  # inclusive upper bound
    max_sides: int | None = None
    black_coverage: Bound | None = None  # constraints.blackCoveragePercentage (percent of page area)
    colour_coverage: Bound | None = None  # constraints.colourCoveragePercentage
    delivery_days: Bound | None = None  # constraints.deliveryDays (working days to the recipient)
    postage: Postage = field(default_factory=Postage)
    billing_id: str = ""
    description: str = ""

    @property
    def same_day(self) -> bool:
        """``SAME_DAY`` packs: produced and dispatched the day they arrive."""
        return "SAME_DAY" in self.features

    @property
    def sides_per_sheet(self) -> int:
        return 2 if self.duplex else 1

    def sheets_for(self, pages: int) -> int:
        return -(-pages // self.sides_per_sheet)


def _bound(constraint: dict | None) -> int | None:
    """Translate an upstream ``{operator, value}`` constraint into an inclusive maximum."""
    if not constraint:
        return None
    op, value = constraint.get("operator"), int(constraint.get("value"))
    if op == "LESS_THAN":
        return value - 1
    if op in ("LESS_THAN_OR_EQUAL", "EQUAL"):
        return value
    return None


def _measure(constraint: dict | None) -> Bound | None:
    if not constraint or "value" not in constraint:
        return None
    return Bound(str(constraint.get("operator", "LESS_THAN")), float(constraint["value"]))


def _postage(d: dict) -> Postage:
    def num(key):
        v = d.get(key)
        return None if v is None else float(v)

    days = d.get("deliveryDays")
    return Postage(id=str(d.get("id", "")), size=str(d.get("size", "")),
                   delivery_days=None if days is None else int(days),
                   max_weight_g=num("maxWeightGrams"), max_thickness_mm=num("maxThicknessMm"))


def pack_from_upstream(d: dict) -> Pack:
    """Build a Pack from either the upstream JSON or our distilled form."""
    a = d.get("assembly", d)
    paper = a["paper"]
    constraints = d.get("constraints", {})
    return Pack(
        id=d["id"],
        name=d.get("name", d["id"]),
        duplex=bool(a.get("duplex", False)),
        colour=a.get("printColour", "BLACK") == "COLOUR",
        paper_id=paper["id"],
        paper_size=paper.get("size", "A4"),
        paper_weight=int(paper.get("weightGSM", 80)),
        features=frozenset(a.get("features") or ()),
        envelope_id=a.get("envelopeId"),
        insert_ids=tuple(a.get("insertIds") or ()),
        postage_id=d.get("postage", {}).get("id", ""),
        max_sheets=_bound(constraints.get("sheets")),
        max_sides=_bound(constraints.get("sides")),
        black_coverage=_measure(constraints.get("blackCoveragePercentage")),
        colour_coverage=_measure(constraints.get("colourCoveragePercentage")),
        delivery_days=_measure(constraints.get("deliveryDays")),
        postage=_postage(d.get("postage") or {}),
        billing_id=str(d.get("billingId", "")),
        description=str(d.get("description", "")),
    )


def load_packs(extra_dir: Path | None = None) -> dict[str, Pack]:
    """Embedded packs, then any JSON files in ``extra_dir`` (which override by id)."""
    raw = json.loads(
        resources.files("appliance.core").joinpath("pack_specifications.json").read_text()
    )
    packs = {d["id"]: pack_from_upstream(d) for d in raw}
    if extra_dir is not None:
        if not extra_dir.is_dir():
            raise ConfigError(f"packs_dir {extra_dir}: not a directory; create it or remove packs_dir")
        for f in sorted(extra_dir.glob("*.json")):
            try:
                p = pack_from_upstream(json.loads(f.read_text()))
            except (ValueError, KeyError, TypeError) as e:
                raise ConfigError(f"{f}: not a pack specification ({e}); fix or remove the file") from None
            packs[p.id] = p
    return packs
