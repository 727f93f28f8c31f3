"""A control-socket server with fixed answers, for console snapshot tests.

It speaks the real protocol (appliance/control.py) over a real Unix socket, but its
answers never change, so a screen rendered from them is the same on every run.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading

DEVICES = {
    "mono-duplex": {"family": "printer", "state": "busy", "load": 3, "queue_depth": 3,
                    "detail": "queue mono-duplex", "counters": {"completed": 412, "aborted": 1}},
    "colour-press": {"family": "printer", "state": "paused", "load": 0, "queue_depth": 0,
                     "detail": "queue colour-press", "counters": {"completed": 97, "aborted": 0}},
    "braille-embosser": {"family": "printer", "state": "stopped", "load": 1, "queue_depth": 1,
                         "detail": "media-empty", "counters": {"completed": 12, "aborted": 0}},
    "lf3000": {"family": "inserter", "state": "idle", "load": 0, "queue_depth": 0, "detail": "link up",
               "counters": {"inserted": 505, "diverted": 2, "stock": 1480}},
    "fm200": {"family": "franker", "state": "offline", "load": 0, "queue_depth": 0,
              "detail": "link down: reconnecting", "counters": {"franked": 503}},
}

STATUS = {
    "counts": {"ACCEPTED": 31, "PRINTED": 4, "ENCLOSED": 2, "DISPATCHED": 503, "REJECTED": 9, "FAILED": 1},
    "devices": DEVICES,
    "held": 2,
    "outbox": 6,
    "alerts": [
        {"t": 1764079200.0, "source": "braille-embosser", "message": "media-empty: load paper-braille",
         "letter_id": None},
        {"t": 1764079260.0, "source": "operator", "message": "piece needs a person: fm200 link dropped",
         "letter_id": "a1b2c3d4e5f60718293a4b5c6d7e8f90"},
    ],
    "counters": {"polls": 120},
    "api_ok": True,
    "throughput": [12, 30, 41, 44, 38, 40, 42, 39, 45, 43],
}

LETTERS = [
    {"id": f"{i:02d}c0ffee{i:024d}", "status": s, "stage": st, "specification_id": spec,
     "group_id": "group-7", "device": dev, "printer": dev, "reason_code": rc, "reason_text": rt,
     "updated": 1764079200.0 + i}
    for i, (s, st, spec, dev, rc, rt) in enumerate([
        ("ACCEPTED", "printing", "notify-c5", "mono-duplex", None, None),
        ("PRINTED", "enclosing", "notify-c5", "lf3000", None, None),
        ("ENCLOSED", "franking", "notify-c5-colour", "fm200", None, None),
        ("DISPATCHED", "done", "notify-braille", "fm200", None, None),
        ("REJECTED", "done", "notify-c4", None, "HASH_MISMATCH", "PDF sha256 does not match"),
        ("FAILED", "done", "notify-c5", "lf3000", "DEVICE_DIVERTED", "double feed detected"),
        ("ACCEPTED", "operator-hold", "notify-admail", "fm200", None, None),
    ])
]


def answer(cmd: str, args: dict):
    if cmd == "status":
        return STATUS
    if cmd == "letters":
        return {"total": len(LETTERS), "letters": LETTERS}
    if cmd == "letter":
        rec = next((l for l in LETTERS if l["id"] == args.get("id")), LETTERS[0])
        return {**rec, "sha256": "0" * 64, "pages": 3, "sheets": 2,
                "history": [{"t": 1764079000.0, "event": "listed"},
                            {"t": 1764079001.0, "event": "verified", "pages": 3},
                            {"t": 1764079001.5, "event": "verified", "status": "ACCEPTED"},
                            {"t": 1764079002.0, "event": "acked", "status": "ACCEPTED"}],
                "outbox": []}
    return f"{cmd} done"


class CannedDaemon:
    def __init__(self, path: str):
        self.path = path
        self.loop = asyncio.new_event_loop()
        self.received: list[dict] = []
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    async def _serve(self, reader, writer):
        try:
            while line := await reader.readline():
                req = json.loads(line)
                self.received.append(req)
                if req.get("cmd") == "subscribe":
                    writer.write(json.dumps({"id": req.get("id"), "ok": True, "result": None}).encode() + b"\n")
                    await writer.drain()
                    await asyncio.sleep(3600)
                res = {"id": req.get("id"), "ok": True, "result": answer(req.get("cmd"), req.get("args") or {})}
                writer.write(json.dumps(res).encode() + b"\n")
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass

    def _run(self):
        asyncio.set_event_loop(self.loop)

        async def main():
            self.server = await asyncio.start_unix_server(self._serve, path=self.path)
            self._ready.set()
            await self.server.serve_forever()

        try:
            self.loop.run_until_complete(main())
        except asyncio.CancelledError:
            pass

    def __enter__(self):
        if os.path.exists(self.path):
            os.unlink(self.path)
        self._thread.start()
        self._ready.wait(5)
        return self

    def __exit__(self, *exc):
        self.loop.call_soon_threadsafe(self.server.close)
        for task in asyncio.all_tasks(self.loop):
            self.loop.call_soon_threadsafe(task.cancel)
        self._thread.join(5)
        if os.path.exists(self.path):
            os.unlink(self.path)
