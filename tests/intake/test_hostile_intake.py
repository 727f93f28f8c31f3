"""The hostile catalogue against the real daemon and its real worker pool.

One ``appliance run`` (its own process, the demo floor, two intake workers with small
budgets) against one sandbox holding every case at once, good letters listed after them:
bombs and bad geometry, active content, storage that drips, lies about lengths, redirects
or fails for a while and then heals, pre-signed URLs that point at places they must not
(a local "metadata service", link-local and loopback addresses, names that do not
resolve), a letter list that is nested 100 000 deep or a two-layer gzip bomb, and a flood
of console connections.  Each case asserts what Notify saw (the sandbox), what the daemon
holds, and that the good letters beside them were DISPATCHED in time with the daemon's
memory bounded.
"""

from __future__ import annotations

import http.server
import io
import os
import re
import resource
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from pypdf import PdfReader, PdfWriter

from appliance.control.client import call
from appliance.runtime.demo import demo_profile_path
from appliance.sandbox import SandboxOptions, run_in_thread
from appliance.sandbox.pdfgen import make_pdf
from tests.fixtures import QUICK, hostile_pdfs

GOOD_PATH = ["ACCEPTED", "PRINTED", "ENCLOSED", "DISPATCHED"]
GOOD_LETTERS = 20
GOOD_WITHIN = 90.0  # seconds from the daemon's start until every good letter is DISPATCHED
DAEMON_RSS_MB = 200  # peak RSS of the daemon process (the benchmark's target is 150)
RETRY_HOURS = 12 / 3600  # a transport fault is held for a person after 12 s here

#: name -> reason code Notify must receive (REJECTED)
CONTENT: dict[str, str] = {n: c for n, c in hostile_pdfs.EXPECTED.items() if c != "ok"}
CONTENT.update({"hash_mismatch": "HASH_MISMATCH", "over_size_cap": "TOO_LARGE",
                "storage_gzip_bomb": "TOO_LARGE", "encrypted": "PDF_UNREADABLE",
                "truncated": "PDF_UNREADABLE", "object_streams_over_budget": "PDF_TOO_COMPLEX"})
ACCEPTABLE = [n for n, c in hostile_pdfs.EXPECTED.items() if c == "ok"]

#: name -> (storage faults, /data faults): a fault that heals; the letter is DISPATCHED
HEALS: dict[str, tuple[list[str], list[str]]] = {
    "storage_503_twice": (["503", "503"], []),
    "storage_404": (["404"], []),
    "storage_403_expired": (["403-expired"], []),
    "storage_403_twice": (["403", "403"], []),
    "storage_500": (["500"], []),
    "storage_reset": (["reset"], []),
    "storage_short_body": (["short"], []),
    "storage_drip": (["drip"], []),
    "storage_drip_headers": (["drip-headers"], []),
    "storage_silent": (["silent"], []),
    "storage_redirect": (["redirect"], []),
    "storage_gzip": (["gzip"], []),
    "data_404_twice": ([], ["404", "404"]),
    "data_500": ([], ["500"]),
    "data_deep_error_body": ([], ["deep-error"]),
}

#: name -> Location (or storage faults) that can never be fetched: held for a person
UNREACHABLE_LETTERS = 10


def _held_cases(meta_url: str, sandbox_port: int, closed_port: int) -> dict[str, dict]:
    return {
        "ssrf_local_service": {"location": f"{meta_url}/latest/meta-data/iam"},
        "ssrf_link_local": {"location": "http://169.254.169.254/latest/meta-data/"},
        "name_resolving_to_loopback": {"location": f"http://localhost:{sandbox_port}/_presigned/x.pdf"},
        "dns_failure": {"location": "https://no-such-bucket.invalid/x.pdf"},
        "no_location": {"location": ""},
        "file_location": {"location": "file:///etc/passwd"},
        "drip_forever": {"storage_faults": ["drip"] * 50},
        **{f"unreachable_{i}": {"location": f"http://127.0.0.1:{closed_port}/x{i}.pdf"}
           for i in range(UNREACHABLE_LETTERS)},
    }


def _encrypted() -> bytes:
    w = PdfWriter(clone_from=PdfReader(io.BytesIO(make_pdf("secret", 2))))
    w.encrypt(user_password="", owner_password="owner")
    out = io.BytesIO()
    w.write(out)
    return out.getvalue()


