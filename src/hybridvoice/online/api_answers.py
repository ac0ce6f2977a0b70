"""The online API's success answers as models, for its OpenAPI document (docs/api.md).

The handlers of :mod:`.api` return plain JSON objects (``model_dump`` of the tenant's models,
in wrappers such as ``{"sites": [...]}``); this module names the model of each answer so that
the document describes them and a client (or schemathesis) can check them. ``UserOut`` has no
HA1 fields (nor their realm: ``SECRET_USER_FIELDS``) and forbids extra keys: an answer that
carried a user's secrets would not match.
"""

from __future__ import annotations

from typing import Final

from fastapi import FastAPI

from hybridvoice.cms.api_errors import Answer, Answers, add_answers
from hybridvoice.online.models import Appliance, DialPlanRule, HybridConfig, NetworkConfig, Site

__all__ = ["ONLINE_ANSWERS", "add_online_answers"]


class DomainsOut(Answer):
    domains: list[str]


class DomainOut(Answer):
    name: str


class SitesOut(Answer):
    sites: list[Site]


class UserOut(Answer):
    """A user as the API shows it: never its HA1s, whether it has a password."""

    sip_uri: str
    display_name: str
    enterprise_voice_enabled: bool
    line_uri: str | None
    hybrid_pstn_site: str | None
    international_calls_allowed: bool
    has_password: bool


class UsersOut(Answer):
    users: list[UserOut]


class RulesOut(Answer):
    rules: list[DialPlanRule]


class AppliancesOut(Answer):
    appliances: list[Appliance]


class HealthOut(Answer):
    status: str
    tenant: str
    version: int
    appliances: dict[str, int]


ONLINE_ANSWERS: Final[Answers] = {
    ("GET", "/v1/domains"): DomainsOut,
    ("POST", "/v1/domains"): DomainOut,
    ("GET", "/v1/sites"): SitesOut,
    ("POST", "/v1/sites"): Site,
    ("GET", "/v1/sites/{name}"): Site,
    ("PUT", "/v1/sites/{name}"): Site,
    ("GET", "/v1/users"): UsersOut,
    ("GET", "/v1/users/{sip_uri}"): UserOut,
    ("PUT", "/v1/users/{sip_uri}"): UserOut,
    ("GET", "/v1/hybrid-config"): HybridConfig,
    ("PUT", "/v1/hybrid-config"): HybridConfig,
    ("PATCH", "/v1/hybrid-config"): HybridConfig,
    ("GET", "/v1/network-config"): NetworkConfig,
    ("PUT", "/v1/network-config"): NetworkConfig,
    ("PATCH", "/v1/network-config"): NetworkConfig,
    ("POST", "/v1/network-config/media-bypass/{action}"): NetworkConfig,
    ("GET", "/v1/dialplan"): RulesOut,
    ("GET", "/v1/dialplan/{name}"): DialPlanRule,
    ("PUT", "/v1/dialplan/{name}"): DialPlanRule,
    ("GET", "/v1/appliances"): AppliancesOut,
    ("GET", "/v1/appliances/{name}"): Appliance,
    ("POST", "/v1/appliances"): Appliance,
    ("POST", "/v1/appliances/{name}/heartbeat"): Appliance,
    ("GET", "/v1/health"): HealthOut,
}


def add_online_answers(app: FastAPI) -> None:
    """Describe the answers of :data:`ONLINE_ANSWERS` in ``app``'s OpenAPI document."""
    add_answers(app, ONLINE_ANSWERS)
