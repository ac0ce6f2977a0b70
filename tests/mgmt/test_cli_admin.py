"""Every command that talks to a service, run as an admin runs it (typer's CliRunner on the
real ``hybridvoice`` app) against a live ``hybridvoice up`` in its own process on free ports.

The commands are enumerated from the app (every command with ``--url`` or ``--appliance``),
and the test fails for one that the scenario does not run: a new admin command needs its
create/change/read steps here. Changes are checked by reading back the object: a change
sends only what the admin gave, so everything else stays as it was.
"""

from __future__ import annotations

import datetime
import json
import re
import tempfile
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import typer.main
from cli_update_steps import rolling_update, update_windows
from ports import free_port
from test_cli_up import CONFIG_HOME, up
from typer.core import TyperGroup
from typer.testing import CliRunner, Result

from hybridvoice.cli import app
from hybridvoice.cms.settings import Settings
from hybridvoice.mgmt.testcall import registration_refused
from hybridvoice.net.register import RegistrationError
from hybridvoice.net.transport import Destination
from hybridvoice.pki import PkiStore

# a live `hybridvoice up` for some tests: in the same group as test_cli_up
pytestmark = [pytest.mark.live, pytest.mark.xdist_group("hybridvoice-up")]

# rich wraps tables at the terminal width; `up` saved its admin token in CONFIG_HOME
WIDE = {"COLUMNS": "250", "XDG_CONFIG_HOME": CONFIG_HOME}
#: what an error must not show the admin: API calls and the services' internal names
API_TERMS = re.compile(r"/v1/|\b(GET|PUT|POST|PATCH|DELETE) /|\b[a-z]+_[a-z_]+\(|\b(remove|add|"
                       r"new|set|register)_(appliance|domain|site|user)\b")  # fmt: skip


def command_paths(group: Any = None, path: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    """Every leaf command of the app, by its words (``("user", "set")``)."""
    group = group or typer.main.get_command(app)
    found: dict[tuple[str, ...], Any] = {}
    for name, command in group.commands.items():
        if isinstance(command, TyperGroup):
            found.update(command_paths(command, (*path, name)))
        else:
            found[(*path, name)] = command
    return found


def service_commands() -> set[tuple[str, ...]]:
    """The commands that talk to the online service or an appliance."""
    return {
        path
        for path, command in command_paths().items()
        if {"--url", "--appliance"} & {o for p in command.params for o in p.opts}
    }


@dataclass
class Admin:
    """Runs commands against the lab and remembers which ones ran."""

    settings: Settings
    urls: list[str]
    state: Path
    ran: set[tuple[str, ...]] = field(default_factory=set)
    runner: CliRunner = field(default_factory=CliRunner)

    def __call__(self, words: str, *args: str, code: int = 0) -> Result:
        path = tuple(words.split())
        self.ran.add(path)
        command = command_paths()[path]
        options = {o for p in command.params for o in p.opts}
        urls = [u for i, u in enumerate(self.urls) if self.urls[i - (i % 2)] in options]
        result = self.runner.invoke(app, [*path, *args, *urls], env=WIDE)
        assert result.exit_code == code, (words, args, result.stdout, result.stderr)
        if code:
            assert not API_TERMS.search(result.stderr), result.stderr  # the CLI's terms
        return result

    def json(self, words: str, *args: str) -> Any:
        return json.loads(self(words, *args, "--json").stdout)


@pytest.fixture(scope="module")
def admin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Admin]:
    tmp = tmp_path_factory.mktemp("admin")
    with up(tmp) as (settings, urls):
        yield Admin(settings, urls, tmp / "state")


def test_every_service_command_creates_changes_and_reads_against_a_live_lab(admin: Admin) -> None:
    site = admin.settings.common.site_name
    tenant(admin)
    users(admin, site)
    dialplan(admin)
    bypass(admin)
    appliance(admin)
    gateways(admin)
    calls(admin, site)
    tokens(admin)
    logging_levels(admin)
    site_trust(admin)
    update_windows(admin, site)
    rolling_update(admin, site)
    site_ca(admin, site)
    plan_verify(admin)
    admin("appliance remove", admin.json("appliance list")[0]["name"])
    # --appliance names another appliance's API: refused before anything is drained
    result = admin("appliance remove", "no-such-appliance", code=2)
    assert "not 'no-such-appliance'" in result.stderr
    missing = service_commands() - admin.ran
    assert not missing, f"commands without a step in this scenario: {sorted(missing)}"


