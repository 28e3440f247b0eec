"""The `conveyor` command. Every option can also come from the environment: the common ones under
short names (CONVEYOR_URL, CONVEYOR_APP, CONVEYOR_CONCURRENCY, ...), every other one as
CONVEYOR_<COMMAND>_<OPTION>, e.g. CONVEYOR_JOBS_LIST_LIMIT (see docs/cli.md).

Exit codes: 0 success; 1 an error conveyor reports in one line (bad store, bad input);
2 a usage error (unknown option, missing argument); 3 a job, task or schedule that does not exist;
130 interrupted.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import click

from conveyor.app import Conveyor
from conveyor.errors import ConfigurationError, ConveyorError, JobNotFound, ScheduleNotFound, UnknownTask
from conveyor.job import FINISHED_STATES, JobRecord, JobState

F = TypeVar("F", bound=Callable[..., Any])

EXIT_ERROR, EXIT_NOT_FOUND = 1, 3


def _fail(message: str, code: int = EXIT_ERROR) -> None:
    click.secho(f"error: {message}", fg="red", err=True)
    sys.exit(code)


def reports_errors(fn: F) -> F:
    """Turn conveyor's errors into one clear line and a documented exit code, never a traceback."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (JobNotFound, ScheduleNotFound, UnknownTask) as exc:
            _fail(str(exc), EXIT_NOT_FOUND)
        except ConveyorError as exc:
            _fail(str(exc))
        except KeyboardInterrupt:
            sys.exit(130)
    return wrapper  # type: ignore[return-value]


def _open_app(app_path: str | None, url: str | None) -> Conveyor:
    from conveyor.loader import load_app

    if app_path:
        app = load_app(app_path)
        if url:
            app.url = url
        return app
    return Conveyor(url)


def store_options(fn: F) -> F:
    """--app and --url: which app (for its tasks and settings) or just which store."""
    fn = click.option("--url", envvar="CONVEYOR_URL", help="Store URL, e.g. sqlite:///conveyor.db "
                      "[env CONVEYOR_URL]; defaults to the app's.")(fn)
    fn = click.option("--app", "-A", "app_path", envvar="CONVEYOR_APP", metavar="MODULE:APP",
                      help="The app's import string [env CONVEYOR_APP].")(fn)
    return fn


def _when(ts: float | None) -> str:
    return "-" if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


def log_options(fn: F) -> F:
    fn = click.option("--log-level", default="INFO", envvar="CONVEYOR_LOG_LEVEL", show_default=True)(fn)
    return click.option("--log-format", type=click.Choice(["text", "json"]), default="text",
                        envvar="CONVEYOR_LOG_FORMAT")(fn)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "auto_envvar_prefix": "CONVEYOR",
                                "show_default": True})
@click.version_option(package_name="conveyor")
def main() -> None:
    """conveyor: background jobs and scheduled tasks."""


@main.command()
@click.argument("app_path", metavar="MODULE:APP", envvar="CONVEYOR_APP")
@click.option("-q", "--queue", "queues", multiple=True, envvar="CONVEYOR_QUEUES",
              help="Queue to work (repeat for several) [env CONVEYOR_QUEUES, space-separated].")
@click.option("-c", "--concurrency", type=click.IntRange(min=1), envvar="CONVEYOR_CONCURRENCY",
              help="Jobs run at once (default: 8 threads, 64 async, one process per core).")
@click.option("--pool", type=click.Choice(["thread", "process", "async"]), default="thread",
              envvar="CONVEYOR_POOL", show_default=True)
@click.option("--burst", is_flag=True, envvar="CONVEYOR_BURST", help="Exit when no job is due.")
@click.option("--max-jobs", type=click.IntRange(min=1), envvar="CONVEYOR_MAX_JOBS", help="Exit after N jobs.")
@click.option("--shutdown-timeout", type=click.FloatRange(min=0), default=30.0, show_default=True,
              envvar="CONVEYOR_SHUTDOWN_TIMEOUT", help="Seconds running jobs get to finish on SIGTERM.")
@click.option("--prefetch", type=click.IntRange(min=0), envvar="CONVEYOR_PREFETCH",
              help="Jobs claimed beyond those that can start now (default: automatic, while jobs take under "
                   "1 ms: 4 per slot on Redis and PostgreSQL, 1 on SQLite; 0: never).")
@click.option("--lease", type=click.FloatRange(min=0.1), envvar="CONVEYOR_LEASE",
              help="Lease length in seconds (default: the app's, 30).")
@click.option("--heartbeat", type=click.FloatRange(min=0.05), envvar="CONVEYOR_HEARTBEAT",
              help="Heartbeat interval in seconds (default: the app's, 5).")
