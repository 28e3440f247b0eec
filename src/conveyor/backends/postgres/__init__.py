"""The PostgreSQL engine (`postgresql://`): install with `pip install 'conveyor[postgres]'`."""

from conveyor.backends.postgres.engine import PostgresBackend

__all__ = ["PostgresBackend"]
