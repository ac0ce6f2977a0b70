"""`hybridvoice init`, `up`, `test-call` and the admin commands, run as an admin runs them:
`up` in its own process on a settings file with free ports, the other commands from another
process, talking to it over SIP and HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import tomlkit
from chain_harness import settings_on_free_ports
from ports import free_port

from hybridvoice.cms.settings import Settings, listeners, load_settings
from hybridvoice.cms.template import render_settings
from hybridvoice.net.options import ping
from hybridvoice.pki import PkiStore

# `hybridvoice up` as a process: with the interop tests, one at a time (each starts a whole
# site, and its commands have deadlines a CPU-starved machine can miss)
pytestmark = [pytest.mark.live, pytest.mark.xdist_group("hybridvoice-up")]

CCE_INI = (Path(__file__).parents[1] / "fixtures" / "CloudConnector.ini").read_text()
HV = [sys.executable, "-m", "hybridvoice"]
# rich wraps tables at the terminal width; `up` saves its admin token in the user's config
# directory, where the other commands find it: a directory of these tests' own
CONFIG_HOME = tempfile.mkdtemp(prefix="hybridvoice-config-")
WIDE = {**os.environ, "COLUMNS": "250", "XDG_CONFIG_HOME": CONFIG_HOME}
WIDE.pop("HYBRIDVOICE_TOKEN", None)


@pytest.fixture(autouse=True)
def _data_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """platformdirs' per-user data directory in a temporary one: tests never write into the
    real user's data."""
    home = tmp_path_factory.mktemp("data-home")
    monkeypatch.setenv("XDG_DATA_HOME", str(home))
    return home


def wide() -> dict[str, str]:
    """The environment now (a test may have pointed XDG_DATA_HOME elsewhere), wide, with this
    module's config directory and no token of the caller's."""
    env = {**os.environ, "COLUMNS": "250", "XDG_CONFIG_HOME": CONFIG_HOME}
    env.pop("HYBRIDVOICE_TOKEN", None)
    return env


def hv(
    *args: str, timeout: float = 30.0, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*HV, *args], capture_output=True, text=True, timeout=timeout, check=False,
        env={**wide(), **(env or {})},
    )  # fmt: skip


def _wait_until_up(proc: subprocess.Popen[bytes], appliance: str, log_path: Path) -> None:
    """Until the appliance API answers ``GET /v1/status`` (what `appliance status` asks),
    asked from here: a CLI process a tenth of a second took a core of a loaded CI machine
    and timed out there. The bound is generous: it only ends a broken start."""
    token = Path(CONFIG_HOME) / "hybridvoice" / "token"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert proc.poll() is None, log_path.read_text()
        auth = {"Authorization": f"Bearer {token.read_text().strip()}"} if token.exists() else {}
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{appliance}/v1/status", headers=auth, timeout=5).status_code == 200:
                return
        time.sleep(0.1)
    pytest.fail("hybridvoice up did not come up:\n" + log_path.read_text())


@contextlib.contextmanager
def up(
    tmp_path: Path,
    *extra: str,
    settings: Settings | None = None,
    config: Path | None = None,
    state: bool = True,
) -> Iterator[tuple[Settings, list[str]]]:
    """`hybridvoice up --config` on free ports (by default with the lab users, the lab
    gateway and a state directory under ``tmp_path``); yields the settings and the URL
    options. ``config``: start this file as it is."""
    if config is None:
        settings = settings or settings_on_free_ports()
        config = tmp_path / "hybridvoice.toml"
        config.write_text(render_settings(settings))
        extra = extra or ("--lab-users", "--lab-gateway")
    settings = load_settings(config)
    log_path = tmp_path / "up.log"
    log = log_path.open("wb")
    where = ["--state-dir", str(tmp_path / "state")] if state else []
    proc = subprocess.Popen(
        [*HV, "up", "--config", str(config), *where, *extra],
        stdout=log, stderr=subprocess.STDOUT, env=wide(),
    )  # fmt: skip
    online = settings.online
    urls = ["--url", online.service_url,
            "--appliance", f"http://127.0.0.1:{settings.management.port}"]  # fmt: skip
    try:
        _wait_until_up(proc, urls[3], log_path)
        status = hv("appliance", "status", "--json", *urls[2:], timeout=60)
        assert status.returncode == 0, status.stdout + status.stderr
        yield settings, urls
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def call_once(settings: Settings, urls: list[str], *extra: str) -> dict[str, object]:
    online = settings.online
    proxy = f"udp:{online.sip_addresses[0]}:{online.sip_port}"
    result = hv("test-call", "--from", "alice", "--to", "+15550199", "--proxy", proxy,
                "--duration", "0.4", *urls, *extra)  # fmt: skip
    if "--json" in extra:
        data: dict[str, object] = json.loads(result.stdout)
        data["exit"] = result.returncode
        return data
    return {"exit": result.returncode, "stdout": result.stdout, "stderr": result.stderr}


