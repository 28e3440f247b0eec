"""Load an engine's SQL files: one operation per file, named after the operation, and numbered
migrations (NNNN_name.sql), applied in order."""

from __future__ import annotations

from functools import cache
from importlib import resources


@cache
def load_sql(package: str, name: str) -> str:
    return resources.files(package).joinpath("sql", f"{name}.sql").read_text(encoding="utf-8")


def load_migrations(package: str) -> list[tuple[int, str, str]]:
    """(version, name, SQL text) of every migration of the engine in `package`, in order."""
    found = []
    for entry in resources.files(package).joinpath("migrations").iterdir():
        if entry.name.endswith(".sql"):
            version, _, name = entry.name.removesuffix(".sql").partition("_")
            found.append((int(version), name, entry.read_text(encoding="utf-8")))
    return sorted(found)
