#!/usr/bin/env python
"""Profile conveyor's hot paths with py-spy: where a no-op job's time goes.

    python benchmarks/profile.py [--engine sqlite|redis|postgres] [--path drain|enqueue|bulk]
                                 [--jobs N] [--top K] [--out DIR]

`drain`: N no-op jobs are enqueued first (not profiled), then one real worker process
(`python -m conveyor.cli worker bench:app -c 8`, as bench.py runs it) drains them under
`py-spy record --threads`; `enqueue` and `bulk`: a producer process enqueues N jobs one at a time
(`task.delay`) or in one `task.map` under py-spy. The run writes a speedscope profile and
collapsed stacks to `--out` (default benchmarks/results/profile-<engine>-<path>-<time>/) and
prints the functions with the most samples, by own time and by total time, for conveyor's threads.
Needs py-spy (`pip install py-spy`) and, for Redis and PostgreSQL, the servers bench.py starts.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from bench import HERE, QUEUE, RedisServer, open_app, postgres_server, scratch_dir, store_url

RESULTS = HERE / "results"


@contextlib.contextmanager
def engine_url(engine: str, directory: Path) -> Iterator[str]:
    if engine == "sqlite":
        yield store_url(directory)
    elif engine == "redis":
        (directory / "redis").mkdir()
        server = RedisServer(directory / "redis").start()
        try:
            yield server.url("profile")
        finally:
            server.stop()
    else:
        with postgres_server(directory) as server:
            yield server.url(schema="profile")


def py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(found).exists():
        raise SystemExit("py-spy is not installed: pip install py-spy")
    return found


def record(command: list[str], out: Path, env: dict[str, str], rate: int) -> None:
    """Run `command` under py-spy twice over the same work would double it: one run, two formats
    (py-spy writes one format per run, so the raw stacks are written and speedscope made from them)."""
    subprocess.run([py_spy(), "record", "--threads", "--gil", "--rate", str(rate), "--format", "raw",
                    "-o", str(out / "stacks.txt"), "--", *command], env=env, check=True, cwd=HERE,
                   stdout=subprocess.DEVNULL)


def summarise(stacks: Path, top: int) -> str:
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in stacks.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        count = int(count_text)
        frames = stack.split(";")
        samples += count
        own[_short(frames[-1])] += count
        for name in {_short(f) for f in frames}:
            total[name] += count
    lines = [f"{samples} samples (all threads, idle waits included)", "", "own time:"]
    lines += [f"  {100 * n / samples:5.1f}%  {name}" for name, n in own.most_common(top)]
    lines += ["", "total time (the function and what it calls):"]
    lines += [f"  {100 * n / samples:5.1f}%  {name}" for name, n in total.most_common(top)]
    return "\n".join(lines)


def _short(frame: str) -> str:
    """`worker (conveyor/worker/worker.py:123)` -> `worker (conveyor/worker/worker.py)`: per function."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "src/", "lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{name} ({path})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", choices=("sqlite", "redis", "postgres"), default="redis")
    parser.add_argument("--path", choices=("drain", "enqueue", "bulk"), default="drain")
    parser.add_argument("--jobs", type=int, default=50_000)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = args.out or RESULTS / f"profile-{args.engine}-{args.path}-{stamp}"
    out.mkdir(parents=True, exist_ok=True)
    with scratch_dir(None) as directory, engine_url(args.engine, directory) as url:
        env = dict(os.environ, CONVEYOR_URL=url,
                   PYTHONPATH=os.pathsep.join(p for p in (str(HERE), os.environ.get("PYTHONPATH")) if p))
        if args.path == "drain":
            producer, tasks = open_app(url)
            tasks.noop.map([()] * args.jobs)
            producer.close()
            command = [sys.executable, "-m", "conveyor.cli", "worker", "bench:app", "-q", QUEUE, "-c", "8",
                       "--burst", "--log-level", "WARNING"]
        else:
            command = [sys.executable, str(HERE / "profile.py"), "--produce", args.path, str(args.jobs)]
        began = time.perf_counter()
        record(command, out, env, args.rate)
        took = time.perf_counter() - began
    print(f"{args.engine} {args.path}: {args.jobs} jobs in {took:.2f}s under py-spy "
          f"({args.jobs / took:,.0f} jobs/s, profiler overhead included)")
    report = summarise(out / "stacks.txt", args.top)
    (out / "summary.txt").write_text(report + "\n")
    print(report)
    print(f"\nstacks: {out / 'stacks.txt'} (collapsed; open in speedscope.app or flamegraph.pl)")
    return 0


def produce(path: str, jobs: int) -> None:
    producer, tasks = open_app(os.environ["CONVEYOR_URL"])
    if path == "bulk":
        tasks.noop.map([()] * jobs)
    else:
        for _ in range(jobs):
            tasks.noop.delay()
    producer.close()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--produce"]:
        produce(sys.argv[2], int(sys.argv[3]))
        sys.exit(0)
    sys.exit(main())