class Metadata(http.server.BaseHTTPRequestHandler):
    """A stand-in for 169.254.169.254: must never be asked anything."""
    hits = 0

    def do_GET(self):  # noqa: N802
        Metadata.hits += 1
        body = b'{"SecretAccessKey": "EXFILTRATED-SECRET"}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _flood(sock: str, n: int) -> tuple[int, list[str]]:
    """Open ``n`` console connections at once; (connections held, refusal lines seen)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, n + 256)), hard))
    held, refusals = [], []
    for _ in range(n):
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        c.settimeout(2)
        try:
            c.connect(sock)
        except OSError:
            c.close()
            continue
        held.append(c)
    for c in held:
        try:
            c.settimeout(0.05)
            data = c.recv(4096)
            if b"too many consoles" in data:
                refusals.append(data.decode())
        except OSError:
            pass
    count = len(held)
    for c in held:
        c.close()
    return count, refusals


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hostile")
    meta = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Metadata)
    threading.Thread(target=meta.serve_forever, daemon=True).start()
    meta_url = f"http://127.0.0.1:{meta.server_address[1]}"
    with run_in_thread(SandboxOptions(**QUICK, letters=0, bad_ratio=0, seed=9)) as sb:
        port = int(sb.base_url.rsplit(":", 1)[1])
        ids: dict[str, str] = {}
        for name, make in hostile_pdfs.CATALOGUE.items():
            ids[name] = sb.add_letter(make(), specification_id="notify-c5")
        good_pdf = make_pdf("hash", 2)
        ids["hash_mismatch"] = sb.add_letter(good_pdf, sha256="0" * 64)
        ids["over_size_cap"] = sb.add_letter(make_pdf("big", 2) + b"%" + os.urandom(1_200_000) + b"\n%%EOF\n")
        ids["storage_gzip_bomb"] = sb.add_letter(storage_faults=["gzip-bomb"] * 3)
        ids["encrypted"] = sb.add_letter(_encrypted())
        ids["truncated"] = sb.add_letter(make_pdf("cut", 5)[:900])
        ids["object_streams_over_budget"] = sb.add_letter(hostile_pdfs.objstm_bomb(streams=12, inflated_mb=1))
        for name, (storage, data) in HEALS.items():
            ids[name] = sb.add_letter(storage_faults=storage, data_faults=data)
        closed = _closed_port()
        held = _held_cases(meta_url, port, closed)
        for name, how in held.items():
            ids[name] = sb.add_letter(**how)
        good = sb.add_letters(GOOD_LETTERS, bad_ratio=0)  # listed after every hostile letter
        # The letter list itself misbehaves for the first polls, one way after another.
        sb.faults.hostile_scope = {"list"}
        modes = ["deep_json", "gzip_bomb", "deep_error", "invalid_json", "huge_body"]
        sb.faults.hostile, sb.faults.hostile_count = modes[0], 1

        state, sock = tmp / "state", str(tmp / "ctl.sock")
        cfg = tmp / "appliance.toml"
        cfg.write_text(f"""
[api]
base_url = "{sb.base_url}"
auth = "none"
max_retries = 1
max_pdf_mb = 1
presigned_hosts = ["*.amazonaws.com", "http://localhost:{port}", "https://*.invalid",
                   "http://127.0.0.1:{port}", "http://127.0.0.1:{closed}"]
