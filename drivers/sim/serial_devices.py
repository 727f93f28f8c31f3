"""Simulated serial machines on a real pseudo-terminal: the LF-3000 inserter (ASCII lines)
and the FM-200 franking machine (STX/ETX frames, CRC, ACK/NAK).

Each simulator opens a pty with ``os.openpty()`` and publishes its slave end at a stable
symlink (as udev does with /dev/serial/by-id/...), so the driver opens it with pyserial
like any port.  "Unplugging" closes the pty and removes the link; "replugging" makes a new
pty behind the same link.  The simulators implement their protocols in plain Python,
independently of the protocol files, so tests check the engine against a second reading
of the same spec.

Fault modes (``Faults``): garbage bytes, split and merged messages, bad checksums, silence,
unplug/replug (reports made meanwhile are lost), jam, stock running out, unknown codes.
The inserter's sheet camera (``reader``) reports the mark of every sheet (READ lines) and
can be made to see each read-back anomaly once, deterministically: a missing, foreign,
duplicate, unreadable or stale-run sheet, or a piece pulled off the line by hand.

    python -m drivers.sim.serial_devices --protocol lf3000-ascii --link /tmp/ttyINS0
"""

# Size: two simulated machines (LF-3000, FM-200) on one pty base, with every fault the tests
# inject; a test tool, not a driver.

from __future__ import annotations

import argparse
import fcntl
import json
import os
import random
import select
import struct
import termios
import threading
import time
import tty
from collections import deque
from dataclasses import dataclass, fields
from pathlib import Path

from appliance.core.markcode import encode as encode_mark
from drivers.serial.protocol import StxEtxFramer

POSTAGE_PENCE = {"first-class": 135, "economy": 85, "admail": 60, "admail-economy": 55, "articles-blind": 0}


@dataclass
class Faults:
    piece_seconds: float = 0.005
    heartbeat: float = 1.0
    seed: int = 1
    garbage: float = 0.0  # chance of a noise burst before each message
    split: bool = False  # write each message in small pieces
    merge: bool = False  # hold messages back and write several at once
    bad_checksum_every: int = 0  # framed: corrupt the CRC of every Nth frame (first try only)
    silence_after: int = 0  # after N pieces go silent (no bytes, no work) ...
    silence_seconds: float = 0.0  # ... for this long
    unplug_after: int = 0  # after N pieces reported, the port disappears ...
    unplug_seconds: float = 0.5  # ... for this long ...
    unplug_lost: int = 0  # ... while this many pieces are processed unheard
    jam_at: int = 0  # jam on the Nth piece; cleared after jam_seconds, that piece diverted
    jam_seconds: float = 0.2
    stock: int = -1  # envelopes (inserter) or ink units (franker); -1: a full hopper/cartridge
    stock_low: int = 0  # report low stock at or below this
    refill_seconds: float = 0.0  # out of stock: refilled after this long (0 = wait for refill())
    #   with a cartridge/hopper of ``stock`` again when stock was given (else a full one)
    log: str = ""  # append one JSON line per piece handled here (the machine's ground truth)
    divert_every: int = 0
    unknown_code_at: int = 0  # report an error with a code no protocol file knows
    error_at: int = 0  # report a known error code after the Nth piece
    mute_at: int = 0  # handle the Nth piece but never report it (a lost report)
    scan_ids: bool = False  # inserter: report the scanned letter id with each piece
    reader: bool = False  # inserter: READ <batch> <seq> <mark> for each sheet before the piece's report
    # Read-back faults, each once, on the first piece fed from the Nth on (missing: the first
    # with two sheets or more); read_sticky: that letter is hit the same way every time again.
    read_missing_at: int = 0  # its last sheet is not in the envelope
    read_foreign_at: int = 0  # a sheet of the previous piece's letter is in it too
    read_duplicate_at: int = 0  # its first sheet is read twice
    read_unreadable_at: int = 0  # its last sheet's mark reads as "?"
    read_stale_at: int = 0  # its last sheet is from another print run of the same letter
    hand_pull_at: int = 0  # an operator takes it off the line: no reads, no report
    read_sticky: bool = False
    checksum: str = "crc16-ccitt"  # framed: must match the protocol file
    checksum_encoding: str = "binary-be"
    # framed: how long the machine waits for the host's ACK before sending a frame again (four
    # tries, then the report is dropped).  Generous, so a busy test box is not a lost report.
    ack_seconds: float = 2.0

    @classmethod
    def parse(cls, options: list[str]) -> "Faults":
        """From ["key=value", ...] (the profile's sim_options)."""
        f = cls()
        types = {fl.name: fl.type for fl in fields(cls)}
        for opt in options:
            key, _, value = opt.partition("=")
            if key not in types:
                raise ValueError(f"unknown simulator option {key!r}; use one of {', '.join(types)}")
            kind = {"float": float, "int": int, "bool": lambda v: v.lower() in ("1", "true", "yes"),
                    "str": str}[str(types[key])]
            setattr(f, key, kind(value))
        return f


