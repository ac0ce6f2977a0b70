"""``hybridvoice plan verify``: test calls for the PSTN scenarios, planned against observed.

For each scenario (an internal client with media bypass, one without, a client on the
internet) it places a real test call (:func:`~hybridvoice.mgmt.testcall.place_test_call`),
reads the call's observed path from the appliance (``GET /v1/calls/{call_id}``, classified
by segment with the appliance's ``[Segments]``) and sets it beside the plan
(:func:`~hybridvoice.planning.callflow.plan_pstn`, with the deployment's peering link or not)
through :func:`~hybridvoice.planning.observed.compare`.

The tenant's media bypass setting is switched through the online service's admin API for
the scenarios that need it (``PATCH /v1/network-config``), and put back as it was afterwards,
also when a call or the comparison fails. The internet client is placed on a loopback
address outside the customer's subnets (``docs/planning.md``); a deployment where no such
address exists, or where the internal client's address is not the customer's, cannot be
verified: :class:`CannotVerifyError` says what to change.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from hybridvoice.mgmt.testcall import TestCallResult, place_test_call
from hybridvoice.net.transport import Destination
from hybridvoice.planning.callflow import ClientLocation, Hop, Path, plan_pstn
from hybridvoice.planning.observed import Comparison, SegmentMap, compare
from hybridvoice.planning.segments import Segment, Traffic

__all__ = [
    "INTERNET_CANDIDATES",
    "SCENARIOS",
    "CannotVerifyError",
    "Scenario",
    "ScenarioResult",
    "VerifyOptions",
    "pick_internet_address",
    "run_verify",
]


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    client: ClientLocation
    bypass: bool  # the tenant's media bypass setting during the call


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("internal, bypass", ClientLocation.INTERNAL, True),
    Scenario("internal, no bypass", ClientLocation.INTERNAL, False),
    Scenario("internet client", ClientLocation.INTERNET, True),  # never bypasses
)

#: loopback addresses tried for the internet client, in order
INTERNET_CANDIDATES: tuple[str, ...] = ("127.128.0.1", "127.200.0.1", "127.255.255.254")


class CannotVerifyError(Exception):
    """Verify cannot run: ``args[0]`` what is wrong, :attr:`hint` what to do."""

    def __init__(self, problem: str, hint: str) -> None:
        super().__init__(problem)
        self.hint = hint


@dataclass(slots=True)
class VerifyOptions:
    online_url: str
    appliance_url: str
    user: str
    domain: str
    password: str
    number: str
    token: str | None = None
    internal_address: str = "127.0.0.1"
    internet_address: str | None = None  # None: the first of INTERNET_CANDIDATES that fits
    duration: float = 0.4
    timeout: float = 15.0
    http: Callable[[str], httpx.AsyncClient] | None = None  # base URL -> client (tests)


@dataclass(slots=True)
class ScenarioResult:
    scenario: Scenario
    address: str
    call: TestCallResult | None = None
    comparisons: list[Comparison] = field(default_factory=list)
    error: str | None = None
    observed: Mapping[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and bool(self.comparisons) and all(c.ok for c in self.comparisons)


def _networks(values: Any) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(str(v), strict=False) for v in values or ())


def segment_map(answer: Mapping[str, Any]) -> SegmentMap:
    """The appliance's segment map from ``GET /v1/segments``."""
    return SegmentMap(
        _networks(answer.get("customer")), _networks(answer.get("peering")),
        _networks(answer.get("cloud")),
    )  # fmt: skip


