"""Every Redis key conveyor uses, built here and passed to the scripts as KEYS.

All keys of one namespace share the hash tag `{namespace}`, so on Redis Cluster they live in one
slot and every script's keys are in the slot it runs on. (Spreading one namespace's queues over
slots would make a fetch over several queues, or a job moving between its queue and the shared
running set, a cross-slot operation; run one namespace per app or per group of queues to spread load.)
"""

from __future__ import annotations

from collections.abc import Sequence

from conveyor.job import JobState

# The listing sets, in lib.lua's order. Running jobs have none: they are listed from `running`.
LISTED_STATES = (JobState.SCHEDULED, JobState.QUEUED, JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED)
FIXED = ("jobs", "payloads", "results", "errors", "seq", "counts", "queues", "running", "expiry", "paused",
         "schedules", "locks")


class Keys:
    """The names in one namespace, in the layout lib.lua expects."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.prefix = f"conveyor:{{{namespace}}}"
        self.fixed = [f"{self.prefix}:{name}" for name in FIXED] + [
            f"{self.prefix}:state:{state}" for state in LISTED_STATES]
        for name, key in zip(FIXED, self.fixed, strict=False):
            setattr(self, name, key)
        self.state = {state: f"{self.prefix}:state:{state}" for state in LISTED_STATES}
        self.wake = f"{self.prefix}:wake"  # a pub/sub channel, not a key
        # Outside the jobs' layout: only report_worker.lua and plain reads touch these.
        self.workers = [f"{self.prefix}:{name}" for name in ("workers", "worker_expiry", "stats", "stats_index")]

    def queued(self, queue: str) -> str:
        return f"{self.prefix}:queued:{queue}"

    def scheduled(self, queue: str) -> str:
        return f"{self.prefix}:scheduled:{queue}"

    def layout(self, queues: Sequence[str] = ()) -> tuple[list[str], list[str]]:
        """KEYS and the start of ARGV for a script touching `queues` (each named once)."""
        names = list(dict.fromkeys(queues))
        keys = [*self.fixed]
        for queue in names:
            keys += [self.queued(queue), self.scheduled(queue)]
        return keys, [self.wake, str(len(names)), *names]

    # Typed attributes set in __init__, spelled out for readers and type checkers.
    jobs: str
    payloads: str
    results: str
    errors: str
    seq: str
    counts: str
    queues: str
    running: str
    expiry: str
    paused: str
    schedules: str
    locks: str
