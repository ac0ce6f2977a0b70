"""``hybridvoice ca``: the site CA of a state directory (RFC 5280 certificates, RFC 7292 backup).

The commands of the original's CA cmdlets, on the files ``hybridvoice up`` keeps in
``<state dir>/pki`` (``docs/pki.md``):

- ``ca export-root`` (Export-CcRootCertificate): the site root in PEM, for gateways to import;
- ``ca backup`` / ``ca restore`` (Backup-CcCertificationAuthority and its restore): the CA as a
  passphrase-protected PKCS #12 file, to share one CA between the site's appliances;
- ``ca renew [ROLE]`` (Renew-CcServerCertificate / Update-CcServerCertificate) and
  ``ca renew --ca`` (Update-CcCertificationAuthority): a running ``up`` takes the new
  certificate for its next handshakes without a restart;
- ``ca status``: every certificate with its days left, warning 30 days before expiry;
- ``ca status`` and ``ca renew`` with ``--appliance URL``: the same through that appliance's
  management API (``GET /v1/ca/certificates``, ``POST /v1/ca/renew``, docs/api.md), for an
  appliance the admin reaches only over the network; the other commands stay local (a CA
  backup, restore or key is a file an admin moves by hand, never over the API);
- ``ca issue-gateway``: a certificate for a gateway (MTLS on 5067) from the site CA, with a
  new key or for the gateway's own certificate request.

The state directory is ``--state-dir`` (what ``up --state-dir`` was given) or the per-user
default ``up`` picks for ``--config`` (the lab without it).
"""

from __future__ import annotations

import datetime
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:  # hybridvoice.pki loads cryptography: only when a ca command runs
    from hybridvoice.pki import PkiStore

__all__ = ["ca_app", "register_ca_commands"]

out = Console()
err = Console(stderr=True)

ca_app = typer.Typer(
    help="The site CA: export the root, back up and restore the CA, renew certificates, status.",
    no_args_is_help=True,
)

StateDir = Annotated[
    Path | None,
    typer.Option(
        "--state-dir",
        help="The state directory of hybridvoice up (its pki/ holds the CA). Default: the one "
        "up uses for --config (or the lab's)",
        metavar="DIR",
    ),
]
Config = Annotated[
    Path | None, typer.Option(help="The settings file up runs (to find its state directory)")
]


def _remote(value: str | None) -> str | None:
    """Remember that ``--appliance`` gave this URL, for the "cannot reach" error."""
    if value is not None:
        from .cli_admin import _url_of  # noqa: PLC0415 - only with --appliance

        _url_of("--appliance")(value)
    return value


Remote = Annotated[
    str | None,
    typer.Option(
        "--appliance", metavar="URL", callback=_remote,
        help="Ask a (remote) appliance's management API instead of a local state directory",
    ),
]  # fmt: skip


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _store(state_dir: Path | None, config: Path | None) -> PkiStore:
    """The PKI store of the state directory ``up`` uses (see the module docstring)."""
    from hybridvoice.pki import PkiStore  # noqa: PLC0415

    if state_dir is None:
        import platformdirs  # noqa: PLC0415 - keep the CLI's start fast

        root = Path(platformdirs.user_data_dir("hybridvoice", appauthor=False))
        if config is None:
            state_dir = root / "lab"
        else:
            from hybridvoice.cms.settings import load_settings  # noqa: PLC0415

            site = load_settings(config).common.site_name
            state_dir = root / "sites" / re.sub(r"[^A-Za-z0-9_.-]", "_", site)
    return PkiStore(state_dir / "pki")


def _fail(message: str, code: int = 1, hint: str | None = None) -> typer.Exit:
    err.print(f"[red]{message}[/red]", highlight=False)
    if hint:
        err.print(hint, highlight=False, markup=False)
    return typer.Exit(code)


def _where(state_dir: Path | None, config: Path | None) -> str:
    """The options that name this state directory again, as the user gave them."""
    return "".join(f" {flag} {value}" for flag, value in
                   (("--config", config), ("--state-dir", state_dir)) if value)  # fmt: skip


