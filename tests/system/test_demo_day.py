"""A demo that can run all day (issue 16 item 7): the real ``appliance demo`` in a subprocess,
and the simulated FM-200 that once lost a piece and hung one default demo run in 38."""

from __future__ import annotations

import os
import select
import termios
import time
import tty

from drivers.serial.protocol import StxEtxFramer
from drivers.sim.serial_devices import Faults, start_simulator

ACK = 0x06


def _franker_framer() -> StxEtxFramer:
    return StxEtxFramer(0x02, 0x03, "crc16-ccitt", "body+etx", "ascii", "binary-be", 128,
                        control={0x06: "ack", 0x15: "nak"})


def test_a_host_frame_whose_crc_holds_the_ack_byte_is_a_command_not_the_answer(tmp_path):
    """The demo hang (179 DISPATCHED + 1 ENCLOSED): the FM-200 simulator, waiting for the
    host's ACK to one of its own frames, took the first 0x06 byte it read as that ACK, even
    inside a host frame.  ``P|...|articles-blind`` for the default demo's braille letter has
    CRC 06 EF: the command was cut, dropped, and its piece never franked."""
    framer = _franker_framer()
    piece = "P|0001|0057|1959b9ef58d04674b34de73d60c290d0|articles-blind"
    frame = framer.encode(piece)
    assert frame[-2] == ACK  # the case itself: the ACK byte inside the host's frame
    sim = start_simulator("fm200-stx", tmp_path / "fm200.tty", Faults(heartbeat=60, piece_seconds=0.001))
    fd = os.open(sim.link, os.O_RDWR | os.O_NOCTTY)
    try:
        tty.setraw(fd)
        termios.tcflush(fd, termios.TCIOFLUSH)

        def frames(timeout: float) -> list[str]:
            got: list[str] = []
            end = time.monotonic() + timeout
            while time.monotonic() < end:
                r, _, _ = select.select([fd], [], [], 0.05)
                if r:
                    got += [f.text for f in framer.feed(os.read(fd, 4096)) if f.ok]
                elif got:
                    break
            return got

        assert frames(3.0) == ["H"]  # the machine now waits for our ACK (up to 2 s) ...
        os.write(fd, framer.encode("B|0001") + frame)  # ... and gets two commands first
        time.sleep(0.2)
        os.write(fd, bytes([ACK]))  # then the answer to its heartbeat
        seen: list[str] = []
        end = time.monotonic() + 5
        while time.monotonic() < end and not any(t.startswith("F|") for t in seen):
            for text in frames(0.5):
                seen.append(text)
                os.write(fd, bytes([ACK]))
        os.write(fd, framer.encode("E|0001"))
        assert piece in sim.received, f"the machine never took the piece; it heard {list(sim.received)}"
        assert any(t.startswith("F|0001|0057|") for t in seen), seen
    finally:
        os.close(fd)
        sim.stop()
