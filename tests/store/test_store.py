"""Letter store: behaviour, durability and crash recovery (cuts at every byte offset)."""

from __future__ import annotations

import logging
import shutil
from collections import Counter
from pathlib import Path

import pytest
from tinydb import TinyDB, where

from appliance.core.errors import UserError
from appliance.core.status import TransitionError
from appliance.store.storage import Archive
from appliance.store.store import StateError, Store, UnknownLetter


class FakeClock:
    def __init__(self, t: float = 1_780_000_000.0):  # 2026-05-28 UTC
        self.t = t

    def __call__(self) -> float:
        self.t += 1.0
        return self.t


@pytest.fixture
def clock():
    return FakeClock()


def open_store(path: Path, clock=None) -> Store:
    return Store(path, clock=clock or FakeClock())


def add(store: Store, letter_id: str) -> None:
    assert store.add_letter(letter_id, "spec-1", "group-1", "ab" * 32)


def snapshot(store: Store) -> dict:
    """Everything observable about a store (the next seq included)."""
    ids = sorted({r["id"] for r in store.letters()} | store.archived_ids())
    return {
        "records": {i: store.get(i) for i in ids},
        "hot": sorted(r["id"] for r in store.letters()),
        "outbox": store.outbox_pending(),
        "counts": store.counts(),
        "next_seq": store._next_seq,
    }


def crash_copy(src: Path, dst: Path) -> Path:
    """What a crash leaves: the files on disk, nothing from memory."""
    shutil.copytree(src, dst)
    return dst


# --- behaviour ---------------------------------------------------------------------------

def test_add_letter_is_idempotent_in_memory_after_reopen_and_once_archived(tmp_path, clock):
    s = open_store(tmp_path, clock)
    assert s.add_letter("A", "spec", "g", "h") is True
    assert s.add_letter("A", "spec-other", "g2", "h2") is False
    assert s.get("A")["specification_id"] == "spec"
    s.close()

    s = open_store(tmp_path, clock)
    assert s.add_letter("A", "spec", "g", "h") is False
    s.set_status("A", "REJECTED", "PDF_EMPTY")
    s.outbox_ack([e["seq"] for e in s.outbox_pending()])
    assert s.add_letter("A", "spec", "g", "h") is False  # queued for the archive
    s.close()

    s = open_store(tmp_path, clock)
    assert s.letters() == []
    assert s.is_known("A") and "A" in s.archived_ids()
    assert s.add_letter("A", "spec", "g", "h") is False
    assert s.get("A")["status"] == "REJECTED"


def test_new_record_shape(tmp_path, clock):
    s = open_store(tmp_path, clock)
    s.add_letter("A", "spec", "grp", "hash")
    rec = s.get("A")
    assert rec["status"] == "PENDING" and rec["stage"] == "new"
    assert (rec["specification_id"], rec["group_id"], rec["sha256"]) == ("spec", "grp", "hash")
    for field in ("printer", "job", "device", "reason_code", "reason_text", "pdf", "pages", "sheets"):
        assert rec[field] is None
    assert rec["attempts"] == 0 and rec["created"] == rec["updated"]
    assert rec["history"] == [{"t": rec["created"], "event": "listed"}]


def test_get_update_and_history(tmp_path, clock):
    s = open_store(tmp_path, clock)
    add(s, "A")
    rec = s.update("A", event="downloaded", stage="downloaded", pdf="/spool/A.pdf", pages=3)
    assert (rec["stage"], rec["pdf"], rec["pages"]) == ("downloaded", "/spool/A.pdf", 3)
    assert rec["history"][-1]["event"] == "downloaded"
    assert rec["history"][-1]["pdf"] == "/spool/A.pdf"
    s.update("A", attempts=1)  # no event: no history line
    assert len(s.get("A")["history"]) == 2
    assert s.get("A")["attempts"] == 1
    assert s.get("A")["updated"] > s.get("A")["created"]
    # a returned copy is not the live record
    s.get("A")["stage"] = "tampered"
    assert s.get("A")["stage"] == "downloaded"
    with pytest.raises(ValueError):
        s.update("A", status="PRINTED")
    with pytest.raises(UnknownLetter):
        s.update("nope", stage="x")
    assert s.get("nope") is None