@click.option("--url", envvar="CONVEYOR_URL", help="Store URL, overriding the app's.")
@click.option("--scheduler", "with_scheduler", is_flag=True, envvar="CONVEYOR_SCHEDULER",
              help="Also fire the app's schedules from this worker (safe with other schedulers).")
@click.option("--max-memory", type=click.FloatRange(min=1), metavar="MIB",
              help="With --pool process: a job whose process grows past this many MiB fails with "
                   "MemoryError and its process is replaced.")
@log_options
@reports_errors
def worker(app_path: str, queues: tuple[str, ...], concurrency: int | None, pool: str, burst: bool,
           max_jobs: int | None, shutdown_timeout: float, prefetch: int | None, lease: float | None,
           heartbeat: float | None, url: str | None, with_scheduler: bool, max_memory: float | None,
           log_format: str, log_level: str) -> None:
    """Run jobs from the app's queues until stopped (SIGTERM or Ctrl-C: finish, then hand back)."""
    from conveyor import logs
    from conveyor.scheduler import Scheduler
    from conveyor.worker import Worker

    logs.configure(log_format, log_level)
    app = _open_app(app_path, url)
    if lease:
        app.lease_seconds = lease
    if heartbeat:
        app.heartbeat_interval = heartbeat
    if app.heartbeat_interval >= app.lease_seconds:
        app.heartbeat_interval = app.lease_seconds / 3
    names = [q for item in queues for q in item.split()]
    runner = Worker(app, queues=names or None, concurrency=concurrency, pool=pool,  # type: ignore[arg-type]
                    burst=burst, max_jobs=max_jobs, shutdown_timeout=shutdown_timeout, prefetch=prefetch,
                    max_memory_mib=max_memory)
    scheduler = Scheduler(app).start() if with_scheduler else None
    try:
        runner.run()
    finally:
        if scheduler is not None:
            scheduler.stop()


@main.command()
@click.argument("app_path", metavar="MODULE:APP", envvar="CONVEYOR_APP")
@click.option("--url", envvar="CONVEYOR_URL", help="Store URL, overriding the app's.")
@log_options
@reports_errors
def scheduler(app_path: str, url: str | None, log_format: str, log_level: str) -> None:
    """Fire the app's schedules until stopped. Run several for availability: each tick still fires once."""
    from conveyor import logs
    from conveyor.scheduler import Scheduler
    from conveyor.signals import handle_stop_signals

    logs.configure(log_format, log_level)
    app = _open_app(app_path, url)
    if not app.schedules:
        _fail(f"{app_path} defines no schedules: add @app.periodic(...) or app.schedule(...)")
    runner = Scheduler(app)
    handle_stop_signals(lambda name: runner.stopping.set(), runner.stopping.set)
    runner.run()


@main.group()
def cron() -> None:
    """Show, run, pause and resume the app's schedules."""


def _app_argument(fn: F) -> F:
    fn = click.option("--url", envvar="CONVEYOR_URL", help="Store URL, overriding the app's.")(fn)
    return click.option("--app", "-A", "app_path", envvar="CONVEYOR_APP", metavar="MODULE:APP", required=True,
                        help="The app's import string, which defines the schedules [env CONVEYOR_APP].")(fn)


@cron.command("list")
@_app_argument
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@reports_errors
def cron_list(app_path: str, url: str | None, as_json: bool) -> None:
    """Each schedule: its expression, next and last run, and the job the last run made."""
    rows = [status.to_json() for status in _open_app(app_path, url).schedule_status()]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no schedules")
    for row in rows:
        status = "paused" if row["paused"] else f"next {_when(row['next_run'])}"
        click.echo(f"{row['name']}  {row['when']}  {status}  last {_when(row['last_fired_at'])}  "
                   f"job {row['last_job_id'] or '-'}  missed={row['missed']}")


@cron.command("run")
@click.argument("name")
@_app_argument
@reports_errors
def cron_run(name: str, app_path: str, url: str | None) -> None:
    """Fire a schedule once now (its ticks are unchanged)."""
    job = _open_app(app_path, url).run_schedule(name)
    click.echo(job.id)


@cron.command("pause")
@click.argument("names", nargs=-1, required=True)
@_app_argument
@reports_errors
def cron_pause(names: tuple[str, ...], app_path: str, url: str | None) -> None:
    """Stop firing these schedules; ticks while paused are skipped."""
    app = _open_app(app_path, url)
    for name in names:
        app.pause_schedule(name)
        click.echo(f"paused {name}")


