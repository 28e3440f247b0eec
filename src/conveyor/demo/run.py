"""`conveyor demo`: enqueue a small shop's background work, run it on real worker processes,
watch it live, and sum up what happened.

Everything goes through the public API on a fresh SQLite store in the demo's directory, so
what a new user sees (priorities, delayed jobs, retries with backoff, progress, a permanent
failure) is exactly what their own app gets.
"""

from __future__ import annotations

import importlib
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from conveyor.app import Conveyor
from conveyor.job import FINISHED_STATES, JobRecord, JobState

APP_PATH = "conveyor.demo.app:app"
STORE_FILES = ("demo.db", "demo.db-wal", "demo.db-shm", "demo.db-turn")
OUTPUTS = {"outbox": "welcome-*.eml", "thumbnails": "product-*.png", "invoices": "invoice-*.pdf"}
WORKER_LOG = "workers.log"
REFRESH_SECONDS = 0.1  # the live display's ~10 frames a second
PLAIN_LINE_SECONDS = 1.0  # one status line a second when stdout is a file or a pipe
STOP_GRACE_SECONDS = 10.0  # after SIGTERM, before SIGKILL
INTERRUPT_SETTLE_SECONDS = 3.0  # after Ctrl-C, before SIGTERM
BASE_TIME_LIMIT = 60.0
MAX_RUNNING_SHOWN = 12
STATE_STYLES = {JobState.SCHEDULED: "magenta", JobState.QUEUED: "cyan", JobState.RUNNING: "yellow",
                JobState.COMPLETED: "green", JobState.FAILED: "red", JobState.CANCELLED: "dim"}
NAMES = ["ada", "grace", "linus", "guido", "margaret", "ken", "barbara", "dennis", "frances", "alan"]
# Every third signup is on a mail server that fails once, every sixth on one that fails twice.
DOMAINS = ["flaky-mail.example", "example.com", "example.org", "overloaded-mail.example", "example.net",
           "example.com"]
FAILING_ORDER, FAILING_AMOUNT = 4999, -1999  # a refund sent to the invoice task by mistake

Outcome = Literal["finished", "time limit", "workers exited", "interrupted"]
EXIT_CODES: dict[Outcome, int] = {"finished": 0, "time limit": 1, "workers exited": 1, "interrupted": 130}


@dataclass(frozen=True)
class Snapshot:
    """What the display shows: jobs by state (over every queue) and the running jobs."""

    states: Counter[JobState]
    running: list[JobRecord]

    @property
    def finished(self) -> int:
        return sum(self.states[state] for state in FINISHED_STATES)


def run_demo(directory: str, job_count: int, workers: int) -> int:
    """Run the demo in `directory`; 0 when every job finished, 1 if some did not, 130 on Ctrl-C."""
    console = Console()
    root = prepare_directory(Path(directory))
    env = demo_environment(root)
    os.environ.update({key: env[key] for key in ("CONVEYOR_URL", "CONVEYOR_DEMO_DIR")})
    app = load_demo_app(env["CONVEYOR_URL"])
    console.print(Text(f"conveyor demo: {job_count} jobs for a small shop, {workers} worker processes, "
                       f"store {app.display_url}", style="bold"), soft_wrap=True)
    started = time.monotonic()
    enqueue_jobs(job_count)
    with open(root / WORKER_LOG, "w") as log:
        processes = start_workers(workers, env, log)
        outcome: Outcome | None = None
        try:
            outcome = watch(app, job_count, processes, console, started)
        except KeyboardInterrupt:
            outcome = "interrupted"
        finally:  # whatever went wrong, never leave worker processes behind
            elapsed = time.monotonic() - started
            stop_workers(processes, interrupted=outcome == "interrupted")
    print_summary(console, app, root, outcome, elapsed, processes)
    app.close()
    return EXIT_CODES[outcome]


# -- setting up ---------------------------------------------------------------------------


def prepare_directory(directory: Path) -> Path:
    """Make the directory and clear what an earlier run left (its store and the files its
    tasks wrote), so counts and files describe this run only. Nothing else is touched."""
    root = directory.resolve()
    root.mkdir(parents=True, exist_ok=True)
    for name in STORE_FILES:
        (root / name).unlink(missing_ok=True)
    for folder, pattern in OUTPUTS.items():
        for old in (root / folder).glob(pattern):
            old.unlink()
    return root


def demo_environment(root: Path) -> dict[str, str]:
    """The workers' environment. Other CONVEYOR_* settings of the user's shell (a queue, a pool,
    --burst) are dropped: they would make the workers ignore or abandon the demo's jobs."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("CONVEYOR_")}
    env["CONVEYOR_URL"] = f"sqlite:///{root / 'demo.db'}"  # an absolute path: sqlite:////...
    env["CONVEYOR_DEMO_DIR"] = str(root)
    return env


def load_demo_app(url: str) -> Conveyor:
    """Import the demo app after $CONVEYOR_URL is set; if it was imported earlier (a second
    run in one process), point it at this run's store."""
    app: Conveyor = importlib.import_module("conveyor.demo.app").app
    if app.url != url:
        app.close()
        app.url = url
    return app


