"""``hybridvoice calls trace CALL_ID --out FILE``: a call's SIP as a pcap file, from the
appliance's management API (``GET /v1/calls/{call_id}/trace.pcap``), to open in Wireshark,
``tshark -r FILE -Y sip`` or ``sngrep -I FILE``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import httpx
import typer

from .cli_admin import APPLIANCE_URL, ApplianceUrl, cli_terms, client, fail, out
from .cli_errors import refusal

__all__ = ["register_trace_commands"]


def calls_trace(
    call_id: Annotated[
        str, typer.Argument(metavar="CALL_ID", help="Call-ID of either leg, or the record id")
    ],
    out_file: Annotated[Path, typer.Option("--out", "-o", help="Write the pcap file here")],
    appliance: ApplianceUrl = APPLIANCE_URL,
) -> None:
    """Save a call's SIP (both legs, every role) as a pcap file for Wireshark or sngrep."""
    try:
        with client(appliance) as http:
            response = http.get(f"/v1/calls/{call_id}/trace.pcap")
    except httpx.HTTPError as exc:
        fail(f"cannot reach {appliance}: {exc}",
             "Is `hybridvoice up` running? Point --appliance at it.", 2)  # fmt: skip
    if response.status_code >= 400:
        error, hint = refusal(response)
        if response.status_code == 401:
            hint = "Pass --token or set HYBRIDVOICE_TOKEN (`hybridvoice up` saves its own)."
        fail(cli_terms(error), cli_terms(hint) if hint else None)
    try:
        out_file.write_bytes(response.content)
    except OSError as exc:
        fail(f"cannot write {out_file}: {exc.strerror}", "Choose another --out path.")
    out.print(f"{len(response.content)} bytes written to {out_file}; open it with "
              f"`tshark -r {out_file} -Y sip` or `sngrep -I {out_file}`")  # fmt: skip


def register_trace_commands(calls_app: typer.Typer) -> None:
    """Add ``trace`` to the ``calls`` sub-commands."""
    calls_app.command("trace")(calls_trace)
