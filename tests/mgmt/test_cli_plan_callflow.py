"""``hybridvoice plan callflow`` as a user runs it (typer's CliRunner on the real command line):
the table, the JSON object for all 8 PSTN combinations, the SVG diagram parsed back, and the
errors for bad options."""

from __future__ import annotations

import itertools
import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from hybridvoice.cli import app

WIDE = {"COLUMNS": "200"}
SVG = "{http://www.w3.org/2000/svg}"


def plan(*args: str, code: int = 0) -> Result:
    result = CliRunner().invoke(app, ["plan", "callflow", *args], env=WIDE)
    assert result.exit_code == code, (args, result.stdout, result.stderr)
    return result


def plan_json(*args: str) -> Any:
    return json.loads(plan(*args, "--json").stdout)


COMBINATIONS = list(itertools.product(["internal", "internet"], ["yes", "no"], ["yes", "no"]))

# The 8 PSTN combinations: (media nodes, signalling segments, media segments).
EXPECTED = {
    ("internal", "yes", "yes"): (
        ["client", "gateway"],
        ["customer", "peering", "cloud", "peering", "customer"],
        ["customer"],
    ),
    ("internal", "yes", "no"): (
        ["client", "mediation", "gateway"],
        ["customer", "peering", "cloud", "peering", "customer"],
        ["customer"],
    ),
    ("internal", "no", "yes"): (
        ["client", "gateway"],
        ["customer", "internet", "cloud", "internet", "customer"],
        ["customer"],
    ),
    ("internal", "no", "no"): (
        ["client", "mediation", "gateway"],
        ["customer", "internet", "cloud", "internet", "customer"],
        ["customer"],
    ),
    ("internet", "yes", "yes"): (
        ["client", "edge", "mediation", "gateway"],
        ["internet", "cloud", "peering", "customer"],
        ["internet", "customer"],
    ),
    ("internet", "yes", "no"): (
        ["client", "edge", "mediation", "gateway"],
        ["internet", "cloud", "peering", "customer"],
        ["internet", "customer"],
    ),
    ("internet", "no", "yes"): (
        ["client", "edge", "mediation", "gateway"],
        ["internet", "cloud", "internet", "customer"],
        ["internet", "customer"],
    ),
    ("internet", "no", "no"): (
        ["client", "edge", "mediation", "gateway"],
        ["internet", "cloud", "internet", "customer"],
        ["internet", "customer"],
    ),
}


def _nodes(path: dict[str, Any]) -> list[str]:
    hops = path["hops"]
    return [hops[0]["from"], *(hop["to"] for hop in hops)]


@pytest.mark.parametrize(("client", "peering", "bypass"), COMBINATIONS)
def test_pstn_json_for_every_combination(client: str, peering: str, bypass: str) -> None:
    data = plan_json(
        "--scenario", "pstn", "--client", client, "--peering", peering, "--bypass", bypass
    )
    media_nodes, signalling_segments, media_segments = EXPECTED[(client, peering, bypass)]
    assert data["scenario"] == "pstn"
    assert (data["client"], data["peering"], data["bypass"]) == (
        client,
        peering == "yes",
        bypass == "yes",
    )
    assert _nodes(data["signalling"]) == ["client", "online", "edge", "mediation", "gateway"]
    assert _nodes(data["media"]) == media_nodes
    assert data["signalling"]["segments"] == signalling_segments
    assert data["media"]["segments"] == media_segments
    assert data["bypassed"] is (media_nodes == ["client", "gateway"])
    assert data["reasons"]
    assert data["summary"]["media"] == ("local" if client == "internal" else "internet")


def test_internet_client_with_bypass_is_not_an_error_but_says_why() -> None:
    data = plan_json("--client", "internet", "--bypass", "yes")
    assert not data["bypassed"]
    assert any("internet clients never bypass" in note for note in data["notes"])
    shown = plan("--client", "internet", "--bypass", "yes").stdout
    assert "internet clients never bypass" in shown


def test_the_table_shows_hops_segments_summary_and_reasons() -> None:
    shown = plan("--scenario", "pstn", "--client", "internal", "--peering", "yes").stdout
    for text in (
        "traffic",
        "segments crossed",
        "customer > peering > cloud",
        "signalling: customer > peering > cloud > peering > customer",
        "media:      customer",
        "Seed 002 summary",
        "principle 4",
        "no bypass: mediation relays the media",
        "turns there and ends in the Cloud Connector",
    ):
        assert text in shown, text


