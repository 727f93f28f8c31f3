"""Missed dispatch deadlines kept on disk (``<state>/deadlines/missed.json``, 0600): the
pipeline counts them (``appliance.pipeline.deadlines``), MI reports and exports them per day
and pack, whether or not the daemon runs."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from appliance.core.deadlines import MissedTally
from appliance.store.journal import write_private

log = logging.getLogger("appliance.mi.missed")

#: The line item missed deadlines appear under in an MI export (never submitted to Notify).
MISSED_ITEM = "missed-deadlines"


def missed_path(state_dir: Path) -> Path:
    return Path(state_dir) / "deadlines" / "missed.json"


def read_missed(state_dir: Path) -> MissedTally:
    """The kept counts; a missing file is none, an unreadable one is logged and taken as none."""
    path = missed_path(state_dir)
    try:
        doc = json.loads(path.read_text())
        counts, ids = doc.get("missed") or {}, doc.get("letters") or []
        if not all(isinstance(p, dict) for p in counts.values()) or not isinstance(ids, list):
            raise ValueError("not a table of days")
        return MissedTally(counts, ids=[str(i) for i in ids])
    except FileNotFoundError:
        return MissedTally()
    except (OSError, ValueError, AttributeError) as e:
        log.warning("%s unreadable (%s); missed-deadline counts start from zero", path, e)
        return MissedTally()


def write_missed(state_dir: Path, tally: MissedTally) -> None:
    path = missed_path(state_dir)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    doc = {"missed": tally.counts, "letters": list(tally.ids)}  # letters: counted already, never again
    write_private(path, json.dumps(doc, sort_keys=True).encode(), durable=True)
