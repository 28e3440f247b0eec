"""Pieces every engine uses: turning driver errors into BackendError, hiding passwords, and reading
a job from a SQL row."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
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


def record_from_row(row: Mapping[str, Any]) -> JobRecord:
    """A job from a SQL engine's row (SQLite stores errors as JSON text, PostgreSQL as jsonb)."""
    errors = row["errors"]
    return JobRecord(
        id=row["id"], task=row["task"], queue=row["queue"], priority=row["priority"],
        state=JobState(row["state"]), payload=row["payload"], run_at=row["run_at"],
        enqueued_at=row["enqueued_at"], attempts=row["attempts"], max_attempts=row["max_attempts"],
        timeout=row["timeout"], started_at=row["started_at"], finished_at=row["finished_at"],
        lease_token=row["lease_token"], lease_expires_at=row["lease_expires_at"],
        worker_id=row["worker_id"], cancel_requested=bool(row["cancel_requested"]),
        progress=row["progress"], progress_message=row["progress_message"],
        result=row["result"], errors_json=errors if isinstance(errors, str) else json.dumps(errors),
    )




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
