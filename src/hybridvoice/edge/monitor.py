"""The edge's OPTIONS pinger toward its mediation role: the asyncio adapter of
:class:`~hybridvoice.edge.access.Reachability` (RFC 3261 §11).

Every ``interval`` seconds one OPTIONS goes from the internal interface; the outcome feeds
the sans-IO :class:`~hybridvoice.edge.access.Reachability`, which the policy reads. A named
adapter of the import rules: it runs a task on the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from hybridvoice.net.endpoint import Endpoint, RequestTimeoutError
from hybridvoice.net.options import options_request
from hybridvoice.net.transport import Destination, TransportError
from hybridvoice.sip.uri import SipUri

from .access import Reachability

__all__ = ["MediationMonitor"]

_log = logging.getLogger("hybridvoice.edge.access")


class MediationMonitor:
    """OPTIONS to the mediation role every ``interval`` seconds from the internal interface;
    ``up`` turns False after ``misses`` unanswered pings and True at the next answer."""

    def __init__(
        self,
        endpoint: Endpoint,
        target: Destination,
        *,
        interval: float = 1.0,
        timeout: float = 1.0,
        misses: int = 2,
    ) -> None:
        self.endpoint = endpoint
        self.target = target
        self.interval = interval
        self.timeout = timeout
        self.state = Reachability(misses)
        self._task: asyncio.Task[None] | None = None

    @property
    def up(self) -> bool:
        return self.state.up

    @property
    def missed(self) -> int:
        return self.state.missed

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def check(self) -> bool:
        """One ping; updates and returns :attr:`up`."""
        t = self.target
        try:
            transport = self.endpoint.transport_for(t)
            uri = SipUri(t.host, None, None, t.port, (("transport", t.transport.lower()),))
            # From and Contact name us as the mediation role sees us: our FQDN over TLS
            request = options_request(uri, transport.advertised[0], transport.sent_by, t.transport)
            await self.endpoint.request(request, t, timeout=self.timeout)
        except (RequestTimeoutError, TransportError):
            if self.state.unanswered():
                _log.warning("mediation %s:%d does not answer: calls get 503", t.host, t.port)
        else:
            if self.state.answered():
                _log.info("mediation %s:%d answers again", t.host, t.port)
        return self.up

    async def _run(self) -> None:
        while True:
            await self.check()
            await asyncio.sleep(self.interval)