@cron.command("resume")
@click.argument("names", nargs=-1, required=True)
@_app_argument
@reports_errors
def cron_resume(names: tuple[str, ...], app_path: str, url: str | None) -> None:
    """Fire these schedules again, from their next tick."""
    app = _open_app(app_path, url)
    for name in names:
        app.resume_schedule(name)
        click.echo(f"resumed {name}")


@main.command()
@click.argument("task_name", metavar="TASK")
@click.option("--args", "args_json", default="[]", help="Positional arguments as a JSON array.")
@click.option("--kwargs", "kwargs_json", default="{}", help="Keyword arguments as a JSON object.")
@click.option("--queue", "-q", help="Queue (default: the task's).")
@click.option("--priority", type=int, help="Priority; higher runs sooner.")
@click.option("--delay", type=float, help="Seconds to wait before the job is due.")
@click.option("--job-id", help="A unique id: enqueueing it again returns the existing job.")
@store_options
@reports_errors
def enqueue(task_name: str, args_json: str, kwargs_json: str, queue: str | None, priority: int | None,
            delay: float | None, job_id: str | None, app_path: str | None, url: str | None) -> None:
    """Enqueue a job by task name and print its id."""
    try:
        args, kwargs = json.loads(args_json), json.loads(kwargs_json)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not valid JSON: {exc}") from None
    if not isinstance(args, list) or not isinstance(kwargs, dict):
        raise click.BadParameter("--args takes a JSON array and --kwargs a JSON object")
    app = _open_app(app_path, url)
    if app_path:
        app.get_task(task_name)  # an unknown task is an error here, not a failed job later
    options = {k: v for k, v in {"queue": queue, "priority": priority, "delay": delay, "job_id": job_id}.items()
               if v is not None}
    job = app.enqueue(task_name, args, kwargs, **options)
    click.echo(job.id)


@main.command()
@store_options
@reports_errors
def migrate(app_path: str | None, url: str | None) -> None:
    """Create or upgrade the store's schema (PostgreSQL; the others need nothing)."""
    backend = _open_app(app_path, url).backend
    if not backend.url.startswith("postgresql:"):
        click.echo(f"{backend.url.split(':', 1)[0]} stores need no migrations")
        return
    from conveyor.backends.postgres import PostgresBackend

    assert isinstance(backend, PostgresBackend)
    applied = [*backend.applied_on_open, *backend.migrate()]
    done = f"applied {', '.join(map(str, applied))}" if applied else "nothing to apply"
    click.echo(f"schema {backend.schema} is at version {backend.schema_version()}: {done}")


@main.command()
@click.argument("path", type=click.Path(dir_okay=False))
@store_options
@reports_errors
def backup(path: str, app_path: str | None, url: str | None) -> None:
    """Copy a SQLite store to PATH: one consistent snapshot, taken while workers keep running."""
    app = _open_app(app_path, url)
    scheme = app.url.split(":", 1)[0]
    if scheme != "sqlite":  # said before connecting: the server may be one this machine cannot reach
        how = "redis-cli --rdb FILE (or the server's AOF/RDB files)" if scheme.startswith("redis") \
            else "pg_dump (with -n SCHEMA for conveyor's schema)"
        raise ConfigurationError(f"conveyor backup copies SQLite stores; back a {scheme} store up with {how}")
    from conveyor.backends.sqlite import SQLiteBackend

    backend = app.backend
    assert isinstance(backend, SQLiteBackend)
    began = time.monotonic()
    written = backend.backup(path)
    click.echo(f"backed up {backend.path} to {written} in {time.monotonic() - began:.2f}s")