def pick_internet_address(segments: SegmentMap, given: str | None) -> str:
    """The internet client's address: ``given``, or the first candidate on the internet."""
    if given is not None:
        if segments.segment(given) is not Segment.INTERNET:
            raise CannotVerifyError(
                f"--internet-address {given} is not on the internet by this deployment's "
                f"segments (it is {segments.segment(given) or 'no IP address'})",
                "Give an address outside [Segments] CustomerSubnets, PeeringPrefixes and "
                "CloudAddresses.",
            )
        return given
    for candidate in INTERNET_CANDIDATES:
        if segments.segment(candidate) is Segment.INTERNET:
            return candidate
    customer = " ".join(str(n) for n in segments.customer)
    raise CannotVerifyError(
        f"no loopback address is outside the customer's subnets ({customer}) for the "
        "internet client",
        "Narrow them: [MediationServer] InternalSubnets (or [Segments] CustomerSubnets) = "
        "127.0.0.0/16, so that 127.128.0.1 is on the internet (`hybridvoice init --segments` "
        "writes such a lab; docs/planning.md).",
    )


def check_internal(segments: SegmentMap, address: str) -> None:
    found = segments.segment(address)
    if found is not Segment.CUSTOMER:
        raise CannotVerifyError(
            f"the internal client's address {address} is not in the customer's network "
            f"(it is {found or 'no IP address'}; cloud: "
            f"{' '.join(str(n) for n in segments.cloud)})",
            "Start the lab with `hybridvoice up --segments` (the online service on 127.64.0.1, "
            "named as the cloud), or in your settings put the online service on its own "
            "address and name it: [Online] SIPAddresses, [Segments] CloudAddresses "
            "(`hybridvoice init --segments` writes such a file; docs/planning.md).",
        )


def observed_path(hops: list[Mapping[str, Any]], traffic: Traffic) -> Path:
    """An observed path of the appliance's answer as a :class:`Path`."""
    return Path(
        traffic,
        tuple(
            Hop(str(h["source"]), str(h["target"]), tuple(Segment(s) for s in h["segments"]))
            for h in hops
        ),
    )


class _Api:
    """The two admin APIs, as the verify run needs them."""

    def __init__(self, options: VerifyOptions) -> None:
        self.options = options
        make = options.http or self._client
        self.online = make(options.online_url)
        self.appliance = make(options.appliance_url)

    def _client(self, base: str) -> httpx.AsyncClient:
        headers = {} if self.options.token is None else {
            "Authorization": f"Bearer {self.options.token}"
        }  # fmt: skip
        return httpx.AsyncClient(base_url=base, timeout=10.0, headers=headers)

    async def close(self) -> None:
        await self.online.aclose()
        await self.appliance.aclose()

    async def get(self, client: httpx.AsyncClient, path: str) -> Any:
        try:
            response = await client.get(path)
        except httpx.HTTPError as exc:
            raise CannotVerifyError(
                f"cannot reach {client.base_url}{path}: {exc or type(exc).__name__}",
                "Is `hybridvoice up` running? Check --url and --appliance.",
            ) from exc
        if response.status_code in (401, 403):
            raise CannotVerifyError(
                f"{client.base_url}{path} refused the token ({response.status_code})",
                "Give an admin token: --token, $HYBRIDVOICE_TOKEN, or the one `up` saved.",
            )
        if response.status_code != 200:
            raise CannotVerifyError(
                f"{client.base_url}{path} answered {response.status_code}",
                "The service's log says why.",
            )
        return response.json()

    async def set_bypass(self, enabled: bool) -> None:
        try:
            response = await self.online.patch(
                "/v1/network-config", json={"media_bypass_enabled": enabled}
            )
        except httpx.HTTPError as exc:
            raise CannotVerifyError(f"cannot change media bypass: {exc}",
                                    "Check --url.") from exc  # fmt: skip
        if response.status_code != 200:
            raise CannotVerifyError(
                f"the online service refused to change media bypass ({response.status_code})",
                "Verify needs an admin token on the online service.",
            )

    async def wait_bypass(self, enabled: bool) -> None:
        """Until the appliance applies the tenant's bypass setting (replication)."""
        for _ in range(200):
            status = await self.get(self.appliance, "/v1/status")
            if bool(status.get("media_bypass")) is enabled:
                return
            await asyncio.sleep(0.05)
        raise CannotVerifyError(
            f"the appliance did not apply media bypass {'on' if enabled else 'off'} in 10 s",
            "Check that the appliance replicates from the online service (`appliance status`).",
        )

    async def observed(self, call_id: str) -> Mapping[str, Any] | None:
        for _ in range(200):  # the record is written by a background thread (10 s at most)
            with contextlib.suppress(CannotVerifyError):
                record = await self.get(self.appliance, f"/v1/calls/{call_id}")
                if record.get("observed_paths"):
                    return dict(record["observed_paths"])
            await asyncio.sleep(0.05)
        return None


