"""How a worker waits for work on a server engine without missing a wake-up.

An engine's subscriber thread (Redis SUBSCRIBE, PostgreSQL LISTEN) calls `bump(queue)` for each
message naming a queue, and `bump(None)` after (re)connecting, when messages may have been missed.
A worker loop takes a `snapshot` of its queues' counts just before it fetches, and `wait`s only if
no count moved since: a message that lands between its fetch and its wait wakes it at once.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

Snapshot = tuple[int, tuple[int, ...]]


class WakeBoard:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        self._epoch = 0
        self._waiters: dict[threading.Event, frozenset[str]] = {}

    def snapshot(self, queues: Sequence[str]) -> Snapshot:
        with self._lock:
            return self._epoch, tuple(self._counts.get(q, 0) for q in queues)

    def bump(self, queue: str | None) -> None:
        with self._lock:
            if queue is None:
                self._epoch += 1
            else:
                self._counts[queue] = self._counts.get(queue, 0) + 1
            for event, queues in self._waiters.items():
                if queue is None or queue in queues:
                    event.set()

    def wait(self, queues: Sequence[str], seen: Snapshot | None, timeout: float, wake: threading.Event) -> None:
        """Block until a message for `queues`, `wake` is set, or `timeout`; return at once if
        anything moved since `seen` (or nothing was seen: the caller never fetched)."""
        with self._lock:
            self._waiters[wake] = frozenset(queues)
        try:
            if seen is not None and self.snapshot(queues) == seen:
                wake.wait(timeout)
        finally:
            with self._lock:
                self._waiters.pop(wake, None)
