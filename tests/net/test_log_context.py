"""The endpoint names the call of the message it is handling (:mod:`hybridvoice.net.
log_context`): the TU's code, and every line it logs, sees the request's or the response's
Call-ID (RFC 3261 §20.8) while it runs, and nothing once the handling returned."""

from __future__ import annotations

import asyncio

from test_endpoint import FAST, new_request

from hybridvoice.net.endpoint import Endpoint
from hybridvoice.net.log_context import LEG_CALL_ID, leg_call_id
from hybridvoice.net.transport import Destination, Source
from hybridvoice.sip import Request, Response, make_response
from hybridvoice.sip.transaction import ClientTransaction, ServerTransaction


class SeeingTU:
    """Answers 200 and notes the Call-ID the context names at each event."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str | None]] = []

    def on_request(self, endpoint: Endpoint, tx: ServerTransaction, request: Request) -> None:
        self.seen.append(("request", leg_call_id()))
        endpoint.send_response(tx, make_response(request, 200, to_tag="t1"))

    def on_ack(self, endpoint: Endpoint, request: Request, source: Source) -> None:
        self.seen.append(("ack", leg_call_id()))

    def on_response(self, endpoint: Endpoint, tx: ClientTransaction, response: Response) -> None:
        self.seen.append(("response", leg_call_id()))

    def on_stray_response(self, endpoint: Endpoint, response: Response) -> None:
        pass

    def on_timeout(self, endpoint: Endpoint, tx: object, reason: str) -> None:
        pass


def test_the_call_id_is_set_while_a_message_is_handled() -> None:
    async def main() -> None:
        server_tu, client_tu = SeeingTU(), SeeingTU()
        client = Endpoint(client_tu, timers=FAST)  # type: ignore[arg-type]
        server = Endpoint(server_tu, timers=FAST)  # type: ignore[arg-type]
        await client.listen("UDP", "127.0.0.1", 0)
        listening = await server.listen("UDP", "127.0.0.1", 0)
        try:
            request = new_request("OPTIONS", f"sip:uas@127.0.0.1:{listening.local[1]}")
            call_id = request.call_id
            assert call_id
            client.send_request(request, Destination("UDP", "127.0.0.1", listening.local[1]))
            for _ in range(500):
                if client_tu.seen:
                    break
                await asyncio.sleep(0.01)
            assert server_tu.seen == [("request", call_id)]
            assert client_tu.seen == [("response", call_id)]
            assert LEG_CALL_ID.get() is None
        finally:
            await client.close()
            await server.close()

    asyncio.run(main())
