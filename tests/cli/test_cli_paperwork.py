"""The command line's paperwork: --version, one --config default, a description for every
sub-command, a closed pipe and a wrong --log-level without a traceback."""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

import pytest

from appliance.cli.main import build_parser, main
from appliance.config.settings import DEFAULT_CONFIG_PATH
from appliance.sandbox import SandboxOptions, run_in_thread
from appliance.sandbox.model import DOCUMENT_ONLY

ROOT = Path(__file__).resolve().parents[2]


def cli(*argv, **kw):
    return subprocess.run([sys.executable, "-m", "appliance", *argv], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT), **kw.pop("env", {})}, **kw)


def commands(parser, path=("appliance",)):
    """(path, parser, help) for every sub-command and sub-sub-command."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                yield (*path, name), sub, helps.get(name)
                yield from commands(sub, (*path, name))


def test_every_command_has_a_help_line_and_a_description():
    found = list(commands(build_parser()))
    assert len(found) > 30
    missing = [" ".join(p) for p, sub, help_ in found if not (help_ and sub.description)]
    assert not missing, f"no help= or description: {missing}"


def test_every_config_option_has_the_same_default(monkeypatch):
    helps = {" ".join(p): a.help for p, sub, _ in commands(build_parser())
             for a in sub._actions if "--config" in a.option_strings}
    assert {"appliance run", "appliance doctor", "appliance api", "appliance mi submit", "appliance returns",
            "appliance printers", "appliance devices"} <= set(helps)
    for where, text in helps.items():
        assert f"$APPLIANCE_CONFIG, else {DEFAULT_CONFIG_PATH}" in text, where


def test_the_config_default_is_read_from_the_environment(tmp_path):
    wanted = tmp_path / "from-env.toml"
    for argv in (["doctor"], ["api", "status"], ["printers"], ["run"]):
        proc = cli(*argv, env={"APPLIANCE_CONFIG": str(wanted)})
        assert proc.returncode == 2 and f"{wanted}: configuration file not found" in proc.stderr, argv
        assert proc.stderr.count("\n") == 1


def test_version_comes_from_the_package_metadata(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out.strip() == f"appliance {importlib.metadata.version('nhs-notify-appliance')}"


def test_mi_help_points_at_nothing_missing():
    out = cli("mi", "--help").stdout
    assert "docs/" not in out and "README" in out


def test_a_wrong_log_level_is_an_argparse_error():
    proc = cli("run", "--log-level", "verbose")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    (line,) = [x for x in proc.stderr.splitlines() if "error:" in x]
    assert "invalid choice: 'verbose'" in line and "'debug', 'info', 'warning', 'error'" in line


def closed_stdout(*argv):
    """Run the CLI with nobody reading its output (as ``| head`` once it has its line)."""
    r, w = os.pipe()
    os.close(r)
    try:
        proc = subprocess.run([sys.executable, "-m", "appliance", *argv], stdout=w, stderr=subprocess.PIPE,
                              text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})
    finally:
        os.close(w)
    return proc


def test_a_closed_pipe_is_no_traceback():
    with run_in_thread(SandboxOptions(**DOCUMENT_ONLY, letters=40, seed=3, bad_ratio=0)) as sb:
        for argv in (["--help"], ["api", "--base-url", sb.base_url, "letters"]):
            proc = closed_stdout(*argv)
            assert "BrokenPipeError" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
            assert proc.stderr == "", argv
        assert proc.returncode == 141  # as a program ended by SIGPIPE
