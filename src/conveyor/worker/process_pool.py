"""The process pool: each attempt runs in a child process (started with spawn, never fork),
so a job over its timeout, a cancelled job or a job that crashes its process is stopped by
killing that one child; a fresh child takes its place and the worker goes on."""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing
import queue
import signal
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

from conveyor.app import Conveyor
from conveyor.backends.base import Finish
from conveyor.errors import ConfigurationError, JobTimeout, WorkerCrashed
from conveyor.worker.execution import Attempt, classify, never_started, run_sync
from conveyor.worker.pools import OnDone

_CHECK_INTERVAL = 0.05  # how often a slot looks for a cancel while its child runs
_LOAD_LIMIT = 60.0  # seconds a new child may take to import the app before it counts as crashed
_READY = "ready"


def child_main(app_path: str, conn: Connection, max_memory: int | None = None) -> None:
    """A child process: load the app once, then run the attempts the parent sends. With
    `max_memory` (bytes), the child's data segment may not grow past it: an allocation beyond
    raises MemoryError in the job, which fails alone."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when children stop
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    from conveyor.loader import load_app

    app = load_app(app_path)
    if max_memory is not None:
        import resource

        resource.setrlimit(resource.RLIMIT_DATA, (max_memory, max_memory))
    conn.send(_READY)  # a job's timeout starts after this: importing the app is not the job's time
    while True:
        try:
            record = conn.recv()
        except EOFError:
            return
        if record is None:
            return
        conn.send(run_sync(app, Attempt(record), time.time))


def _death(code: int | None) -> str:
    """'exit code 70' or 'killed by signal SIGSEGV' (multiprocessing reports a signal as -N)."""
    if code is not None and code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by signal {signal.Signals(-code).name}"
    return f"exit code {code}"


class _Slot:
    """One child process and the thread in the parent that feeds it and watches it."""

    def __init__(self, pool: ProcessPool, index: int) -> None:
        self.pool = pool
        self.index = index
        self.process: BaseProcess | None = None
        self.conn: Connection | None = None
        self.ready = False
        self.thread = threading.Thread(target=self._main, name=f"conveyor-proc-{index}", daemon=True)

    def _spawn(self) -> None:
        parent, child = multiprocessing.Pipe()
        process = self.pool.context.Process(target=child_main, args=(self.pool.app_path, child, self.pool.max_memory),
                                            name=f"conveyor-child-{self.index}", daemon=True)
        process.start()
        child.close()
        self.process, self.conn = process, parent
        self.ready = False  # until the child says it has loaded the app

    def _kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.join(timeout=5)
        if self.conn is not None:
            self.conn.close()
        self.process = self.conn = None

    def _main(self) -> None:
        while True:
            attempt = self.pool.pending.get()
            if attempt is None:
                self._stop_child()
                return
            self.pool.on_done(attempt, self._run(attempt))

    def _run(self, attempt: Attempt) -> Finish:
        if attempt.cancel.is_set():
            return never_started(self.pool.app, attempt, time.time())
        if self.process is None or not self.process.is_alive():
            self._kill()
            self._spawn()
        if not self.ready:
            refused = self._await_ready(attempt)
            if refused is not None:
                return refused
        assert self.conn is not None and self.process is not None
        attempt.started = time.monotonic()
        attempt.handle = self
        self.conn.send(attempt.record)
        timeout = attempt.record.timeout
        while True:
            try:
                if self.conn.poll(_CHECK_INTERVAL):
                    finish: Finish = self.conn.recv()
                    return self._over_memory(finish) if _ran_out_of_memory(finish) else finish
            except (EOFError, OSError):
                pass  # the child died; the checks below say how
            outcome = self._check(attempt, timeout)
            if outcome is not None:
                return outcome

    def _over_memory(self, finish: Finish) -> Finish:
        """The job hit --max-memory: say so, and start the next attempt in a fresh child."""
        self._kill()
        assert finish.error is not None
        limit = (self.pool.max_memory or 0) / 2**20
        message = f"the job passed the worker's --max-memory limit of {limit:g} MiB; its process was replaced"
        return dataclasses.replace(finish, error=dataclasses.replace(finish.error, message=message))

    def _await_ready(self, attempt: Attempt) -> Finish | None:
        """Wait for a new child to load the app; the attempt's outcome if it is cancelled meanwhile or
        the child dies or takes longer than _LOAD_LIMIT."""
        deadline = time.monotonic() + _LOAD_LIMIT
        while time.monotonic() < deadline:
            assert self.conn is not None
            try:
                if self.conn.poll(_CHECK_INTERVAL):
                    self.ready = self.conn.recv() == _READY
                    return None
            except (EOFError, OSError):
                pass  # the child died while loading the app: _check says so
            outcome = self._check(attempt, None)
            if outcome is not None:
                return outcome
        self._kill()
        return classify(self.pool.app, attempt.record, now=time.time(), exc=WorkerCrashed(
            f"the new worker process did not load the app within {_LOAD_LIMIT:g}s"))

    def _check(self, attempt: Attempt, timeout: float | None) -> Finish | None:
        record, now = attempt.record, time.time()
        if self.process is None:  # the pool was stopped under it: the job was handed back already
            return classify(self.pool.app, record, cancelled=True, now=now)
        if attempt.cancel.is_set():
            self._kill()
            return classify(self.pool.app, record, cancelled=True, now=now)
        if timeout and attempt.started is not None and time.monotonic() - attempt.started > timeout:
            self._kill()
            return classify(self.pool.app, record, now=now,
                            exc=JobTimeout(f"the job ran past its timeout of {timeout:g}s; its process was killed"))
        if not self.process.is_alive():
            how = _death(self.process.exitcode)
            self._kill()
            return classify(self.pool.app, record, now=now,
                            exc=WorkerCrashed(f"the process running the job died ({how})"))
        return None

    def _stop_child(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(OSError):
                self.conn.send(None)
        if self.process is not None:
            self.process.join(timeout=2)
        self._kill()


def _ran_out_of_memory(finish: Finish) -> bool:
    return finish.error is not None and finish.error.type == "MemoryError"


class ProcessPool:
    def __init__(self, app: Conveyor, concurrency: int, on_done: OnDone, app_path: str | None,
                 clock: Callable[[], float] = time.time, max_memory: int | None = None) -> None:
        if not app_path:
            raise ConfigurationError("the process pool needs the app's import string (module:attribute) so "
                                     "child processes can load it; run `conveyor worker module:app --pool process`")
        self.app = app
        self.app_path = app_path
        self.max_memory = max_memory
        self.on_done = on_done
        self.context = multiprocessing.get_context("spawn")
        self.pending: queue.SimpleQueue[Attempt | None] = queue.SimpleQueue()
        self.slots = [_Slot(self, index) for index in range(concurrency)]

    def start(self) -> None:
        for slot in self.slots:
            slot._spawn()
            slot.thread.start()

    def submit(self, attempt: Attempt) -> None:
        self.pending.put(attempt)

    def cancel(self, attempt: Attempt) -> None:
        attempt.cancel.set()  # the slot watching the child kills it within _CHECK_INTERVAL

    def enforce_timeouts(self, attempts: list[Attempt]) -> None:
        pass  # each slot enforces its own child's timeout

    def step_aside(self, timeout: float) -> None:
        pass  # attempts run in child processes: the worker's loop holds no lock they need

    def take_unstarted(self) -> list[Attempt]:
        taken: list[Attempt] = []
        while True:
            try:
                item = self.pending.get_nowait()
            except queue.Empty:
                return taken
            if item is not None:
                taken.append(item)

    def stop(self) -> None:
        for _ in self.slots:
            self.pending.put(None)
        for slot in self.slots:
            slot.thread.join(timeout=1)
            slot._kill()
