"""Writers take turns: a robust process-shared mutex in the `<store>-turn` file (Linux and glibc/musl).

SQLite's own write lock is correct but hands over badly: a writer that finds it taken sleeps in
SQLite's busy handler for 1, 2, 5, 10 ms and longer, however soon the lock is freed, so two
worker processes draining one store spend much of their time asleep with the lock free. Before
its BEGIN IMMEDIATE, a writer takes this mutex instead: a waiter sleeps in the kernel (a futex)
and is woken as the holder lets go. SQLite's lock still guards correctness; the turn only orders
the writers, so a process that does not take it (an older conveyor, `?turn=off`) stays correct.

The mutex is robust: when its holder dies, the next writer gets it at once. Its wait is bounded:
after `busy_timeout` (a holder stopped with SIGSTOP, or in a long purge) the writer goes on
without its turn, to SQLite's lock and its busy handler, which report a lock held too long.

Where process-shared robust mutexes are missing (macOS, say), `WriteTurn.open` returns None and
writers queue on SQLite's lock alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import fcntl
import logging
import mmap
import os
import platform
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

logger = logging.getLogger("conveyor.sqlite")

_SIZE = 4096
_MUTEX_AT = 64  # bytes before the mutex: the header; the mutex itself needs 40 (x86-64) or 48 (arm64)
_PROCESS_SHARED, _ROBUST, _ERRORCHECK = 1, 1, 2
_OPEN_WAIT = 1.0  # seconds to wait for another process setting up the file before going without turns


def _header() -> bytes:
    """Names the mutex's layout: processes with another C library or architecture (containers
    sharing a volume) must not read each other's mutex, so they go without turns instead."""
    try:
        libc = os.confstr("CS_GNU_LIBC_VERSION") or "other"  # "glibc 2.36"; the layout is the same in all
    except (ValueError, OSError):
        libc = "other"
    text = f"conveyor-turn-1 {sys.platform} {platform.machine()} {libc.split()[0]}".encode()
    return text[:_MUTEX_AT].ljust(_MUTEX_AT, b"\0")


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Pthread:
    """The few pthread calls the turn needs; ctypes lets go of the GIL while one blocks."""

    # Each returns 0 or an errno.
    mutexattr_init: Callable[[Any], int]
    mutexattr_setpshared: Callable[[Any, int], int]
    mutexattr_setrobust: Callable[[Any, int], int]
    mutexattr_settype: Callable[[Any, int], int]
    mutexattr_destroy: Callable[[Any], int]
    mutex_init: Callable[[int, Any], int]
    mutex_trylock: Callable[[int], int]
    mutex_timedlock: Callable[[int, Any], int]
    mutex_consistent: Callable[[int], int]
    mutex_unlock: Callable[[int], int]

    def __init__(self, lib: ctypes.CDLL) -> None:
        pointer, number = ctypes.c_void_p, ctypes.c_int
        for name, arguments in {"mutexattr_init": [pointer], "mutexattr_setpshared": [pointer, number],
                                "mutexattr_setrobust": [pointer, number], "mutexattr_settype": [pointer, number],
                                "mutexattr_destroy": [pointer],
                                "mutex_init": [pointer, pointer], "mutex_trylock": [pointer],
                                "mutex_timedlock": [pointer, pointer], "mutex_consistent": [pointer],
                                "mutex_unlock": [pointer]}.items():
            function = getattr(lib, f"pthread_{name}")
            function.argtypes, function.restype = arguments, ctypes.c_int
            setattr(self, name, function)

    @classmethod
    def load(cls) -> _Pthread | None:
        if sys.platform != "linux":
            return None
        for name in (ctypes.util.find_library("c"), ctypes.util.find_library("pthread")):
            try:
                return cls(ctypes.CDLL(name))
            except (OSError, AttributeError):
                continue
        return None

    def init(self, mutex: int) -> None:
        attr = ctypes.create_string_buffer(64)  # pthread_mutexattr_t is 4 or 8 bytes
        _check(self.mutexattr_init(attr))
        try:
            _check(self.mutexattr_setpshared(attr, _PROCESS_SHARED))
            _check(self.mutexattr_setrobust(attr, _ROBUST))
            _check(self.mutexattr_settype(attr, _ERRORCHECK))  # a thread taking it twice hears so at once
            _check(self.mutex_init(mutex, attr))
        finally:
            self.mutexattr_destroy(attr)


