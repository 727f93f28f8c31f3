"""The sandbox imitating the deployed Supplier API, not only its OpenAPI document:
visibility timeout and priority on GET /letters, updates queued after the 202 and applied
later (dropped, untransitioned), refusals, the TPS limit, 60 s data URLs, CLI defaults.

Every test talks HTTP to a really started sandbox (run_in_thread) with httpx.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from appliance.sandbox import DOCUMENT_ONLY, FAITHFUL, Sandbox, SandboxOptions, run_in_thread
from appliance.sandbox.model import API_KINDS
from appliance.sandbox.queue import LetterQueue

JSONAPI = "application/vnd.api+json"
H = {"X-Request-ID": "req-faithful"}


def client_for(sb):
    return httpx.Client(base_url=sb.base_url, headers=H, timeout=5)


def item(letter_id, status, **attrs):
    return {"type": "Letter", "id": letter_id, "attributes": {"status": status, **attrs}}


def patch(c, letter_id, status, **attrs):
    return c.patch(f"/letters/{letter_id}", content=json.dumps({"data": item(letter_id, status, **attrs)}),
                   headers={"Content-Type": JSONAPI})


def post(c, *items):
    return c.post("/letters", content=json.dumps({"data": list(items)}),
                  headers={"Content-Type": JSONAPI})


def listed(c, limit=None):
    resp = c.get("/letters", params={} if limit is None else {"limit": limit})
    assert resp.status_code == 200, resp.text
    return [d["id"] for d in resp.json()["data"]]


def shown_status(c, letter_id):
    return c.get(f"/letters/{letter_id}").json()["data"]["attributes"]["status"]


def wait_until(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def error_of(resp, status):
    assert resp.status_code == status, resp.text
    (err,) = resp.json()["errors"]
    assert err["status"] == str(status)
    return err


# --- listing: visibility timeout and priority ----------------------------------------------

def test_listing_hides_letters_for_the_visibility_timeout_then_shows_them_again():
    with run_in_thread(SandboxOptions(letters=6, bad_ratio=0, visibility_timeout=1.5)) as sb:
        with client_for(sb) as c:
            started = time.monotonic()
            first = listed(c, 4)
            second = listed(c)
            third = listed(c)
            assert time.monotonic() - started < 1.5  # all three inside the window
            assert len(first) == 4 and len(second) == 2 and third == []
            assert set(first) | set(second) == set(sb.letters)
            assert sb.pending.hidden() == 6 and len(sb.pending) == 6  # hidden, still queued
            last = max(letter.listed[-1] for letter in sb.letters.values())
            wait_until(lambda: time.time() > last + 1.55)
            assert listed(c) == first + second  # back, in their old order
    assert all(len(letter.listed) == 2 for letter in sb.letters.values())
    for letter in sb.letters.values():
        assert letter.listed[1] - letter.listed[0] >= 1.5


def test_visibility_timeout_zero_hides_nothing_and_can_change_live():
    with run_in_thread(SandboxOptions(letters=4, bad_ratio=0, visibility_timeout=0)) as sb:
        with client_for(sb) as c:
            assert listed(c) == listed(c) == list(sb.pending)
            sb.faults.visibility_timeout = 60
            assert len(listed(c, 3)) == 3 and len(listed(c)) == 1 and listed(c) == []
            sb.faults.visibility_timeout = 0  # letters hidden already keep their time
            assert listed(c) == []


def test_two_clients_never_get_the_same_letter_within_the_window():
    with run_in_thread(SandboxOptions(letters=120, bad_ratio=0, visibility_timeout=30)) as sb:
        got: dict[str, list[str]] = {"a": [], "b": []}
        start = threading.Barrier(2)

        def poll(name):
            with client_for(sb) as c:
                start.wait()
                for _ in range(200):  # 120 letters, 3 a time: far fewer if none come twice
                    ids = listed(c, 3)
                    if not ids:
                        return
                    got[name].extend(ids)

        with ThreadPoolExecutor(2) as pool:
            list(pool.map(poll, got))
    a, b = got["a"], got["b"]
    assert a and b  # both clients were served
    assert len(set(a)) == len(a) and len(set(b)) == len(b)
    assert not set(a) & set(b)
    assert set(a) | set(b) == set(sb.letters)


def test_priority_orders_the_listing_but_is_not_shown():
    with run_in_thread(SandboxOptions(letters=30, bad_ratio=0, seed=2)) as sb:
        made = list(sb.letters.values())
        urgent = [l.id for l in made if l.priority == 5]
        normal = [l.id for l in made if l.priority == 10]
        assert urgent and normal and len(urgent) + len(normal) == 30  # about 1 in 5 urgent
        late_urgent = sb.add_letter(priority=1)
        late_batch = sb.add_letters(2, priority=7)
        with client_for(sb) as c:
            data = c.get("/letters").json()["data"]
    assert [d["id"] for d in data] == [late_urgent] + urgent + late_batch + normal
    assert all(set(d["attributes"]) == {"specificationId", "groupId", "status", "sha256Hash"}
               for d in data)
    assert list(sb.pending) == [d["id"] for d in data]


def test_a_letter_shown_again_keeps_its_place_in_the_queue():
    with run_in_thread(SandboxOptions(letters=0, visibility_timeout=0.5)) as sb:
        older = sb.add_letters(2, bad_ratio=0, priority=10)
        with client_for(sb) as c:
            assert listed(c) == older  # both hidden now
            newer = sb.add_letter(priority=10)  # queued later, never listed
            time.sleep(0.6)
            assert listed(c, 10) == older + [newer]  # by queue time, not by reappearance


def test_letters_leave_the_queue_only_when_an_applied_non_pending_status_lands():
    with run_in_thread(SandboxOptions(letters=3, bad_ratio=0, apply_delay=0.8, visibility_timeout=0)) as sb:
        with client_for(sb) as c:
            a, b, _ = listed(c)
            assert patch(c, a, "ACCEPTED").status_code == 202
            assert a in listed(c) and a in sb.pending  # accepted, not applied: still queued
            wait_until(sb.quiescent)
            assert a not in listed(c) and a not in sb.pending
            assert b in listed(c)


# --- updates: queued, 202 first, applied later -----------------------------------------------

def test_the_202_comes_before_application_and_get_shows_the_old_status_until_then():
    with run_in_thread(SandboxOptions(letters=2, bad_ratio=0, apply_delay=1.0)) as sb:
        a, b = list(sb.letters)
        with client_for(sb) as c:
            started = time.monotonic()
            resp = patch(c, a, "RETURNED", reasonCode="R09", reasonText="Deceased")
            assert resp.status_code == 202
            attrs = resp.json()["data"]["attributes"]  # the update as sent
            assert (attrs["status"], attrs["reasonCode"]) == ("RETURNED", "R09")
            assert post(c, item(b, "ACCEPTED")).status_code == 202
            assert time.monotonic() - started < 1.0
            assert shown_status(c, a) == shown_status(c, b) == "PENDING"
            assert "reasonCode" not in c.get(f"/letters/{a}").json()["data"]["attributes"]
            assert sb.applied_status(a) == "PENDING" and not sb.quiescent()
            assert [(u.letter_id, u.status, u.applied_at) for u in sb.updates] == [
                (a, "RETURNED", None), (b, "ACCEPTED", None)]
            wait_until(sb.quiescent)
            got = c.get(f"/letters/{a}").json()["data"]["attributes"]
            assert (got["status"], got["reasonCode"], got["reasonText"]) == ("RETURNED", "R09", "Deceased")
            assert shown_status(c, b) == "ACCEPTED"
    for u in sb.updates:
        assert u.applied_at - u.received >= 1.0 and not u.dropped


def test_updates_apply_in_arrival_order():
    with run_in_thread(SandboxOptions(letters=1, bad_ratio=0, apply_delay=0.3)) as sb:
        (a,) = sb.letters
        with client_for(sb) as c:
            assert patch(c, a, "ACCEPTED").status_code == 202
            assert patch(c, a, "PRINTED").status_code == 202
            assert post(c, item(a, "ENCLOSED")).status_code == 202
            assert patch(c, a, "DISPATCHED").status_code == 202
            wait_until(sb.quiescent)
    assert sb.letters[a].supplier_statuses() == ["ACCEPTED", "PRINTED", "ENCLOSED", "DISPATCHED"]
    applied = [u.applied_at for u in sb.updates]
    assert applied == sorted(applied)


def test_application_checks_no_transitions():
    with run_in_thread(SandboxOptions(letters=1, bad_ratio=0, apply_delay=0.1)) as sb:
        (a,) = sb.letters
        with client_for(sb) as c:
            assert patch(c, a, "DISPATCHED").status_code == 202
            assert patch(c, a, "ACCEPTED").status_code == 202
            wait_until(sb.quiescent)
            assert shown_status(c, a) == "ACCEPTED"
    assert [s for s, _ in sb.letters[a].history] == ["PENDING", "DISPATCHED", "ACCEPTED"]


def test_drop_updates_loses_every_update_silently_after_a_202():
    with run_in_thread(SandboxOptions(letters=3, bad_ratio=0, apply_delay=0.2,
                                      drop_updates=1.0)) as sb:
        a, b, c3 = list(sb.letters)
        with client_for(sb) as c:
            assert patch(c, a, "ACCEPTED").status_code == 202
            assert post(c, item(b, "ACCEPTED"), item(c3, "REJECTED")).status_code == 202
            wait_until(sb.quiescent)
            time.sleep(0.3)
            assert [shown_status(c, i) for i in (a, b, c3)] == ["PENDING"] * 3
            assert sorted(listed(c)) == sorted([a, b, c3])
            assert all(u.dropped and u.applied_at is None for u in sb.updates)
            sb.faults.drop_updates = 0.0  # changeable while running
            assert patch(c, a, "ACCEPTED").status_code == 202
            wait_until(sb.quiescent)
            assert shown_status(c, a) == "ACCEPTED"
    assert [s for s, _ in sb.letters[a].history] == ["PENDING", "ACCEPTED"]


def test_apply_delay_zero_applies_before_the_202_and_still_records_updates():
    with run_in_thread(SandboxOptions(letters=1, bad_ratio=0, apply_delay=0)) as sb:
        (a,) = sb.letters
        with client_for(sb) as c:
            assert patch(c, a, "ACCEPTED").status_code == 202
            assert shown_status(c, a) == "ACCEPTED" and sb.quiescent()
            (u,) = sb.updates
            assert u.applied_at == u.received and not u.dropped
            sb.faults.apply_delay = 0.3  # and live the other way
            assert patch(c, a, "PRINTED").status_code == 202
            assert shown_status(c, a) == "ACCEPTED"
            wait_until(sb.quiescent)
            assert shown_status(c, a) == "PRINTED"


def test_a_failing_application_is_logged_and_the_worker_goes_on(caplog):
    with run_in_thread(SandboxOptions(letters=2, bad_ratio=0, apply_delay=0.1)) as sb:
        a, b = list(sb.letters)
        real = sb.set_status

        def flaky(letter, status, code, text):
            if letter.id == a:
                raise RuntimeError("disk on fire")
            real(letter, status, code, text)

        sb.set_status = flaky
        with caplog.at_level(logging.ERROR, logger="appliance.sandbox.updates"):
            with client_for(sb) as c:
                assert patch(c, a, "ACCEPTED").status_code == 202
                assert patch(c, b, "ACCEPTED").status_code == 202
                wait_until(sb.quiescent)
                assert shown_status(c, b) == "ACCEPTED" and shown_status(c, a) == "PENDING"
    assert any("applying update" in r.getMessage() and r.exc_info for r in caplog.records)
    assert sb.updates[0].applied_at is None and sb.updates[1].applied_at is not None


# --- refusals ------------------------------------------------------------------------------

@pytest.mark.parametrize("status,code,why", [
    (400, "NOTIFY_INVALID_REQUEST", "cannot take status ACCEPTED"),
    (404, "NOTIFY_RESOURCE_NOT_FOUND", "not known"),
    (422, "NOTIFY_UNPROCESSABLE_ENTITY", "cannot take status ACCEPTED"),
])
def test_refuse_updates_for_patch(status, code, why):
    with run_in_thread(SandboxOptions(letters=2, bad_ratio=0, apply_delay=0.1)) as sb:
        a, _ = list(sb.letters)
        sb.refuse_updates[a] = status
        with client_for(sb) as c:
            for _ in range(2):  # sticky
                err = error_of(patch(c, a, "ACCEPTED"), status)
                assert err["code"] == code and a in err["detail"] and why in err["detail"]
            # the body is still checked first
            bad = c.patch(f"/letters/{a}", content=b"{}", headers={"Content-Type": JSONAPI})
            assert error_of(bad, 400)["detail"].startswith("The request body is invalid")
            assert sb.updates == []
            del sb.refuse_updates[a]
            assert patch(c, a, "ACCEPTED").status_code == 202
            wait_until(sb.quiescent)
            assert shown_status(c, a) == "ACCEPTED"
    assert len(sb.updates) == 1


def test_refuse_updates_refuses_a_whole_post():
    with run_in_thread(SandboxOptions(letters=3, bad_ratio=0, apply_delay=0.1)) as sb:
        a, b, c3 = list(sb.letters)
        sb.refuse_updates.update({b: 422, c3: 422})
        with client_for(sb) as c:
            err = error_of(post(c, item(a, "ACCEPTED"), item(b, "PRINTED"), item(c3, "ACCEPTED")), 422)
            assert b in err["detail"] and c3 in err["detail"] and a not in err["detail"]
            assert "cannot take status PRINTED" in err["detail"]
            time.sleep(0.3)
            assert sb.updates == [] and shown_status(c, a) == "PENDING"
            sb.refuse_updates.clear()
            assert post(c, item(a, "ACCEPTED"), item(b, "PRINTED")).status_code == 202
            wait_until(sb.quiescent)
            assert (shown_status(c, a), shown_status(c, b)) == ("ACCEPTED", "PRINTED")


# --- TPS limit -----------------------------------------------------------------------------

def test_tps_limit_serves_at_most_the_limit_per_sliding_second_and_429s_the_rest():
    limit = 25
    with run_in_thread(SandboxOptions(letters=2, tps_limit=limit)) as sb:
        lid = next(iter(sb.letters))

        def burst(_):
            with client_for(sb) as c:
                return [c.get(f"/letters/{lid}") for _ in range(30)]

        with ThreadPoolExecutor(4) as pool:
            answers = [r for batch in pool.map(burst, range(4)) for r in batch]
        with client_for(sb) as c:
            assert all(c.get("/_status").status_code == 200 for _ in range(limit + 5))
        refused = [r for r in answers if r.status_code == 429]
        assert refused and len(refused) == sb.throttled
        assert {r.status_code for r in answers} == {200, 429}
        for r in refused:
            assert r.headers["retry-after"] == "1"
            assert r.json()["policy"] == "quota" and "rate limited" in r.json()["message"]
        served = sorted(r.time for r in sb.log if r.kind in API_KINDS and r.status != 429)
        for i, t in enumerate(served):
            in_window = [s for s in served[: i + 1] if s > t - 1.0]
            assert len(in_window) <= limit
        assert sum(r.status == 429 for r in sb.log) == len(refused)
        time.sleep(1.05)
        with client_for(sb) as c:
            assert c.get(f"/letters/{lid}").status_code == 200
            sb.faults.tps_limit = 0  # changeable while running
            assert all(c.get(f"/letters/{lid}").status_code == 200 for _ in range(limit * 2))


def test_visible_queue_work_does_not_grow_with_hidden_letters():
    """20 000 letters all hidden: a listing touches none of them (no scan, no sort)."""
    sb = Sandbox(letters=0)
    sb.add_letters(20_000, bad_ratio=0)
    queue: LetterQueue = sb.pending
    now = time.time()
    taken = sum(len(queue.take(2500, now, 300)) for _ in range(9))
    assert taken == 20_000 and queue.hidden() == 20_000
    started = time.perf_counter()
    for i in range(2000):  # ten polls a second for 200 s
        assert queue.take(2500, now + i * 0.1, 300) == []
    assert time.perf_counter() - started < 1.0  # a scan of 20 000 per poll takes far longer
    assert len(queue.take(2500, now + 301, 300)) == 2500  # and they come back when due


# --- data URLs and the CLI -------------------------------------------------------------------

def test_cli_defaults_are_the_deployed_servers_and_each_can_be_turned_off():
    from appliance.cli.main import build_parser
    from appliance.cli.sandbox import options_from_args

    def opts(*argv):
        return options_from_args(build_parser().parse_args(["sandbox", *argv]))

    faithful = opts()
    assert {k: getattr(faithful, k) for k in FAITHFUL} == FAITHFUL
    assert faithful.presign_ttl == 60 and faithful.drop_updates == 0
    plain = SandboxOptions()  # Python callers get the deployed server's behaviour too
    assert {k: getattr(plain, k) for k in FAITHFUL} == FAITHFUL and plain.drop_updates == 0
    off = opts("--faithful-off")
    assert {k: getattr(off, k) for k in FAITHFUL} == DOCUMENT_ONLY
    one = opts("--visibility-timeout", "0", "--drop-updates", "0.25")
    assert (one.visibility_timeout, one.apply_delay, one.tps_limit, one.drop_updates) == (0, 1.0, 300, 0.25)
    mixed = opts("--faithful-off", "--tps-limit", "50", "--presign-ttl", "30", "--apply-delay", "2")
    assert (mixed.tps_limit, mixed.presign_ttl, mixed.apply_delay, mixed.visibility_timeout) == (50, 30, 2.0, 0)


def test_presigned_urls_live_60_seconds_with_the_cli_defaults():
    from appliance.cli.main import build_parser
    from appliance.cli.sandbox import options_from_args

    opts = options_from_args(build_parser().parse_args(["sandbox", "--letters", "1"]))
    with run_in_thread(opts) as sb:
        (lid,) = sb.letters
        with client_for(sb) as c:
            location = c.get(f"/letters/{lid}/data").headers["location"]
        assert "X-Amz-Expires=60" in location
        assert httpx.get(location).status_code == 200
        young = httpx.get(sb.presigned_url(lid, issued_at=time.time() - 55))
        assert young.status_code == 200
        old = httpx.get(sb.presigned_url(lid, issued_at=time.time() - 61))
        assert old.status_code == 403 and b"AccessDenied" in old.content
        assert b"Request has expired" in old.content
