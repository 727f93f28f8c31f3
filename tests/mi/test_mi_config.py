"""The profile's [mi] and [failure_reasons] tables: good values load, mistakes are one line."""

from datetime import time

import pytest

from appliance.config.profile import load_profile
from appliance.core.errors import ConfigError
from appliance.runtime.demo import demo_profile_path

BASE = demo_profile_path().read_text()


def write(tmp_path, extra: str):
    path = tmp_path / "floor.toml"
    path.write_text(BASE + "\n" + extra)
    return path


def test_mi_and_failure_reasons_load(tmp_path):
    p = load_profile(write(tmp_path, """
[mi]
timezone = "UTC"
submit_at = "05:30"
sheets = "sheets-a4"
[mi.envelopes]
"economy-c5" = "envelope-c5"
[mi.postage]
economy = "postage-2nd"
[mi.inserts]
CSP14 = "insert-csp14"
[mi.stock]
"envelope-c5" = 2000
"sheets-a4" = { level = 9000, as_of = "2025-01-06T07:00:00Z" }
[failure_reasons]
DAMAGED = "Damaged in finishing"
"""))
    mi = p.mi
    assert mi.submit_at == time(5, 30) and mi.timezone == "UTC"
    assert mi.line_item("sheets", "paper-std-white-80") == ("sheets-a4", True)
    assert mi.line_item("envelope", "economy-c5") == ("envelope-c5", True)
    assert mi.line_item("envelope", "first-c5") == ("envelope-first-c5", False)
    assert mi.line_item("postage", "economy") == ("postage-2nd", True)
    assert mi.line_item("insert", "CSP14") == ("insert-csp14", True)
    assert mi.stock["envelope-c5"].level == 2000 and mi.stock["envelope-c5"].as_of is None
    assert mi.stock["sheets-a4"].as_of == 1736146800.0
    assert p.failure_reasons == {"DAMAGED": "Damaged in finishing"}


def test_without_tables_defaults(tmp_path):
    p = load_profile(write(tmp_path, ""))
    assert p.mi.submit_at is None and p.mi.timezone == "Europe/London" and p.failure_reasons == {}
    assert p.mi.line_item("sheets", "paper-braille") == ("sheets-paper-braille", False)


@pytest.mark.parametrize("extra, expect", [
    ('[mi]\ntimezone = "Mars/Olympus"', r"\[mi\] timezone: unknown time zone 'Mars/Olympus'"),
    ('[mi]\nsubmit_at = "25:00"', r"\[mi\] submit_at: must be a time of day \"HH:MM\""),
    ('[mi]\nsubmit_at = 6', r"\[mi\] submit_at"),
    ('[mi]\nsheet = "x"', r"\[mi\] sheet: unknown key; expected one of"),
    ('[mi]\nsheets = "has space"', r"\[mi\] sheets: line item must be a short name"),
    ('[mi]\nenvelopes = "x"', r"\[mi envelopes: must be a table"),
    ('[mi.postage]\neconomy = 3', r"postage\] 'economy': line item must be a short name"),
    ('[mi.stock]\n"x" = -1', r"stock\] 'x': stock level must be a whole number 0 or more"),
    ('[mi.stock]\n"x" = { level = 5, when = 1 }', r"stock\] 'x': write \{ level = N"),
    ('[mi.stock]\n"x" = { level = 5, as_of = "yesterday" }', r"as_of: must be a date-time with a zone"),
    ('[mi]\nallow_default_names = "yes"', r"allow_default_names: expected true or false"),
    ('[failure_reasons]\n"bad code!" = "x"', r"\[failure_reasons\] 'bad code!': a code is"),
    ('[failure_reasons]\nLOST = ""', r"\[failure_reasons\] LOST: the text must be 1-200 characters"),
    ('[failure]\nLOST = "x"', r"unknown section 'failure'.*\[failure_reasons\]"),
])
def test_mistakes_are_one_line_naming_file_and_key(tmp_path, extra, expect):
    with pytest.raises(ConfigError, match=expect) as e:
        load_profile(write(tmp_path, extra))
    assert "\n" not in str(e.value) and "floor.toml" in str(e.value)
