"""Hardware profiles: the fleet on one print floor, described in TOML.

A profile lists printers (with the capabilities routing needs), inserters and franking
machines (each with a ``driver`` and that driver's own settings), and may override how
device events map to statuses.  Every mistake is one ConfigError line naming file, key
and fix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import drivers
from appliance.config.service import parse_service
from appliance.config.settings import DEFAULT_CONFIG_PATH, Config, load_config, read_toml
from appliance.core.deadlines import ServiceTable
from appliance.core.errors import ConfigError
from appliance.core.mailpiece import Item, Materials
from appliance.core.packs import load_packs
from appliance.core.reprint import ReprintPolicy
from appliance.core.routing import PrinterCaps, why_not
from appliance.core.status import DEFAULT_EVENT_MAP, SETTABLE
from appliance.core.tables import known_keys, table, typed, typed_table
from appliance.core.verify import VerifyPolicy
from appliance.marks.zones import MarksSettings, parse_marks
from appliance.mi.settings import MiSettings, parse_failure_reasons, parse_mi


@dataclass(frozen=True)
class DeviceSpec:
    family: str  # printer | inserter | franker
    name: str
    driver: str
    settings: dict[str, Any]
    caps: PrinterCaps | None = None  # printers only
    accepts: frozenset[str] = frozenset()  # inserter: envelope ids; franker: postage ids; empty = any
    max_queued: int = 0  # printers: most letters handed to it at once (0 = no limit)
    marks: bool = False  # printers only: overlay sheet marks (zones in the profile's [marks])


@dataclass(frozen=True)
class Profile:
    name: str
    printers: tuple[DeviceSpec, ...]
    inserters: tuple[DeviceSpec, ...]
    frankers: tuple[DeviceSpec, ...]
    on_no_printer: str = "hold"  # hold | reject
    print_attempts: int = 2
    print_features: frozenset[str] = frozenset({"BRAILLE", "AUDIO"})
    events: dict[str, str | None] = field(default_factory=dict)
    source: Path | None = None
    mi: MiSettings = field(default_factory=MiSettings)  # [mi]: invoice line items, schedule, stock
    failure_reasons: dict[str, str] = field(default_factory=dict)  # agreed FAILED codes -> text
    marks: MarksSettings = field(default_factory=MarksSettings)  # [marks]: clear zones for sheet marks
    reprint: ReprintPolicy = field(default_factory=ReprintPolicy)  # [reprint]: automatic reprints
    verify: VerifyPolicy = field(default_factory=VerifyPolicy)  # [verify]: what PDFs this floor takes
    service: ServiceTable = field(default_factory=ServiceTable)  # [service]: cut-offs, dispatch days
    materials: Materials = field(default_factory=Materials)  # [materials]: mailpiece weight/thickness

    def devices(self) -> tuple[DeviceSpec, ...]:
        return self.printers + self.inserters + self.frankers


_PROFILE_KEYS = {"name": str, "description": str, "on_no_printer": str, "print_attempts": int,
                 "print_features": list}
_COMMON = {"name": str, "driver": str}
_PRINTER_CAPS = {"paper_sizes": list, "paper_ids": list, "max_weight_gsm": int, "colour": bool,
                 "duplex": bool, "features": list, "max_queued": int, "marks": bool}
#: Letters a printer holds at once unless its profile says otherwise: enough to keep a press
#: busy, few enough that a stalled or restarted printer strands little and reroutes cheaply.
DEFAULT_MAX_QUEUED = 50
_ACCEPTS = {"inserter": "envelopes", "franker": "postage"}
_EVENT_ACTIONS = {"reroute", "hold", "ignore", "reprint"}
#: Device names become folder names (output, journals): no paths, nothing empty.
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def _device(path: Path, family: str, i: int, table: Any, seen: set[str]) -> DeviceSpec:
    where = f"{path}: [[{family}]] #{i + 1}"
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: must be a table; write [[{family}]] then its keys")
    for key in _COMMON:
        if key not in table:
            raise ConfigError(f"{where} {key}: missing; add {key} = \"...\"")
        typed(where, key, table[key], str)
    name, kind = table["name"], table["driver"]
    if not SAFE_NAME.fullmatch(name):
        raise ConfigError(f"{where} name: {name[:40]!r} is not a plain device name; use letters, digits, "
                          "'-', '_' or '.', starting with a letter or digit (it names folders and logs)")
    where = f"{path}: [[{family}]] {name!r}"
    if name in seen:
        raise ConfigError(f"{where}: duplicate device name; give each device its own name")
    seen.add(name)
    if kind not in drivers.kinds(family):
        raise ConfigError(
            f"{where} driver: unknown {family} driver {kind!r}; use one of {', '.join(drivers.kinds(family))}"
        )
    cls = drivers.driver_class(family, kind)
    known = dict(cls.SETTINGS)
    extra = dict(_PRINTER_CAPS) if family == "printer" else {}
    if family in _ACCEPTS:
        extra[_ACCEPTS[family]] = list
    settings = {k: default for k, (_, default) in known.items()}
    given_extra: dict[str, Any] = {}
    for key, value in table.items():
        if key in _COMMON:
            continue
        if key in extra:
            given_extra[key] = typed(where, key, value, extra[key])
        elif key in known:
            settings[key] = typed(where, key, value, known[key][0])
        else:
            allowed = ", ".join(sorted([*_COMMON, *extra, *known]))
            raise ConfigError(f"{where} {key}: unknown key for a {kind} {family}; expected one of {allowed}")
    caps = None
    if family == "printer":
        caps = PrinterCaps(
            paper_sizes=frozenset(given_extra.get("paper_sizes", ["A4"])),
            paper_ids=frozenset(given_extra.get("paper_ids", [])),
            max_weight_gsm=given_extra.get("max_weight_gsm", 120),
            colour=given_extra.get("colour", False),
            duplex=given_extra.get("duplex", False),
            features=frozenset(given_extra.get("features", [])),
        )
    accepts = frozenset(given_extra.get(_ACCEPTS.get(family, ""), []))
    max_queued = given_extra.get("max_queued", DEFAULT_MAX_QUEUED if family == "printer" else 0)
    if max_queued < 0:
        raise ConfigError(f"{where} max_queued: must be 0 (no limit) or more, got {max_queued}")
    batch = settings.get("batch_letters", 1)
    if isinstance(batch, int) and max_queued and batch > max_queued:
        raise ConfigError(f"{where} batch_letters: {batch} is more than max_queued ({max_queued}), so a batch "
                          f"could never fill; raise max_queued to at least {2 * batch} or lower batch_letters")
    if hasattr(cls, "check_settings"):  # a driver's own static checks (ranges, required keys)
        cls.check_settings(where, settings)
    settings["_profile_dir"] = str(path.parent)  # so a driver resolves relative files (protocols) here
    return DeviceSpec(family, name, kind, settings, caps, accepts, max_queued,
                      bool(given_extra.get("marks", False)))


def load_profile(path: str | Path) -> Profile:
    path = Path(path)
    data = read_toml(path, "hardware profile")
    allowed = {"profile", "printer", "inserter", "franker", "events", "mi", "failure_reasons", "marks",
               "reprint", "verify", "service", "materials"}
    for key in data:
        if key not in allowed:
            raise ConfigError(
                f"{path}: unknown section {key!r}; expected [profile], [[printer]], [[inserter]], "
                "[[franker]], [events], [mi], [failure_reasons], [marks], [reprint], [verify], [service] "
                "or [materials]"
            )
    head = data.get("profile", {})
    if not isinstance(head, dict):
        raise ConfigError(f"{path}: profile must be a [profile] table; write [profile] then its keys")
    typed_table(f"{path}: [profile]", head, _PROFILE_KEYS)
    on_no = head.get("on_no_printer", "hold")
    if on_no not in ("hold", "reject"):
        raise ConfigError(f'{path}: [profile] on_no_printer: must be "hold" or "reject", got {on_no!r}')
    attempts = head.get("print_attempts", 2)
    if attempts < 1:
        raise ConfigError(f"{path}: [profile] print_attempts: must be at least 1")

    seen: set[str] = set()
    families = {}
    for family in ("printer", "inserter", "franker"):
        tables = data.get(family, [])
        if not isinstance(tables, list):
            raise ConfigError(f"{path}: {family}: write [[{family}]] (an array of tables), not [{family}]")
        families[family] = tuple(_device(path, family, i, t, seen) for i, t in enumerate(tables))
    if not families["printer"]:
        raise ConfigError(f"{path}: no printers; add at least one [[printer]] table")

    events = data.get("events", {})
    if not isinstance(events, dict):
        raise ConfigError(f"{path}: events must be a table: [events]")
    mapped: dict[str, str | None] = {}
    for kind, target in events.items():
        if kind not in DEFAULT_EVENT_MAP:
            raise ConfigError(
                f"{path}: [events] {kind}: unknown device event; expected one of {', '.join(DEFAULT_EVENT_MAP)}"
            )
        if not isinstance(target, str) or (target not in SETTABLE and target not in _EVENT_ACTIONS):
            raise ConfigError(
                f"{path}: [events] {kind}: {target!r} is not a status or action; use a Notify status, \"reroute\", \"hold\", \"reprint\" or \"ignore\""
            )
        mapped[kind] = None if target == "ignore" else target

    print_features = frozenset(head.get("print_features", ["BRAILLE", "AUDIO"]))
    marks = _marks(path, data.get("marks"), families["printer"], print_features)
    return Profile(
        name=head.get("name", path.stem),
        printers=families["printer"],
        inserters=families["inserter"],
        frankers=families["franker"],
        on_no_printer=on_no,
        print_attempts=attempts,
        print_features=print_features,
        events=mapped,
        source=path,
        mi=parse_mi(path, data.get("mi")),
        failure_reasons=parse_failure_reasons(path, data.get("failure_reasons")),
        marks=marks,
        reprint=parse_reprint(path, data.get("reprint"), {s.name for s in families["printer"]}),
        verify=_verify(path, data.get("verify")),
        service=parse_service(path, data.get("service")),
        materials=_materials(path, data.get("materials")),
    )


_ITEM_KEYS = {"weight_g": float, "thickness_mm": float}


def _materials(path: Path, data: Any) -> Materials:
    """[materials]: what envelopes, inserts and paper weigh and measure (defaults and their
    sources: appliance.core.mailpiece).  Example::

        [materials]
        caliper_mm_per_gsm = 0.00125
        [materials.envelopes]
        "economy-c5" = { weight_g = 4.5, thickness_mm = 0.3 }
        [materials.inserts]
        "CSP15" = { weight_g = 5.0, thickness_mm = 0.1 }
        [materials.paper]
        "paper-braille" = { caliper_mm = 0.25 }
    """
    if data is None:
        return Materials()
    where = f"{path}: [materials]"
    data = table(where, data, "write [materials] then its keys")
    known_keys(where, data, ("caliper_mm_per_gsm", "envelopes", "inserts", "paper"))
    caliper = typed(where, "caliper_mm_per_gsm", data.get("caliper_mm_per_gsm", 0.00125), float)
    if not 0 < caliper <= 0.01:
        raise ConfigError(f"{where} caliper_mm_per_gsm: must be above 0 and at most 0.01 (mm per sheet per "
                          f"gsm; 80 gsm paper is about 0.1 mm: 0.00125), got {caliper:g}")
    items: dict[str, dict[str, Item]] = {}
    for section in ("envelopes", "inserts"):
        sub = f"{where[:-1]}.{section}]"
        tab = table(sub, data.get(section, {}), f'write [materials.{section}] then "ID" = '
                                               "{ weight_g = 4.5, thickness_mm = 0.3 }")
        items[section] = {}
        for ident, spec in tab.items():
            key = f'"{ident}"'
            example = "write { weight_g = 4.5, thickness_mm = 0.3 }"
            spec = typed_table(f"{sub} {key}", table(f"{sub} {key}", spec, example), _ITEM_KEYS)
            for k in _ITEM_KEYS:
                if k not in spec:
                    raise ConfigError(f"{sub} {key}: {k} missing; {example}")
            if not 0 <= spec["weight_g"] <= 5000 or not 0 <= spec["thickness_mm"] <= 100:
                raise ConfigError(f"{sub} {key}: weight_g must be 0-5000 (grams) and thickness_mm 0-100 "
                                  f"(millimetres), got {spec['weight_g']:g} g, {spec['thickness_mm']:g} mm")
            items[section][ident] = Item(spec["weight_g"], spec["thickness_mm"])
    sub = f"{where[:-1]}.paper]"
    paper = {}
    for ident, spec in table(sub, data.get("paper", {}), 'write [materials.paper] then "ID" = '
                                                         "{ caliper_mm = 0.1 }").items():
        key = f'"{ident}"'
        spec = typed_table(f"{sub} {key}", table(f"{sub} {key}", spec, "write { caliper_mm = 0.1 }"),
                           {"caliper_mm": float})
        mm = spec.get("caliper_mm")
        if mm is None or not 0 < mm <= 5:
            raise ConfigError(f"{sub} {key} caliper_mm: give the thickness of one sheet in mm, above 0 "
                              f"and at most 5 (80 gsm paper: 0.1), got {mm!r}")
        paper[ident] = mm
    return Materials(items["envelopes"], items["inserts"], caliper, paper)


_VERIFY_KEYS = {"page_tolerance_mm": float, "allow_active_content": bool}


def _verify(path: Path, data: Any) -> VerifyPolicy:
    """[verify]: page size tolerance, and whether PDFs with active content may be printed."""
    if data is None:
        return VerifyPolicy()
    where = f"{path}: [verify]"
    data = typed_table(where, table(where, data, "write [verify] then its keys"), _VERIFY_KEYS)
    tol = data.get("page_tolerance_mm", 3.0)
    if not 0 <= tol <= 50:
        raise ConfigError(f"{where} page_tolerance_mm: must be between 0 and 50 (millimetres), got {tol:g}")
    return VerifyPolicy(page_tolerance_mm=tol, allow_active_content=data.get("allow_active_content", False))


def _marks(path: Path, data: Any, printers: tuple[DeviceSpec, ...],
           print_features: frozenset[str]) -> MarksSettings:
    """The [marks] zones, checked against the embedded packs: a printer with marks = true
    must have a zone for every embedded pack it can print (packs from packs_dir are
    checked when a letter comes; one without a zone is held for an operator)."""
    packs = load_packs()
    marks = parse_marks(path, data, {p.id: p.paper_size for p in packs.values()})
    for printer in printers:
        if not printer.marks:
            continue
        where = f"{path}: [[printer]] {printer.name!r} marks"
        if not marks.any:
            raise ConfigError(f"{where}: true but the profile has no zone; add "
                              "[marks] default = { x_mm = 5, y_mm = 250, size_mm = 14 }")
        missing = sorted(p.id for p in packs.values()
                         if marks.zone_for(p.id) is None and why_not(printer.caps, p, print_features) is None)
        if missing:
            raise ConfigError(f"{where}: no clear zone for pack {', '.join(missing[:3])}"
                              f"{' ...' if len(missing) > 3 else ''}; add [marks] default = {{ ... }} "
                              f'or [marks.zone."{missing[0]}"]')
    return marks


def floor_from_args(config: str | None, profile: str | None) -> tuple[Profile, Config | None]:
    """The floor a command looks at: ``--profile TOML`` alone, or the profile named by
    ``--config`` (default /etc/appliance/appliance.toml) together with that config."""
    if profile:
        return load_profile(profile), None
    cfg = load_config(Path(config or DEFAULT_CONFIG_PATH))
    return load_profile(cfg.profile), cfg


def parse_reprint(path: Path, data: Any, printer_names: set[str]) -> ReprintPolicy:
    if data is None:
        return ReprintPolicy()
    where = f"{path}: [reprint]"
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: reprint must be a data: write [reprint] then tries = 1")
    known_keys(where, data, ("tries", "printer"), "tries or printer")
    tries = data.get("tries", 1)
    if not isinstance(tries, int) or isinstance(tries, bool) or not 0 <= tries <= 10:
        raise ConfigError(f"{where} tries: expected a whole number 0-10 (0 = never reprint), got {tries!r}")
    printer = data.get("printer", "")
    if not isinstance(printer, str):
        raise ConfigError(f"{where} printer: expected a printer name or \"\", got {printer!r}")
    if printer and printer not in printer_names:
        raise ConfigError(f"{where} printer: {printer!r} is not a [[printer]] of this profile; use one of "
                          f"{', '.join(sorted(printer_names))} or \"\" for any")
    return ReprintPolicy(tries, printer)