class PtyPort:
    """A pty whose slave end is published at ``link``; can be unplugged and replugged."""

    def __init__(self, link: Path):
        self.link = Path(link)
        self.master: int | None = None
        self.slave: int | None = None

    def plug(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)  # no echo, no line discipline, until pyserial sets its own
        self.link.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.link.with_name(self.link.name + ".new")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(os.ttyname(self.slave))
        os.replace(tmp, self.link)

    def drain(self, timeout: float = 1.0) -> None:
        """Wait until the other end has read what we wrote (pulling a cable a moment later)."""
        deadline = time.monotonic() + timeout
        time.sleep(0.02)  # the kernel moves written bytes to the slave side asynchronously
        while self.slave is not None and time.monotonic() < deadline:
            pending = struct.unpack("i", fcntl.ioctl(self.slave, termios.FIONREAD, b"\0\0\0\0"))[0]
            if not pending:
                return
            time.sleep(0.002)

    def unplug(self) -> None:
        self.link.unlink(missing_ok=True)
        for fd in (self.master, self.slave):
            if fd is not None:
                os.close(fd)
        self.master = self.slave = None

    def read(self, timeout: float) -> bytes:
        fd = self.master  # once: another thread may unplug (stop) meanwhile
        if fd is None:
            time.sleep(timeout)
            return b""
        try:
            r, _, _ = select.select([fd], [], [], timeout)
            return os.read(fd, 4096) if r else b""
        except (OSError, ValueError):  # closed under us: unplugged
            return b""

    def write(self, data: bytes) -> bool:
        if self.master is None:
            return False
        try:
            os.write(self.master, data)
            return True
        except OSError:
            return False