def test_test_call_passes_on_a_fresh_up_and_bypass_switches_without_restart(
    tmp_path: Path,
) -> None:
    with up(tmp_path) as (settings, urls):
        table = call_once(settings, urls)
        assert table["exit"] == 0, table
        out = str(table["stdout"])
        assert "PASSED" in out and "anchored" in out and "<- 200 OK (INVITE)" in out

        first = call_once(settings, urls, "--json")
        assert first["exit"] == 0 and first["ok"] is True
        assert first["media_path"] == "anchored"

        enabled = hv("bypass", "enable", "--json", *urls[:2])
        assert enabled.returncode == 0, enabled.stderr
        assert json.loads(enabled.stdout)["media_bypass_enabled"] is True
        # replication takes well under a second, but each `appliance status` is a process of
        # its own (a second or more on a loaded machine): wait for the event, bounded
        deadline = time.monotonic() + 60
        while True:
            status = json.loads(hv("appliance", "status", "--json", *urls[2:]).stdout)
            if status["media_bypass"]:
                break
            assert time.monotonic() < deadline, f"bypass never reached the appliance: {status}"
            time.sleep(0.05)
        second = call_once(settings, urls, "--json")
        assert second["exit"] == 0 and second["media_path"] == "bypass", second

        status = json.loads(hv("appliance", "status", "--json", *urls[2:]).stdout)
        assert status["roles"] == ["edge", "mediation"]
        assert status["online"]["registered"] is True
        assert status["gateways"][0]["health"] == "up"
        listed = json.loads(hv("appliance", "list", "--json", *urls[:2]).stdout)
        assert [a["status"] for a in listed] == ["online"]


def test_admin_commands_change_the_tenant(tmp_path: Path) -> None:
    with up(tmp_path) as (settings, urls):
        online = urls[:2]
        made = hv("site", "new", "Stockholm", "--edge-fqdn", "edge.sthlm.contoso.example",
                  "--country-code", "46", "--json", *online)  # fmt: skip
        assert made.returncode == 0, made.stderr
        user = hv("user", "set", "sip:carol@contoso.example", "--line-uri", "tel:+46812345678",
                  "--site", "Stockholm", "--enterprise-voice", "--no-international",
                  "--json", *online)  # fmt: skip
        assert user.returncode == 0, user.stderr
        carol = json.loads(user.stdout)
        assert carol["hybrid_pstn_site"] == "Stockholm"
        assert carol["international_calls_allowed"] is False
        assert "ha1_md5" not in carol
        again = hv("site", "new", "Stockholm", "--edge-fqdn", "x.example", *online)
        assert again.returncode == 1 and "hybridvoice site set Stockholm" in again.stderr
        sites = hv("site", "get", *online)
        assert "Stockholm" in sites.stdout and settings.common.site_name in sites.stdout
        busy = hv("site", "remove", "Stockholm", *online)
        assert busy.returncode == 1  # carol is still assigned to it: refused with a hint


def test_admin_commands_without_a_service_say_what_to_do() -> None:
    result = hv("site", "get", "--url", "http://127.0.0.1:9")
    assert result.returncode == 2
    assert "hybridvoice up" in result.stderr


