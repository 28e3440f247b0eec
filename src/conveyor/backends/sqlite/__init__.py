from conveyor.backends.sqlite.engine import SQLiteBackend

__all__ = ["SQLiteBackend"]
