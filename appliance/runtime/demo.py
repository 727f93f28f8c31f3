"""``appliance demo``: the pipeline on the embedded demo floor against the in-process sandbox.

The demo starts the local sandbox in-process, loads the embedded demo floor (file
printers, simulated inserter and franking machine), and runs letters to a final status
while showing progress.  The long-running daemon is in daemon.py.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path

from appliance.config.profile import load_profile
from appliance.config.settings import sandbox_api
from appliance.control.client import DEFAULT_SOCKET
from appliance.core.errors import UserError
from appliance.core.packs import load_packs
from appliance.core.status import Status
from appliance.pipeline.pipeline import Pipeline, PipelineSettings
from appliance.runtime.assemble import build

FINAL_ORDER = [s.value for s in Status]


def demo_profile_path() -> Path:
    """The in-process simulated floor: file printers, simulated finishing with ledgers.

    Fast and restart-safe (the simulators' ledgers survive a killed daemon), so the tests
    and benchmarks of the pipeline itself use it."""
    return Path(str(resources.files("appliance").joinpath("profiles/demo.toml")))


def serial_floor_path() -> Path:
    """What ``appliance demo`` runs by default: file printers plus an inserter and a
    franking machine simulated on pseudo-terminals, driven through pyserial."""
    return Path(str(resources.files("appliance").joinpath("profiles/serial-floor.toml")))


def _progress_line(pipe: Pipeline, started: float, total: int) -> str:
    counts = pipe.store.counts()
    done = sum(n for s, n in counts.items() if s in ("DISPATCHED", "REJECTED", "FAILED", "CANCELLED"))
    rate = done / max(time.monotonic() - started, 1e-6)
    parts = " ".join(f"{s}={counts[s]}" for s in FINAL_ORDER if counts.get(s))
    c = pipe.store.outbox_counts()
    return (f"\r{done}/{total} final  {rate:6.1f} letters/s  {parts}  "
            f"updates: {c['unsent']} to send, {c['sent']} to prove   ")


async def run_demo(args) -> int:
    from appliance.sandbox import Sandbox, SandboxOptions

    if args.letters < 0:
        raise UserError("--letters must be 0 or more")
    sandbox = Sandbox(SandboxOptions(letters=args.letters, bad_ratio=args.bad_ratio, seed=args.seed,
                                     log_path=Path(args.sandbox_log) if args.sandbox_log else None))
    await sandbox.start(host="127.0.0.1", port=0)
    tmp = None
    if args.state_dir:
        state_dir = Path(args.state_dir)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="appliance-demo-")
        state_dir = Path(tmp.name)
    profile = load_profile(args.profile or serial_floor_path())
    floor = None
    if args.cups:
        from appliance.runtime.cups_demo import start_emulated_floor

        floor, cups_profile = await asyncio.to_thread(
            start_emulated_floor, Path(tempfile.mkdtemp(prefix="appliance-cups-")), profile)
        profile = load_profile(cups_profile)
    # Letters move in seconds on the demo floor: one stuck for two minutes is worth an alert.
    # The sandbox behaves as the deployed server (updates applied ~1 s after the 202): the
    # demo finishes when every status is proven applied, read back 2 s after its 202.
    settings = PipelineSettings(spool_dir=state_dir / "spool", poll_interval=0.2, limit=2500,
                                batch_size=500, stage_deadline=120.0, sweep_interval=5.0,
                                prove_after=2.0)
    # MI is counted in the demo too, so `appliance mi preview` and the console's MI screen
    # show real figures; it is submitted only when someone asks.
    app = build(settings, sandbox_api(sandbox.base_url), profile, load_packs(), state_dir=state_dir)
    pipe, store, client = app.pipeline, app.store, app.client
    started = time.monotonic()
    finished = False
    socket_path = args.socket or (DEFAULT_SOCKET if args.hold else None)
    try:
        await app.start(socket_path)
        if not args.quiet:
            print(f"sandbox at {sandbox.base_url}; {args.letters} letters; state in {state_dir}",
                  file=sys.stderr)
        deadline = started + args.timeout
        while time.monotonic() < deadline:
            if pipe.idle():
                finished = True
                break
            if not args.quiet and sys.stderr.isatty():
                print(_progress_line(pipe, started, args.letters), end="", file=sys.stderr, flush=True)
            await asyncio.sleep(0.25)
        if finished and args.hold:
            if not args.quiet:
                print(f"all letters final; holding (control socket {socket_path}) until Ctrl-C",
                      file=sys.stderr)
            await _wait_for_signal()
    finally:
        summary_counts = store.counts()
        await app.stop()
        elapsed = time.monotonic() - started
        summary = {
            "letters": args.letters,
            "final_statuses": {s: n for s, n in summary_counts.items() if s != "PENDING"},
            "api_calls": {k: client.stats.get(k, 0) for k in ("list", "data", "patch", "post_letters")}
            | {k: v for k, v in client.stats.items()},
            "seconds": round(elapsed, 3),
            "letters_per_second": round(args.letters / elapsed, 1) if elapsed else None,
            "alerts": len(pipe.alerts),
            "finished": finished,
        }
        await sandbox.stop()
        if floor:
            await asyncio.to_thread(floor.stop)
            shutil.rmtree(floor.root, ignore_errors=True)
        if tmp:
            tmp.cleanup()
    if not args.quiet:
        print(_final_table(summary), file=sys.stderr if args.quiet else sys.stdout)
    if args.summary_json:
        Path(args.summary_json).write_text(json.dumps(summary, indent=2) + "\n")
    if not finished:
        print(f"appliance: demo did not finish within {args.timeout:.0f} s; "
              "raise --timeout or look at the alerts above", file=sys.stderr)
        return 1
    return 0


async def _wait_for_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


def _final_table(summary: dict) -> str:
    lines = ["", f"{summary['letters']} letters in {summary['seconds']} s "
                 f"({summary['letters_per_second']} letters/s)", "", "final status     letters"]
    for s, n in sorted(summary["final_statuses"].items()):
        lines.append(f"  {s:<14} {n:>7}")
    lines += ["", "API calls        count"]
    for k, n in summary["api_calls"].items():
        lines.append(f"  {k:<14} {n:>7}")
    return "\n".join(lines)
