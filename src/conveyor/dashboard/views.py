"""What each dashboard page shows, gathered through the app's public API only, as plain data the
templates lay out. No engine is ever reached past `Conveyor`."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from conveyor.app import Conveyor
from conveyor.backends import MinuteStats, WorkerInfo
from conveyor.errors import ConfigurationError, JobNotFound
from conveyor.handle import Job
from conveyor.job import CANCELLABLE_STATES, RETRYABLE_STATES, JobState

PAGE_SIZE = 25
MAX_PAGE = 100_000
CHART_MINUTES = 60
STATE_ORDER = (JobState.SCHEDULED, JobState.QUEUED, JobState.RUNNING, JobState.COMPLETED, JobState.FAILED,
               JobState.CANCELLED)


@dataclass(frozen=True)
class QueueRow:
    name: str
    counts: Mapping[JobState, int]
    paused: bool
    workers: int  # live workers that take from this queue

    @property
    def waiting(self) -> int:
        return self.counts.get(JobState.QUEUED, 0) + self.counts.get(JobState.SCHEDULED, 0)

    @property
    def unattended(self) -> bool:
        """Work is waiting and no live worker takes from this queue."""
        return self.counts.get(JobState.QUEUED, 0) > 0 and self.workers == 0


@dataclass(frozen=True)
class Bar:
    """One rectangle of an SVG bar chart, in the chart's own units (viewBox 0 0 width height)."""

    x: float
    y: float
    width: float
    height: float
    kind: str  # a CSS class: completed, failed, retried, wait
    title: str


@dataclass(frozen=True)
class Chart:
    title: str
    bars: list[Bar]
    peak: str  # the label of the top of the scale
    width: int = 600
    height: int = 120


def _minutes(now: float) -> list[float]:
    current = now - now % 60
    return [current - 60 * i for i in range(CHART_MINUTES - 1, -1, -1)]


def _per_minute(stats: list[MinuteStats], queue: str | None) -> dict[float, MinuteStats]:
    merged: dict[float, MinuteStats] = {}
    for total in stats:
        if queue is None or total.queue == queue:
            merged.setdefault(total.minute, MinuteStats(total.minute, queue or "*")).add(total)
    return merged


def throughput_chart(stats: list[MinuteStats], now: float, queue: str | None = None) -> Chart:
    """Attempts that ended per minute over the last hour, stacked: completed, retried, failed."""
    merged = _per_minute(stats, queue)
    minutes = _minutes(now)
    peak = max([m.completed + m.retried + m.failed for m in merged.values()] + [1])
    chart = Chart("Jobs finished per minute", [], f"{peak:,}")
    step = chart.width / len(minutes)
    for i, minute in enumerate(minutes):
        total = merged.get(minute)
        if total is None:
            continue
        y = float(chart.height)
        for kind, value in (("completed", total.completed), ("retried", total.retried), ("failed", total.failed)):
            if value:
                height = chart.height * value / peak
                y -= height
                chart.bars.append(Bar(i * step, y, step * 0.85, height, kind,
                                      f"{_clock(minute)}: {value:,} {kind}"))
    return chart


def latency_chart(stats: list[MinuteStats], now: float, queue: str | None = None) -> Chart:
    """Mean wait between falling due and starting, per minute over the last hour."""
    merged = _per_minute(stats, queue)
    minutes = _minutes(now)
    means = {minute: m.wait_mean for minute, m in merged.items() if m.wait_mean is not None}
    peak = max([*means.values(), 0.001])
    chart = Chart("Mean wait before start", [], _duration(peak))
    step = chart.width / len(minutes)
    for i, minute in enumerate(minutes):
        if minute in means:
            height = max(1.0, chart.height * means[minute] / peak)
            chart.bars.append(Bar(i * step, chart.height - height, step * 0.85, height, "wait",
                                  f"{_clock(minute)}: mean {_duration(means[minute])}, "
                                  f"max {_duration(merged[minute].wait_max)}, {merged[minute].started:,} started"))
    return chart


def _clock(t: float) -> str:
    from datetime import UTC, datetime
    return datetime.fromtimestamp(t, UTC).strftime("%H:%M UTC")


