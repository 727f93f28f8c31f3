"""Listing takes what it asks for (issue 15): against a sandbox that hides what it lists,
the appliance never asks for a full page and takes what fits.  A cold start asks for 20;
every letter it listed it ACCEPTED inside that listing's window, in the API's order."""

from __future__ import annotations

from tests.fixtures.floor import Floor, new_sandbox


async def test_polls_ask_only_for_what_the_listing_window_takes_in_time(tmp_path):
    sb = await new_sandbox(300, visibility_timeout=60.0, apply_delay=0.1)
    urgent = sb.add_letters(5, bad_ratio=0, priority=1)  # queued last, listed first
    try:
        async with Floor(sb, tmp_path, visibility_timeout=60.0, accept_margin=10.0) as f:
            await f.wait_final(sb.letters, timeout=60)
            let_go = f.pipe.counters["let_go"]
    finally:
        await sb.stop()
    limits = [int(r.query["limit"]) for r in sb.log if r.kind == "list"]
    # a cold start asks for 20 and the window grows from there; never "a full page, take
    # what fits" (2 500, hiding letters it cannot take from every other box)
    assert limits[0] == 20 and max(limits) < 2500, limits
    # nothing listed was left to time out at Notify: each letter listed once, ACCEPTED in time
    assert let_go == 0
    assert all(len(letter.listed) == 1 for letter in sb.letters.values())
    first = min(letter.listed[0] for letter in sb.letters.values())
    assert all(sb.letters[lid].listed[0] == first for lid in urgent)  # priority first, as served
