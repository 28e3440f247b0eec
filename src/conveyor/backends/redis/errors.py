"""What a Redis error means for the user, in words that say what to do: a missing or wrong
password, an unreachable server, a TLS certificate or handshake, an ACL that lacks a permission.
Messages show the URL without its password."""

from __future__ import annotations

import ssl
from typing import TypeVar
from urllib.parse import parse_qs, urlsplit

import redis

from conveyor.backends.shared import safe_url

E = TypeVar("E", bound=BaseException)


def explain(exc: redis.RedisError, url: str) -> str:
    """The BackendError message for `exc`, raised while talking to the Redis at `url`."""
    if isinstance(exc, redis.AuthenticationError):
        return _credentials_refused(exc, url)
    if isinstance(exc, redis.ConnectionError | redis.TimeoutError):
        return _unreachable(exc, url)
    return f"Redis at {safe_url(url)} refused a command: {exc}{_acl_hint(exc)}"


def _chained(exc: BaseException, kind: type[E]) -> E | None:
    """`exc` or the first exception of `kind` it was raised from or during (redis-py wraps socket
    and TLS errors in its ConnectionError)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, kind):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _acl_hint(exc: redis.RedisError) -> str:
    """What to do when the URL's ACL user may not run a command, touch a key or publish (in a script)."""
    if isinstance(exc, redis.exceptions.NoPermissionError) or "user executing the script can't" in str(exc):
        return ("; the URL's ACL user lacks a permission conveyor needs (keys ~conveyor:*, channels "
                "&conveyor:* and the commands listed under \"Passwords, ACL users and TLS\" in conveyor's "
                "Redis docs)")
    return ""


def _credentials_refused(exc: redis.AuthenticationError, url: str) -> str:
    safe = safe_url(url)
    # Redis's own words never hold the password; the URL is shown without it.
    reason = str(exc).strip().rstrip(".")
    parts = urlsplit(url)
    if parts.password is None and "password" not in parse_qs(parts.query):
        return (f"Redis at {safe} wants a password and the URL has none ({reason}): write it into "
                "the URL, redis://:PASSWORD@host:6379/0, or redis://USER:PASSWORD@host:6379/0 for an ACL user")
    return (f"Redis at {safe} refused the user and password in the URL ({reason}): check them; "
            "an ACL user must exist and be on, and @ : / % in a password are written %40 %3A %2F %25")


def _unreachable(exc: redis.RedisError, url: str) -> str:
    safe = safe_url(url)
    verify = _chained(exc, ssl.SSLCertVerificationError)
    if verify is not None:
        reason = str(verify.verify_message or verify.reason or verify).strip().rstrip(".")
        if verify.verify_code == 62:  # X509_V_ERR_HOSTNAME_MISMATCH
            return (f"Redis at {safe} presented a TLS certificate for another host name ({reason}): "
                    "connect by a name or address the certificate lists")
        return (f"Redis at {safe} presented a TLS certificate conveyor does not trust ({reason}): "
                "if a private CA signed it, name that CA's certificate in the URL, ?ssl_ca_certs=/path/to/ca.pem")
    handshake = _chained(exc, ssl.SSLError)
    if handshake is not None and "certificate" in str(handshake).lower():  # what a server says of ours
        return (f"Redis at {safe} refused the TLS handshake over the client certificate "
                f"({handshake}): a server with tls-auth-clients wants one signed by a CA it trusts, named in "
                "the URL, ssl_certfile=/path/to/cert.pem&ssl_keyfile=/path/to/key.pem")
    if handshake is not None:
        return (f"the TLS handshake with Redis at {safe} failed ({handshake}): does the server "
                "speak TLS on that port (its tls-port), or is the URL meant to be redis://?")
    if not url.lower().startswith("rediss:"):
        return f"cannot reach Redis at {safe}: {exc}; is redis-server running there?"
    if _chained(exc, FileNotFoundError) is not None:
        return (f"cannot connect to Redis at {safe}: a TLS file the URL names does not exist "
                "(check ssl_ca_certs, ssl_certfile and ssl_keyfile)")
    return (f"cannot reach Redis at {safe}: {exc}; is redis-server running there, speaking TLS "
            "on that port (its tls-port)?")