def test_set_status_same_status_is_a_noop(tmp_path, clock):
    s = open_store(tmp_path, clock)
    add(s, "A")
    assert s.set_status("A", "ACCEPTED") is True
    history = s.get("A")["history"]
    assert s.set_status("A", "ACCEPTED") is False
    assert s.get("A")["history"] == history
    assert [e["status"] for e in s.outbox_pending()] == ["ACCEPTED"]


def test_set_status_backwards_raises_and_changes_nothing(tmp_path, clock):
    s = open_store(tmp_path, clock)
    add(s, "A")
    s.set_status("A", "ACCEPTED")
    s.set_status("A", "PRINTED")
    before = snapshot(s)
    with pytest.raises(TransitionError):
        s.set_status("A", "ACCEPTED")
    with pytest.raises(TransitionError):
        s.set_status("A", "RETURNED", "R99")
    assert snapshot(s) == before


def test_set_status_reasons(tmp_path, clock):
    s = open_store(tmp_path, clock)
    add(s, "A")
    add(s, "B")
    with pytest.raises(TransitionError):
        s.set_status("A", "REJECTED")  # the API refuses REJECTED without a reason
    assert s.set_status("A", "REJECTED", "HASH_MISMATCH") is True
    rec = s.get("A")
    assert rec["reason_code"] == "HASH_MISMATCH"
    assert rec["reason_text"] == "PDF sha256 does not match the listed sha256Hash"
    assert rec["history"][-1] == {"t": rec["updated"], "event": "status", "status": "REJECTED",
                                  "reason_code": "HASH_MISMATCH",
                                  "reason_text": "PDF sha256 does not match the listed sha256Hash"}
    s.set_status("B", "ACCEPTED", event="accepted")
    assert s.get("B")["history"][-1]["event"] == "accepted"


def test_outbox_is_ordered_by_seq_across_letters_and_seq_survives_restart(tmp_path, clock):
    s = open_store(tmp_path, clock)
    for i in "ABC":
        add(s, i)
    s.set_status("B", "ACCEPTED")
    s.set_status("A", "ACCEPTED")
    s.set_status("B", "PRINTED")
    s.set_status("C", "CANCELLED", "X1", "withdrawn")
    pending = s.outbox_pending()
    assert [(e["letter_id"], e["status"]) for e in pending] == [
        ("B", "ACCEPTED"), ("A", "ACCEPTED"), ("B", "PRINTED"), ("C", "CANCELLED")]
    seqs = [e["seq"] for e in pending]
    assert seqs == sorted(seqs) and len(set(seqs)) == 4
    assert pending[3]["reason_code"] == "X1" and pending[3]["reason_text"] == "withdrawn"
    assert s.outbox_pending(limit=2) == pending[:2]
    s.outbox_ack(seqs)
    s.close()

    s = open_store(tmp_path, clock)
    assert s.outbox_pending() == []
    s.set_status("A", "PRINTED")
    assert s.outbox_pending()[0]["seq"] > max(seqs)  # never reused


def test_ack_removes_entries_and_archives_finished_letters(tmp_path, clock):
    s = open_store(tmp_path, clock)
    for i in "ABC":
        add(s, i)
    s.set_status("A", "ACCEPTED")
    s.set_status("B", "REJECTED", "PDF_EMPTY")
    s.set_status("C", "ACCEPTED")
    s.set_status("C", "CANCELLED", "X1", "withdrawn")
    seq = {(e["letter_id"], e["status"]): e["seq"] for e in s.outbox_pending()}

    s.outbox_ack([seq["A", "ACCEPTED"], seq["B", "REJECTED"], seq["C", "ACCEPTED"], 9999])
    assert [(e["letter_id"], e["status"]) for e in s.outbox_pending()] == [("C", "CANCELLED")]
    hot = {r["id"] for r in s.letters()}
    assert hot == {"A", "C"}  # A not final; C final but one update not acknowledged
    assert {r["id"] for r in s.in_flight()} == {"A"}
    assert s.get("B")["history"][-1]["event"] == "proven"
    s.flush()

    archived = list(Archive(tmp_path / "archive").records())
    assert [r["id"] for r in archived] == ["B"]
    assert archived[0]["status"] == "REJECTED"
    assert [h["event"] for h in archived[0]["history"]] == ["listed", "status", "proven"]
    with Store(tmp_path, readonly=True) as on_disk:  # what a crash now would reopen
        assert {r["id"] for r in on_disk.letters()} == {"A", "C"}

    s.outbox_ack([seq["C", "CANCELLED"]])
    s.flush()
    assert {r["id"] for r in Archive(tmp_path / "archive").records()} == {"B", "C"}
    assert s.counts() == {"ACCEPTED": 1, "REJECTED": 1, "CANCELLED": 1}
    s.close()
    s = open_store(tmp_path, clock)
    assert s.counts() == {"ACCEPTED": 1, "REJECTED": 1, "CANCELLED": 1}
    assert [r["id"] for r in s.letters()] == ["A"]
    assert s.get("C")["reason_text"] == "withdrawn"


