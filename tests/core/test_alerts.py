"""The alert life cycle (appliance.core.alerts): one alert per cause, open until it clears."""

from appliance.core.alerts import Alerts, device_condition, severity_for, slug


def test_a_repeat_of_the_same_cause_updates_one_alert():
    book = Alerts()
    a, tell = book.raise_("routing:no-franker", "routing", "no franker available; 1 letter(s) wait", 100.0,
                          severity="critical")
    assert tell and a.count == 1 and a.opened == a.last_seen == 100.0
    for i in range(2, 2001):
        b, _ = book.raise_("routing:no-franker", "routing", f"no franker available; {i} letter(s) wait",
                           100.0 + i / 1000, severity="critical")
        assert b is a
    assert len(book.open) == 1 and a.count == 2000 and a.message.endswith("2000 letter(s) wait")
    assert a.opened == 100.0 and a.last_seen == 102.0
    assert a.as_dict()["t"] == a.as_dict()["last_seen"] == 102.0 and a.as_dict()["state"] == "open"


def test_count_updates_are_told_at_most_once_a_second():
    book = Alerts()
    book.raise_("k", "s", "m", 10.0)
    told = [book.raise_("k", "s", "m", 10.0 + i / 10)[1] for i in range(1, 25)]
    assert told.count(True) == 2  # at 11.0 and 12.0


def test_close_by_itself_or_by_a_person_then_a_new_episode():
    book = Alerts()
    book.raise_("device:fm200:out-of-ink", "fm200", "out of ink", 1.0, severity="critical", device="fm200")
    closed = book.close("device:fm200:out-of-ink", 5.0)
    assert closed.state == "closed" and closed.closed_by == "cleared" and closed.closed_at == 5.0
    assert book.close("device:fm200:out-of-ink", 6.0) is None  # closing twice is harmless
    again, tell = book.raise_("device:fm200:out-of-ink", "fm200", "out of ink", 7.0, severity="critical")
    assert tell and again is not closed and again.count == 1
    book.close("device:fm200:out-of-ink", 8.0, by="Sam")
    assert [a.closed_by for a in book.closed_alerts()] == ["Sam", "cleared"]
    d = book.closed_alerts()[0].as_dict()
    assert d["state"] == "closed" and d["closed_by"] == "Sam" and d["closed_at"] == 8.0


def test_open_alerts_are_never_dropped_and_closed_ones_age_out():
    book = Alerts(keep_closed=200, keep_said=10)
    book.raise_("device:fm200:out-of-ink", "fm200", "out of ink", 0.0, severity="critical")
    for i in range(5000):
        book.raise_(f"letter:{i}:intake", "intake", "PDF not fetched; retrying", 1.0 + i, letter_id=str(i))
    assert len(book.open) == 5001 and book.get("device:fm200:out-of-ink") is not None
    assert book.open_alerts()[0].key == "device:fm200:out-of-ink"  # most severe first
    book.close_where(lambda a: a.key.startswith("letter:"), 9999.0)
    assert list(book.open) == ["device:fm200:out-of-ink"]
    assert len(book.closed) == 200 and book.closed_alerts()[0].key == "letter:4999:intake"
    assert len(book.said) == 10  # the log of raises is bounded too


def test_order_counts_and_severity_rules():
    book = Alerts()
    book.raise_("a", "s", "m", 1.0, severity="info")
    book.raise_("b", "s", "m", 2.0, severity="warning")
    book.raise_("c", "s", "m", 3.0, severity="critical")
    book.raise_("d", "s", "m", 4.0, severity="warning")
    assert [a.key for a in book.open_alerts()] == ["c", "d", "b", "a"]
    assert book.counts() == {"critical": 1, "warning": 2, "info": 1}
    book.raise_("b", "s", "worse", 5.0, severity="critical")  # a condition that grew worse says so
    assert book.counts() == {"critical": 2, "warning": 1, "info": 1}
    assert severity_for("hold") == severity_for("no-franker") == severity_for("out-of-ink") == "critical"
    assert severity_for("reprint") == "info" and severity_for("list") == "warning"


def test_device_messages_name_their_condition():
    assert device_condition("out of ink; refill to continue") == ("out-of-ink", "critical")
    assert device_condition("ink low: 5 left") == ("ink-low", "warning")
    assert device_condition("jam at 02; clear it on the machine") == ("jam", "critical")
    assert device_condition("link lost: EOF; reconnecting") == ("offline", "critical")
    assert device_condition("error E42: sealer water low")[0] == "error-e42"
    said = ("task poll failed (boom 3); restarting in 5 s", "task poll failed (x); restarting in 9 s")
    assert slug(said[0]) == slug(said[1])
