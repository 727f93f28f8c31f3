"""In-process simulated inserter and franking machine (no hardware, no serial line).

They take pieces in print order, report each one after ``piece_seconds`` and write a
ledger, as the machine's own counters would survive an appliance restart.  The serial
simulators that speak real line protocols live beside them; these are the plain
stand-ins for the embedded demo.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from appliance.store.journal import Journal
from drivers.base import Driver, Health, Work
from drivers.work_queue import WorkQueue


class _SimFinisher(Driver):
    done_kind = ""
    ledger_name = ""

    def __init__(self, name, settings, emit, *, state_dir: Path, **kw):
        super().__init__(name, settings, emit, state_dir=state_dir, **kw)
        self.ledger = Journal(state_dir / "devices" / name / self.ledger_name)
        self._worker = WorkQueue(self._handle, lambda: self.paused)
        self.counters = {"done": 0, "diverted": 0}

    async def start(self) -> None:
        self.spawn("pieces", self._worker.run)
        self.emit("device.state", state="idle")

    async def stop(self) -> None:
        await self.stop_tasks()
        self.ledger.close()

    async def submit(self, work: Work) -> str:
        self._worker.put(work)
        return f"{self.name}:{work.letter_id}"

    async def _handle(self, work: Work, seq: int) -> None:
        await asyncio.sleep(self.settings.get("piece_seconds", 0.01))
        every = self.settings.get("divert_every", 0)
        refused = self.refuse(work)
        if refused or (every and seq % every == 0):
            self.counters["diverted"] += 1
            await asyncio.to_thread(self.ledger.append, {"letter_id": work.letter_id, "seq": seq, "kind": "piece.diverted"})
            self.emit("piece.diverted", work.letter_id, str(seq), reason=refused or "simulated divert")
            return
        detail = self.piece_detail(work)
        await asyncio.to_thread(self.ledger.append, {"letter_id": work.letter_id, "seq": seq, "kind": self.done_kind, **detail})
        self.counters["done"] += 1
        self.emit(self.done_kind, work.letter_id, str(seq), seq=seq, **detail)

    def piece_detail(self, work: Work) -> dict:
        return {}

    def refuse(self, work: Work) -> str | None:
        """Why the machine cannot take this piece (None: it can)."""
        return None

    async def reconcile(self, letter_ids: list[str]) -> dict[str, str]:
        # The simulator's ledger is complete: a piece not in it never left the machine.
        done = {r["letter_id"]: r["kind"] for r in self.ledger.read()}
        return {lid: done.get(lid, "absent") for lid in letter_ids}

    def health(self) -> Health:
        depth = self._worker.depth
        state = "paused" if self.paused else ("busy" if depth else "idle")
        return Health(state, "", depth, dict(self.counters))


class SimInserter(_SimFinisher):
    family = "inserter"
    done_kind = "piece.inserted"
    ledger_name = "enclosed.jsonl"
    SETTINGS = {"piece_seconds": (float, 0.01), "divert_every": (int, 0), "stock": (int, 100000)}

    #: The envelope ids in the feeders, set by the pipeline from what operators loaded
    #: (None: the machine is not told, it takes any).  A real machine with an envelope
    #: reader reports the one it used; this one reports the feeder's envelope that matched.
    envelopes: frozenset[str] | None = None

    def refuse(self, work: Work) -> str | None:
        wanted = work.pack.envelope_id or ""
        if wanted and self.envelopes is not None and wanted not in self.envelopes:
            return f"envelope {wanted} not in the feeders ({', '.join(sorted(self.envelopes)) or 'none'})"
        return None

    def piece_detail(self, work: Work) -> dict:
        self.stock = getattr(self, "stock", self.settings.get("stock", 100000)) - 1
        wanted = work.pack.envelope_id or ""
        used = wanted if self.envelopes is None or not wanted else next(
            e for e in sorted(self.envelopes) if e == wanted)
        return {"envelope": used, "inserts": list(work.pack.insert_ids), "stock_remaining": self.stock}


class SimFranker(_SimFinisher):
    family = "franker"
    done_kind = "piece.franked"
    ledger_name = "franked.jsonl"
    SETTINGS = {"piece_seconds": (float, 0.005), "divert_every": (int, 0)}

    def piece_detail(self, work: Work) -> dict:
        return {"postage": work.pack.postage_id}
