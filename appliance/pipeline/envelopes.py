"""Envelopes loaded at the inserters, as the operators say they are.

The profile's ``envelopes = [...]`` of an ``[[inserter]]`` is what its feeders hold at the
first start; from then on operators change it (``appliance devices envelopes INSERTER
add|remove ID``, or the console) and ``<state>/envelopes.json`` (0600) is the truth, so a
restart keeps what was loaded.  An inserter with no list anywhere takes any envelope (a
floor that does not track envelopes: the profiles from before envelopes were checked);
a list means exactly those ids.  Every envelope id is just an id: a letter goes only to an
inserter holding its pack's exact envelope id, so a client-branded ``client1-campaign1``
envelope is never used for another pack.  Each change is one line in
``<state>/envelopes.jsonl`` (who, what, when): the floor's timeline of reloads.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from appliance.core.errors import ActionRefused
from appliance.store.journal import Journal, write_private

log = logging.getLogger("appliance.pipeline.envelopes")

#: An envelope id as an operator types it: short, plain (it lands in logs and run files).
MAX_ID = 64


class EnvelopeStock:
    """inserter name -> the envelope ids in its feeders (None: takes any envelope)."""

    def __init__(self, state_dir: Path, profile_lists: dict[str, frozenset[str]]):
        self.path = Path(state_dir) / "envelopes.json"
        self.log_path = Path(state_dir) / "envelopes.jsonl"
        self.loaded: dict[str, frozenset[str] | None] = {
            name: (ids or None) for name, ids in profile_lists.items()}
        try:
            saved = json.loads(self.path.read_text()).get("inserters", {})
        except FileNotFoundError:
            saved = {}
        except (OSError, ValueError, AttributeError) as e:  # never stop the floor: say so, use the profile
            log.warning("%s unreadable (%s); using the profile's envelope lists", self.path, e)
            saved = {}
        for name, ids in saved.items():
            if name in self.loaded:  # an inserter since removed from the profile is forgotten
                self.loaded[name] = None if ids is None else frozenset(str(i) for i in ids)

    def takes(self, inserter: str, envelope: str | None) -> bool:
        """A pack naming no envelope (a custom pack) may use any inserter."""
        ids = self.loaded.get(inserter)
        return ids is None or not envelope or envelope in ids

    def listing(self, inserter: str) -> list[str] | None:
        self._known(inserter)
        ids = self.loaded[inserter]
        return None if ids is None else sorted(ids)

    def _known(self, inserter: str) -> None:
        if inserter not in self.loaded:
            names = ", ".join(sorted(self.loaded)) or "none on this floor"
            raise ActionRefused(f"no inserter named {inserter!r}; inserters: {names}")

    def change(self, inserter: str, action: str, envelope: str, who: str = "operator") -> str:
        """Load (``add``) or unload (``remove``) one envelope id; the answer line says what
        the inserter holds now.  Raises ActionRefused (one line) for a mistake."""
        self._known(inserter)
        envelope = (envelope or "").strip()
        if not envelope or len(envelope) > MAX_ID or any(c.isspace() for c in envelope):
            raise ActionRefused(f"envelope id {envelope[:40]!r}: give the pack's envelope id, "
                                f"e.g. economy-c5 (no spaces, at most {MAX_ID} characters)")
        ids = self.loaded[inserter]
        if action == "add":
            before_any = ids is None
            ids = (ids or frozenset()) | {envelope}
            note = " (it took any envelope before: now only these)" if before_any else ""
        elif action == "remove":
            if ids is None or envelope not in ids:
                held = ("takes any envelope (no list)" if ids is None
                        else f"holds {', '.join(sorted(ids)) or 'none'}")
                raise ActionRefused(f"envelope {envelope} is not loaded at {inserter} ({held}); "
                                    f"list with 'appliance devices envelopes {inserter}'")
            ids = ids - {envelope}
            note = ""
        else:
            raise ActionRefused(f"envelopes action {action!r}: use add or remove")
        self.loaded[inserter] = ids
        self._save()
        entry = {"t": round(time.time(), 3), "inserter": inserter, "action": action, "envelope": envelope,
                 "by": who[:80], "now": sorted(ids)}
        j = Journal(self.log_path)
        try:
            j.append(entry)
        finally:
            j.close()
        return f"{inserter} holds {', '.join(sorted(ids)) or 'no envelopes'}{note}"

    def history(self, limit: int = 200) -> list[dict]:
        if not self.log_path.exists():
            return []
        return list(Journal(self.log_path).records())[-limit:]

    def _save(self) -> None:
        data = {"inserters": {n: (None if v is None else sorted(v)) for n, v in self.loaded.items()}}
        write_private(self.path, (json.dumps(data, indent=1) + "\n").encode(), durable=True)
