"""The schedules the scheduler end-to-end tests run in real processes
(`tests.conformance.scheduler_app:app`); the store URL comes from CONVEYOR_URL."""

from __future__ import annotations

from conveyor import Conveyor

app = Conveyor(lease_seconds=2.0, heartbeat_interval=0.2)


@app.periodic(cron="* * * * * *", name="every-second")
def every_second() -> str:
    return "tick"
