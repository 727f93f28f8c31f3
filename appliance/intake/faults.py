"""One fault classification for every intake failure, and what to do about it.  Pure.

=========  ==========================================  =====================================
class      examples                                     the letter
=========  ==========================================  =====================================
content    hash mismatch, unreadable, encrypted,        REJECTED with that reason code, at
           too many sheets/sides, wrong page size or    once (the same bytes would fail the
           rotation, active content, over the           same way again)
           complexity budget, over the size cap
transport  timeouts, resets, short bodies, stalls,      tried again later with a fresh
           5xx, 429, storage 403/404/503, /data 404,    pre-signed URL, on a backoff schedule
           DNS, TLS, a pre-signed host not allowed,     that holds no worker; after the retry
           a redirect from storage, an API answer       budget (default 2 h): held for an
           that breaks the contract                     operator with an alert, never REJECTED
worker     the worker died or overran its deadline      tried once more; the second time:
                                                        REJECTED PDF_TOO_COMPLEX naming the
                                                        limit that was hit
=========  ==========================================  =====================================
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum

from appliance.core.status import REJECT_REASONS


class FaultClass(StrEnum):
    CONTENT = "content"
    TRANSPORT = "transport"
    WORKER = "worker"


@dataclass(frozen=True)
class Fault:
    cls: FaultClass
    kind: str  # content: the reason code; transport: what failed (stall, http, api...); worker: the limit
    detail: str  # one line, our own words (never an error body from outside)


def content(code: str, detail: str = "") -> Fault:
    if code not in REJECT_REASONS:
        raise ValueError(f"unknown reason code {code}")
    return Fault(FaultClass.CONTENT, code, detail)


def transport(kind: str, detail: str) -> Fault:
    return Fault(FaultClass.TRANSPORT, kind, detail)


def worker(kind: str, detail: str) -> Fault:
    return Fault(FaultClass.WORKER, kind, detail)


@dataclass(frozen=True)
class RetryPolicy:
    first: float = 5.0  # seconds before the first retry
    factor: float = 3.0
    cap: float = 300.0  # longest wait between two tries
    budget: float = 2 * 3600.0  # seconds from the first fault until a person is asked
    jitter: float = 0.2  # +- share of each wait, so letters that failed together spread out
    deaths: int = 2  # a worker dying this often on one letter: the letter is the cause


@dataclass(frozen=True)
class Decision:
    action: str  # "reject" | "retry" | "hold"
    code: str | None = None  # reject: reason code
    text: str | None = None  # reject: reasonText; hold: why
    at: float = 0.0  # retry: when


def backoff(attempts: int, policy: RetryPolicy, rand: float) -> float:
    """Wait before try ``attempts + 1`` (``rand`` in [0, 1) spreads it by +- jitter)."""
    base = min(policy.cap, policy.first * policy.factor ** max(0, attempts - 1))
    return base * (1 + policy.jitter * (2 * rand - 1))


def _duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h".replace(".0 h", " h")
    if seconds >= 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s"


def reject_text(code: str, detail: str) -> str:
    return (REJECT_REASONS[code] + (f" ({detail})" if detail else ""))[:500]


def decide(fault: Fault, *, attempts: int, first_fault: float | None, deaths: int, now: float,
           policy: RetryPolicy = RetryPolicy(), rand: float | None = None) -> Decision:
    """What to do with a letter after ``fault``.

    ``attempts``: failed tries so far including this one; ``first_fault``: when the first
    of them happened (None: this is the first); ``deaths``: worker deaths on this letter
    before this one."""
    r = random.random() if rand is None else rand
    if fault.cls is FaultClass.CONTENT:
        return Decision("reject", fault.kind, reject_text(fault.kind, fault.detail))
    if fault.cls is FaultClass.WORKER:
        if deaths + 1 >= policy.deaths:
            return Decision("reject", "PDF_TOO_COMPLEX",
                            reject_text("PDF_TOO_COMPLEX", f"{fault.detail}, {deaths + 1} times"))
        return Decision("retry", at=now + min(policy.first, 1.0))
    started = now if first_fault is None else first_fault
    if now - started >= policy.budget:
        return Decision("hold", text=f"PDF not fetched for {_duration(now - started)} ({attempts} tries; "
                                     f"last: {fault.detail})")
    return Decision("retry", at=now + backoff(attempts, policy, r))
