"""Operator console under load: key-to-repaint latency while the daemon ingests at full rate,
the same keys with the daemon idle, and the letters table with 100 000 letters known.

1. Builds a state directory that already knows ``--known`` letters (archived, as after
   months of work), starts a sandbox (own process) offering ``--letters`` new letters and
   ``appliance run`` (own process) on a floor whose devices take no time, client limiter
   at ``--rate`` TPS, serving its control socket.
2. Attaches the real console (``tui.app.ConsoleApp``) in this process with Textual's
   headless ``App.run_test()`` and presses ``--keys`` keys while the daemon ingests
   ("load"), then again, with a fresh console, once the daemon has worked every letter
   ("idle").  The keys cycle through: open the letters screen, cursor down, page down
   in the table, next page, previous page, open a letter's detail, back, log screen,
   dashboard.
3. Asks the control socket for letter listings directly (first page, a deep page, a
   status filter, an id search): response time and size.

What "key-to-repaint" measures: from handing the key to the app the way the terminal
driver does (``driver.send_message(Key)``) to the first frame the compositor paints at
which the key's effect is in the widgets, including any control-socket round trip the
key needs (the letters screen, paging and the detail screen ask the daemon; the frame
counts only once that answer is in the table and the table's size is settled).  Headless
Textual skips turning frames into terminal bytes, so the bench does it itself for every
frame (``render_segments``), leaving out only the write to a tty.

Priorities: by default every process runs as started (nice 0) except the daemon's intake
workers, at their ``[intake] nice`` default; ``--worker-nice N`` writes another into the
daemon's config (0: workers as nice as the console, as before that setting).  The sandbox
stands in for Notify, which runs elsewhere and takes no CPU from a real box;
``--sandbox-nice N`` runs it N steps nicer, nearer that.  The defaults (sandbox at nice 0)
are the figures to quote; the option shows how much of the latency is the stand-in's.

Prints one JSON line.  Usage:
    python benchmarks/tui_bench.py [--known 100000] [--letters 10000] [--keys 60]
        [--worker-nice N] [--sandbox-nice N] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, deque
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from daemon_bench import build_history, start_sandbox  # noqa: E402
from ingest_bench import FAST_FLOOR  # noqa: E402
from textual.widgets import DataTable  # noqa: E402

from appliance.control.client import ControlClient, DaemonNotRunning  # noqa: E402
from appliance.control.protocol import dumps  # noqa: E402
from appliance.intake.settings import IntakeSettings  # noqa: E402
from tui.app import ConsoleApp  # noqa: E402
from tui.screens.dashboard import DashboardScreen  # noqa: E402
from tui.screens.detail import LetterDetailScreen  # noqa: E402
from tui.screens.letters import PAGE, LettersScreen  # noqa: E402
from tui.screens.log import LogScreen  # noqa: E402

SIZE = (120, 40)
KEY_TIMEOUT = 10.0  # a key whose effect is not painted by then counts as this (and is reported)
GAP = 0.1  # between keys, roughly a fast operator


class CountingDeque(deque):
    """The console's event buffer, counting what the daemon streamed to it."""

    received = 0

    def append(self, item) -> None:
        self.received += 1
        super().append(item)


class MeasuredConsole(ConsoleApp):
    """The real console; records when a frame is painted and which daemon answers it has."""

    def __init__(self, socket_path: str):
        super().__init__(socket_path)
        self.events = CountingDeque(maxlen=1000)
        self.answers: Counter[str] = Counter()  # control commands answered, by name
        self.frames = 0
        self.frame_bytes = 0
        self.waiting = None  # (predicate, future) for the key being measured

    async def call(self, cmd: str, **args):
        result = await super().call(cmd, **args)
        self.answers[cmd] += 1
        return result

    def _display(self, screen, renderable) -> None:
        super()._display(screen, renderable)
        if renderable is None or self._batch_count or screen is not self.screen:
            return
        render = getattr(renderable, "render_segments", None)
        if render:  # what a real terminal driver would write
            self.frame_bytes += len(render(self.console))
        self.frames += 1
        if self.waiting and not self.waiting[1].done() and self.waiting[0](self):
            self.waiting[1].set_result(time.perf_counter())


def table_settled(app) -> DataTable | None:
    table = app.screen.query_one("#letters-table", DataTable)
    return None if getattr(table, "_require_update_dimensions", False) else table