def signups(count: int) -> list[dict[str, Any]]:
    return [{"to": f"{NAMES[i % len(NAMES)]}.{i}@{DOMAINS[i % len(DOMAINS)]}",
             "username": f"{NAMES[i % len(NAMES)]}{i}"} for i in range(count)]


def enqueue_jobs(job_count: int) -> None:
    """Mix the jobs: emails, thumbnails (a third at high priority), invoices (half delayed, as
    a billing run would be) and one invoice that always fails."""
    from conveyor.demo import app as shop

    rest = job_count - 1  # one job is the failing invoice
    emails = (rest * 2 + 4) // 5  # 40%, rounded up, so small demos still show a retry
    invoices = rest // 4
    thumbnails = rest - emails - invoices
    rng = random.Random(job_count)  # the same amounts on every run of the same size
    shop.send_welcome_email.map(signups(emails))
    images = [{"image_id": 1001 + i, "size": 64 if i % 2 else 96} for i in range(thumbnails)]
    urgent = thumbnails // 3  # products going on sale now: their thumbnails jump the queue
    enqueue_some(shop.make_thumbnail.with_options(priority=10).map, images[:urgent])
    enqueue_some(shop.make_thumbnail.map, images[urgent:])
    orders = [(5001 + i, rng.randrange(450, 25_000)) for i in range(invoices)]
    half = invoices // 2
    enqueue_some(shop.render_invoice.map, orders[:half])
    enqueue_some(shop.render_invoice.with_options(delay=2.0).map, orders[half:])
    shop.render_invoice.delay(FAILING_ORDER, FAILING_AMOUNT)


def enqueue_some(enqueue: Callable[[list[Any]], Any], items: list[Any]) -> None:
    """`.map()` one batch, skipped when a small demo has no items for it."""
    if items:
        enqueue(items)


