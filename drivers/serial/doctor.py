"""Ask a serial machine where it stands, outside the pipeline: ``appliance doctor`` and
``appliance devices`` use this to check that a port opens (permissions: the ``dialout``
group) and that the machine answers its status query.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import serial

import drivers
from appliance.core.errors import ConfigError
from drivers.serial.link import describe_open_error
from drivers.serial.protocol import serial_kwargs


@dataclass
class Probe:
    ok: bool
    port: str
    message: str
    protocol: str = ""
    status: dict[str, str] = field(default_factory=dict)


def probe_device(spec, timeout: float | None = None) -> Probe:
    """Open the port, say hello, ask for status; never raises for a device problem."""
    with tempfile.TemporaryDirectory(prefix="appliance-probe-") as tmp:
        try:
            drv = drivers.driver_class(spec.family, spec.driver)(spec.name, spec.settings, lambda ev: None,
                                                                 state_dir=Path(tmp))
        except ConfigError as e:
            return Probe(False, spec.settings.get("port", ""), str(e))
        sim = None
        port = drv.port
        if port.startswith("sim:"):
            try:
                sim = drivers.simulator("serial")(port[4:] or drv.protocol.name, Path(tmp) / "tty",
                                      list(spec.settings.get("sim_options") or []), drv.protocol.framing)
            except ValueError as e:
                return Probe(False, port, str(e), drv.protocol.name)
            port = str(sim.link)
        try:
            return _ask(drv, port, timeout or 3 * drv.timing["reply_timeout"])
        finally:
            if sim:
                sim.stop()


def _ask(drv, port: str, timeout: float) -> Probe:
    proto = drv.protocol
    try:
        ser = serial.Serial(port, timeout=0.05, write_timeout=2, exclusive=True, **serial_kwargs(drv.serial))
    except Exception as e:  # SerialException, OSError, termios.error, ValueError
        return Probe(False, drv.port, describe_open_error(drv.port, e), proto.name)
    framer = proto.framer()
    ack = proto.framing.get("ack")
    try:
        for cmd in ("hello", "status"):
            text = proto.render(cmd)
            if text is not None:
                ser.write(framer.encode(text))
        if "status" not in proto.commands:
            return Probe(True, drv.port, "port opens (the protocol has no status query)", proto.name)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for frame in framer.feed(ser.read(256)):
                if not frame.ok:
                    continue
                if ack is not None:
                    ser.write(bytes([ack]))
                m = proto.match(frame.text)
                if m and m.on == "status":
                    return Probe(True, drv.port, f"answers status: {frame.text}", proto.name, m.groups)
        return Probe(False, drv.port, f"port opens but no status answer within {timeout:.1f} s; check baud/parity "
                                      "and that the machine is on", proto.name)
    except Exception as e:  # the port went away mid-question
        return Probe(False, drv.port, f"link lost while asking ({e})", proto.name)
    finally:
        ser.close()


def doctor_checks(profile, config=None) -> list:
    from appliance.core.checks import Check

    out = []
    for spec in profile.inserters + profile.frankers:
        if spec.driver != "serial":
            continue
        p = probe_device(spec)
        out.append(Check(p.ok, f"{spec.family} {spec.name}",
                         f"{p.port} ({p.protocol}): {p.message}" if p.ok else p.message))
    return out
