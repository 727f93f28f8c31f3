"""``appliance demo --scenario NAME``: a floor situation played out on the demo floor.

``envelopes``: one envelope the demo's letters need is not loaded at the start (as if the
feeders were filled with the wrong stock).  Its letters are held before printing with one
alert ("load envelope first-c5: 12 letters waiting"); once everything else has moved on
(or a few seconds passed), the demo's operator loads it the way a person does
(``appliance devices envelopes INSERTER add ID``), the hold is released and every letter
finishes.  The report says what was held, for how long, and that it was released.
"""

from __future__ import annotations

import time
from collections import Counter

SCENARIOS = ("envelopes",)
#: The operator loads the envelope at the latest this long after the first hold.
LOAD_AFTER_SECONDS = 5.0


class EnvelopeScenario:
    def __init__(self, pipe, letters) -> None:
        self.pipe = pipe
        self.inserter = ""
        self.envelope = ""
        self.held_at: float | None = None
        self.loaded_at: float | None = None
        self.held = 0
        self.letters = list(letters)

    def prepare(self) -> None:
        """Before the pipeline starts: unload the envelope most of the offered letters need."""
        need = Counter(self.pipe.packs[l.specification_id].envelope_id for l in self.letters
                       if l.specification_id in self.pipe.packs)
        stock = self.pipe.envelope_stock
        for env, _ in sorted(need.items(), key=lambda kv: (-kv[1], kv[0] or "")):
            holders = [n for n, ids in stock.loaded.items() if ids is not None and env in ids]
            if env and holders and all(stock.loaded[n] is not None for n in stock.loaded):
                self.envelope, self.inserter = env, holders[0]
                for name in holders:
                    stock.change(name, "remove", env, who="demo scenario")
                return

    def _waiting(self) -> list[dict]:
        return [r for r in self.pipe.store.in_flight() if r.get("wait_envelope") == self.envelope]

    async def step(self, op) -> None:
        if not self.envelope or self.loaded_at is not None:
            return
        waiting = self._waiting()
        if waiting and self.held_at is None:
            self.held_at = time.monotonic()
        if not waiting:
            return
        others_moving = [r for r in self.pipe.store.in_flight() if r.get("wait_envelope") != self.envelope]
        if others_moving and time.monotonic() - self.held_at < LOAD_AFTER_SECONDS:
            return
        self.held = len(waiting)
        await op.envelopes(self.inserter, "add", self.envelope, who="demo operator")
        self.loaded_at = time.monotonic()

    def report(self) -> dict:
        if not self.envelope:
            return {"scenario": "envelopes", "envelope": None,
                    "note": "no envelope to unload: the floor's inserters take any envelope"}
        return {"scenario": "envelopes", "envelope": self.envelope, "inserter": self.inserter,
                "held_before_print": self.held,
                "held_seconds": round(self.loaded_at - self.held_at, 1) if self.loaded_at else None,
                "released": self.loaded_at is not None and not self._waiting()}


def report_lines(r: dict) -> list[str]:
    if not r.get("envelope"):
        return ["", f"scenario envelopes: {r.get('note')}"]
    if not r.get("held_seconds") and r.get("held_seconds") != 0:
        return ["", f"scenario envelopes: envelope {r['envelope']} unloaded at {r['inserter']}; "
                    "no letter needed it"]
    return ["", f"scenario envelopes: envelope {r['envelope']} was not loaded at the start: "
                f"{r['held_before_print']} letters held before printing for {r['held_seconds']} s, "
                f"then the operator loaded it at {r['inserter']}; "
                + ("hold released, every letter finished" if r["released"] else "NOT released")]
