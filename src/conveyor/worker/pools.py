"""Where attempts run. `LocalPool`: sync tasks on threads, async tasks on one event loop
(the `thread` and `async` pools). `ProcessPool` (in process_pool.py): each attempt in a child
process that can be killed on timeout or cancel. Both report through `on_done`."""

from __future__ import annotations

import asyncio
import ctypes
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from contextlib import suppress
from typing import Protocol

from conveyor.app import Conveyor
from conveyor.backends.base import Finish
from conveyor.errors import JobTimeout
from conveyor.worker.execution import Attempt, run_async, run_sync

OnDone = Callable[[Attempt, Finish], None]


class Pool(Protocol):
    def start(self) -> None: ...

    def submit(self, attempt: Attempt) -> None: ...

    def cancel(self, attempt: Attempt) -> None:
        """Stop a running attempt whose job was cancelled; it reports CANCELLED."""
        ...

    def enforce_timeouts(self, attempts: list[Attempt]) -> None:
        """Stop attempts that ran past their job's timeout; they report a JobTimeout error."""
        ...

    def take_unstarted(self) -> list[Attempt]:
        """Remove and return attempts that have not begun (handed back at shutdown)."""
        ...

    def step_aside(self, timeout: float) -> None:
        """Block the caller (at most `timeout`) until one of the attempts submitted and given a
        slot has begun, if any is waiting to: so that it starts without waiting for the caller's
        thread to let go of the GIL."""
        ...

    def stop(self) -> None: ...


def raise_in_thread(thread_id: int, exc_type: type[BaseException]) -> bool:
    """Raise `exc_type` in another thread at its next Python instruction (the only way to stop
    a thread; a thread blocked in C code sees it when it returns to Python)."""
    done = ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), ctypes.py_object(exc_type))
    return bool(done == 1)


class EventLoopThread:
    """An asyncio loop running in a daemon thread: the worker's event loop for async tasks."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="conveyor-loop", daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=5)


class LocalPool:
    """Sync tasks on threads (started as the load needs them), async tasks on one event loop. At most
    `concurrency` attempts of either kind run at once; attempts submitted beyond that (prefetched
    jobs) wait in order and start as running ones end."""

    def __init__(self, app: Conveyor, concurrency: int, on_done: OnDone, clock: Callable[[], float] = time.time):
        self.app = app
        self.concurrency = concurrency
        self.on_done = on_done
        self.clock = clock
        self._pending: queue.SimpleQueue[Attempt | None] = queue.SimpleQueue()  # admitted, for the threads
        self._waiting: deque[Attempt] = deque()  # submitted, not admitted yet
        self._admitted = 0
        self._threads: list[threading.Thread] = []
        self._sync_load = 0
        self._lock = threading.Lock()
        self._loop = EventLoopThread()
        self._stepped_aside: threading.Lock | None = None  # see step_aside

    def start(self) -> None:
        self._loop.start()

    def submit(self, attempt: Attempt) -> None:
        with self._lock:
            if self._admitted >= self.concurrency:
                self._waiting.append(attempt)
                return
            self._admitted += 1
        self._dispatch(attempt)

    def _dispatch(self, attempt: Attempt) -> None:
        task = self.app.tasks.get(attempt.record.task)
        if task is not None and task.is_async:
            self._loop.loop.call_soon_threadsafe(self._start_async, attempt)
            return
        with self._lock:
            self._sync_load += 1  # threads are started as the load needs them, up to concurrency
            if self._sync_load > len(self._threads) and len(self._threads) < self.concurrency:
                thread = threading.Thread(target=self._thread_main, name=f"conveyor-job-{len(self._threads)}",
                                          daemon=True)
                self._threads.append(thread)
                thread.start()
        self._pending.put(attempt)

    def _ended(self) -> None:
        """An admitted attempt ended: its place goes to the longest-waiting attempt, if any."""
        with self._lock:
            following = self._waiting.popleft() if self._waiting else None
            if following is None:
                self._admitted -= 1
        if following is not None:
            self._dispatch(following)

    def _thread_main(self) -> None:
        while True:
            attempt = self._pending.get()
            if attempt is None:
                return
            attempt.started = time.monotonic()
            if (waiting := self._stepped_aside) is not None:
                with suppress(RuntimeError):  # another thread let the loop go on first
                    waiting.release()
            finish = run_sync(self.app, attempt, self.clock)
            with self._lock:
                self._sync_load -= 1
            self._ended()
            self.on_done(attempt, finish)

    def _start_async(self, attempt: Attempt) -> None:
        attempt.started = time.monotonic()
        task = self._loop.loop.create_task(run_async(self.app, attempt, self.clock))
        attempt.handle = task
        task.add_done_callback(lambda t: self._async_done(attempt, t))

    def _async_done(self, attempt: Attempt, task: asyncio.Task[Finish]) -> None:
        self._ended()
        if not task.cancelled() and task.exception() is None:
            self.on_done(attempt, task.result())
        # a task cancelled at shutdown reports nothing: the worker hands its job back

    def cancel(self, attempt: Attempt) -> None:
        attempt.cancel.set()
        handle = attempt.handle
        if isinstance(handle, asyncio.Task):
            self._loop.loop.call_soon_threadsafe(handle.cancel)

    def enforce_timeouts(self, attempts: list[Attempt]) -> None:
        # async tasks time themselves out with asyncio.timeout; threads need help
        now = time.monotonic()
        for attempt in attempts:
            timeout, started, thread_id = attempt.record.timeout, attempt.started, attempt.thread_id
            overdue = timeout and started is not None and now - started > timeout
            if overdue and thread_id is not None and raise_in_thread(thread_id, JobTimeout):
                attempt.started = None  # raise once

    def take_unstarted(self) -> list[Attempt]:
        with self._lock:
            taken, self._waiting = list(self._waiting), deque()
        while True:
            try:
                item = self._pending.get_nowait()
            except queue.Empty:
                return taken
            if item is not None:
                taken.append(item)
                with self._lock:
                    self._sync_load -= 1
                    self._admitted -= 1

    def step_aside(self, timeout: float) -> None:
        """For sync tasks: a thread handed an attempt must wake and then take the GIL, which the
        worker's loop holds until it next blocks, some 30-50 µs later on an idle worker: the loop
        blocks here instead, until a thread has taken its attempt. (Async tasks start on the event
        loop's thread as soon as it gets the GIL; they do not wait here.)"""
        waiting = threading.Lock()  # a bare lock: the cheapest to let go of for the thread that starts
        waiting.acquire()
        self._stepped_aside = waiting
        try:
            if not self._pending.empty():  # else every attempt handed to a thread has been taken
                waiting.acquire(timeout=timeout)
        finally:
            self._stepped_aside = None

    def stop(self) -> None:
        for _ in self._threads:
            self._pending.put(None)
        loop = self._loop.loop
        if loop.is_running():
            asyncio.run_coroutine_threadsafe(_cancel_all(), loop).result(timeout=5)
        self._loop.stop()


async def _cancel_all() -> None:
    current = asyncio.current_task()
    tasks = [t for t in asyncio.all_tasks() if t is not current]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
