"""After a restart: pick up every in-flight letter where it stood.

Each letter's stage says what was last *intended* (written down before the side effect).
Devices are asked what really happened (``Driver.reconcile``): a piece a device can prove
finished is replayed as that event, one it still holds is counted as its load, one it never
got is submitted again, and one whose fate nobody can vouch for goes before an operator.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any, Protocol

from drivers.base import DeviceEvent, Driver

#: Reconcile answers meaning "the device still holds this job and will report on it".
STILL_AT_DEVICE = frozenset({"job.queued", "job.processing", "job.held", "job.stopped"})

#: Stages whose letter sits at a device, and the family that takes it on a resubmit.
AT_DEVICE = {"printing": None, "enclosing": "inserter", "franking": "franker"}


class Recoverable(Protocol):
    """What recovery needs of the pipeline (``appliance.pipeline.pipeline.Pipeline``)."""

    store: Any
    intake: Any
    committer: Any
    devices: dict[str, Driver]
    load: Counter
    counters: Counter
    events: asyncio.Queue

    async def route(self, letter_id: str) -> None: ...
    async def hand_on(self, letter_id: str, family: str, stage: str) -> None: ...
    def operator_hold(self, letter_id: str, why: str) -> None: ...
    async def retry_waiting(self) -> None: ...
    def record_key(self, rec: dict) -> tuple: ...  # where it stands: earliest deadline first


async def recover(p: Recoverable) -> None:
    by_stage: dict[str, list[dict]] = {}
    for rec in p.store.in_flight():
        by_stage.setdefault(rec["stage"], []).append(rec)
    for rec in by_stage.get("new", []):
        p.intake.take(rec["id"], at=rec.get("intake_retry_at"))
    for rec in by_stage.get("accepting", []):  # printed only once Notify queued the ACCEPTED
        accepted = [e for e in p.store.outbox_of(rec["id"]) if e["status"] == "ACCEPTED"]
        if not accepted or accepted[0].get("sent"):
            p.store.update(rec["id"], stage="verified", event="ACCEPTED was answered before the restart")
            await p.route(rec["id"])
    for rec in sorted(by_stage.get("verified", []) + by_stage.get("held", []), key=p.record_key):  # EDF
        await p.route(rec["id"])
    for stage in AT_DEVICE:
        by_device: dict[str, list[str]] = {}
        for rec in by_stage.get(stage, []):
            by_device.setdefault(rec.get("device") or rec.get("printer") or "", []).append(rec["id"])
        for device, ids in by_device.items():
            drv = p.devices.get(device)
            found = await drv.reconcile(ids) if drv else {}
            for lid in ids:
                kind = found.get(lid)
                if kind == "absent" or (drv is None and stage == "printing"):
                    await resubmit(p, stage, lid)
                elif kind is None:  # the device cannot vouch for this piece either way
                    p.operator_hold(lid, f"fate unknown after restart on {device or '?'}")
                elif kind in STILL_AT_DEVICE:  # it will report; count it as its load
                    p.load[device] += 1
                    p.counters["still_at_device"] += 1
                else:
                    p.counters["recovered"] += 1
                    await p.events.put(DeviceEvent(device, kind, lid, None, {"recovered": True}))
    await p.retry_waiting()  # wait-inserter / wait-franker letters, if a device is up
    await p.committer.durable()


async def resubmit(p: Recoverable, stage: str, letter_id: str) -> None:
    p.counters["resubmitted"] += 1
    p.counters[f"resubmitted_{stage}"] += 1  # printing: a job again; enclosing/franking: a piece
    family = AT_DEVICE[stage]
    if family is None:
        p.store.update(letter_id, stage="verified", event="resubmit")
        await p.route(letter_id)
    else:
        await p.hand_on(letter_id, family, stage)
