"""``Fleet.start`` when an appliance does not come up: a clear error naming the appliance, how
it ended and the end of its log (or that it never registered), and nothing left running; and
the FLEET.toml of docs/fleet.md is a valid fleet description."""

from __future__ import annotations

import asyncio
import re
import sys
import tomllib
from pathlib import Path

import pytest
from ports import free_port, free_port_block

from hybridvoice.cms.fleet_plan import plan_fleet
from hybridvoice.cms.settings_fleet import parse_fleet
from hybridvoice.fleet.up import Fleet, FleetStartError

DOCS = Path(__file__).parents[2] / "docs" / "fleet.md"


def small_fleet() -> dict[str, object]:
    return {
        "Fleet": {"SIPDomains": "contoso.example", "BasePort": free_port_block(20),
                  "MediaPortStart": free_port_block(8), "MediaPortsPerAppliance": 4},
        "Online": {"ServiceURL": f"http://127.0.0.1:{free_port()}", "SIPPort": free_port()},
        "Site": [{"Name": "Lab", "Appliances": 2,
                  "Gateway": [{"Name": "gw", "IP": "127.0.0.1", "Port": free_port()}]}],
    }  # fmt: skip


def test_an_appliance_that_dies_while_starting_is_named_with_its_log(tmp_path: Path) -> None:
    def broken(config: Path, state: Path) -> list[str]:
        code = "import sys; print('no such setting here', flush=True); sys.exit(3)"
        return [sys.executable, "-c", code]

    fleet = Fleet(plan_fleet(parse_fleet(small_fleet())), tmp_path, command=broken, grace=5)
    with pytest.raises(FleetStartError) as caught:
        asyncio.run(fleet.start(timeout=60))
    text = str(caught.value)
    assert re.search(r"appliance lab-\d exited with code 3 while starting", text), text
    assert "no such setting here" in text
    assert fleet.children is None and fleet.lab is None  # stopped, nothing left running


def test_an_appliance_that_never_registers_times_out_naming_it(tmp_path: Path) -> None:
    def silent(config: Path, state: Path) -> list[str]:
        return [sys.executable, "-c", "import time; time.sleep(600)"]

    fleet = Fleet(plan_fleet(parse_fleet(small_fleet())), None, command=silent, grace=5)
    with pytest.raises(FleetStartError, match=r"not registered with the online service within "
                                              r"3 s: lab-1, lab-2"):  # fmt: skip
        asyncio.run(fleet.start(timeout=3))
    assert fleet.children is None


def test_the_fleet_toml_of_the_docs_is_valid() -> None:
    text = DOCS.read_text()
    block = re.search(r"```toml\n(# fleet.toml.*?)```", text, re.S)
    assert block is not None, "docs/fleet.md lost its FLEET.toml example"
    plan = plan_fleet(parse_fleet(tomllib.loads(block.group(1))))
    assert [len(plan.of_site(s.name)) for s in plan.sites] == [4, 3]
    assert {u.site for u in plan.users} == {"Amsterdam", "Seattle"}
