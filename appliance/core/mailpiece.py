"""A mailpiece's weight and thickness, computed before printing (pure).

weight_g     = sheets x paper gsm x sheet area (m2) + envelope weight + insert weights
thickness_mm = sheets x caliper (mm per sheet) + envelope thickness + insert thicknesses

Figures for envelopes, inserts and paper come from the profile's ``[materials]``; an id
the profile does not list gets the default below, so a floor that never weighed its
stock still gets a sound answer for ordinary letters.  Where the defaults come from:
80 gsm A4 copy paper weighs 0.06237 m2 x 80 g/m2 = 5.0 g a sheet and is about 0.1 mm
thick (0.00125 mm per gsm: the usual office-paper caliper of 100 microns at 80 gsm); a
C5 envelope of 80-90 gsm paper weighs about 4.5 g and a C4 one about 9 g (paper suppliers'
figures; both about 0.3 mm empty, two layers and the seams); an insert (leaflet) is taken
as one 80 gsm A4 sheet folded: 5.0 g, 0.1 mm.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from appliance.core.verify import PAPER_MM

#: mm per sheet for each gsm of paper (100 microns at 80 gsm).
DEFAULT_CALIPER_MM_PER_GSM = 0.00125


@dataclass(frozen=True)
class Item:
    weight_g: float
    thickness_mm: float


#: An envelope id the profile does not list: C4 figures if its id says c4, else C5.
DEFAULT_C5_ENVELOPE = Item(4.5, 0.3)
DEFAULT_C4_ENVELOPE = Item(9.0, 0.3)
DEFAULT_INSERT = Item(5.0, 0.1)


@dataclass(frozen=True)
class Materials:
    """The profile's ``[materials]``: envelopes and inserts by id, paper caliper."""

    envelopes: dict[str, Item] = field(default_factory=dict)
    inserts: dict[str, Item] = field(default_factory=dict)
    caliper_mm_per_gsm: float = DEFAULT_CALIPER_MM_PER_GSM
    paper_caliper_mm: dict[str, float] = field(default_factory=dict)  # paper id -> mm per sheet

    def envelope(self, envelope_id: str | None) -> Item:
        eid = envelope_id or ""
        if eid in self.envelopes:
            return self.envelopes[eid]
        return DEFAULT_C4_ENVELOPE if "c4" in eid.lower() else DEFAULT_C5_ENVELOPE

    def insert(self, insert_id: str) -> Item:
        return self.inserts.get(insert_id, DEFAULT_INSERT)

    def caliper(self, paper_id: str, gsm: int) -> float:
        return self.paper_caliper_mm.get(paper_id, gsm * self.caliper_mm_per_gsm)


@dataclass(frozen=True)
class Mailpiece:
    weight_g: float
    thickness_mm: float
    makeup: str  # "4 sheets 80 gsm A4 + envelope economy-c5 4.5 g + 1 insert 5.0 g"


def sheet_area_m2(paper_size: str) -> float:
    w, h = PAPER_MM.get((paper_size or "A4").upper(), PAPER_MM["A4"])
    return w * h / 1e6


def mailpiece(pack, sheets: int, materials: Materials) -> Mailpiece:
    env = materials.envelope(pack.envelope_id)
    inserts = [materials.insert(i) for i in pack.insert_ids]
    paper_g = sheets * pack.paper_weight * sheet_area_m2(pack.paper_size)
    weight = paper_g + env.weight_g + sum(i.weight_g for i in inserts)
    thick = (sheets * materials.caliper(pack.paper_id, pack.paper_weight) + env.thickness_mm
             + sum(i.thickness_mm for i in inserts))
    makeup = (f"{sheets} sheet{'s' if sheets != 1 else ''} {pack.paper_weight} gsm {pack.paper_size}"
              f" + envelope {pack.envelope_id or '-'} {env.weight_g:g} g")
    if inserts:
        makeup += f" + {len(inserts)} insert{'s' if len(inserts) != 1 else ''} " \
                  f"{sum(i.weight_g for i in inserts):g} g"
    return Mailpiece(round(weight, 1), round(thick, 2), makeup)


def over_bound(pack, piece: Mailpiece) -> tuple[str, str] | None:
    """(reason code, text) when the piece is heavier or thicker than the pack's postage
    allows (a bound of None: no bound); else None."""
    post = pack.postage
    if post is None:
        return None
    if post.max_weight_g is not None and piece.weight_g > post.max_weight_g:
        return ("TOO_HEAVY", f"mailpiece {piece.weight_g:g} g ({piece.makeup}); postage {post.id} "
                             f"allows at most {post.max_weight_g:g} g")
    if post.max_thickness_mm is not None and piece.thickness_mm > post.max_thickness_mm:
        return ("TOO_THICK", f"mailpiece {piece.thickness_mm:g} mm thick ({piece.makeup}); postage "
                             f"{post.id} allows at most {post.max_thickness_mm:g} mm")
    return None
