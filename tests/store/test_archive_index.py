"""The archive's id index: a SQLite cache of index.tsv that catches up, rebuilds and never
answers for another tsv -- a wrong "not known" would print a letter twice."""

from __future__ import annotations

import logging
import os
import random
import shutil

import pytest

from appliance.store.archive_index import ArchiveIndex
from appliance.store.storage import INDEX_DB_NAME, Archive
from appliance.store.store import Store


def recs(ids, status="DISPATCHED", rev=6):
    return [{"id": i, "status": status, "rev": rev, "specification_id": "notify-c5"} for i in ids]


def ids_of(index: ArchiveIndex) -> list[str]:
    return [r[0] for r in index.page(limit=10**9)]


def main_file(index: ArchiveIndex) -> str:
    return next(row[2] for row in index._db.execute("PRAGMA database_list") if row[1] == "main")


def test_tsv_read_in_chunks_keeps_lines_across_chunk_ends_and_drops_a_torn_tail(tmp_path):
    n = 100_000  # ~4.7 MB: more than one 4 MiB chunk, so some line straddles a chunk end
    lines = "".join(f"L{i:09d}\tDISPATCHED\t{i % 7}\t2026-12-01\tnotify-c5\n" for i in range(n))
    (tmp_path / "index.tsv").write_text(lines + "Ltorn\tDISPATCH")
    index = ArchiveIndex(tmp_path / "index.sqlite", tmp_path / "index.tsv")
    try:
        assert index.count() == n and index.row("Ltorn") is None
        assert index.row("L000099999") == ("DISPATCHED", 99999 % 7, "notify-c5")
        assert index.row("L000050000") == ("DISPATCHED", 50000 % 7, "notify-c5")
        assert index.status_counts() == {"DISPATCHED": n}
    finally:
        index.close()


def test_a_later_line_wins_and_becomes_the_newest(tmp_path):
    arch = Archive(tmp_path)
    arch.append("2026-12-01", recs(["A", "B", "C"]))
    arch.append("2026-12-02", recs(["A"], status="RETURNED", rev=9))
    index = arch.index
    try:
        assert ids_of(index) == ["A", "C", "B"] and index.row("A") == ("RETURNED", 9, "notify-c5")
        assert index.status_counts() == {"DISPATCHED": 2, "RETURNED": 1}
    finally:
        arch.close()


def test_lines_appended_while_the_index_was_closed_are_read_on_open(tmp_path):
    """A crash between the tsv append and the cache's commit (or a power cut that lost the
    cache's last commits) leaves tsv lines the cache does not hold: the next open reads them."""
    arch = Archive(tmp_path)
    arch.append("2026-12-01", recs(["A", "B"]))
    arch.index.close()
    stale = (tmp_path / INDEX_DB_NAME).read_bytes()
    other = Archive(tmp_path)  # never opens its index: only the tsv grows
    other.append("2026-12-01", recs(["C"]))
    with open(tmp_path / "index.tsv", "ab") as f:
        f.write(b"Dtorn\tDISP")  # and a crash cut the next line short
    again = Archive(tmp_path)
    try:
        assert ids_of(again.index) == ["C", "B", "A"] and again.index.row("Dtorn") is None
    finally:
        again.close()
    (tmp_path / INDEX_DB_NAME).write_bytes(stale)  # the cache as it was before C: lost commits
    for suffix in ("-wal", "-shm"):
        (tmp_path / f"{INDEX_DB_NAME}{suffix}").unlink(missing_ok=True)
    again = Archive(tmp_path)
    try:
        again.append("2026-12-01", recs(["D"]))  # the torn tail is cut, D lands after C
        assert ids_of(again.index) == ["D", "C", "B", "A"]
    finally:
        again.close()


