"""Pilot helpers shared by the console tests on the canned daemon."""

from __future__ import annotations


async def until(pilot, cond, tries: int = 250) -> bool:
    """Wait (up to ~5 s) for ``cond()``; the answer is whether it came true."""
    for _ in range(tries):
        if cond():
            return True
        await pilot.pause(0.02)
    return bool(cond())


def screen_text(app) -> str:
    """What the terminal shows now, one line per row (dialogs and toasts included)."""
    return "\n".join("".join(seg.text for seg in strip) for strip in app.screen._compositor.render_strips())


def received(daemon, cmd: str) -> list[dict]:
    return [r.get("args") or {} for r in daemon.received if r.get("cmd") == cmd]


def widget_text(app, selector: str) -> str:
    """What the terminal shows inside one widget's region (e.g. a dialog over a screen that
    shows the same letter id behind it)."""
    region = app.screen.query_one(selector).region
    lines = screen_text(app).splitlines()[region.y:region.bottom]
    return "\n".join(line[region.x:region.right] for line in lines)



def toasts(app) -> str:
    """The notifications raised so far, as a toast shows them: plain text unless the
    notification asked for markup (then markup applied, as the defect ate "[...]")."""
    from textual.content import Content

    return "\n".join((Content.from_markup(n.message) if n.markup else Content(n.message)).plain
                     for n in app._notifications)
