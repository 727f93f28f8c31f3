"""The file-driven inserter through the real pipeline against the local sandbox: ENCLOSED
comes only from result files a machine (the simulator, or the test acting as one) wrote."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from appliance.api.client import SupplierClient
from appliance.config.profile import load_profile
from appliance.config.settings import sandbox_api
from appliance.core.errors import ConfigError
from appliance.core.packs import load_packs
from appliance.pipeline.pipeline import Pipeline, PipelineSettings
from appliance.sandbox import Sandbox, SandboxOptions, run_in_thread
from appliance.store.store import Store
from drivers.base import DeviceEvent, Work
from drivers.files.format import RESULT_COLUMNS, parse_results, render_results
from drivers.files.inserter import FileInserter
from drivers.sim.file_inserter import FileInserterSim, SimOptions
from tests.fixtures import QUICK, ROOT
from tests.fixtures.floor import GOOD_PATH, check_sandbox_outcome

FLOOR = ROOT / "hardware-profiles" / "file-inserter-floor.toml"
SERIAL_FLOOR = ROOT / "hardware-profiles" / "serial-floor.toml"
FINAL = ("DISPATCHED", "REJECTED", "FAILED")


def floor_profile(tmp_path: Path, name: str = "ins", **keys) -> Path:
    """The example floor with real folders instead of simulate = true."""
    runs, results = tmp_path / "runs", tmp_path / "results"
    runs.mkdir(exist_ok=True)
    results.mkdir(exist_ok=True)
    settings = {"batch_size": 50, "batch_idle": 0.2, "poll_seconds": 0.05, **keys}
    lines = [f'outbox_dir = "{runs}"', f'results_dir = "{results}"']
    lines += [f"{k} = {json.dumps(v)}" for k, v in settings.items()]
    text = FLOOR.read_text()
    start, end = text.index('name = "mps-1"'), text.index("[inserter.reasons]")
    text = text[:start] + f'name = "{name}"\ndriver = "files"\n' + "\n".join(lines) + "\n\n" + text[end:]
    path = tmp_path / "floor.toml"
    path.write_text(text)
    return path


class Run:
    """A pipeline on a floor profile against a sandbox; ``async with Run(...) as r``."""

    def __init__(self, tmp_path: Path, profile: Path, letters: int, bad_ratio: float = 0.0, seed: int = 21):
        self.tmp_path, self.profile, self.letters, self.bad_ratio, self.seed = tmp_path, profile, letters, bad_ratio, seed

    async def __aenter__(self) -> "Run":
        self.sb = Sandbox(SandboxOptions(**QUICK, letters=self.letters, bad_ratio=self.bad_ratio, seed=self.seed))
        await self.sb.start(host="127.0.0.1", port=0)
        self.state = self.tmp_path / "state"
        self.store = Store(self.state)
        self.client = SupplierClient(sandbox_api(self.sb.base_url))
        self.pipe = Pipeline(PipelineSettings(spool_dir=self.state / "spool", poll_interval=0.05, prove_after=0.2,
                                              outbox_interval=0.02),
                             self.client, self.store, load_profile(self.profile), load_packs(), state_dir=self.state)
        await self.pipe.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.pipe.stop()
        await self.client.aclose()
        self.store.close()
        await self.sb.stop()

    def held(self) -> dict[str, str]:
        return {r["id"]: r.get("hold_reason") for r in self.store.letters(stage="operator-hold")}

    def settled(self) -> bool:
        held = self.held()
        return (all(l.status in FINAL or l.id in held for l in self.sb.letters.values())
                and not self.store.outbox_pending(1))

    async def wait(self, predicate, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out; statuses {Counter(l.status for l in self.sb.letters.values())}; "
                                     f"alerts {self.alerts()[-5:]}")
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)  # the last status updates reach the sandbox

    def alerts(self, source: str | None = None) -> list[str]:
        return [a.message for a in self.pipe.alerts if source is None or a.source == source]

    def history(self, letter_id: str) -> list[str]:
        return self.sb.letters[letter_id].supplier_statuses()


def read_csv(path: Path) -> list[dict]:
    return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))


def run_files(runs: Path) -> list[Path]:
    return sorted([*runs.glob("*.run.csv"), *(runs / "taken").glob("*.run.csv")], key=lambda f: f.name)


# --- good runs ------------------------------------------------------------------------

async def test_good_run_every_letter_enclosed_and_dispatched_once_and_run_files_exact(tmp_path):
    profile = floor_profile(tmp_path, batch_size=8)
    sim = FileInserterSim(tmp_path / "runs", tmp_path / "results", SimOptions(piece_seconds=0.001)).start()
    try:
        async with Run(tmp_path, profile, 30, bad_ratio=0.1) as r:
            await r.wait(r.settled)
            recs = {lid: r.store.get(lid) for lid in r.sb.letters}
            alerts = r.alerts("ins")
            held = r.held()
    finally:
        sim.stop()
    check_sandbox_outcome(r.sb, tmp_path / "state" / "output")  # GOOD_PATH exactly once each
    assert not held and not alerts and sim.error is None
    good = [l.id for l in r.sb.letters.values() if l.kind == "good"]
    packs = load_packs()
    # run files: exactly the good letters, each once, in batches of at most 8, content exact
    files = run_files(tmp_path / "runs")
    written = []
    for n, f in enumerate(files, 1):
        raw = f.read_bytes()
        assert f.name == f"ins-{n:06d}.run.csv"
        assert raw.startswith(b"batch,seq,letter_id,sheets,inserts,envelope,postage_class\r\n")
        rows = read_csv(f)
        assert 1 <= len(rows) <= 8
        # one envelope and one tariff per run: the machine loads one, the franker applies one
        assert len({(row["envelope"], row["postage_class"]) for row in rows}) == 1, rows
        for seq, row in enumerate(rows, 1):
            rec = recs[row["letter_id"]]
            pack = packs[rec["specification_id"]]
            assert row == {"batch": f"ins-{n:06d}", "seq": str(seq), "letter_id": row["letter_id"],
                           "sheets": str(rec["sheets"]), "inserts": ";".join(pack.insert_ids),
                           "envelope": pack.envelope_id, "postage_class": pack.postage_id}
            written.append(row["letter_id"])
    assert sorted(written) == sorted(good)
    assert len({row["postage_class"] for f in files for row in read_csv(f)}) >= 2  # tariffs to keep apart
    assert any(row["inserts"] for f in files for row in read_csv(f))  # the run had inserts to announce
    # every result file was read and moved aside; the machine's reports are exactly the ENCLOSED set
    results = tmp_path / "results"
    assert not list(results.glob("*.result.csv")) and not (results / "rejected").exists()
    assert len(list((results / "done").glob("*.result.csv"))) == len(files)
    assert sorted(lid for _, _, lid, outcome, _ in sim.handled if outcome == "inserted") == sorted(good)


async def test_example_floor_runs_with_its_simulator(tmp_path):
    async with Run(tmp_path, FLOOR, 12) as r:
        await r.wait(r.settled)
    assert all(r.history(lid) == GOOD_PATH for lid in r.sb.letters)
    assert len(list((tmp_path / "state" / "devices" / "mps-1" / "results" / "done").glob("*.csv"))) >= 1


# --- diverted pieces: the same result as the serial path ------------------------------

async def test_diverted_piece_maps_exactly_as_a_serial_divert(tmp_path):
    # the serial LF-3000 simulator diverts every 3rd piece with E12
    serial = tmp_path / "serial"
    serial.mkdir()
    text = SERIAL_FLOOR.read_text().replace('sim_options = ["piece_seconds=0.002", "heartbeat=0.5"]',
                                            'sim_options = ["piece_seconds=0.002", "heartbeat=0.5", '
                                            '"divert_every=3"]', 1)
    assert "divert_every=3" in text
    (serial / "floor.toml").write_text(text)
    async with Run(serial, serial / "floor.toml", 6) as s:
        await s.wait(s.settled)
    serial_failed = {(tuple(s.history(l.id)), l.reason_code, l.reason_text)
                     for l in s.sb.letters.values() if l.status == "FAILED"}
    assert len(serial_failed) == 1  # two pieces, one outcome

    files = tmp_path / "files"
    files.mkdir()
    profile = floor_profile(files, name="lf3000")  # same device name: the same reason text
    sim = FileInserterSim(files / "runs", files / "results",
                          SimOptions.parse(["piece_seconds=0.001", "divert=2:E12", "divert=5:E12",
                                            "divert=6:Z99"])).start()
    try:
        async with Run(files, profile, 6) as f:
            await f.wait(f.settled)
            held = f.held()
    finally:
        sim.stop()
    failed = [l for l in f.sb.letters.values() if l.status == "FAILED"]
    assert len(failed) == 2
    assert {(tuple(f.history(l.id)), l.reason_code, l.reason_text) for l in failed} == serial_failed
    assert serial_failed == {(("ACCEPTED", "PRINTED", "FAILED"), "DEVICE_DIVERTED",
                              "diverted by lf3000: double feed detected (code E12)")}
    # a code the profile does not list goes to a person, as an unknown serial code does
    (z99,) = [lid for _, _, lid, _, code in sim.handled if code == "Z99"]
    assert held == {z99: held[z99]} and "Z99" in held[z99]
    assert f.history(z99) == ["ACCEPTED", "PRINTED"]


# --- malformed result files -----------------------------------------------------------

class Machine:
    """The test plays the machine: reads the run file, writes result files by hand."""

    def __init__(self, root: Path):
        self.runs, self.results = root / "runs", root / "results"

    async def rows(self, count: int) -> list[dict]:
        deadline = time.monotonic() + 20
        while True:
            rows = [row for f in run_files(self.runs) for row in read_csv(f)]
            if len(rows) >= count:
                return rows
            assert time.monotonic() < deadline, f"only {len(rows)} pieces written out"
            await asyncio.sleep(0.02)

    def write(self, name: str, data: bytes) -> None:
        tmp = self.results / f".{name}.tmp"
        tmp.write_bytes(data)
        os.replace(tmp, self.results / name)


def rec(row: dict, outcome: str = "inserted", code: str = "") -> tuple:
    return (row["batch"], row["seq"], row["letter_id"], outcome, code)


def line(*cells) -> bytes:
    return (",".join(cells) + "\r\n").encode()


HEADER = (",".join(RESULT_COLUMNS) + "\r\n").encode()

# kind -> (file content from the 4 rows, pieces it settles as inserted, pieces held, where it goes,
#          what the alert says).  Pieces it leaves open are reported by a second, good file.
MALFORMED = {
    "wrong column count": (lambda r: render_results([rec(r[0])]) + line(r[1]["batch"], r[1]["seq"], "x")
                           + render_results([rec(r[2])])[len(HEADER):], {0, 2}, set(), "done",
                           "line 3: 5 columns expected, got 3"),
    "unknown outcome": (lambda r: render_results([rec(r[0]), rec(r[1], "jammed")]), {0}, {1}, "done",
                        "line 3: outcome 'jammed' is not inserted or diverted"),
    "unknown batch": (lambda r: render_results([rec(r[0]), ("ins-999999", 1, r[1]["letter_id"], "inserted", "")]),
                      {0}, set(), "done", "line 3: batch 'ins-999999' is not one this appliance has open"),
    "no such piece": (lambda r: render_results([(r[0]["batch"], 9, r[0]["letter_id"], "inserted", "")]
                                               + [rec(r[1])]), {1}, set(), "done",
                      "line 2: batch ins-000001 has no piece 9"),
    "letter id mismatch": (lambda r: render_results([rec(r[0]), (r[1]["batch"], 2, r[2]["letter_id"],
                                                                 "inserted", "")]), {0}, {1}, "done",
                           "line 3: result names"),
    "not UTF-8": (lambda r: render_results([rec(r[0])]) + b"ins-000001,2,\xff\xfe,inserted,\r\n"
                  + render_results([rec(r[2])])[len(HEADER):], {0, 2}, set(), "done", "line 3: not UTF-8 text"),
    "truncated": (lambda r: render_results([rec(r[0]), rec(r[1])])[:-20], {0}, set(), "done",
                  "line 3: cut short"),
    "bad header": (lambda r: b"batch;seq;letter;result\r\n" + render_results([rec(r[0])])[len(HEADER):],
                   set(), set(), "rejected", "line 1: header must be"),
    "huge": (lambda r: render_results([rec(r[0])]) + b"#" * 5000 + b"\r\n", set(), set(), "rejected",
             "too big (5100 bytes"),
    "nothing usable": (lambda r: HEADER + line("a", "b") + line(r[0]["batch"], "0", "x", "inserted", ""),
                       set(), set(), "rejected", "2 bad line(s): line 2: 5 columns expected, got 2; line 3: seq"),
}


@pytest.mark.parametrize("kind", MALFORMED)
async def test_malformed_result_file_alerts_applies_good_lines_and_loses_nothing(tmp_path, kind):
    make, inserted, held_at, folder, says = MALFORMED[kind]
    machine = Machine(tmp_path)
    async with Run(tmp_path, floor_profile(tmp_path, batch_size=4, batch_idle=5, max_result_bytes=5000), 0) as r:
        for _ in range(4):  # one pack: one envelope and tariff, so the four share one run file
            r.sb.add_letter(specification_id="notify-c5", pages=2)
        rows = await machine.rows(4)
        assert len({row["batch"] for row in rows}) == 1, rows
        ids = [row["letter_id"] for row in rows]
        machine.write("ins-000001.result.csv", make(rows))
        await r.wait(lambda: not list(machine.results.glob("*.result.csv"))
                     and all(r.sb.letters[ids[i]].status == "DISPATCHED" for i in inserted)
                     and set(r.held()) == {ids[i] for i in held_at})
        # nothing else moved on the strength of a bad line
        for i in set(range(4)) - inserted:
            assert r.history(ids[i]) == ["ACCEPTED", "PRINTED"], (i, r.history(ids[i]))
        (alert,) = r.alerts("ins")
        assert "ins-000001.result.csv" in alert and says in alert, alert
        assert (machine.results / folder / "ins-000001.result.csv").exists()  # kept for a person
        # the machine reports the rest properly: every piece ends DISPATCHED or with a person
        rest = [rec(rows[i]) for i in range(4) if i not in inserted | held_at]
        if rest:
            machine.write("ins-000001.2.result.csv", render_results(rest))
        await r.wait(r.settled)
        assert len(r.alerts("ins")) == 1
    for i, lid in enumerate(ids):
        assert r.history(lid) == (["ACCEPTED", "PRINTED"] if i in held_at else GOOD_PATH), (kind, i)


def test_parse_results_reports_every_bad_line_and_keeps_the_good():
    data = (HEADER + line("b-1", "1", "L1", "inserted", "") + line("b-1", "x", "L2", "inserted", "")
            + b"b-1,3,\xc3,inserted,\r\n" + b"\r\n" + line("b-1", "4", "L4", "DIVERTED", "E12") + b"b-1,5,L5,ins")
    parsed = parse_results(data)
    assert parsed.fatal is None
    assert [(r.line, r.seq, r.letter_id, r.outcome, r.reason_code) for r in parsed.records] == [
        (2, 1, "L1", "inserted", ""), (6, 4, "L4", "diverted", "E12")]
    assert [n for n, _ in parsed.problems] == [3, 4, 7]
    assert parse_results(b"").fatal == "empty file"
    assert parse_results(b"\xef\xbb\xbf" + HEADER).records == []  # a BOM is fine


# --- restarts -------------------------------------------------------------------------

def _work(letter_id: str) -> Work:
    pack = load_packs()["client3-invites"]
    return Work(letter_id, None, pack, 2, 1)


async def _settle(events: list, kinds: set, count: int, start: int = 0) -> None:
    deadline = time.monotonic() + 10
    while sum(e.kind in kinds for e in events[start:]) < count:
        assert time.monotonic() < deadline, events
        await asyncio.sleep(0.02)


async def test_driver_killed_mid_batch_restarts_without_repeating_or_losing_a_piece(tmp_path):
    runs, results, state = tmp_path / "runs", tmp_path / "results", tmp_path / "state"
    runs.mkdir()
    results.mkdir()
    settings = {"outbox_dir": str(runs), "results_dir": str(results), "batch_size": 4, "batch_idle": 60,
                "poll_seconds": 0.02, "reasons": {"E12": "double feed"}}
    events: list[DeviceEvent] = []
    a = FileInserter("ins", settings, events.append, state_dir=state)
    await a.start()
    ids = [f"letter{i:02d}" for i in range(6)]
    for lid in ids:
        await a.submit(_work(lid))
    machine = Machine(tmp_path)
    rows = await machine.rows(4)  # batch full at 4; pieces 5 and 6 still collecting
    assert [r["letter_id"] for r in rows] == ids[:4]
    first = render_results([rec(rows[0]), rec(rows[1], "diverted", "E12")])
    machine.write("ins-000001.result.csv", first)
    await _settle(events, {"piece.inserted", "piece.diverted"}, 2)
    while not (results / "done" / "ins-000001.result.csv").exists():
        await asyncio.sleep(0.02)
    # kill -9: the task dies, nothing is flushed; the machine's first file reappears as if
    # the move to done/ had been lost with the crash
    await a.stop_tasks()
    machine.write("ins-000001.result.csv", first)
    before = len(events)

    b = FileInserter("ins", settings, events.append, state_dir=state)
    assert await b.reconcile(ids) == {ids[0]: "piece.inserted", ids[1]: "piece.diverted", ids[2]: "job.queued",
                                      ids[3]: "job.queued", ids[4]: "absent", ids[5]: "absent"}
    await b.start()
    machine.write("ins-000001.2.result.csv", render_results([rec(rows[2]), rec(rows[3])]))
    await _settle(events, {"piece.inserted"}, 2, start=before)
    await asyncio.sleep(0.2)  # room for a wrongly repeated event to show
    await b.stop()
    settled = Counter(e.letter_id for e in events if e.kind.startswith("piece."))
    assert settled == Counter(ids[:4])  # each once, across both lives; none lost
    assert not [e for e in events if e.kind == "device.alert"]
    assert b.counters["repeats"] == 2
    assert sorted(f.name for f in (results / "done").iterdir()) == [
        "ins-000001.2.result.csv", "ins-000001.result.2.csv", "ins-000001.result.csv"]
    # the next batch continues the numbering; the absent pieces are the pipeline's to resend
    assert b.book.next_batch == 2


async def test_run_file_written_but_not_renamed_before_a_crash_is_finished_at_start(tmp_path):
    runs, results, state = tmp_path / "runs", tmp_path / "results", tmp_path / "state"
    runs.mkdir()
    results.mkdir()
    settings = {"outbox_dir": str(runs), "results_dir": str(results), "batch_size": 2, "poll_seconds": 0.02}
    a = FileInserter("ins", settings, lambda ev: None, state_dir=state)
    await a.start()
    for lid in ("L1", "L2"):
        await a.submit(_work(lid))
    deadline = time.monotonic() + 5
    while not (runs / "ins-000001.run.csv").exists():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    await a.stop()
    # as if killed between the book's save and the rename; and a stray temporary file
    # from a crash before the book knew its batch
    os.replace(runs / "ins-000001.run.csv", runs / ".ins-000001.run.csv.tmp")
    state_file = state / "devices" / "ins" / "file-inserter.json"
    data = json.loads(state_file.read_text())
    data["batches"][0]["file_done"] = False
    state_file.write_text(json.dumps(data))
    (runs / ".ins-000002.run.csv.tmp").write_text("half")
    b = FileInserter("ins", settings, lambda ev: None, state_dir=state)
    await b.start()
    await b.stop()
    assert sorted(f.name for f in runs.iterdir()) == ["ins-000001.run.csv"]
    assert [r["letter_id"] for r in read_csv(runs / "ins-000001.run.csv")] == ["L1", "L2"]


@pytest.mark.slow
def test_daemon_killed_9_mid_run_and_restarted_loses_and_repeats_nothing(tmp_path):
    """The appliance daemon is killed with SIGKILL while the machine works through batches;
    after restarts every letter reached the API ACCEPTED, PRINTED, ENCLOSED, DISPATCHED once."""
    profile = floor_profile(tmp_path, batch_size=6, batch_idle=0.2, poll_seconds=0.05)
    sim = FileInserterSim(tmp_path / "runs", tmp_path / "results",
                          SimOptions(piece_seconds=0.04, chunk=2)).start()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    sock = tmp_path / "ctl.sock"
    try:
        with run_in_thread(SandboxOptions(**QUICK, letters=60, bad_ratio=0.1, seed=5)) as sb:
            cfg = tmp_path / "appliance.toml"
            cfg.write_text(f'[api]\nbase_url = "{sb.base_url}"\nauth = "none"\n[poll]\ninterval = 0.2\n'
                           f'[paths]\nstate_dir = "{tmp_path / "state"}"\nprofile = "{profile}"\n')
            cmd = [sys.executable, "-m", "appliance", "run", "--config", str(cfg), "--log-level", "WARNING",
                   "--socket", str(sock)]
            done = {"DISPATCHED", "REJECTED", "FAILED"}
            kills_mid_run = 0
            for wait in (1.2, 0.9, 1.0):
                proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)
                time.sleep(wait)
                assert proc.poll() is None, proc.stderr.read()
                proc.kill()
                proc.wait()
                kills_mid_run += not all(l.status in done for l in sb.letters.values())
            proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)
            deadline = time.monotonic() + 60
            while not (all(l.status in done for l in sb.letters.values()) and sock.exists()) \
                    and time.monotonic() < deadline:
                time.sleep(0.2)
            time.sleep(0.5)
            proc.send_signal(signal.SIGTERM)
            err = proc.communicate(timeout=30)[1]
            assert proc.returncode == 0 and "Traceback" not in err, err
            check_sandbox_outcome(sb, tmp_path / "state" / "output")
            assert kills_mid_run >= 2
    finally:
        sim.stop()
    # the machine inserted every good letter exactly once: no piece was written out twice
    inserted = Counter(lid for _, _, lid, outcome, _ in sim.handled)
    assert set(inserted.values()) == {1}
    assert sim.error is None


# --- profile and doctor ---------------------------------------------------------------

def test_profile_errors_are_one_line(tmp_path):
    good = floor_profile(tmp_path).read_text()
    good = good[:good.index("[inserter.reasons]")] + good[good.index("[[franker]]"):]
    cases = {
        ("batch_size = 50", "batch_sise = 4"): "batch_sise: unknown key for a files inserter",
        ("batch_size = 50", "batch_size = 0"): "batch_size: must be at least 1",
        ('driver = "files"', 'driver = "files"\nreasons = ["E12"]'): "reasons: expected a table",
        ("batch_idle = 0.2", 'batch_idle = "soon"'): "batch_idle: expected a number",
        ('driver = "files"', 'driver = "files"\nsimulate = true\nsim_options = ["divert=3"]'):
            "sim_options: simulator option 'divert=3': bad value",
    }
    for (old, new), says in cases.items():
        assert old in good
        bad = tmp_path / "bad.toml"
        bad.write_text(good.replace(old, new, 1))
        with pytest.raises(ConfigError) as e:
            load_profile(bad)
        assert says in str(e.value) and "\n" not in str(e.value), str(e.value)
    no_folder = tmp_path / "nofolder.toml"
    no_folder.write_text("\n".join(l for l in good.splitlines() if not l.startswith("outbox_dir")))
    with pytest.raises(ConfigError, match="outbox_dir: missing"):
        load_profile(no_folder)


def test_missing_or_unwritable_folders_fail_at_start_and_in_doctor(tmp_path):
    from appliance.runtime.doctor import run_checks

    profile = load_profile(floor_profile(tmp_path))
    (spec,) = profile.inserters
    assert [c.ok for c in run_checks(profile) if "inserter" in c.subject] == [True, True]
    (tmp_path / "results").rmdir()
    with pytest.raises(ConfigError, match=r"results_dir: .*results does not exist; create it"):
        FileInserter(spec.name, spec.settings, lambda ev: None, state_dir=tmp_path / "state")
    checks = [c for c in run_checks(profile) if "inserter" in c.subject]
    assert [c.ok for c in checks] == [True, False] and "mkdir -p" in checks[1].message
    if os.geteuid() != 0:  # root may write anywhere
        (tmp_path / "results").mkdir()
        os.chmod(tmp_path / "runs", 0o500)
        try:
            with pytest.raises(ConfigError, match="outbox_dir: .* is not writable"):
                FileInserter(spec.name, spec.settings, lambda ev: None, state_dir=tmp_path / "state")
        finally:
            os.chmod(tmp_path / "runs", 0o700)


async def test_folder_vanishing_at_runtime_takes_the_inserter_offline_with_one_alert(tmp_path):
    runs, results = tmp_path / "runs", tmp_path / "results"
    runs.mkdir()
    results.mkdir()
    events: list[DeviceEvent] = []
    drv = FileInserter("ins", {"outbox_dir": str(runs), "results_dir": str(results), "poll_seconds": 0.02},
                       events.append, state_dir=tmp_path / "state")
    await drv.start()
    results.rename(tmp_path / "gone")
    await asyncio.sleep(0.2)
    assert drv.health().state == "offline"
    (tmp_path / "gone").rename(results)
    await asyncio.sleep(0.2)
    await drv.stop()
    states = [e.detail["state"] for e in events if e.kind == "device.state"]
    assert states == ["idle", "offline", "idle"]
    (alert,) = [e.detail["message"] for e in events if e.kind == "device.alert"]
    assert "results_dir" in alert and "does not exist" in alert


async def test_pause_holds_run_files_back_and_a_piece_without_result_goes_to_a_person(tmp_path):
    runs, results = tmp_path / "runs", tmp_path / "results"
    runs.mkdir()
    results.mkdir()
    events: list[DeviceEvent] = []
    drv = FileInserter("ins", {"outbox_dir": str(runs), "results_dir": str(results), "batch_size": 2,
                               "poll_seconds": 0.02, "piece_timeout": 0.3}, events.append,
                       state_dir=tmp_path / "state")
    await drv.start()
    await drv.pause()
    for lid in ("L1", "L2"):
        await drv.submit(_work(lid))
    await asyncio.sleep(0.2)
    assert not list(runs.iterdir()) and drv.health().state == "paused"
    await drv.resume()
    machine = Machine(tmp_path)
    rows = await machine.rows(2)
    machine.write("ins-000001.result.csv", render_results([rec(rows[0])]))
    await _settle(events, {"piece.inserted", "piece.unknown"}, 2)
    (unknown,) = [e for e in events if e.kind == "piece.unknown"]
    assert unknown.letter_id == "L2" and "no result within" in unknown.detail["reason"]
    # the late result for it settles nothing and says so
    machine.write("ins-000001.2.result.csv", render_results([rec(rows[1])]))
    await _settle(events, {"device.alert"}, 1)
    await drv.stop()
    (alert,) = [e.detail["message"] for e in events if e.kind == "device.alert"]
    assert "line 2: contradicts the result already applied to ins-000001/2 (unknown)" in alert
    assert await drv.reconcile(["L1", "L2"]) == {"L1": "piece.inserted"}  # L2: a person decides
