"""At risk and missed, on a real pipeline against the local sandbox with the deadline clock
injected: the alert comes at the lead time before the cut-off (warning, then critical), says
why, and closes when the letter leaves; a miss is counted once, kept on disk, and shown in
``status``, the Prometheus metrics and the MI report and export."""

from __future__ import annotations

import asyncio
import io
from datetime import datetime, timezone

from appliance.cli.mi import format_report, write_csv
from appliance.cli.operate import format_status
from appliance.mi.missed import read_missed
from appliance.mi.service import MiService
from appliance.pipeline.operator import Operator
from appliance.runtime.metrics import PipelineCollector
from tests.fixtures.floor import Floor, new_sandbox
from tests.pipeline.test_deadlines_e2e import ONE_PRINTER

KEY = "deadline:2026-12-02:notify-sameday"


def at(h: int, m: int) -> float:  # Wednesday 2 December 2026, London is on GMT
    return datetime(2026, 12, 2, h, m, tzinfo=timezone.utc).timestamp()


def deadline_alert(pipe):
    return pipe.alerts.open.get(KEY)


async def test_at_risk_alert_before_the_cutoff_then_missed_counted_everywhere(tmp_path):
    profile = tmp_path / "floor.toml"
    profile.write_text(ONE_PRINTER)
    sb = await new_sandbox(good=0)
    now = [at(13, 0)]
    try:
        async with Floor(sb, tmp_path, profile=profile) as f:
            pipe = f.pipe
            pipe.deadline_clock = lambda: now[0]
            op = Operator(pipe)
            await op.pause("press")
            urgent = sb.add_letter(specification_id="notify-sameday", group_id="same-day")
            await f.wait(lambda: (f.store.get(urgent) or {}).get("stage") == "held")
            assert f.store.get(urgent)["dispatch_by"] == at(17, 30)

            now[0] = at(16, 0)  # 90 min before the 17:30 collection: a person still has time
            assert not pipe.check_deadlines() and deadline_alert(pipe) is None

            now[0] = at(16, 45)  # within the 60 min lead: at risk, a warning saying why
            risks = pipe.check_deadlines()
            assert [r.id for r in risks] == [urgent] and "press paused" in risks[0].why
            a = deadline_alert(pipe)
            assert a.severity == "warning" and "will miss the 17:30 collection in 45 min" in a.message
            snap = pipe.snapshot()
            assert snap["deadlines"]["at_risk"] == 1 and snap["deadlines"]["risks"][0]["id"] == urgent
            assert "at risk 1" in format_status(snap) and "press paused" in format_status(snap)
            assert "press paused" in pipe.deadline_detail(f.store.get(urgent))["at_risk"]

            now[0] = at(17, 10)  # in the last half of the lead: critical
            pipe.check_deadlines()
            assert deadline_alert(pipe).severity == "critical"

            now[0] = at(17, 31)  # passed, still here: missed, counted once
            pipe.check_deadlines()
            pipe.check_deadlines()
            assert "missed the 17:30 collection" in deadline_alert(pipe).message
            await op.resume("press")
            await f.wait_final([urgent])
            assert sb.letters[urgent].status == "DISPATCHED"
            pipe.check_deadlines()
            assert deadline_alert(pipe) is None  # closed: it has left
            assert KEY in {c.key for c in pipe.alerts.closed_alerts(50)}

            snap = pipe.snapshot()
            dl = snap["deadlines"]
            assert dl["missed_today"] == 1 and dl["missed"] == {"2026-12-02": {"notify-sameday": 1}}
            assert "missed today 1" in format_status(snap)
            collector = PipelineCollector(pipe, asyncio.get_running_loop())
            families = await asyncio.to_thread(lambda: list(collector.collect()))
            missed = next(m for m in families if m.name == "appliance_deadlines_missed")
            assert [(s.labels, s.value) for s in missed.samples] == [
                ({"day": "2026-12-02", "pack": "notify-sameday"}, 1.0)]
    finally:
        await sb.stop()
    # kept on disk (a restart reads it back), and in the day's MI report and export
    assert read_missed(f.state).counts == {"2026-12-02": {"notify-sameday": 1}}
    mi = MiService(f.state, f.profile.mi, {}, clock=lambda: at(18, 0))
    try:
        rep = mi.report("2026-12-02")
    finally:
        mi.close()
    assert rep["missed_deadlines"] == {"notify-sameday": 1}
    assert "missed dispatch deadlines 1: notify-sameday 1" in format_report(rep)  # appliance mi preview
    out = io.StringIO()
    write_csv(rep, out)
    assert "2026-12-02,notify-sameday,,missed-deadlines,no,1," in out.getvalue()