def key_plan(app: MeasuredConsole):
    """(action name, key, predicate factory) for one cycle; factories run just before the press."""

    def letters_loaded(page_start=None):
        want = app.answers["letters"] + 1

        def ok(a):
            return (isinstance(a.screen, LettersScreen) and a.answers["letters"] >= want
                    and (page_start is None or a.screen.page_start == page_start)
                    and table_settled(a) is not None)
        return ok

    def cursor_moved():
        table = app.screen.query_one("#letters-table", DataTable)
        before = table.cursor_row

        def ok(a):
            t = table_settled(a)
            return t is not None and t.cursor_row != before
        return ok

    def detail_loaded():
        want = app.answers["letter"] + 1
        return lambda a: isinstance(a.screen, LetterDetailScreen) and a.answers["letter"] >= want

    def screen_is(kind):
        return lambda: (lambda a: isinstance(a.screen, kind))

    return [
        ("open letters screen", "2", letters_loaded),
        ("cursor down", "down", cursor_moved),
        ("page down in table", "pagedown", cursor_moved),
        ("next page", "n", lambda: letters_loaded(PAGE)),
        ("previous page", "b", lambda: letters_loaded(0)),
        ("open letter detail", "enter", detail_loaded),
        ("back to letters", "escape", letters_loaded),
        ("log screen", "4", screen_is(LogScreen)),
        ("dashboard", "1", screen_is(DashboardScreen)),
    ]


async def press_and_time(app: MeasuredConsole, pilot, key: str, predicate) -> float:
    done = asyncio.get_running_loop().create_future()
    app.waiting = (predicate, done)
    t0 = time.perf_counter()
    await pilot.press(key)
    try:
        t1 = await asyncio.wait_for(done, KEY_TIMEOUT)
    except asyncio.TimeoutError:
        t1 = t0 + KEY_TIMEOUT
    app.waiting = None
    return (t1 - t0) * 1000


def figures(ms: list[float]) -> dict:
    if not ms:
        return {}
    s = sorted(ms)
    return {"n": len(s), "p50_ms": round(statistics.median(s), 1),
            "p95_ms": round(s[min(len(s) - 1, int(round(0.95 * (len(s) - 1))))], 1),
            "max_ms": round(s[-1], 1)}


async def ingested(client: ControlClient) -> int:
    c = (await client.call("status"))["counters"]
    return c.get("status.ACCEPTED", 0) + c.get("status.REJECTED", 0)


async def measure_console(sock: str, keys: int, client: ControlClient) -> dict:
    app = MeasuredConsole(sock)
    latencies: list[float] = []
    by_action: dict[str, list[float]] = {}
    timeouts = 0
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.5)  # connected, first status shown
        n0, t0 = await ingested(client), time.perf_counter()
        ev0, frames0, bytes0 = app.events.received, app.frames, app.frame_bytes
        plan = key_plan(app)
        for i in range(keys):
            name, key, make = plan[i % len(plan)]
            ms = await press_and_time(app, pilot, key, make())
            timeouts += ms >= KEY_TIMEOUT * 1000
            latencies.append(ms)
            by_action.setdefault(name, []).append(ms)
            await asyncio.sleep(GAP)
        span = time.perf_counter() - t0
        n1 = await ingested(client)
        out = {**figures(latencies), "timeouts": timeouts,
               "ingest_letters_per_s": round((n1 - n0) / span, 1),
               "events_to_console_per_s": round((app.events.received - ev0) / span, 1),
               "frames_per_s": round((app.frames - frames0) / span, 1),
               "terminal_kb_per_s": round((app.frame_bytes - bytes0) / span / 1024, 1),
               "seconds": round(span, 1),
               "by_action": {k: figures(v) for k, v in by_action.items()}}
    return out