def plan_verify(admin: Admin) -> None:
    """``plan verify`` on this lab (every role on 127.0.0.1): it cannot tell the cloud from
    the customer's network, and says so (exit 2) before it changes anything;
    tests/mgmt/test_plan_verify_live.py runs it on a lab that can."""
    refused = admin("plan verify", "--json", code=2)
    answer = json.loads(refused.stdout)
    assert answer["ok"] is False and "not in the customer's network" in answer["error"]
    assert "hybridvoice up --segments" in answer["hint"]
    said = " ".join(admin("plan verify", code=2).stderr.split())
    assert said.startswith("cannot verify: the internal client's address 127.0.0.1")


def tokens(admin: Admin) -> None:
    """A token is shown once, listed without its secret, revoked; the audit log has it."""
    secret = admin("token create", "--name", "ci-reader", "--scope", "read").stdout.strip()
    assert secret.startswith("hv_")
    listed = admin.json("token list")
    assert secret not in json.dumps(listed)
    reader = next(t for t in listed if t["name"] == "ci-reader")
    admin("token revoke", reader["id"])
    log = admin.json("audit", "--since", "1h")
    assert [e["operation"] for e in log][:2] == ["token.revoke", "token.create"]


def site_ca(admin: Admin, site: str) -> None:
    """``ca status`` and ``ca renew`` with ``--appliance``: the appliance's site PKI through its
    API. The lab runs without TLS, so it has none: the command says so; then one made in the
    appliance's state directory is listed and renewed."""
    refused = admin("ca status", code=1)
    assert "no site CA" in refused.stderr and "ca restore" in refused.stderr
    store = PkiStore(admin.state / "appliance" / "pki")
    now = datetime.datetime.now(datetime.UTC)
    store.ensure_server(store.ensure_ca(site, now), "mediation", now, dns_names=["med.lab"])
    assert {"ca", "cert:mediation"} <= {c["name"] for c in admin.json("ca status")}
    assert "mediation: renewed, generation 2" in admin("ca renew", "mediation").stdout
    assert store.load_credential("mediation").generation == 2


def site_trust(admin: Admin) -> None:
    """The lab's online API is plain http: it checks no certificates, so it has no site
    roots to list, add or remove; each command says so and what to do (serve it over https).
    The https case runs in tests/mgmt/test_online_trust_site.py."""
    store = PkiStore(admin.state.parent / "paris-pki")
    store.ensure_ca("Paris", datetime.datetime.now(datetime.UTC))
    root = admin.state.parent / "paris-root.pem"
    root.write_bytes(store.root_pem())
    for words, *args in (
        ("online trusted-sites",),
        ("online trust-site", "--site", "Paris", "--root", str(root)),
        ("online untrust-site", "--site", "Paris"),
    ):
        refused = admin(words, *args, code=1)
        assert "ServiceURL https://" in refused.stderr, (words, refused.stderr)
    missing = admin("online trust-site", "--site", "Paris", "--root", str(root) + ".x", code=1)
    assert "ca export-root" in missing.stderr


def tenant(admin: Admin) -> None:
    assert admin.json("domain add", "fabrikam.example") == {"name": "fabrikam.example"}
    assert {"name": "fabrikam.example"} in admin.json("domain list")
    made = admin.json("site new", "Stockholm", "--edge-fqdn", "edge.sthlm.contoso.example",
                      "--country-code", "46", "--description", "HQ")  # fmt: skip
    assert made["country_code"] == "46"
    again = admin("site new", "Stockholm", "--edge-fqdn", "x.example", code=1)
    assert "hybridvoice site set Stockholm" in again.stderr
    changed = admin.json("site set", "Stockholm", "--description", "Head office")
    assert changed == {**made, "description": "Head office"}  # nothing else moved
    assert admin.json("site get", "Stockholm") == changed
    assert "Stockholm" in [s["name"] for s in admin.json("site list")]
    assert "no site Atlantis" in admin("site set", "Atlantis", "--description", "x",
                                       code=1).stderr  # fmt: skip
    nothing = admin("site set", "Stockholm", code=1)
    assert "nothing to change" in nothing.stderr
    config = admin.json("tenant set", "--peer-destination", "pool.contoso.example")
    assert config["peer_destination"] == "pool.contoso.example"
    later = admin.json("tenant set", "--use-onprem-dialplan")
    assert later == {**config, "use_onprem_dialplan": True}
    assert admin.json("tenant get") == later


