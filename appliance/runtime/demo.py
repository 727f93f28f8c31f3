"""``appliance demo``: the pipeline on the embedded demo floor against the in-process sandbox.

The demo starts the local sandbox in-process, loads the embedded demo floor (file
printers, simulated inserter and franking machine), and runs letters to a final status
while showing progress.  The long-running daemon is in daemon.py.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from dataclasses import replace
from importlib import resources
from pathlib import Path

from appliance.config.profile import DeviceSpec, Profile, load_profile
from appliance.config.settings import parse_listen, sandbox_api
from appliance.control.client import DEFAULT_SOCKET
from appliance.core.errors import UserError
from appliance.core.packs import load_packs
from appliance.core.status import Status
from appliance.pipeline.pipeline import Pipeline, PipelineSettings
from appliance.runtime.assemble import build

FINAL_ORDER = [s.value for s in Status]
log = logging.getLogger("appliance.demo")


def demo_profile_path() -> Path:
    """The in-process simulated floor: file printers, simulated finishing with ledgers.

    Fast and restart-safe (the simulators' ledgers survive a killed daemon), so the tests
    and benchmarks of the pipeline itself use it."""
    return Path(str(resources.files("appliance").joinpath("profiles/demo.toml")))


def serial_floor_path() -> Path:
    """What ``appliance demo`` runs by default: file printers plus an inserter and a
    franking machine simulated on pseudo-terminals, driven through pyserial."""
    return Path(str(resources.files("appliance").joinpath("profiles/serial-floor.toml")))


FINAL = frozenset({"DISPATCHED", "REJECTED", "FAILED", "CANCELLED"})
#: What the demo's operator does unless told otherwise (``--sim-option``): a consumable that
#: runs out (the FM-200's cartridge lasts 999 pieces) is changed a second later, as on a floor.
OPERATOR_OPTIONS = ("refill_seconds=1",)


def operated_floor(profile: Profile, state_dir: Path, options: list[str]) -> Profile:
    """The profile with the simulated machines (``port = "sim:..."``) tended by an operator
    who refills them, logging what each really did to ``devices/<name>/machine.jsonl``.

    ``options`` are ``NAME:KEY=VALUE`` (``--sim-option``), applied after the defaults, e.g.
    ``fm200:stock=40`` for a small cartridge or ``fm200:refill_seconds=0`` for nobody."""
    extra: dict[str, list[str]] = {}
    for opt in options:
        name, sep, kv = opt.partition(":")
        if not sep or "=" not in kv:
            raise UserError(f"--sim-option {opt!r}: write NAME:KEY=VALUE, e.g. fm200:stock=40")
        extra.setdefault(name, []).append(kv)
    simulated = {d.name for d in profile.devices() if str(d.settings.get("port", "")).startswith("sim:")}
    if unknown := set(extra) - simulated:
        raise UserError(f"--sim-option: no simulated machine {', '.join(sorted(unknown))} on this floor; "
                        f"use one of {', '.join(sorted(simulated)) or '(none)'}")

    def tend(spec: DeviceSpec) -> DeviceSpec:
        if spec.name not in simulated:
            return spec
        log = state_dir / "devices" / spec.name / "machine.jsonl"
        log.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        opts = [*OPERATOR_OPTIONS, f"log={log}", *spec.settings.get("sim_options", []),
                *extra.get(spec.name, [])]
        return replace(spec, settings={**spec.settings, "sim_options": opts})

    return replace(profile, inserters=tuple(map(tend, profile.inserters)),
                   frankers=tuple(map(tend, profile.frankers)))


def resume_sandbox(sandbox, store) -> dict[str, int]:
    """Make a fresh sandbox remember what the state folder's earlier demo told Notify.

    The same seed makes the same letters: each one the store knows is set at the sandbox to
    the last status the store sent or proved (as the real Notify would still show it), so
    finished letters are not offered again and unfinished ones resume where they stood."""
    seen = {"final": 0, "in_flight": 0}
    for letter in list(sandbox.letters.values()):
        rec = store.get(letter.id)
        if rec is None:
            continue
        told = [h["status"] for h in rec.get("history", ()) if h.get("event") in ("sent", "proven")]
        seen["final" if rec["status"] in FINAL else "in_flight"] += 1
        if told:
            sandbox.set_status(letter, told[-1], rec.get("reason_code"), rec.get("reason_text"))
    return seen


class FloorOperator:
    """Settles pieces on operator hold from the simulated machines' logs
    (``drivers.sim.floor_operator``), as a person at the machines would; each one is counted
    and printed, so a hold is never hidden (the demo had none before a resume)."""

    def __init__(self, pipe: Pipeline, state_dir: Path):
        from appliance.pipeline.operator import Operator

        self.pipe, self.op = pipe, Operator(pipe)
        prof = pipe.profile
        self.inserters = [d.name for d in prof.inserters]
        self.frankers = [d.name for d in prof.frankers]
        self.logs = {d.name: state_dir / "devices" / d.name / "machine.jsonl"
                     for d in (*prof.inserters, *prof.frankers)}
        self.settled: Counter[str] = Counter()

    async def settle(self) -> None:
        held = self.pipe.store.letters(stage="operator-hold")
        if not held:
            return
        from drivers.sim.floor_operator import machine_truth, outcome

        truth = machine_truth(self.logs)
        for rec in held:
            what = outcome(rec["id"], truth, self.inserters, self.frankers)
            try:
                await self.op.resolve(rec["id"], what)
            except Exception as e:  # refused (moved on meanwhile): look again next time
                log.info("demo operator: %s not settled: %s", rec["id"], e)
                continue
            self.settled[what] += 1


def _finished(store, ids) -> int:
    return sum(1 for i in ids if (r := store.get(i)) and r["status"] in FINAL)


def _progress_line(pipe: Pipeline, started: float, total: int, done_before: int) -> str:
    counts = pipe.store.counts()
    done = sum(n for s, n in counts.items() if s in FINAL)
    rate = (done - done_before) / max(time.monotonic() - started, 1e-6)
    parts = " ".join(f"{s}={counts[s]}" for s in FINAL_ORDER if counts.get(s))
    c = pipe.store.outbox_counts()
    # \r: back to the start; ESC[K: clear what a longer earlier line left to the right
    return (f"\r{done}/{total} final  {rate:6.1f} letters/s  {parts}  "
            f"updates: {c['unsent']} to send, {c['sent']} to prove\033[K")


def stuck_report(pipe: Pipeline, limit: int = 20) -> list[str]:
    """Open alerts and the letters not final (status, stage, device, time in stage): what an
    operator needs when the demo did not finish."""
    now = time.time()
    snap = pipe.snapshot()
    alerts = snap.get("alerts") or []
    lines = [f"open alerts: {len(alerts)}"]
    for a in alerts[:limit]:
        sev = f"{a['severity']} " if a.get("severity") else ""
        who = f" ({a['letter_id']})" if a.get("letter_id") else ""
        lines.append(f"  {sev}{a.get('source', '?')}: {a.get('message', '')}{who}")
    stuck = pipe.store.in_flight()
    lines.append(f"letters not final: {len(stuck)}; status updates not proven: {snap.get('outbox', 0)}")
    for rec in sorted(stuck, key=lambda r: r.get("stage_at") or r.get("updated") or 0)[:limit]:
        since = rec.get("stage_at") or rec.get("updated") or now
        last = (rec.get("history") or [{}])[-1].get("event", "?")
        lines.append(f"  {rec['id']}  {rec['status']:<10} stage {rec['stage']:<12} "
                     f"device {rec.get('device') or '-':<14} {now - since:6.0f} s in stage, last: {last}")
    if len(stuck) > limit:
        lines.append(f"  ... and {len(stuck) - limit} more")
    return lines


async def run_demo(args) -> int:
    from appliance.sandbox import Sandbox, SandboxOptions

    if args.letters < 0:
        raise UserError("--letters must be 0 or more")
    if getattr(args, "metrics", None):
        try:
            parse_listen(args.metrics)
        except ValueError as e:
            raise UserError(f"--metrics: {e}") from None
    made_tmp = not args.state_dir
    state_dir = Path(args.state_dir) if args.state_dir else Path(tempfile.mkdtemp(prefix="appliance-demo-"))
    try:
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        profile = operated_floor(load_profile(args.profile or serial_floor_path()), state_dir,
                                 list(getattr(args, "sim_option", None) or ()))
    except BaseException:
        if made_tmp:  # a mistake in the options: nothing was done, nothing to keep
            shutil.rmtree(state_dir, ignore_errors=True)
        raise
    sandbox = Sandbox(SandboxOptions(letters=args.letters, bad_ratio=args.bad_ratio, seed=args.seed,
                                     log_path=Path(args.sandbox_log) if args.sandbox_log else None))
    # Letters move in seconds on the demo floor: one stuck for two minutes is worth an alert.
    # The sandbox behaves as the deployed server (updates applied ~1 s after the 202): the
    # demo finishes when every status is proven applied, read back 2 s after its 202.
    settings = PipelineSettings(spool_dir=state_dir / "spool", poll_interval=0.2, limit=2500,
                                batch_size=500, stage_deadline=120.0, sweep_interval=5.0,
                                prove_after=2.0)
    await sandbox.start(host="127.0.0.1", port=0)
    floor = None
    try:
        if args.cups:
            from appliance.runtime.cups_demo import start_emulated_floor

            floor, cups_profile = await asyncio.to_thread(
                start_emulated_floor, Path(tempfile.mkdtemp(prefix="appliance-cups-")), profile)
            profile = load_profile(cups_profile)
        # MI is counted in the demo too, so `appliance mi preview` and the console's MI screen
        # show real figures; it is submitted only when someone asks.
        app = build(settings, sandbox_api(sandbox.base_url), profile, load_packs(), state_dir=state_dir)
    except BaseException:
        await sandbox.stop()
        if floor:
            await asyncio.to_thread(floor.stop)
        raise
    pipe, store, client = app.pipeline, app.store, app.client
    ids = list(sandbox.letters)
    scenario = None
    if getattr(args, "scenario", None) == "envelopes":
        from appliance.runtime.demo_scenarios import EnvelopeScenario

        scenario = EnvelopeScenario(pipe, sandbox.letters.values())
        scenario.prepare()
    seen = resume_sandbox(sandbox, store)
    done_before = sum(n for s, n in store.counts().items() if s in FINAL)
    if ids and seen["final"] == len(ids) and not store.in_flight_ids():
        store.close()
        await sandbox.stop()
        if floor:
            await asyncio.to_thread(floor.stop)
            shutil.rmtree(floor.root, ignore_errors=True)
        print(f"appliance: nothing new: the {len(ids)} letters of seed {args.seed} are final in "
              f"{state_dir} already; give another --seed (or more --letters) for new ones, or another "
              "--state-dir", file=sys.stderr)
        return 0
    started = time.monotonic()
    finished = False
    socket_path = args.socket or (DEFAULT_SOCKET if args.hold else None)
    progress = not args.quiet and sys.stderr.isatty()
    report: list[str] = []
    metrics = operator = None
    try:
        await app.start(socket_path)
        if getattr(args, "metrics", None):
            from appliance.runtime.metrics import MetricsSettings, start_metrics

            metrics = start_metrics(MetricsSettings(listen=args.metrics), pipe)
            if not args.quiet:
                print(f"metrics at http://{metrics.address[0]}:{metrics.address[1]}/metrics", file=sys.stderr,
                      flush=True)
        if not args.quiet:
            again = (f"; resuming: {seen['final']} final, {seen['in_flight']} unfinished from an earlier run"
                     if seen["final"] or seen["in_flight"] else "")
            print(f"sandbox at {sandbox.base_url}; {args.letters} letters; state in {state_dir}{again}",
                  file=sys.stderr)
        deadline = started + args.timeout
        operator = FloorOperator(pipe, state_dir)
        while time.monotonic() < deadline:
            if pipe.idle():
                finished = True
                break
            await operator.settle()
            if scenario:
                await scenario.step(operator.op)
            if progress:
                print(_progress_line(pipe, started, len(ids), done_before), end="", file=sys.stderr,
                      flush=True)
            await asyncio.sleep(0.25)
        if progress:
            print("\r\033[K", end="", file=sys.stderr, flush=True)
        if not finished:
            report = stuck_report(pipe)
        if finished and args.hold:
            if not args.quiet:
                print(f"all letters final; holding (control socket {socket_path}) until Ctrl-C",
                      file=sys.stderr)
            await _wait_for_signal()
    finally:
        failing = sys.exc_info()[0] is not None  # Ctrl-C or an error: say what is left, keep the folder
        untouched = not store.counts()  # e.g. a device that would not start: no letter was taken
        if failing and untouched:
            finished = made_tmp  # nothing to resume: the temporary folder goes
        elif failing and not finished and not report:
            try:
                report = stuck_report(pipe)
            except Exception as e:  # the report must not hide the error that brought us here
                report = [f"(no report of stuck letters: {e})"]
        summary_counts = store.counts()
        finished_here = _finished(store, ids)
        open_alerts = len(pipe.snapshot().get("alerts") or [])
        await app.stop()
        if metrics:
            await asyncio.to_thread(metrics.stop)  # a scrape under way needs the loop to finish
        elapsed = time.monotonic() - started
        done_now = sum(n for s, n in summary_counts.items() if s in FINAL) - done_before
        summary = {
            "letters": args.letters,
            "letters_finished": finished_here,
            "final_statuses": {s: n for s, n in summary_counts.items() if s != "PENDING"},
            "api_calls": {k: client.stats.get(k, 0) for k in ("list", "data", "patch", "post_letters")}
            | {k: v for k, v in client.stats.items()},
            "seconds": round(elapsed, 3),
            # letters that reached a final status in this run, over its time (not letters offered)
            "letters_per_second": round(done_now / elapsed, 1) if elapsed else None,
            "alerts": open_alerts,
            "finished": finished,
            "state_dir": str(state_dir),
            "holds_settled": dict(operator.settled) if operator else {},
        }
        if scenario:
            summary["scenario"] = scenario.report()
        await sandbox.stop()
        if floor:
            await asyncio.to_thread(floor.stop)
            shutil.rmtree(floor.root, ignore_errors=True)
        if made_tmp and finished:
            shutil.rmtree(state_dir, ignore_errors=True)
        if failing and not finished and not untouched:
            print("\n".join(["", *report]), file=sys.stderr)
            print(f"appliance: demo stopped before it finished ({finished_here} of {len(ids)} letters "
                  f"final); state kept in {state_dir} (rerun with --state-dir {state_dir} to resume)",
                  file=sys.stderr)
    print(_final_table(summary, done_now))
    if args.summary_json:
        Path(args.summary_json).write_text(json.dumps(summary, indent=2) + "\n")
    if not finished:
        print("\n".join(["", *report]), file=sys.stderr)
        print(f"appliance: demo did not finish within {args.timeout:.0f} s ({finished_here} of "
              f"{len(ids)} letters final); state kept in {state_dir} (rerun with --state-dir {state_dir} "
              "to resume)",
              file=sys.stderr)
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


def _final_table(summary: dict, done_now: int) -> str:
    n, offered = summary["letters_finished"], summary["letters"]
    head = f"{n} letters" if n == offered else f"{n} of {offered} letters final"
    here = "" if done_now == n else f" ({done_now} in this run)"
    lines = ["", f"{head}{here} in {summary['seconds']} s ({summary['letters_per_second']} letters/s)", "",
             "final status     letters"]
    for s, n in sorted(summary["final_statuses"].items()):
        lines.append(f"  {s:<14} {n:>7}")
    lines += ["", "API calls        count"]
    for k, n in summary["api_calls"].items():
        lines.append(f"  {k:<14} {n:>7}")
    if summary.get("scenario"):
        from appliance.runtime.demo_scenarios import report_lines

        lines += report_lines(summary["scenario"])
    if summary.get("holds_settled"):
        told = ", ".join(f"{n} {k}" for k, n in sorted(summary["holds_settled"].items()))
        lines += ["", f"pieces on hold settled by the demo's operator from the machines' logs: {told}"]
    return "\n".join(lines)
