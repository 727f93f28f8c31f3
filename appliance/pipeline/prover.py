"""The prover: reads letters back until every status update is proven applied at Notify.

Notify answers 202 when an update is *queued*; a worker applies it some seconds later,
without checking the transition, and an update lost on the way is only logged on the
server.  So a sent update stays in the outbox until ``GET /letters/{id}`` shows it.

Reads use spare rate budget only (``SupplierClient.read_back``: no token free now, no
read), so intake and the outbox never wait for them; letters are read oldest first, once
all their updates are answered 202 and settled ``prove_after`` seconds (a letter moving
fast through its statuses is read once, at the end).  A letter not yet final waits
``MOVING_FACTOR`` times longer (30 s by default): under a backlog its next status is on
its way, and reading it now would cost a second read later; an ACCEPTED is still proven,
or found lost and sent again, well inside Notify's 300 s visibility window.  What the read
shows decides:

- one of this letter's unproven statuses: proven up to it (older ones superseded);
  anything sent after it did not take and is sent again, in order;
- PENDING, or a status before all of them: nothing took, or Notify's worker has not got
  to it yet; read again after doubling pauses, and only if it still shows no change at
  least ``LOST_AFTER`` after the 202 is everything sent again (so a slow apply costs a
  few more reads, never a status sent twice);
- a status this appliance never sent from there: another writer (a second floor that
  also printed it, or Notify itself); alerted, not fought.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable

from appliance.api.client import ApiError, ApiUnavailable, NotFound, SupplierClient
from appliance.core.errors import UserError
from appliance.core.status import Status, reached
from appliance.store.store import Store

log = logging.getLogger(__name__)

#: Letters looked at per pass (the store is scanned once per pass).
PASS = 64
#: The least time after a 202 before an update not seen applied is called lost (seconds).
LOST_AFTER = 3.0
#: A letter not yet final is read this many times ``prove_after`` after its last 202.
MOVING_FACTOR = 6.0
#: Oldest unproven update older than this (seconds): alert, proofs are falling behind.
BEHIND_AFTER = 600.0


def judge(unproven: list[dict], shown: str) -> tuple[str, int | None]:
    """What a read-back showing ``shown`` means for a letter's unproven updates (in order):
    ("proven", seq up to which), ("lost", None: all of them) or ("conflict", None).  Pure."""
    for e in reversed(unproven):
        if e["status"] == shown:
            return "proven", e["seq"]
    if shown == Status.PENDING or reached(unproven[0]["status"], shown):
        return "lost", None
    return "conflict", None


class Prover:
    def __init__(self, store: Store, client: SupplierClient, *, prove_after: float,
                 alert: Callable[..., None], counters,
                 clear_alert: Callable[[str], object] = lambda key: None, wake_outbox: Callable[[], None],
                 clock: Callable[[], float] = time.time, spare_wait: float = 0.05):
        self.store = store
        self.client = client
        self.prove_after = prove_after
        self.alert = alert
        self.clear_alert = clear_alert
        self.counters = counters
        self.wake_outbox = wake_outbox
        self.clock = clock
        self.spare_wait = spare_wait
        self.api_ok = True
        self._behind_alerted = False
        self._conflicts: set[str] = set()
        #: letter -> (when to read it again, seq of its newest update, stale reads so far)
        self._recheck: dict[str, tuple[float, int, int]] = {}
        #: an update is called lost only this long after its 202 (Notify applies in ~1 s)
        self.lost_after = max(2 * prove_after, LOST_AFTER)

    async def run(self) -> None:
        backoff = 1.0
        while True:
            self._watch_lag()
            now = self.clock()
            ids = [i for i in self.store.outbox_settled(now - self.prove_after, PASS + len(self._recheck),
                                                        moving_before=now - self.prove_after * MOVING_FACTOR)
                   if self._recheck.get(i, (0.0,))[0] <= now][:PASS]
            if not ids:
                await asyncio.sleep(min(max(self.prove_after / 4, 0.05), 1.0))
                continue
            failed = 0
            for letter_id in ids:
                try:
                    while (ref := await self._read(letter_id)) is False:
                        await asyncio.sleep(self.spare_wait)  # no spare budget right now
                except (ApiUnavailable, ApiError, UserError) as e:  # this one read: try the next
                    failed += 1
                    self.counters["proof_read_failures"] += 1
                    log.info("prover: cannot read letter %s back yet: %s", letter_id, e)
                    continue
                self._settle(letter_id, ref)
            self.api_ok = failed < len(ids)
            if self.api_ok:
                backoff = 1.0
            else:  # every read of the pass failed: Notify is down or refusing, wait
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, max(getattr(self.client, "backoff_cap", 10.0), 0.05))

    async def _read(self, letter_id: str):
        """The letter's status at Notify, None if Notify no longer knows it, False if
        there is no spare budget now."""
        try:
            ref = await self.client.read_back(letter_id)
        except NotFound:
            return None
        if ref is None:
            return False
        self.counters["proof_reads"] += 1
        return ref.status

    def _settle(self, letter_id: str, shown: str | None) -> None:
        unproven = self.store.outbox_of(letter_id)
        if not unproven or not all(e.get("sent") for e in unproven):
            return  # changed while we read (a new status, a resend): read it next time
        if shown is None:
            self._conflict(letter_id, unproven, "Notify no longer knows this letter")
            return
        verdict, upto = judge(unproven, shown)
        if verdict == "conflict":
            self._recheck.pop(letter_id, None)
            self._conflict(letter_id, unproven, f"Notify shows {shown}")
            return
        if verdict == "proven":
            self.store.outbox_proven(letter_id, shown, upto)
            self.counters["proven"] += 1
            lost = [e for e in unproven if e["seq"] > upto]
        else:
            lost = unproven
        if not lost:
            self._recheck.pop(letter_id, None)
            return
        # what is not applied yet may still be on Notify's queue: resend only when stale long enough
        if not self._stale_long_enough(letter_id, lost[-1]):
            return
        self.counters["updates_lost"] += len(lost)
        if lost[0]["status"] == Status.ACCEPTED:
            self.counters["accepted_lost"] += 1
        statuses = ", ".join(e["status"] for e in lost)
        self.store.outbox_resend(letter_id, f"Notify shows {shown}; {statuses} did not take")
        log.info("letter %s: Notify shows %s; sending %s again", letter_id, shown, statuses)
        self.wake_outbox()

    def _stale_long_enough(self, letter_id: str, newest: dict) -> bool:
        """True once reads have shown none of the same updates applied at least twice and
        ``lost_after`` after the newest one's 202: Notify applies updates a little after
        answering, so a stale read may only mean its worker is behind.  Until then the
        letter is read again after doubling pauses (spare budget only)."""
        _, seq, stale = self._recheck.pop(letter_id, (0.0, None, 0))
        stale = stale + 1 if seq == newest["seq"] else 1
        now = self.clock()
        if stale >= 2 and now - newest["sent"] >= self.lost_after:
            return True
        self._recheck[letter_id] = (now + self.prove_after * 2 ** (stale - 1), newest["seq"], stale)
        return False

    def _conflict(self, letter_id: str, unproven: list[dict], what: str) -> None:
        self.counters["proof_conflicts"] += 1
        sent = ", ".join(e["status"] for e in unproven)
        self.alert("api", f"{what}, but this appliance sent {sent}: another writer has this "
                          "letter (a second floor, or Notify itself); check it at Notify", letter_id,
                   key=f"letter:{letter_id}:conflict", severity="critical")
        last = unproven[-1]
        self.store.outbox_proven(letter_id, last["status"], last["seq"])

    def _watch_lag(self) -> None:
        for letter_id in [i for i in self._recheck if not self.store.outbox_of(i)]:
            del self._recheck[letter_id]  # proven meanwhile (a free signal, an operator)
        oldest = self.store.outbox_counts()["oldest_sent"]
        behind = oldest is not None and self.clock() - oldest > BEHIND_AFTER
        if behind and not self._behind_alerted:
            self.alert("api", f"status proofs are behind: an update answered 202 "
                              f"{(self.clock() - oldest) / 60:.0f} min ago is not yet read back "
                              "(no spare rate budget, or Notify's reads fail)", key="api:proofs-behind")
        elif not behind and self._behind_alerted:
            self.clear_alert("api:proofs-behind")
        self._behind_alerted = behind