class _DeviceSim:
    """Shared machinery: one thread that reads commands, does work and sends reports."""

    FULL_STOCK = 100000

    def __init__(self, link: Path, faults: Faults | None = None):
        self.port = PtyPort(link)
        self.f = faults or Faults()
        self.rng = random.Random(self.f.seed)
        self.state = "READY"
        self.batch = 0
        self.done = 0  # pieces processed in this batch (inserted + diverted)
        self.diverted = 0
        self.total = 0  # pieces processed since power-on
        self.stock = self.f.stock if self.f.stock >= 0 else self.FULL_STOCK
        self.queue: deque[tuple[int, int, str, str]] = deque()  # (batch, seq, letter id, extra)
        self.end_requested: int | None = None
        self.sent: deque[str] = deque(maxlen=100000)  # messages really written (for tests)
        self.received: deque[str] = deque(maxlen=100000)  # commands understood
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._held: list[bytes] = []
        self._inbuf = bytearray()
        self._early: list[str] = []  # commands read while waiting for the host's answer (framed)
        self._next_piece = 0.0
        self._next_hb = 0.0
        self._quiet_until = 0.0
        self._jam_until = 0.0
        self._refill_at = 0.0
        self._unplug_pending = False
        self._await_host = False
        self.reporting = True
        self.paused = False
        self.log_path: Path | None = Path(self.f.log) if self.f.log else None  # ground truth, per piece
        self.refills = 0  # consumables changed by the (simulated) operator
        self.handled: deque[tuple[str, str]] = deque(maxlen=100000)  # (letter id, outcome), heard or not

    def _record(self, batch: int, seq: int, letter_id: str, outcome: str) -> None:
        """What the machine really did with a piece, whether or not anyone heard."""
        self.handled.append((letter_id, outcome))
        if self.log_path is not None:
            with open(self.log_path, "a", encoding="utf-8") as f:
                f.write(json.dumps({"t": time.time(), "batch": batch, "seq": seq, "letter_id": letter_id,
                                    "outcome": outcome}) + "\n")

    # --- life cycle -------------------------------------------------------------------

    @property
    def link(self) -> Path:
        return self.port.link

    def start(self) -> "_DeviceSim":
        self.port.plug()
        self._thread = threading.Thread(target=self._run, name=f"sim-{self.link.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)
        self.port.unplug()

    # --- controls for tests and operators (any thread) --------------------------------

    def refill(self, amount: int = 1000) -> None:
        with self._lock:
            self.stock = amount
            self._refill_at = time.monotonic()

    def unplug_now(self, seconds: float, lost: int = 0) -> None:
        with self._lock:
            self.f.unplug_seconds, self.f.unplug_lost = seconds, lost
            self._unplug_pending = True

    # --- output -----------------------------------------------------------------------

    def encode(self, text: str, corrupt: bool = False) -> bytes:
        raise NotImplementedError

    def _noise(self) -> bytes:
        return bytes(self.rng.choice([0x00, 0x7F, 0x80, 0x9C, 0xFF, 0x13, 0x11, 0x1B]) for _ in range(self.rng.randint(1, 6)))

    def _write(self, data: bytes) -> None:
        if self.f.merge:
            self._held.append(data)
            if len(self._held) >= 3:
                self._flush()
            return
        if self.f.split and len(data) > 2:
            cuts = sorted(self.rng.sample(range(1, len(data)), min(2, len(data) - 1)))
            for a, b in zip([0, *cuts], [*cuts, len(data)]):
                self.port.write(data[a:b])
                time.sleep(0.002)
            return
        self.port.write(data)

    def _flush(self) -> None:
        if self._held:
            self.port.write(b"".join(self._held))
            self._held.clear()

    def send(self, text: str) -> None:
        if not self.reporting or self.port.master is None:
            return  # unplugged: the report is lost
        if self.f.garbage and self.rng.random() < self.f.garbage:
            self._write(self._noise())
        self.sent.append(text)
        self._write(self.encode(text))

    # --- the device thread ------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            data = self.port.read(0.002)
            now = time.monotonic()
            with self._lock:
                if now < self._quiet_until:
                    self._inbuf += data  # hung: commands wait in the buffer
                    continue
                if data:
                    self._await_host = False
                if data or self._inbuf or self._early:
                    self._inbuf += data
                    for cmd in self.take_commands():
                        self.received.append(cmd)
                        self.command(cmd)
                self._tick(now)
                self._flush()

    def _tick(self, now: float) -> None:
        if self._unplug_pending:
            self._unplug_pending = False
            self._do_unplug()
            return
        if now >= self._next_hb:
            self._next_hb = now + self.f.heartbeat
            self.heartbeat()
        if self.state == "JAM" and self._jam_until and now >= self._jam_until:
            self._jam_until = 0
            self.clear_jam()
        if self.state == "OUT_OF_STOCK" and self.stock > 0:
            self.state = "READY"
            self.send(self.ready_message())
        elif self.state == "OUT_OF_STOCK" and self.f.refill_seconds and now >= self._refill_at + self.f.refill_seconds:
            self.stock = self.f.stock if self.f.stock > 0 else self.FULL_STOCK  # the operator's new one
            self.refills += 1
        if (self.state in ("READY", "RUN") and not self.paused and not self._await_host and self.queue
                and now >= self._next_piece):
            self._next_piece = now + self.f.piece_seconds
            self._process()
        if not self.queue and self.state == "RUN":
            self.state = "READY"
        if not self.queue and self.end_requested is not None and self.state == "READY":
            self.send(self.tray_message(self.end_requested, self.done))
            self.end_requested = None

    def _process(self) -> None:
        batch, seq, letter_id, extra = self.queue[0]
        self.state = "RUN"
        n = self.total + 1
        if self.f.jam_at and n == self.f.jam_at:
            self.f.jam_at = 0
            self.state = "JAM"
            self._jam_until = time.monotonic() + self.f.jam_seconds
            self.send(self.jam_message())
            return
        if self.stock <= 0:
            self.state = "OUT_OF_STOCK"
            self._refill_at = time.monotonic()
            self.send(self.stock_message(0))
            return
        self.queue.popleft()
        self.total = n
        if self.pulled(n, batch, seq, letter_id, extra):
            self._record(batch, seq, letter_id, "pulled")
            return
        self.done += 1
        self.stock -= 1
        diverted = bool(self.f.divert_every and n % self.f.divert_every == 0)
        self._record(batch, seq, letter_id, "diverted" if diverted else self.DONE_WORD)
        self.before_report(batch, seq, letter_id, extra)
        if self.f.mute_at == n:
            pass
        elif diverted:
            self.diverted += 1
            self.send(self.divert_message(batch, seq, letter_id))
        else:
            self.send(self.piece_message(batch, seq, letter_id, extra))
        if self.stock <= 0:  # the last envelope/ink went into this piece: stop now
            self.state = "OUT_OF_STOCK"
            self._refill_at = time.monotonic()
            self.send(self.stock_message(0))
        elif self.f.stock_low and self.stock <= self.f.stock_low:
            self.send(self.stock_message(self.stock))
        if self.f.unknown_code_at == n:
            self.send(self.error_message(unknown=True))
        if self.f.error_at == n:
            self.send(self.error_message())
        if self.f.silence_after == n:
            self._quiet_until = time.monotonic() + self.f.silence_seconds
        if self.f.unplug_after == n:
            self._do_unplug()

    def _do_unplug(self) -> None:
        """The cable is pulled: work goes on, but its reports are lost."""
        self._flush()
        self.port.drain()
        self.port.unplug()
        deadline = time.monotonic() + self.f.unplug_seconds
        lost = self.f.unplug_lost
        while lost and self.queue and self.state in ("READY", "RUN"):
            self._process()  # send() drops these: the port is gone
            lost -= 1
        time.sleep(max(0.0, deadline - time.monotonic()))
        self.port.plug()
        self._await_host = True  # resume when the appliance speaks again (keeps tests exact)

    def clear_jam(self) -> None:
        """The operator pulls the jammed piece (it counts as diverted) and restarts."""
        if self.queue:
            batch, seq, letter_id, _ = self.queue.popleft()
            self._record(batch, seq, letter_id, "diverted")
            self.total += 1
            self.done += 1
            self.diverted += 1
            self.send(self.divert_message(batch, seq, letter_id, jam=True))
        self.state = "READY"
        self.send(self.ready_message())

    # --- protocol specifics -----------------------------------------------------------

    def take_commands(self) -> list[str]:
        raise NotImplementedError

    def command(self, text: str) -> None:
        raise NotImplementedError

    def pulled(self, n: int, batch: int, seq: int, letter_id: str, extra: str) -> bool:
        """Was this piece taken off the line before the machine handled it?"""
        return False

    def before_report(self, batch: int, seq: int, letter_id: str, extra: str) -> None:
        """Messages the machine sends about a piece before its report (sheet reads)."""


class LineInserterSim(_DeviceSim):
    """LF-3000: CR LF terminated ASCII lines."""

    STATES = {"READY": "READY", "RUN": "RUN", "JAM": "JAM", "OUT_OF_STOCK": "EMPTY"}
    DONE_WORD = "inserted"

    def __init__(self, link: Path, faults: Faults | None = None):
        super().__init__(link, faults)
        self._sticky: dict[str, str] = {}  # letter id -> read fault that hits it every time
        self._faulted: dict[tuple[int, int], str | None] = {}  # (batch, seq) -> fault, until read
        self._last_piece: tuple[str, int, int, int] | None = None  # its sheet 1: a neighbour's sheet

    def encode(self, text: str, corrupt: bool = False) -> bytes:
        return text.encode("ascii") + b"\r\n"

    def take_commands(self) -> list[str]:
        out = []
        while True:
            cut = min((i for i in (self._inbuf.find(b"\r"), self._inbuf.find(b"\n")) if i >= 0), default=-1)
            if cut < 0:
                return out
            line = bytes(self._inbuf[:cut]).decode("ascii", "replace").strip()
            del self._inbuf[:cut + 1]
            if line:
                out.append(line)

    def command(self, text: str) -> None:
        words = text.split()
        if text == "ID?":
            self.send("ID LF-3000 SIM 1.0")
        elif text == "STATUS?":
            state = "PAUSED" if self.paused else self.STATES[self.state]
            self.send(f"STATUS {state} BATCH={self.batch:04d} DONE={self.done:04d} "
                      f"DIV={self.diverted:04d} ENV={max(self.stock, 0):04d}")
        elif len(words) == 3 and words[0] == "BATCH" and words[2] == "START":
            self.batch, self.done, self.diverted = int(words[1]), 0, 0
            self.send("OK")
        elif len(words) == 3 and words[0] == "BATCH" and words[2] == "END":
            self.end_requested = int(words[1])
        elif len(words) >= 4 and words[0] == "PIECE":
            self.queue.append((int(words[1]), int(words[2]), words[3], " ".join(words[4:])))
        elif text in ("PAUSE", "RESUME"):
            self.paused = text == "PAUSE"
            self.send("OK")
        else:
            self.send("?")

    def heartbeat(self) -> None:
        self.send("HB")

    # --- the sheet camera ---------------------------------------------------------------

    READ_FAULTS = ("hand_pull", "read_missing", "read_foreign", "read_duplicate", "read_unreadable",
                   "read_stale")

    def _read_fault(self, n: int, letter_id: str, sheets: int) -> str | None:
        for name in self.READ_FAULTS:
            at = getattr(self.f, f"{name}_at")
            if at and n >= at and (name != "read_missing" or sheets >= 2):
                setattr(self.f, f"{name}_at", 0)
                if self.f.read_sticky:
                    self._sticky[letter_id] = name
                return name
        return self._sticky.get(letter_id)

    @staticmethod
    def _piece_fields(extra: str) -> tuple[int, int]:
        fields = dict(w.split("=", 1) for w in extra.split() if "=" in w)
        sheets = int(fields["SHEETS"]) if fields.get("SHEETS", "").isdigit() else 1
        run = int(fields["RUN"]) if fields.get("RUN", "").isdigit() else 0
        return max(sheets, 1), run

    def pulled(self, n, batch, seq, letter_id, extra) -> bool:
        if not self.f.reader and not self.f.hand_pull_at:
            return False
        sheets, _ = self._piece_fields(extra)
        fault = self._read_fault(n, letter_id, sheets)
        self._faulted[(batch, seq)] = fault
        return fault == "hand_pull"

    def before_report(self, batch, seq, letter_id, extra) -> None:
        if not self.f.reader:
            return
        sheets, run = self._piece_fields(extra)

        def mark(lid: str, k: int, n: int, r: int) -> str:
            try:
                return encode_mark(lid, k, n, r)
            except ValueError:
                return "?"

        marks = [mark(letter_id, k, sheets, run) for k in range(1, sheets + 1)]
        fault = self._faulted.pop((batch, seq), None)
        if fault == "read_missing":
            marks.pop()
        elif fault == "read_foreign":
            prev = self._last_piece
            marks.append(mark(*prev) if prev and prev[0] != letter_id else mark("STRAY-SHEET", 1, 1, 1))
        elif fault == "read_duplicate":
            marks.insert(1, marks[0])
        elif fault == "read_unreadable":
            marks[-1] = "?"
        elif fault == "read_stale":
            marks[-1] = mark(letter_id, sheets, sheets, run - 1 if run > 1 else run + 1000)
        self._last_piece = (letter_id, 1, sheets, run)
        for text in marks:
            self.send(f"READ {batch:04d} {seq:04d} {text}")

    def piece_message(self, batch, seq, letter_id, extra) -> str:
        scanned = f" ID={letter_id}" if self.f.scan_ids else ""
        return f"INS {batch:04d} {seq:04d} OK{scanned}"

    def divert_message(self, batch, seq, letter_id, jam=False) -> str:
        scanned = f" ID={letter_id}" if self.f.scan_ids else ""
        return f"INS {batch:04d} {seq:04d} DIV {'J01' if jam else 'E12'}{scanned}"

    def tray_message(self, batch, count) -> str:
        return f"TRAY {batch:04d} COUNT {count:04d}"

    def jam_message(self) -> str:
        return "JAM STATION 2"

    def stock_message(self, count) -> str:
        return "ENV OUT" if count <= 0 else f"ENV LOW {count:04d}"

    def error_message(self, unknown=False) -> str:
        return "ERR Z99" if unknown else "ERR E42"

    def ready_message(self) -> str:
        return "READY"


class FramedFrankerSim(_DeviceSim):
    """FM-200: STX body ETX CRC; one frame at a time, each waits for ACK (NAK: send again)."""

    STX, ETX, ACK, NAK = 0x02, 0x03, 0x06, 0x15
    FULL_STOCK = 999
    DONE_WORD = "franked"
    STATES = {"READY": "READY", "RUN": "RUN", "JAM": "JAM", "OUT_OF_STOCK": "OUT"}

    def __init__(self, link: Path, faults: Faults | None = None):
        super().__init__(link, faults)
        self.framer = StxEtxFramer(self.STX, self.ETX, self.f.checksum, "body+etx", "ascii",
                                   self.f.checksum_encoding, 128, control={self.ACK: "ack", self.NAK: "nak"})
        self.frames_sent = 0
        self.naks = 0
        self.credit = 500000
        self._ack_seen: deque[int] = deque()

    def encode(self, text: str, corrupt: bool = False) -> bytes:
        data = bytearray(self.framer.encode(text))
        if corrupt:
            data[-1] ^= 0x5A
        return bytes(data)

    def send(self, text: str) -> None:
        if not self.reporting or self.port.master is None:
            return
        self.frames_sent += 1
        corrupt = bool(self.f.bad_checksum_every) and self.frames_sent % self.f.bad_checksum_every == 0
        self.sent.append(text)
        for attempt in range(4):
            if self.f.garbage and self.rng.random() < self.f.garbage:
                self._write(self._noise())
            self._write(self.encode(text, corrupt and attempt == 0))
            self._flush()  # stop-and-wait: nothing may be held back
            answer = self._wait_answer(self.f.ack_seconds)
            if answer == self.ACK:
                return
            self.naks += answer == self.NAK
        # no answer after retries: the machine drops the report (like a real one would)

    def _wait_answer(self, timeout: float) -> int | None:
        """Read until ACK or NAK; frames that arrive meanwhile are commands, kept for later.

        Every byte goes through the one framer, so an ACK/NAK is only a byte *between*
        frames: a host frame whose binary CRC holds 0x06 or 0x15 (P|...|articles-blind has
        CRC 06 EF) is a command, not the answer.  Reading those bytes as the ACK corrupted
        the command, which was then dropped: the piece was never franked, its report never
        came, and the demo waited for ever on one ENCLOSED letter."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self._stop.is_set():
            answer = None
            for frame in self.framer.feed(self.port.read(0.005)):
                if frame.error in ("ack", "nak"):
                    if answer is None:
                        answer = self.ACK if frame.error == "ack" else self.NAK
                elif frame.ok:
                    self._early.append(frame.text)
            if answer is not None:
                return answer
            if self.port.master is None:
                return None
        return None

    def take_commands(self) -> list[str]:
        frames = self.framer.feed(bytes(self._inbuf))
        self._inbuf.clear()
        early, self._early = self._early, []
        return early + [fr.text for fr in frames if fr.ok]

    def command(self, text: str) -> None:
        parts = text.split("|")
        if text == "V":
            self.send("V|FM-200 SIM|1.0")
        elif text == "Q":
            state = "HOLD" if self.paused else self.STATES[self.state]
            self.send(f"S|{state}|{self.batch:04d}|{self.done:04d}|INK={max(self.stock, 0):03d}|"
                      f"CREDIT={self.credit:06d}|DIV={self.diverted:04d}")
        elif parts[0] == "B" and len(parts) == 2:
            self.batch, self.done, self.diverted = int(parts[1]), 0, 0
            self.send(f"A|B{self.batch:04d}")
        elif parts[0] == "E" and len(parts) == 2:
            self.end_requested = int(parts[1])
        elif parts[0] == "P" and len(parts) == 5:
            self.queue.append((int(parts[1]), int(parts[2]), parts[3], parts[4]))
        elif parts[0] == "Z" and len(parts) == 2:
            self.paused = parts[1] == "1"
            self.send(f"A|Z{parts[1]}")

    def heartbeat(self) -> None:
        self.send("H")

    def piece_message(self, batch, seq, letter_id, postage) -> str:
        value = POSTAGE_PENCE.get(postage, 85)
        self.credit -= value
        return f"F|{batch:04d}|{seq:04d}|{value:06d}"

    def divert_message(self, batch, seq, letter_id, jam=False) -> str:
        return f"R|{batch:04d}|{seq:04d}|{'09' if jam else '07'}"

    def tray_message(self, batch, count) -> str:
        return f"T|{batch:04d}|{count:04d}"

    def jam_message(self) -> str:
        return "J|02"

    def stock_message(self, count) -> str:
        return f"L|INK|{max(count, 0):03d}"

    def error_message(self, unknown=False) -> str:
        return "X|77" if unknown else "X|41"

    def ready_message(self) -> str:
        return "K"


SIMULATORS = {"lf3000-ascii": LineInserterSim, "fm200-stx": FramedFrankerSim}


def start_simulator(protocol: str, link: Path, options: list[str] | Faults | None = None,
                    framing: dict | None = None) -> _DeviceSim:
    """Start the built-in simulator for a protocol name (``port = "sim:<name>"``)."""
    if protocol not in SIMULATORS:
        raise ValueError(f"no built-in simulator for protocol {protocol!r}; use one of {', '.join(SIMULATORS)}")
    faults = options if isinstance(options, Faults) else Faults.parse(options or [])
    if framing and framing.get("kind") == "stx-etx":
        faults.checksum = framing["checksum"]
        faults.checksum_encoding = framing["checksum_encoding"]
    return SIMULATORS[protocol](Path(link), faults).start()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m drivers.sim.serial_devices",
                                description="Run a simulated serial inserter or franking machine on a pty.")
    p.add_argument("--protocol", required=True, choices=sorted(SIMULATORS))
    p.add_argument("--link", required=True, help="publish the pty at this path (a symlink)")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="fault or timing option, e.g. garbage=0.1 split=true jam_at=5 (repeatable)")
    p.add_argument("--log", metavar="PATH", help="append one JSON line per piece the machine handled")
    args = p.parse_args(argv)
    sim = start_simulator(args.protocol, Path(args.link), args.option)
    if args.log:
        sim.log_path = Path(args.log)
    print(f"{args.protocol} simulator at {sim.link} -> {os.readlink(sim.link)}; Ctrl-C to stop", flush=True)
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