def _check(code: int) -> None:
    if code:
        raise OSError(code, os.strerror(code))


class WriteTurn:
    """One process's view of the store's turn, shared by its threads."""

    def __init__(self, pthread: _Pthread, memory: mmap.mmap) -> None:
        self._pthread = pthread
        self._memory = memory
        self._view: ctypes.c_char | None = ctypes.c_char.from_buffer(memory, _MUTEX_AT)
        self._mutex = ctypes.addressof(self._view)
        # The mapping outlives close() while a thread waits for or holds the turn: the last one unmaps it.
        self._users = 0
        self._users_lock = threading.Lock()
        self._closed = False

    @classmethod
    def open(cls, store: Path) -> WriteTurn | None:
        """The turn of `store`, set up by the first process to open it; None where there is none."""
        pthread = _Pthread.load()
        if pthread is None:
            return None
        try:
            return cls._open(pthread, Path(f"{store}-turn"), store)
        except OSError as exc:  # a read-only directory, say: writers queue on SQLite's lock alone
            logger.debug("no write turns for %s: %s", store, exc)
            return None

    @classmethod
    def _open(cls, pthread: _Pthread, path: Path, store: Path) -> WriteTurn | None:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, os.stat(store).st_mode & 0o666)
        try:
            if not _lock_file(fd):
                return None
            try:
                if os.fstat(fd).st_size < _SIZE:
                    os.ftruncate(fd, _SIZE)
                return cls._adopt(pthread, mmap.mmap(fd, _SIZE), path)
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)  # the mapping stays

    @classmethod
    def _adopt(cls, pthread: _Pthread, memory: mmap.mmap, path: Path) -> WriteTurn | None:
        """The turn in `memory`, set up now if no process has (the caller holds the file's lock)."""
        header, found = _header(), memory[:_MUTEX_AT]
        if found == header:
            return cls(pthread, memory)
        if found.strip(b"\0"):
            logger.debug("%s was set up by another platform (%r); no write turns here", path, found.rstrip(b"\0"))
            memory.close()
            return None
        turn = cls(pthread, memory)
        pthread.init(turn._mutex)
        memory[:_MUTEX_AT] = header  # last, so nobody uses a mutex half set up
        return turn

    def acquire(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for the turn; False if it did not come (go on without it).
        A thread that holds it already is told so at once (EDEADLK: the mutex checks errors)."""
        with self._users_lock:
            if self._closed:
                return False
            self._users += 1
        code = self._pthread.mutex_trylock(self._mutex)
        if code == errno.EBUSY:
            deadline = time.time() + timeout
            whole = int(deadline)
            code = self._pthread.mutex_timedlock(self._mutex, ctypes.byref(
                _Timespec(whole, int((deadline - whole) * 1e9))))
        if code == errno.EOWNERDEAD:  # its holder died holding it: nothing to repair, only order
            code = self._pthread.mutex_consistent(self._mutex)
        if code:
            if code != errno.ETIMEDOUT:
                logger.debug("write turn not taken: %s", os.strerror(code))
            self._leave()
            return False
        return True

    def release(self) -> None:
        """Only after an `acquire` that returned True, on the same thread."""
        self._pthread.mutex_unlock(self._mutex)
        self._leave()

    def close(self) -> None:
        """Unmap the file (now, or when the last thread using the turn is done with it): a
        mapping keeps its filesystem busy. Later writes go without turns."""
        with self._users_lock:
            self._closed = True
            if self._users == 0:
                self._unmap()

    def _leave(self) -> None:
        with self._users_lock:
            self._users -= 1
            if self._closed and self._users == 0:
                self._unmap()

    def _unmap(self) -> None:
        if self._view is not None:
            self._view = None  # the buffer export, which would keep the mapping from closing
            self._memory.close()


def _lock_file(fd: int) -> bool:
    """The file's lock while its mutex is set up, waited for a moment at most."""
    deadline = time.monotonic() + _OPEN_WAIT
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.001)
