"""Passwords never leave the URL: what conveyor prints or logs of a store URL (messages, repr,
`conveyor info`) hides a password given in the user part or as a `password=` option."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from conveyor import Conveyor
from conveyor.backends.shared import safe_url


@pytest.mark.parametrize(("url", "shown"), [
    ("redis://:s3cret@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
    ("redis://ann:s3cret@cache/0?namespace=billing", "redis://ann:***@cache/0?namespace=billing"),
    ("postgresql://app@db/app?password=s3cret&sslmode=require", "postgresql://app@db/app?password=***&sslmode=require"),
    ("rediss://h:6380/0?ssl_password=k3y&password=s3cret", "rediss://h:6380/0?ssl_password=***&password=***"),
    ("sqlite:///jobs.db", "sqlite:///jobs.db"),
])
def test_safe_url_hides_every_password(url: str, shown: str) -> None:
    assert safe_url(url) == shown


def test_an_apps_repr_and_display_url_hide_the_password() -> None:
    app = Conveyor("redis://ann:s3cret@127.0.0.1:1/0?password=s3cret")  # never connects: the store opens lazily
    assert "s3cret" not in repr(app) and "s3cret" not in app.display_url
    assert app.url.startswith("redis://ann:s3cret@"), "the URL itself is kept for connecting"


TRICKY_PATH = "/etc/certs/a&b+c 100%/ca.pem"


def test_a_driver_option_reaches_redis_py_as_it_was_given() -> None:
    from redis.connection import parse_url

    from conveyor.backends import _REDIS_PARAMS, _split_options

    given = f"rediss://h:6380/0?namespace=billing&ssl_ca_certs={quote(TRICKY_PATH, safe='')}"
    ours, driver_url = _split_options(given, _REDIS_PARAMS)
    assert ours == {"namespace": "billing"}
    assert parse_url(driver_url)["ssl_ca_certs"] == TRICKY_PATH


def test_a_driver_option_reaches_libpq_as_it_was_given() -> None:
    from psycopg.conninfo import conninfo_to_dict

    from conveyor.backends import _POSTGRES_PARAMS, _split_options

    given = f"postgresql://app@db/app?schema=billing&sslmode=verify-full&sslrootcert={quote(TRICKY_PATH, safe='')}"
    ours, driver_url = _split_options(given, _POSTGRES_PARAMS)
    assert ours == {"schema": "billing"}
    assert conninfo_to_dict(driver_url)["sslrootcert"] == TRICKY_PATH
    assert conninfo_to_dict(driver_url)["sslmode"] == "verify-full"
