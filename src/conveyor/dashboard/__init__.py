"""The dashboard: see and steer every queue from a browser, served by `conveyor dashboard` or
mounted into an existing ASGI (or, through an adapter, WSGI) app. Needs `conveyor[dashboard]`."""

from conveyor.dashboard.web import create_dashboard

__all__ = ["create_dashboard"]