def test_status_counts_after_archive_and_letters_filter(tmp_path, clock):
    s = open_store(tmp_path, clock)
    for i in range(6):
        add(s, f"L{i}")
    for i in range(3):
        s.set_status(f"L{i}", "REJECTED", "PDF_UNREADABLE")
    s.set_status("L3", "ACCEPTED")
    s.update("L3", stage="printing")
    s.outbox_ack([e["seq"] for e in s.outbox_pending()])
    s.close()
    s = open_store(tmp_path, clock)
    assert s.counts() == {"REJECTED": 3, "ACCEPTED": 1, "PENDING": 2}
    assert [r["id"] for r in s.letters(status="PENDING")] == ["L4", "L5"]
    assert [r["id"] for r in s.letters(stage="printing")] == ["L3"]
    assert s.letters(status="REJECTED") == []  # archived letters are not hot


def test_late_status_on_archived_letter_brings_it_back(tmp_path, clock):
    s = open_store(tmp_path, clock)
    add(s, "A")
    for st in ("ACCEPTED", "PRINTED", "ENCLOSED", "DISPATCHED"):
        s.set_status("A", st)
    s.outbox_ack([e["seq"] for e in s.outbox_pending()])
    s.close()

    s = open_store(tmp_path, clock)
    assert s.letters() == [] and s.counts() == {"DISPATCHED": 1}
    with pytest.raises(TransitionError):
        s.set_status("A", "PRINTED")
    assert s.set_status("A", "RETURNED", "R01") is True
    assert s.get("A")["reason_text"] == "Addressee gone away"
    assert s.counts() == {"RETURNED": 1}
    s.close()

    s = open_store(tmp_path, clock)  # hot copy (newer rev) beats the archived one
    assert s.get("A")["status"] == "RETURNED"
    assert [e["status"] for e in s.outbox_pending()] == ["RETURNED"]
    s.outbox_ack([e["seq"] for e in s.outbox_pending()])
    s.close()

    s = open_store(tmp_path, clock)
    assert s.letters() == [] and s.counts() == {"RETURNED": 1}
    assert s.get("A")["history"][-1] == {"t": s.get("A")["updated"], "event": "proven",
                                         "status": "RETURNED"}


def test_reopen_after_flush_restores_everything(tmp_path, clock):
    s = open_store(tmp_path, clock)
    for i in "ABCD":
        add(s, i)
    s.set_status("A", "ACCEPTED")
    s.update("A", event="printing", stage="printing", printer="p1", job=42)
    s.set_status("B", "REJECTED", "TOO_MANY_SHEETS")
    s.set_status("C", "REJECTED", "PDF_EMPTY")
    s.outbox_ack([e["seq"] for e in s.outbox_pending() if e["letter_id"] == "C"])
    s.flush()
    before = snapshot(s)
    s.close()
    assert snapshot(open_store(tmp_path, clock)) == before


def test_every_flush_writes_the_current_records(tmp_path, clock):
    s = open_store(tmp_path, clock)
    for i in "ABC":
        add(s, i)
    s.flush()
    s.update("A", stage="downloaded")
    s.flush()
    s.set_status("B", "ACCEPTED")
    s.update("A", stage="verified", event="verified")
    s.flush()
    s.outbox_ack([e["seq"] for e in s.outbox_pending()])
    s.flush()
    with Store(tmp_path, readonly=True) as reopened:  # hot.json and the journal after it
        on_disk = {r["id"]: r for r in reopened.letters()}
        assert reopened.outbox_pending() == s.outbox_pending()
    assert on_disk == {r["id"]: r for r in s.letters()}
    assert on_disk["A"]["stage"] == "verified" and on_disk["B"]["history"][-1]["event"] == "proven"


