"""Dashboard: every device, letter counts, throughput, and the open alerts, most severe first.

Alerts follow the daemon's life cycle (#16): one row per cause with its count and when it
was last seen; it leaves the list when its condition clears or an operator acknowledges it
(``a``, recorded with the operator's name).  Enter on an alert opens its letter, or moves to
its device's row.  A daemon from before the life cycle sends alerts without key/severity:
they are shown, and ``a`` says that daemon cannot acknowledge.
"""

from __future__ import annotations

import time

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Header, Static

from appliance.core.deadlines import deadlines_line
from tui.screens.confirm import ConfirmScreen, NoteScreen
from tui.screens.detail import LetterDetailScreen
from tui.screens.kept import KeptScreen
from tui.widgets.fit_table import FitTable, clip
from tui.widgets.footer import ConsoleFooter
from tui.widgets.labels import clock, device_state, severity_label, sparkline

ORDER = ("PENDING", "ACCEPTED", "PRINTED", "ENCLOSED", "DISPATCHED", "REJECTED", "FAILED",
         "CANCELLED", "RETURNED")
SEVERITY_RANK = {"critical": 0, "warning": 1, "info": 2}
#: seconds between status refreshes that events ask for: under full ingest devices change
#: state hundreds of times a second, and each refresh asks the daemon and redraws the tables
EVENT_REFRESH_GAP = 0.5

DEVICE_COLUMNS = [("device", 16, 0), ("kind", 8, 2), ("state", 10, 0), ("load", 4, 0), ("queue", 5, 0),
                  ("stock", 6, 1), ("detail", 22, 0)]
ALERT_COLUMNS = [("severity", 8, 0), ("last seen", 9, 0), ("count", 5, 0), ("source", 16, 2),
                 ("message", 46, 0), ("letter", 32, 1)]


def stock_text(counters: dict) -> str:
    """Stock the device reports (serial: stock_<item>; simulators: stock), e.g. 'env 480'."""
    items = {k[6:]: v for k, v in counters.items() if k.startswith("stock_")}
    if "stock" in counters:
        items.setdefault("", counters["stock"])
    return " ".join(f"{k[:5]} {v}".strip() for k, v in sorted(items.items()))


def tail(text: str, width: int) -> str:
    """The end of a device's detail (a queue's path, a link's state: the end says most)."""
    return text if len(text) <= width else "…" + text[-(width - 1):]


def open_alerts(s: dict) -> list[dict]:
    """Open alerts, most severe first then most recently seen (an older daemon's alerts have
    no severity or state: taken as open warnings)."""
    alerts = [a for a in s.get("alerts") or [] if isinstance(a, dict) and a.get("state", "open") == "open"]
    return sorted(alerts, key=lambda a: (SEVERITY_RANK.get(a.get("severity") or "warning", 1),
                                         -float(a.get("last_seen") or a.get("t") or 0)))


def summary_text(s: dict) -> Text:
    counts = s.get("counts") or {}
    t = Text()
    if s.get("api_ok", True):
        t.append("API ✔ ok", style="green")
    else:
        t.append("API ✖ UNREACHABLE", style="bold red")
    held = s.get("held", 0)
    t.append(f"  held {held}", style="bold yellow" if held else "")
    # always shown: each needs a person (an older daemon counts refused only in "updates")
    refused = s.get("refused", (s.get("updates") or {}).get("refused", 0))
    t.append(f"  refused by Notify {refused}", style="bold red" if refused else "")
    if "waiting_for_retry" in s:
        waiting = s["waiting_for_retry"]
        t.append(f"  waiting for retry {waiting}", style="bold yellow" if waiting else "")
    by = s.get("alert_counts")
    n_open = sum(by.values()) if isinstance(by, dict) else len(open_alerts(s))
    crit = by.get("critical", 0) if isinstance(by, dict) else 0
    t.append(f"\nalerts {n_open}", style="bold red" if crit else "bold yellow" if n_open else "")
    if crit:
        t.append(f" ({crit} critical)", style="bold red")
    outbox = s.get("outbox", 0)
    t.append(f"  outbox {outbox}", style="bold yellow" if outbox > 500 else "")
    tp = s.get("throughput") or []
    t.append(f"  final/min {tp[-1] if tp else 0} {sparkline(tp)}\n")
    t.append("  ".join(f"{k} {counts[k]}" for k in ORDER if counts.get(k)) or "no letters yet")
    dl = s.get("deadlines")
    if dl:  # one line: at risk, missed today, next cut-off
        t.append("\n" + deadlines_line(dl), style="bold red" if dl.get("missed_today") else
                 "bold yellow" if dl.get("at_risk") else "")
    return t


