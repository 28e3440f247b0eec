"""Huey, the peer the Redis rows are quoted against: its tasks, and the app its consumer runs.

The benchmark starts `python -m huey.bin.huey_consumer huey_app.huey -w 8 -k thread -q` with
$BENCH_REDIS_URL (the benchmark's own redis-server) and $BENCH_HUEY_NAME (a fresh name per
measurement, so every measurement starts from an empty queue). The producer builds its own
instance with `make_huey`. The tasks live in modules (this one, `counting`) that both sides
import under the same name, because Huey names a task after its function's module.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

from counting import count_one, tally
from huey import RedisHuey


def noop() -> None:
    """The job of the enqueue row: nothing."""


def started_at() -> float:
    """The latency probe: the wall-clock time at which a consumer thread started running it."""
    return time.time()


@dataclass
class HueyApp:
    huey: Any
    noop: Any
    count: Any
    probe: Any
    tally: Any


def make_huey(url: str, name: str) -> HueyApp:
    """A RedisHuey on `url`: BRPOP-blocking dequeue (Huey's default), results stored (None is not)."""
    huey = RedisHuey(name, url=url, results=True)
    return HueyApp(huey, huey.task(name="noop")(noop), huey.task(name="count")(count_one),
                   huey.task(name="started_at")(started_at), huey.task(name="tally")(tally))


# The consumer's instance. None on the producer side, which has no $BENCH_HUEY_NAME.
huey = (make_huey(os.environ["BENCH_REDIS_URL"], os.environ["BENCH_HUEY_NAME"]).huey
        if "BENCH_HUEY_NAME" in os.environ else None)
