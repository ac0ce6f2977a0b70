"""The health keys of a ``[GatewayN]`` and of ``[TrunkConfiguration]`` (RFC 3261 §11: OPTIONS
as a keep-alive probe; §17.1.1.2: Timer B).

A gateway is probed with OPTIONS every ``OptionsIntervalSeconds``; a probe without a final
response within ``OptionsTimeoutSeconds`` (default: the interval) is a miss, and so is an
INVITE to it that times out or cannot be sent. ``UnhealthyAfterMissed`` consecutive misses
mark it down, ``HealthyAfterAnswered`` consecutive answers up again. Each key may be given per
gateway; a gateway without it takes ``[TrunkConfiguration]``'s. A bad value names its key and
the reason (``Gateway1.UnhealthyAfterMissed: input should be greater than or equal to 1, got
0``). ``TryUnhealthyGatewaysLast`` (default true): a gateway marked down still gets a call
when every healthy one failed or is full, after them.
"""

from __future__ import annotations

from pydantic import Field

from .settings_values import _Section

__all__ = ["GatewayHealthKeys", "HealthMonitor", "TrunkHealthKeys"]


class GatewayHealthKeys(_Section):
    """Per-gateway health keys (None: ``[TrunkConfiguration]``'s value)."""

    options_interval_seconds: float | None = Field(default=None, ge=0.05, le=3600)
    options_timeout_seconds: float | None = Field(default=None, ge=0.05, le=3600)
    unhealthy_after_missed: int | None = Field(default=None, ge=1, le=1000)
    healthy_after_answered: int | None = Field(default=None, ge=1, le=1000)


class TrunkHealthKeys(_Section):
    """The health keys every gateway shares unless its own section says otherwise."""

    options_interval_seconds: float = Field(default=60.0, ge=0.05, le=3600)
    #: None: the interval
    options_timeout_seconds: float | None = Field(default=None, ge=0.05, le=3600)
    unhealthy_after_missed: int = Field(default=3, ge=1, le=1000)
    healthy_after_answered: int = Field(default=1, ge=1, le=1000)
    try_unhealthy_gateways_last: bool = True


class HealthMonitor(_Section):
    """``[HealthMonitor]`` (hybridvoice): the appliance's own health monitor
    (``mgmt.self_health``). Every ``IntervalSeconds`` it checks its roles, listeners, gateways
    and certificates; on a failure it drains the appliance and marks it offline at the cloud,
    then checks again after ``RetrySeconds`` ``Retries`` times, then at doubling intervals up
    to ``MaxRetrySeconds`` (CCE: 60 s; 10 s x 3; 1 h), and brings it back when all pass."""

    enabled: bool = True
    interval_seconds: float = Field(default=10.0, ge=0.5, le=3600)
    retry_seconds: float = Field(default=10.0, ge=0.5, le=3600)
    retries: int = Field(default=3, ge=0, le=100)
    max_retry_seconds: float = Field(default=3600.0, ge=0.5, le=86400)
    #: a listener that does not accept a connection in this time fails the check
    connect_timeout_seconds: float = Field(default=2.0, ge=0.1, le=60)