@pytest.mark.parametrize("client", ["internal", "internet"])
@pytest.mark.parametrize("scenario", ["p2p", "conference"])
def test_the_seeds_other_scenarios(scenario: str, client: str) -> None:
    data = plan_json("--scenario", scenario, "--client", client, "--peering", "yes")
    expected = "peering" if client == "internal" else "internet"
    assert data["signalling"]["segments"][0] == ("customer" if client == "internal" else "internet")
    if scenario == "conference":
        assert data["summary"] == {"signalling": expected, "media": expected}
        assert "online edge" in _nodes(data["media"])  # principle 5
    elif client == "internal":
        assert data["summary"]["media"] == "local"
        assert data["media"]["segments"] == ["customer"]  # principle 3: direct
    else:
        assert data["summary"]["media"] == {"client": "internet", "colleague": "peering"}


def test_svg_diagram(tmp_path: Path) -> None:
    target = tmp_path / "flow.svg"
    shown = plan("--client", "internet", "--peering", "yes", "--svg", str(target)).stdout
    assert f"diagram written to {target}" in shown
    text = target.read_text()
    assert "http://" not in text.replace("http://www.w3.org/2000/svg", "")  # no CDN, no fonts
    assert "@import" not in text and "<script" not in text
    root = ET.fromstring(text)
    assert root.tag == f"{SVG}svg"
    bands = [g.get("data-segment") for g in root.iter(f"{SVG}g") if g.get("class") == "band"]
    assert bands == ["customer", "internet", "peering", "cloud"]
    nodes = {
        g.get("data-node"): g.get("data-segment")
        for g in root.iter(f"{SVG}g")
        if g.get("class") == "node"
    }
    assert nodes == {
        "client": "internet",
        "online": "cloud",
        "edge": "customer",
        "mediation": "customer",
        "gateway": "customer",
    }
    lines = [
        (p.get("data-traffic"), p.get("data-from"), p.get("data-to"))
        for p in root.iter(f"{SVG}polyline")
    ]
    assert ("signalling", "client", "online") in lines
    assert ("signalling", "online", "edge") in lines
    assert ("media", "client", "edge") in lines
    assert ("media", "mediation", "gateway") in lines
    assert len(lines) == 4 + 3
    dashed = {p.get("data-traffic"): p.get("stroke-dasharray") for p in root.iter(f"{SVG}polyline")}
    assert dashed["media"] and not dashed["signalling"]  # two styles
    markers = {m.get("id") for m in root.iter(f"{SVG}marker")}
    assert markers == {"arrow-signalling", "arrow-media"}
    legend = [
        g.get("data-traffic") for g in root.iter(f"{SVG}g") if g.get("class") == "legend-item"
    ]
    assert legend == ["signalling", "media"]


def test_svg_json_together(tmp_path: Path) -> None:
    target = tmp_path / "flow.svg"
    data = plan_json("--svg", str(target))
    assert data["scenario"] == "pstn"
    ET.fromstring(target.read_text())


def test_svg_to_an_unwritable_place_is_a_clear_error(tmp_path: Path) -> None:
    result = plan("--svg", str(tmp_path / "missing" / "flow.svg"), code=2)
    assert "--svg" in result.stderr and "cannot write" in result.stderr


@pytest.mark.parametrize(
    ("option", "value", "allowed"),
    [
        ("--scenario", "fax", "pstn"),
        ("--client", "moon", "internet"),
        ("--peering", "maybe", "yes"),
        ("--bypass", "sometimes", "no"),
    ],
)
def test_bad_options_name_the_option_and_the_allowed_values(
    option: str, value: str, allowed: str
) -> None:
    result = plan(option, value, code=2)
    assert option in result.stderr
    assert allowed in result.stderr


def test_p2p_signalling_segments_are_shown_per_party() -> None:
    shown = plan("--scenario", "p2p", "--client", "internet", "--peering", "yes").stdout
    assert "signalling: client: internet > cloud; colleague: customer > peering > cloud" in shown


def test_the_summary_says_which_legs_it_describes() -> None:
    data = plan_json("--client", "internal", "--peering", "yes")
    assert data["summary"]["signalling"] == "local"  # seed 002's Cloud Connector table
    assert data["summary_describes"]["signalling"] == "the Cloud Connector's legs to the gateway"
    internet = plan_json("--client", "internet", "--peering", "yes")
    assert internet["summary_describes"]["signalling"] == (
        "each party's leg to the server it signals to"
    )
