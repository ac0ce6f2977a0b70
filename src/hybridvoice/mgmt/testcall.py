"""``hybridvoice test-call``: a real call through the whole chain, with media, and a verdict.

A built-in SIP UA (the same UA core as every role) registers as the user with digest
credentials (RFC 3261 §10.2, §22), places a call to the number through the online service
(its outbound proxy), sends a 1 kHz PCMU tone in 20 ms RTP packets (RFC 3550, RFC 3551), counts
what comes back (the lab gateway and PSTN test lines echo), hangs up, and unregisters. The
result carries the SIP ladder as the UA saw it, the setup time (INVITE to 200), RTP counts,
and the media path the mediation role chose (bypass or anchored, and why), asked from the
appliance's management API by the call's Call-ID; without that API the path is told from the
SDP answer alone.

The call passes only when it was answered and media came back: at least half of the packets
sent, with the tone intact.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from dataclasses import asdict, dataclass, field
from typing import Any, cast

import httpx

from hybridvoice.cms.tokens import bearer
from hybridvoice.media.g711 import PT_PCMU, ulaw_tone
from hybridvoice.media.rtp import RtpPacket
from hybridvoice.net.call import CallFailedError
from hybridvoice.net.endpoint import Endpoint
from hybridvoice.net.register import DigestCredentials, Registration, RegistrationError
from hybridvoice.net.transport import Destination, NetError
from hybridvoice.net.ua import UserAgent
from hybridvoice.sip.message import REASON_PHRASES, Request, Response
from hybridvoice.sip.sdp import SessionDescription

__all__ = ["TestCallResult", "place_test_call", "registration_refused"]

FRAME = 160  # samples per 20 ms packet at 8 kHz
TONE = ulaw_tone(1000.0, FRAME)  # a whole number of periods: every packet is the same


@dataclass(slots=True)
class TestCallResult:
    """What ``test-call`` prints (``--json``: this, as an object)."""

    __test__ = False  # not a pytest test class, despite the name

    ok: bool = False
    caller: str = ""
    number: str = ""
    call_id: str | None = None
    status: int | None = None
    reason: str | None = None
    error: str | None = None
    #: what to do next, in the command line's terms
    hint: str | None = None
    setup_ms: float | None = None
    ladder: list[str] = field(default_factory=list)
    rtp_sent: int = 0
    rtp_received: int = 0
    tone_intact: bool = False
    remote_media: str | None = None
    media_path: str | None = None  # "bypass" | "anchored" | None when unknown
    media_reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class _Rtp(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.received = 0
        self.intact = 0
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        if len(data) < 12 or data[1] & 0x7F >= 72:  # RTCP (RFC 5761 §4) is not counted
            return
        self.received += 1
        if data.endswith(TONE):
            self.intact += 1


def _label(way: str, message: Request | Response) -> str:
    arrow = "->" if way == "out" else "<-"
    if isinstance(message, Request):
        return f"{arrow} {message.method}"
    cseq = message.cseq
    return f"{arrow} {message.status} {message.reason} ({cseq.method if cseq else '?'})"


async def place_test_call(
    *,
    user: str,
    domain: str,
    password: str,
    number: str,
    proxy: Destination,
    duration: float = 2.0,
    appliance_url: str | None = None,
    timeout: float = 15.0,
    user_known: bool | None = None,
    api_token: str | None = None,
    local_host: str | None = None,
) -> TestCallResult:
    """Register ``user@domain`` at ``proxy``, call ``number``, send media for ``duration``
    seconds, hang up; never raises for a failed call (the result says what went wrong).
    ``user_known``: whether the online service has this user (None: not asked), to say why
    a refused registration was refused. ``api_token``: the bearer token for the appliance
    API at ``appliance_url``. ``local_host``: the address the caller's SIP and RTP sockets
    bind to (default: loopback of the proxy's family; ``plan verify`` places an internet
    client on a loopback address outside the site's internal subnets)."""
    result = TestCallResult(caller=f"sip:{user}@{domain}", number=number)
    endpoint = Endpoint()
    endpoint.trace = lambda way, message: result.ladder.append(_label(way, message))
    ua = UserAgent(endpoint, user=user)
    rtp: _Rtp | None = None
    registration: Registration | None = None
    host = proxy.host
    try:
        local = local_host or ("::1" if ":" in host else "127.0.0.1")
        await endpoint.listen(proxy.transport, local, 0)
        credentials = DigestCredentials(user, password)
        registration = Registration(
            ua, result.caller, proxy, credentials=credentials, expires=300, timeout=timeout
        )
        await registration.register()
        loop = asyncio.get_running_loop()
        _, rtp = await loop.create_datagram_endpoint(
            _Rtp, local_addr=(endpoint.transports[0].local[0], 0)
        )
        assert rtp.transport is not None
        rtp_host, rtp_port = rtp.transport.get_extra_info("sockname")[:2]
        offer = (
            f"v=0\r\no=test-call 1 1 IN IP4 {rtp_host}\r\ns=hybridvoice test-call\r\n"
            f"c=IN IP4 {rtp_host}\r\nt=0 0\r\nm=audio {rtp_port} RTP/AVP 0 101\r\n"
            "a=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n"
            "a=sendrecv\r\n"
        ).encode()
        started = time.monotonic()
        call = ua.invite(
            f"sip:{number}@{domain};user=phone",
            from_=f"<{result.caller}>",
            sdp=offer,
            destination=proxy,
            headers=[("Route", f"<sip:{_hostport(proxy)};transport={proxy.transport.lower()};lr>")],
            credentials=credentials,
        )
        result.call_id = call.call_id
        try:
            answered = await call.answered(timeout)
        except CallFailedError as exc:
            d = exc.disconnected
            result.status = d.status
            result.reason = REASON_PHRASES.get(d.status or 0, str(d.cause))
            result.error = f"the call failed: {d.status or 'no answer'} {result.reason}"
            return result
        result.setup_ms = round((time.monotonic() - started) * 1000.0, 1)
        result.status, result.reason = 200, "OK"
        remote = _remote_media(answered.sdp)
        result.remote_media = None if remote is None else f"{remote[0]}:{remote[1]}"
        if remote is not None:
            result.rtp_sent = await _send_tone(rtp, remote, duration)
            await asyncio.sleep(0.2)  # the last echoes
        call.bye()
        with contextlib.suppress(TimeoutError):
            await call.ended(timeout)
        result.rtp_received = rtp.received
        result.tone_intact = rtp.intact > 0 and rtp.intact == rtp.received
        await _media_path(result, appliance_url, api_token)
        result.ok = result.rtp_sent > 0 and result.rtp_received * 2 >= result.rtp_sent
        if not result.ok:
            result.error = (
                f"no media came back: sent {result.rtp_sent} RTP packets, got {result.rtp_received}"
            )
        return result
    except RegistrationError as exc:
        result.status, result.reason = exc.status, exc.reason
        result.error, result.hint = registration_refused(result.caller, exc, user_known, proxy)
        return result
    except (NetError, OSError, TimeoutError) as exc:
        result.error = f"{type(exc).__name__}: {exc}"
        return result
    finally:
        if registration is not None:
            with contextlib.suppress(Exception):
                await registration.stop(unregister=True)
        if rtp is not None and rtp.transport is not None:
            rtp.transport.close()
        ua.close()
        await endpoint.close()


def registration_refused(
    caller: str, exc: RegistrationError, user_known: bool | None, proxy: Destination
) -> tuple[str, str]:
    """Why REGISTER failed and what to do, once and in the user's terms. The registrar
    answers an unknown user as it answers a wrong password (a challenge, then 403: no user
    enumeration), so only the admin's view of the tenant tells the two apart."""
    said = f"{exc.status} {exc.reason}".strip()
    if exc.status == 408:
        where = f"{proxy.transport.lower()}:{_hostport(proxy)}"
        return (f"the registrar at {where} did not answer the registration",
                "Is `hybridvoice up` running? Check --proxy.")  # fmt: skip
    if exc.status not in (401, 403, 404, 407):
        return (f"the registrar refused the registration of {caller}: {said}",
                "The online service's log says why.")  # fmt: skip
    user = caller.removeprefix("sip:")
    if user_known is False:
        name, _, domain = user.partition("@")
        return (f"{name} is not a user of {domain} (registration refused: {said})",
                "`hybridvoice user list` shows the users.")  # fmt: skip
    if user_known:
        return (f"the registrar refused the registration of {user}: wrong password ({said})",
                f"Check --password (or $HYBRIDVOICE_PASSWORD); `hybridvoice user set {caller} "
                "--password NEW` sets a new one.")  # fmt: skip
    return (f"the registrar refused the registration of {user} ({said}): no such user, or a "
            "wrong password",
            "`hybridvoice user list` shows the users; check --password.")  # fmt: skip


def _hostport(destination: Destination) -> str:
    host = f"[{destination.host}]" if ":" in destination.host else destination.host
    return f"{host}:{destination.port}"


def _remote_media(sdp: bytes | None) -> tuple[str, int] | None:
    if not sdp:
        return None
    try:
        description = SessionDescription.parse(sdp)
    except ValueError:
        return None
    for media in description.media:
        if media.media == "audio" and media.port:
            connection = media.connection or description.connection
            if connection is not None:
                return connection.address, media.port
    return None


async def _send_tone(rtp: _Rtp, remote: tuple[str, int], duration: float) -> int:
    assert rtp.transport is not None
    rng = random.Random()
    ssrc, seq, ts = rng.getrandbits(32), rng.getrandbits(16), rng.getrandbits(32)
    count = max(1, int(duration / 0.02))
    start = time.monotonic()
    for i in range(count):
        packet = RtpPacket(PT_PCMU, (seq + i) & 0xFFFF, (ts + i * FRAME) & 0xFFFFFFFF, ssrc,
                           marker=i == 0, payload=TONE)  # fmt: skip
        rtp.transport.sendto(bytes(packet), remote)
        delay = start + (i + 1) * 0.02 - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
    return count


async def _media_path(result: TestCallResult, appliance_url: str | None, token: str | None) -> None:
    """Ask the appliance which media path its mediation role chose for this call."""
    if appliance_url is None or result.call_id is None:
        return
    try:
        async with httpx.AsyncClient(
            base_url=appliance_url, timeout=5.0, headers=bearer(token)
        ) as client:
            for _ in range(20):  # the record is written by a background thread
                response = await client.get(f"/v1/calls/{result.call_id}")
                if response.status_code in (401, 403):
                    result.media_reason = (
                        f"the appliance API refused the token ({response.status_code})"
                    )
                    return
                if response.status_code == 200:
                    record = response.json()
                    if record.get("media_mode"):
                        result.media_path = str(record["media_mode"]).lower()
                        result.media_reason = record.get("media_reason")
                        return
                await asyncio.sleep(0.05)
    except httpx.HTTPError:
        return
