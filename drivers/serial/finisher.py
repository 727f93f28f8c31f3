"""Serial-attached inserters and franking machines, driven by a protocol file.

The driver announces each piece to the machine in print order (opening a batch when
needed), and moves a letter only on what the machine's bytes say: inserted -> ENCLOSED,
franked (or its tray completed) -> DISPATCHED, diverted -> FAILED with the reason.  When
the link drops, the reader thread reconnects with backoff; once the port is back the
driver asks the machine where it stands (the status query: batch, pieces done, pieces
diverted).  Pieces the machine handled while we could not hear are proved from its own
counters: if its divert count equals the diverts we heard, each was inserted (franked);
otherwise it cannot say which were diverted and they become ``piece.unknown`` - an
operator decides, nothing is advanced on a guess.  A journal of what was announced and
what was heard lets a restarted driver carry on with the open batch (the same counter
proof) and ``reconcile()`` answer for every letter.

Profile keys are in ``SETTINGS``; the machine's language is in the protocol file named by
``protocol`` (see README "Writing a protocol file").
"""

# Size: the serial driver's state machine (announce, track, resync after a link loss, journal,
# counters) shares one piece tracker and one journal; its pure parts are already apart
# (protocol.py, tracker.py, link.py).

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections import deque
from pathlib import Path
from typing import Any

import drivers
from appliance.core.errors import ConfigError
from appliance.core.readback import Verdict, hand_pulled, judge
from appliance.store.journal import Journal, private_dir, write_private
from drivers.base import Driver, Health, Work
from drivers.batching import finishing_key
from drivers.serial.link import LinkDown, SerialLink
from drivers.serial.protocol import PIECE_EVENTS, Match, load_protocol, serial_kwargs
from drivers.serial.tracker import Piece, PieceTracker, prove_unheard

log = logging.getLogger("drivers.serial")

#: Protocol files shipped with the package (hardware-profiles/protocols links here).
BUILTIN_PROTOCOLS = Path(__file__).resolve().parent / "protocols"
JOURNAL_KEEP = 20000  # journal lines kept at start (old batches are long settled)


def protocol_path(settings: dict[str, Any], where: str) -> Path:
    """``protocol`` is a file path (absolute, or relative to the profile's folder) or the
    bare name of a shipped protocol file (drivers/protocols/, linked as hardware-profiles/protocols/)."""
    value = settings.get("protocol") or ""
    if not value:
        raise ConfigError(f"{where} protocol: missing; name a protocol file, e.g. protocol = \"lf3000-ascii\"")
    given = Path(value)
    if given.is_absolute():
        return given
    bases = [Path(settings["_profile_dir"])] if settings.get("_profile_dir") else []
    bases += [BUILTIN_PROTOCOLS, Path.cwd()]
    names = [given] if given.suffix == ".toml" else [given.with_name(given.name + ".toml"), given]
    for base in bases:
        for name in names:
            if (base / name).is_file():
                return base / name
    raise ConfigError(f"{where} protocol: {value!r} not found in {', '.join(str(b) for b in bases)}; "
                      "give a path to the .toml file")


