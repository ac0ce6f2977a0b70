"""``hybridvoice plan verify`` on a ``hybridvoice up`` process whose addresses tell the
segments apart (``init --segments``: the online service on 127.64.0.1, the customer's network
127.0.0.0/16, the internet client on 127.128.0.1): planned == observed for an internal client
with and without media bypass and for an internet client; and a deliberately wrong
``[Segments] CloudAddresses`` makes it fail (exit 1, the difference named)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from chain_harness import settings_on_free_ports
from ports import free_port, free_port_block
from test_cli_up import _data_home, hv, up  # noqa: F401 (_data_home: the fixture, autouse)

from hybridvoice.cms.settings import Settings, parse_settings
from hybridvoice.cms.settings_raw import settings_raw
from hybridvoice.cms.template_segments import segmented_lab

pytestmark = [pytest.mark.live, pytest.mark.xdist_group("hybridvoice-up")]


def segmented(**segments: str) -> Settings:
    """The segmented lab on free ports (the edge relay's range and its listeners too)."""
    raw = settings_raw(segmented_lab(settings_on_free_ports()))
    first = free_port_block(61)
    raw["EdgeServer"]["ExternalMRPortRange"] = f"{first}-{first + 60}"
    raw["MediaRelay"].update(UDPPort=free_port(), MRASPort=free_port())
    raw["Segments"].update(segments)
    return parse_settings(raw)


def test_plan_verify_planned_equals_observed_and_a_wrong_segment_fails(tmp_path: Path) -> None:
    (tmp_path / "right").mkdir()
    (tmp_path / "wrong").mkdir()
    with up(tmp_path / "right", settings=segmented()) as (_, urls):
        run = hv("plan", "verify", "--json", *urls, timeout=180)
        assert run.returncode == 0, run.stdout + run.stderr
        answer = json.loads(run.stdout)
        assert answer["ok"] is True
        by_name = {s["name"]: s for s in answer["scenarios"]}
        assert set(by_name) == {"internal, bypass", "internal, no bypass", "internet client"}
        for scenario in answer["scenarios"]:
            for traffic in ("signalling", "media"):
                paths = scenario[traffic]
                assert paths["ok"] and paths["planned"] == paths["observed"], scenario
        assert by_name["internal, bypass"]["media_path"] == "bypass"
        assert by_name["internal, no bypass"]["media_path"] == "anchored"
        internet = by_name["internet client"]
        assert internet["client_address"] == "127.128.0.1"
        assert internet["media"]["observed"] == [
            "client -> edge: internet > customer", "edge -> mediation: customer",
            "mediation -> gateway: customer",
        ]  # fmt: skip
        assert internet["signalling"]["observed_segments"] == [
            "internet", "cloud", "internet", "customer",
        ]  # fmt: skip
        first_hop = internet["observed_hops"]["signalling"][0]
        assert first_hop["source_address"].startswith("127.128.0.1:")
        assert first_hop["target_address"].startswith("127.64.0.1:")
        # the tenant's bypass setting is back as it was (off, as `up` provisions it)
        config = hv("bypass", "get", "--json", *urls[:2])
        assert config.returncode == 0, config.stderr
        assert json.loads(config.stdout)["media_bypass_enabled"] is False
        table = hv("plan", "verify", *urls, timeout=180)
        assert table.returncode == 0, table.stdout + table.stderr
        assert "planned vs observed" in table.stdout and "FAIL" not in table.stdout

    # the online service's address not named as the cloud's: its hops cross other segments
    wrong = segmented(CloudAddresses="127.99.0.1")
    with up(tmp_path / "wrong", settings=wrong) as (_, urls):
        run = hv("plan", "verify", "--json", *urls, timeout=180)
        assert run.returncode == 1, run.stdout + run.stderr
        answer = json.loads(run.stdout)
        assert answer["ok"] is False
        differences = answer["scenarios"][0]["signalling"]["differences"]
        assert (
            "planned client -> online (customer > internet > cloud), "
            "observed client -> online (customer > internet)"
        ) in differences


def test_plan_verify_with_sip_between_the_roles_on_sockets(tmp_path: Path) -> None:
    """``up --wire``: the online service reaches the edge over a real TCP connection, which
    leaves from its own address (127.64.0.1; the edge accepts no other), and every address
    of the record is one a socket saw."""
    with up(tmp_path, "--lab-users", "--lab-gateway", "--wire", settings=segmented()) as (_, urls):
        run = hv("plan", "verify", "--json", *urls, timeout=180)
        assert run.returncode == 0, run.stdout + run.stderr
        answer = json.loads(run.stdout)
        assert answer["ok"] is True
        hops = answer["scenarios"][1]["observed_hops"]["signalling"]
        assert hops[1]["source_address"].startswith("127.64.0.1:")  # online -> edge
        assert hops[1]["segments"] == ["cloud", "internet", "customer"]


def test_plan_verify_with_a_peering_link_to_the_cloud(tmp_path: Path) -> None:
    """The cloud's prefix named as reached over the private peering link: every hop between
    the customer's network and the cloud is planned and observed over ``peering``, the
    internet client's still over the internet."""
    with up(tmp_path, settings=segmented(PeeringPrefixes="127.64.0.0/16")) as (_, urls):
        run = hv("plan", "verify", "--json", *urls, timeout=180)
        assert run.returncode == 0, run.stdout + run.stderr
        answer = json.loads(run.stdout)
        assert answer["ok"] is True
        by_name = {s["name"]: s for s in answer["scenarios"]}
        for name in ("internal, bypass", "internal, no bypass"):
            assert by_name[name]["signalling"]["observed_segments"] == [
                "customer", "peering", "cloud", "peering", "customer",
            ], by_name[name]  # fmt: skip
        internet = by_name["internet client"]["signalling"]["observed_segments"]
        assert internet == ["internet", "cloud", "peering", "customer"]
