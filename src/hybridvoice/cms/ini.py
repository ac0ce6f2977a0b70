"""Import a Cloud Connector Edition ``CloudConnector.ini`` into hybridvoice settings that
``hybridvoice up`` starts on one host.

The file is read with :mod:`configparser` (keys keep their case, no interpolation, no inline
comments: a route regex may hold ``;`` or ``%``). Every key of ``[Common]``,
``[MediationServer]``, ``[EdgeServer]``, ``[GatewayN]``, ``[HybridVoiceRoutes]`` and
``[TrunkConfiguration]`` that hybridvoice has a setting for is mapped (key names compared
without regard to case). Nothing is dropped without a word:

- a trunk key written in another section (``ForwardPAI`` under ``[Common]``, a common
  mistake) goes to ``[TrunkConfiguration]``, a per-gateway key written outside a gateway goes
  to every gateway that does not set it; each with a note (the section's own value wins);
- a key given twice (two sections that map to one) keeps the later value, with a note;
- everything else (the ``[Network]`` and ``[PrimaryCMS]`` VM plumbing, update server keys,
  unknown keys, empty routes) is returned as ``Section.Key`` in ``unmapped``.

The original ran each role on its own VM with fixed ports (docs/reference.md, "Ports"): the
edge's two sides and the mediation role's edge side all on 5061, the gateway side on
5068/5067, the bypass service on 80. On one host these clash, so the import writes those
ports and then separates every pair of listeners on one address (all roles, IP, port and
port space: :func:`hybridvoice.cms.settings.listeners`), moving the later one to a free
well-known alternative, and moves ports below 1024 (the bypass service's 80) up. The hops
between the roles (online <-> edge, edge <-> mediation) keep the original's MTLS (RFC 5630
§3): ``hybridvoice up`` makes the site CA at its first start and issues the roles'
certificates (``docs/pki.md``), as the original's deployment did. Every change is an
:class:`ImportNote` (key, old value, new value, why) that ``hybridvoice init`` writes into the
file.

The result is validated like a TOML settings file: :class:`SettingsError` lists every problem.
"""

from __future__ import annotations

import configparser
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from pydantic import BaseModel

from .settings import (
    PRIVILEGED_PORTS,
    Common,
    EdgeServer,
    Gateway,
    Listener,
    MediationServer,
    Problem,
    Settings,
    SettingsError,
    TrunkConfiguration,
    ini_key,
    listener_clashes,
    listeners,
    parse_settings,
)

__all__ = ["ImportNote", "IniImport", "import_ini"]

_NO_DEFAULT: Final = "\x00no default section"


@dataclass(frozen=True, slots=True)
class ImportNote:
    """One change the import made: the settings key, the value before and after, and why."""

    key: str  # dotted: "EdgeServer.InternalPort"
    old: str
    new: str
    why: str

    def __str__(self) -> str:
        return f"{self.key}: {self.old} -> {self.new}: {self.why}"


@dataclass(frozen=True, slots=True)
class IniImport:
    """What :func:`import_ini` makes of a CloudConnector.ini."""

    settings: Settings
    #: ``Section.Key`` of every ini key that has no hybridvoice setting
    unmapped: tuple[str, ...]
    #: every value the import moved, switched or put elsewhere, with the reason
    notes: tuple[ImportNote, ...]


def _keys(model: type[BaseModel], *, skip: tuple[str, ...] = ()) -> dict[str, str]:
    """lower-case key -> the settings key, for every field of ``model``."""
    keys = (ini_key(name) for name in model.model_fields if name not in skip)
    return {key.lower(): key for key in keys}


_SECTIONS: Final[Mapping[str, dict[str, str]]] = {
    "Common": _keys(Common),
    "MediationServer": _keys(MediationServer),
    "EdgeServer": _keys(EdgeServer),
    "TrunkConfiguration": _keys(TrunkConfiguration),
}
_GATEWAY_KEYS: Final = _keys(Gateway, skip=("name",))
_TRUNK_KEYS: Final = _SECTIONS["TrunkConfiguration"]

