"""`hybridvoice ca` tells what to type next, never only what to do: without a site CA every
command names the `up` that makes it (with the options given) and the backup/restore that
copies it; a damaged CA file names `ca restore`; a backup that does not open names `ca
backup` (the class of hints that said "create one on the site's first appliance")."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hybridvoice.cli import app
from hybridvoice.pki import PkiStore

RUNNER = CliRunner()


def ca(*args: str) -> tuple[int, str]:
    """Exit code and stderr without any whitespace: rich wraps long lines, breaking a long
    path anywhere (where depends on the temporary directory's length)."""
    result = RUNNER.invoke(app, ["ca", *args])
    return result.exit_code, squash(result.stderr)


def squash(text: str) -> str:
    return "".join(text.split())


COMMANDS = {
    "export-root": [],
    "backup": ["--output", "{tmp}/b.p12", "--passphrase-file", "{tmp}/pass"],
    "renew": [],
    "renew --ca": ["--ca"],
    "status": [],
    "issue-gateway": ["--fqdn", "sbc1.contoso.com", "--out", "{tmp}/gw.pem"],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_without_a_site_ca_every_command_names_what_makes_it(tmp_path: Path, command: str) -> None:
    (tmp_path / "pass").write_text("a long passphrase\n")
    state = tmp_path / "state"
    args = [a.format(tmp=tmp_path) for a in COMMANDS[command]]
    code, err = ca(command.split(maxsplit=1)[0], *args, "--state-dir", str(state))
    assert code == 1
    assert squash(f"no site CA in {state / 'pki'}") in err
    assert squash(f"hybridvoice up --config SETTINGS.toml --state-dir {state}") in err
    assert squash("hybridvoice ca backup --output site-ca.p12 --passphrase-file PASSFILE") in err
    assert squash(f"hybridvoice ca restore site-ca.p12 --passphrase-file PASSFILE --state-dir "
                  f"{state}") in err  # fmt: skip


def test_a_damaged_ca_names_the_restore(tmp_path: Path) -> None:
    store = PkiStore(tmp_path / "state" / "pki")
    store.ensure_ca("AMS", datetime.datetime.now(datetime.UTC))
    store.ca_path.write_text("not a CA\n")
    code, err = ca("export-root", "--state-dir", str(tmp_path / "state"))
    assert code == 1 and squash("is damaged") in err
    assert squash("hybridvoice ca restore site-ca.p12 --passphrase-file PASSFILE --force") in err


def test_a_backup_that_does_not_open_names_the_backup_command(tmp_path: Path) -> None:
    (tmp_path / "pass").write_text("a long passphrase\n")
    (tmp_path / "b.p12").write_bytes(b"not pkcs12")
    code, err = ca("restore", str(tmp_path / "b.p12"), "--passphrase-file",
                   str(tmp_path / "pass"), "--state-dir", str(tmp_path / "state"))  # fmt: skip
    assert code == 1
    assert squash("hybridvoice ca backup --output site-ca.p12 --passphrase-file PASSFILE") in err