async def _scenario(api: _Api, scenario: Scenario, address: str, peering: bool) -> ScenarioResult:
    o = api.options
    result = ScenarioResult(scenario, address)
    await api.set_bypass(scenario.bypass)
    await api.wait_bypass(scenario.bypass)
    online = await api.get(api.appliance, "/v1/segments")
    sip = online["online_sip"]
    call = await place_test_call(
        user=o.user, domain=o.domain, password=o.password, number=o.number,
        proxy=Destination("UDP", str(sip["host"]), int(sip["port"])), duration=o.duration,
        appliance_url=o.appliance_url, timeout=o.timeout, api_token=o.token, local_host=address,
    )  # fmt: skip
    result.call = call
    if call.call_id is None or call.status != 200:
        result.error = call.error or "the test call was not answered"
        return result
    observed = await api.observed(call.call_id)
    if observed is None:
        result.error = f"the appliance has no observed path for call {call.call_id}"
        return result
    result.observed = observed
    plan = plan_pstn(client=scenario.client, peering=peering, bypass=scenario.bypass)
    result.comparisons = [
        compare(plan.signalling, observed_path(observed["signalling"], Traffic.SIGNALLING)),
        compare(plan.media, observed_path(observed["media"], Traffic.MEDIA)),
    ]
    return result


async def _check_records(api: _Api) -> None:
    """The observed paths live in the call records: an appliance without them (``up
    --state-dir :memory:``) cannot be verified, and is told so before anything changes."""
    try:
        response = await api.appliance.get("/v1/calls", params={"limit": 1})
    except httpx.HTTPError:
        return  # the next request says it, with its own words
    if response.status_code == 404:
        raise CannotVerifyError(
            "the appliance keeps no call records, where the observed paths are written",
            "Start it with a state directory: `hybridvoice up --segments` (its default), or "
            "--state-dir DIR, not :memory:; an appliance of its own: [Management] "
            "StateDirectory.",
        )


async def run_verify(options: VerifyOptions) -> tuple[SegmentMap, list[ScenarioResult]]:
    """Every scenario of :data:`SCENARIOS`; the tenant's bypass setting restored at the end.
    Raises :class:`CannotVerifyError` when verify cannot run."""
    api = _Api(options)
    try:
        answer = await api.get(api.appliance, "/v1/segments")
        segments = segment_map(answer)
        check_internal(segments, options.internal_address)
        internet = pick_internet_address(segments, options.internet_address)
        if not answer.get("edge_relay"):
            raise CannotVerifyError(
                "the edge's media relay is off: an internet client's media cannot be "
                "anchored at the edge",
                "Set [EdgeServer] ExternalMRIPs and ExternalMRPortRange (docs/edge-media.md).",
            )
        await _check_records(api)
        before = await api.get(api.online, "/v1/network-config")
        was = bool(before.get("media_bypass_enabled"))
        results: list[ScenarioResult] = []
        try:
            for scenario in SCENARIOS:
                address = (
                    internet if scenario.client is ClientLocation.INTERNET
                    else options.internal_address
                )  # fmt: skip
                results.append(await _scenario(api, scenario, address, segments.has_peering))
        finally:
            await api.set_bypass(was)
        return segments, results
    finally:
        await api.close()
