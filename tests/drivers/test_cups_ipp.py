"""Pure CUPS/IPP mappings: no print server needed."""

import dataclasses

import pytest

from appliance.core.errors import ConfigError
from appliance.core.packs import load_packs
from drivers.cups.ipp import (
    PrinterFacts,
    alert_worthy,
    blocking,
    device_state,
    ipp_options,
    job_event,
    reasons_of,
    split_reason,
)
from drivers.cups.session import split_server

PACKS = load_packs()


def test_options_follow_the_pack():
    colour = PACKS["notify-c5-colour"]
    assert ipp_options(colour) == {"sides": "two-sided-long-edge", "print-color-mode": "color",
                                   "media": "iso_a4_210x297mm"}
    simplex = dataclasses.replace(PACKS["notify-c5"], duplex=False)
    assert ipp_options(simplex)["sides"] == "one-sided"
    assert ipp_options(simplex)["print-color-mode"] == "monochrome"


@pytest.mark.parametrize("state,reasons,kind", [
    (3, ("none",), "job.queued"),
    (4, ("job-hold-until-specified",), "job.held"),
    (5, ("job-printing",), "job.processing"),
    (6, ("job-stopped",), "job.stopped"),
    (7, ("job-canceled-by-user",), "job.canceled"),
    (8, ("aborted-by-system",), "job.aborted"),
    (9, ("job-completed-successfully",), "job.completed"),
    (9, ("processing-to-stop-point",), "job.completed"),
    (9, ("job-completed-with-errors",), "job.aborted"),  # never PRINTED
    (9, ("job-completed-successfully", "document-format-error"), "job.aborted"),
    (2, (), None),
])
def test_job_states_map_to_driver_events(state, reasons, kind):
    assert job_event(state, reasons) == kind


def test_reasons_arrive_as_string_or_list():
    assert reasons_of("job-printing") == ("job-printing",)
    assert reasons_of(["a", "b"]) == ("a", "b")
    assert reasons_of(None) == ()


def test_printer_reasons_severity_blocking_and_alerts():
    assert split_reason("media-empty-error") == ("media-empty", "error")
    assert split_reason("toner-low-report") == ("toner-low", "report")
    assert split_reason("media-jam") == ("media-jam", "error")
    reasons = ("media-jam", "toner-low-report", "none", "connecting-to-device", "cups-waiting-for-job-completed")
    assert blocking(reasons) == ["media-jam"]
    assert alert_worthy(reasons) == ["media-jam", "toner-low-report"]
    assert blocking(("media-empty-warning",)) == []


@pytest.mark.parametrize("kw,facts,state", [
    ({"reachable": False}, PrinterFacts(3), "offline"),
    ({"exists": False}, PrinterFacts(3), "offline"),
    ({"paused": True}, PrinterFacts(3), "paused"),
    ({}, PrinterFacts(5, ("paused",)), "stopped"),
    ({}, PrinterFacts(3, accepting=False), "stopped"),
    ({}, PrinterFacts(3, ("media-empty-error",)), "stopped"),
    ({}, PrinterFacts(3, ("offline-report",)), "offline"),
    ({"stalled": True}, PrinterFacts(4), "stopped"),
    ({}, PrinterFacts(3, ("toner-low-report",)), "idle"),
    ({"busy": True}, PrinterFacts(4), "busy"),
])
def test_device_state(kw, facts, state):
    args = {"reachable": True, "exists": True, "paused": False, "stalled": False, "busy": False, **kw}
    assert device_state(facts=facts, **args)[0] == state


def test_server_setting():
    assert split_server("") == ("", 0)
    assert split_server("127.0.0.1:6310") == ("127.0.0.1", 6310)
    assert split_server("cups.floor") == ("cups.floor", 0)
    assert split_server("/run/cups/cups.sock") == ("/run/cups/cups.sock", 0)


def test_bad_policy_is_a_one_line_config_error(tmp_path):
    from drivers.cups.printer import CupsPrinter

    with pytest.raises(ConfigError, match="on_stall: must be one of wait, reroute"):
        CupsPrinter("p", {"on_stall": "explode"}, lambda e: None, state_dir=tmp_path)


def test_restart_matching_by_job_name():
    from drivers.cups.match import NamesHidden, match_jobs

    def job(name, state, reasons="none", queue="press"):
        return {"job-name": name, "job-state": state, "job-state-reasons": reasons,
                "job-printer-uri": f"ipp://localhost:631/printers/{queue}"}

    jobs = {1: job("a", 8, "aborted-by-system"), 2: job("a", 9, "job-completed-successfully"),
            3: job("b", 7, "job-canceled-by-user"), 4: job("b", 5, "job-printing"),
            5: job("c", 9, "job-completed-with-errors"), 6: job("d", 9, queue="other")}
    found, active = match_jobs(jobs, "press", ["a", "b", "c", "d"])
    assert found == {"a": "job.completed", "b": "job.processing", "c": "job.aborted", "d": "absent"}
    assert [(s.job_id, s.letter_id) for s in active] == [(4, "b")]
    with pytest.raises(NamesHidden):
        match_jobs({7: {"job-state": 9, "job-printer-uri": "ipp://x/printers/press"}}, "press", ["a"])
