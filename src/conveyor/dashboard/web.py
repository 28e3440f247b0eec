"""The dashboard as an ASGI app: pages, their live fragments (server-sent events, with polling as
the fallback), and the confirm-then-act flow of every button."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from typing import Any
from urllib.parse import quote, unquote, urlencode

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from conveyor.app import Conveyor
from conveyor.dashboard import views
from conveyor.dashboard.actions import ACTION_PARAMS, ACTIONS
from conveyor.dashboard.security import (
    CSRF_COOKIE,
    CSRF_FIELD,
    LOOPBACK_HOSTS,
    Authorize,
    Guard,
    csrf_ok,
    csrf_token,
)
from conveyor.errors import ConveyorError, JobNotFound

NOTICE_COOKIE = "conveyor_notice"
MAX_STREAMS = 32  # open event streams per dashboard; past it, pages poll instead
STREAM_LIFETIME = 300.0  # seconds; the browser's EventSource reconnects by itself
KEEPALIVE = 15.0


@dataclass(frozen=True)
class View:
    """A page whose main part refreshes itself: `build` gathers its data, the fragment template
    lays out the live part, and the page template wraps it."""

    name: str
    title: str
    build: Callable[[Conveyor, Mapping[str, str]], dict[str, Any]]
    every: float  # seconds between refreshes


VIEWS = {view.name: view for view in (
    View("queues", "Queues", views.overview, 2.0),
    View("jobs", "Jobs", views.jobs_page, 2.0),
    View("job", "Job", views.job_page, 0.5),
    View("schedules", "Schedules", views.schedules_page, 2.0),
    View("workers", "Workers", views.workers_page, 2.0),
)}


def _when(t: float | None) -> str:
    if t is None:
        return "-"
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _ago(t: float | None, now: float | None = None) -> str:
    if t is None:
        return ""
    delta = (now if now is not None else time.time()) - t
    word, delta = ("ago", delta) if delta >= 0 else ("from now", -delta)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if delta >= size:
            return f"{delta / size:.0f} {unit} {word}"
    return f"{delta:.0f} s {word}"


def _environment() -> Environment:
    env = Environment(loader=PackageLoader("conveyor.dashboard", "templates"),
                      autoescape=select_autoescape(default=True, default_for_string=True))
    env.filters["when"] = _when
    env.filters["ago"] = _ago
    env.filters["num"] = lambda n: f"{n:,}"
    env.globals["query"] = lambda **params: urlencode({k: v for k, v in params.items() if v not in (None, "")})
    return env


class Dashboard:
    def __init__(self, app: Conveyor, *, read_only: bool, title: str) -> None:
        self.app = app
        self.read_only = read_only
        self.title = title
        self.templates = _environment()
        self.streams = 0

    # -- rendering ----------------------------------------------------------------------------

    def _context(self, request: Request, view: View, params: Mapping[str, str]) -> dict[str, Any]:
        return {"base": _base(request), "view": view, "read_only": self.read_only, "title": self.title,
                "params": params, "here": _page_path(view, params), **view.build(self.app, params)}

    def _fragment(self, request: Request, view: View, params: Mapping[str, str]) -> str:
        return self.templates.get_template(f"{view.name}_live.html").render(self._context(request, view, params))

    async def page(self, request: Request, view_name: str, params: Mapping[str, str]) -> Response:
        view = VIEWS[view_name]
        try:
            context = await run_in_threadpool(self._context, request, view, params)
        except ConveyorError as exc:
            return PlainTextResponse(f"conveyor dashboard: {exc}", status_code=400)
        context["notice"] = unquote(request.cookies.get(NOTICE_COOKIE, "")) or None
        context["live_query"] = urlencode(params)
        html = self.templates.get_template(f"{view.name}.html").render(context)
        response = HTMLResponse(html, status_code=404 if view.name == "job" and context["job"] is None else 200)
        if context["notice"]:
            response.delete_cookie(NOTICE_COOKIE, path=_cookie_path(request))
        return response

    # -- routes -------------------------------------------------------------------------------

    async def queues(self, request: Request) -> Response:
        return await self.page(request, "queues", dict(request.query_params))

    async def jobs(self, request: Request) -> Response:
        params = dict(request.query_params)
        wanted = (params.get("q") or "").strip()
        found: bool = bool(wanted) and await run_in_threadpool(_exists, self.app, wanted)
        if found:
            return RedirectResponse(f"{_base(request)}/jobs/{quote(wanted, safe='')}", status_code=303)
        return await self.page(request, "jobs", params)

    async def job(self, request: Request) -> Response:
        return await self.page(request, "job", {**request.query_params, "id": request.path_params["job_id"]})

    async def schedules(self, request: Request) -> Response:
        return await self.page(request, "schedules", dict(request.query_params))

    async def workers(self, request: Request) -> Response:
        return await self.page(request, "workers", dict(request.query_params))

    async def fragment(self, request: Request) -> Response:
        """The live part of a page, for browsers that poll instead of holding a stream."""
        view = VIEWS.get(request.path_params["view"])
        if view is None:
            return PlainTextResponse("no such view", status_code=404)
        try:
            html = await run_in_threadpool(self._fragment, request, view, dict(request.query_params))
        except ConveyorError as exc:
            return PlainTextResponse(f"conveyor dashboard: {exc}", status_code=400)
        return HTMLResponse(html)

    async def stream(self, request: Request) -> Response:
        """Server-sent events: the live part of a page each time it changes."""
        view = VIEWS.get(request.path_params["view"])
        if view is None:
            return PlainTextResponse("no such view", status_code=404)
        if self.streams >= MAX_STREAMS:
            return PlainTextResponse("too many open streams: poll instead", status_code=503)
        params = dict(request.query_params)
        return StreamingResponse(self._events(request, view, params), media_type="text/event-stream",
                                 headers={"X-Accel-Buffering": "no"})

    async def _events(self, request: Request, view: View, params: dict[str, str]) -> AsyncIterator[str]:
        self.streams += 1
        try:
            async for event in self._changes(request, view, params):
                yield event
        finally:
            self.streams -= 1

    async def _changes(self, request: Request, view: View, params: dict[str, str]) -> AsyncIterator[str]:
        yield "retry: 1000\n\n"
        last: str | None = None
        quiet = 0.0
        deadline = time.monotonic() + STREAM_LIFETIME
        while time.monotonic() < deadline and not await request.is_disconnected():
            html: str | None
            try:
                html = await run_in_threadpool(self._fragment, request, view, params)
            except ConveyorError:
                html = last  # the store is away for a moment: keep showing what we had
            if html is not None and html != last:
                last, quiet = html, 0.0
                yield "".join(f"data: {line}\n" for line in html.splitlines()) + "\n"
            elif (quiet := quiet + view.every) >= KEEPALIVE:
                quiet = 0.0
                yield ": keepalive\n\n"
            await asyncio.sleep(view.every)

    async def confirm(self, request: Request) -> Response:
        action = ACTIONS.get(request.query_params.get("action", ""))
        if self.read_only:
            return PlainTextResponse("this dashboard is read-only", status_code=403)
        if action is None:
            return PlainTextResponse("unknown action", status_code=400)
        params = {k: v for k, v in request.query_params.items() if k in ACTION_PARAMS and k != "before"}
        try:
            if action.cutoff:
                params["before"] = repr(await run_in_threadpool(self.app.backend.now))
            question = await run_in_threadpool(action.question, self.app, params)
        except (ConveyorError, KeyError) as exc:
            return PlainTextResponse(f"conveyor dashboard: cannot do that: {exc}", status_code=400)
        token = csrf_token(request)
        html = self.templates.get_template("confirm.html").render(
            base=_base(request), view=None, title=self.title, read_only=False,
            action=action, action_name=request.query_params["action"], question=question, params=params,
            next=_safe_next(request.query_params.get("next")), csrf_field=CSRF_FIELD, csrf=token)
        response = HTMLResponse(html)
        response.set_cookie(CSRF_COOKIE, token, httponly=True, samesite="strict", path=_cookie_path(request),
                            secure=request.url.scheme == "https")
        return response

    async def act(self, request: Request) -> Response:
        if self.read_only:
            return PlainTextResponse("this dashboard is read-only", status_code=403)
        form = await request.form()
        submitted = form.get(CSRF_FIELD)
        if not csrf_ok(request, submitted if isinstance(submitted, str) else None):
            return PlainTextResponse("refused: the form's CSRF token is missing or wrong; reload the page and "
                                     "try again", status_code=403)
        action = ACTIONS.get(str(form.get("action", "")))
        if action is None:
            return PlainTextResponse("unknown action", status_code=400)
        params = {k: str(v) for k, v in form.items() if k in ACTION_PARAMS and isinstance(v, str)}
        try:
            notice = await run_in_threadpool(action.perform, self.app, params)
        except (ConveyorError, KeyError) as exc:
            notice = f"Nothing done: {exc}"
        response = RedirectResponse(_base(request) + _safe_next(str(form.get("next") or "")), status_code=303)
        response.set_cookie(NOTICE_COOKIE, quote(notice[:300]), httponly=True, samesite="strict",
                            path=_cookie_path(request), max_age=60)
        return response


def _exists(app: Conveyor, job_id: str) -> bool:
    try:
        app.get_job(job_id)
    except JobNotFound:
        return False
    return True


def _page_path(view: View, params: Mapping[str, str]) -> str:
    """The page's path inside the dashboard, with its query: where its actions come back to."""
    if view.name == "job":
        return f"/jobs/{quote(params.get('id', ''), safe='')}"
    query = urlencode({k: v for k, v in params.items() if k != "live" and v})
    path = "/" if view.name == "queues" else f"/{view.name}"
    return f"{path}?{query}" if query else path