class SerialFinisher(Driver):
    SETTINGS: dict[str, tuple[type, Any]] = {
        "port": (str, ""),  # /dev/ttyUSB0, /dev/serial/by-id/..., or "sim:<protocol>" for the simulator
        "protocol": (str, ""),  # protocol file (see protocol_path)
        "baud": (int, 0),  # 0 = the protocol's; likewise "" for parity/flow and 0 for stopbits
        "parity": (str, ""),
        "stopbits": (float, 0.0),
        "flow": (str, ""),
        "identify": (str, ""),  # sequence | letter_id; "" = the protocol's
        "stock_low": (int, -1),  # -1 = the protocol's
        "reply_timeout": (float, 0.0),  # 0 = the protocol's [timing]
        "heartbeat_timeout": (float, 0.0),
        "piece_timeout": (float, 0.0),
        "batch_idle": (float, 0.0),
        "reconnect_min": (float, 0.1),
        "reconnect_max": (float, 5.0),
        "sim_options": (list, []),  # for port = "sim:...": e.g. ["garbage=0.05", "split=true"]
    }

    def __init__(self, name: str, settings: dict[str, Any], emit, *, state_dir: Path, **kw):
        super().__init__(name, settings, emit, state_dir=state_dir, **kw)
        where = f"[[{self.family}]] {name!r}"
        self.protocol = load_protocol(protocol_path(settings, where))
        p = self.protocol
        if p.family != self.family:
            raise ConfigError(f"{where} protocol: {p.source} describes a {p.family}, not a {self.family}")
        self.port = settings.get("port") or ""
        if not self.port:
            raise ConfigError(f"{where} port: missing; e.g. port = \"/dev/ttyUSB0\" or \"sim:{p.name}\"")
        self.identify = settings.get("identify") or p.identify
        if self.identify not in ("sequence", "letter_id"):
            raise ConfigError(f"{where} identify: must be \"sequence\" or \"letter_id\", got {self.identify!r}")
        group = "seq" if self.identify == "sequence" else "id"
        for rule in p.events:
            if rule.on in PIECE_EVENTS and group not in rule.pattern.groupindex:
                raise ConfigError(f"{where} identify: {self.identify} needs a (?P<{group}>...) group in every "
                                  f"piece pattern; {p.source} [[event]] on = {rule.on!r} has none")
        self.readback = bool(settings.get("readback", False))
        if self.readback and not any(rule.on == "read" for rule in p.events):
            raise ConfigError(f"{where} readback: {p.source} has no [[event]] on = \"read\"; the machine must "
                              "report the sheet marks it reads (or set readback = false)")
        self.timing = {k: float(settings.get(k) or v) for k, v in p.timing.items()}
        self.stock_low = settings.get("stock_low", -1)
        self.stock_low = p.stock_low if self.stock_low is None or self.stock_low < 0 else self.stock_low
        self.serial = dict(p.serial)
        for key in ("baud", "parity", "stopbits", "flow"):
            if settings.get(key):
                self.serial[key] = settings[key]
        self.device_dir = state_dir / "devices" / name
        self.journal = Journal(self.device_dir / "journal.jsonl")
        self.tracker = PieceTracker(self.identify)
        self.pending: deque[Work] = deque()
        self.counters: dict[str, int] = {}
        self.stock: dict[str, int] = {}
        self.device_fields: dict[str, int] = {}
        self.link_state = "down"  # down | syncing | up | silent
        self.dev_state = "idle"  # what the machine says: idle | busy | paused | stopped
        self.link: SerialLink | None = None
        self.sim = None
        self._encoder = p.framer()
        self._published: str | None = None
        self._wake = asyncio.Event()
        self._synced = asyncio.Event()
        self._status_waiter: asyncio.Future | None = None
        self._sync_task: asyncio.Task | None = None
        self._last_rx = time.monotonic()
        self._probe_at: float | None = None
        self._offline_since = time.monotonic()
        self._last_activity = time.monotonic()
        self._snapshot_at = 0.0
        self._next_batch = self._read_journal_batches() + 1
        self._batch_key: tuple[str, str] | None = None  # (envelope, postage) of the open batch
        self._ending: int | None = None  # batch told to end for the next (envelope, postage)

    # --- life cycle -------------------------------------------------------------------

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        port = self.port
        if port.startswith("sim:"):
            kind = port[4:] or self.protocol.name
            try:
                self.sim = await asyncio.to_thread(drivers.simulator("serial"), kind, self.device_dir / "tty",
                                                   list(self.settings.get("sim_options") or []),
                                                   self.protocol.framing)
            except ValueError as e:
                raise ConfigError(f"[[{self.family}]] {self.name!r} port/sim_options: {e}") from None
            port = str(self.sim.link)
        f = self.protocol.framing
        self.link = SerialLink(port, serial_kwargs(self.serial), self.protocol.framer(), loop=loop,
                               on_frames=self._on_frames, on_link=self._on_link, ack=f.get("ack"),
                               nak=f.get("nak"), reconnect_min=self.settings.get("reconnect_min", 0.1),
                               reconnect_max=self.settings.get("reconnect_max", 5.0), name=self.name)
        self._adopt_journal()
        self._publish()
        self.link.start()
        self.spawn("send", self._sender)
        self.spawn("monitor", self._monitor)
        try:  # come up ready when the machine answers; otherwise stay offline and keep trying
            await asyncio.wait_for(self._synced.wait(), timeout=3 * self.timing["reply_timeout"] + 1)
        except asyncio.TimeoutError:
            self.emit("device.alert", message=f"{self.port}: no answer yet ({self.link.last_error or 'silent'})")

    async def stop(self) -> None:
        if self._sync_task:
            self._sync_task.cancel()
        await self.stop_tasks()
        if self.link:
            await asyncio.to_thread(self.link.stop)
        if self.sim:
            await asyncio.to_thread(self.sim.stop)
        self._write_snapshot(force=True)
        self.journal.close()

    async def submit(self, work: Work) -> str:
        self.pending.append(work)
        self._wake.set()
        self._publish()
        return f"{self.name}:{work.letter_id}"

    async def pause(self) -> None:
        self.paused = True
        await self._send("pause")
        self._publish()

    async def resume(self) -> None:
        self.paused = False
        await self._send("resume")
        self.tracker.restart_clocks(time.monotonic())
        self._publish()
        self._wake.set()

    # --- restart ----------------------------------------------------------------------

    def _read_journal_batches(self) -> int:
        records = self.journal.read()
        if len(records) > JOURNAL_KEEP:
            records = records[-JOURNAL_KEEP // 2:]
            self.journal.rewrite(records)
        return max((r.get("batch", 0) for r in records if r.get("t") == "batch"), default=0)

    def _adopt_journal(self) -> None:
        """After a restart, expect again the pieces announced in the last batch and never
        settled: the machine may still be working on that batch (its status answer and
        its reports decide), and their fate must not be guessed from the journal alone."""
        records = self.journal.read()
        head = next((r for r in reversed(records) if r.get("t") == "batch"), None)
        if head is None:
            return
        batch = head["batch"]
        self._batch_key = tuple(head["key"]) if isinstance(head.get("key"), list) else None
        last: dict[str, dict] = {}
        heard_div = 0
        next_seq = 1
        for r in records:
            if "letter_id" in r:
                last[r["letter_id"]] = r
            if r.get("batch") != batch:
                continue
            if r.get("t") == "sent":
                next_seq = max(next_seq, r["seq"] + 1)
            elif r.get("t") in ("done", "unknown") and (r.get("kind") == "piece.diverted" or r.get("div")):
                heard_div += 1
        now = time.monotonic()
        # Reads heard before the restart are lost: such a piece is judged on what is read
        # from now on (incomplete -> reprinted), never enclosed on a guess.
        pieces = [Piece(lid, r["batch"], r["seq"], now, r.get("sheets", 0), r.get("run", 0))
                  for lid, r in last.items()
                  if r.get("t") == "sent" and r.get("batch") == batch]
        if pieces:
            self.tracker.adopt(batch, pieces, next_seq, heard_div)
            self._count("adopted", len(pieces))

    async def reconcile(self, letter_ids: list[str]) -> dict[str, str]:
        """Settled pieces are proved by the journal (written before each event was emitted);
        pieces the machine is still expected to report are "job.queued"; a letter never
        announced to the machine is absent; the rest are left out (operator hold)."""
        last: dict[str, dict] = {}
        for r in self.journal.read():
            if "letter_id" in r:
                last[r["letter_id"]] = r
        expected = {p.letter_id for p in self.tracker.outstanding.values()}
        expected |= {w.letter_id for w in self.pending}
        out = {}
        for lid in letter_ids:
            r = last.get(lid)
            if r is None:
                out[lid] = "absent"
            elif lid in expected:
                out[lid] = "job.queued"
            elif r.get("t") == "done" and r.get("kind") in ("piece.inserted", "piece.franked", "piece.diverted",
                                                            "piece.suspect", "tray.complete"):
                out[lid] = r["kind"]
        return out

    # --- sending ----------------------------------------------------------------------

    async def _send(self, command: str, **values: Any) -> bool:
        text = self.protocol.render(command, **values)
        if text is None or self.link is None:
            return True
        try:
            await asyncio.to_thread(self.link.write, self._encoder.encode(text))
            return True
        except LinkDown as e:
            log.info("%s: %s not sent: %s", self.name, command, e)
            return False

    def _ready(self) -> bool:
        return self.link_state == "up" and self.dev_state in ("idle", "busy") and not self.paused

    async def _sender(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self.pending and self._ready():
                key = finishing_key(self.pending[0])
                if self.tracker.open and self._batch_key not in (None, key):
                    # A batch never mixes envelopes or tariffs: this one ends first, then the
                    # next opens once its pieces are all settled (reported, or left out when
                    # the machine closed the batch without them: see _tray).
                    if self._ending != self.tracker.batch:
                        self._ending = self.tracker.batch
                        await self._send("end_batch", batch=self.tracker.batch)
                    if self.tracker.outstanding:
                        break
                    self.tracker.close_batch()
                    self._ending = None
                if not self.tracker.open:
                    batch = self._next_batch
                    self._next_batch = batch % 9999 + 1
                    self.journal.append({"t": "batch", "batch": batch, "key": list(key)})
                    if not await self._send("start_batch", batch=batch):
                        break
                    self.tracker.open_batch(batch)
                self._batch_key = key
                work = self.pending.popleft()
                piece = self.tracker.announce(work.letter_id, time.monotonic())
                piece.sheets, piece.run = work.sheets, work.run
                # Intent first: after a crash an announced piece is never "absent".
                self.journal.append({"t": "sent", "letter_id": piece.letter_id, "batch": piece.batch,
                                     "seq": piece.seq, "sheets": work.sheets, "run": work.run})
                pack = work.pack
                self._last_activity = time.monotonic()
                if not await self._send("expect_piece", batch=piece.batch, seq=piece.seq,
                                        letter_id=work.letter_id, sheets=work.sheets, pages=work.pages,
                                        envelope=pack.envelope_id, inserts=",".join(pack.insert_ids),
                                        postage=pack.postage_id, run=work.run):
                    break  # the machine may or may not have it: the resync decides
                # The pipeline counts the piece into this batch (audit); no status moves.
                if self.family == "inserter":
                    self.emit("job.queued", work.letter_id, piece.job, batch=piece.batch, seq=piece.seq,
                              run=work.run)
                self._publish()

    # --- link and frames (called on the loop by the reader thread) --------------------

    def _count(self, key: str, n: int = 1) -> None:
        self.counters[key] = self.counters.get(key, 0) + n

    def _on_link(self, up: bool, reason: str) -> None:
        if up:
            self._start_sync()
            return
        self.link_state = "down"
        self._offline_since = time.monotonic()
        self._count("link_lost")
        self.emit("device.alert", message=f"link lost: {reason}; reconnecting")
        self._publish()

    def _start_sync(self) -> None:
        if self._sync_task is None or self._sync_task.done():
            self.link_state = "syncing"
            self._sync_task = asyncio.ensure_future(self._sync())

    async def _sync(self) -> None:
        """The resynchronising handshake: hello, then ask where the machine stands."""
        await self._send("hello")
        reply = None
        if "status" in self.protocol.commands:
            for _ in range(3):
                self._status_waiter = asyncio.get_running_loop().create_future()
                if await self._send("status"):
                    try:
                        reply = await asyncio.wait_for(self._status_waiter, self.timing["reply_timeout"])
                        break
                    except asyncio.TimeoutError:
                        continue
                if self.link_state == "down":
                    return
            if reply is None:
                if self.link_state != "down":
                    self._go_silent("no answer to the status query")
                return
        g = reply.groups if reply else {}
        batch = int(g["batch"]) if g.get("batch", "").isdigit() else None
        count = int(g["count"]) if g.get("count", "").isdigit() else None
        diverted = int(g["diverted"]) if g.get("diverted", "").isdigit() else None
        same_batch = batch == self.tracker.batch
        heard_div = self.tracker.heard_diverted
        lost = self.tracker.resync(batch, count)
        done, unknown = prove_unheard(lost, diverted if same_batch else None, heard_div)
        for piece in done:
            self._count("proved_by_counters")
            self._proved(piece)
        for piece in unknown:
            why = ("handled while the link was down and the machine diverted some of them; fate unknown"
                   if same_batch and diverted is not None else "handled while the link was down; fate unknown")
            self._unknown(piece, why)
        self.link_state = "up"
        self._last_rx = time.monotonic()
        self._probe_at = None
        self.tracker.restart_clocks(time.monotonic())
        self._synced.set()
        self._publish()
        self._wake.set()

    def _go_silent(self, why: str) -> None:
        if self.link_state not in ("silent", "down"):
            self._offline_since = time.monotonic()
        self.link_state = "silent"
        self._count("silences")
        self.emit("device.alert", message=f"{why}; treating the machine as offline")
        self._publish()

    def _on_frames(self, frames) -> None:
        for frame in frames:
            if not frame.ok:
                self._count(frame.error.replace(" ", "_"))
                continue
            self._count("messages")
            self._last_rx = time.monotonic()
            self._probe_at = None
            if self.link_state == "silent":
                self._start_sync()
            m = self.protocol.match(frame.text)
            if m is None:
                self._count("unknown_messages")
                log.info("%s: unknown message %r", self.name, frame.text[:80])
                continue
            try:
                self._handle(m)
            except Exception:  # a malformed value must never take the driver down
                self._count("bad_messages")
                log.exception("%s: could not handle %r", self.name, frame.text[:80])

    def _handle(self, m: Match) -> None:
        g = m.groups
        if m.on in PIECE_EVENTS:
            self._piece_report(m)
        elif m.on == "read":
            self._read(g)
        elif m.on == "status":
            self._status(m)
        elif m.on == "tray":
            self._tray(g)
        elif m.on == "jam":
            self._count("jams")
            self.dev_state = "paused"
            self.emit("device.alert", message=f"jam at {g.get('where') or g.get('code') or '?'}; clear it on the machine")
            self._publish()
        elif m.on == "stock":
            self._stock(g.get("item", "stock"), int(g["count"]))
        elif m.on == "error":
            code = g["code"]
            text = g.get("text") or self.protocol.errors.get(code)
            self._count("errors")
            if text is None:
                self._count("unknown_codes")
                text = "unknown error code (not in the protocol file)"
            self.emit("device.alert", message=f"error {code}: {text}")
        elif m.on == "ready":
            self.dev_state = "idle"
            self.tracker.restart_clocks(time.monotonic())
            self._publish()
            self._wake.set()

    def _piece_report(self, m: Match) -> None:
        res = self.tracker.resolve(m.groups, settle_skipped=self.link_state != "syncing")
        for piece in res.skipped:
            if self.readback and not piece.reads:
                # Nothing read and the machine went past it: the sheets never went in.
                self._suspect(piece, hand_pulled())
            else:
                self._unknown(piece, "its report never came (a later piece was reported)")
        if res.piece is None:
            self._count("unmatched_reports")
            log.warning("%s: %s ignored: %s", self.name, m.on, res.problem)
            return
        piece = res.piece
        self._last_activity = time.monotonic()
        div = m.on == "diverted"
        self.tracker.heard_diverted += div  # the machine counts it, whatever we make of it
        if res.mismatch:
            self.emit("device.alert", message=f"piece mix-up: {res.problem}", letter_id=piece.letter_id)
            self._unknown(piece, res.problem, diverted=div)
            return
        g = m.groups
        if m.on == "inserted" and self.readback:
            verdict = judge(piece.letter_id, piece.sheets, piece.run, piece.reads)
            if verdict.complete:
                self._done(piece, "piece.inserted", readback=verdict.reason)
            else:
                self._suspect(piece, verdict)
        elif m.on == "inserted":
            self._done(piece, "piece.inserted")
        elif m.on == "diverted":
            code = g.get("code")
            reason = g.get("reason") or self.protocol.reasons.get(code or "")
            if reason is None:
                self._count("unknown_codes")
                self._unknown(piece, f"diverted with code {code}, which the protocol file does not know",
                              diverted=True)
                return
            # With read-backs the floor reprints what the machine took off the line.
            extra = {"reprintable": True} if self.readback else {}
            self._done(piece, "piece.diverted", reason=f"diverted by {self.name}: {reason}"
                                                      + (f" (code {code})" if code else ""), code=code, **extra)
        else:
            self._franked(piece, g)
        self._publish()

    def _franked(self, piece: Piece, g: dict[str, str]) -> None:
        detail = {"postage_value": int(g["value"])} if g.get("value", "").isdigit() else {}
        if g.get("class"):
            detail["postage_class"] = g["class"]
        self._done(piece, "piece.franked", **detail)

    def _done(self, piece: Piece, kind: str, **detail: Any) -> None:
        self._count(kind.split(".")[1])
        # Journal before emit: after a crash reconcile() can still prove it.
        self.journal.append({"t": "done", "letter_id": piece.letter_id, "kind": kind, "batch": piece.batch,
                             "seq": piece.seq})
        if piece.run:
            detail["run"] = piece.run  # so the pipeline can tell a spoiled print's piece from its reprint
        self.emit(kind, piece.letter_id, piece.job, batch=piece.batch, seq=piece.seq, **detail)

    def _read(self, g: dict[str, str]) -> None:
        """One sheet read by the machine's camera, for a piece not yet reported."""
        piece = self.tracker.peek(g)
        if piece is None:
            self._count("unmatched_reads")
            return
        self._count("reads")
        piece.reads.append(g.get("mark", ""))

    def _suspect(self, piece: Piece, verdict: Verdict) -> None:
        """The envelope does not hold exactly this letter: it must come off the line."""
        self._count("suspect")
        # The protocol has no divert command: a person pulls the envelope.
        self.emit("device.alert", message=f"pull envelope {piece.job}: {verdict.reason}",
                  letter_id=piece.letter_id)
        self._done(piece, "piece.suspect", reason_code=verdict.code, reason=f"{self.name}: {verdict.reason}")

    def _proved(self, piece: Piece) -> None:
        """Handled unheard, and the machine's counters prove it was not diverted."""
        self._done(piece, "piece.inserted", proved="machine counters")

    def _unknown(self, piece: Piece, why: str, diverted: bool = False) -> None:
        self._count("unknown")
        self.journal.append({"t": "unknown", "letter_id": piece.letter_id, "kind": "piece.unknown",
                             "batch": piece.batch, "seq": piece.seq, **({"div": True} if diverted else {})})
        self.emit("piece.unknown", piece.letter_id, piece.job, reason=f"piece {piece.job}: {why}")

    def _tray(self, g: dict[str, str]) -> None:
        self._count("trays")
        count = int(g["count"]) if g.get("count", "").isdigit() else None
        batch = int(g["batch"]) if g.get("batch", "").isdigit() else None
        if batch is not None and batch == self._ending == self.tracker.batch and self.tracker.outstanding:
            # The machine closed the batch we ended without reporting these: it went past
            # them, as when a later piece is reported (_piece_report).
            for piece in self.tracker.take_all():
                if self.readback and not piece.reads:
                    self._suspect(piece, hand_pulled())
                else:
                    self._unknown(piece, "its report never came (its batch ended)")
            self._wake.set()
        self.emit("tray.complete", None, g.get("batch"), count=count, tray=g.get("tray"))

    def _stock(self, item: str, count: int) -> None:
        before = self.stock.get(item)
        self.stock[item] = count
        if count == 0:
            self.dev_state = "stopped"
            self.emit("device.alert", message=f"out of {item}; refill to continue")
        elif count <= self.stock_low and (before is None or before > self.stock_low):
            self.emit("device.alert", message=f"{item} low: {count} left")
        self._publish()

    def _status(self, m: Match) -> None:
        g = m.groups
        for key, value in g.items():
            if key not in ("state", "batch") and value.isdigit():
                self.device_fields[key] = int(value)
        word = g.get("state")
        if word is not None:
            state = self.protocol.states.get(word)
            if state is None:
                self._count("unknown_codes")
                log.warning("%s: unknown state word %r", self.name, word)
            else:
                self.dev_state = state
        if self._status_waiter is not None and not self._status_waiter.done():
            self._status_waiter.set_result(m)
        self._publish()
        self._wake.set()

    # --- watching the link ------------------------------------------------------------

    async def _monitor(self) -> None:
        while True:
            await asyncio.sleep(0.05)
            now = time.monotonic()
            t = self.timing
            if self.link_state == "up":
                quiet = now - self._last_rx
                if self._probe_at is None and quiet > t["heartbeat_timeout"]:
                    self._probe_at = now
                    self._count("probes")
                    await self._send("status")
                elif self._probe_at is not None and now - self._probe_at > t["reply_timeout"]:
                    self._go_silent(f"no message for {quiet:.1f} s")
            if self.link_state != "up" and now - self._offline_since > t["piece_timeout"]:
                for piece in self.tracker.take_all():
                    self._unknown(piece, f"machine unreachable for more than {t['piece_timeout']:.0f} s")
            if self._ready():
                if self.pending and self.tracker.open and not self.tracker.outstanding:
                    self._wake.set()  # a batch waiting to end before the next (envelope, postage)
                for piece in self.tracker.overdue(now, t["piece_timeout"]):
                    self._unknown(piece, f"no report within {t['piece_timeout']:.0f} s")
                if (self.tracker.open and not self.tracker.outstanding and not self.pending
                        and now - self._last_activity > t["batch_idle"]):
                    self.tracker.close_batch()
                    await self._send("end_batch", batch=self.tracker.batch)
            self._publish()
            self._write_snapshot()

    # --- state for the pipeline, the CLI and the TUI ----------------------------------

    def public_state(self) -> str:
        if self.link_state != "up":
            return "offline"
        if self.paused:
            return "paused"
        if self.dev_state == "idle" and (self.pending or self.tracker.outstanding):
            return "busy"
        return self.dev_state

    def _publish(self) -> None:
        state = self.public_state()
        if state != self._published:
            self._published = state
            self.emit("device.state", state=state, link=self.link_state)

    def health(self) -> Health:
        counters = dict(self.counters)
        if self.link:
            counters.update({f"link_{k}": v for k, v in self.link.counters.items()})
            counters["garbage_bytes"] = self.link.framer.garbage_bytes
        counters.update({f"stock_{k}": v for k, v in self.stock.items()})
        counters.update({f"device_{k}": v for k, v in self.device_fields.items()})
        err = self.link.last_error if self.link else ""
        detail = f"link {self.link_state} on {self.port} ({self.protocol.name})" + (f"; {err}" if err else "")
        return Health(self.public_state(), detail, len(self.pending) + len(self.tracker.outstanding), counters)

    def _write_snapshot(self, force: bool = False) -> None:
        """status.json for ``appliance devices`` while this process holds the port."""
        now = time.monotonic()
        if not force and now - self._snapshot_at < 1.0:
            return
        self._snapshot_at = now
        h = self.health()
        snap = {"name": self.name, "family": self.family, "port": self.port, "protocol": self.protocol.name,
                "link": self.link_state, "state": h.state, "detail": h.detail, "queue": h.queue_depth,
                "counters": h.counters, "stock": self.stock, "t": time.time(), "pid": os.getpid()}
        try:
            private_dir(self.device_dir)
            write_private(self.device_dir / "status.json", json.dumps(snap, indent=1).encode())
        except OSError as e:
            log.debug("%s: status.json not written: %s", self.name, e)


class SerialInserter(SerialFinisher):
    family = "inserter"
    SETTINGS = {**SerialFinisher.SETTINGS,
                "readback": (bool, False)}  # check each envelope's sheet marks (protocol needs on = "read")


class SerialFranker(SerialFinisher):
    family = "franker"
    SETTINGS = {**SerialFinisher.SETTINGS,
                "dispatch_on": (str, "franked")}  # franked | tray: DISPATCHED when the tray completes

    def __init__(self, name, settings, emit, *, state_dir: Path, **kw):
        super().__init__(name, settings, emit, state_dir=state_dir, **kw)
        self.dispatch_on = settings.get("dispatch_on", "franked")
        if self.dispatch_on not in ("franked", "tray"):
            raise ConfigError(f"[[franker]] {name!r} dispatch_on: must be \"franked\" or \"tray\", "
                              f"got {self.dispatch_on!r}")
        self.untrayed: list[tuple[Piece, dict]] = []

    def _proved(self, piece: Piece) -> None:
        if self.dispatch_on == "franked":
            self._done(piece, "piece.franked", proved="machine counters")
        else:
            self._franked(piece, {})  # franked, waiting for its tray: the meter says so

    def _franked(self, piece: Piece, g: dict[str, str]) -> None:
        if self.dispatch_on == "franked":
            return super()._franked(piece, g)
        self._count("franked")
        self.journal.append({"t": "franked", "letter_id": piece.letter_id})
        detail = {"postage_value": int(g["value"])} if g.get("value", "").isdigit() else {}
        self.untrayed.append((piece, detail))

    def _tray(self, g: dict[str, str]) -> None:
        if self.dispatch_on == "franked":
            return super()._tray(g)
        self._count("trays")
        count = int(g["count"]) if g.get("count", "").isdigit() else len(self.untrayed)
        if count != len(self.untrayed):
            self.emit("device.alert", message=f"tray reports {count} pieces, {len(self.untrayed)} franked since "
                                              "the last tray; check the tray")
        done, self.untrayed = self.untrayed[:count], self.untrayed[count:]
        for piece, detail in done:
            self._done(piece, "tray.complete", **detail)



__all__ = ["SerialInserter", "SerialFranker", "protocol_path"]
