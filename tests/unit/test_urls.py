"""Passwords never leave the URL: what conveyor prints or logs of a store URL (messages, repr,
`conveyor info`) hides a password given in the user part or as a `password=` option."""

from __future__ import annotations

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
