"""MI in one place for the daemon, the control socket and the CLI.

``MiService`` joins the journal (what the devices used), the ledger (what was sent) and
a Supplier API client.  The daemon owns one and runs ``scheduler()``: every day at
``[mi] submit_at`` (and once at start if that time has passed) it submits every finished
day of the last ``CATCH_UP_DAYS`` that still has something missing -- a rerun only sends
what is missing, so catching up is always safe.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import time
from datetime import date as Date
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from appliance.api.client import SupplierClient
from appliance.config.settings import ApiConfig
from appliance.core.errors import UserError
from appliance.core.packs import Pack
from appliance.mi.journal import MiJournal, StockBook, mi_dir
from appliance.mi.ledger import Ledger, ledger_view, lock_submissions, resolve, submit_day
from appliance.mi.missed import read_missed
from appliance.mi.settings import MiSettings

log = logging.getLogger("appliance.mi.journal")

CATCH_UP_DAYS = 7


def mi_client(api: ApiConfig) -> SupplierClient:
    """A client that makes exactly one attempt per request: a POST /mi whose answer was
    lost must not be repeated behind our back (see appliance.mi.ledger)."""
    return SupplierClient(dataclasses.replace(api, max_retries=0))


def parse_day(text: str, settings: MiSettings, clock=time.time) -> str:
    today = datetime.fromtimestamp(clock(), settings.tz).date()
    t = (text or "").strip().lower()
    if t == "today":
        return today.isoformat()
    if t == "yesterday":
        return (today - timedelta(days=1)).isoformat()
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", t):
        try:
            return Date.fromisoformat(t).isoformat()
        except ValueError:
            pass
    raise UserError(f"--date {text!r}: use YYYY-MM-DD, 'today' or 'yesterday'")


class MiService:
    def __init__(self, state_dir: Path, settings: MiSettings, packs: dict[str, Pack], client=None,
                 *, clock=time.time, alert=None):
        self.settings = settings
        self.state_dir = state_dir
        self.journal = MiJournal(state_dir, settings, packs)
        self.dir = mi_dir(state_dir)
        self.client = client
        self.clock = clock
        self.alert = alert or (lambda source, message: log.warning("%s: %s", source, message))
        self.last_run: dict[str, Any] | None = None
        # A declared stock level without as_of counts use from when it is first seen: now.
        StockBook(self.dir, settings, clock).since()

    def today(self) -> str:
        return datetime.fromtimestamp(self.clock(), self.settings.tz).date().isoformat()

    def report(self, day: str) -> dict[str, Any]:
        day = parse_day(day, self.settings, self.clock)
        rep = self.journal.report(day)
        rows = ledger_view(Ledger(self.dir), rep)
        return {**rep.as_dict(), "lines": rows, "today": self.today(),
                "journal_errors": self.journal.errors,
                "uncertain": sum(1 for r in rows for e in r["entries"] if e["state"] == "uncertain"),
                "unnamed": sorted({r["line_item"] for r in rows if not r["named"]}),
                "allow_default_names": self.settings.allow_default_names,
                "last_run": self.last_run,
                # dispatch deadlines missed that day, per pack (appliance.pipeline.deadlines)
                "missed_deadlines": read_missed(self.state_dir).counts.get(day, {})}

    async def submit(self, day: str, *, partial: bool = False,
                     allow_default_names: bool = False) -> dict[str, Any]:
        if self.client is None:
            raise UserError("no API client for MI submission")
        day = parse_day(day, self.settings, self.clock)
        today = self.today()
        if day > today:
            raise UserError(f"{day} has not happened yet; nothing to submit")
        if day == today and not partial:
            raise UserError(f"{day} is not over yet; submit it tomorrow, or add --partial to send "
                            "what has been counted so far (the rest follows later)")
        self.journal.sync()
        with lock_submissions(self.dir):
            ledger = Ledger(self.dir)
            rep = self.journal.report(day)
            res = await submit_day(self.client, ledger, rep,
                                   allow_default_names=allow_default_names or self.settings.allow_default_names)
        out = res.as_dict()
        self.last_run = {"t": self.clock(), **{k: (len(v) if isinstance(v, list) else v) for k, v in out.items()}}
        return out

    async def resolve(self, entry_key: str, *, mi_id: str | None = None, not_sent: bool = False) -> str:
        if self.client is None:
            raise UserError("no API client for MI")
        with lock_submissions(self.dir):
            return await resolve(self.client, Ledger(self.dir), entry_key, mi_id=mi_id, not_sent=not_sent)

    # --- the daemon's daily submission ----------------------------------------------

    def next_run(self, now: float) -> float:
        at = self.settings.submit_at
        local = datetime.fromtimestamp(now, self.settings.tz)
        run = local.replace(hour=at.hour, minute=at.minute, second=0, microsecond=0)
        if run.timestamp() <= now:
            run = (local + timedelta(days=1)).replace(hour=at.hour, minute=at.minute, second=0,
                                                      microsecond=0)
        return run.timestamp()

    async def catch_up(self) -> list[dict[str, Any]]:
        """Submit every finished day of the last CATCH_UP_DAYS that has a journal."""
        today = Date.fromisoformat(self.today())
        oldest = (today - timedelta(days=CATCH_UP_DAYS)).isoformat()
        results = []
        for day in self.journal.days():
            if not oldest <= day < today.isoformat():
                continue
            try:
                res = await self.submit(day)
            except UserError as e:
                self.alert("mi", f"MI for {day} not submitted: {e}")
                continue
            except Exception as e:  # the daily task must survive anything and try tomorrow
                log.exception("MI submission for %s", day)
                self.alert("mi", f"MI for {day} not submitted: {e}")
                continue
            results.append(res)
            for problem in res["problems"] + res["skipped"]:
                self.alert("mi", f"MI {day}: {problem}")
            if res["sent"]:
                log.info("MI %s: %d line(s) sent, %d verified", day, len(res["sent"]), len(res["verified"]))
        return results

    async def scheduler(self) -> None:
        if self.settings.submit_at is None:
            return
        now = self.clock()
        at = self.settings.submit_at
        todays = datetime.fromtimestamp(now, self.settings.tz).replace(
            hour=at.hour, minute=at.minute, second=0, microsecond=0)
        if todays.timestamp() <= now:
            await self.catch_up()  # the daemon was down (or started late) at the usual time
        while True:
            await asyncio.sleep(max(1.0, self.next_run(self.clock()) - self.clock()))
            await self.catch_up()

    def close(self) -> None:
        self.journal.close()