class DashboardScreen(KeptScreen):
    BINDINGS = [
        Binding("p", "device('pause')", "Pause"),
        Binding("u", "device('resume')", "Resume"),
        Binding("d", "device('drain')", "Drain"),
        Binding("a", "ack", "Ack alert"),
        Binding("e", "envelopes", "Envelopes"),
    ]

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("connecting…", id="summary")
        yield FitTable(DEVICE_COLUMNS, grow="detail", id="devices", cursor_type="row", zebra_stripes=True)
        yield Static("Open alerts (Tab here, Enter opens, a acknowledges)", id="alerts-title")
        yield FitTable(ALERT_COLUMNS, grow="message", id="alerts", cursor_type="row")
        yield ConsoleFooter()

    def on_screen_resume(self) -> None:
        if self.app.status:
            self.show_status(self.app.status)
        self.query_one("#devices", DataTable).focus()

    def show_status(self, s: dict) -> None:
        self.query_one("#summary", Static).update(summary_text(s))
        devices = self.query_one("#devices", FitTable)
        room = next((w for label, w, _ in devices.shown if label == "detail"), 22)
        devices.set_rows([
            (name, {"device": name, "kind": d.get("family", ""), "state": device_state(d.get("state")),
                    "load": str(d.get("load", 0)), "queue": str(d.get("queue_depth", 0)),
                    "stock": stock_text(d.get("counters") or {}),
                    "detail": Text(tail(d.get("detail") or "", room))})
            for name, d in (s.get("devices") or {}).items()])
        rows = []
        for i, a in enumerate(open_alerts(s)):
            count = a.get("count")
            rows.append((a.get("key") or f"#{i}", {
                "severity": severity_label(a.get("severity")),
                "last seen": clock(a.get("last_seen") or a.get("t")),
                "count": "" if count is None else str(count), "source": Text(clip(a.get("source") or "", 16)),
                "message": Text(a.get("message") or ""), "letter": a.get("letter_id") or ""}))
        self.alerts = {key: a for (key, _), a in zip(rows, open_alerts(s))}
        self.query_one("#alerts", FitTable).set_rows(rows)

    _refresh_due = None  # the timer of the refresh events asked for, while it waits
    _refreshed_at = 0.0  # time.monotonic() of the last one

    def on_daemon_event(self, ev: dict) -> None:
        """A device or alert change refreshes the status: at once, unless one was done less
        than ``EVENT_REFRESH_GAP`` ago; then once at the end of the gap, for all that came."""
        if ev.get("event") in ("device", "alert") and self._refresh_due is None:
            wait = self._refreshed_at + EVENT_REFRESH_GAP - time.monotonic()
            if wait <= 0:
                self._refresh_from_events()
            else:
                self._refresh_due = self.set_timer(wait, self._refresh_from_events)

    def _refresh_from_events(self) -> None:
        self._refresh_due = None
        self._refreshed_at = time.monotonic()
        self.run_worker(self.app.refresh_status, group="refresh", exclusive=True)

    def selected_device(self) -> str | None:
        table = self.query_one("#devices", DataTable)
        if not table.row_count:
            return None
        return table.coordinate_to_cell_key((table.cursor_row, 0)).row_key.value

    def selected_alert(self) -> dict | None:
        table = self.query_one("#alerts", DataTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key((table.cursor_row, 0)).row_key.value
        return getattr(self, "alerts", {}).get(key)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table.id != "alerts":
            return
        alert = self.selected_alert()
        if not alert:
            return
        if alert.get("letter_id"):
            self.app.push_screen(LetterDetailScreen(alert["letter_id"]))
            return
        devices = self.query_one("#devices", DataTable)
        name = alert.get("device") or alert.get("source")
        try:
            devices.move_cursor(row=devices.get_row_index(name))
        except Exception:  # RowDoesNotExist: not a device (the API, MI)
            self.notify(f"{alert.get('source') or 'this alert'} is not a device or a letter")
            return
        devices.focus()

    def action_ack(self) -> None:
        alert = self.selected_alert()
        if not alert:
            self.notify("no open alert to acknowledge")
            return
        if not alert.get("key"):
            self.notify("this daemon cannot acknowledge alerts (it predates them); upgrade it")
            return
        who = self.app.operator

        async def done(yes: bool | None) -> None:
            if yes:
                msg = await self.app.call("ack", key=alert["key"], who=who)
                if msg:
                    self.notify(msg)
                await self.app.refresh_status()

        what = alert.get("message") or alert["key"]
        self.app.push_screen(ConfirmScreen(f"Acknowledge as {who}:\n{what}"), done)

    def action_device(self, what: str) -> None:
        name = self.selected_device()
        if not name:
            self.notify("no device selected")
            return

        async def done(yes: bool | None) -> None:
            if yes:
                msg = await self.app.call(what, device=name)
                if msg:
                    self.notify(msg)
                await self.app.refresh_status()

        self.app.push_screen(ConfirmScreen(f"{what.capitalize()} {name}?"), done)

    def action_envelopes(self) -> None:
        """Load or unload an envelope id at the selected inserter (a reload of its feeders)."""
        name = self.selected_device()
        kind = ((self.app.status or {}).get("devices") or {}).get(name or "", {}).get("family")
        if not name or kind != "inserter":
            self.notify("select an inserter first (envelopes are loaded at inserters)")
            return

        async def ask() -> None:
            listed = await self.app.call("envelopes", inserter=name)
            if listed is None:
                return
            text = await self.app.push_screen_wait(NoteScreen(
                f"{listed['message']}\nType +ID to load an envelope, -ID to unload one",
                placeholder="+first-c5  or  -economy-c5"))
            if not text or text[0] not in "+-" or not text[1:].strip():
                if text:
                    self.notify("start with + (load) or - (unload), then the envelope id", severity="error")
                return
            action = "add" if text[0] == "+" else "remove"
            said = await self.app.call("envelopes", inserter=name, who=self.app.operator, action=action,
                                       envelope=text[1:].strip())
            if said:
                self.notify(said["message"])
            await self.app.refresh_status()

        self.run_worker(ask(), group="envelopes", exclusive=True)
