"""What a read-back proves (appliance.pipeline.prover.judge)."""

from appliance.pipeline.prover import judge


def entries(*statuses):
    return [{"seq": i + 1, "status": s} for i, s in enumerate(statuses)]


def test_shown_status_proves_up_to_it():
    assert judge(entries("ACCEPTED", "PRINTED", "ENCLOSED"), "PRINTED") == ("proven", 2)
    assert judge(entries("ACCEPTED"), "ACCEPTED") == ("proven", 1)


def test_pending_or_an_earlier_status_means_nothing_took():
    assert judge(entries("ACCEPTED", "PRINTED"), "PENDING") == ("lost", None)
    assert judge(entries("ENCLOSED", "DISPATCHED"), "ACCEPTED") == ("lost", None)


def test_a_status_this_appliance_never_sent_is_another_writer():
    assert judge(entries("ACCEPTED", "PRINTED"), "DISPATCHED") == ("conflict", None)
    assert judge(entries("PRINTED"), "CANCELLED") == ("conflict", None)


def test_a_read_behind_notify_s_worker_resends_nothing_until_it_stays_behind(tmp_path):
    """Notify shows ACCEPTED while PRINTED waits on its queue: ACCEPTED is proven, PRINTED
    is read again later, and sent again only if still not applied well after its 202 (it
    once went out again at once, and Notify's history ran PRINTED, ..., PRINTED again)."""
    from collections import Counter

    from appliance.pipeline.prover import Prover
    from appliance.store.store import Store

    now = [1_900_000_000.0]
    store = Store(tmp_path, clock=lambda: now[0])
    store.add_letter("L", "notify-c5", "g", "ab" * 32, listed_at=now[0])
    store.set_status("L", "ACCEPTED")
    store.set_status("L", "PRINTED")
    store.outbox_sent([e["seq"] for e in store.outbox_of("L")])
    prover = Prover(store, client=None, prove_after=0.2, alert=lambda *a, **k: None,
                    counters=Counter(), wake_outbox=lambda: None, clock=lambda: now[0])
    now[0] += 0.3
    prover._settle("L", "ACCEPTED")  # the worker has applied ACCEPTED only, so far
    assert [e["status"] for e in store.outbox_of("L")] == ["PRINTED"]
    assert store.outbox_unsent() == []  # nothing sent again yet
    now[0] += 0.3
    prover._settle("L", "ACCEPTED")  # still behind, but only 0.6 s after the 202
    assert store.outbox_unsent() == []
    now[0] += 3.0
    prover._settle("L", "ACCEPTED")  # 3.6 s on: PRINTED was lost; it goes again
    assert [e["status"] for e in store.outbox_unsent()] == ["PRINTED"]
    store.close()


def test_a_letter_not_yet_final_is_read_later_than_a_final_one(tmp_path):
    """Under a backlog an ACCEPTED letter read prove_after after its 202 was read again once
    DISPATCHED (1.5 read-backs a letter in the ingest bench); now a letter not yet final
    waits MOVING_FACTOR times longer, a final one does not."""
    from appliance.pipeline.prover import MOVING_FACTOR
    from appliance.store.store import Store

    now = [1_900_000_000.0]
    store = Store(tmp_path, clock=lambda: now[0])
    for lid in ("moving", "final"):
        store.add_letter(lid, "notify-c5", "g", "ab" * 32, listed_at=now[0])
    store.set_status("moving", "ACCEPTED")
    store.set_status("final", "REJECTED", "PDF_EMPTY")
    store.outbox_sent([e["seq"] for e in store.outbox_pending()])
    prove_after = 5.0
    now[0] += prove_after + 0.1
    ask = lambda: store.outbox_settled(now[0] - prove_after, 64,  # noqa: E731
                                       moving_before=now[0] - prove_after * MOVING_FACTOR)
    assert ask() == ["final"]
    assert store.outbox_settled(now[0] - prove_after, 64) == ["moving", "final"]  # without the rule
    now[0] += prove_after * (MOVING_FACTOR - 1)
    assert ask() == ["moving", "final"]
    assert prove_after * MOVING_FACTOR + 60 < 300  # an ACCEPTED is proven well inside the visibility window
    store.close()
