"""The letters listing pages hot and archived letters together: every letter once, right totals."""

from appliance.control.server import ControlServer
from appliance.store.storage import Archive
from appliance.store.store import Store


def archive_of_20(path) -> Archive:
    arch = Archive(path)
    arch.append("2026-12-01", [{"id": f"L{i:03d}", "status": "REJECTED" if i % 4 == 0 else "DISPATCHED",
                                "rev": 1} for i in range(20)])
    return arch


def test_page_is_newest_archived_first_and_skips_hidden(tmp_path):
    index = archive_of_20(tmp_path).index
    try:
        index.hide("L019")
        assert index.count() == 19
        assert index.page(start=0, limit=3) == [("L018", "DISPATCHED", None), ("L017", "DISPATCHED", None),
                                                ("L016", "REJECTED", None)]
        index.hide("L019", False)
        assert index.page(limit=1) == [("L019", "DISPATCHED", None)]
    finally:
        index.close()


def test_status_filter_and_id_search_count_only_matches(tmp_path):
    index = archive_of_20(tmp_path).index
    try:
        index.hide("L016")
        assert index.count(status="REJECTED") == 4
        assert [r[0] for r in index.page(status="REJECTED", limit=10)] == ["L012", "L008", "L004", "L000"]
        assert index.count(q="L01", status="DISPATCHED") == 8
        assert [r[0] for r in index.page(q="L01", status="DISPATCHED", start=2, limit=10)] == [
            "L017", "L015", "L014", "L013", "L011", "L010"]
        assert index.status_counts() == {"REJECTED": 4, "DISPATCHED": 15}
    finally:
        index.close()


def test_start_past_the_end_gives_an_empty_page(tmp_path):
    index = archive_of_20(tmp_path).index
    try:
        assert index.page(start=50, limit=10) == [] and index.page(start=0, limit=0) == []
    finally:
        index.close()


def finished_store(path, n) -> Store:
    store = Store(path)
    for i in range(n):
        lid = f"letter{i:04d}"
        store.add_letter(lid, "notify-c5", "g", "0" * 64)
        for s in ("ACCEPTED", "PRINTED", "ENCLOSED", "DISPATCHED"):
            store.set_status(lid, s)
    store.outbox_ack([e["seq"] for e in store.outbox_pending()])  # all final and acked: archived
    store.add_letter("fresh", "notify-c5", "g", "0" * 64)
    store.set_status("fresh", "ACCEPTED")
    store.set_status("letter0003", "RETURNED", reason_code="R01")  # late status: hot again
    return store


async def lists_every_letter_once(store, tmp_path):
    """Pages of 7 through the console's listing: every letter once, in flight first."""

    class P:
        listeners = []

    P.store = store
    server = ControlServer(P(), tmp_path / "unused.sock", operator=object())
    seen, offset = [], 0
    while True:
        res = await server.cmd_letters(limit=7, offset=offset)
        assert res["total"] == 31
        if not res["letters"]:
            break
        seen += [r["id"] for r in res["letters"]]
        offset += 7
    assert len(seen) == len(set(seen)) == 31
    assert set(seen[:2]) == {"fresh", "letter0003"}  # in flight first
    assert seen[2:5] == ["letter0029", "letter0028", "letter0027"]  # then newest archived
    returned = await server.cmd_letters(status="RETURNED")
    assert [r["id"] for r in returned["letters"]] == ["letter0003"] and returned["total"] == 1
    dispatched = await server.cmd_letters(status="DISPATCHED", limit=500)
    assert dispatched["total"] == 29 == len(dispatched["letters"])
    # archived letters keep their specification for the console's column (was blank)
    assert {r["specification_id"] for r in dispatched["letters"]} == {"notify-c5"}
    found = await server.cmd_letters(q="letter000")
    assert found["total"] == 10 and {r["id"] for r in found["letters"]} == {f"letter000{i}" for i in range(10)}


async def test_paging_through_a_real_store_lists_every_letter_once(tmp_path):
    store = finished_store(tmp_path / "state", 30)
    try:
        assert "letter0003" not in store.archived_ids()
        await lists_every_letter_once(store, tmp_path)  # archive queued, not yet written
        store.flush()
        await lists_every_letter_once(store, tmp_path)  # written: from the index
    finally:
        store.close()
    store = Store(tmp_path / "state")  # after a restart: the revived letter's row stays hidden
    try:
        await lists_every_letter_once(store, tmp_path)
    finally:
        store.close()


async def test_archived_letters_keep_their_specification_across_a_restart(tmp_path):
    finished_store(tmp_path / "state", 5).close()
    store = Store(tmp_path / "state")
    try:
        total, rows = store.archived_page(limit=10)
        assert total == 4 and {(i, spec) for i, _, spec in rows} == {
            (f"letter{i:04d}", "notify-c5") for i in (0, 1, 2, 4)}
    finally:
        store.close()
