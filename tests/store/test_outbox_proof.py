"""The store's outbox from queued to proven: sent is not applied, refused is not done."""

from __future__ import annotations

import pytest

from appliance.core.errors import StateError
from appliance.store.store import Store


class Clock:
    def __init__(self, t: float = 1_780_000_000.0):
        self.t = t

    def __call__(self) -> float:
        self.t += 1.0
        return self.t


def fresh(tmp_path) -> Store:
    s = Store(tmp_path, clock=Clock())
    for lid in ("A", "B"):
        s.add_letter(lid, "notify-c5", "g", "ab" * 32, listed_at=1_780_000_000.0)
    return s


def seqs(store: Store, letter_id: str) -> list[int]:
    return [e["seq"] for e in store.outbox_of(letter_id)]


def test_a_202_is_not_proof_the_letter_stays_until_read_back(tmp_path):
    s = fresh(tmp_path)
    s.set_status("A", "REJECTED", "PDF_EMPTY")
    s.outbox_sent(seqs(s, "A"))
    assert s.outbox_unsent() == []  # nothing left to send ...
    assert [e["status"] for e in s.outbox_pending()] == ["REJECTED"]  # ... but not proven
    assert {r["id"] for r in s.letters()} == {"A", "B"}  # final, yet kept hot
    s.outbox_proven("A", "REJECTED", seqs(s, "A")[0])
    assert s.outbox_pending() == [] and "A" in s.archived_ids()
    assert [h["event"] for h in s.get("A")["history"]][-2:] == ["sent", "proven"]


def test_proof_of_a_later_status_supersedes_the_earlier_ones(tmp_path):
    s = fresh(tmp_path)
    for status in ("ACCEPTED", "PRINTED", "ENCLOSED"):
        s.set_status("A", status)
    s.outbox_sent(seqs(s, "A"))
    accepted, printed, enclosed = seqs(s, "A")
    s.outbox_proven("A", "PRINTED", printed)
    assert seqs(s, "A") == [enclosed]
    events = [(h["event"], h["status"]) for h in s.get("A")["history"] if h["event"] in ("proven", "superseded")]
    assert events == [("superseded", "ACCEPTED"), ("proven", "PRINTED")]


def test_lost_updates_are_sent_again_in_their_original_order(tmp_path):
    s = fresh(tmp_path)
    s.set_status("B", "ACCEPTED")
    for status in ("ACCEPTED", "PRINTED"):
        s.set_status("A", status)
    s.outbox_sent(seqs(s, "A"))
    assert s.outbox_resend("A", "Notify shows PENDING") == 2
    assert [(e["letter_id"], e["status"]) for e in s.outbox_unsent()] == [
        ("B", "ACCEPTED"), ("A", "ACCEPTED"), ("A", "PRINTED")]  # seq order, not resend order


def test_resend_with_nothing_unproven_sends_the_current_status(tmp_path):
    s = fresh(tmp_path)
    s.set_status("A", "ACCEPTED")
    s.outbox_ack(seqs(s, "A"))
    assert s.outbox_resend("A", "listed again") == 1
    assert [e["status"] for e in s.outbox_unsent()] == ["ACCEPTED"]


def test_a_refused_update_holds_back_the_letters_later_ones_until_resolved(tmp_path):
    s = fresh(tmp_path)
    s.set_status("A", "ACCEPTED")
    s.set_status("A", "PRINTED")
    s.set_status("B", "ACCEPTED")
    first = seqs(s, "A")[0]
    s.outbox_refuse(first, 422, "letter A cannot take status ACCEPTED")
    assert [(e["letter_id"], e["status"]) for e in s.outbox_unsent()] == [("B", "ACCEPTED")]
    assert s.refused_letters() == ["A"] and s.get("A")["refused"]["http_status"] == 422
    assert s.outbox_counts()["refused"] == 1
    s.resolve_refused("A", "retry")
    assert [e["status"] for e in s.outbox_unsent() if e["letter_id"] == "A"] == ["ACCEPTED", "PRINTED"]
    s.outbox_refuse(first, 422, "again")
    s.resolve_refused("A", "handled", "set by hand at Notify")
    assert [e["status"] for e in s.outbox_unsent() if e["letter_id"] == "A"] == ["PRINTED"]
    assert s.get("A")["refused"] is None
    assert s.get("A")["history"][-1]["note"] == "set by hand at Notify"
    with pytest.raises(StateError):
        s.resolve_refused("A", "retry")


def test_a_refused_final_update_is_never_archived_as_done(tmp_path):
    s = fresh(tmp_path)
    s.set_status("A", "REJECTED", "PDF_EMPTY")
    s.outbox_refuse(seqs(s, "A")[0], 400, "bad")
    assert "A" not in s.archived_ids() and s.get("A")["refused"]
    s.resolve_refused("A", "handled", "told Notify by email")
    assert "A" in s.archived_ids()


def test_sent_tried_and_refused_survive_a_restart(tmp_path):
    s = fresh(tmp_path)
    s.set_status("A", "ACCEPTED", deadline=1_780_000_240.0)
    s.set_status("B", "ACCEPTED")
    s.outbox_tried(seqs(s, "A"))
    s.outbox_sent(seqs(s, "B"))
    s.set_status("B", "PRINTED")
    s.outbox_refuse(seqs(s, "B")[1], 404, "gone")
    s.close()
    s = Store(tmp_path, clock=Clock())
    a, = s.outbox_of("A")
    assert a["deadline"] == 1_780_000_240.0 and a["tried"] and not a.get("sent")
    assert [e["status"] for e in s.outbox_unsent()] == ["ACCEPTED"]
    assert s.refused_letters() == ["B"] and s.outbox_counts()["sent"] == 1


def test_let_go_withdraws_unsent_updates_and_retake_starts_a_new_window(tmp_path):
    s = fresh(tmp_path)
    s.set_status("A", "ACCEPTED", deadline=1.0)
    rec = s.let_go("A", "deadline passed")
    assert rec["status"] == "PENDING" and rec["stage"] == "let-go"
    assert s.outbox_of("A") == [] and "A" not in s.in_flight_ids()
    s.retake("A", 1_780_000_500.0)
    assert s.get("A")["stage"] == "new" and s.get("A")["listed_at"] == 1_780_000_500.0
    s.set_status("A", "ACCEPTED")  # PENDING again: it may be ACCEPTED afresh
    s.outbox_tried(seqs(s, "A"))
    with pytest.raises(StateError):
        s.let_go("A", "an update already left")


def test_let_go_letters_are_forgotten_after_a_while(tmp_path):
    s = fresh(tmp_path)
    s.let_go("A", "x")
    assert s.forget_let_go(older_than=s.get("A")["stage_at"]) == 0
    assert s.forget_let_go(older_than=s.get("A")["stage_at"] + 1) == 1
    assert not s.is_known("A")
