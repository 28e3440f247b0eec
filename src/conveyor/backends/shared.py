"""Pieces every engine uses: turning driver errors into BackendError, hiding passwords, and reading
a job from a SQL row."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol, TypeVar, cast
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from conveyor.errors import InvalidTransition, JobNotFound
from conveyor.job import JobRecord, JobState

F = TypeVar("F", bound=Callable[..., Any])


class _TranslatesErrors(Protocol):
    def errors(self) -> AbstractContextManager[None]: ...


def translated(method: F) -> F:
    """Run a verb inside its engine's `errors()`, which turns the driver's errors into BackendError
    with what to do, so a worker backs off instead of crashing."""
    @functools.wraps(method)
    def wrapper(self: _TranslatesErrors, *args: Any, **kwargs: Any) -> Any:
        with self.errors():
            return method(self, *args, **kwargs)
    return cast(F, wrapper)


def safe_url(url: str) -> str:
    """The URL without its password (in the user part or a `password=` option), for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None and "password" not in parts.query.lower():
        return url  # untouched: urlunsplit would turn sqlite:/// into sqlite:/
    if parts.password is not None:
        netloc = f"{parts.username or ''}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
        parts = parts._replace(netloc=netloc)
    if "password" in parts.query.lower():
        options = [(key, "***" if "password" in key.lower() else value)
                   for key, value in parse_qsl(parts.query, keep_blank_values=True)]
        parts = parts._replace(query="&".join(f"{key}={value}" for key, value in options))
    return urlunsplit(parts)


# JobRecord's stored fields in its order, as the SQL engines name them. A query that returns exactly
# these columns in this order gives rows that record_from_values reads by position: the worker's
# claim does, since reading 21 columns by name costs more than the rest of turning a row into a job.
JOB_COLUMNS = ("id", "task", "queue", "priority", "state", "payload", "run_at", "enqueued_at", "attempts",
               "max_attempts", "timeout", "started_at", "finished_at", "lease_token", "lease_expires_at",
               "worker_id", "cancel_requested", "progress", "progress_message", "result", "errors")
_STATES = {str(state): state for state in JobState}


def record_from_values(values: Sequence[Any]) -> JobRecord:
    """A job from a SQL row holding JOB_COLUMNS in order (SQLite stores errors as JSON text,
    PostgreSQL as jsonb)."""
    (job_id, task, queue, priority, state, payload, run_at, enqueued_at, attempts, max_attempts, timeout,
     started_at, finished_at, lease_token, lease_expires_at, worker_id, cancel_requested, progress,
     progress_message, result, errors) = values
    return JobRecord(job_id, task, queue, priority, _STATES[state], payload, run_at, enqueued_at, attempts,
                     max_attempts, timeout, started_at, finished_at, lease_token, lease_expires_at, worker_id,
                     bool(cancel_requested), progress, progress_message, result,
                     errors if isinstance(errors, str) else json.dumps(errors))


def record_from_row(row: Mapping[str, Any]) -> JobRecord:
    """A job from a SQL row read by column name (`SELECT *`)."""
    return record_from_values([row[column] for column in JOB_COLUMNS])


def job_filter(state: Any, queue: str | None, task: str | None, search: str | None, *,
               param: str, like: str) -> tuple[str, list[Any]]:
    """The WHERE clause (or '') and its parameters for listing jobs on the SQL engines; `param` is
    the driver's placeholder, `like` the case-insensitive LIKE of the dialect."""
    clauses: list[str] = []
    params: list[Any] = []
    for column, value in (("state", state), ("queue", queue), ("task", task)):
        if value is not None:
            clauses.append(f"{column} = {param}")
            params.append(str(value))
    if search:
        pattern = "%" + search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        clauses.append("(" + " OR ".join(f"{column} {like} {param} ESCAPE '\\'"
                                          for column in ("id", "task", "payload")) + ")")
        params += [pattern] * 3
    return (f"WHERE {' AND '.join(clauses)}" if clauses else ""), params


def refusal(job_id: str, action: str, state: str | None) -> JobNotFound | InvalidTransition:
    """The error for an operator verb that changed nothing: the job is gone, or its state forbids it."""
    if state is None:
        return JobNotFound(f"no job with id {job_id!r} (never enqueued, or pruned after its retention)")
    hint = "; cancel it first" if action == "delete" and state == "running" else ""
    return InvalidTransition(f"cannot {action} job {job_id!r}: it is {state}{hint}")