def start_workers(count: int, env: dict[str, str], log: IO[str]) -> list[subprocess.Popen[bytes]]:
    """Real worker processes, as a user would run them. Their logs go to a file: written to the
    terminal they would tear the live display. No --burst: a retry is scheduled in the future,
    and a burst worker would leave before it is due."""
    command = [sys.executable, "-m", "conveyor.cli", "worker", APP_PATH, "-c", "4", "--lease", "5",
               "--heartbeat", "1", "--log-level", "WARNING"]
    return [subprocess.Popen(command, env=env, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
            for _ in range(count)]


def stop_workers(processes: list[subprocess.Popen[bytes]], *, interrupted: bool = False) -> None:
    """SIGTERM (finish running jobs, hand back the rest), then SIGKILL after a grace period."""
    if interrupted:
        # Ctrl-C also reached the workers (one process group): let them finish their jobs, as
        # our SIGTERM would be their second signal, which hands running jobs back at once.
        wait_for_exit(processes, INTERRUPT_SETTLE_SECONDS)
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    wait_for_exit(processes, STOP_GRACE_SECONDS)
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait()


def wait_for_exit(processes: list[subprocess.Popen[bytes]], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    for process in processes:
        with suppress(subprocess.TimeoutExpired):
            process.wait(timeout=max(0.0, deadline - time.monotonic()))


# -- watching -----------------------------------------------------------------------------


def take_snapshot(app: Conveyor) -> Snapshot:
    states: Counter[JobState] = Counter()
    for by_state in app.counts().values():
        states.update(by_state)
    running = [job.record for job in app.jobs(state=JobState.RUNNING, limit=MAX_RUNNING_SHOWN)]
    return Snapshot(states, running)


def time_limit(job_count: int) -> float:
    """A minute, plus time for big demos (a job takes ~0.2 s and eight run at once per two workers)."""
    return BASE_TIME_LIMIT + 0.05 * job_count


def watch(app: Conveyor, job_count: int, processes: list[subprocess.Popen[bytes]], console: Console,
          started: float) -> Outcome:
    deadline = started + time_limit(job_count)

    def outcome(snapshot: Snapshot) -> Outcome | None:
        if snapshot.finished >= job_count:
            return "finished"
        if all(process.poll() is not None for process in processes):
            return "workers exited"  # nobody is left to run the jobs: waiting would be in vain
        if time.monotonic() >= deadline:
            return "time limit"
        return None

    if sys.stdout.isatty():
        return watch_live(app, console, started, job_count, outcome)
    return watch_plain(app, started, job_count, outcome)


def watch_live(app: Conveyor, console: Console, started: float, job_count: int,
               outcome: Callable[[Snapshot], Outcome | None]) -> Outcome:
    # Refreshed by this loop, not by rich's thread: each frame is drawn right after its read.
    with Live(console=console, auto_refresh=False, transient=False) as live:
        while True:
            snapshot = take_snapshot(app)
            live.update(render(snapshot, time.monotonic() - started, job_count), refresh=True)
            if (result := outcome(snapshot)) is not None:
                return result
            time.sleep(REFRESH_SECONDS)


def watch_plain(app: Conveyor, started: float, job_count: int,
                outcome: Callable[[Snapshot], Outcome | None]) -> Outcome:
    next_line = 0.0
    while True:
        snapshot = take_snapshot(app)
        result = outcome(snapshot)
        now = time.monotonic()
        if now >= next_line or result is not None:
            print(plain_line(snapshot, now - started, job_count), flush=True)
            next_line = now + PLAIN_LINE_SECONDS
        if result is not None:
            return result
        time.sleep(REFRESH_SECONDS)


def plain_line(snapshot: Snapshot, elapsed: float, job_count: int) -> str:
    states = "  ".join(f"{state} {snapshot.states[state]}" for state in JobState)
    return f"[{elapsed:5.1f}s] {snapshot.finished}/{job_count} finished  {states}"


def render(snapshot: Snapshot, elapsed: float, job_count: int) -> RenderableType:
    overall = Table.grid(padding=(0, 1))
    overall.add_row(Text(f"{elapsed:5.1f}s", style="bold"), ProgressBar(total=job_count,
                    completed=snapshot.finished, width=40), Text(f"{snapshot.finished}/{job_count} finished"))
    states = Table(box=None, padding=(0, 2), show_edge=False)
    for state in JobState:
        states.add_column(Text(str(state), style=STATE_STYLES[state]), justify="right")
    states.add_row(*(str(snapshot.states[state]) for state in JobState))
    running = running_table(snapshot.running) if snapshot.running else Text("nothing running", style="dim")
    return Group(overall, Text(), states, Text(), running)


def running_table(running: list[JobRecord]) -> Table:
    table = Table(title="running now", title_justify="left", box=None, padding=(0, 1), expand=False)
    for name in ("task", "job", "attempt", "progress", "", "message"):
        table.add_column(name, no_wrap=True)
    for record in sorted(running, key=lambda r: (r.task, r.id)):
        progress = record.progress or 0.0
        attempt = Text(f"{record.attempts}/{record.max_attempts}", style="yellow" if record.attempts > 1 else "")
        table.add_row(record.task, record.id[:8], attempt, ProgressBar(total=100, completed=progress, width=20),
                      f"{progress:3.0f}%", Text(record.progress_message or ""))
    return table


# -- summing up ---------------------------------------------------------------------------


def all_records(app: Conveyor) -> list[JobRecord]:
    records: list[JobRecord] = []
    while batch := app.jobs(limit=500, offset=len(records)):
        records.extend(job.record for job in batch)
    return records


def files_written(root: Path) -> dict[str, int]:
    return {folder: len(list((root / folder).glob(pattern))) for folder, pattern in OUTPUTS.items()}


def say(console: Console, text: str, style: str = "") -> None:
    # Text, not markup: error messages may hold [brackets]; soft_wrap keeps long lines whole.
    console.print(Text(text, style=style), soft_wrap=True)


def print_summary(console: Console, app: Conveyor, root: Path, outcome: Outcome, elapsed: float,
                  processes: list[subprocess.Popen[bytes]]) -> None:
    records = all_records(app)
    by_state = Counter(record.state for record in records)
    finished = sum(by_state[state] for state in FINISHED_STATES)
    retries = sum(max(0, record.attempts - 1) for record in records)
    say(console, "")
    say(console, "Summary", "bold")
    states = ", ".join(f"{by_state[state]} {state}" for state in JobState if by_state[state])
    say(console, f"  jobs      {len(records)}: {states}")
    say(console, f"  time      {elapsed:.1f} s, {finished / elapsed if elapsed else 0:.1f} jobs/s")
    say(console, f"  retries   {retries} (failed attempts run again, with exponential backoff)")
    files = ", ".join(f"{count} in {folder}/" for folder, count in files_written(root).items())
    say(console, f"  files     {files} under {root}")
    print_failures(console, [record for record in records if record.state == JobState.FAILED])
    print_outcome(console, root, outcome, len(records) - finished, processes)
    say(console, f"Inspect the jobs: conveyor jobs list --url {app.display_url}", "dim")


def print_failures(console: Console, failed: list[JobRecord]) -> None:
    if not failed:
        return
    say(console, f"  failed    {len(failed)} job(s), not retried further:", "red")
    for record in failed:
        errors = record.errors
        last = f"{errors[-1].type}: {errors[-1].message}" if errors else "no error recorded"
        say(console, f"    {record.task} (job {record.id[:8]}, {record.attempts} attempt(s)): {last}")


def print_outcome(console: Console, root: Path, outcome: Outcome, unfinished: int,
                  processes: list[subprocess.Popen[bytes]]) -> None:
    if outcome == "finished":
        say(console, "Every job finished.", "green")
        return
    if outcome == "workers exited":
        codes = ", ".join(str(process.returncode) for process in processes)
        say(console, f"The workers exited early (exit codes {codes}); their log, {root / WORKER_LOG}, ends:", "red")
        for line in (root / WORKER_LOG).read_text(errors="replace").splitlines()[-15:]:
            say(console, f"    {line}")
    elif outcome == "time limit":
        say(console, "Stopped at the time limit.", "red")
    else:
        say(console, "Interrupted.", "red")
    say(console, f"{unfinished} job(s) did not finish.", "red")
