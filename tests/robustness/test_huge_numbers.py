"""Numbers of thousands of digits against the live online service (issue 9): a REGISTER or
INVITE carrying one in any numeric header or parameter is answered, never with a 5xx
(Python's integer-string limit used to turn ``Expires`` into a 500). delta-seconds are
capped at 2**32-1 (§20.19) and the registrar applies its own maximum; other numbers are a
400 naming the header."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from chain_harness import DOMAIN, lab

from hybridvoice.app import LAB_PASSWORD
from hybridvoice.sip import Response, parse_message
from hybridvoice.sip.auth import Challenge, authorize, choose_challenge

HUGE = "9" * 5000

REGISTER = (
    "REGISTER sip:{domain} SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKhuge{n};rport\r\n"
    "Max-Forwards: 70\r\n"
    "From: <sip:alice@{domain}>;tag=h{n}\r\n"
    "To: <sip:alice@{domain}>\r\n"
    "Call-ID: huge-{n}@127.0.0.1\r\n"
    "CSeq: {n} REGISTER\r\n"
    "{authorization}"
    "Contact: <sip:alice@127.0.0.1:{port}>{contact_params}\r\n"
    "{extra}"
    "Content-Length: 0\r\n\r\n"
)

#: (extra header lines, Contact parameters) -> the status class expected
CASES = {
    "Expires": (f"Expires: {HUGE}\r\n", "", 4),
    "Contact expires": ("", f";expires={HUGE}", 4),
    "Min-Expires": (f"Min-Expires: {HUGE}\r\n", "", 4),
    "Session-Expires": (f"Session-Expires: {HUGE}\r\n", "", 4),
    "Min-SE": (f"Min-SE: {HUGE}\r\n", "", 4),
    "Retry-After": (f"Retry-After: {HUGE}\r\n", "", 4),
    "RSeq": (f"RSeq: {HUGE}\r\n", "", 4),
    "Max-Forwards": ("", "", 4),  # replaced below
    "q": ("", f";q={HUGE}", 4),
    "Contact port": ("", "", 4),  # replaced below
}


class _Client(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.answers: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.answers.put_nowait(data)


@pytest.mark.parametrize("case", CASES)
def test_huge_numbers_never_get_a_5xx_from_the_online_service(case: str, tmp_path: Path) -> None:
    async def main() -> None:
        async with lab(tmp_path) as up:
            loop = asyncio.get_running_loop()
            udp, client = await loop.create_datagram_endpoint(_Client, local_addr=("127.0.0.1", 0))
            port = udp.get_extra_info("sockname")[1]
            extra, params, _ = CASES[case]
            online = up.settings.online

            async def register(n: int, authorization: str = "") -> Response:
                text = REGISTER.format(
                    domain=DOMAIN, port=port, n=n, contact_params=params, extra=extra,
                    authorization=authorization,
                )  # fmt: skip
                if case == "Max-Forwards":
                    text = text.replace("Max-Forwards: 70", f"Max-Forwards: {HUGE}")
                if case == "Contact port":
                    text = text.replace(f"alice@127.0.0.1:{port}>", f"a@127.0.0.1:{HUGE}>")
                udp.sendto(text.encode(), (online.sip_addresses[0], online.sip_port))
                async with asyncio.timeout(5):
                    answer = parse_message(await client.answers.get())
                assert isinstance(answer, Response)
                return answer

            try:
                answer = await register(1)
                if answer.status == 401:  # the registrar reads the numbers once authenticated
                    challenges = answer.headers.get_all("WWW-Authenticate")
                    credentials = authorize(
                        choose_challenge([Challenge.parse(v) for v in challenges]),
                        method="REGISTER", uri=f"sip:{DOMAIN}", username="alice",
                        password=LAB_PASSWORD, cnonce="0a4f113b",
                    )  # fmt: skip
                    answer = await register(2, f"Authorization: {credentials}\r\n")
            finally:
                udp.close()
            assert answer.status < 500, answer.reason
            assert answer.status != 401
            assert len(bytes(answer)) < 2000  # the digits are not echoed back

    asyncio.run(asyncio.wait_for(main(), 60))