async def listing_costs(client: ControlClient, known: int, repeat: int = 5) -> dict:
    """Control-socket letters listing, as the console asks for it: time and response size."""
    cases = {"first_page": {}, "deep_page": {"offset": known // 2},
             "status_filter": {"status": "DISPATCHED"}, "id_search": {"q": "0001"}}
    out = {}
    for name, extra in cases.items():
        times, size = [], 0
        for _ in range(repeat):
            t0 = time.perf_counter()
            res = await client.call("letters", limit=PAGE, **extra)
            times.append((time.perf_counter() - t0) * 1000)
            size = len(dumps(res))
        out[name] = {"median_ms": round(statistics.median(times), 1), "max_ms": round(max(times), 1),
                     "bytes": size, "rows": len(res["letters"]), "total": res["total"]}
    return out


async def wait_for_socket(sock: str, daemon: subprocess.Popen, timeout: float = 60) -> ControlClient:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if daemon.poll() is not None:
            raise SystemExit("daemon exited before its control socket came up")
        try:
            client = await ControlClient(sock).connect()
            await client.call("status")
            return client
        except (DaemonNotRunning, OSError):
            await asyncio.sleep(0.05)
    raise SystemExit("control socket did not come up")


async def wait_until_idle(client: ControlClient, total: int, timeout: float) -> bool:
    """Every letter the daemon knows is final and acknowledged."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        s = await client.call("status")
        counts = s["counts"]
        busy = sum(counts.get(k, 0) for k in ("PENDING", "ACCEPTED", "PRINTED", "ENCLOSED"))
        if sum(counts.values()) >= total and busy == 0 and s["outbox"] == 0:
            return True
        await asyncio.sleep(0.2)
    return False


def renice(pid: int, steps: int) -> None:
    """Every thread of ``pid`` ``steps`` nicer (Linux keeps a niceness per thread)."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        os.setpriority(os.PRIO_PROCESS, int(tid), os.getpriority(os.PRIO_PROCESS, int(tid)) + steps)


async def run(a, tmp: Path) -> dict:
    build_s = build_history(tmp / "state", a.known)
    sandbox, url = start_sandbox(a.letters, tmp / "sandbox.log")
    if a.sandbox_nice:
        renice(sandbox.pid, a.sandbox_nice)
    floor = tmp / "floor.toml"
    floor.write_text(FAST_FLOOR)
    cfg = tmp / "appliance.toml"
    cfg.write_text(f'[api]\nbase_url = "{url}"\nauth = "none"\nrate_limit = {a.rate}\n'
                   f'[poll]\ninterval = 0.2\n'
                   + (f'[intake]\nnice = {a.worker_nice}\n' if a.worker_nice is not None else '') +
                   f'[paths]\nstate_dir = "{tmp / "state"}"\nprofile = "{floor}"\n')
    sock = str(tmp / "ctl.sock")
    daemon = subprocess.Popen([sys.executable, "-m", "appliance", "run", "--config", str(cfg),
                               "--log-level", "ERROR", "--socket", sock], cwd=ROOT)
    try:
        client = await wait_for_socket(sock, daemon)
        try:
            while await ingested(client) < min(50, a.letters // 2):  # ingest under way
                await asyncio.sleep(0.05)
            load = await measure_console(sock, a.keys, client)
            s = await client.call("status")
            load["ingest_ran_throughout"] = s["counts"].get("PENDING", 0) > 0 or \
                await ingested(client) < a.letters
            all_idle = await wait_until_idle(client, a.known + a.letters, timeout=a.letters / 5 + 120)
            idle = await measure_console(sock, a.keys, client)
            listing = await listing_costs(client, a.known + a.letters)
        finally:
            await client.close()
    finally:
        daemon.terminate()
        daemon.wait(30)
        sandbox.terminate()
        sandbox.wait()
    return {"benchmark": "tui", "known_letters": a.known, "new_letters": a.letters,
            "rate_limit": a.rate, "keys_per_phase": a.keys, "terminal": f"{SIZE[0]}x{SIZE[1]}",
            "history_build_s": round(build_s, 1), "target_ms": 100,
            "worker_nice": a.worker_nice if a.worker_nice is not None else IntakeSettings().nice,
            "sandbox_nice": a.sandbox_nice,
            "load": load, "idle": idle, "daemon_idle_reached": all_idle, "listing": listing}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--known", type=int, default=100_000, help="letters already known (archived)")
    ap.add_argument("--letters", type=int, default=10_000, help="new letters the sandbox offers")
    ap.add_argument("--rate", type=float, default=300.0, help="client limiter, requests/s")
    ap.add_argument("--keys", type=int, default=63, help="keys pressed per phase")
    ap.add_argument("--worker-nice", type=int, default=None, metavar="N",
                    help="the daemon's [intake] nice (default: the setting's default)")
    ap.add_argument("--sandbox-nice", type=int, default=0, metavar="N",
                    help="run the sandbox (Notify's stand-in) N steps nicer (default 0)")
    ap.add_argument("--quick", action="store_true", help="tiny smoke run")
    a = ap.parse_args()
    if a.quick:
        a.known, a.letters, a.keys = 300, 40, 9
    with tempfile.TemporaryDirectory(prefix="tuib-", dir="/tmp") as tmp:  # AF_UNIX paths stay short
        print(json.dumps(asyncio.run(run(a, Path(tmp)))))


if __name__ == "__main__":
    main()
