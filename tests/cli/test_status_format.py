"""`appliance status` shows the open alerts the daemon sends, most severe first: the first
ten, with severity and how often each cause repeated (it used to print the last ten of the
list, which with the life cycle's order were the least severe)."""

from __future__ import annotations

from appliance.cli.operate import format_status


def alert(i: int, severity: str, count: int = 1) -> dict:
    return {"key": f"k{i}", "severity": severity, "source": "dev", "message": f"condition {i}",
            "letter_id": None, "t": 1_900_000_000.0 + i, "count": count, "state": "open"}


def test_status_lists_the_most_severe_open_alerts_first_with_their_counts():
    alerts = [alert(0, "critical", 25)] + [alert(i, "info") for i in range(1, 12)]
    out = format_status({"api_ok": True, "alerts": alerts, "devices": {}, "counts": {}})
    lines = out.splitlines()
    start = lines.index(next(x for x in lines if x.startswith("open alerts 12")))
    shown = lines[start + 1:]
    assert len(shown) == 10 and "first 10" in lines[start]
    assert shown[0].split()[0] == "critical" and "x25" in shown[0] and "condition 0" in shown[0]
    assert "condition 11" not in out