def _pki_failed(exc: Exception, state_dir: Path | None, config: Path | None) -> typer.Exit:
    """``exc`` from the site PKI, with what to type next when the CA is missing or damaged,
    or a backup file cannot be restored."""
    from hybridvoice.pki import CaImportError, NoSiteCaError, SiteCaDamagedError  # noqa: PLC0415

    where = _where(state_dir, config)
    backup = "hybridvoice ca backup --output site-ca.p12 --passphrase-file PASSFILE"
    if isinstance(exc, NoSiteCaError):
        up = f"hybridvoice up --config {config or 'SETTINGS.toml'}"
        up += f" --state-dir {state_dir}" if state_dir else ""
        hint = (
            f"On the site's first appliance, make it: `{up}` (the first start makes the CA when a "
            "hop between the roles or a gateway speaks TLS). On another appliance of the site, "
            f"copy that one: `{backup}` there, then `hybridvoice ca restore site-ca.p12 "
            f"--passphrase-file PASSFILE{where}` here."
        )
    elif isinstance(exc, SiteCaDamagedError):
        hint = (f"Restore it from a backup: `hybridvoice ca restore site-ca.p12 "
                f"--passphrase-file PASSFILE --force{where}` (made with `{backup}`).")  # fmt: skip
    elif isinstance(exc, CaImportError):
        hint = f"Make the file again on the site's first appliance: `{backup}`"
    else:
        hint = None
    return _fail(str(exc), hint=hint)


def _passphrase(path: Path) -> str:
    try:
        return path.read_text().rstrip("\r\n")
    except OSError as exc:
        raise _fail(f"cannot read the passphrase file {path}: {exc.strerror or exc}", 2) from exc


@ca_app.command("export-root")
def export_root(
    output: Annotated[
        Path | None, typer.Option(help="Write the PEM here (default: print it)")
    ] = None,
    state_dir: StateDir = None,
    config: Config = None,
) -> None:
    """Export-CcRootCertificate: the site root certificate in PEM, for gateways to trust."""
    from hybridvoice.pki import PkiError  # noqa: PLC0415

    try:
        pem = _store(state_dir, config).root_pem()
    except PkiError as exc:
        raise _pki_failed(exc, state_dir, config) from exc
    if output is None:
        out.print(pem.decode(), end="", markup=False, highlight=False)
    else:
        output.write_bytes(pem)
        out.print(f"site root written to {output}")


@ca_app.command("backup")
def backup(
    output: Annotated[Path, typer.Option(help="The backup file to write (PKCS #12)")],
    passphrase_file: Annotated[
        Path, typer.Option(help="A file holding the passphrase (8 characters or more)")
    ],
    state_dir: StateDir = None,
    config: Config = None,
) -> None:
    """Backup-CcCertificationAuthority: the CA (key and certificate) as one file protected by
    a passphrase, to restore on the site's other appliances."""
    from hybridvoice.pki import PkiError, export_ca  # noqa: PLC0415

    try:
        data = export_ca(_store(state_dir, config).load_ca(), _passphrase(passphrase_file))
    except (PkiError, ValueError) as exc:
        raise _pki_failed(exc, state_dir, config) from exc
    output.write_bytes(data)
    output.chmod(0o600)
    out.print(f"site CA backed up to {output}")


@ca_app.command("restore")
def restore(
    backup_file: Annotated[Path, typer.Argument(help="A file made by hybridvoice ca backup")],
    passphrase_file: Annotated[Path, typer.Option(help="A file holding its passphrase")],
    force: Annotated[bool, typer.Option(help="Replace the CA this state directory has")] = False,
    state_dir: StateDir = None,
    config: Config = None,
) -> None:
    """Restore the site CA from a backup (another appliance of the site joins the same CA).
    The roles' certificates are issued again by it at the next start of up."""
    from hybridvoice.pki import CaImportError, import_ca  # noqa: PLC0415

    store = _store(state_dir, config)
    try:
        ca = import_ca(backup_file.read_bytes(), _passphrase(passphrase_file))
    except OSError as exc:
        raise _fail(f"cannot read {backup_file}: {exc.strerror or exc}", 2) from exc
    except CaImportError as exc:
        raise _pki_failed(exc, state_dir, config) from exc
    if store.has_ca() and store.load_ca().cert_pem != ca.cert_pem and not force:
        raise _fail(
            f"{store.directory} already has another site CA: give --force to replace it "
            "(its certificates are issued again at the next start)"
        )
    store.save_ca(ca)
    out.print(f"site CA {ca.certificate.subject.rfc4514_string()} restored in {store.directory}")


@ca_app.command("renew")
def renew(
    role: Annotated[
        str | None, typer.Argument(help="The certificate to renew (default: every one)")
    ] = None,
    ca: Annotated[
        bool, typer.Option("--ca", help="Update-CcCertificationAuthority: renew the CA itself")
    ] = False,
    state_dir: StateDir = None,
    config: Config = None,
    appliance: Remote = None,
) -> None:
    """Renew-CcServerCertificate: a new key and certificate, same names, next generation. A
    running up presents it on its next handshakes; calls in progress go on."""
    from hybridvoice.pki import PkiError  # noqa: PLC0415

    from .ca_ops import renew_certificates  # noqa: PLC0415

    if appliance is not None:
        from .cli_ca_remote import renew_remote  # noqa: PLC0415

        renewed = renew_remote(appliance, role, ca)
    else:
        store = _store(state_dir, config)
        try:
            renewed = renew_certificates(store, _now(), name=role, ca=ca)
        except PkiError as exc:
            if not store.has_ca():
                raise _pki_failed(exc, state_dir, config) from exc
            raise _fail(str(exc)) from exc
    for r in renewed:
        if r.name == "ca":
            out.print(f"site CA renewed, valid until {r.not_after:%Y-%m-%d}")
        else:
            out.print(
                f"{r.name}: renewed, generation {r.generation}, valid until {r.not_after:%Y-%m-%d}"
            )


