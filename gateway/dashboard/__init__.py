"""The web dashboard served by the gateway at ``/dashboard`` (docs/dashboard.md).

Its sources are under ``dashboard/`` at the repository root (TypeScript, built with Vite by
``make dashboard``); the built files are committed in ``static/`` and ship in the wheel.
"""

from gateway.dashboard.routes import DashboardDeps, include_dashboard
from gateway.dashboard.sessions import DashboardSessions

__all__ = ["DashboardDeps", "DashboardSessions", "include_dashboard"]
