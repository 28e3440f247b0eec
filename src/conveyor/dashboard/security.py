"""Who may see the dashboard and how its pages defend themselves: HTTP basic auth or an
`authorize(request)` hook, CSRF tokens on every action, and strict response headers."""

from __future__ import annotations

import base64
import binascii
import inspect
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

Authorize = Callable[[Request], bool | Awaitable[bool]]
CSRF_COOKIE = "conveyor_csrf"
CSRF_FIELD = "csrf"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "[::1]", "localhost"})

# Nothing inline, nothing from elsewhere: every script and style is a file the package ships.
CONTENT_SECURITY_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                           "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
SECURITY_HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
    (b"cache-control", b"no-store"),
]


class Guard:
    """ASGI middleware in front of every route: checks credentials, then adds the security headers."""

    def __init__(self, app: ASGIApp, *, username: str, password: str | None, authorize: Authorize | None,
                 allowed_hosts: frozenset[str] | None) -> None:
        self.app = app
        self.username = username
        self.password = password
        self.authorize = authorize
        self.allowed_hosts = allowed_hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        refusal = await self._refusal(Request(scope))
        if refusal is not None:
            await refusal(scope, receive, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)

    async def _refusal(self, request: Request) -> PlainTextResponse | None:
        if self.allowed_hosts is not None and request.url.hostname not in self.allowed_hosts:
            # Without it, a site the browser visits could rebind its name to 127.0.0.1 and so be
            # "same origin" with an unauthenticated dashboard (DNS rebinding).
            return PlainTextResponse(f"conveyor dashboard: host {request.url.hostname!r} is not allowed; without "
                                     "authentication the dashboard answers only on loopback names (pass "
                                     "allowed_hosts= to create_dashboard to add one)", status_code=400)
        if self.password is not None and not self._basic_auth_ok(request):
            return PlainTextResponse("conveyor dashboard: sign in with the dashboard's user name and password",
                                     status_code=401, headers={"WWW-Authenticate": 'Basic realm="conveyor"'})
        if self.authorize is not None:
            allowed: Any = self.authorize(request)
            if inspect.isawaitable(allowed):
                allowed = await allowed
            if not allowed:
                return PlainTextResponse("conveyor dashboard: not authorised", status_code=403)
        return None

    def _basic_auth_ok(self, request: Request) -> bool:
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        # Both compared, always, so the time taken does not tell which one was wrong.
        user_ok = secrets.compare_digest(user.encode(), self.username.encode())
        password_ok = secrets.compare_digest(password.encode(), (self.password or "").encode())
        return user_ok and password_ok


def csrf_token(request: Request) -> str:
    """The browser's token (double-submit cookie), or a new one the response must set."""
    return request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(32)


def csrf_ok(request: Request, submitted: str | None) -> bool:
    """An action is genuine when its form carries the browser's own token and, where the browser
    says where the request comes from, it comes from this site."""
    cookie = request.cookies.get(CSRF_COOKIE)
    if not cookie or not submitted or not secrets.compare_digest(cookie.encode(), submitted.encode()):
        return False
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None:  # every current browser sends it, also behind proxies that rewrite Host
        return fetch_site in {"same-origin", "none"}
    origin = request.headers.get("origin")
    return origin is None or origin == f"{request.url.scheme}://{request.url.netloc}"
