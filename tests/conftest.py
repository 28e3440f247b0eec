"""Fixtures shared by every test: the engines the conformance suite runs on, and apps on them."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from conveyor import Conveyor
from tests.servers import PostgresServer, RedisServer

T = TypeVar("T")

# Every engine the product has. A new engine adds its name here and a branch in `engine_url`.
ENGINES = ["sqlite", "redis", "postgres"]


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One redis-server for the session; each test gets its own namespace in it."""
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL cluster for the session; each test gets its own schema in it."""
    server = PostgresServer().start()
    yield server
    server.remove()


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def engine_url(engine: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if engine == "sqlite":
        return f"sqlite:///{tmp_path / 'jobs.db'}"
    if engine == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        return f"{server.url}?namespace=t{uuid.uuid4().hex[:12]}"
    if engine == "postgres":
        pg: PostgresServer = request.getfixturevalue("postgres_server")
        return f"{pg.url}?schema=t{uuid.uuid4().hex[:12]}"
    raise AssertionError(f"no fixture for engine {engine}")


@pytest.fixture
def make_app(engine_url: str) -> Iterator[Callable[..., Conveyor]]:
    apps: list[Conveyor] = []

    def factory(**settings: Any) -> Conveyor:
        settings.setdefault("lease_seconds", 30.0)
        app = Conveyor(engine_url, **settings)
        apps.append(app)
        return app

    yield factory
    for app in apps:
        app.close()


@pytest.fixture
def app(make_app: Callable[..., Conveyor]) -> Conveyor:
    return make_app()


def wait_for(condition: Callable[[], T], timeout: float = 10.0, interval: float = 0.01) -> T:
    """Poll until `condition()` is truthy and return it; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)
