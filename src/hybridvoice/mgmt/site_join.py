"""Making a site on etcd and joining appliances to it (``hybridvoice appliance join``).

``--new-site``: the first appliance writes the site into the store: its settings document
(``settings/site``: the settings file as text, what a joining appliance starts from), its
gateways (``gateway/<name>``), the site CA's key and certificate sealed with the key derived
from a new join secret (``ca/ca.pem``, :mod:`hybridvoice.cms.site_secret`) and the salt and
check value that derive it again (``ca/join``, claimed with a compare-and-swap: two founders
of one site cannot both win). The join token is printed once.

A join reads ``ca/join`` first: a wrong token fails its check and nothing is written. With the
right one it receives the settings, the CA (written to its state directory's PKI, 0600), has
the CA issue its own certificate, and saves ``site.json``: its first ``appliance serve``
follows the site and registers with the cloud.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

from hybridvoice.cms.settings import Settings
from hybridvoice.cms.site_records import decode, encode, record_key
from hybridvoice.cms.site_secret import SiteKey, new_join_token, parse_join_token
from hybridvoice.pki import PkiStore
from hybridvoice.pki.files import SECRET, write_atomic
from hybridvoice.store.kv import KeyValueStore

from .appliance_site import gateway_keys
from .site_tls import tls_names

__all__ = ["JoinError", "Joined", "create_site", "issue_own", "join_site", "settings_file",
           "take_site"]  # fmt: skip


class JoinError(ValueError):
    """The site cannot be made or joined: names the record or option and the reason."""


@dataclass(frozen=True, slots=True)
class Joined:
    site: str
    settings_text: str
    ca_pem: bytes


async def create_site(
    store: KeyValueStore, settings: Settings, settings_text: str, pki: PkiStore
) -> str:
    """Write the site of ``settings`` (CA made in ``pki`` when it has none); the join token.
    :class:`JoinError` when the store already has this site."""
    site = settings.common.site_name
    token = new_join_token(site)
    key = SiteKey.new(parse_join_token(token)[1])
    claimed = await store.put_if(record_key(site, "ca", "join"), encode(key.join_record()),
                                 mod_revision=0)  # fmt: skip
    if not claimed.succeeded:
        raise JoinError(f"site {site} exists in this etcd cluster: join it with its token "
                        "(hybridvoice appliance join --etcd ... --token SITE:SECRET)")  # fmt: skip
    ca = pki.ensure_ca(site, datetime.datetime.now(datetime.UTC))
    await store.put(record_key(site, "ca", "ca.pem"),
                    encode({"sealed": key.seal("ca.pem", ca.key_pem + ca.cert_pem)}))  # fmt: skip
    await store.put(record_key(site, "settings", "site"), encode({"toml": settings_text}))
    for gateway in settings.gateways:
        await store.put(record_key(site, "gateway", gateway.name),
                        encode(gateway_keys(settings, gateway.name)))  # fmt: skip
    return token


async def join_site(store: KeyValueStore, token: str) -> Joined:
    """The site's settings and CA for an appliance holding ``token``; JoinError (no such
    site) or WrongTokenError (not its secret) before anything is written anywhere."""
    site, secret = parse_join_token(token)
    found = await store.get(record_key(site, "ca", "join"))
    if found is None:
        raise JoinError(f"--token: there is no site {site!r} in this etcd cluster "
                        "(make it with appliance join --new-site)")  # fmt: skip
    key = SiteKey.from_join_record(secret, decode(found.key, found.value))
    ca_record = await store.get(record_key(site, "ca", "ca.pem"))
    settings_record = await store.get(record_key(site, "settings", "site"))
    if ca_record is None or settings_record is None:
        raise JoinError(f"site {site}: its CA or settings are missing from the store")
    ca_pem = key.open("ca.pem", decode(ca_record.key, ca_record.value).get("sealed"))
    text = decode(settings_record.key, settings_record.value).get("toml")
    if not isinstance(text, str):
        raise JoinError(f"site {site}: settings/site holds no settings document")
    return Joined(site, text, ca_pem)


def take_site(joined: Joined, settings: Settings, pki: PkiStore) -> None:
    """Keep the site CA in ``pki`` and have it issue this appliance's certificate (the names
    and addresses of ``settings``)."""
    pki.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_atomic(pki.ca_path, joined.ca_pem, SECRET)
    pki.save_ca(pki.load_ca())  # the root alone too (root.pem), as a site CA made here has
    issue_own(settings, pki)


def issue_own(settings: Settings, pki: PkiStore) -> None:
    """The site CA of ``pki`` issues this appliance's certificate (``appliance``: the names
    and addresses of ``settings``)."""
    dns, ips = tls_names(settings)["appliance"]
    now = datetime.datetime.now(datetime.UTC)
    pki.ensure_server(pki.load_ca(), "appliance", now, dns_names=dns, ips=ips)


def settings_file(state_dir: Path) -> Path:
    """Where a join without ``--config`` writes the site's settings for ``serve``."""
    return state_dir / "appliance.toml"
