"""CPU and memory of a process tree, read from /proc (Linux), for the benchmarks.

A benchmark that runs the daemon (whose intake workers are forked from a forkserver child)
beside a sandbox wants the CPU of one subtree only: ``tree_cpu`` adds up a process and
every descendant, live or already reaped by its parent, leaving out given subtrees.
"""

from __future__ import annotations

import os
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> tuple[int, float, float] | None:
    """(ppid, own CPU s, reaped children's CPU s) from /proc/<pid>/stat."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2:].split()
    return (int(fields[1]), (int(fields[11]) + int(fields[12])) / TICK,
            (int(fields[13]) + int(fields[14])) / TICK)


def tree_cpu(root: int, exclude: set[int]) -> float:
    """CPU seconds of ``root`` and every descendant (live ones, and those their parents
    reaped), leaving out the subtrees of ``exclude`` (the sandbox).  ``root``'s own reaped
    children are not counted: a sandbox it started and stopped would land there."""
    stats = {int(p): s for p in os.listdir("/proc") if p.isdigit() and (s := _stat(int(p)))}
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        if pid in exclude or pid not in stats:
            continue
        _, own, reaped = stats[pid]
        total += own + (reaped if pid != root else 0.0)
        todo += children.get(pid, [])
    return total


def own_cpu(pid: int) -> float:
    """CPU seconds of ``pid`` itself (all its threads), not its children."""
    st = _stat(pid)
    return st[1] if st else 0.0


def peak_rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def descendants(root: int) -> list[int]:
    stats = {int(p): s for p in os.listdir("/proc") if p.isdigit() and (s := _stat(int(p)))}
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        kids = [c for c, (ppid, _, _) in stats.items() if ppid == pid]
        out += kids
        todo += kids
    return out
