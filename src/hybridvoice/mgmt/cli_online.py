"""``hybridvoice online trust-site | untrust-site | trusted-sites``: the sites whose
appliances an online service accepts (mutual TLS, ``docs/api-auth.md``).

An online service run for several sites needs each site's root: ``trust-site --site S --root
root.pem`` sends it (``PUT /v1/site-roots/S``, admin token), the service keeps it in its state
and takes it at once, without a restart. ``trusted-sites`` lists what it trusts (its own site
from its settings, and the added ones), ``untrust-site --site S`` removes an added root.
"""

from __future__ import annotations

import urllib.parse
from pathlib import Path
from typing import Annotated

import typer

from .cli_admin import ONLINE_URL, Json, Url, api, fail, out, show

__all__ = ["online_app", "register_online_commands"]

online_app = typer.Typer(
    help="The online service's trust in sites (their roots, for appliances' certificates).",
    no_args_is_help=True,
)

Site = Annotated[str, typer.Option("--site", help="The site's name ([Common] SiteName)")]
_COLUMNS = ("site", "source", "subject", "not_after", "sha256")


def _path(site: str) -> str:
    return f"/v1/site-roots/{urllib.parse.quote(site, safe='')}"


@online_app.command("trust-site")
def trust_site(
    site: Site,
    root: Annotated[Path, typer.Option("--root", help="The site's root.pem (ca export-root)")],
    url: Url = ONLINE_URL,
    as_json: Json = False,
) -> None:
    """Accept the appliances of SITE: their certificates must come from ROOT."""
    try:
        pem = root.read_text("ascii")
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"--root: cannot read {root}: {getattr(exc, 'strerror', None) or exc}",
             "Give the site's root.pem: `hybridvoice ca export-root --output root.pem` on an "
             "appliance of the site.")  # fmt: skip
    hints = {
        409: "The online service's own site is trusted from its site PKI; an http "
        "online API checks no certificates: serve it over https ([Online] ServiceURL "
        "https://...) to authenticate appliances with their site certificates."
    }
    row = api("PUT", url, _path(site), {"root": pem}, hints=hints)
    if as_json:
        show(row, True)
        return
    out.print(f"site {site} trusted: appliances with certificates from {row['subject']} "
              f"(sha256 {row['sha256'][:16]}..., valid until {row['not_after'][:10]})")  # fmt: skip


@online_app.command("untrust-site")
def untrust_site(site: Site, url: Url = ONLINE_URL) -> None:
    """Stop accepting the appliances of SITE (its added root is removed)."""
    hints = {404: f"Site {site} has no added root: `hybridvoice online trusted-sites` lists "
                  "them."}  # fmt: skip
    api("DELETE", url, _path(site), hints=hints)
    out.print(f"site {site} no longer trusted: its appliances are refused from the next "
              "connection (unknown-site)")  # fmt: skip


@online_app.command("trusted-sites")
def trusted_sites(url: Url = ONLINE_URL, as_json: Json = False) -> None:
    """The sites whose appliances the online service accepts, and their roots."""
    show(api("GET", url, "/v1/site-roots"), as_json, _COLUMNS, "trusted sites")


def register_online_commands(app: typer.Typer) -> None:
    app.add_typer(online_app, name="online")
