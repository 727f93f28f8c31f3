"""Log lines (``appliance.runtime.logs``): human lines with time, level, device and letter;
journald fields over a real unix datagram socket standing in for the journal; pre-signed
URLs never whole; httpx's request lines only at debug."""

from __future__ import annotations

import logging
import os
import re
import socket
import struct
import sys

import httpx
import pytest

from appliance.runtime.logs import setup_logging
from appliance.sandbox import SandboxOptions, run_in_thread
from appliance.sandbox.model import DOCUMENT_ONLY

log = logging.getLogger("appliance.test")
SIGNED = ("https://bucket.s3.eu-west-2.amazonaws.com/letters/L1.pdf?X-Amz-Algorithm=AWS4-HMAC-SHA256"
          "&X-Amz-Credential=AKIAEXAMPLE%2F20261203&X-Amz-Signature=0123456789abcdef0123456789abcdef")


@pytest.fixture
def logging_reset():
    root = logging.getLogger()
    level = root.level
    handlers = []
    yield handlers
    for h in handlers:
        root.removeHandler(h)
        h.close()
    root.setLevel(level)
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.NOTSET)


def stderr_stream() -> str:
    st = os.fstat(sys.stderr.fileno())
    return f"{st.st_dev}:{st.st_ino}"


def decode_journal(data: bytes) -> dict[str, str]:
    """journald's native datagram format back into fields."""
    fields, i = {}, 0
    while i < len(data):
        nl = data.index(b"\n", i)
        line = data[i:nl]
        if b"=" in line:
            key, _, value = line.partition(b"=")
            fields[key.decode()] = value.decode()
            i = nl + 1
        else:
            (size,) = struct.unpack("<Q", data[nl + 1:nl + 9])
            fields[line.decode()] = data[nl + 9:nl + 9 + size].decode()
            i = nl + 9 + size + 1
    return fields


def test_human_lines_have_time_level_device_and_letter(logging_reset, capfd):
    logging_reset.append(setup_logging("info", env={}))
    log.warning("inserter jammed", extra={"device": "fm200", "letter_id": "L-42"})
    log.info("plain line")
    log.debug("not shown at info")
    err = capfd.readouterr().err.splitlines()
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d WARNING appliance.test: "
                        r"\[device fm200, letter L-42\] inserter jammed", err[0]), err
    assert err[1].endswith("INFO appliance.test: plain line") and len(err) == 2


def test_journal_fields_over_the_native_protocol(logging_reset, tmp_path, capfd):
    path = str(tmp_path / "journal.sock")
    journal = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    journal.bind(path)
    journal.settimeout(5)
    try:
        logging_reset.append(setup_logging("info", env={"JOURNAL_STREAM": stderr_stream()}, socket_path=path))
        log.warning("letter printed", extra={"letter_id": "L-7", "device": "press-mono", "status": "PRINTED"})
        try:
            raise ValueError(f"download failed for {SIGNED}")
        except ValueError:
            log.exception("intake stopped")
        first = decode_journal(journal.recv(65536))
        second = decode_journal(journal.recv(65536))
    finally:
        journal.close()
    assert first["MESSAGE"] == "letter printed" and first["PRIORITY"] == "4"
    assert (first["LETTER_ID"], first["DEVICE"], first["STATUS"]) == ("L-7", "press-mono", "PRINTED")
    assert first["CODE_FILE"] == __file__ and first["CODE_FUNC"] == "test_journal_fields_over_the_native_protocol"
    assert first["SYSLOG_IDENTIFIER"] == "appliance" and first["LOGGER"] == "appliance.test"
    assert second["PRIORITY"] == "3" and "Traceback" in second["MESSAGE"]  # multi-line: length-prefixed
    assert "X-Amz-Signature" not in second["MESSAGE"] and "/letters/L1.pdf?<query removed>" in second["MESSAGE"]
    assert capfd.readouterr().err == ""  # all of it went to the journal

    os.unlink(path)  # journald went away: the line still reaches stderr
    log.error("after the journal", extra={"letter_id": "L-8"})
    assert "ERROR appliance.test: [letter L-8] after the journal" in capfd.readouterr().err


def test_journal_only_when_journal_stream_is_our_stderr(logging_reset, tmp_path, capfd):
    path = tmp_path / "journal.sock"
    journal = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    journal.bind(str(path))
    try:
        logging_reset.append(setup_logging("info", env={"JOURNAL_STREAM": "1:2"}, socket_path=str(path)))
        log.info("to stderr")
    finally:
        journal.close()
    assert "INFO appliance.test: to stderr" in capfd.readouterr().err


def test_a_presigned_url_is_never_logged_whole(logging_reset, capfd):
    logging_reset.append(setup_logging("debug", env={}))
    log.info("fetching %s", SIGNED)
    log.info(f"redirected to {SIGNED} then http://other.example/x?Signature=abc&Expires=1")
    try:
        raise httpx.HTTPStatusError(f"Client error '403 Forbidden' for url '{SIGNED}'", request=None,
                                    response=None)
    except httpx.HTTPStatusError:
        log.exception("fetch failed")
    err = capfd.readouterr().err
    for secret in ("X-Amz-Signature", "0123456789abcdef", "X-Amz-Credential", "AKIAEXAMPLE", "Signature=abc"):
        assert secret not in err, secret
    assert err.count("amazonaws.com/letters/L1.pdf?<query removed>") == 3
    assert "http://other.example/x?<query removed>" in err


def test_info_does_not_log_every_http_request(logging_reset, capfd):
    with run_in_thread(SandboxOptions(**DOCUMENT_ONLY, letters=1, seed=2)) as sb:
        logging_reset.append(setup_logging("info", env={}))
        httpx.get(sb.base_url + "/_status")
        assert "HTTP Request" not in capfd.readouterr().err
        logging_reset.append(setup_logging("debug", env={}))
        httpx.get(sb.base_url + "/_status")
        assert "HTTP Request: GET" in capfd.readouterr().err


def test_an_alert_is_logged_with_its_letter_and_device_as_fields(caplog):
    """The pipeline's alerts carry letter and device as record fields (journald's
    LETTER_ID/DEVICE under systemd), logged once per cause, not once per repeat."""
    from appliance.core.alerts import Alerts
    from appliance.pipeline.alerting import Alerting

    class Floor(Alerting):
        specs = {"fm200": object()}
        alerts = Alerts()

        def publish(self, *a):
            pass

    floor = Floor()
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            floor.alert("fm200", "out of ink", "L-9")
    (rec,) = [r for r in caplog.records if "out of ink" in r.getMessage()]
    assert (rec.letter_id, rec.device) == ("L-9", "fm200")
