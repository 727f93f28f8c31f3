"""Pure IPP knowledge for the CUPS driver: pack -> job options, job/printer states -> events.

No pycups and no I/O here, so every mapping is testable without a print server.
"""

from __future__ import annotations

from dataclasses import dataclass

from appliance.core.packs import Pack

#: Pack paper sizes -> IPP ``media`` keywords (PWG 5101.1 self-describing names).
MEDIA = {
    "A3": "iso_a3_297x420mm",
    "A4": "iso_a4_210x297mm",
    "A5": "iso_a5_148x210mm",
    "LETTER": "na_letter_8.5x11in",
    "LEGAL": "na_legal_8.5x14in",
}

# IPP job-state enum (RFC 8011 5.3.7)
PENDING, HELD, PROCESSING, STOPPED, CANCELED, ABORTED, COMPLETED = 3, 4, 5, 6, 7, 8, 9
FINAL_STATES = frozenset({CANCELED, ABORTED, COMPLETED})
STATE_NAMES = {PENDING: "pending", HELD: "pending-held", PROCESSING: "processing",
               STOPPED: "processing-stopped", CANCELED: "canceled", ABORTED: "aborted",
               COMPLETED: "completed"}
_STATE_EVENT = {PENDING: "job.queued", HELD: "job.held", PROCESSING: "job.processing",
                STOPPED: "job.stopped", CANCELED: "job.canceled", ABORTED: "job.aborted"}

#: A ``completed`` job carrying one of these reasons did not print cleanly: never PRINTED.
FAILED_COMPLETION = frozenset({
    "job-completed-with-errors", "aborted-by-system", "job-aborted-by-system",
    "job-canceled-by-user", "job-canceled-by-operator", "job-canceled-at-device",
    "job-canceled-after-timeout", "document-format-error", "document-unprintable-error",
    "document-access-error", "unsupported-document-format", "unsupported-compression",
    "compression-error", "job-data-insufficient", "job-password-wait",
})

# Printer states (RFC 8011 5.4.11)
PRINTER_IDLE, PRINTER_PROCESSING, PRINTER_STOPPED = 3, 4, 5

#: Printer-state-reasons (without severity suffix) that mean the device cannot print now.
BLOCKING_REASONS = frozenset({
    "media-empty", "media-jam", "media-needed", "door-open", "cover-open", "interlock-open",
    "input-tray-missing", "output-area-full", "output-tray-missing", "toner-empty",
    "marker-supply-empty", "spool-area-full", "shutdown", "stopped", "offline",
})
#: Reasons a person must see even when they only warn (e.g. ``toner-low-report``).
NOTABLE_REASONS = BLOCKING_REASONS | frozenset({
    "media-low", "toner-low", "marker-supply-low", "marker-waste-almost-full",
    "marker-waste-full", "developer-low", "opc-near-eol", "paused",
})
#: Routine CUPS chatter: never an alert.
QUIET_REASONS = frozenset({"none", "connecting-to-device", "cups-waiting-for-job-completed",
                           "moving-to-paused", "other"})
_SUFFIXES = ("-error", "-warning", "-report")


def ipp_options(pack: Pack) -> dict[str, str]:
    """Job template attributes for one letter of this pack (strings, as pycups wants)."""
    opts = {
        "sides": "two-sided-long-edge" if pack.duplex else "one-sided",
        "print-color-mode": "color" if pack.colour else "monochrome",
    }
    media = MEDIA.get(pack.paper_size.upper())
    if media:
        opts["media"] = media
    return opts


def reasons_of(value) -> tuple[str, ...]:
    """``job-state-reasons`` / ``printer-state-reasons`` arrive as a str for one value,
    a list for several, or not at all."""
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(str(v) for v in value)


def split_reason(reason: str) -> tuple[str, str]:
    """``media-empty-error`` -> (``media-empty``, ``error``); no suffix means error."""
    for suffix in _SUFFIXES:
        if reason.endswith(suffix):
            return reason[: -len(suffix)], suffix[1:]
    return reason, "error"


def completed_ok(reasons: tuple[str, ...]) -> bool:
    return not (set(reasons) & FAILED_COMPLETION)


def job_event(state: int, reasons: tuple[str, ...]) -> str | None:
    """Driver event kind for a job in this IPP state (None for an unknown state)."""
    if state == COMPLETED:
        return "job.completed" if completed_ok(reasons) else "job.aborted"
    return _STATE_EVENT.get(state)


def describe_job(state: int, reasons: tuple[str, ...]) -> str:
    shown = [r for r in reasons if r != "none"]
    return STATE_NAMES.get(state, f"state {state}") + (f" ({', '.join(shown)})" if shown else "")


def blocking(reasons: tuple[str, ...]) -> list[str]:
    """Reasons that stop the device printing (error severity, a known blocking kind)."""
    out = []
    for r in reasons:
        base, severity = split_reason(r)
        if severity == "error" and base in BLOCKING_REASONS:
            out.append(r)
    return out


def alert_worthy(reasons: tuple[str, ...]) -> list[str]:
    """Reasons a person must see: anything at error/warning severity, plus known supply
    and media reports; routine CUPS chatter is left out."""
    out = []
    for r in reasons:
        base, severity = split_reason(r)
        if r in QUIET_REASONS or base in QUIET_REASONS:
            continue
        if base in NOTABLE_REASONS or severity in ("error", "warning"):
            if base.startswith("cups-") and severity == "report":
                continue
            out.append(r)
    return out


@dataclass(frozen=True)
class PrinterFacts:
    """What CUPS last said about a queue (None fields: not known yet)."""

    state: int | None = None
    reasons: tuple[str, ...] = ()
    accepting: bool = True
    message: str = ""


def device_state(*, reachable: bool, exists: bool, paused: bool, stalled: bool, busy: bool,
                 facts: PrinterFacts) -> tuple[str, str]:
    """(state, detail) for ``device.state``: idle | busy | paused | stopped | offline."""
    if not reachable:
        return "offline", "CUPS does not answer"
    if not exists:
        return "offline", "queue not found"
    if paused:
        return "paused", "paused by the appliance"
    offline = [r for r in facts.reasons if split_reason(r)[0] == "offline"]
    if offline:
        return "offline", ", ".join(offline)
    if facts.state == PRINTER_STOPPED:
        return "stopped", facts.message or "queue stopped (cupsenable to start it)"
    if not facts.accepting:
        return "stopped", "queue rejects jobs (cupsaccept to accept)"
    blocked = blocking(facts.reasons)
    if blocked:
        return "stopped", ", ".join(blocked)
    if stalled:
        return "stopped", "a job made no progress (device not answering?)"
    return ("busy" if busy else "idle"), ""
