"""Intake workers run at a lower CPU priority than the daemon (``[intake] nice``): their PDF
work is batch work and must not take the CPU from the event loop and the console."""

from __future__ import annotations

import asyncio
import os
from dataclasses import asdict

import pytest

from appliance.config.settings import load_config
from appliance.core.errors import ConfigError
from appliance.intake.coverage import CoverageLimits
from appliance.intake.pdfcheck import CheckLimits
from appliance.intake.pool import IntakePool
from appliance.intake.settings import IntakeSettings
from appliance.intake.worker import check_task


def _worker_niceness(tmp_path, nice: int) -> set[int]:
    """Niceness of the live workers of a pool started with ``nice``, after one real task."""
    pool = IntakePool(IntakeSettings(workers=1, fetchers=1, memory_mb=384, nice=nice))
    pool.start()
    try:
        job = {"path": str(tmp_path / "gone.pdf"), "cpu_seconds": 5, "memory_mb": 384,
               "check": asdict(CheckLimits()), "coverage": asdict(CoverageLimits())}
        asyncio.run(pool.run(check_task, job))  # the worker has run its initializer
        pids = pool.worker_pids()
        assert pids
        return {os.getpriority(os.PRIO_PROCESS, pid) for pid in pids}
    finally:
        pool.stop()


def test_workers_run_nicer_than_the_daemon_by_the_setting(tmp_path):
    own = os.getpriority(os.PRIO_PROCESS, 0)
    assert _worker_niceness(tmp_path, 7) == {min(19, own + 7)}


def test_nice_zero_leaves_the_workers_at_the_daemons_priority(tmp_path):
    assert _worker_niceness(tmp_path, 0) == {os.getpriority(os.PRIO_PROCESS, 0)}


def test_the_setting_defaults_to_ten_and_refuses_what_the_kernel_has_not(tmp_path):
    base = '[api]\nbase_url = "http://127.0.0.1:9000"\nauth = "none"\n[paths]\nprofile = "p.toml"\n[intake]\n'
    (tmp_path / "a.toml").write_text(base)
    assert load_config(tmp_path / "a.toml").intake.nice == IntakeSettings().nice == 10
    (tmp_path / "b.toml").write_text(base + "nice = 3\n")
    assert load_config(tmp_path / "b.toml").intake.nice == 3
    (tmp_path / "c.toml").write_text(base + "nice = 20\n")
    with pytest.raises(ConfigError, match=r"\[intake\] nice: must be 0 to 19"):
        load_config(tmp_path / "c.toml")
