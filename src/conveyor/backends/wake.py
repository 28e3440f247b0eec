"""How a worker waits for work on a server engine without missing a wake-up.

An engine's subscriber thread (Redis SUBSCRIBE, PostgreSQL LISTEN) calls `bump(queue)` for each
message naming a queue, and `bump(None)` after (re)connecting, when messages may have been missed.
A worker loop takes a `snapshot` of its queues' counts just before it fetches, and `wait`s only if
no count moved since: a message that lands between its fetch and its wait wakes it at once.

A loop may also leave `on_work` with its wait: the subscriber thread calls it as the message comes
in, before the loop's own thread is even awake (Redis sends the loop's claim from there).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

Snapshot = tuple[int, tuple[int, ...]]
OnWork = Callable[[Snapshot], None]


class _Waiter:
    __slots__ = ("called", "named", "on_work", "queues", "wake")

    def __init__(self, queues: Sequence[str], wake: threading.Event, on_work: OnWork | None) -> None:
        self.queues = tuple(queues)  # in the caller's order, as its snapshots are
        self.named = frozenset(queues)
        self.wake = wake
        self.on_work = on_work
        self.called: threading.Event | None = None  # set once on_work has returned, if it was called


class WakeBoard:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        self._epoch = 0
        self._waiters: dict[threading.Event, _Waiter] = {}

    def snapshot(self, queues: Sequence[str]) -> Snapshot:
        with self._lock:
            return self._snapshot(queues)

    def _snapshot(self, queues: Sequence[str]) -> Snapshot:
        return self._epoch, tuple(self._counts.get(q, 0) for q in queues)

    def waiting(self) -> int:
        """How many loops wait now."""
        with self._lock:
            return len(self._waiters)

    def bump(self, queue: str | None) -> None:
        calls: list[tuple[_Waiter, OnWork, threading.Event, Snapshot]] = []
        with self._lock:
            if queue is None:
                self._epoch += 1
            else:
                self._counts[queue] = self._counts.get(queue, 0) + 1
            for waiter in self._waiters.values():
                if queue is not None and queue not in waiter.named:
                    continue
                if waiter.on_work is not None and waiter.called is None:
                    waiter.called = threading.Event()
                    calls.append((waiter, waiter.on_work, waiter.called, self._snapshot(waiter.queues)))
                else:
                    waiter.wake.set()
        for waiter, on_work, called, seen in calls:
            try:
                on_work(seen)
            finally:
                called.set()
                waiter.wake.set()

    def wait(self, queues: Sequence[str], seen: Snapshot | None, timeout: float, wake: threading.Event,
             on_work: OnWork | None = None) -> bool:
        """Block until a message for `queues`, `wake` is set, or `timeout`; return at once if
        anything moved since `seen` (or nothing was seen: the caller never fetched).
        `on_work`, if given, is called at most once, on the thread that brings news of work for
        `queues` (a message, or a reconnection), with the snapshot of `queues` as of that news, before
        `wake` is set. Returns whether it was called; if so, it has returned."""
        waiter = _Waiter(queues, wake, on_work)
        with self._lock:
            self._waiters[wake] = waiter
            moved = seen is None or self._snapshot(queues) != seen
        try:
            if not moved:
                wake.wait(timeout)
        finally:
            with self._lock:
                self._waiters.pop(wake, None)
                called = waiter.called
        if called is None:
            return False
        called.wait()
        return True
