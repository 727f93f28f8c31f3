"""Blocking CUPS queries for the command line: ``appliance doctor`` and ``appliance printers``.

These run once from the CLI's own thread, so they call pycups directly (one connection
per server) instead of through the driver's worker threads.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field

from appliance.core.checks import Check
from appliance.core.errors import UserError
from drivers.cups.ipp import PRINTER_STOPPED, PrinterFacts, alert_worthy, device_state, reasons_of
from drivers.cups.session import NOT_FOUND, CupsRefused, CupsUnavailable, call, connect, describe_server

PRINTER_ATTRS = ["printer-state", "printer-state-reasons", "printer-is-accepting-jobs",
                 "printer-state-message", "queued-job-count", "device-uri"]


@dataclass(frozen=True)
class Unsure(Check):
    """A check that could not decide: ``appliance doctor`` prints it as a warning."""

    warning = True  # (class attribute, not a field: the doctor reads it from any Check)


@dataclass
class QueueStatus:
    server: str
    queue: str
    state: str  # idle | busy | stopped | offline (as the driver would report it)
    detail: str = ""
    found: bool = False
    enabled: bool = False
    accepting: bool = False
    queued: int = 0
    device_uri: str = ""
    reasons: list[str] = field(default_factory=list)


def cups_printers(profile) -> list:
    return [p for p in profile.printers if p.driver == "cups"]


def queue_of(spec) -> tuple[str, str]:
    return spec.settings.get("server", ""), spec.settings.get("queue") or spec.name


def queue_status(conn, server: str, queue: str) -> QueueStatus:
    try:
        a = call(conn, lambda c: c.getPrinterAttributes(queue, requested_attributes=PRINTER_ATTRS))
    except CupsRefused as e:
        if e.status == NOT_FOUND:
            return QueueStatus(server, queue, "offline", "queue not found")
        return QueueStatus(server, queue, "offline", str(e))
    facts = PrinterFacts(a.get("printer-state"), reasons_of(a.get("printer-state-reasons")),
                         bool(a.get("printer-is-accepting-jobs", True)), a.get("printer-state-message", ""))
    queued = int(a.get("queued-job-count", 0))
    state, detail = device_state(reachable=True, exists=True, paused=False, stalled=False,
                                 busy=queued > 0, facts=facts)
    return QueueStatus(server, queue, state, detail, True, facts.state != PRINTER_STOPPED, facts.accepting,
                       queued, a.get("device-uri", ""), [r for r in facts.reasons if r != "none"])


def fleet_status(profile) -> dict[str, QueueStatus]:
    """Live status of every CUPS printer in the profile, by printer name."""
    out: dict[str, QueueStatus] = {}
    by_server: dict[str, list] = {}
    for spec in cups_printers(profile):
        by_server.setdefault(queue_of(spec)[0], []).append(spec)
    for server, specs in by_server.items():
        try:
            conn = connect(server)
        except CupsUnavailable as e:
            for spec in specs:
                out[spec.name] = QueueStatus(server, queue_of(spec)[1], "offline", f"CUPS does not answer: {e}")
            continue
        for spec in specs:
            try:
                out[spec.name] = queue_status(conn, server, queue_of(spec)[1])
            except CupsUnavailable as e:
                out[spec.name] = QueueStatus(server, queue_of(spec)[1], "offline", f"CUPS does not answer: {e}")
    return out


#: Job states whose attributes CUPS still holds in full: a finished job keeps its id and
#: state in the history, but not its name, whatever the policy says.
ACTIVE_JOB_STATES = (3, 4, 5)  # pending, held, processing


def private_values(conf: str) -> str | None:
    """``JobPrivateValues`` of the default policy in a cupsd.conf text (None: not set)."""
    policy = "default"
    for line in conf.splitlines():
        words = line.split()
        if len(words) == 2 and words[0].lower() == "defaultpolicy":
            policy = words[1]
    inside, value = False, None
    for line in conf.splitlines():
        words = line.strip().rstrip(">").split(None, 1)
        if not words:
            continue
        key = words[0].lower()
        if key == "<policy":
            inside = len(words) > 1 and words[1].strip() == policy
        elif key == "</policy":
            inside = False
        elif inside and key == "jobprivatevalues":
            value = words[1].strip() if len(words) > 1 else ""
    return value


def _server_conf(conn) -> str | None:
    """The server's own cupsd.conf (HTTP GET /admin/conf/cupsd.conf on the same server),
    or None when it will not give it to us."""
    with tempfile.TemporaryFile() as f:
        try:
            conn.getFile("/admin/conf/cupsd.conf", fd=f.fileno())
        except Exception:  # cups.HTTPError (401/403), IPPError: not ours to see
            return None
        f.seek(0)
        text = f.read(1024 * 1024).decode("utf-8", "replace")
    return text if "<Policy" in text or "Listen" in text or "Port" in text else None


def names_visible(conn) -> tuple[bool | None, str]:
    """Can this client read job names (needed to match jobs to letters after a restart)?
    Asked of the configured server: its policy if it shows its cupsd.conf, else the jobs it
    still holds in full.  (None, why) when it cannot tell."""
    conf = _server_conf(conn)
    if conf is not None:
        value = private_values(conf)
        if value is not None and value.lower() == "none":
            return True, "its cupsd.conf has JobPrivateValues none"
        shown = value if value is not None else "not set (CUPS default: job names private)"
        if value is not None and "job-name" not in value.lower() and value.lower() not in ("default", "all"):
            return True, f"its cupsd.conf has JobPrivateValues {value}"
        return False, f"its cupsd.conf has JobPrivateValues {shown}"
    jobs = call(conn, lambda c: c.getJobs(which_jobs="not-completed",
                                          requested_attributes=["job-id", "job-name", "job-state"]))
    active = [a for a in jobs.values() if a.get("job-state") in ACTIVE_JOB_STATES]
    if not active:
        return None, "it holds no unfinished job to tell by and does not show its cupsd.conf"
    if all("job-name" in a for a in active):
        return True, f"names of its {len(active)} unfinished job(s) are visible"
    return False, "it returns unfinished jobs without their names"


def doctor_checks(profile, config=None) -> list:
    """One Check per CUPS server and per queue; each failure names the fix."""
    specs = cups_printers(profile)
    if not specs:
        return []
    try:
        from drivers.cups.session import import_cups
        import_cups()
    except UserError as e:
        return [Check(False, "cups driver", str(e))]
    checks = []
    by_server: dict[str, list] = {}
    for spec in specs:
        by_server.setdefault(queue_of(spec)[0], []).append(spec)
    for server, group in by_server.items():
        where = describe_server(server)
        try:
            conn = connect(server)
            visible, why = names_visible(conn)
        except (CupsUnavailable, CupsRefused) as e:
            checks.append(Check(False, f"CUPS {where}", f"does not answer ({e}); start cupsd "
                                                       "(systemctl start cups) or fix server = in the profile"))
            continue
        checks.append(Check(True, f"CUPS {where}", "answers"))
        if visible is False:
            checks.append(Check(False, f"CUPS {where}", f"hides job names ({why}), so a restart cannot "
                                                       "match jobs to letters; add 'JobPrivateValues none' to "
                                                       "<Policy default> in that server's cupsd.conf"))
        elif visible:
            checks.append(Check(True, f"CUPS {where}", f"job names visible: {why}"))
        else:
            checks.append(Unsure(True, f"CUPS {where}", f"job-name visibility not known: {why}; make sure "
                                                      "its cupsd.conf has 'JobPrivateValues none'"))
        for spec in group:
            queue = queue_of(spec)[1]
            subject = f"printer {spec.name}"
            try:
                st = queue_status(conn, server, queue)
            except CupsUnavailable as e:
                checks.append(Check(False, subject, f"CUPS stopped answering ({e})"))
                continue
            if not st.found:
                checks.append(Check(False, subject, f"queue {queue} not found on {where}; create it with "
                                                    f"lpadmin -p {queue} -E -v ipp://PRINTER-ADDRESS/ipp/print "
                                                    "-m everywhere"))
                continue
            if not st.enabled:
                checks.append(Check(False, subject, f"queue {queue} is stopped ({st.detail}); start it with "
                                                    f"cupsenable {queue}"))
            if not st.accepting:
                checks.append(Check(False, subject, f"queue {queue} rejects jobs; accept them with cupsaccept {queue}"))
            for reason in alert_worthy(tuple(r for r in st.reasons if r != "paused")):  # paused = stopped
                checks.append(Check(False, subject, f"queue {queue} reports {reason}; see the printer"))
            if st.enabled and st.accepting:
                checks.append(Check(True, subject, f"queue {queue} on {where}: {st.state}, accepting, "
                                                   f"{st.queued} queued, device {st.device_uri or '?'}"))
    return checks
