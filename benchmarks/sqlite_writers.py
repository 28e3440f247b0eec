"""SQLite writers from several processes: the write turn (`?turn=on`) against SQLite's busy handler alone.

    .venv/bin/python benchmarks/sqlite_writers.py [--jobs 20000] [--workers 2] [--rounds 4]

Each round and variant: a fresh store holding `--jobs` no-op jobs (enqueued in bulk); then
`--workers` worker processes drain it while a producer process enqueues 300 more, one at a time,
one every 3 ms, timing each `.delay()`. Drain jobs/s = all jobs / (first start - last finish),
read from the store's rows. The variants alternate within each round, so the ratio is taken
between runs minutes apart on the same machine.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

PRODUCED = 300
APP = textwrap.dedent("""
    import os
    import conveyor

    app = conveyor.Conveyor(os.environ["BENCH_SQLITE_URL"])

    @app.task
    def noop(i):
        pass
""")
PRODUCER = textwrap.dedent(f"""
    import json, time
    from writers_app import noop
    took = []
    for i in range({PRODUCED}):
        started = time.perf_counter()
        noop.delay(-i)
        took.append(time.perf_counter() - started)
        time.sleep(0.003)
    print(json.dumps(took))
""")


def one_run(scratch: Path, turn: str, jobs: int, workers: int) -> tuple[float, float, float, float]:
    """(drain jobs/s, producer mean, p50 and p99 in ms) for one fresh store."""
    store = Path(tempfile.mkdtemp(dir=scratch)) / "jobs.db"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(scratch), *sys.path]),
               BENCH_SQLITE_URL=f"sqlite:///{store}?turn={turn}")
    python = sys.executable
    subprocess.run([python, "-c", f"from writers_app import noop; noop.map([(i,) for i in range({jobs})])"],
                   env=env, check=True)
    pool = [subprocess.Popen([python, "-c", "from conveyor.cli import main; main()", "worker", "writers_app:app",
                              "--log-level", "WARNING"], env=env) for _ in range(workers)]
    producer = subprocess.Popen([python, "-c", PRODUCER], env=env, stdout=subprocess.PIPE)
    took = json.loads(producer.communicate(timeout=600)[0])
    db = sqlite3.connect(store)
    deadline = time.monotonic() + 600
    while db.execute("SELECT count(*) FROM conveyor_jobs WHERE state = 'completed'").fetchone()[0] < jobs + PRODUCED:
        if time.monotonic() > deadline:
            raise RuntimeError("the drain did not finish in 10 minutes")
        time.sleep(0.05)
    for worker in pool:
        worker.terminate()
    for worker in pool:
        worker.wait(timeout=60)
    first, last = db.execute("SELECT min(started_at), max(finished_at) FROM conveyor_jobs").fetchone()
    db.close()
    cuts = statistics.quantiles(took, n=100)
    return (jobs + PRODUCED) / (last - first), statistics.mean(took) * 1000, cuts[49] * 1000, cuts[98] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        scratch = Path(name)
        (scratch / "writers_app.py").write_text(APP)
        runs: dict[str, list[tuple[float, float, float, float]]] = {"on": [], "off": []}
        for round_ in range(args.rounds):
            for turn in ("on", "off") if round_ % 2 == 0 else ("off", "on"):
                runs[turn].append(one_run(scratch, turn, args.jobs, args.workers))
                rate, mean, p50, p99 = runs[turn][-1]
                print(f"round {round_ + 1} turn={turn}: {rate:,.0f} jobs/s, producer mean {mean:.2f} ms, "
                      f"p50 {p50:.2f} ms, p99 {p99:.2f} ms", flush=True)
    print(f"\n{args.workers} worker process(es), {args.jobs:,} jobs + {PRODUCED} enqueued one at a time, "
          f"median of {args.rounds} rounds (min - max)\n")
    print("| turn | drain jobs/s | producer .delay() mean ms | p50 ms | p99 ms |\n|---|--:|--:|--:|--:|")
    for turn, results in runs.items():
        cells = []
        for index, column in enumerate(zip(*results, strict=True)):
            fmt = "{:,.0f}" if index == 0 else "{:.2f}"  # jobs/s, then milliseconds
            cells.append(f"{fmt.format(statistics.median(column))} ({fmt.format(min(column))} - "
                         f"{fmt.format(max(column))})")
        print(f"| {turn} | {' | '.join(cells)} |")
    ratio = statistics.median(on[0] / off[0] for on, off in zip(runs["on"], runs["off"], strict=True))
    print(f"\ndrain, turn=on / turn=off, median of the rounds' ratios: {ratio:.2f}x")


if __name__ == "__main__":
    main()
