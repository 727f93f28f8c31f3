"""A job CUPS lost in a restart (cancelled by the driver as orphaned, ``service_fault``) is
printed again without counting a print attempt: with ``print_attempts = 2`` a letter whose
first job was aborted and whose second was orphaned by a CUPS restart ended FAILED (a
service fault turned into a terminal status; seen in the CUPS-restart fault test)."""

from __future__ import annotations

from types import SimpleNamespace

from appliance.core.status import Status
from appliance.pipeline.finishing import Finishing
from appliance.store.store import Store
from drivers.base import DeviceEvent


class Floor(Finishing):
    def __init__(self, store):
        self.store = store
        self.profile = SimpleNamespace(print_attempts=2)
        self.routed: list[str] = []

    def alert(self, *a, **k):
        pass

    def _set_status(self, letter_id, status, code=None, text=None, **k):
        return self.store.set_status(letter_id, status, code, text)

    def finish(self, letter_id, stage="done"):
        self.store.update(letter_id, stage=stage)

    async def route(self, letter_id):
        self.routed.append(letter_id)
        self.store.update(letter_id, stage="printing", printer="press", device="press")


async def test_an_orphaned_job_is_printed_again_without_using_an_attempt(tmp_path):
    store = Store(tmp_path)
    try:
        store.add_letter("L", "notify-c5", "g", "ab" * 32)
        store.set_status("L", Status.ACCEPTED)
        floor = Floor(store)
        await floor.route("L")
        await floor._reroute(DeviceEvent("press", "job.aborted", "L", "1", {"reason": "printer error"}))
        for job in ("2", "3"):  # CUPS restarted mid-job twice
            await floor._reroute(DeviceEvent("press", "job.aborted", "L", job,
                                             {"reason": "stuck in CUPS after a restart", "service_fault": True}))
        assert store.get("L")["status"] == Status.ACCEPTED and store.get("L")["attempts"] == 1
        assert floor.routed == ["L"] * 4
        await floor._reroute(DeviceEvent("press", "job.aborted", "L", "4", {"reason": "printer error"}))
        assert store.get("L")["status"] == Status.FAILED  # the printer failing still counts
    finally:
        store.close()