[poll]
interval = 0.2
[intake]
workers = 2
memory_mb = 384
cpu_seconds = 5
task_seconds = 20
download_seconds = 3
min_rate_kbps = 4
max_decoded_mb = 100
retry_hours = {RETRY_HOURS}
retry_first_seconds = 0.5
retry_max_seconds = 2
[control]
max_clients = 8
[paths]
state_dir = "{state}"
profile = "{demo_profile_path()}"
""")
        log = open(tmp / "daemon.log", "w")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        started = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-m", "appliance", "run", "--config", str(cfg),
                                 "--socket", sock, "--log-level", "INFO"],
                                stdout=log, stderr=subprocess.STDOUT, env=env)
        out = {"ids": ids, "good": good, "sb": sb, "sock": sock, "state": state, "held": held}
        try:
            mode_i = 0
            flood = None
            good_done = None
            deadline = started + 150
            while time.monotonic() < deadline:
                assert proc.poll() is None, (tmp / "daemon.log").read_text()[-3000:]
                if sb.faults.hostile_count == 0 and mode_i + 1 < len(modes):
                    mode_i += 1
                    sb.faults.hostile, sb.faults.hostile_count = modes[mode_i], 1
                if flood is None and os.path.exists(sock) and time.monotonic() - started > 3:
                    flood = _flood(sock, 300)
                if good_done is None and all(sb.letters[i].status == "DISPATCHED" for i in good):
                    good_done = time.monotonic() - started
                if good_done is not None and _settled(out):
                    break
                time.sleep(0.25)
            out.update(good_done=good_done, flood=flood, rss_mb=_peak_rss_mb(proc.pid),
                       status=call(sock, "status"), records={n: call(sock, "letter", id=i)
                                                              for n, i in ids.items()},
                       meta_hits=Metadata.hits, list_modes=mode_i + 1)
        finally:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
            log.close()
            meta.shutdown()
        out["log"] = (tmp / "daemon.log").read_text()
        out["exit"] = proc.returncode
        yield out


def _settled(out) -> bool:
    """Every case has its outcome: final at Notify, or held by the daemon."""
    sb, ids = out["sb"], out["ids"]
    for name, lid in ids.items():
        if name in out["held"]:
            try:
                rec = call(out["sock"], "letter", id=lid)
            except Exception:
                return False
            if rec["stage"] != "intake-hold":
                return False
        elif sb.letters[lid].status not in ("DISPATCHED", "REJECTED"):
            return False
    return True


@pytest.mark.parametrize("name", sorted(CONTENT))
def test_content_fault_is_rejected_with_its_reason(run, name):
    letter = run["sb"].letters[run["ids"][name]]
    assert letter.supplier_statuses() == ["REJECTED"], (name, run["records"][name]["history"][-4:])
    assert letter.reason_code == CONTENT[name], letter.reason_text
    assert "EXFILTRATED" not in (letter.reason_text or "")


@pytest.mark.parametrize("name", sorted(ACCEPTABLE))
def test_acceptable_geometry_is_printed(run, name):
    assert run["sb"].letters[run["ids"][name]].supplier_statuses() == GOOD_PATH


@pytest.mark.parametrize("name", sorted(HEALS))
def test_transport_fault_that_heals_ends_dispatched_never_rejected(run, name):
    letter = run["sb"].letters[run["ids"][name]]
    assert letter.supplier_statuses() == GOOD_PATH, run["records"][name]["history"][-6:]
    storage, data = HEALS[name]
    kind = "presigned" if storage else "data"
    asked = [r for r in run["sb"].log if r.kind == kind and run["ids"][name] in r.path]
    assert len(asked) == (1 if name == "storage_gzip" else len(storage or data) + 1), [r.status for r in asked]


@pytest.mark.parametrize("name", ["ssrf_local_service", "ssrf_link_local", "name_resolving_to_loopback",
                                  "dns_failure", "no_location", "file_location", "drip_forever",
                                  "unreachable_0", "unreachable_9"])
def test_what_can_never_be_fetched_is_held_for_a_person_not_rejected(run, name):
    letter = run["sb"].letters[run["ids"][name]]
    assert letter.status == "PENDING" and letter.supplier_statuses() == []
    rec = run["records"][name]
    assert rec["stage"] == "intake-hold" and "not fetched" in rec["hold_reason"], rec["hold_reason"]


def test_ssrf_target_was_never_contacted_and_nothing_of_it_reached_notify(run):
    assert run["meta_hits"] == 0
    assert "non-public" in run["records"]["name_resolving_to_loopback"]["hold_reason"]
    assert "presigned_hosts" in run["records"]["ssrf_local_service"]["hold_reason"]
    for letter in run["sb"].letters.values():
        assert "EXFILTRATED" not in (letter.reason_text or "")


def test_good_letters_beside_the_hostile_ones_are_dispatched_in_time(run):
    assert run["good_done"] is not None and run["good_done"] < GOOD_WITHIN, run["good_done"]
    for lid in run["good"]:
        assert run["sb"].letters[lid].supplier_statuses() == GOOD_PATH


def test_daemon_memory_stays_bounded_while_bombs_are_checked(run):
    assert 0 < run["rss_mb"] <= DAEMON_RSS_MB, run["rss_mb"]


def test_the_poll_survives_every_broken_letter_list_and_says_so(run):
    assert run["list_modes"] == 5
    assert run["status"]["healthy"] and not [t for t in run["status"]["tasks"] if t["name"] == "poll"]
    assert "cannot list letters" in run["log"]
    assert run["status"]["counters"]["polls"] > 3


def test_a_flood_of_console_connections_is_refused_beyond_the_limit_and_intake_goes_on(run):
    connected, refusals = run["flood"]
    assert connected > 8 and refusals, run["flood"]
    assert refusals[0].count("\n") == 1 and "close one and try again" in refusals[0]
    assert run["good_done"] is not None


def test_every_letter_has_a_status_or_a_person_deciding(run):
    for name, rec in run["records"].items():
        assert rec["status"] in ("DISPATCHED", "REJECTED") or rec["stage"] == "intake-hold", (name, rec["stage"])


def test_logs_carry_no_signatures_and_no_tracebacks(run):
    assert "X-Amz-Signature=" not in run["log"] or "X-Amz-Signature=<redacted>" in run["log"]
    assert not re.search(r"X-Amz-Signature=[0-9a-f]{16}", run["log"])
    assert "Traceback" not in run["log"]


def test_no_presigned_request_carried_the_bearer(run):
    assert not [r for r in run["sb"].log if r.kind == "presigned" and "authorization" in r.headers]


def test_nothing_under_the_state_folder_is_readable_by_others(run):
    """The daemon was started with the test's umask (022): every file it made holds letter
    state or patient data, and is 0600 in a 0700 folder; no printed copy is kept."""
    state = Path(run["state"])
    seen = 0
    for path in [state, *state.rglob("*")]:
        if path.is_symlink():
            continue
        mode = path.stat().st_mode & 0o777
        assert mode & 0o077 == 0, f"{path.relative_to(state)} is {oct(mode)}"
        seen += 1
    assert seen > 10
    assert not list(state.glob("output/*/*.pdf"))
    assert {p.name for p in (state / "spool").iterdir()} <= {f"{run['ids'][n]}.pdf" for n in run["held"]}
