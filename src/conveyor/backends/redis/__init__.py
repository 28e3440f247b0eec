"""The Redis engine (`redis://`, `rediss://`): install with `pip install 'conveyor[redis]'`."""

from conveyor.backends.redis.engine import RedisBackend

__all__ = ["RedisBackend"]
