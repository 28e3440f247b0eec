"""Runs one step of a measurement for one library, in that library's interpreter.

    python -m peers.driver MODULE version|setup|enqueue|mix|latency|worker [options]

with benchmarks/ as working directory and on PYTHONPATH, $BENCH_CTX (a `base.Context` as JSON) and
$BENCH_REDIS_URL set by compare.py. Prints one JSON object on its last stdout line, except `worker`,
which execs the library's worker process in place (so the pid compare.py holds is the worker's).
Timing happens here, around the library's calls only: the interpreter's start-up, the imports
and the connection are outside every timed section.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import inspect
import json
import os
import sys
import time
from typing import Any

from peers import jobs
from peers.base import Context

LATENCY_INTERVAL = 0.005  # seconds between two probes, as in bench.py
LATENCY_TIMEOUT = 60.0


def wait_for_probes(client: Any, key: str, count: int, timeout: float) -> dict[int, float]:
    deadline = time.monotonic() + timeout
    while True:
        starts = jobs.read_probes(client, key)
        if len(starts) >= count:
            return starts
        if time.monotonic() > deadline:
            raise SystemExit(f"only {len(starts)} of {count} probes started within {timeout:.0f}s")
        time.sleep(0.02)


def run_sync(module: Any, ctx: Context, args: argparse.Namespace) -> dict[str, Any]:
    producer = module.open_producer(ctx)
    try:
        return measure(producer, ctx, args, lambda call: call)
    finally:
        producer.close()


def run_async(module: Any, ctx: Context, args: argparse.Namespace) -> dict[str, Any]:
    loop = asyncio.new_event_loop()
    try:
        producer = loop.run_until_complete(module.open_producer(ctx))
        try:
            return measure(producer, ctx, args, loop.run_until_complete)
        finally:
            loop.run_until_complete(producer.close())
    finally:
        loop.close()


def measure(producer: Any, ctx: Context, args: argparse.Namespace, run: Any) -> dict[str, Any]:
    if args.op == "mix":  # the realistic mix's backlog: the same jobs for every library, untimed
        values: list[Any] = (jobs.sleep_durations(args.jobs) if args.task.startswith("io")
                             else [jobs.CPU_LOOPS] * args.jobs)
        run(producer.enqueue_mix(args.task, args.key, values))
        return {"jobs": len(values), "mean": sum(values) / len(values) if values else 0.0}
    if args.op == "enqueue" and args.chunks > 1:  # the backlog: timed per chunk, as the backlog grows
        verb = producer.enqueue_bulk if args.mode == "bulk" and producer.bulk is not None else producer.enqueue_one
        seconds = []
        for number in range(args.chunks):
            size = args.jobs // args.chunks + (1 if number < args.jobs % args.chunks else 0)
            start = time.perf_counter()
            run(verb(args.key, size))
            seconds.append(time.perf_counter() - start)
        return {"chunk_seconds": seconds, "bulk": producer.bulk if verb == producer.enqueue_bulk else None}
    if args.op == "enqueue":
        if args.mode == "bulk" and producer.bulk is None:
            if not args.fill:
                return {"seconds": None, "bulk": None}
            run(producer.enqueue_one(args.key, args.jobs))  # the backlog for a drain: untimed
            return {"seconds": None, "bulk": None}
        verb = producer.enqueue_bulk if args.mode == "bulk" else producer.enqueue_one
        start = time.perf_counter()
        run(verb(args.key, args.jobs))
        return {"seconds": time.perf_counter() - start, "bulk": producer.bulk}
    # latency: one warm-up probe, then `count` probes one every 5 ms to the idle, running worker
    import redis

    client = redis.Redis.from_url(ctx.redis_url)
    run(producer.probe(args.key, 0))
    wait_for_probes(client, args.key, 1, LATENCY_TIMEOUT)
    time.sleep(0.2)  # let it settle back into its idle wait
    if producer.is_async:
        sent = run(paced_async(producer, args.key, args.count))
    else:
        sent = paced_sync(producer, args.key, args.count)
    starts = wait_for_probes(client, args.key, args.count + 1, LATENCY_TIMEOUT)
    client.close()
    return {"latencies_ms": [(starts[index] - enqueued) * 1000 for index, enqueued in sent.items()]}


def paced_sync(producer: Any, key: str, count: int) -> dict[int, float]:
    sent: dict[int, float] = {}
    next_send = time.perf_counter()
    for index in range(1, count + 1):
        delay = next_send - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        next_send += LATENCY_INTERVAL
        sent[index] = time.time()
        producer.probe(key, index)
    return sent


async def paced_async(producer: Any, key: str, count: int) -> dict[int, float]:
    sent: dict[int, float] = {}
    next_send = time.perf_counter()
    for index in range(1, count + 1):
        delay = next_send - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        next_send += LATENCY_INTERVAL
        sent[index] = time.time()
        await producer.probe(key, index)
    return sent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m peers.driver")
    parser.add_argument("module", help="the adapter module, e.g. peers.huey_peer")
    parser.add_argument("op", choices=["version", "setup", "enqueue", "mix", "latency", "worker"])
    parser.add_argument("--task", choices=["io", "io_async", "cpu"], default="io", help="mix: the job")
    parser.add_argument("--mode", choices=["one", "bulk"], default="one")
    parser.add_argument("--jobs", type=int, default=0)
    parser.add_argument("--count", type=int, default=0)
    parser.add_argument("--key", default="")
    parser.add_argument("--chunks", type=int, default=1, help="enqueue in this many chunks, each timed")
    parser.add_argument("--fill", action="store_true", help="enqueue --mode bulk without a bulk API: "
                        "enqueue one at a time, untimed")
    args = parser.parse_args(argv)
    module = importlib.import_module(args.module)
    if args.op == "version":
        print(json.dumps({"version": module.version()}))
        return 0
    ctx = Context.from_env()
    if ctx is None:
        raise SystemExit("$BENCH_CTX is not set")
    if args.op == "setup":
        if hasattr(module, "setup"):
            module.setup(ctx)
        print(json.dumps({}))
        return 0
    if args.op == "worker":
        argv_ = [sys.executable, *module.worker_argv(ctx)]
        env = dict(os.environ)
        env.update(getattr(module, "worker_env", lambda _ctx: {})(ctx))
        sys.stdout.flush()
        os.execve(sys.executable, argv_, env)
    runner = run_async if inspect.iscoroutinefunction(module.open_producer) else run_sync
    print(json.dumps(runner(module, ctx, args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