def test_unflushed_changes_are_lost_but_last_flush_is_intact(tmp_path, clock):
    s = open_store(tmp_path / "live", clock)
    add(s, "A")
    s.set_status("A", "ACCEPTED")
    s.flush()
    committed = snapshot(s)
    add(s, "B")
    s.set_status("A", "PRINTED")
    s.update("A", stage="printed")
    assert s.dirty
    crashed = open_store(crash_copy(tmp_path / "live", tmp_path / "crash"), clock)
    assert snapshot(crashed) == committed
    assert not crashed.is_known("B")


def test_flush_is_a_noop_when_clean(tmp_path, clock):
    s = open_store(tmp_path, clock)
    assert not s.dirty
    add(s, "A")
    assert s.dirty
    s.flush()
    assert not s.dirty
    inode = (tmp_path / "hot.json").stat().st_ino
    s.flush()
    s.outbox_ack([12345])  # nothing to acknowledge: still clean
    s.flush()
    assert not s.dirty
    assert (tmp_path / "hot.json").stat().st_ino == inode


def test_hot_file_is_a_plain_tinydb_database(tmp_path, clock):
    s = open_store(tmp_path, clock)
    add(s, "A")
    add(s, "B")
    s.set_status("B", "ACCEPTED")
    s.close()  # a closed store has folded its journal into hot.json
    db = TinyDB(tmp_path / "hot.json")
    assert [r["id"] for r in db.table("letters").search(where("status") == "ACCEPTED")] == ["B"]
    assert [e["letter_id"] for e in db.table("outbox").all()] == ["B"]
    assert db.table("outbox").all()[0].doc_id == open_store(tmp_path, clock).outbox_pending()[0]["seq"]


def test_second_process_on_the_same_state_dir_is_refused(tmp_path, clock):
    s = open_store(tmp_path, clock)
    with pytest.raises(UserError) as err:
        open_store(tmp_path, clock)
    assert str(tmp_path) in str(err.value)
    s.close()
    open_store(tmp_path, clock).close()


def test_readonly_store_reads_while_locked_and_never_writes(tmp_path, clock):
    s = open_store(tmp_path, clock)
    add(s, "A")
    s.flush()
    ro = Store(tmp_path, readonly=True)
    assert ro.get("A")["status"] == "PENDING"
    ro.add_letter("Z", "s", "g", "h")
    with pytest.raises(PermissionError):
        ro.flush()


# --- crash safety: cut at every byte offset ----------------------------------------------

def _committed_and_next(tmp_path: Path, clock) -> tuple[Path, dict, bytes]:
    """A committed state dir, its snapshot, and the exact bytes the next hot write holds."""
    live = tmp_path / "committed"
    s = open_store(live, clock)
    for i in "ABC":
        add(s, i)
    s.set_status("A", "ACCEPTED")
    s.set_status("B", "REJECTED", "PDF_EMPTY")
    s.outbox_ack([e["seq"] for e in s.outbox_pending() if e["letter_id"] == "B"])
    s.flush()
    committed = snapshot(s)
    s.close()

    nxt = open_store(crash_copy(live, tmp_path / "next"), clock)
    nxt.set_status("A", "PRINTED")
    nxt.update("C", event="downloaded", stage="downloaded", pages=2)
    add(nxt, "D")
    nxt.close()
    data = (tmp_path / "next" / "hot.json").read_bytes()
    assert data != (live / "hot.json").read_bytes()
    return live, committed, data


def test_crash_while_writing_hot_temp_file_at_every_byte(tmp_path, clock):
    live, committed, data = _committed_and_next(tmp_path, clock)
    hot_bytes = (live / "hot.json").read_bytes()
    tmp = live / "hot.json.tmp"
    for k in range(len(data) + 1):
        tmp.write_bytes(data[:k])
        s = open_store(live, clock)
        assert snapshot(s) == committed, f"cut at byte {k}"
        assert not tmp.exists() and not s.dirty
        s.close()
        assert (live / "hot.json").read_bytes() == hot_bytes


def test_crash_after_backup_link_before_replace(tmp_path, clock):
    live, committed, data = _committed_and_next(tmp_path, clock)
    (live / "hot.json.tmp").write_bytes(data)
    shutil.copyfile(live / "hot.json", live / "hot.json.bak")
    (live / "hot.json.bak.tmp").write_bytes(b"{")
    assert snapshot(open_store(live, clock)) == committed