@ca_app.command("status")
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
    state_dir: StateDir = None,
    config: Config = None,
    appliance: Remote = None,
) -> None:
    """Every certificate of the site PKI, soonest expiry first, with its days left; warns
    30 days before one expires. Exit 1 when one has expired."""
    from hybridvoice.pki import WARN_DAYS, expiry_report  # noqa: PLC0415

    if appliance is not None:
        from .cli_ca_remote import status_remote  # noqa: PLC0415

        where, report = status_remote(appliance)
    else:
        store = _store(state_dir, config)
        if not store.has_ca():
            from hybridvoice.pki import NoSiteCaError  # noqa: PLC0415

            missing = NoSiteCaError(f"no site CA in {store.directory}")
            raise _pki_failed(missing, state_dir, config)
        where, report = str(store.directory), expiry_report(store.certificates(), _now())
    if as_json:
        rows = [
            {"name": e.name, "subject": e.subject, "not_after": e.not_after.isoformat(),
             "days_left": e.days_left, "warn": e.warn}
            for e in report
        ]  # fmt: skip
        out.print_json(json.dumps(rows))
    else:
        table = Table(title=f"site PKI in {where}")
        for column in ("certificate", "subject", "expires", "days left"):
            table.add_column(column)
        for e in report:
            left = str(e.days_left)
            table.add_row(e.name, e.subject, f"{e.not_after:%Y-%m-%d}",
                          f"[yellow]{left}[/yellow]" if e.warn else left)  # fmt: skip
        out.print(table)
        for e in report:
            if e.warn:
                what = "expired" if e.expired else f"expires in {e.days_left} days"
                err.print(
                    f"[yellow]warning:[/yellow] {e.name} {what} (warning at {WARN_DAYS}): "
                    f"hybridvoice ca renew{' --ca' if e.name == 'ca' else ''}",
                    highlight=False,
                )
    if any(e.expired for e in report):
        raise typer.Exit(1)


@ca_app.command("issue-gateway")
def issue_gateway(
    output: Annotated[
        Path, typer.Option("--out", help="Write key, certificate and chain here (PEM, 0600)")
    ],
    fqdn: Annotated[
        list[str] | None, typer.Option(help="A DNS name of the gateway (repeat for more)")
    ] = None,
    ip: Annotated[list[str] | None, typer.Option(help="An IP address of the gateway")] = None,
    csr: Annotated[
        Path | None,
        typer.Option(help="The gateway's own certificate request (PEM): its key stays there"),
    ] = None,
    state_dir: StateDir = None,
    config: Config = None,
) -> None:
    """A gateway certificate from the site CA (2 years, serverAuth and clientAuth), for a
    gateway that speaks TLS or MTLS with the mediation role. Give the gateway this file and
    the site root (hybridvoice ca export-root)."""
    from hybridvoice.pki import PkiError, issue_from_csr, issue_server  # noqa: PLC0415

    if not fqdn and not ip and csr is None:
        raise _fail("give --fqdn (the gateway's FQDN, checked by RFC 5922) or --ip, or --csr", 2)
    store, now = _store(state_dir, config), _now()
    try:
        site_ca = store.load_ca()
        if csr is not None:
            credential = issue_from_csr(site_ca, csr.read_bytes(), now)
            data = credential.full_chain_pem
        else:
            first = (fqdn or ip or ["gateway"])[0]
            credential = issue_server(site_ca, first, now, dns_names=fqdn or (), ips=ip or ())
            data = credential.bundle_pem
    except OSError as exc:
        raise _fail(f"cannot read {csr}: {exc.strerror or exc}", 2) from exc
    except (PkiError, ValueError) as exc:
        raise _pki_failed(exc, state_dir, config) from exc
    output.write_bytes(data)
    output.chmod(0o600)
    names = ", ".join([*credential.dns_names, *map(str, credential.ip_addresses)])
    out.print(
        f"gateway certificate for {names} written to {output}, valid until "
        f"{credential.not_after:%Y-%m-%d}; the gateway trusts the site root: "
        "hybridvoice ca export-root",
        highlight=False,
    )


def register_ca_commands(app: typer.Typer) -> None:
    """Add ``ca`` to the ``hybridvoice`` command."""
    app.add_typer(ca_app, name="ca")
