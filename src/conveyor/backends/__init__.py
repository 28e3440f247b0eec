"""Engines behind one Protocol, chosen by URL."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import parse_qs, quote, urlencode, urlsplit, urlunsplit

from conveyor.backends.base import (
    Backend,
    Capabilities,
    Claim,
    Finish,
    HeartbeatReply,
    Lease,
    MinuteStats,
    Retention,
    ScheduleState,
    TransactionalBackend,
    WorkerInfo,
)
from conveyor.errors import ConfigurationError

__all__ = ["Backend", "Capabilities", "Claim", "Finish", "HeartbeatReply", "Lease", "MinuteStats", "Retention",
           "ScheduleState", "TransactionalBackend", "WorkerInfo", "open_backend"]

def _switch(text: str) -> bool:
    """on/off, true/false, yes/no, 1/0."""
    words = {"on": True, "true": True, "yes": True, "1": True, "off": False, "false": False, "no": False, "0": False}
    if text.lower() not in words:
        raise ValueError(text)
    return words[text.lower()]


_SQLITE_PARAMS: dict[str, Callable[[str], object]] = {
    "busy_timeout": float, "synchronous": str, "poll_interval": float, "watch": _switch, "turn": _switch}


def open_backend(url: str, *, retention: Retention) -> Backend:
    """`sqlite:///relative.db`, `sqlite:////absolute/path.db` (SQLAlchemy's spelling), with
    optional `?busy_timeout=30&synchronous=normal|full&poll_interval=0.002&watch=on|off&turn=on|off`;
    `redis://[user:password@]host:6379/0` or `rediss://` (TLS), with optional
    `?namespace=conveyor&socket_timeout=10` (other query options go to redis-py);
    `postgresql://user:password@host:5432/db` (or `postgres://`), with optional
    `?schema=conveyor&pool_size=10` (other query options go to libpq)."""
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme == "sqlite":
        return _open_sqlite(url, retention)
    if scheme in {"redis", "rediss"}:
        return _open_redis(url, retention)
    if scheme in {"postgres", "postgresql"}:
        return _open_postgres(url, retention)
    raise ConfigurationError(f"unknown store URL {url!r}: use sqlite:///path/to/jobs.db, "
                             "redis://host:6379/0 or postgresql://user@host/db")


def _open_sqlite(url: str, retention: Retention) -> Backend:
    from conveyor.backends.sqlite import SQLiteBackend

    parts = urlsplit(url)
    if not url.startswith("sqlite:///") or not parts.path.strip("/"):
        raise ConfigurationError(f"{url!r}: write sqlite:///relative/path.db or sqlite:////absolute/path.db")
    path = parts.path[1:]  # sqlite:///x.db -> x.db ; sqlite:////abs/x.db -> /abs/x.db
    if path == ":memory:":
        raise ConfigurationError("sqlite:///:memory: cannot be shared with worker processes; use a file")
    kwargs: dict[str, object] = {}
    for key, values in parse_qs(parts.query).items():
        if key not in _SQLITE_PARAMS:
            raise ConfigurationError(f"unknown option {key!r} in {url!r}; known: {', '.join(_SQLITE_PARAMS)}")
        try:
            kwargs[key] = _SQLITE_PARAMS[key](values[-1])
        except ValueError:
            raise ConfigurationError(f"{key}={values[-1]!r} in {url!r} is not a valid value") from None
    return SQLiteBackend(path, retention=retention, **kwargs)  # type: ignore[arg-type]


_REDIS_PARAMS = {"namespace": str, "socket_timeout": float}


def _open_redis(url: str, retention: Retention) -> Backend:
    try:
        from conveyor.backends.redis import RedisBackend
    except ImportError as exc:
        raise ConfigurationError(f"{url.split(':', 1)[0]}:// needs the Redis driver: "
                                 "pip install 'conveyor[redis]'") from exc
    ours, driver_url = _split_options(url, _REDIS_PARAMS)
    namespace = ours.get("namespace", "conveyor")
    if not isinstance(namespace, str) or not namespace or any(c in namespace for c in "{}: "):
        raise ConfigurationError(f"namespace={namespace!r}: use letters, digits, - or _")
    return RedisBackend(driver_url, retention=retention, **ours)  # type: ignore[arg-type]


_POSTGRES_PARAMS = {"schema": str, "pool_size": int, "connect_timeout": float, "socket_timeout": float}


def _open_postgres(url: str, retention: Retention) -> Backend:
    try:
        from conveyor.backends.postgres import PostgresBackend
    except ImportError as exc:
        raise ConfigurationError(f"{url.split(':', 1)[0]}:// needs the PostgreSQL driver: "
                                 "pip install 'conveyor[postgres]'") from exc
    ours, driver_url = _split_options(url, _POSTGRES_PARAMS)
    if driver_url.startswith("postgres://"):
        driver_url = "postgresql://" + driver_url.removeprefix("postgres://")
    return PostgresBackend(driver_url, retention=retention, **ours)  # type: ignore[arg-type]


def _split_options(url: str, known: dict[str, type]) -> tuple[dict[str, object], str]:
    """conveyor's own query options, and the URL with the rest for the driver."""
    parts = urlsplit(url)
    ours: dict[str, object] = {}
    theirs: list[tuple[str, str]] = []
    for key, values in parse_qs(parts.query, keep_blank_values=True).items():
        if key in known:
            try:
                ours[key] = known[key](values[-1])
            except ValueError:
                raise ConfigurationError(f"{key}={values[-1]!r} in the store URL is not a valid value") from None
        else:
            theirs += [(key, value) for value in values]
    # Encoded again (as %XX, never '+', which libpq would read literally): a decoded value such as
    # a certificate path with '&', '+' or '%' in it must reach the driver as it was given.
    return ours, urlunsplit(parts._replace(query=urlencode(theirs, quote_via=quote)))
