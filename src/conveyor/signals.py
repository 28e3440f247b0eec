"""SIGTERM and SIGINT, handled without deadlocks.

A Python signal handler runs in the main thread between any two bytecodes, possibly while that
thread holds a lock (an Event's, logging's). A handler that sets an Event or logs can then wait on
a lock its own thread holds, forever. So the handler only writes the signal's number to a pipe,
and a thread of its own reads it and calls back, with ordinary locking.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from types import FrameType


def handle_stop_signals(first: Callable[[str], None], again: Callable[[], None]) -> None:
    """Call `first(signal name)` on the first SIGTERM or SIGINT, and `again()` on each later one.
    Call from the main thread."""
    read_end, write_end = os.pipe()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        os.write(write_end, bytes([signum]))

    def watch() -> None:
        received = 0
        while data := os.read(read_end, 16):
            for signum in data:
                received += 1
                if received == 1:
                    first(signal.Signals(signum).name)
                else:
                    again()

    threading.Thread(target=watch, name="conveyor-signals", daemon=True).start()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