def _two_generations(tmp_path: Path, clock) -> tuple[Path, dict, dict]:
    """A state dir with hot.json = generation 2 and hot.json.bak = generation 1."""
    live = tmp_path / "gens"
    s = open_store(live, clock)
    for i in "ABC":
        add(s, i)
    s.set_status("A", "REJECTED", "PDF_EMPTY")
    s.outbox_ack([e["seq"] for e in s.outbox_pending()])
    s.flush()
    gen1 = snapshot(s)
    s.set_status("B", "ACCEPTED")
    s.update("C", event="downloaded", stage="downloaded")
    s.flush()
    gen2 = snapshot(s)
    s.close()
    return live, gen1, gen2


def test_hot_file_truncated_in_place_falls_back_to_previous_generation(tmp_path, clock, caplog):
    """hot.json.bak is the snapshot before; hot.journal.bak the journal that followed it, so
    the fallback loses nothing that was flushed (gen2, not only gen1)."""
    live, gen1, gen2 = _two_generations(tmp_path, clock)
    assert gen1 != gen2
    data = (live / "hot.json").read_bytes()
    for k in range(len(data)):
        case = crash_copy(live, tmp_path / f"cut{k}")
        (case / "hot.json").write_bytes(data[:k])
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="appliance.store.store"):
            s = open_store(case, clock)
        assert snapshot(s) == gen2, f"cut at byte {k}"
        assert any("hot.json" in r.getMessage() and "corrupt" in r.getMessage()
                   for r in caplog.records)
        assert (case / "hot.json.corrupt").read_bytes() == data[:k]
        s.close()  # rewrites hot.json from the fallback
        with open_store(case, clock) as again:  # closed: an open store holds its lock's fd
            assert snapshot(again) == gen2
        shutil.rmtree(case)


def test_hot_file_truncated_without_backup_is_a_one_line_error(tmp_path, clock):
    live, gen1, gen2 = _two_generations(tmp_path, clock)
    data = (live / "hot.json").read_bytes()
    (live / "hot.json.bak").unlink()
    for k in range(len(data)):
        (live / "hot.json").write_bytes(data[:k])
        with pytest.raises(StateError) as err:
            open_store(live, clock)
        msg = str(err.value)
        assert "\n" not in msg and str(live / "hot.json") in msg and "restore" in msg
    (live / "hot.json").write_bytes(data)
    assert snapshot(open_store(live, clock)) == gen2


def test_valid_json_that_is_not_a_state_file_is_a_one_line_error(tmp_path, clock):
    (tmp_path / "hot.json").write_text('{"letters": {"1": {"no_id": true}}}')
    with pytest.raises(StateError) as err:
        open_store(tmp_path, clock)
    assert "\n" not in str(err.value) and "hot.json" in str(err.value)


def _archive_crash_case(tmp_path: Path, clock):
    """Committed state with X final but unacknowledged in hot (and Y already archived),
    plus what the next flush (after acknowledging X) appends to the archive."""
    live = tmp_path / "arch"
    s = open_store(live, clock)
    add(s, "Y")
    s.set_status("Y", "REJECTED", "PDF_EMPTY")
    s.outbox_ack([e["seq"] for e in s.outbox_pending()])
    add(s, "X")
    s.set_status("X", "REJECTED", "TOO_LARGE")
    s.flush()
    committed = snapshot(s)
    s.close()
    arch = live / "archive"
    day = next(arch.glob("*.jsonl")).name
    old = {n: (arch / n).read_bytes() for n in (day, "index.tsv")}

    nxt = open_store(crash_copy(live, tmp_path / "arch-next"), clock)
    nxt.outbox_ack([e["seq"] for e in nxt.outbox_pending()])
    acked = snapshot(nxt)
    nxt.close()
    new_arch = tmp_path / "arch-next" / "archive"
    added = {n: (new_arch / n).read_bytes()[len(old[n]):] for n in old}
    assert added[day].count(b"\n") == 1 and added["index.tsv"].count(b"\n") == 1
    return live, committed, acked, day, old, added


