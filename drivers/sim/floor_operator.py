"""The simulated floor's operator: settles pieces on hold from what the machines really did.

A piece the appliance cannot vouch for (a report lost, a machine restarted) goes on
operator hold; on a real floor a person looks at the machine.  The simulators log every
piece they handle (``log=PATH``, one JSON line each), so the demo's operator, like the
torture run's, decides from that ground truth: franked -> dispatched; enclosed but not
franked -> enclosed (the franker takes it again); otherwise -> reprint.
"""

from __future__ import annotations

import json
from pathlib import Path


def machine_truth(logs: dict[str, Path]) -> dict[str, dict[str, str]]:
    """machine -> letter id -> what it last did with the piece (inserted/franked/diverted/pulled)."""
    out: dict[str, dict[str, str]] = {}
    for name, path in logs.items():
        seen: dict[str, str] = {}
        if path.exists():
            for line in path.read_text().splitlines():
                try:
                    r = json.loads(line)
                except ValueError:
                    continue  # a line cut by a kill
                seen[r["letter_id"]] = r["outcome"]
        out[name] = seen
    return out


def outcome(letter_id: str, truth: dict[str, dict[str, str]], inserters: list[str],
            frankers: list[str]) -> str:
    """What an operator would tell the appliance about a held piece."""
    if any(truth.get(f, {}).get(letter_id) == "franked" for f in frankers):
        return "dispatched"
    if any(truth.get(i, {}).get(letter_id) == "inserted" for i in inserters):
        return "enclosed"
    return "reprint"  # never enclosed, or spoilt: print it again