def _safe_next(target: str | None) -> str:
    """Only paths inside the dashboard: never another site (`//evil`, `https://…`)."""
    if (not target or not target.startswith("/") or target.startswith("//") or "\\" in target
            or any(c.isspace() or ord(c) < 32 for c in target)):  # browsers drop tabs: "/\t/evil" is "//evil"
        return "/"
    return target


def _base(request: Request) -> str:
    """Where the dashboard is mounted ('' when served on its own)."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def _cookie_path(request: Request) -> str:
    return _base(request) + "/"


def create_dashboard(app: Conveyor, *, read_only: bool = False, authorize: Authorize | None = None,
                     username: str = "admin", password: str | None = None, title: str = "conveyor",
                     allowed_hosts: Sequence[str] | None = None) -> Starlette:
    """The dashboard for `app`, as an ASGI app to serve or mount (`Mount("/jobs", dashboard)`).

    `password` turns on HTTP basic auth (user `username`); `authorize(request)` (sync or async)
    decides per request when mounted in an app with its own sign-in; `read_only` hides and
    refuses every action. `allowed_hosts` are the host names it answers to ('*' for any); by
    default any with authentication, and only loopback names (localhost, 127.0.0.1, ::1) without."""
    dashboard = Dashboard(app, read_only=read_only, title=title)
    static = StaticFiles(directory=str(resources.files("conveyor.dashboard").joinpath("static")))
    routes = [
        Route("/", dashboard.queues, name="queues"),
        Route("/jobs", dashboard.jobs, name="jobs"),
        Route("/jobs/{job_id:path}", dashboard.job, name="job"),
        Route("/schedules", dashboard.schedules, name="schedules"),
        Route("/workers", dashboard.workers, name="workers"),
        Route("/fragment/{view}", dashboard.fragment, name="fragment"),
        Route("/stream/{view}", dashboard.stream, name="stream"),
        Route("/confirm", dashboard.confirm, name="confirm"),
        Route("/act", dashboard.act, methods=["POST"], name="act"),
        Mount("/static", static, name="static"),
    ]
    if allowed_hosts is None:
        hosts = None if password is not None or authorize is not None else LOOPBACK_HOSTS
    else:
        hosts = None if "*" in allowed_hosts else frozenset(allowed_hosts)
    site = Starlette(routes=routes)
    site.add_middleware(Guard, username=username, password=password, authorize=authorize, allowed_hosts=hosts)
    return site