def test_crash_while_appending_archive_at_every_byte(tmp_path, clock):
    live, committed, acked, day, old, added = _archive_crash_case(tmp_path, clock)
    cases = [(day, k, b"") for k in range(len(added[day]) + 1)]
    cases += [("index.tsv", k, added[day]) for k in range(len(added["index.tsv"]) + 1)]
    for n, (name, k, jsonl_extra) in enumerate(cases):
        case = crash_copy(live, tmp_path / f"c{n}")
        arch = case / "archive"
        (arch / day).write_bytes(old[day] + (jsonl_extra or added[day][:k]))
        if name == "index.tsv":
            (arch / "index.tsv").write_bytes(old["index.tsv"] + added["index.tsv"][:k])
        s = open_store(case, clock)
        assert s.get("Y") == committed["records"]["Y"]  # complete records still read
        if name == "index.tsv" and k == len(added["index.tsv"]):
            assert snapshot(s) == acked  # archived copy is newer: it wins, no resend
        else:
            assert snapshot(s) == committed, f"{name} cut at byte {k}"  # X still hot
        # carry on: the torn tail must not corrupt later appends
        s.outbox_ack([e["seq"] for e in s.outbox_pending()])
        s.close()
        s = open_store(case, clock)
        assert s.letters() == [] and s.counts() == {"REJECTED": 2}
        assert s.get("X")["status"] == "REJECTED"
        assert s.get("X")["history"][-1]["event"] == "proven"
        assert {r["id"] for r in Archive(arch).records()} == {"X", "Y"}
        s.close()
        shutil.rmtree(case)


def test_print_runs_are_never_reused_across_restarts(tmp_path):
    with Store(tmp_path) as store:
        first = [store.next_print_run() for _ in range(3)]
        store.flush()
    with Store(tmp_path) as store:
        assert store.next_print_run() == first[-1] + 1
    assert first == sorted(set(first))


def test_archive_find_returns_the_newest_complete_line_and_skips_a_torn_tail(tmp_path):
    archive = Archive(tmp_path)
    archive.append("2026-11-24", [{"id": "a", "status": "DISPATCHED", "rev": 1}])
    archive.append("2026-11-25", [{"id": "a", "status": "DISPATCHED", "rev": 2},
                                  {"id": "ab", "status": "REJECTED", "rev": 1},
                                  {"id": "a", "status": "RETURNED", "rev": 3}])
    with open(tmp_path / "2026-11-25.jsonl", "ab") as f:  # power cut mid-append
        f.write(b'{"id":"a","status":"DELIV')
    assert archive.find("a")["rev"] == 3
    assert archive.find("ab")["status"] == "REJECTED"
    assert archive.find("b") is None


def test_flush_written_in_another_thread_while_the_store_moves_on(tmp_path, clock):
    """The committer writes a flush snapshot in a worker thread: what changed meanwhile stays
    dirty for the next flush, a letter being archived stays readable, and an older snapshot
    never overwrites a newer one."""
    s = open_store(tmp_path / "live", clock)
    add(s, "A")
    add(s, "B")
    s.set_status("A", "REJECTED", "BAD_PDF", "bad")
    s.outbox_ack([e["seq"] for e in s.outbox_pending()])  # final and told: archived by the next flush
    older = s.prepare_flush()
    assert s.get("A")["status"] == "REJECTED"  # between snapshot and write: still readable
    s.set_status("B", "ACCEPTED")  # the store moves on while the snapshot is written
    assert s.dirty
    newer = s.prepare_flush()
    newer()  # the newer write wins the race ...
    older()  # ... and the older one must not put B back to PENDING on disk
    assert s.get("A")["status"] == "REJECTED"
    again = open_store(crash_copy(tmp_path / "live", tmp_path / "copy"), clock)
    assert again.get_status("B") == "ACCEPTED" and again.get_status("A") == "REJECTED"
    assert again.archived_ids() == {"A"}


def test_a_failed_flush_write_loses_nothing(tmp_path, clock, monkeypatch):
    s = open_store(tmp_path, clock)
    add(s, "A")
    s.set_status("A", "REJECTED", "BAD_PDF", "bad")
    s.outbox_ack([e["seq"] for e in s.outbox_pending()])
    write = s.prepare_flush()
    monkeypatch.setattr(s._archive, "append", lambda *a: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError):
        write()
    assert s.dirty  # it will be tried again
    monkeypatch.undo()
    s.flush()
    assert open_store(crash_copy(tmp_path, tmp_path / "copy"), clock).get_status("A") == "REJECTED"


# --- the hot journal (appliance.store.hotlog) ---------------------------------------------

