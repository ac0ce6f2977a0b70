"""The live web dashboard, served by the management API in the same event loop.

:func:`add_dashboard` puts the pages (:mod:`.views`: server-rendered HTML, plots and the SIP
ladder as SVG drawn by the server, :mod:`.plots`, :mod:`.ladder`), the live stream
(server-sent events) and the login (:mod:`.gate`: the API's bearer tokens, in an HttpOnly,
SameSite=Strict cookie) on an app already behind :func:`hybridvoice.cms.guard.protect`.
The stylesheet and the one script are package data (``static/``); nothing is fetched from
elsewhere. ``docs/dashboard.md`` says what each page shows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import FastAPI

from hybridvoice.cms.guard import Access

from ..appliance_api import create_appliance_api
from .gate import DashboardGate
from .source import DashboardSource
from .views import EventTimes, add_views, environment

if TYPE_CHECKING:
    from hybridvoice.online.service import OnlineService

    from ..appliance import Appliance

__all__ = ["DashboardSource", "EventTimes", "add_dashboard", "appliance_app", "tenant_dashboard"]


def add_dashboard(
    app: FastAPI, source: DashboardSource, access: Access, times: EventTimes | None = None
) -> None:
    """The dashboard on ``app`` (call after ``protect``: the gate must run first)."""
    login = add_views(app, source, environment(), times or EventTimes())
    app.add_middleware(DashboardGate, access=access, login_page=login)


def appliance_app(appliance: Appliance, times: EventTimes | None = None) -> FastAPI:
    """The appliance's management API with the dashboard on it; in ``hybridvoice up`` the
    overview lists every appliance the online service knows (``ApplianceOptions.fleet``)."""
    app = create_appliance_api(appliance)
    o = appliance.options
    source = DashboardSource(appliance, fleet=o.fleet, summaries=o.fleet_summaries)
    add_dashboard(app, source, appliance.access, times)
    return app


def tenant_dashboard(app: FastAPI, online: OnlineService) -> None:
    """The dashboard on the online service's API: the tenant's sites and appliances from
    their registrations and heartbeat summaries (each appliance's own dashboard has its
    calls); behind the online API's tokens."""
    source = DashboardSource(None, fleet=online.store.appliances, summaries=online.summaries.rows)
    add_dashboard(app, source, online.store.access)
