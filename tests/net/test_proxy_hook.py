"""The proxy's forward hook on loopback (:attr:`hybridvoice.net.proxy.Proxy.forward_hook`): it
sees every message the proxy sends on with the transport it leaves by, the ACK for a 2xx
included (§16.11: sent statelessly; a late offer's answer travels in it, RFC 3261 §13.2.1)."""

from __future__ import annotations

from test_proxy import answered_call, network, until
from ua_harness import WAIT, run

from hybridvoice.net.proxy import Forward
from hybridvoice.net.transport import Transport
from hybridvoice.sip import Request, Response
from hybridvoice.sip.session import Cause, Disconnected


def test_the_hook_sees_the_ack_for_a_2xx_and_every_other_message() -> None:
    async def main() -> None:
        async with network() as net:
            bob = net.bobs[0]
            net.policy.route_fn = lambda request, source: Forward(((net.target(bob),),))
            seen: list[tuple[str, Transport | None]] = []

            def hook(message: Request | Response, out: Transport | None) -> None:
                what = message.method if isinstance(message, Request) else str(message.status)
                seen.append((what, out))

            net.proxy.forward_hook = hook
            a, b = await answered_call(net, bob)
            await until(lambda: net.proxy.counters.acks_forwarded == 1)
            a.bye()
            assert await b.ended(WAIT) == Disconnected(Cause.NORMAL, None, "remote")
            await a.ended(WAIT)
            await until(lambda: ("200", net.udp) in seen[seen.index(("BYE", net.udp)) :])
            methods = [what for what, _ in seen]
            assert methods[0] == "INVITE" and "ACK" in methods and "BYE" in methods
            assert ("ACK", net.udp) in seen  # toward bob, on the UDP listener
            assert methods.index("ACK") > methods.index("200")  # after the 2xx it acknowledges

    run(main())
