"""The letters listing pages hot and archived letters together: every letter once, right totals."""

from appliance.control.listing import archived_page
from appliance.control.server import ControlServer
from appliance.store.store import Store

ARCHIVED = {f"L{i:03d}": ("REJECTED" if i % 4 == 0 else "DISPATCHED") for i in range(20)}
COUNTS = {"REJECTED": 5, "DISPATCHED": 15}


def test_page_is_newest_archived_first_and_skips_excluded():
    total, page = archived_page(ARCHIVED, COUNTS, exclude={"L019", "nothot"}, start=0, limit=3)
    assert total == 19
    assert [r["id"] for r in page] == ["L018", "L017", "L016"]
    assert page[0] == {"id": "L018", "status": "DISPATCHED", "stage": "archived", "specification_id": None}


def test_status_filter_and_id_search_count_only_matches():
    total, page = archived_page(ARCHIVED, COUNTS, status="REJECTED", exclude={"L016"}, limit=10)
    assert total == 4 and [r["id"] for r in page] == ["L012", "L008", "L004", "L000"]
    total, page = archived_page(ARCHIVED, COUNTS, q="L01", status="DISPATCHED", start=2, limit=10)
    assert total == 8 and [r["id"] for r in page] == ["L017", "L015", "L014", "L013", "L011", "L010"]


def test_start_past_the_end_gives_an_empty_page():
    assert archived_page(ARCHIVED, COUNTS, start=50, limit=10) == (20, [])
    assert archived_page(ARCHIVED, COUNTS, start=0, limit=0) == (20, [])


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


async def test_paging_through_a_real_store_lists_every_letter_once(tmp_path):
    store = finished_store(tmp_path / "state", 30)
    try:
        assert "letter0003" not in store.archived_statuses()

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
    finally:
        store.close()


async def test_archived_letters_keep_their_specification_across_a_restart(tmp_path):
    finished_store(tmp_path / "state", 5).close()
    store = Store(tmp_path / "state")
    try:
        assert dict(store.archived_specifications()) == {f"letter{i:04d}": "notify-c5" for i in (0, 1, 2, 4)}
    finally:
        store.close()
