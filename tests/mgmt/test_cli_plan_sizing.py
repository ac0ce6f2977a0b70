"""``hybridvoice plan gateways`` and ``plan appliances`` as a user types them (CliRunner):
seed 004's examples, the original's capacity examples, JSON, and errors naming the option."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from hybridvoice.cli import app

RUNNER = CliRunner()
WIDE = {"COLUMNS": "200"}


def run(*args: str) -> tuple[int, str, str]:
    result = RUNNER.invoke(app, ["plan", *args], env=WIDE)
    return result.exit_code, result.stdout, result.stderr


def as_json(*args: str) -> dict[str, object]:
    code, stdout, stderr = run(*args, "--json")
    assert code == 0, stderr
    data: dict[str, object] = json.loads(stdout)
    return data


def test_gateways_seed_004_examples_as_json() -> None:
    light = as_json("gateways", "--users", "20", "--usage", "light")
    assert (light["ports"], light["gateways"], light["installed_ports"]) == (2, 2, 4)
    moderate = as_json("gateways", "--users", "100", "--usage", "moderate")
    assert (moderate["ports"], moderate["gateways"]) == (10, 2)
    heavy = as_json("gateways", "--users", "47000", "--usage", "heavy")
    assert heavy["ports"] == 9_400
    (site,) = heavy["sites"]  # type: ignore[misc]
    assert site["gateways"] == [940] * 10


def test_gateways_table() -> None:
    code, stdout, _ = run("gateways", "--users", "47000", "--usage", "heavy")
    assert code == 0
    assert "Gateways for 47,000 heavy users (1 port per 5 users)" in stdout
    assert "10 x 940" in stdout
    assert "9,400" in stdout


def test_gateways_over_sites() -> None:
    data = as_json("gateways", "--users", "1000", "--usage", "moderate", "--sites", "3")
    sites = data["sites"]
    assert [s["users"] for s in sites] == [334, 333, 333]  # type: ignore[attr-defined]
    assert all(len(s["gateways"]) == 2 for s in sites)  # type: ignore[attr-defined]
    data = as_json(
        "gateways", "--usage", "light", "--site", "Amsterdam=1200", "--site", "Seattle=300"
    )
    assert [(s["name"], s["ports"]) for s in data["sites"]] == [  # type: ignore[attr-defined]
        ("Amsterdam", 80),
        ("Seattle", 20),
    ]
    code, stdout, _ = run("gateways", "--usage", "light", "--site", "A=1200", "--site", "B=300")
    assert code == 0
    assert "all sites" in stdout


def test_gateways_with_busy_hour_traffic_says_which_figure_rules() -> None:
    args = ["gateways", "--users", "100", "--usage", "moderate", "--busy-hour-erlangs", "10"]
    code, stdout, _ = run(*args)
    assert code == 0
    assert "Erlang B trunks" in stdout
    assert "rules: Erlang B at 1% blocking" in stdout
    data = as_json(*args, "--blocking", "0.01")
    (site,) = data["sites"]  # type: ignore[misc]
    assert (site["erlang_trunks"], site["ports"], site["rules"]) == (18, 18, "Erlang B")
    code, stdout, _ = run("gateways", "--users", "100", "--usage", "moderate",
                          "--busy-hour-erlangs", "1")  # fmt: skip
    assert "rules: the rule of thumb" in stdout


def test_appliances_original_examples() -> None:
    data = as_json("appliances", "--concurrent-calls", "1500")
    (site,) = data["sites"]  # type: ignore[misc]
    assert (site["active"], site["spares"], site["guaranteed_calls"]) == (3, 1, 1500)
    assert data["meets_quoted"] is True
    data = as_json("appliances", "--concurrent-calls", "7500")
    (site,) = data["sites"]  # type: ignore[misc]
    assert (site["appliances"], site["installed_calls"], site["guaranteed_calls"]) == (
        16,
        8000,
        7500,
    )
    data = as_json("appliances", "--concurrent-calls", "120", "--hardware", "minimum",
                   "--redundancy", "N+2")  # fmt: skip
    assert data["calls_per_appliance"] == 50
    assert data["appliances"] == 5


def test_appliances_table_and_availability() -> None:
    code, stdout, _ = run("appliances", "--concurrent-calls", "1500")
    assert code == 0
    assert "3+1" in stdout
    assert "98.151%" in stdout  # the per-appliance figure that gives 99.8% for 3+1
    assert "every site meets the original's 99.8% for N+1" in stdout
    code, stdout, _ = run("appliances", "--concurrent-calls", "7500",
                          "--appliance-availability", "0.99")  # fmt: skip
    assert code == 0
    assert "below the original's 99.8% for N+1: site-1" in stdout
    data = as_json("appliances", "--concurrent-calls", "7500", "--appliance-availability", "0.99")
    assert data["meets_quoted"] is False


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["gateways", "--users", "0", "--usage", "light"], "--users: must be between 1 and"),
        (["gateways", "--usage", "light"], "--users: give the number of users"),
        (["gateways", "--users", "10", "--usage", "light", "--sites", "20"], "--sites: 20 sites"),
        (["gateways", "--usage", "light", "--sites", "2"], "--users: --sites shares --users"),
        (["gateways", "--usage", "light", "--site", "nosign"], "--site: 'nosign' is not NAME"),
        (["gateways", "--usage", "light", "--site", "a=x"], "--site: 'a=x': 'x' is not a whole"),
        (["gateways", "--usage", "light", "--site", "a=0"], "--site a=...: must be between 1"),
        (["gateways", "--users", "5", "--usage", "light", "--site", "a=4"], "--users: 5 users"),
        (
            ["gateways", "--users", "5", "--usage", "light", "--busy-hour-erlangs", "-1"],
            "--busy-hour-erlangs: must be 0 or more",
        ),
        (
            ["gateways", "--users", "5", "--usage", "light", "--busy-hour-erlangs", "nan"],
            "--busy-hour-erlangs: must be a number of erlangs, not NaN",
        ),
        (
            ["gateways", "--users", "5", "--usage", "light", "--busy-hour-erlangs", "1e9"],
            "--busy-hour-erlangs: must be at most 100,000 erlangs",
        ),
        (
            [
                "gateways",
                "--users",
                "5",
                "--usage",
                "light",
                "--busy-hour-erlangs",
                "3",
                "--blocking",
                "1.5",
            ],
            "--blocking: must be a probability between 0 and 1",
        ),
        (
            ["gateways", "--users", "5", "--usage", "light", "--blocking", "0.05"],
            "--blocking: applies to --busy-hour-erlangs",
        ),
        (["appliances", "--concurrent-calls", "0"], "--concurrent-calls: must be between 1"),
        (["appliances", "--concurrent-calls", "2000000"], "at most 200 sites"),
        (
            ["appliances", "--concurrent-calls", "10", "--appliance-availability", "0"],
            "--appliance-availability: must be above 0 and at most 1",
        ),
        (
            ["appliances", "--concurrent-calls", "10", "--appliance-availability", "inf"],
            "--appliance-availability: must be above 0",
        ),
    ],
)
def test_errors_name_the_option_and_the_range(args: list[str], message: str) -> None:
    code, stdout, stderr = run(*args)
    assert code == 2
    assert message in stderr
    assert "Traceback" not in stdout + stderr


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["gateways", "--users", "5", "--usage", "extreme"], "--usage"),
        (["appliances", "--concurrent-calls", "5", "--redundancy", "N+3"], "--redundancy"),
        (["appliances", "--concurrent-calls", "5", "--hardware", "large"], "--hardware"),
        (["appliances", "--concurrent-calls", "many"], "--concurrent-calls"),
    ],
)
def test_choices_and_numbers_are_checked_by_the_parser(args: list[str], option: str) -> None:
    code, _, stderr = run(*args)
    assert code == 2
    assert option in stderr


def test_help_explains_the_rules() -> None:
    code, stdout, _ = run("gateways", "--help")
    assert code == 0
    for words in ("1 port per 15", "per 10", "per 5", "2 to", "960 ports", "at least two"):
        assert words in stdout
    code, stdout, _ = run("appliances", "--help")
    assert code == 0
    for words in ("500 calls", "50 on minimum", "up to 16", "N+1", "99.8%", "99.9%"):
        assert words in stdout