def test_an_unreadable_cache_is_rebuilt_from_the_tsv(tmp_path, caplog):
    arch = Archive(tmp_path)
    arch.append("2026-12-01", recs(["A", "B"]))
    arch.close()
    (tmp_path / INDEX_DB_NAME).write_bytes(b"not a database, a power cut and a bad disk" * 100)
    caplog.set_level(logging.WARNING)
    again = Archive(tmp_path)
    try:
        assert ids_of(again.index) == ["B", "A"]
    finally:
        again.close()
    assert "index.sqlite is unreadable" in caplog.text and "rebuilding it from index.tsv" in caplog.text


def test_a_cache_of_another_tsv_is_never_believed(tmp_path):
    """A state directory restored from a backup brings an older index.tsv: a cache that held
    more, or other, bytes would answer "known" (or "not known") for the wrong letters."""
    arch = Archive(tmp_path)
    arch.append("2026-12-01", recs([f"OLD{i}" for i in range(50)]))
    arch.close()
    # another tsv, longer than the one the cache holds, same first bytes but other letters
    tsv = tmp_path / "index.tsv"
    tsv.write_text("".join(f"NEW{i}\tREJECTED\t1\t2026-12-01\t\n" for i in range(200)))
    again = Archive(tmp_path)
    try:
        assert again.index.row("OLD1") is None and again.index.count() == 200
        assert again.index.row("NEW7") == ("REJECTED", 1, None)
    finally:
        again.close()
    tsv.write_text("NEW0\tREJECTED\t1\t2026-12-01\t\n")  # shorter than what the cache holds
    again = Archive(tmp_path)
    try:
        assert ids_of(again.index) == ["NEW0"]
    finally:
        again.close()


def test_cache_files_are_private_whatever_the_umask(tmp_path):
    old = os.umask(0)
    try:
        arch = Archive(tmp_path / "archive")
        assert arch.index.count() == 0  # opened (as the store opens it), then written to
        arch.append("2026-12-01", recs(["A"]))
        files = sorted(p.name for p in (tmp_path / "archive").iterdir())
        assert {INDEX_DB_NAME, f"{INDEX_DB_NAME}-wal"} <= set(files)
        for p in (tmp_path / "archive").iterdir():
            assert p.stat().st_mode & 0o777 == 0o600, p.name
        arch.close()
    finally:
        os.umask(old)


def test_read_only_open_never_writes_the_daemons_cache(tmp_path):
    live = Archive(tmp_path)
    live.index.count()  # the daemon has its cache open
    live.append("2026-12-01", recs(["A", "B"]))
    reader = Archive(tmp_path, create=False)
    try:
        assert ids_of(reader.index) == ["B", "A"]  # the daemon's cache holds the whole tsv ...
        assert main_file(reader.index) == str(tmp_path / INDEX_DB_NAME)  # ... so it reads that
    finally:
        reader.close()
    live.index.close()
    before = (tmp_path / INDEX_DB_NAME).read_bytes()
    other = Archive(tmp_path)
    other.append("2026-12-01", recs(["C"]))  # the tsv is ahead of the cache (daemon down)
    reader = Archive(tmp_path, create=False)
    try:
        assert ids_of(reader.index) == ["C", "B", "A"] and main_file(reader.index) == ""  # in memory
        with pytest.raises(PermissionError):
            reader.index.added([("D", "DISPATCHED", 1, None)])
    finally:
        reader.close()
    assert (tmp_path / INDEX_DB_NAME).read_bytes() == before


