"""What ``hybridvoice appliance join`` does (the command's options are in
:mod:`.cli_appliance_serve`): make a site on etcd (``--new-site``) or join one, in the state
directory ``appliance serve`` then runs from (:mod:`.site_join`)."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Sequence
from pathlib import Path

from hybridvoice.cms.settings import Settings, SettingsError, load_settings
from hybridvoice.cms.site_secret import JoinTokenError, WrongTokenError
from hybridvoice.pki import PkiError, PkiStore
from hybridvoice.store.kv import StoreError

from .cli_admin import fail, out
from .site_join import (
    Joined,
    JoinError,
    create_site,
    issue_own,
    join_site,
    settings_file,
    take_site,
)
from .site_link import SiteConfig, open_site_store

__all__ = ["run_join"]


def _settings(path: Path) -> Settings:
    try:
        return load_settings(path)
    except SettingsError as exc:
        fail(f"{path}: settings refused", "\n".join(f"  {p}" for p in exc.problems), 2)


def _state_dir(given: Path | None, settings: Settings) -> Path:
    if given is not None:
        return given
    import platformdirs  # noqa: PLC0415 - keep the CLI's start fast

    from .appliance_serve import appliance_state_dir  # noqa: PLC0415

    root = Path(platformdirs.user_data_dir("hybridvoice", appauthor=False))
    configured = settings.management.state_directory
    return Path(configured) if configured else appliance_state_dir(settings, root)


def _parse_text(text: str) -> Settings:
    with tempfile.NamedTemporaryFile("w", suffix=".toml") as handle:
        handle.write(text)
        handle.flush()
        return _settings(Path(handle.name))


def run_join(
    etcd: Sequence[str],
    token: str | None,
    *,
    new_site: bool,
    config: Path | None,
    state_dir: Path | None,
) -> None:
    hint = "Check the etcd members (--etcd host:port, one per member) and that they have quorum."
    try:
        if new_site:
            _new_site(etcd, config, state_dir)
        else:
            _join(etcd, token, config, state_dir)
    except (JoinTokenError, WrongTokenError) as exc:
        fail(f"join refused: {exc}", "Nothing was written. Use the token `appliance join "
             "--new-site` printed for this site.")  # fmt: skip
    except JoinError as exc:
        fail(f"join refused: {exc}", None)
    except StoreError as exc:
        fail(f"site store: {exc}", hint)
    except (PkiError, OSError) as exc:
        fail(f"cannot keep the site's certificates: {exc}", None)


def _new_site(etcd: Sequence[str], config: Path | None, given: Path | None) -> None:
    if config is None:
        fail("--new-site needs --config: the settings of the site's first appliance", None, 2)
    settings = _settings(config)
    state = _state_dir(given, settings)
    pki = PkiStore(state / "pki")

    async def make() -> str:
        store = open_site_store(etcd)
        try:
            return await create_site(store, settings, config.read_text("utf-8"), pki)
        finally:
            await store.close()

    token = asyncio.run(make())
    issue_own(settings, pki)
    saved = SiteConfig(settings.common.site_name, tuple(etcd)).save(state)
    out.print(f"site {settings.common.site_name} made in etcd {', '.join(etcd)}; {saved}")
    out.print("join token (shown once; every appliance of the site joins with it):")
    out.print(token, markup=False, highlight=False, soft_wrap=True)
    out.print(f"next: hybridvoice appliance serve --config {config} --state-dir {state}")


def _join(etcd: Sequence[str], token: str | None, config: Path | None, given: Path | None) -> None:
    if not token:
        fail("--token is required (or $HYBRIDVOICE_JOIN_TOKEN)",
             "The site's first appliance printed it (appliance join --new-site).", 2)  # fmt: skip

    async def fetch() -> Joined:
        store = open_site_store(etcd)
        try:
            return await join_site(store, token)
        finally:
            await store.close()

    joined = asyncio.run(fetch())
    settings = _settings(config) if config is not None else _parse_text(joined.settings_text)
    if settings.common.site_name != joined.site:
        fail(f"--config: [Common] SiteName is {settings.common.site_name!r}, the token's site "
             f"is {joined.site!r}", "Join with the site's settings, or its token.", 2)  # fmt: skip
    state = _state_dir(given, settings)
    state.mkdir(parents=True, exist_ok=True)
    if config is None:
        config = settings_file(state)
        config.write_text(joined.settings_text, "utf-8")
    take_site(joined, settings, PkiStore(state / "pki"))
    SiteConfig(joined.site, tuple(etcd)).save(state)
    out.print(f"joined site {joined.site} (etcd {', '.join(etcd)}): settings and CA received, "
              f"certificate issued in {state / 'pki'}")  # fmt: skip
    out.print(f"next: hybridvoice appliance serve --config {config} --state-dir {state}")