#: the original's fixed per-role ports (each role on its own VM), written when the ini does
#: not set them: the separation below then moves what clashes on one host
_CCE_PORTS: Final[Mapping[tuple[str, str], int]] = {
    ("EdgeServer", "ExternalSIPPort"): 5061,
    ("EdgeServer", "InternalPort"): 5061,
    ("MediationServer", "InternalPort"): 5061,
    ("MediationServer", "TCPPort"): 5068,
    ("MediationServer", "TLSPort"): 5067,
    ("MediationServer", "BypassServicePort"): 80,
    ("Online", "SIPPort"): 5061,  # the online service's federation edge (sipfed...:5061)
}
#: first choices when a listener must move (the ports `hybridvoice init` gives a lab), then
#: the rest of the SIP (5060-5099) or HTTP (8470-8499) neighbourhood, then anything upward
_PREFERRED: Final[Mapping[str, int]] = {
    "Online.SIPPort": 5060,
    "EdgeServer.InternalPort": 5071,
    "MediationServer.InternalPort": 5062,
    "MediationServer.UDPPort": 5069,
    "Online.ServiceURL": 8470,
    "MediationServer.BypassServicePort": 8471,
    "Management.Port": 8472,
    "MediaRelay.TCPPort": 3478,  # TURN over TCP beside UDP 3478 (RFC 8656 §3.1)
    "MediaRelay.MRASPort": 8474,
}
_SIP_PORTS: Final = range(5060, 5100)
_HTTP_PORTS: Final = range(8470, 8500)


def _section_name(name: str) -> str | None:
    """The settings section an ini section maps to (``gateway2`` -> ``Gateway2``), or None."""
    lowered = name.lower()
    for known in (*_SECTIONS, "HybridVoiceRoutes"):
        if lowered == known.lower():
            return known
    if lowered.startswith("gateway") and lowered[7:].isdigit():
        return f"Gateway{int(lowered[7:])}"
    return None


