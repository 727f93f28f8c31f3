"""The profile's [service] table (appliance.config.service): defaults, and one line per mistake."""

from datetime import date, time

import pytest

from appliance.config.profile import load_profile
from appliance.core.errors import ConfigError
from appliance.runtime.demo import demo_profile_path
from tests.config.test_config import PROFILE, write


def test_no_service_section_keeps_the_defaults(tmp_path):
    s = load_profile(write(tmp_path, PROFILE, "floor.toml")).service
    assert s.timezone == "Europe/London" and s.order == "edf" and s.at_risk_lead_minutes == 60
    assert (s.intake_cutoff, s.collection_cutoff) == (time(14, 0), time(17, 30))
    assert s.working_days == {0, 1, 2, 3, 4} and not s.bank_holidays
    assert s.dispatch_days["first-class"] == 0 and s.dispatch_days["economy"] == 1


def test_service_section_parsed(tmp_path):
    text = PROFILE + """
[service]
timezone = "Europe/Dublin"
intake_cutoff = "12:30"
collection_cutoff = "16:00"
working_days = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
bank_holidays = ["2026-12-25"]
at_risk_lead_minutes = 90
order = "fifo"
[service.dispatch_days]
economy = 2
"""
    s = load_profile(write(tmp_path, text, "floor.toml")).service
    assert s.timezone == "Europe/Dublin" and s.intake_cutoff == time(12, 30) and s.order == "fifo"
    assert 5 in s.working_days and s.bank_holidays == {date(2026, 12, 25)}
    assert s.dispatch_days["economy"] == 2 and s.dispatch_days["first-class"] == 0
    assert s.at_risk_lead_minutes == 90


def test_demo_profile_ships_england_and_wales_bank_holidays():
    s = load_profile(demo_profile_path()).service
    assert {date(2026, 12, 25), date(2026, 12, 28), date(2027, 12, 27), date(2027, 12, 28)} <= s.bank_holidays


@pytest.mark.parametrize("body, expect", [
    ('timezone = "Mars/Olympus"', r"\[service\] timezone: unknown time zone 'Mars/Olympus'; use an IANA"),
    ('intake_cutoff = "2pm"', r'\[service\] intake_cutoff: \'2pm\' is not a time of day; write it as "HH:MM"'),
    ('intake_cutoff = "18:00"', r"\[service\] intake_cutoff: 18:00 is after collection_cutoff 17:30"),
    ('working_days = ["Mon", "Caturday"]', r"\[service\] working_days: 'Caturday' is not a day"),
    ("working_days = []", r"\[service\] working_days: empty"),
    ('bank_holidays = ["25/12/2026"]', r"\[service\] bank_holidays: '25/12/2026' is not a date; write it"),
    ("at_risk_lead_minutes = -5", r"\[service\] at_risk_lead_minutes: expected 0-1440"),
    ('order = "random"', r'\[service\] order: must be "edf"'),
    ("speed = 3", r"\[service\] speed: unknown key"),
    ('collection_cutoff = 1730', r"\[service\] collection_cutoff: expected a string"),
    ("dispatch_days = 3", r"\[service\] dispatch_days: must be a table"),
    ("[service.dispatch_days]\neconomy = -1", r"\[service.dispatch_days\] economy: expected a whole number"),
])
def test_service_mistakes_are_one_line(tmp_path, body, expect):
    path = write(tmp_path, PROFILE + "[service]\n" + body + "\n", "floor.toml")
    with pytest.raises(ConfigError, match=expect) as e:
        load_profile(path)
    assert "\n" not in str(e.value) and str(path) in str(e.value)
