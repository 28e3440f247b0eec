"""What the dashboard's buttons do. Each action first shows a confirmation page that says what
will happen, then, on a POST carrying the CSRF token, does it through the app's public API and
says what it did."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from conveyor.app import Conveyor
from conveyor.dashboard.views import JobFilter

Params = Mapping[str, str]
COUNT_LIMIT = 1_000  # past this many, the question says "more than": counting reads whole jobs


@dataclass(frozen=True)
class Action:
    label: str  # the confirm button
    question: Callable[[Conveyor, Params], str]
    perform: Callable[[Conveyor, Params], str]
    danger: bool = False
    cutoff: bool = False  # the confirmation carries the store's time: jobs enqueued later are left alone


def _count(app: Conveyor, selected: JobFilter) -> str:
    """How many jobs match, from the counts where the filter allows, else by listing (capped)."""
    if selected.task is None and selected.q is None:
        counts = app.counts()
        queues = [selected.queue] if selected.queue else list(counts)
        total = sum(n for q in queues for state, n in counts.get(q, {}).items()
                    if selected.state is None or state == selected.state)
        return f"{total:,}"
    found = len(selected.jobs(app, limit=COUNT_LIMIT + 1))
    return f"more than {COUNT_LIMIT:,}" if found > COUNT_LIMIT else f"{found:,}"


def _matching(selected: JobFilter) -> str:
    described = selected.describe()
    return f" matching {described}" if described else ", in every queue and state"


def _job_action(verb: str, done: str, change: Callable[[Conveyor, str], object], note: str = "",
                danger: bool = False) -> Action:
    def question(app: Conveyor, params: Params) -> str:
        job = app.get_job(params["id"])
        return f"{verb} job {job.id} ({job.task_name}, {job.status})?{note}"

    def perform(app: Conveyor, params: Params) -> str:
        change(app, params["id"])
        return f"Job {params['id']} {done}."

    return Action(verb, question, perform, danger)


def _bulk_action(verb: str, done: str, skipped: str, method: str, danger: bool = False) -> Action:
    def question(app: Conveyor, params: Params) -> str:
        selected = JobFilter.from_params(params)
        return (f"{verb} all {_count(app, selected)} jobs{_matching(selected)}? {skipped} "
                "Jobs added after this are left alone.")

    def perform(app: Conveyor, params: Params) -> str:
        selected = JobFilter.from_params(params)
        before = float(params["before"]) if params.get("before") else None
        changed = getattr(app, method)(**selected.as_kwargs(), enqueued_before=before)
        return f"{done} {changed:,} jobs{_matching(selected)}."

    return Action(f"{verb} all", question, perform, danger, cutoff=True)


def _queue_action(verb: str, done: str, change: Callable[[Conveyor, str], None], note: str) -> Action:
    def perform(app: Conveyor, params: Params) -> str:
        change(app, params["queue"])
        return f"Queue {params['queue']!r} {done}."

    return Action(verb, lambda app, params: f"{verb} queue {params['queue']!r}? {note}", perform)


def _schedule_action(verb: str, done: str, change: Callable[[Conveyor, str], object], note: str) -> Action:
    def perform(app: Conveyor, params: Params) -> str:
        outcome = change(app, params["name"])
        job_id = getattr(outcome, "id", None)
        return f"Schedule {params['name']!r} {done}" + (f": job {job_id}." if job_id else ".")

    return Action(verb, lambda app, params: f"{verb} schedule {params['name']!r}? {note}", perform)


ACTIONS: dict[str, Action] = {
    "retry-job": _job_action("Retry", "queued to run now", lambda app, i: app.get_job(i).retry(),
                             " It runs again with its full attempt budget; its errors are kept."),
    "run-job-now": _job_action("Run now", "queued to run now", lambda app, i: app.get_job(i).retry(),
                               " It stops waiting for its due time."),
    "cancel-job": _job_action("Cancel", "cancelled (a running job stops at its next heartbeat)",
                              lambda app, i: app.get_job(i).cancel(), danger=True),
    "delete-job": _job_action("Delete", "deleted", lambda app, i: app.get_job(i).delete(),
                              " Its arguments, result and errors go with it.", danger=True),
    "retry-matching": _bulk_action("Retry", "Queued to run now", "Queued and running jobs are skipped.",
                                   "retry_jobs"),
    "cancel-matching": _bulk_action("Cancel", "Cancelled", "Finished jobs are skipped.", "cancel_jobs",
                                    danger=True),
    "delete-matching": _bulk_action("Delete", "Deleted", "Running jobs are skipped.", "delete_jobs", danger=True),
    "pause-queue": _queue_action("Pause", "paused", Conveyor.pause,
                                 "Workers finish what they run and take nothing more from it; enqueueing goes on."),
    "resume-queue": _queue_action("Resume", "resumed", Conveyor.resume, "Workers take its jobs again."),
    "pause-schedule": _schedule_action("Pause", "paused", Conveyor.pause_schedule,
                                       "It fires no more until resumed."),
    "resume-schedule": _schedule_action("Resume", "resumed", Conveyor.resume_schedule,
                                        "Ticks missed while it was paused are skipped."),
    "run-schedule": _schedule_action("Run now", "fired", Conveyor.run_schedule,
                                     "Its job is enqueued now; its next tick is unchanged."),
}

# The parameters an action may carry; anything else in the form is ignored.
ACTION_PARAMS = ("id", "queue", "name", "state", "task", "q", "before")