def _many_in_flight(path: Path, clock, n: int) -> Store:
    s = open_store(path, clock)
    for i in range(n):
        add(s, f"L{i:05d}")
    s.flush()
    return s


def test_a_flush_appends_what_changed_and_leaves_hot_json_alone(tmp_path, clock):
    """Issue 18: with many letters in flight a flush rewrote all of hot.json; now one status
    change costs one journal line the size of that letter, and reopening shows it."""
    s = _many_in_flight(tmp_path, clock, 2000)
    hot = tmp_path / "hot.json"
    before = hot.stat()
    journal = tmp_path / "hot.journal"
    size0 = journal.stat().st_size if journal.exists() else 0
    s.set_status("L00007", "ACCEPTED")
    s.flush()
    grew = journal.stat().st_size - size0
    assert 0 < grew < 3000 < before.st_size / 100
    after = hot.stat()
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (before.st_ino, before.st_size, before.st_mtime_ns)
    with Store(tmp_path, readonly=True) as again:
        assert again.get_status("L00007") == "ACCEPTED"
        assert [(e["letter_id"], e["status"]) for e in again.outbox_pending()] == [("L00007", "ACCEPTED")]
    s.close()


def test_crash_while_appending_a_journal_line_at_every_byte(tmp_path, clock):
    s = _many_in_flight(tmp_path / "live", clock, 3)
    s.set_status("L00000", "ACCEPTED")
    s.flush()
    committed = snapshot(s)
    journal = tmp_path / "live" / "hot.journal"
    good = journal.read_bytes()
    s.set_status("L00001", "REJECTED", "PDF_EMPTY")
    s.update("L00002", stage="downloaded", pages=3)
    add(s, "L00009")
    s.flush()
    line = journal.read_bytes()[len(good):]
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    s.close()
    for k in range(len(line)):  # the line is only whole with its newline
        case = tmp_path / f"cut{k}"
        shutil.copytree(tmp_path / "live", case)
        (case / "hot.json").write_bytes(((tmp_path / "live" / "hot.json.bak")).read_bytes())
        (case / "hot.journal.bak").unlink(missing_ok=True)
        (case / "hot.journal").write_bytes(good + line[:k])
        with open_store(case, clock) as st:  # closed: an open store holds its lock's fd
            assert snapshot(st) == committed, f"cut at byte {k}"
            add(st, "L00010")  # an append after the torn tail starts on a clean line
            st.flush()
            assert snapshot(Store(case, readonly=True))["hot"][-1] == "L00010"
        shutil.rmtree(case)


def test_journal_is_compacted_into_hot_json_once_it_outgrows_it(tmp_path, clock, monkeypatch):
    import appliance.store.store as store_mod

    monkeypatch.setattr(store_mod, "COMPACT_MIN_BYTES", 4096)
    s = _many_in_flight(tmp_path, clock, 5)
    gen = lambda: TinyDB(tmp_path / "hot.json").table("meta").get(doc_id=1)["gen"]  # noqa: E731
    first = gen()
    for round_ in range(40):
        s.update(f"L{round_ % 5:05d}", event=f"round {round_}", stage=f"s{round_}")
        s.flush()
    assert gen() > first  # rewritten at least once
    journal = tmp_path / "hot.journal"
    assert (journal.stat().st_size if journal.exists() else 0) < 2 * (tmp_path / "hot.json").stat().st_size
    assert (tmp_path / "hot.journal.bak").exists()
    state = snapshot(s)
    assert snapshot(Store(tmp_path, readonly=True)) == state
    s.close()
    assert not (tmp_path / "hot.journal").exists()  # a clean close leaves one file
    assert snapshot(open_store(tmp_path, clock)) == state


def test_crash_inside_a_compaction_loses_nothing(tmp_path, clock, monkeypatch):
    """Killed after hot.json was replaced but before the journal was renamed: the journal
    still holds lines of the old generation, which the new hot.json already contains."""
    s = _many_in_flight(tmp_path / "live", clock, 3)
    s.set_status("L00000", "ACCEPTED")
    s.flush()
    s.set_status("L00000", "PRINTED")
    s.flush()
    journal = (tmp_path / "live" / "hot.journal").read_bytes()
    s.update("L00001", stage="downloaded")
    s.flush(compact=True)
    state = snapshot(s)
    case = crash_copy(tmp_path / "live", tmp_path / "crash")
    (case / "hot.journal").write_bytes(journal)  # the rename never happened
    with open_store(case, clock) as again:
        assert snapshot(again) == state
        again.set_status("L00000", "ENCLOSED")  # appended after the old lines: still replayed
        again.flush()
        expected = snapshot(again)
        assert snapshot(Store(case, readonly=True)) == expected
    s.close()


