"""A TLS pipe between roles of one process carries the identity of the listener it reached
(and the client's to the listener), so the checks of a handshake run on it too: the name the
client connects to must be in the listener's certificate (RFC 5922 §7.2), else the send is
refused and counted as ``name-mismatch``, as over a socket."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
from test_endpoint import FAST, TU, new_request
from test_transport import WAIT
from ua_harness import run

from hybridvoice.net.endpoint import Endpoint, RequestTimeoutError
from hybridvoice.net.identity import PeerIdentity
from hybridvoice.net.pipe import LocalExchange, PipeEnd
from hybridvoice.net.stream import StreamConnection, StreamTransport
from hybridvoice.net.tls import MtlsContexts, TlsMaterial
from hybridvoice.net.transport import Destination, TransportError
from hybridvoice.pki import PkiStore


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@pytest.fixture
def contexts(tmp_path: Path) -> dict[str, MtlsContexts]:
    store = PkiStore(tmp_path / "pki")
    ca = store.ensure_ca("AMS", now())
    store.ensure_server(ca, "edge", now(), dns_names=["edge.contoso.local"], ips=["127.0.0.1"])
    store.ensure_server(ca, "mediation", now(), dns_names=["ms.contoso.local"])

    def loader(name: str) -> TlsMaterial:
        generation = store.load_credential(name).generation
        return TlsMaterial(
            store.credential_path(name), store.trust_store().bundle_pem(), generation
        )

    return {name: MtlsContexts(lambda n=name: loader(n)) for name in ("edge", "mediation")}


async def ask(client: Endpoint, port: int, name: str | None) -> int:
    request = new_request("OPTIONS", f"sip:uas@{name or '127.0.0.1'}:{port}")
    destination = Destination("TLS", "127.0.0.1", port, name)
    return (await client.request(request, destination, timeout=WAIT)).status


@pytest.mark.parametrize("pipes", [True, False], ids=["pipe", "socket"])
def test_a_tls_hop_checks_the_listeners_name_over_a_pipe_as_over_a_socket(
    contexts: dict[str, MtlsContexts], pipes: bool
) -> None:
    async def main() -> None:
        exchange = LocalExchange() if pipes else None
        edge, mediation = contexts["edge"], contexts["mediation"]
        tu = TU(200)
        client = Endpoint(timers=FAST, exchange=exchange)
        server = Endpoint(tu, timers=FAST, exchange=exchange)
        try:
            mine = await client.listen("TLS", "127.0.0.1", 0, client_ssl=mediation.client)
            theirs = await server.listen(
                "TLS", "127.0.0.1", 0, server_ssl=edge.server, client_ssl=edge.client
            )
            assert isinstance(mine, StreamTransport) and isinstance(theirs, StreamTransport)
            port = theirs.local[1]
            assert theirs.identity == PeerIdentity.of(["edge.contoso.local"], ["127.0.0.1"])

            # a name the edge's certificate holds: through, and both ends know the other
            assert await ask(client, port, "edge.contoso.local") == 200
            conn = mine.connection_to("127.0.0.1", port)
            assert isinstance(conn, PipeEnd if pipes else StreamConnection)
            assert conn.peer_identity == theirs.identity
            transaction, _ = await tu.requests.get()
            source = transaction.context
            assert source.connection.peer_identity == PeerIdentity.of(["ms.contoso.local"])
            assert mine.counters.tls_refused == {}

            # a name it does not hold: refused before anything is sent, and counted
            for c in list(mine._all):
                c.close()
            with pytest.raises((TransportError, RequestTimeoutError)):
                await ask(client, port, "sbc.contoso.com")
            assert mine.counters.tls_refused == {("sbc.contoso.com", "name-mismatch"): 1}
            assert tu.requests.empty()
        finally:
            await client.close()
            await server.close()

    run(main())