def test_init_writes_lab_settings_and_imports_an_ini(tmp_path: Path) -> None:
    target = tmp_path / "hybridvoice.toml"
    made = hv("init", "--output", str(target))
    assert made.returncode == 0, made.stderr
    assert load_settings(target).gateways[0].port == 5080
    refused = hv("init", "--output", str(target))
    assert refused.returncode == 1 and "--force" in refused.stderr

    ini = tmp_path / "CloudConnector.ini"
    ini.write_text(CCE_INI)
    imported = hv("init", "--ini", str(ini), "--output", str(target), "--force")
    assert imported.returncode == 0, imported.stderr
    assert "PrimaryCMS.ShareName" in imported.stdout  # listed as not carried over
    assert load_settings(target).common.site_name == "Amsterdam"
    bad = tmp_path / "bad.ini"
    bad.write_text(CCE_INI.replace("Port=5060", "Port=70000"))
    refused = hv("init", "--ini", str(bad), "--output", str(tmp_path / "x.toml"))
    assert refused.returncode == 2 and "Gateway1.Port: must be 1-65535" in refused.stderr


def test_up_refuses_bad_settings_with_the_key(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[Common]\nSIPDomains = "contoso.example"\nSiteName = "Lab"\n'
                      "[MediationServer]\nTCPPort = 99999\n")  # fmt: skip
    result = hv("up", "--config", str(config))
    assert result.returncode == 2
    assert "MediationServer.TCPPort" in result.stderr


def test_tokens_and_the_audit_log_from_the_command_line(tmp_path: Path) -> None:
    """`up` saved its admin token (0600) where the CLI finds it; tokens are made (shown once),
    listed and revoked; a read token cannot write; `audit` shows who changed what."""
    with up(tmp_path) as (_, urls):
        online = urls[:2]
        saved = Path(CONFIG_HOME) / "hybridvoice" / "token"
        assert saved.stat().st_mode & 0o777 == 0o600
        made = hv("token", "create", "--name", "dashboard", "--scope", "read", *online)
        assert made.returncode == 0, made.stderr
        secret = made.stdout.strip()
        assert secret.startswith("hv_") and "shown once" in made.stderr
        listed = json.loads(hv("token", "list", "--json", *online).stdout)
        assert [t["name"] for t in listed] == ["lab-admin", "appliance1", "dashboard"]
        assert secret not in json.dumps(listed)
        table = hv("token", "list", *online)
        assert "dashboard" in table.stdout and "read" in table.stdout

        read_only = ("--token", secret)
        assert hv(*read_only, "site", "get", *online).returncode == 0
        refused = hv(*read_only, "site", "new", "Oslo", "--edge-fqdn", "edge.oslo.example",
                     *online)  # fmt: skip
        assert refused.returncode == 1 and "may not POST" in refused.stderr
        assert "scope admin" in refused.stderr
        env = hv("site", "get", *online, env={"HYBRIDVOICE_TOKEN": "hv_00000000_" + "A" * 43})
        assert env.returncode == 1 and "not valid" in env.stderr and "--token" in env.stderr

        assert hv("bypass", "enable", *online).returncode == 0  # the saved lab admin token
        dashboard = next(t["id"] for t in listed if t["name"] == "dashboard")
        assert hv("token", "revoke", dashboard, *online).returncode == 0
        gone = hv(*read_only, "site", "get", *online)
        assert gone.returncode == 1 and "not valid" in gone.stderr

        # `bypass enable` is a partial change of the network configuration
        log = json.loads(hv("audit", "--json", "--since", "1h", *online).stdout)
        assert [e["operation"] for e in log][:2] == ["token.revoke", "network.update"]
        bypass = log[1]
        assert bypass["token_name"] == "lab-admin" and bypass["source"] == "127.0.0.1"
        assert bypass["before"]["media_bypass_enabled"] is False
        assert bypass["after"]["media_bypass_enabled"] is True
        shown = hv("audit", "--operation", "network", *online)
        assert "media_bypass_enabled: False -> True" in shown.stdout, shown.stdout
        maintenance = hv("appliance", "maintenance", "enter", *urls[2:])
        assert maintenance.returncode == 0, maintenance.stderr
        appliance_log = json.loads(hv("audit", "--json", "--url", urls[3]).stdout)
        assert appliance_log[0]["operation"] == "maintenance.enter"


# --- an imported CloudConnector.ini starts on one host -----------------------------------------


