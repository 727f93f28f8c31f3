"""The Prometheus endpoint (issue 16 item 6), scraped while a real ``appliance demo`` runs in
its own process: the counters move, and at the end they match the demo's own summary."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from appliance.config.settings import load_config
from appliance.core.errors import ConfigError
from tests.fixtures import ROOT


def scrape(url: str) -> dict[tuple[str, tuple], float]:
    with urllib.request.urlopen(url, timeout=10) as resp:
        text = resp.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def total(m: dict, name: str, **labels) -> float:
    want = set(labels.items())
    return sum(v for (n, lab), v in m.items() if n == name and want <= set(lab))


def test_scraped_during_a_demo_the_counters_move_and_end_at_the_demo_summary(tmp_path):
    summary = tmp_path / "s.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "appliance", "demo", "--letters", "40", "--metrics", "127.0.0.1:0", "--hold",
         "--socket", str(tmp_path / "ctl.sock"), "--summary-json", str(summary), "--timeout", "120"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stderr.readline, "")), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 60
        url = None
        while url is None:
            assert time.monotonic() < deadline and proc.poll() is None, "".join(lines)
            found = [m for line in list(lines) if (m := re.search(r"metrics at (http://\S+/metrics)", line))]
            url = found[0].group(1) if found else None
            time.sleep(0.05)
        scrapes = []
        deadline = time.monotonic() + 120
        while not any("all letters final; holding" in line for line in list(lines)):
            assert time.monotonic() < deadline and proc.poll() is None, "".join(lines)
            scrapes.append(scrape(url))
            time.sleep(0.2)
        last = scrape(url)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, "".join(lines)
    s = json.loads(summary.read_text())
    assert s["letters_finished"] == 40

    assert all(m[("appliance_up", ())] == 1 for m in scrapes + [last])
    taken = [total(m, "appliance_letters_in_total") for m in scrapes]
    done = [total(m, "appliance_letters_out_total") for m in scrapes]
    assert taken == sorted(taken) and done == sorted(done)  # counters never go back
    assert any(0 < d < 40 for d in done) or len(set(done)) > 1, done  # seen moving, not only at the end

    # the end: the same figures the demo's summary reports
    assert total(last, "appliance_letters_in_total") == 40
    assert total(last, "appliance_letters_out_total") == s["letters_finished"]
    for status, n in s["final_statuses"].items():
        assert total(last, "appliance_letters", status=status) == n
        assert total(last, "appliance_letters_out_total", status=status) == n
    for kind in ("data", "post_letters", "read_back"):  # the poll goes on while holding: not "list"
        assert total(last, "appliance_api_calls_total", kind=kind) == s["api_calls"][kind]
    assert total(last, "appliance_outbox_depth") == 0 and total(last, "appliance_outbox_updates") == 0
    states = {dict(lab)["device"] for (n, lab), v in last.items() if n == "appliance_device_state" and v == 1}
    assert {"fm200", "lf3000", "mono-duplex"} <= states
    assert ("appliance_api_throttled_total", ()) in last and total(last, "appliance_api_limiter_rate") > 0
    assert ("appliance_intake_worker_restarts_total", ()) in last
    assert {dict(lab)["severity"] for (n, lab) in last if n == "appliance_alerts_open"} == {
        "critical", "warning", "info"}


def test_metrics_listen_is_off_by_default_and_a_bad_address_is_one_line(tmp_path):
    base = '[api]\nbase_url = "http://127.0.0.1:1"\nauth = "none"\n[paths]\nprofile = "p.toml"\n'
    cfg = tmp_path / "appliance.toml"
    cfg.write_text(base)
    assert load_config(cfg).metrics.listen == ""
    cfg.write_text(base + '[metrics]\nlisten = "127.0.0.1:9464"\n')
    assert load_config(cfg).metrics.listen == "127.0.0.1:9464"
    cfg.write_text(base + '[metrics]\nlisten = "9464"\n')
    with pytest.raises(ConfigError, match=r"\[metrics\] listen: '9464' is not HOST:PORT"):
        load_config(cfg)
