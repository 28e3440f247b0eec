"""Cron and interval schedules, fired exactly once however many schedulers run."""

from conveyor.scheduler.schedule import MissedPolicy, Schedule
from conveyor.scheduler.scheduler import Scheduler
from conveyor.scheduler.triggers import Cron, Every, Trigger

__all__ = ["Cron", "Every", "MissedPolicy", "Schedule", "Scheduler", "Trigger"]
