"""Every configuration mistake is one line naming the file, the key and the fix."""

from pathlib import Path

import pytest

from appliance.config.profile import load_profile
from appliance.config.settings import load_config
from appliance.core.errors import ConfigError
from tests.fixtures import ROOT

GOOD = """
[api]
base_url = "http://127.0.0.1:9000"
auth = "none"
[paths]
state_dir = "state"
profile = "floor.toml"
"""

JWT = """
[api]
base_url = "https://int.api.service.nhs.uk/nhs-notify-supplier"
api_key = "key"
private_key = "key.pem"
kid = "kid-1"
token_url = "https://int.api.service.nhs.uk/oauth2/token"
[paths]
profile = "floor.toml"
"""


def write(tmp_path: Path, text: str, name="appliance.toml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_good_config_defaults_and_relative_paths(tmp_path):
    cfg = load_config(write(tmp_path, GOOD))
    assert cfg.api.base_url == "http://127.0.0.1:9000"
    assert cfg.api.auth == "none"
    assert cfg.limit == 2500 and cfg.batch_size == 500 and cfg.api.rate_limit == 300.0
    assert cfg.stale_after_hours == 24.0
    assert cfg.state_dir == (tmp_path / "state").resolve()
    assert cfg.spool_dir == cfg.state_dir / "spool"
    assert cfg.profile == (tmp_path / "floor.toml").resolve()


def test_jwt_config(tmp_path):
    cfg = load_config(write(tmp_path, JWT))
    assert cfg.api.auth == "jwt" and cfg.api.kid == "kid-1"
    assert cfg.api.private_key == (tmp_path / "key.pem").resolve()


@pytest.mark.parametrize(
    "text, expect",
    [
        (GOOD.replace('auth = "none"', 'auth = "none"\ncolour = 1'), r"\[api\] colour: unknown key"),
        (GOOD + "[poll]\ninterval = \"soon\"\n", r"\[poll\] interval: expected a number"),
        (GOOD + "[poll]\nlimit = 2501\n", r"\[poll\] limit: must be between 1 and 2500"),
        (GOOD + "[poll]\nlimit = 0\n", r"\[poll\] limit: must be between 1 and 2500"),
        (GOOD + "[poll]\nlimit = true\n", r"\[poll\] limit: expected a whole number"),
        (GOOD.replace("http://127.0.0.1:9000", "ftp://x"), r"\[api\] base_url: must be an http\(s\) URL"),
        (GOOD.replace("http://127.0.0.1:9000", "not a url"), r"base_url: must be an http\(s\) URL"),
        (GOOD.replace('base_url = "http://127.0.0.1:9000"\n', ""), r"\[api\] base_url: missing"),
        (GOOD.replace('profile = "floor.toml"\n', ""), r"\[paths\] profile: missing"),
        (GOOD + "[printers]\nx = 1\n", r"unknown section \[printers\]"),
        (GOOD + "[outbox]\nbatch_size = 0\n", r"\[outbox\] batch_size: must be between"),
        (GOOD.replace('auth = "none"', 'auth = "basic"'), r'\[api\] auth: must be "jwt" or "none"'),
        (GOOD.replace('auth = "none"', 'auth = "none"\nrate_limit = -1'), r"rate_limit: must be greater than 0"),
        (JWT.replace('kid = "kid-1"\n', ""), r"\[api\] kid: required when auth = \"jwt\""),
        (JWT.replace('api_key = "key"\n', ""), r"\[api\] api_key: required"),
        (JWT.replace("https://int.api.service.nhs.uk/oauth2/token", "token"), r"token_url: must be an http"),
        ("poll = 3\n" + GOOD, r"poll must be a \[poll\] table"),
        ("[api\nbase_url=1", r"not valid TOML"),
        (
            JWT.replace("https://int.api.service.nhs.uk/nhs-notify-supplier",
                        "https://api.service.nhs.uk/nhs-notify-supplier").replace(
                "[paths]", "[paths]").replace('kid = "kid-1"', 'kid = "kid-1"\nverify_tls = false'),
            r"verify_tls: may not be false against production",
        ),
    ],
)
def test_config_errors_are_one_line(tmp_path, text, expect):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=expect) as e:
        load_config(path)
    msg = str(e.value)
    assert "\n" not in msg
    assert str(path) in msg


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="configuration file not found; create it") as e:
        load_config(tmp_path / "nope.toml")
    assert "nope.toml" in str(e.value)


# --- hardware profiles -----------------------------------------------------------------

PROFILE = """
[profile]
name = "floor"
[[printer]]
name = "p1"
driver = "file"
duplex = true
[[inserter]]
name = "i1"
driver = "sim"
[[franker]]
name = "f1"
driver = "sim"
"""


def test_demo_profile_loads():
    p = load_profile(ROOT / "hardware-profiles" / "demo.toml")
    names = [d.name for d in p.printers]
    assert "braille-embosser" in names and p.inserters and p.frankers
    assert any("BRAILLE" in d.caps.features for d in p.printers)


def test_profile_defaults(tmp_path):
    p = load_profile(write(tmp_path, PROFILE, "floor.toml"))
    assert p.printers[0].caps.duplex and not p.printers[0].caps.colour
    assert p.printers[0].settings["job_seconds"] == 0.05
    assert p.on_no_printer == "hold"


@pytest.mark.parametrize(
    "text, expect",
    [
        (PROFILE.replace('driver = "file"', 'driver = "laser"'), r"unknown printer driver 'laser'; use one of cups, file"),
        (PROFILE.replace('duplex = true', 'duplex = "yes"'), r"'p1' duplex: expected true or false"),
        (PROFILE.replace('duplex = true', 'toner = 3'), r"'p1' toner: unknown key for a file printer"),
        (PROFILE.replace('name = "i1"', 'name = "p1"'), r"duplicate device name"),
        (PROFILE.replace('[[printer]]\nname = "p1"\n', '[[printer]]\n'), r"\[\[printer\]\] #1 name: missing"),
        (PROFILE + '[events]\n"job.completed" = "SHIPPED"\n', r"\[events\] job.completed: 'SHIPPED' is not a status"),
        (PROFILE + '[events]\n"job.exploded" = "FAILED"\n', r"\[events\] job.exploded: unknown device event"),
        (PROFILE.replace('name = "floor"', 'name = "floor"\non_no_printer = "drop"'), r"on_no_printer: must be"),
        (PROFILE.replace('name = "floor"', 'name = "floor"\nspeed = 3'), r"\[profile\] speed: unknown key"),
        (PROFILE + "[cutter]\nx=1\n", r"unknown section 'cutter'"),
        ('[profile]\nname = "x"\n', r"no printers; add at least one \[\[printer\]\]"),
        ('[printer]\nname = "x"\n', r"write \[\[printer\]\] \(an array of tables\)"),
        (PROFILE.replace('duplex = true', 'features = "BRAILLE"'), r"features: expected a list"),
        (PROFILE.replace('duplex = true', 'job_seconds = "fast"'), r"job_seconds: expected a number"),
    ],
)
def test_profile_errors_are_one_line(tmp_path, text, expect):
    path = write(tmp_path, text, "floor.toml")
    with pytest.raises(ConfigError, match=expect) as e:
        load_profile(path)
    assert "\n" not in str(e.value) and str(path) in str(e.value)


def test_missing_profile(tmp_path):
    with pytest.raises(ConfigError, match="hardware profile not found"):
        load_profile(tmp_path / "floor.toml")
