"""sipsak against the edge role's external MTLS listener (RFC 5630 §3; CCE: MTLS on 5061),
with certificates from the site PKI (``hybridvoice.pki``) and the contexts ``hybridvoice up``
builds (``net.tls.MtlsContexts``):

- sipsak sends OPTIONS over TLS, checks the edge's certificate against the site root and gets
  the edge's own 200 (an OPTIONS to the edge itself, RFC 3261 §11.2). sipsak 0.9.8 cannot
  present a client certificate (``--tls-client-cert`` is read and never loaded into its GnuTLS
  credentials), so this listener verifies a client certificate when one comes and does not
  require one (``require_client=False``, what the online service's listener does for
  softphones);
- with MTLS required, as ``hybridvoice up`` builds the edge's listeners, sipsak (no
  certificate) is refused in the handshake: no answer, the edge counts
  ``tls_refused{reason="no-certificate"}`` and sees no message;
- sipsak trusting another CA refuses the edge's certificate (its own check, exit 3): an
  untrusted certificate is refused from our side too.

Only 127.0.0.1; sipsak is started and stopped by PID (``tls_helpers.run_program``)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from ports import free_port
from tls_helpers import require_binary, run_program, sipsak_has_tls, sipsak_options_argv

from hybridvoice.cms.settings import parse_settings
from hybridvoice.edge.role import EdgeOptions, EdgeRole
from hybridvoice.net import loop as hv_loop
from hybridvoice.net.stream import StreamTransport
from hybridvoice.net.tls import MtlsContexts, TlsMaterial
from hybridvoice.pki import PkiStore

pytestmark = pytest.mark.interop


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def run(main: Callable[[], Awaitable[None]]) -> None:
    async def bounded() -> None:
        async with asyncio.timeout(60):
            await main()

    hv_loop.run(bounded())


@pytest.fixture
def site(tmp_path: Path) -> PkiStore:
    store = PkiStore(tmp_path / "site")
    ca = store.ensure_ca("AMS", now())
    store.ensure_server(ca, "appliance", now(), dns_names=["localhost"], ips=["127.0.0.1"])
    (tmp_path / "root.pem").write_bytes(store.root_pem())
    return store


@pytest.fixture
def stranger_root(tmp_path: Path) -> Path:
    store = PkiStore(tmp_path / "stranger")
    store.ensure_ca("Elsewhere", now())
    (tmp_path / "stranger-root.pem").write_bytes(store.root_pem())
    return tmp_path / "stranger-root.pem"


@contextlib.asynccontextmanager
async def edge(site: PkiStore, *, require_client: bool) -> AsyncIterator[StreamTransport]:
    """The edge role, external and internal sides on TLS with the site's contexts."""

    def load() -> TlsMaterial:
        generation = site.load_credential("appliance").generation
        trust = site.trust_store().bundle_pem()
        return TlsMaterial(site.credential_path("appliance"), trust, generation)

    tls = MtlsContexts(load, require_client=require_client)
    settings = parse_settings({
        "Common": {"SIPDomains": "contoso.example", "SiteName": "AMS"},
        "EdgeServer": {
            "InternalServerIPs": "127.0.0.1", "InternalPort": free_port(),
            "InternalProtocol": "TLS", "ExternalSIPIPs": "127.0.0.1",
            "ExternalSIPPort": free_port(), "ExternalProtocol": "TLS",
        },
        "MediationServer": {"IP": "127.0.0.1", "InternalPort": free_port()},
        "Online": {"SIPAddresses": "127.0.0.1", "SIPPort": free_port()},
    })  # fmt: skip
    role = EdgeRole(settings, EdgeOptions(server_ssl=tls.server, client_ssl=tls.client))
    await role.start()
    try:
        assert isinstance(role.external, StreamTransport) and role.external.kind == "TLS"
        yield role.external
    finally:
        await role.stop()


async def sipsak(port: int, ca: Path) -> tuple[int, str]:
    binary = require_binary("sipsak", "sipsak")
    if not await sipsak_has_tls(binary):
        pytest.fail(f"{binary} was built without TLS support (no TLS_SUPPORT in --version)")
    argv = sipsak_options_argv(binary, "127.0.0.1", port, ca=ca, name="127.0.0.1")
    result = await run_program(argv, timeout=30)
    return result.returncode, result.output


def test_sipsak_options_over_tls_to_the_edge_is_answered(site: PkiStore, tmp_path: Path) -> None:
    async def main() -> None:
        async with edge(site, require_client=False) as external:
            code, output = await sipsak(external.local[1], tmp_path / "root.pem")
            assert code == 0, output
            assert "SIP/2.0 200" in output and "not trustworthy" not in output
            assert "Protocol: TLS1.3" in output  # TLS 1.3 negotiated (GnuTLS's report)
            assert external.counters.tls_refused == {}
            assert external.counters.messages_in == 1

    run(main)


def test_sipsak_without_a_certificate_or_with_another_ca_is_refused(
    site: PkiStore, stranger_root: Path, tmp_path: Path
) -> None:
    async def main() -> None:
        async with edge(site, require_client=True) as external:
            # MTLS: sipsak presents no certificate, the edge refuses it in the handshake
            code, output = await sipsak(external.local[1], tmp_path / "root.pem")
            assert code != 0 and "SIP/2.0 200" not in output, output
            assert external.counters.tls_refused == {("127.0.0.1", "no-certificate"): 1}
            assert external.counters.messages_in == 0

        async with edge(site, require_client=False) as external:
            # sipsak trusting another CA refuses the edge's certificate itself
            code, output = await sipsak(external.local[1], stranger_root)
            assert code == 3 and "not trustworthy" in output, output
            assert external.counters.messages_in == 0

    run(main)