def test_store_knows_archived_letters_through_restarts_crash_copies_and_a_lost_cache(tmp_path):
    """The store's answers (known, status, listing, counts) stay the same whether the cache
    is current, behind (a crash copy taken while it was open) or gone."""
    state = tmp_path / "state"
    rng = random.Random(5)
    s = Store(state)
    try:
        for i in range(300):
            lid = f"L{i:04d}"
            s.add_letter(lid, "notify-c5", "g", "0" * 64)
            if rng.random() < 0.2:
                s.set_status(lid, "REJECTED", "PDF_EMPTY")
            else:
                s.set_status(lid, "ACCEPTED")
        for i in range(300):
            lid = f"L{i:04d}"
            if s.get_status(lid) == "ACCEPTED":
                for st in ("PRINTED", "ENCLOSED", "DISPATCHED"):
                    s.set_status(lid, st)
            if i % 37 == 0:
                s.outbox_ack([e["seq"] for e in s.outbox_pending()])
                s.flush()
        s.outbox_ack([e["seq"] for e in s.outbox_pending()])
        s.flush()
        returned = next(f"L{i:04d}" for i in range(300) if s.get_status(f"L{i:04d}") == "DISPATCHED")
        s.set_status(returned, "RETURNED", reason_code="R01")  # late status: back in flight
        s.flush()
        expect = (s.archived_page(limit=1000), s.counts(), {f"L{i:04d}": s.get_status(f"L{i:04d}")
                                                              for i in range(300)})
        shutil.copytree(state, tmp_path / "crash")  # cache open: its -wal copied as it is
    finally:
        s.close()

    def answers(path):
        with Store(path) as again:
            assert all(again.is_known(f"L{i:04d}") for i in range(300)) and not again.is_known("L9999")
            return (again.archived_page(limit=1000), again.counts(),
                    {f"L{i:04d}": again.get_status(f"L{i:04d}") for i in range(300)})

    assert answers(state) == expect
    assert answers(tmp_path / "crash") == expect
    for p in (state / "archive").glob(f"{INDEX_DB_NAME}*"):
        p.unlink()
    assert answers(state) == expect


def test_a_letter_archived_twice_is_listed_once(tmp_path):
    with Store(tmp_path) as s:
        s.add_letter("A", "notify-c5", "g", "0" * 64)
        for st in ("ACCEPTED", "PRINTED", "ENCLOSED", "DISPATCHED"):
            s.set_status("A", st)
        s.outbox_ack([e["seq"] for e in s.outbox_pending()])
        s.flush()  # archived: a row in the index
        s.set_status("A", "RETURNED", reason_code="R01")  # back in flight: the row is hidden
        assert s.archived_page() == (0, [])
        s.outbox_ack([e["seq"] for e in s.outbox_pending()])  # final again: queued
        assert s.archived_page() == (1, [("A", "RETURNED", "notify-c5")])
        s.flush()  # the new row replaces the old one
        assert s.archived_page() == (1, [("A", "RETURNED", "notify-c5")])
        assert s.counts() == {"RETURNED": 1}
    with Store(tmp_path) as s:
        assert s.archived_page() == (1, [("A", "RETURNED", "notify-c5")]) and s.counts() == {"RETURNED": 1}



def test_a_failed_cache_write_fails_the_flush_and_loses_nothing(tmp_path, monkeypatch):
    """The cache must never miss a letter the tsv has (a letter "not known" could be taken
    and printed again), so a cache write that fails fails the flush, which is tried again."""
    import sqlite3

    with Store(tmp_path) as s:
        s.add_letter("A", "notify-c5", "g", "0" * 64)
        s.set_status("A", "REJECTED", "PDF_EMPTY")
        s.outbox_ack([e["seq"] for e in s.outbox_pending()])
        real = ArchiveIndex._insert

        def full(db, rows):
            real(db, rows)
            raise sqlite3.OperationalError("database or disk is full")

        monkeypatch.setattr(ArchiveIndex, "_insert", staticmethod(full))
        with pytest.raises(sqlite3.OperationalError, match="disk is full"):
            s.flush()
        assert s.is_known("A") and s.get_status("A") == "REJECTED" and s.dirty
        assert s._archive.index.row("A") is None  # rolled back: the cache holds nothing of A
        monkeypatch.setattr(ArchiveIndex, "_insert", staticmethod(real))
        s.flush()
        assert s._archive.index.row("A") == ("REJECTED", s.get("A")["rev"], "notify-c5")
        assert s.archived_page() == (1, [("A", "REJECTED", "notify-c5")])
    with Store(tmp_path) as s:
        assert s.archived_page() == (1, [("A", "REJECTED", "notify-c5")]) and s.counts() == {"REJECTED": 1}
