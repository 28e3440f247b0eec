"""Progress is a number from 0 to 100; anything else is refused with a message, before any write."""

from __future__ import annotations

import asyncio

import pytest

from conveyor import ConfigurationError
from conveyor.context import JobContext


def context(writes: list[tuple[float, str | None]]) -> JobContext:
    return JobContext(id="j", task="t", queue="q", attempt=1, max_attempts=1,
                      _progress_sink=lambda progress, message: writes.append((progress, message)))


@pytest.mark.parametrize("bad", [-1, 100.5, True, "50", None])
def test_progress_outside_0_to_100_is_refused_and_nothing_is_written(bad: object) -> None:
    writes: list[tuple[float, str | None]] = []
    with pytest.raises(ConfigurationError, match="progress is a number from 0 to 100"):
        context(writes).set_progress(bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match=r"aset_progress\("):
        asyncio.run(context(writes).aset_progress(bad))  # type: ignore[arg-type]
    assert writes == []


def test_both_forms_write_the_progress_as_a_float() -> None:
    writes: list[tuple[float, str | None]] = []
    context(writes).set_progress(40, "resizing")
    asyncio.run(context(writes).aset_progress(100))
    assert writes == [(40.0, "resizing"), (100.0, None)]
