"""Which printer may print a letter: pack specification -> capable, least-loaded device.

Pure: no I/O.  The pipeline passes in what it knows of each printer (capabilities, state,
queue depth); this module only decides.
"""

from __future__ import annotations

from dataclasses import dataclass

from appliance.core.packs import Pack

#: Printer states that may take new jobs.
ROUTABLE_STATES = frozenset({"idle", "busy"})


@dataclass(frozen=True)
class PrinterCaps:
    """What a printer can print (a hardware profile's ``[[printer]]`` keys)."""

    paper_sizes: frozenset[str]
    paper_ids: frozenset[str]  # empty: any paper of a listed size
    max_weight_gsm: int
    colour: bool
    duplex: bool
    features: frozenset[str]


@dataclass(frozen=True)
class PrinterView:
    name: str
    caps: PrinterCaps
    state: str
    load: int  # letters handed to it and not yet finished there
    limit: int = 0  # most letters it may hold at once (0 = no limit)

    @property
    def full(self) -> bool:
        return 0 < self.limit <= self.load


def why_not(caps: PrinterCaps, pack: Pack, print_features: frozenset[str]) -> str | None:
    """The first reason this printer cannot print this pack, or None if it can."""
    if pack.paper_size not in caps.paper_sizes:
        return f"paper size {pack.paper_size} not loaded"
    if caps.paper_ids and pack.paper_id not in caps.paper_ids:
        return f"paper {pack.paper_id} not loaded"
    if pack.paper_weight > caps.max_weight_gsm:
        return f"paper {pack.paper_weight}gsm heavier than {caps.max_weight_gsm}gsm"
    if pack.colour and not caps.colour:
        return "colour needed"
    if pack.duplex and not caps.duplex:
        return "duplex needed"
    missing = (pack.features & print_features) - caps.features
    if missing:
        return f"feature {', '.join(sorted(missing))} needed"
    return None


def capable(printers: list[PrinterView], pack: Pack, print_features: frozenset[str]) -> list[PrinterView]:
    return [p for p in printers if why_not(p.caps, pack, print_features) is None]


def choose_printer(
    printers: list[PrinterView],
    pack: Pack,
    print_features: frozenset[str],
    exclude: frozenset[str] = frozenset(),
) -> PrinterView | None:
    """Least-loaded capable printer that is taking jobs and has room, or None.

    ``exclude`` holds printers already tried for this letter (reroute after an abort): they
    are used only when no other printer can take it, so a letter whose only capable printer
    failed once is retried there rather than stranded (the pipeline bounds the attempts).
    Ties go to the order of the profile, so routing is predictable on the floor.
    """
    ready = [p for p in capable(printers, pack, print_features) if p.state in ROUTABLE_STATES and not p.full]
    fresh = [p for p in ready if p.name not in exclude]
    pool = fresh or ready
    if not pool:
        return None
    return min(pool, key=lambda p: p.load)


def waiting_for_room(printers: list[PrinterView], pack: Pack, print_features: frozenset[str]) -> bool:
    """True when a capable printer is up but full: the letter should queue, not be held."""
    return any(p.state in ROUTABLE_STATES and p.full for p in capable(printers, pack, print_features))
