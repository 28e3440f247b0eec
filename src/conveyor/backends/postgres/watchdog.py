"""A watchdog for statements that get no reply: it closes the connection under a statement that has
waited past its deadline, so a half-open connection (a stalled network path, a peer that froze)
turns into a connection error the engine handles, instead of a thread blocked forever. libpq
has no read timeout, and TCP keepalives cannot see a path that still acknowledges packets."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any


class Watchdog:
    def __init__(self, limit: float) -> None:
        self.limit = limit
        self.cuts = 0  # connections closed so far, for tests and logs
        self._waiting: dict[int, tuple[Any, float]] = {}  # id(connection) -> (connection, deadline)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = threading.Event()

    @contextmanager
    def watching(self, connection: Any, extra: float = 0.0, limit: float | None = None) -> Iterator[None]:
        """Run the block with `connection` watched: past `limit + extra` seconds (the watchdog's
        limit unless given) it is closed."""
        if self._thread is None:
            self._start()
        key = id(connection)
        self._waiting[key] = (connection, time.monotonic() + (self.limit if limit is None else limit) + extra)
        try:
            yield
        finally:
            self._waiting.pop(key, None)

    def close(self) -> None:
        self._closed.set()

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._watch, name="conveyor-pg-watchdog", daemon=True)
                self._thread.start()

    def _watch(self) -> None:
        interval = max(0.05, min(1.0, self.limit / 4))
        while not self._closed.wait(interval):
            now = time.monotonic()
            for key, (connection, deadline) in list(self._waiting.items()):
                if now > deadline and self._waiting.pop(key, None) is not None:
                    self._cut(connection)

    def _cut(self, connection: Any) -> None:
        """Shut the socket down under psycopg: its wait sees the end of the stream and the connection
        is marked broken (the pool then drops it)."""
        with suppress(Exception):
            duplicate = socket.socket(fileno=os.dup(connection.pgconn.socket))
            try:
                duplicate.shutdown(socket.SHUT_RDWR)
                self.cuts += 1
            finally:
                duplicate.close()