def _read(text: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(
        interpolation=None, default_section=_NO_DEFAULT, strict=True, delimiters=("=",)
    )
    parser.optionxform = str  # type: ignore[assignment, method-assign]  # keep the keys' case
    try:
        parser.read_string(text, source="CloudConnector.ini")
    except configparser.Error as exc:
        raise SettingsError([Problem("CloudConnector.ini", f"not an ini file: {exc}")]) from None
    return parser


class _Mapper:
    """Ini sections -> the raw settings document, recording what went where."""

    def __init__(self) -> None:
        self.raw: dict[str, dict[str, Any]] = {}
        self.unmapped: list[str] = []
        self.notes: list[ImportNote] = []
        #: (ini section, settings key, value) written where they do not belong
        self.misplaced: list[tuple[str, str, str]] = []

    def section(self, section: str, values: Mapping[str, str]) -> None:
        target = _section_name(section)
        if target is None:
            self.unmapped += [f"{section}.{key}" for key in values]
            return
        out = self.raw.setdefault(target, {})
        if target == "HybridVoiceRoutes":
            for key, value in values.items():
                if value.strip():
                    self._put(out, target, key, value, section)
                else:
                    self.unmapped.append(f"{section}.{key}")  # a route with no pattern
            return
        known = _GATEWAY_KEYS if target.startswith("Gateway") else _SECTIONS[target]
        for key, value in values.items():
            mapped = known.get(key.lower())
            elsewhere = _TRUNK_KEYS.get(key.lower()) or _GATEWAY_KEYS.get(key.lower())
            if mapped is not None:
                if value.strip():
                    self._put(out, target, mapped, value.strip(), section)
            elif elsewhere is not None and value.strip():
                self.misplaced.append((section, elsewhere, value.strip()))
            else:
                self.unmapped.append(f"{section}.{key}")

    def _put(self, out: dict[str, Any], target: str, key: str, value: str, section: str) -> None:
        if key in out and out[key] != value:
            why = f"set twice; the later one ([{section}]) is kept"
            self.notes.append(ImportNote(f"{target}.{key}", out[key], value, why))
        out[key] = value

    def place_misplaced(self) -> None:
        """Trunk keys to ``[TrunkConfiguration]``, gateway keys to every gateway; a value the
        right section sets itself wins."""
        for section, key, value in self.misplaced:
            if key.lower() in _TRUNK_KEYS:
                targets, kind = ["TrunkConfiguration"], "a [TrunkConfiguration] key"
            else:
                targets = [name for name in self.raw if name.startswith("Gateway")]
                kind = "a per-gateway key, applied to each gateway that does not set it"
            for target in targets:
                out = self.raw.setdefault(target, {})
                if key in out:
                    why = f"written under [{section}] too; [{target}] sets it, so that one is kept"
                    self.notes.append(ImportNote(f"{section}.{key}", value, out[key], why))
                    continue
                out[key] = value
                why = f"written under [{section}] ({kind}): carried over here"
                self.notes.append(ImportNote(f"{target}.{key}", "unset", value, why))
            if not targets:
                self.unmapped.append(f"{section}.{key}")  # a gateway key, and no gateway


def import_ini(text: str) -> IniImport:
    """Parse CloudConnector.ini ``text`` into settings that start on one host.

    Raises ``SettingsError`` when the file is not an ini file or the mapped values are
    invalid (keys named as in the ini file).
    """
    parser = _read(text)
    mapper = _Mapper()
    for section in parser.sections():
        mapper.section(section, parser[section])
    mapper.place_misplaced()
    raw, notes = mapper.raw, mapper.notes
    for (section, key), port in _CCE_PORTS.items():
        raw.setdefault(section, {}).setdefault(key, port)
    notes += _separate(raw)
    return IniImport(parse_settings(raw), tuple(mapper.unmapped), tuple(notes))


def _separate(raw: dict[str, dict[str, Any]]) -> list[ImportNote]:
    """Move every listener that shares an address with an earlier one, or needs privilege,
    to a free port; the same input always gives the same moves."""
    settings = parse_settings(raw, cross_checked=False)
    found = listeners(settings)
    kept: list[Listener] = []
    notes: list[ImportNote] = []
    for key in dict.fromkeys(x.key for x in found):  # a key may listen twice (UDP and TCP)
        group = [x for x in found if x.key == key]
        port = group[0].port
        why = _why_move(group, kept)
        if why is not None:
            port = _free_port(key, group, kept, found)
            old, new = _set_port(raw, key, port)
            notes.append(ImportNote(key, old, new, why))
        kept += [Listener(x.key, x.transport, x.host, port) for x in group]
    return notes


def _why_move(group: list[Listener], kept: list[Listener]) -> str | None:
    """Why ``group`` (the listeners of one key) cannot keep its port, or None."""
    first = group[0]
    if 0 < first.port < PRIVILEGED_PORTS:
        return (f"port {first.port} needs privilege (root or CAP_NET_BIND_SERVICE); "
                "one at 1024 or above runs as any user")  # fmt: skip
    for x in group:
        for other, _ in listener_clashes((*kept, x)):
            if other.key != x.key:
                return (f"{x} is also {other.setting}'s: the original ran each role on its "
                        "own VM, here they share one host")  # fmt: skip
    return None


def _free_port(
    key: str, group: list[Listener], kept: list[Listener], found: tuple[Listener, ...]
) -> int:
    """The first port, in order of preference, that no kept listener and no listener of the
    settings holds at the addresses of ``group``."""
    sip = group[0].transport != "HTTP"
    near: range = _SIP_PORTS if sip else _HTTP_PORTS
    preferred = _PREFERRED.get(key)
    first: list[int] = [preferred] if preferred else []
    candidates: list[int] = [*first, *near, *range(near.stop, 65536)]
    busy = [*kept, *(x for x in found if x.key != key)]
    for port in candidates:
        moved = tuple(Listener(x.key, x.transport, x.host, port) for x in group)
        if not any(listener_clashes((b, m)) for b in busy for m in moved):
            return port
    raise SettingsError([Problem(key, "no free port left to move this listener to")])


def _set_port(raw: dict[str, dict[str, Any]], key: str, port: int) -> tuple[str, str]:
    """Write ``port`` for ``key`` into ``raw``; the old and new values as written."""
    section, _, name = key.partition(".")
    values = raw.setdefault(section, {})
    if name == "ServiceURL":
        settings = parse_settings(raw, cross_checked=False)
        old = settings.online.service_url
        parts = urllib.parse.urlsplit(old)
        host = parts.hostname or "127.0.0.1"
        netloc = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        new = urllib.parse.urlunsplit(parts._replace(netloc=netloc))
        values[name] = new
        return old, new
    old_port = values.get(name)
    if old_port is None:  # not in the ini and not a CCE fixed port: the schema default
        dumped = parse_settings(raw, cross_checked=False).model_dump(by_alias=True)
        old_port = dumped[section][name]
    values[name] = port
    return str(old_port), str(port)
