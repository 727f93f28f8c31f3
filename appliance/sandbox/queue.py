"""The PENDING-letter queue GET /letters reads, as the deployed server keeps it.

The real server lists a supplier's PENDING letters by priority (lower first), then queue
time, and hides each listed letter from every client for a visibility timeout; a letter
leaves the queue only when an applied status is no longer PENDING.  This is built for a
20 000-letter queue polled ten times a second: visible letters sit in one sorted list
(bisect, no sorting per request) and hidden ones in a heap by the time they reappear, so
a listing touches only the letters it returns and the ones due back.

``LetterQueue`` is also ``Sandbox.pending``: a mapping of letter id -> letter over every
queued letter, hidden or not, iterating in queue order (tests read it that way).  It is
locked because tests add and remove letters from their own thread while the server lists.
"""

from __future__ import annotations

import bisect
import heapq
import threading
from collections.abc import Iterator, MutableMapping
from itertools import count

from appliance.sandbox.letters import SandboxLetter

#: (priority, queue time, insertion number, id): the order GET /letters serves letters in.
Key = tuple[int, float, int, str]


class LetterQueue(MutableMapping):
    """Queued PENDING letters: visible ones in serving order, listed ones hidden a while."""

    def __init__(self) -> None:
        self._letters: dict[str, SandboxLetter] = {}
        self._keys: dict[str, Key] = {}
        self._visible: list[Key] = []  # sorted
        self._hidden: list[tuple[float, int, str]] = []  # heap of (visible again at, n, id)
        self._hidden_until: dict[str, float] = {}  # heap entries not here are stale
        self._seq = count()
        self._lock = threading.Lock()

    # --- the mapping (every queued letter, in queue order) ------------------------------

    def __getitem__(self, letter_id: str) -> SandboxLetter:
        return self._letters[letter_id]

    def __setitem__(self, letter_id: str, letter: SandboxLetter) -> None:
        self.add(letter, letter.history[0][1] if letter.history else 0.0)

    def __delitem__(self, letter_id: str) -> None:
        with self._lock:
            del self._letters[letter_id]
            key = self._keys.pop(letter_id)
            if self._hidden_until.pop(letter_id, None) is None:
                del self._visible[bisect.bisect_left(self._visible, key)]

    def __iter__(self) -> Iterator[str]:
        with self._lock:
            keys = sorted(self._keys.values())
        return iter([key[3] for key in keys])

    def __len__(self) -> int:
        return len(self._letters)

    def __contains__(self, letter_id: object) -> bool:
        return letter_id in self._letters

    # --- the queue -----------------------------------------------------------------------

    def add(self, letter: SandboxLetter, queued_at: float) -> None:
        """Queue a letter (again: a letter already queued keeps its place)."""
        with self._lock:
            if letter.id in self._letters:
                return
            key = (letter.priority, queued_at, next(self._seq), letter.id)
            self._letters[letter.id] = letter
            self._keys[letter.id] = key
            bisect.insort(self._visible, key)

    def hidden(self) -> int:
        """How many queued letters are hidden by a visibility timeout right now."""
        return len(self._hidden_until)

    def take(self, limit: int, now: float, hide_for: float) -> list[SandboxLetter]:
        """The first ``limit`` visible letters, each then hidden for ``hide_for`` seconds
        (0 = not hidden: the next listing shows them again)."""
        with self._lock:
            self._release(now)
            keys = self._visible[:limit]
            if hide_for > 0 and keys:
                del self._visible[:limit]
                until = now + hide_for
                for key in keys:
                    self._hidden_until[key[3]] = until
                    heapq.heappush(self._hidden, (until, key[2], key[3]))
            chosen = [self._letters[key[3]] for key in keys]
        for letter in chosen:
            letter.listed.append(now)
        return chosen

    def _release(self, now: float) -> None:
        """Put letters whose visibility timeout has run out back in their place (locked)."""
        heap = self._hidden
        while heap and heap[0][0] <= now:
            until, _, letter_id = heapq.heappop(heap)
            if self._hidden_until.get(letter_id) == until:
                del self._hidden_until[letter_id]
                bisect.insort(self._visible, self._keys[letter_id])