def users(admin: Admin, site: str) -> None:
    made = admin.json("user set", "sip:carol@contoso.example", "--line-uri", "tel:+46812345678",
                      "--site", "Stockholm", "--enterprise-voice", "--display-name", "Carol",
                      "--password", "s3cret")  # fmt: skip
    assert made["has_password"] is True and made["international_calls_allowed"] is True
    # the defect: a change of an existing user sent back has_password (422)
    changed = admin.json("user set", "sip:carol@contoso.example", "--no-international")
    assert changed == {**made, "international_calls_allowed": False}
    assert admin.json("user get", "sip:carol@contoso.example") == changed
    assert "sip:carol@contoso.example" in [u["sip_uri"] for u in admin.json("user list")]
    busy = admin("site remove", "Stockholm", code=1)  # carol uses it
    assert "hybridvoice user set" in busy.stderr and "--site" in busy.stderr
    in_use = admin("domain remove", "contoso.example", code=1)
    assert "hybridvoice user remove" in in_use.stderr
    admin("user remove", "sip:carol@contoso.example")
    gone = admin("user get", "sip:carol@contoso.example", code=1)
    assert "carol is not a user of contoso.example: `hybridvoice user list`" in gone.stderr
    admin("site remove", "Stockholm")
    admin("domain remove", "fabrikam.example")
    assert {"name": "fabrikam.example"} not in admin.json("domain list")
    made = admin.json("user set", "sip:dave@contoso.example", "--line-uri", "tel:+15550142",
                      "--site", site, "--enterprise-voice", "--password", "d4ve")  # fmt: skip
    assert made["has_password"] is True


def dialplan(admin: Admin) -> None:
    rule = admin.json("dialplan set", "Intl", "--pattern", r"^00(\d+)$", "--translation", "+$1",
                      "--priority", "5")  # fmt: skip
    changed = admin.json("dialplan set", "Intl", "--description", "international")
    assert changed == {**rule, "description": "international"}
    assert changed in admin.json("dialplan list")
    admin("dialplan remove", "Intl")
    assert "hybridvoice dialplan list" in admin("dialplan remove", "Intl", code=1).stderr
    new = admin("dialplan set", "Local", "--priority", "3", code=1)  # create needs a pattern
    assert "--pattern" in new.stderr


def bypass(admin: Admin) -> None:
    on = admin.json("bypass enable", "--not-always")
    assert on["media_bypass_enabled"] is True and on["always_bypass"] is False
    subnets = admin.json("bypass set", "--internal-subnets", "127.0.0.0/8 10.0.0.0/8")
    assert subnets == {**on, "internal_subnets": ["127.0.0.0/8", "10.0.0.0/8"]}
    off = admin.json("bypass disable")
    assert off == {**subnets, "media_bypass_enabled": False}
    assert admin.json("bypass get") == off


def appliance(admin: Admin) -> None:
    assert admin.json("appliance maintenance", "enter") == {"state": "maintenance"}
    assert admin.json("appliance status")["state"] == "maintenance"
    assert admin.json("appliance maintenance", "exit") == {"state": "online"}
    table = admin("appliance status").stdout
    assert "edge/external-side" in table and "edge/internal-side" in table
    printed = (admin.state.parent / "up.log").read_text()  # `up`'s table says it too
    assert printed.count("edge/external-side") == printed.count("edge/internal-side") == 1
    # the next heartbeat tells the online service; each `appliance list` is a process of its
    # own (a second or more on a loaded machine): bounded generously, it ends at the event
    deadline = time.monotonic() + 60
    while [a["status"] for a in admin.json("appliance list")] != ["online"]:
        assert time.monotonic() < deadline, admin.json("appliance list")
        time.sleep(0.1)