@main.command()
@store_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@reports_errors
def info(app_path: str | None, url: str | None, as_json: bool) -> None:
    """Queues and their jobs by state."""
    app = _open_app(app_path, url)
    counts = app.counts()
    paused = app.backend.paused()
    if as_json:
        click.echo(json.dumps({"url": app.display_url, "queues": {
            queue: {"paused": queue in paused, **{str(s): by_state.get(s, 0) for s in JobState}}
            for queue, by_state in sorted(counts.items())}}, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"conveyor · {app.display_url}")
    table.add_column("queue")
    for state in JobState:
        table.add_column(str(state), justify="right")
    for queue, by_state in sorted(counts.items()):
        label = f"{queue} (paused)" if queue in paused else queue
        table.add_row(label, *(str(by_state.get(s, 0)) for s in JobState))
    Console().print(table)


@main.group()
def jobs() -> None:
    """List, show, retry, cancel and purge jobs."""


def _state_option(fn: F) -> F:
    return click.option("--state", "-s", type=click.Choice([str(s) for s in JobState]))(fn)


@jobs.command("list")
@store_options
@_state_option
@click.option("--queue", "-q")
@click.option("--task", "-t")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--offset", type=click.IntRange(min=0), default=0)
@click.option("--json", "as_json", is_flag=True)
@reports_errors
def jobs_list(app_path: str | None, url: str | None, state: str | None, queue: str | None, task: str | None,
              limit: int, offset: int, as_json: bool) -> None:
    """Jobs, newest first."""
    app = _open_app(app_path, url)
    found = app.jobs(state=state, queue=queue, task=task, limit=limit, offset=offset)
    if as_json:
        click.echo(json.dumps([job.record.to_json() for job in found], indent=2))
        return
    for job in found:
        r = job.record
        click.echo(f"{r.id}  {r.state:<9}  {r.queue:<12}  {r.task}  attempts={r.attempts}/{r.max_attempts}"
                   f"  enqueued={_when(r.enqueued_at)}")


@jobs.command("show")
@click.argument("job_id")
@store_options
@click.option("--json", "as_json", is_flag=True)
@reports_errors
def jobs_show(job_id: str, app_path: str | None, url: str | None, as_json: bool) -> None:
    """One job: arguments, state, result, every attempt's error."""
    record = _open_app(app_path, url).get_job(job_id).record
    if as_json:
        click.echo(json.dumps(record.to_json(), indent=2))
        return
    _print_record(record)


def _print_record(r: JobRecord) -> None:
    for label, value in (("id", r.id), ("task", r.task), ("queue", r.queue), ("state", r.state),
                         ("priority", r.priority), ("arguments", r.payload),
                         ("attempts", f"{r.attempts}/{r.max_attempts}"), ("enqueued", _when(r.enqueued_at)),
                         ("due", _when(r.run_at)), ("started", _when(r.started_at)),
                         ("finished", _when(r.finished_at))):
        click.echo(f"{label:>10}: {value}")
    if r.progress is not None:
        click.echo(f"{'progress':>10}: {r.progress:g}% {r.progress_message or ''}")
    if r.state in FINISHED_STATES and r.result is not None:
        click.echo(f"{'result':>10}: {r.result}")
    for error in r.errors:
        click.echo(f"\nattempt {error.attempt} at {_when(error.at)}: {error.type}: {error.message}")
        if error.traceback:
            click.echo(error.traceback.rstrip())


def _bulk(action: str) -> Callable[[F], F]:
    def decorate(fn: F) -> F:
        fn = click.option("--state", "-s", type=click.Choice([str(s) for s in JobState]),
                          help=f"{action.capitalize()} every job in this state (with --queue/--task).")(fn)
        fn = click.option("--queue", "-q")(fn)
        fn = click.option("--task", "-t")(fn)
        return click.argument("job_ids", nargs=-1)(fn)
    return decorate


def _select(app: Conveyor, job_ids: tuple[str, ...], state: str | None, queue: str | None,
            task: str | None) -> list[str]:
    if job_ids:
        return list(job_ids)
    if state is None:
        raise click.UsageError("give job ids, or --state (with optional --queue/--task) to select jobs")
    return app.matching_job_ids(state=state, queue=queue, task=task)


def _apply_each(job_ids: list[str], action: Callable[[str], Any], verb: str) -> None:
    done = refused = missing = 0
    for job_id in job_ids:
        try:
            action(job_id)
            done += 1
        except ConveyorError as exc:
            refused += 1
            missing += isinstance(exc, JobNotFound)
            click.secho(f"{job_id}: {exc}", fg="yellow", err=True)
    click.echo(f"{verb} {done} job(s)" + (f", {refused} refused" if refused else ""))
    if refused and not done:
        sys.exit(EXIT_NOT_FOUND if missing == len(job_ids) else EXIT_ERROR)


@jobs.command("retry")
@_bulk("retry")
@store_options
@reports_errors
def jobs_retry(job_ids: tuple[str, ...], state: str | None, queue: str | None, task: str | None,
               app_path: str | None, url: str | None) -> None:
    """Run failed, cancelled or delayed jobs now."""
    app = _open_app(app_path, url)
    _apply_each(_select(app, job_ids, state, queue, task), app.backend.retry_now, "retried")


@jobs.command("cancel")
@_bulk("cancel")
@store_options
@reports_errors
def jobs_cancel(job_ids: tuple[str, ...], state: str | None, queue: str | None, task: str | None,
                app_path: str | None, url: str | None) -> None:
    """Cancel waiting jobs; running ones are stopped by their worker."""
    app = _open_app(app_path, url)
    _apply_each(_select(app, job_ids, state, queue, task), app.backend.cancel, "cancelled")


@jobs.command("purge")
@store_options
@click.option("--state", "-s", "states", multiple=True, type=click.Choice([str(s) for s in JobState
                                                                          if s != JobState.RUNNING]),
              help="States to delete (repeat); default: completed, failed, cancelled.")
@click.option("--queue", "-q")
@click.option("--expired", is_flag=True, help="Only delete finished jobs past their retention.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@reports_errors
def jobs_purge(app_path: str | None, url: str | None, states: tuple[str, ...], queue: str | None, expired: bool,
               yes: bool) -> None:
    """Delete jobs (never running ones)."""
    app = _open_app(app_path, url)
    if expired:
        click.echo(f"pruned {app.prune()} job(s)")
        return
    chosen = [JobState(s) for s in states] or sorted(FINISHED_STATES)
    what = ", ".join(chosen) + (f" jobs in queue {queue}" if queue else " jobs")
    if not yes and not click.confirm(f"delete all {what}?"):
        sys.exit(EXIT_ERROR)
    click.echo(f"purged {app.backend.purge(chosen, queue)} job(s)")


@main.group()
def queues() -> None:
    """Pause and resume queues."""


@queues.command("pause")
@click.argument("names", nargs=-1, required=True)
@store_options
@reports_errors
def queues_pause(names: tuple[str, ...], app_path: str | None, url: str | None) -> None:
    """Workers stop taking jobs from these queues (running jobs finish)."""
    app = _open_app(app_path, url)
    for name in names:
        app.pause(name)
        click.echo(f"paused {name}")


@queues.command("resume")
@click.argument("names", nargs=-1, required=True)
@store_options
@reports_errors
def queues_resume(names: tuple[str, ...], app_path: str | None, url: str | None) -> None:
    app = _open_app(app_path, url)
    for name in names:
        app.resume(name)
        click.echo(f"resumed {name}")


PASSWORD_VARIABLE = "CONVEYOR_DASHBOARD_PASSWORD"


@main.command()
@click.argument("app_path", metavar="MODULE:APP", envvar="CONVEYOR_APP")
@click.option("--url", envvar="CONVEYOR_URL", help="Store URL, overriding the app's.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help=f"Address to listen on; any but loopback needs ${PASSWORD_VARIABLE}.")
@click.option("--port", type=click.IntRange(0, 65535), default=8321, show_default=True)
@click.option("--read-only", is_flag=True, help="Show everything, change nothing.")
@click.option("--user", default="admin", show_default=True,
              help=f"User name for HTTP basic auth, on when ${PASSWORD_VARIABLE} is set.")
@reports_errors
def dashboard(app_path: str, url: str | None, host: str, port: int, read_only: bool, user: str) -> None:
    """Serve the web dashboard. The password comes only from the environment, never the command line."""
    try:
        import uvicorn

        from conveyor.dashboard import create_dashboard
    except ImportError as exc:
        _fail(f"the dashboard needs packages that are not installed ({exc.name}): pip install 'conveyor[dashboard]'")
    from conveyor.dashboard.security import LOOPBACK_HOSTS

    password = os.environ.get(PASSWORD_VARIABLE) or None
    if host not in LOOPBACK_HOSTS and password is None:
        _fail(f"refusing to serve the dashboard on {host} without authentication: set {PASSWORD_VARIABLE} "
              "(HTTP basic auth), or keep --host 127.0.0.1 and put it behind your own proxy")
    app = _open_app(app_path, url)
    app.backend  # open the store now, so a wrong URL fails here and not on the first page  # noqa: B018
    site = create_dashboard(app, read_only=read_only, username=user, password=password)
    mode = "read-only, " if read_only else ""
    auth = f"user {user!r}" if password else "no authentication"
    from conveyor.backends.shared import safe_url

    click.echo(f"conveyor dashboard for {safe_url(app.url)} on http://{host}:{port}/ ({mode}{auth}); Ctrl-C stops it")
    uvicorn.run(site, host=host, port=port, log_level="warning")


@main.command()
@click.option("--dir", "directory", type=click.Path(file_okay=False), default="conveyor-demo", show_default=True,
              help="Where the demo keeps its store and writes its outbox, thumbnails and invoices.")
@click.option("--jobs", "job_count", type=click.IntRange(min=3), default=60, show_default=True)
@click.option("--workers", type=click.IntRange(min=1), default=2, show_default=True)
@reports_errors
def demo(directory: str, job_count: int, workers: int) -> None:
    """A small shop's background work, run by real worker processes on SQLite."""
    from conveyor.demo.run import run_demo

    sys.exit(run_demo(directory, job_count, workers))


if __name__ == "__main__":
    main()
