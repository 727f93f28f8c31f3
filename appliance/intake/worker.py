"""What runs inside an intake worker process.

Workers are forked from a clean forkserver (not from the daemon: no daemon memory, no open
sockets or locks of the daemon), each with an address-space limit set once and a CPU limit
set per task.  A task returns plain data; a Python exception never crosses back (a bug
shows as ``{"ok": False, "class": "worker"}``), a dead worker shows in the daemon as
``WorkerDied``.  The bearer token never comes here: tasks get only a pre-signed URL.
"""

from __future__ import annotations

import os
import resource
import signal
import traceback
from dataclasses import asdict, replace
from pathlib import Path

from appliance.core.errors import FetchFault, PdfTooLarge
from appliance.intake import coverage
from appliance.intake.fetch import FetchLimits, fetch
from appliance.intake.hosts import HostPolicy
from appliance.intake.pdfcheck import CheckLimits, check_pdf


def init_worker(memory_bytes: int, nice: int = 0) -> None:
    """Per process: memory limit, no core dumps (patient data), ignore the terminal's ^C, and
    ``nice`` steps lower CPU priority than the daemon (``IntakeSettings.nice``: batch work
    yields to the event loop and the console; the kernel caps it at 19)."""
    if nice > 0:
        os.nice(nice)
    if memory_bytes > 0:
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the daemon stops its pool itself
    import pypdf  # noqa: F401  - loaded once per worker, not per letter
    coverage.load()


def _cpu_budget(seconds: float) -> None:
    """From now, ``seconds`` more CPU; beyond, the kernel sends SIGXCPU and the worker dies."""
    if seconds <= 0:
        return
    used = resource.getrusage(resource.RUSAGE_SELF)
    soft = int(used.ru_utime + used.ru_stime + seconds) + 1
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def _content(code: str, detail: str) -> dict:
    return {"ok": False, "class": "content", "code": code, "detail": detail}


def _bug(e: Exception, what: str) -> dict:
    """A bug here must cost one letter a retry, never the worker's caller."""
    return {"ok": False, "class": "transport", "kind": "worker-error",
            "detail": f"{type(e).__name__} in the worker while {what}",
            "trace": traceback.format_exc(limit=8)[-2000:]}


def fetch_task(job: dict) -> dict:
    """Download ``job["url"]`` to ``job["dest"]``: ``{"ok", "sha256", "size"}``, or a
    transport fault, or the content fault TOO_LARGE."""
    _cpu_budget(job["cpu_seconds"])
    try:
        got = fetch(job["url"], Path(job["dest"]), FetchLimits(**job["fetch"]), HostPolicy.parse(job["hosts"]))
        return {"ok": True, "sha256": got.sha256, "size": got.size}
    except FetchFault as e:
        return {"ok": False, "class": "transport", "kind": e.kind, "detail": e.detail,
                "status": e.status, "expired": e.expired}
    except PdfTooLarge:
        return _content("TOO_LARGE", f"over the {job['fetch']['max_bytes']}-byte cap")
    except FileNotFoundError:
        # The daemon cleared the spool meanwhile (the letter let go back to Notify, or
        # cancelled): not the PDF's fault and not a bug; fetched again if still wanted.
        return {"ok": False, "class": "transport", "kind": "spool",
                "detail": "the spool file was removed while the PDF was being downloaded"}
    except Exception as e:
        return _bug(e, "downloading")


def check_task(job: dict) -> dict:
    """Read the PDF at ``job["path"]`` under the limits: ``{"ok", "facts"}``; a PDF that
    needs more memory than the worker has is a content fault (PDF_TOO_COMPLEX).  With
    ``job["coverage"]`` (CoverageLimits), a PDF pypdf could read is rendered to measure
    each page's ink coverage; one the renderer cannot open or render is PDF_UNREADABLE."""
    _cpu_budget(job["cpu_seconds"])
    try:
        path = Path(job["path"])
        facts = check_pdf(path, CheckLimits(**job["check"]))
        if job.get("coverage") and facts.page_sizes:  # read to the last page: measure it
            try:
                black, colour = coverage.measure(path, coverage.CoverageLimits(**job["coverage"]))
            except coverage.CoverageFault as e:
                return _content("PDF_UNREADABLE", str(e))
            facts = replace(facts, black_coverage=black, colour_coverage=colour)
        return {"ok": True, "facts": asdict(facts)}
    except MemoryError:
        return _content("PDF_TOO_COMPLEX", f"reading it needed more than the worker's "
                                           f"{job['memory_mb']} MB of memory")
    except FileNotFoundError:
        # The daemon removed the spooled copy meanwhile (the letter let go back to Notify, or
        # cancelled): not the PDF's fault and not a bug; fetched again if still wanted.
        return {"ok": False, "class": "transport", "kind": "spool",
                "detail": "the spooled PDF was removed while it was being checked"}
    except Exception as e:
        return {"ok": False, "class": "worker", "kind": "error",
                "detail": f"{type(e).__name__} in the worker while checking",
                "trace": traceback.format_exc(limit=8)[-2000:]}


def mark_task(job: dict) -> dict:
    """Overlay sheet marks on a verified PDF (``appliance.marks.overlay.mark_pdf``) under the limits."""
    from appliance.marks.overlay import mark_pdf
    from appliance.marks.zones import ClearZone

    _cpu_budget(job["cpu_seconds"])
    try:
        mark_pdf(Path(job["src"]), Path(job["dest"]), letter_id=job["letter_id"], run=job["run"],
                 zone=ClearZone(**job["zone"]), duplex=job["duplex"])
        return {"ok": True}
    except MemoryError:
        return {"ok": False, "detail": f"marking needed more than {job['memory_mb']} MB of memory"}
    except Exception as e:
        return {"ok": False, "detail": (str(e) or type(e).__name__).splitlines()[0][:200]}
