"""``hybridvoice token create|list|revoke`` and ``hybridvoice audit``.

Tokens are made, listed and revoked through the API they are for: the online service's
(``--url``, the default) or an appliance's (``--url http://127.0.0.1:8472``); both keep their
own. A new token is printed once: only its hash is stored. ``audit`` shows who changed what
(``--since 1h``, ``--limit``, ``--operation user``, ``--target``, ``--by`` a token id or name).
"""

from __future__ import annotations

import datetime as dt
import re
import time
import urllib.parse
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from .cli_admin import ONLINE_URL, Json, Url, api, show

__all__ = ["parse_since", "register_token_commands"]

out = Console()
err = Console(stderr=True)

token_app = typer.Typer(
    help="Bearer tokens for the management APIs: create (shown once), list, revoke.",
    no_args_is_help=True,
)
TOKEN_COLUMNS = ("id", "name", "scope", "created", "revoked")
_AGO = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd])")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _when(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return dt.datetime.fromtimestamp(epoch).astimezone().isoformat(timespec="seconds")


@token_app.command("create")
def token_create(
    name: Annotated[str, typer.Option(help="What the token is for: a person, a script, a host")],
    scope: Annotated[
        str,
        typer.Option(help="read (look only), admin (change anything), appliance (an appliance)"),
    ] = "read",
    url: Url = ONLINE_URL,
    as_json: Json = False,
) -> None:
    """Make a token and print it once (only its hash is kept)."""
    made = api("POST", url, "/v1/tokens", {"name": name, "scope": scope})
    if as_json:
        show(made, True)
        return
    out.print(made["token"], soft_wrap=True, highlight=False)
    err.print(f"token {made['id']} ({made['name']!r}, scope {made['scope']}): shown once, "
              "keep it now. Use it with --token or HYBRIDVOICE_TOKEN.")  # fmt: skip


@token_app.command("list")
def token_list(url: Url = ONLINE_URL, as_json: Json = False) -> None:
    """The tokens (never their secrets), revoked ones too."""
    tokens = api("GET", url, "/v1/tokens")["tokens"]
    if as_json:
        show(tokens, True)
        return
    rows = [{**t, "created": _when(t["created_at"]), "revoked": _when(t["revoked_at"])}
            for t in tokens]  # fmt: skip
    show(rows, False, TOKEN_COLUMNS, "tokens")


@token_app.command("revoke")
def token_revoke(
    token_id: Annotated[str, typer.Argument(help="The token's id (token list shows it)")],
    url: Url = ONLINE_URL,
    as_json: Json = False,
) -> None:
    """Revoke a token: it is refused from now on."""
    revoked = api("DELETE", url, f"/v1/tokens/{token_id}")
    if as_json:
        show(revoked, True)
    else:
        out.print(f"token {revoked['id']} ({revoked['name']!r}) revoked")


def parse_since(text: str, now: float | None = None) -> float:
    """``30m``/``2h``/``1d`` ago, an ISO 8601 time, or epoch seconds -> epoch seconds."""
    now = time.time() if now is None else now
    match = _AGO.fullmatch(text.strip())
    if match:
        return now - float(match.group(1)) * _UNIT[match.group(2)]
    try:
        return float(text)
    except ValueError:
        pass
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError as exc:
        raise typer.BadParameter("give 30m, 2h, 1d, an ISO time or epoch seconds") from exc
    return (when if when.tzinfo else when.astimezone()).timestamp()


def _change(before: Any, after: Any) -> str:
    """The fields a change touched, ``field: old -> new``."""
    if not isinstance(before, dict) or not isinstance(after, dict):
        return "created" if before is None and after is not None else (
            "removed" if after is None and before is not None else "-")  # fmt: skip
    keys = [k for k in {**before, **after} if before.get(k) != after.get(k)]
    return "; ".join(f"{k}: {before.get(k)} -> {after.get(k)}" for k in keys) or "no change"


def audit(
    since: Annotated[
        str | None, typer.Option(help="Only after this: 30m, 2h, 1d, an ISO time")
    ] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first")] = 50,
    operation: Annotated[
        str | None, typer.Option(help="Operations starting with this: user, bypass.enable")
    ] = None,
    target: Annotated[str | None, typer.Option(help="Only this object")] = None,
    by: Annotated[str | None, typer.Option(help="Only this token (id or name)")] = None,
    url: Url = ONLINE_URL,
    as_json: Json = False,
) -> None:
    """The audit log: who changed what, when, from where, before and after.

    The online service's by default; --url http://127.0.0.1:8472 for an appliance's.
    """
    params: dict[str, Any] = {"limit": limit, "operation": operation, "target": target,
                              "token": by}  # fmt: skip
    if since is not None:
        params["since"] = parse_since(since)
    query = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
    entries = api("GET", url, f"/v1/audit?{query}")["entries"]
    if as_json:
        show(entries, True)
        return
    table = Table(title="audit log (newest first)")
    for column in ("when", "token", "source", "operation", "target", "status", "change"):
        table.add_column(column)
    for e in entries:
        table.add_row(_when(e["at"]), f"{e['token_id']} {e['token_name']}", e["source"],
                      e["operation"], e["target"], str(e["status"]),
                      _change(e["before"], e["after"]))  # fmt: skip
    out.print(table)


def register_token_commands(app: typer.Typer) -> None:
    """Add ``token`` and ``audit`` to the ``hybridvoice`` command."""
    app.add_typer(token_app, name="token")
    app.command("audit")(audit)