def test_a_failed_journal_append_is_written_again_in_order(tmp_path, clock, monkeypatch):
    s = _many_in_flight(tmp_path, clock, 2)
    s.set_status("L00000", "ACCEPTED")
    write = s.prepare_flush()
    real = s._journal.append_lines
    monkeypatch.setattr(s._journal, "append_lines", lambda lines: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError):
        write()
    assert s.dirty
    monkeypatch.setattr(s._journal, "append_lines", real)
    s.set_status("L00000", "PRINTED")  # a newer line queued behind the failed one
    s.flush()
    with Store(tmp_path, readonly=True) as again:
        assert again.get_status("L00000") == "PRINTED"
        assert [e["status"] for e in again.outbox_pending()] == ["ACCEPTED", "PRINTED"]
    s.close()


def test_stage_and_status_counts_kept_as_letters_change_match_a_full_walk(tmp_path, clock):
    """stage_count, counts and in_flight_ids are kept as records change (the pipeline asks on
    every poll); after any mix of changes, and after reopening, they equal a walk."""
    import random

    from appliance.core.status import is_final

    def walked(s: Store):
        hot = s.letters()
        stages = {r["stage"] for r in hot} | {"new", "printing", "let-go", "nowhere"}
        counts = dict(Counter(r["status"] for r in hot) + Counter(s.archived_counts()))
        flying = sorted(r["id"] for r in hot if not is_final(r["status"]) and r["stage"] != "let-go")
        return {st: sum(r["stage"] == st for r in hot) for st in stages}, counts, flying

    def kept(s: Store, stages):
        return {st: s.stage_count(st) for st in stages}, s.counts(), sorted(s.in_flight_ids())

    rnd = random.Random(18)
    s = open_store(tmp_path, clock)
    chain = ["ACCEPTED", "PRINTED", "ENCLOSED", "DISPATCHED"]
    for step in range(600):
        ids = [r["id"] for r in s.letters()]
        op = rnd.choice(["add", "add", "stage", "status", "reject", "ack", "letgo", "retake", "forget"])
        lid = rnd.choice(ids) if ids else None
        if op == "add" or lid is None:
            add(s, f"L{step}")
        elif op == "stage":
            s.update(lid, stage=rnd.choice(["downloaded", "printing", "wait-inserter"]))
        elif op == "status":
            cur = s.get_status(lid)
            nxt = chain[chain.index(cur) + 1] if cur in chain[:-1] else ("ACCEPTED" if cur == "PENDING" else None)
            if nxt:
                s.set_status(lid, nxt)
        elif op == "reject" and s.get_status(lid) == "PENDING":
            s.set_status(lid, "REJECTED", "PDF_EMPTY")
        elif op == "ack":
            s.outbox_ack([e["seq"] for e in s.outbox_pending()[:5]])
        elif op == "letgo" and not s.outbox_of(lid):
            s.let_go(lid, "test")
        elif op == "retake" and s.get(lid)["stage"] == "let-go":
            s.retake(lid, 0.0)
        elif op == "forget":
            s.forget_let_go(clock.t - 50)
        if step % 97 == 0:
            s.flush()
        stages, counts, flying = walked(s)
        assert kept(s, stages) == (stages, counts, flying), f"step {step}: {op} {lid}"
    s.close()
    s = open_store(tmp_path, clock)
    stages, counts, flying = walked(s)
    assert kept(s, stages) == (stages, counts, flying)


def test_peek_is_a_live_read_only_view_of_a_hot_letter(tmp_path, clock):
    s = open_store(tmp_path, clock)
    try:
        add(s, "A")
        view = s.peek("A")
        with pytest.raises(TypeError):
            view["stage"] = "printing"  # loops that look must not change the store
        s.update("A", stage="verified")
        assert view["stage"] == "verified" and s.peek("nope") is None
        s.set_status("A", "REJECTED", "PDF_EMPTY")
        s.outbox_ack([e["seq"] for e in s.outbox_pending()])
        assert s.peek("A") is None and s.get("A")["status"] == "REJECTED"  # archived: get, not peek
    finally:
        s.close()
