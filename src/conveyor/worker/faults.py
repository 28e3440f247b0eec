"""Fault injection for the fault suite (tests/faults): off unless an environment variable that no
deployment sets turns it on. Each switch stages one failure the suite must show conveyor survives,
or, for the negative controls, one that the suite's checker must catch.

- CONVEYOR_FAULT_KILL_AT=<point> (with CONVEYOR_FAULT_KILL_AFTER=n, default 1): the worker process
  calls os._exit(137) the n-th time it reaches <point>, as if SIGKILLed exactly there. Points:
  `after_claim` (jobs claimed, none started), `before_finish` (attempts done, outcomes not yet
  recorded), `before_heartbeat` (leases about to be extended).
- CONVEYOR_FAULT_SKIP_HEARTBEATS=1: the supervisor never extends a lease, so leases lapse under
  running jobs and other workers take them: the negative control for the lease check.
"""

from __future__ import annotations

import os
import threading

KILL_POINTS = frozenset({"after_claim", "before_finish", "before_heartbeat"})
KILL_AT = os.environ.get("CONVEYOR_FAULT_KILL_AT") or None
KILL_AFTER = int(os.environ.get("CONVEYOR_FAULT_KILL_AFTER") or 1)
SKIP_HEARTBEATS = os.environ.get("CONVEYOR_FAULT_SKIP_HEARTBEATS") == "1"

_hits = 0
_lock = threading.Lock()


def point(name: str) -> None:
    """Die here if the suite asked for it (a no-op otherwise: one comparison)."""
    global _hits
    if name != KILL_AT:
        return
    with _lock:
        _hits += 1
        if _hits >= KILL_AFTER:
            os._exit(137)
