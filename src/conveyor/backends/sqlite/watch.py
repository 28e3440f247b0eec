"""Wake idle workers when another connection commits to the store, without polling (Linux).

Every commit in WAL mode writes frames to the store's `-wal` file. One thread per backend watches
the store's directory with inotify and, while a worker waits, reads `PRAGMA data_version` on its
own connection after each write to that file: when it moved, some connection committed, and the
thread wakes every waiting worker. The frames are written before the commit is published in the
shared-memory index (which inotify cannot see), so after a write the thread reads the counter
again every millisecond until it moves or `SETTLE` seconds pass.

Where inotify is missing (not Linux), `WalWatch.start` returns None and workers poll instead.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import select
import struct
import threading
import time
from collections.abc import Callable
from pathlib import Path

logger = logging.getLogger("conveyor.sqlite")

_IN_MODIFY, _IN_CREATE, _IN_MOVED_TO, _IN_Q_OVERFLOW = 0x2, 0x100, 0x80, 0x4000
_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len; then `len` bytes of name
WATCHED_POLL = 0.1  # seconds between a watched waiter's own checks: the net under a missed event
SETTLE = 0.2  # seconds to keep reading the counter after a write to the -wal file
_RECHECK = 0.001


def _inotify_fd(directory: Path) -> int | None:
    """An inotify descriptor watching `directory` for writes, or None where there is no inotify."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name, use_errno=True)
        init, add_watch = libc.inotify_init1, libc.inotify_add_watch
    except (OSError, AttributeError):
        return None
    fd = init(os.O_NONBLOCK | os.O_CLOEXEC)
    if fd < 0:
        return None
    if add_watch(fd, os.fsencode(directory), _IN_MODIFY | _IN_CREATE | _IN_MOVED_TO) < 0:
        os.close(fd)
        return None
    return int(fd)


def _touches(buffer: bytes, name: bytes) -> bool:
    """Whether the inotify events in `buffer` name `name`, or some were lost (queue overflow)."""
    at = 0
    while at + _EVENT.size <= len(buffer):
        _, mask, _, length = _EVENT.unpack_from(buffer, at)
        start = at + _EVENT.size
        if mask & _IN_Q_OVERFLOW or buffer[start:start + length].rstrip(b"\0") == name:
            return True
        at = start + length
    return False


class WalWatch:
    """Sets the registered events when `version()` (the store's data_version on this thread's
    connection) moves after a write to the -wal file."""

    def __init__(self, fd: int, wal_name: str, version: Callable[[], int]) -> None:
        self._fd = fd
        self._wal = os.fsencode(wal_name)
        self._version = version
        self._lock = threading.Lock()
        self._waiters: set[threading.Event] = set()
        self._closed = False
        self._stop_reader, self._stop_writer = os.pipe()
        self._poll = select.poll()  # not select(): a descriptor past 1024 would not fit its set
        for watched in (fd, self._stop_reader):
            self._poll.register(watched, select.POLLIN)
        self.pid = os.getpid()
        self.alive = True  # False once the thread has stopped: waiters poll instead
        self._thread = threading.Thread(target=self._run, name="conveyor-sqlite-watch", daemon=True)
        self._thread.start()

    @classmethod
    def start(cls, store: Path, version: Callable[[], int]) -> WalWatch | None:
        fd = _inotify_fd(store.parent)
        return None if fd is None else cls(fd, f"{store.name}-wal", version)

    def add(self, wake: threading.Event) -> None:
        with self._lock:
            self._waiters.add(wake)

    def discard(self, wake: threading.Event) -> None:
        with self._lock:
            self._waiters.discard(wake)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        os.write(self._stop_writer, b"x")
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        os.close(self._stop_writer)

    def _run(self) -> None:
        seen: int | None = None
        try:
            while not self._closed:
                if not self._wal_written():
                    continue
                with self._lock:
                    idle = not self._waiters
                if idle:
                    seen = None  # nobody to wake: read the counter again once someone waits
                    continue
                seen = self._settle(seen)
        except Exception as exc:  # waiters go back to polling, so no wake-up is lost
            logger.warning("the SQLite store's watch stopped (%s); idle workers poll it instead", exc)
        finally:
            self.alive = False
            self._wake_all()
            os.close(self._fd)
            os.close(self._stop_reader)

    def _wal_written(self) -> bool:
        if self._fd not in {fd for fd, _ in self._poll.poll()}:
            return False
        written = False
        while True:
            try:
                buffer = os.read(self._fd, 64 * 1024)
            except BlockingIOError:
                return written
            written = written or _touches(buffer, self._wal)

    def _settle(self, seen: int | None) -> int:
        """Read the counter until it moves from `seen` (then wake the waiters) or SETTLE passes."""
        deadline = time.monotonic() + SETTLE
        while True:
            now = self._version()
            if seen is None or now != seen:
                self._wake_all()
                return now
            if time.monotonic() > deadline or self._closed:
                return now
            time.sleep(_RECHECK)

    def _wake_all(self) -> None:
        with self._lock:
            for wake in self._waiters:
                wake.set()