def _on_free_ports(config: Path) -> None:
    """Edit the file ``init --ini`` wrote, keeping its comments: every listener on a free
    loopback port (never the machine's fixed ones), gateways on loopback (nothing leaves the
    host; an FQDN would be resolved)."""
    doc = tomlkit.parse(config.read_text())
    for listener in listeners(load_settings(config)):
        section, _, key = listener.key.partition(".")
        if key == "ServiceURL":  # keeps its scheme: init --ini writes https
            scheme = str(doc[section][key]).partition(":")[0]  # type: ignore[index]
            doc[section][key] = f"{scheme}://127.0.0.1:{free_port()}"  # type: ignore[index]
        else:
            doc[section][key] = free_port()  # type: ignore[index]
    for name in ("Gateway1", "Gateway2"):
        gateway = doc[name]
        gateway.pop("FQDN", None)  # type: ignore[union-attr]
        gateway["IP"], gateway["Port"] = "127.0.0.1", free_port()  # type: ignore[index]
    config.write_text(tomlkit.dumps(doc))


def _handshake(port: int, cert_file: Path | None, cadata: bytes) -> Any:
    """A TLS client toward 127.0.0.1:``port`` presenting ``cert_file`` (None: no certificate),
    trusting ``cadata``; sends an OPTIONS and returns the server's certificate. Raises what
    the refusal raises (TLS 1.3: the server's alert arrives after the handshake)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cadata=cadata.decode())
    if cert_file is not None:
        context.load_cert_chain(cert_file)
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        peer = tls.getpeercert()
        tls.sendall(
            b"OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.1:9;branch=z9hG4bKtls1\r\n"
            b"From: <sip:probe@127.0.0.1>;tag=1\r\nTo: <sip:127.0.0.1>\r\nCall-ID: tls-probe\r\n"
            b"CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        )
        answer = tls.recv(4096)
        if not answer:
            raise ConnectionResetError("closed without an answer")
        assert answer.startswith(b"SIP/2.0 "), answer
        return peer


def test_an_imported_ini_starts_with_mtls_between_the_roles_and_a_call_passes(
    tmp_path: Path,
) -> None:
    ini = tmp_path / "CloudConnector.ini"
    ini.write_text(CCE_INI.replace("IP=192.168.213.6", "IP=127.0.0.1"))  # one host: loopback
    config = tmp_path / "imported.toml"
    made = hv("init", "--ini", str(ini), "--output", str(config))
    assert made.returncode == 0, made.stderr
    for line in ("EdgeServer.InternalPort: 5061 -> 5071", "MediationServer.InternalPort: 5061 "
                 "-> 5062", "MediationServer.BypassServicePort: 80 -> 8471"):  # fmt: skip
        assert line in made.stdout
    text = config.read_text()
    assert "#   EdgeServer.InternalPort: 5061 -> 5071: tls 127.0.0.1:5061 is also" in text
    assert 'InternalProtocol = "TLS"' in text and "was TLS" not in text
    assert "the site CA issues the" in text
    _on_free_ports(config)
    state = tmp_path / "state"
    # --wire: every hop between the roles on a loopback socket, so each one handshakes
    with up(tmp_path, "--lab-users", "--lab-gateway", "--wire", config=config) as (s, urls):
        pki = state / "pki"
        cadata = (pki / "root.pem").read_bytes()
        assert {p.name for p in (pki / "certs").glob("*.pem")} == {
            "online.pem",
            "appliance.pem",
            "online-api.pem",
            "online-client.pem",
        }  # the roles' certificates, and the online API's and the appliance's toward it
        assert s.online.service_url.startswith("https://")
        users = hv(
            "user", "get", "--json", *urls[:2], env={"HYBRIDVOICE_CA": str(pki / "root.pem")}
        )
        assert users.returncode == 0 and "alice" in users.stdout, users.stderr
        status = json.loads(hv("appliance", "status", "--json", *urls[2:]).stdout)
        assert status["online"]["registered"] is True
        edge, ms = s.edge_server, s.mediation_server
        tls_hops = {"EdgeServer.InternalPort": edge.internal_port,
                    "EdgeServer.ExternalSIPPort": edge.external_sip_port,
                    "MediationServer.InternalPort": ms.internal_port,
                    "Online.SIPPort": s.online.sip_port}  # fmt: skip
        for key, port in tls_hops.items():  # a peer holding a site certificate is served
            peer = _handshake(port, pki / "certs" / "appliance.pem", cadata)
            issuer = {pair for rdn in peer["issuer"] for pair in rdn}
            assert ("commonName", "Amsterdam site CA") in issuer, key
        for listener in listeners(s):
            if listener.transport == "UDP":
                uri = f"sip:127.0.0.1:{listener.port};transport=udp"
                assert asyncio.run(ping(uri, timeout=5)).response.status == 200, listener

        # a certificate from a foreign CA is refused at the edge's internal listener, and so
        # is a peer without any
        foreign = PkiStore(tmp_path / "foreign")
        now = datetime.datetime.now(datetime.UTC)
        foreign.ensure_server(foreign.ensure_ca("Elsewhere", now), "intruder", now,
                              ips=["127.0.0.1"])  # fmt: skip
        for cert in (foreign.credential_path("intruder"), None):
            with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
                _handshake(edge.internal_port, cert, cadata)

        proxy = f"udp:127.0.0.1:{s.online.sip_port}"
        call = hv("test-call", "--from", "alice@contoso.com", "--to", "+31201234567",
                  "--proxy", proxy, "--duration", "0.4", "--json", *urls)  # fmt: skip
        assert call.returncode == 0, call.stdout + call.stderr
        assert json.loads(call.stdout)["ok"] is True
        status = json.loads(hv("appliance", "status", "--json", *urls[2:]).stdout)
        assert status["roles"] == ["edge", "mediation"]
        # the site PKI's certificates with their days left; none near expiry
        names = {c["name"] for c in status["certificates"]}
        assert {"ca", "cert:appliance", "cert:online"} <= names and status["warnings"] == []
    log = (tmp_path / "up.log").read_text()
    assert "lab users" in log


def test_a_bind_error_names_the_setting_the_address_and_the_fix(tmp_path: Path) -> None:
    settings = settings_on_free_ports()
    config = tmp_path / "hybridvoice.toml"
    config.write_text(render_settings(settings))
    with socket.socket() as other:
        other.bind(("127.0.0.1", settings.mediation_server.tcp_port or 0))
        other.listen()
        result = hv("up", "--config", str(config), "--state-dir", ":memory:")
    assert result.returncode == 1
    message = " ".join(result.stderr.split())
    port = settings.mediation_server.tcp_port
    assert f"[MediationServer] TCPPort: cannot listen on tcp 127.0.0.1:{port}" in message
    assert "Address already in use (EADDRINUSE)" in message
    assert "set [MediationServer] TCPPort to a free port" in message
    assert str(config) in message
    assert "Another hybridvoice up running?" not in message


def test_state_lives_in_the_user_data_dir_and_survives_a_restart(
    tmp_path: Path, _data_home: Path
) -> None:
    """No --state-dir: platformdirs' data directory, printed; a second `up` on it finds what
    the admin did in the first. Settings without --lab-users: no alice/bob."""
    settings = settings_on_free_ports()
    where = _data_home / "hybridvoice" / "sites" / settings.common.site_name
    with up(tmp_path, "--lab-gateway", settings=settings, state=False) as (_, urls):
        online = urls[:2]
        assert hv("user", "get", "--json", *online).stdout.strip() == "[]"
        made = hv("user", "set", "sip:carol@contoso.example", "--line-uri", "tel:+15550142",
                  "--site", settings.common.site_name, "--enterprise-voice", *online)  # fmt: skip
        assert made.returncode == 0, made.stderr
    first_log = (tmp_path / "up.log").read_text()
    assert f"state: {where}" in " ".join(first_log.split())
    assert (where / "online.db").exists()
    assert f"logs in {where / 'logs'} (hybridvoice logs search)" in " ".join(first_log.split())
    assert (where / "logs" / "hybridvoice.log").exists()
    with up(tmp_path, "--lab-gateway", "--lab-users", settings=settings, state=False) as (_, urls):
        users = json.loads(hv("user", "get", "--json", *urls[:2]).stdout)
        # carol is still there; the tenant is not new, so no lab users with a known password
        assert [u["sip_uri"] for u in users] == ["sip:carol@contoso.example"]