def gateways(admin: Admin) -> None:
    first = admin.json("gateway list")[0]
    port = str(free_port())
    made = admin.json("gateway add", "gw2", "--ip", "127.0.0.1", "--port", port, "--protocol",
                      "tcp", "--voice-routes", "LocalRoute", "--no-options")  # fmt: skip
    assert made["address"] == f"tcp:127.0.0.1:{port}" and made["enabled"] is True
    changed = admin.json("gateway set", "gw2", "--max-sessions", "4")
    assert changed["max_sessions"] == 4 and changed["address"] == made["address"]
    assert admin.json("gateway disable", "gw2")["enabled"] is False
    assert admin.json("gateway enable", "gw2")["enabled"] is True
    assert [g["name"] for g in admin.json("gateway list")] == [first["name"], "gw2"]
    bad = admin("gateway add", "gw3", "--ip", "127.0.0.1", "--port", "70000", code=1)
    assert "gw3.Port: must be 1-65535, got 70000" in bad.stderr
    assert "gw9" in admin("gateway set", "gw9", "--port", "5070", code=1).stderr
    saved = tomllib.loads((admin.state / "appliance" / "gateways.toml").read_text())
    assert [g["Name"] for g in saved["Gateways"]] == [first["name"], "gw2"]
    assert saved["Gateways"][1]["MaxConcurrentSessions"] == 4
    health = admin.json("gateway health", first["name"])
    assert health["health"] == "up" and health["last_options_status"] == 200
    shown = admin("gateway health", first["name"]).stdout
    assert re.search(r"last_options_rtt_ms\s+│\s+\d+\.\d{1,2} ms", shown), shown


def logging_levels(admin: Admin) -> None:
    """Start-/Stop-CcLogging: the levels change at run time and are read back."""
    admin("logs start", "--component", "mediation=debug")
    assert "mediation" in admin("logs status").stdout
    admin("logs start", "--component", "nosuch=debug", code=2)
    admin("logs stop")
    assert "debug" not in admin("logs status").stdout


def calls(admin: Admin, site: str) -> None:
    online = admin.settings.online
    proxy = f"udp:{online.sip_addresses[0]}:{online.sip_port}"
    placed = admin("test-call", "--from", "dave@contoso.example", "--password", "d4ve", "--to",
                   "+15550199", "--proxy", proxy, "--duration", "0.3", "--json")  # fmt: skip
    call_id = json.loads(placed.stdout)["call_id"]
    stranger = admin("test-call", "--from", "alice2@contoso.example", "--to", "+15550199",
                     "--proxy", proxy, code=1)  # fmt: skip
    said = " ".join(stranger.stderr.split())
    assert said.startswith("alice2 is not a user of contoso.example: `hybridvoice user list`")
    assert "failed: registration failed" not in said and "appliance" not in said
    wrong = admin("test-call", "--from", "dave@contoso.example", "--password", "nope", "--to",
                  "+15550199", "--proxy", proxy, "--json", code=1)  # fmt: skip
    refused = json.loads(wrong.stdout)
    assert refused["error"].startswith("the registrar refused the registration of dave@")
    assert "wrong password" in refused["error"]
    assert "--password" in refused["hint"] and refused["media_path"] is None
    found = admin.json(
        "calls list",
        "--number",
        "15550142",  # the caller is his E.164 number
        "--since",
        "1h",
        "--result",
        "answered",
    )
    assert [c["a_call_id"] for c in found] == [call_id]
    assert admin.json("calls list", "--number", "+15550199", "--result", "503") == []
    assert admin.json("calls show", call_id)["caller"] == "+15550142"
    table = admin("calls list", "--limit", "1").stdout
    assert "answered" in table and call_id in table
    assert "hybridvoice calls list" in admin("calls show", "nope", code=1).stderr
    with tempfile.TemporaryDirectory() as tmp:
        pcap = Path(tmp) / "call.pcap"
        admin("calls trace", call_id, "--out", str(pcap))
        assert pcap.read_bytes()[:4] in (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4")  # libpcap
        admin("calls trace", "nope", "--out", str(Path(tmp) / "none.pcap"), code=1)


@pytest.mark.parametrize("status", [401, 403, 404])
def test_a_refused_registration_is_told_right_whether_or_not_the_user_exists(status: int) -> None:
    """The registrar answers unknown users as it answers wrong passwords (no enumeration), so
    without the admin's view the message names both causes; with it, the right one."""
    proxy = Destination("UDP", "127.0.0.1", 5060)
    refused = RegistrationError(status, "Forbidden")
    caller = "sip:alice@contoso.example"
    unknown, _ = registration_refused(caller, refused, None, proxy)
    assert "no such user, or a wrong password" in unknown
    stranger, hint = registration_refused(caller, refused, False, proxy)
    assert stranger.startswith("alice is not a user of contoso.example")
    assert "hybridvoice user list" in hint
    password, hint = registration_refused(caller, refused, True, proxy)
    assert "of alice@contoso.example: wrong password" in password and "--password" in hint
    assert "registration failed: registration failed" not in unknown + stranger + password
