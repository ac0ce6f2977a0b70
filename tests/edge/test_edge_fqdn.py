"""The edge names itself by the FQDN of its certificate on its TLS sides (RFC 5922 §7, RFC
5630 §3), never by a bare IP: Via sent-by, both Record-Route entries (RFC 5658) and the
OPTIONS it sends; in-dialog requests routed to those names still reach it (the online
service and the mediation role map the names to the edge's addresses, no DNS needed).

A call through ``hybridvoice up`` (:class:`hybridvoice.app.Lab`) with the site CA and TLS on
every hop between the roles; every SIP message is captured at each role's endpoint.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from chain_harness import DOMAIN, proxy_of, settings_on_free_ports
from ports import free_port
from ua_harness import run

from hybridvoice.app import LAB_PASSWORD, LAB_PSTN_NUMBER, Lab
from hybridvoice.cms.edge_names import external_names, internal_names, pick
from hybridvoice.cms.template import lab_settings
from hybridvoice.lab.responder import Responder
from hybridvoice.net.call import Call
from hybridvoice.net.endpoint import Endpoint
from hybridvoice.net.register import DigestCredentials, Registration
from hybridvoice.net.ua import UserAgent
from hybridvoice.sip.message import Request, Response
from hybridvoice.sip.session import OfferAnswered

EXTERNAL = "edge.contoso.example"  # the access edge pool FQDN (the lab's default)
INTERNAL = "edge-int.contoso.example"
TLS_HOPS = {
    "EdgeServer": {"InternalProtocol": "TLS", "ExternalProtocol": "TLS",
                   "InternalPoolName": INTERNAL},
    "MediationServer": {"InternalProtocol": "TLS"},
    "Online": {"SIPProtocol": "TLS"},
}  # fmt: skip

Captured = list[tuple[str, str, Request | Response]]


def _capture(endpoint: Endpoint | None, where: str, into: Captured) -> None:
    assert endpoint is not None
    endpoint.trace = lambda way, message: into.append((where, way, message))


def _offer(port: int, version: int) -> bytes:
    return (
        f"v=0\r\no=fqdn 1 {version} IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        f"m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"
    ).encode()


async def _client(up: Lab) -> tuple[UserAgent, DigestCredentials]:
    endpoint = Endpoint()
    await endpoint.listen("UDP", "127.0.0.1", 0)
    ua = UserAgent(endpoint, user="alice")
    credentials = DigestCredentials("alice", LAB_PASSWORD)
    aor = f"sip:alice@{DOMAIN}"
    await Registration(ua, aor, proxy_of(up), credentials=credentials, expires=300).register()
    return ua, credentials


def _call(ua: UserAgent, up: Lab, credentials: DigestCredentials, port: int) -> Call:
    proxy = proxy_of(up)
    return ua.invite(
        f"sip:{LAB_PSTN_NUMBER}@{DOMAIN};user=phone", from_=f"<sip:alice@{DOMAIN}>",
        sdp=_offer(port, 1), destination=proxy,
        headers=[("Route", f"<sip:{proxy.host}:{proxy.port};transport=udp;lr>")],
        credentials=credentials, handler=Responder(answer=True),
    )  # fmt: skip


def _gateway_call(up: Lab, call_id_count: int) -> Call:
    assert up.gateway is not None
    calls = [c for c in up.gateway.ua.calls if not c.disconnected]
    assert len(calls) == 1, (call_id_count, calls)
    return calls[0]


def _to_tag(request: Request) -> str | None:
    to = request.to
    return None if to is None else to.tag


def _hosts(values: list[str]) -> list[str]:
    """The host of each Via or Record-Route value."""
    out = []
    for value in values:
        text = value.split("<sip:", 1)[-1] if "<" in value else value.split(" ", 1)[-1]
        hostport = text.split(";", 1)[0].split(">", 1)[0].rpartition("@")[2]
        out.append(hostport.rsplit(":", 1)[0])
    return out


@pytest.mark.parametrize("wire", [False, True], ids=["pipes", "sockets"])
def test_edge_names_itself_by_fqdn_on_tls_and_dialogs_still_route(
    tmp_path: Path, wire: bool
) -> None:
    captured: Captured = []

    async def main() -> None:
        up = Lab(settings_on_free_ports(**TLS_HOPS), tmp_path / "lab", lab_gateway=True,
                 wire=wire)  # fmt: skip
        await up.start()
        ua: UserAgent | None = None
        try:
            appliance = up.appliance
            assert appliance is not None and appliance.edge is not None
            assert appliance.mediation is not None and up.online is not None
            edge = appliance.edge
            assert edge.external is not None and edge.internal is not None
            assert edge.external.advertised[0] == EXTERNAL
            assert edge.internal.advertised[0] == INTERNAL
            _capture(edge.endpoint, "edge", captured)
            _capture(appliance.mediation.edge_endpoint, "mediation", captured)
            _capture(up.online.endpoint, "online", captured)
            ua, credentials = await _client(up)

            # call 1: re-INVITE and BYE from the client (online -> edge -> mediation)
            call = _call(ua, up, credentials, free_port())
            await call.answered(15)
            call.reinvite(_offer(free_port(), 2))
            await call.wait_for(OfferAnswered, 15)
            call.bye()
            await call.ended(15)

            # call 2: re-INVITE and BYE from the gateway side (mediation -> edge -> online)
            call = _call(ua, up, credentials, free_port())
            await call.answered(15)
            gateway_leg = _gateway_call(up, 2)
            gateway_leg.reinvite(_offer(up.gateway.echo.port if up.gateway else 0, 2))
            await gateway_leg.wait_for(OfferAnswered, 15)
            gateway_leg.bye()
            await call.ended(15)
            await gateway_leg.ended(15)
            async with asyncio.timeout(30):  # and one of the edge's OPTIONS pings (every 1 s)
                while not any(w == "edge" and way == "out" and getattr(m, "method", "") ==
                              "OPTIONS" for w, way, m in captured):  # fmt: skip
                    await asyncio.sleep(0.05)
            await asyncio.sleep(0.2)  # the last responses reach every trace
        finally:
            if ua is not None:
                ua.close()
                await ua.endpoint.close()
            await up.stop()

        _check(captured)

    run(main(), timeout=90)


def _check(captured: Captured) -> None:
    # every request the edge sends (TLS on both sides) names it by the FQDN of that side
    sent = [m for where, way, m in captured if where == "edge" and way == "out"]
    requests = [m for m in sent if isinstance(m, Request)]
    methods = {r.method for r in requests}
    assert {"INVITE", "ACK", "BYE", "OPTIONS"} <= methods, methods
    for request in requests:
        top = _hosts(request.headers.get_all("Via"))[0]
        assert top in (EXTERNAL, INTERNAL), (top, str(request))
    options = [r for r in requests if r.method == "OPTIONS"]
    assert all(INTERNAL in r.headers.get("From", "") for r in options)
    assert all(INTERNAL in r.headers.get("Contact", "") for r in options)
    # both of its Record-Route entries (RFC 5658), by name, on every dialog-creating request
    for request in requests:
        if request.method == "INVITE" and _to_tag(request) is None:
            values = request.headers.get_all("Record-Route")
            routes = _hosts(values)
            assert {EXTERNAL, INTERNAL} <= set(routes), routes
            assert not {"127.0.0.1"} & set(routes[:2]), routes
            # outside, which appliance of the pool: its name as the user part
            assert any(f"<sip:appliance1@{EXTERNAL}:" in v for v in values), values
    # the peers saw the same on their TLS legs
    for where in ("mediation", "online"):
        got = [m for w, way, m in captured if w == where and way == "in"]
        from_edge = [m for m in got if isinstance(m, Request) and m.method in ("INVITE", "BYE")]
        assert from_edge, where
    # in-dialog requests crossed the edge both ways: BYE and re-INVITE, from each side
    edge_in = [m for w, way, m in captured if w == "edge" and way == "in"]
    re_invites = [m for m in edge_in if isinstance(m, Request) and m.method == "INVITE"
                  and _to_tag(m) is not None]  # fmt: skip
    byes = [m for m in edge_in if isinstance(m, Request) and m.method == "BYE"]
    assert len(byes) == 2 and len(re_invites) >= 1, (len(byes), len(re_invites))
    # ...and got their 200s back
    edge_out_ok = [m for m in sent if isinstance(m, Response) and m.status == 200
                   and m.cseq is not None and m.cseq.method in ("BYE", "INVITE")]  # fmt: skip
    assert sum(1 for m in edge_out_ok if m.cseq is not None and m.cseq.method == "BYE") == 2


def test_a_side_keeps_its_address_over_tcp_and_without_a_name_its_certificate_holds() -> None:
    settings = lab_settings()
    names = {"edge.contoso.example"}
    assert pick(external_names(settings), names.__contains__) == "edge.contoso.example"
    assert pick(internal_names(settings), names.__contains__) is None  # no internal name set
    assert pick(external_names(settings), None) is None  # no certificate: its address