def _duration(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.1f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min"


def queue_rows(app: Conveyor, workers: list[WorkerInfo]) -> list[QueueRow]:
    counts = app.counts()
    paused = app.paused_queues()
    queues = sorted(set(counts) | paused | {q for w in workers for q in w.queues})
    return [QueueRow(q, counts.get(q, {}), q in paused, sum(q in w.queues for w in workers)) for q in queues]


def overview(app: Conveyor, params: Mapping[str, str]) -> dict[str, Any]:
    workers = app.workers()
    rows = queue_rows(app, workers)
    now = app.backend.now()
    stats = app.stats(CHART_MINUTES)
    return {"queues": rows, "states": STATE_ORDER, "now": now,
            "charts": [throughput_chart(stats, now), latency_chart(stats, now)],
            "unattended": [row for row in rows if row.unattended], "worker_count": len(workers)}


@dataclass(frozen=True)
class JobFilter:
    """The jobs list's filter, as the query string carries it."""

    state: str | None = None
    queue: str | None = None
    task: str | None = None
    q: str | None = None

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> JobFilter:
        def value(name: str) -> str | None:
            text = (params.get(name) or "").strip()
            return text or None
        state = value("state")
        if state is not None and state not in {str(s) for s in JobState}:
            raise ConfigurationError(f"state={state!r}: use one of {', '.join(JobState)}")
        return cls(state, value("queue"), value("task"), value("q"))

    def as_kwargs(self) -> dict[str, str | None]:
        return {"state": self.state, "queue": self.queue, "task": self.task, "search": self.q}

    def jobs(self, app: Conveyor, limit: int, offset: int = 0) -> list[Job[Any]]:
        return app.jobs(state=self.state, queue=self.queue, task=self.task, search=self.q, limit=limit, offset=offset)

    def as_params(self) -> dict[str, str]:
        return {k: v for k, v in (("state", self.state), ("queue", self.queue), ("task", self.task),
                                  ("q", self.q)) if v}

    def describe(self) -> str:
        parts = [f"{name} {value!r}" for name, value in (("state", self.state), ("queue", self.queue),
                                                          ("task", self.task), ("matching", self.q)) if value]
        return ", ".join(parts)


def jobs_page(app: Conveyor, params: Mapping[str, str]) -> dict[str, Any]:
    selected = JobFilter.from_params(params)
    try:
        page = min(max(1, int(params.get("page") or 1)), MAX_PAGE)
    except ValueError:
        page = 1
    found = selected.jobs(app, limit=PAGE_SIZE + 1, offset=(page - 1) * PAGE_SIZE)
    counts = app.counts()
    return {"jobs": [job_row(job) for job in found[:PAGE_SIZE]], "page": page, "has_next": len(found) > PAGE_SIZE,
            "filter": selected, "states": STATE_ORDER, "queue_names": sorted(counts)}


def job_row(job: Job[Any]) -> dict[str, Any]:
    record = job.record
    return {"id": record.id, "task": record.task, "queue": record.queue, "state": str(record.state),
            "attempts": record.attempts, "max_attempts": record.max_attempts, "enqueued_at": record.enqueued_at,
            "run_at": record.run_at, "finished_at": record.finished_at, "progress": record.progress,
            "arguments": _short(record.payload)}


def _short(payload: str, limit: int = 80) -> str:
    try:
        data = json.loads(payload)
        text = ", ".join([json.dumps(a) for a in data.get("args", [])]
                         + [f"{k}={json.dumps(v)}" for k, v in data.get("kwargs", {}).items()])
    except (ValueError, AttributeError, TypeError):
        text = payload
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _pretty(text: str | None) -> str | None:
    if text is None:
        return None
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except ValueError:
        return text


def timeline(job: Job[Any]) -> list[tuple[float, str]]:
    """The job's life so far, from its stored times and every attempt's error."""
    record = job.record
    events: list[tuple[float, str]] = [(record.enqueued_at, "enqueued")]
    if record.run_at > record.enqueued_at + 0.5 and not record.errors:
        events.append((record.run_at, "due" if record.state == JobState.SCHEDULED else "fell due"))
    for error in record.errors:
        events.append((error.at, f"attempt {error.attempt} failed: {error.type}"))
    if record.state == JobState.SCHEDULED and record.errors:
        events.append((record.run_at, f"attempt {record.attempts + 1} due"))
    if record.started_at is not None:
        events.append((record.started_at, f"attempt {record.attempts} started"))
    if record.finished_at is not None:
        events.append((record.finished_at, str(record.state)))
    return sorted(events, key=lambda event: event[0])


def job_page(app: Conveyor, params: Mapping[str, str]) -> dict[str, Any]:
    job_id = params.get("id") or ""
    try:
        job = app.get_job(job_id)
    except JobNotFound:
        return {"job": None, "job_id": job_id}
    record = job.record
    return {"job": job_row(job), "job_id": job_id, "record": record,
            "arguments": _pretty(record.payload),
            "result": _pretty(record.result), "errors": list(reversed(record.errors)), "timeline": timeline(job),
            "can_retry": record.state in RETRYABLE_STATES, "can_cancel": record.state in CANCELLABLE_STATES
            and not record.cancel_requested, "can_delete": record.state != JobState.RUNNING,
            "run_now": record.state == JobState.SCHEDULED}


def schedules_page(app: Conveyor, params: Mapping[str, str]) -> dict[str, Any]:
    return {"schedules": app.schedule_status(), "now": app.backend.now()}


def workers_page(app: Conveyor, params: Mapping[str, str]) -> dict[str, Any]:
    workers = app.workers()
    return {"workers": workers, "unattended": [row for row in queue_rows(app, workers) if row.unattended],
            "now": app.backend.now()}
