"""``appliance demo --cups``: the demo floor, printing through a real CUPS.

Starts a private cupsd with one ippeveprinter emulator (IPP Everywhere) per printer of the
demo profile, and writes a profile in which each of those printers uses the CUPS driver
with the same capabilities.  Finishing stays simulated.  Needs the Debian packages cups,
cups-client and cups-ipp-utils (``./setup.sh --test`` installs them).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from appliance.config.profile import Profile
from appliance.core.errors import UserError


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (list, tuple, frozenset, set)):
        return "[" + ", ".join(_toml_value(x) for x in sorted(v)) + "]"
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


def cups_profile_text(base: Profile, server: str) -> str:
    """The base floor with every printer moved onto CUPS queue <name> at ``server``."""
    out = ["[profile]", 'name = "demo-cups"', f"on_no_printer = {_toml_value(base.on_no_printer)}",
           f"print_attempts = {base.print_attempts}",
           f"print_features = {_toml_value(base.print_features)}", ""]
    for p in base.printers:
        c = p.caps
        out += ["[[printer]]", f"name = {_toml_value(p.name)}", 'driver = "cups"',
                f"queue = {_toml_value(p.name)}", f"server = {_toml_value(server)}",
                f"paper_sizes = {_toml_value(c.paper_sizes)}", f"paper_ids = {_toml_value(c.paper_ids)}",
                f"max_weight_gsm = {c.max_weight_gsm}", f"colour = {_toml_value(c.colour)}",
                f"duplex = {_toml_value(c.duplex)}", f"features = {_toml_value(c.features)}",
                "stall_seconds = 60", 'on_stall = "reroute"', ""]
    for family, specs in (("inserter", base.inserters), ("franker", base.frankers)):
        for d in specs:
            out += [f"[[{family}]]", f"name = {_toml_value(d.name)}", f"driver = {_toml_value(d.driver)}"]
            out += [f"{k} = {_toml_value(v)}" for k, v in d.settings.items() if not k.startswith("_")]
            out.append("")
    return "\n".join(out)


def start_emulated_floor(root: Path, base: Profile):
    """Start cupsd + one emulator per printer; returns (floor, profile path)."""
    from drivers.sim.cups_floor import CupsSandbox, missing_binaries

    missing = missing_binaries()
    if missing:
        raise UserError(f"--cups needs {', '.join(missing)}; install them with ./setup.sh --test "
                        "(Debian packages cups cups-client cups-ipp-utils)")
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o755)  # CUPS filters run as user lp and must read the spool
    floor = CupsSandbox(root)
    # The emulated cupsd's own folders (config, spool, logs) must be readable by user lp;
    # the appliance runs with umask 077 for its own files, so open it up while cupsd starts
    # (before the pipeline exists: nothing with letter data is written meanwhile).
    umask = os.umask(0o022)
    try:
        floor.start()
        for p in base.printers:
            floor.add_printer(p.name, duplex=p.caps.duplex, colour=p.caps.colour)
    except (OSError, RuntimeError) as e:
        floor.stop()
        raise UserError(f"could not start the emulated CUPS floor ({e}); "
                        "check that cupsd and ippeveprinter run here (root, dbus, avahi)") from None
    finally:
        os.umask(umask)
    path = root / "demo-cups.toml"
    path.write_text(cups_profile_text(base, floor.server))
    return floor, path
