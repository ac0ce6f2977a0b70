"""Prometheus families of the net layer's own counters: an endpoint's SIP messages by method
and status (RFC 3261 §7.1/§7.2), what its transports dropped or refused and why, and a proxy
core's forwarding counters. Read when a registry is scraped; nothing here runs on the message
path."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from prometheus_client.metrics_core import CounterMetricFamily, Metric

from .endpoint import Endpoint
from .proxy import ProxyCounters

__all__ = ["endpoint_metrics", "proxy_metrics", "transport_metrics"]

#: (attribute of the counters object, metric name, help, label of the dict's keys)
_Tally = tuple[str, str, str, str]
#: (attribute of the counters object, metric name, help)
_Scalar = tuple[str, str, str]

_ENDPOINT_TALLIES: Final[Sequence[_Tally]] = (
    ("requests_in", "sip_requests_received", "SIP requests received, by method", "method"),
    ("requests_out", "sip_requests_sent", "SIP requests sent, by method", "method"),
    ("responses_in", "sip_responses_received", "SIP responses received, by status", "status"),
    ("responses_out", "sip_responses_sent", "SIP responses sent, by status", "status"),
)
_ENDPOINT_SCALARS: Final[Sequence[_Scalar]] = (
    ("retransmissions", "sip_retransmissions", "Requests and responses retransmitted"),
    ("stray_responses", "sip_stray_responses", "Responses matching no client transaction"),
    ("timeouts", "sip_transaction_timeouts", "Client transactions that timed out"),
    ("transport_errors", "sip_transport_errors", "Messages that failed to send"),
)
_PROXY_TALLIES: Final[Sequence[_Tally]] = (
    ("requests_forwarded", "proxy_requests_forwarded", "Requests forwarded, by method", "method"),
    ("responses_forwarded", "proxy_responses_forwarded", "Responses forwarded upstream, by status",
     "status"),
    ("local_responses", "proxy_local_responses", "Responses the proxy answered itself, by status",
     "status"),
)  # fmt: skip
_PROXY_SCALARS: Final[Sequence[_Scalar]] = tuple(
    (field, f"proxy_{field}", text)
    for field, text in (
        ("acks_forwarded", "ACKs for 2xx forwarded statelessly"),
        ("stray_forwarded", "Stray responses forwarded statelessly"),
        ("branches_cancelled", "Client branches cancelled (CANCEL sent)"),
        ("failovers", "Target groups tried after the previous one failed"),
        ("group_timeouts", "Target groups that timed out"),
        ("provisional_timeouts", "Branches with no provisional response in time"),
        ("timer_c", "Branches cancelled by Timer C (RFC 3261 16.8)"),
        ("branch_timeouts", "Branches that timed out"),
        ("branch_transport_errors", "Branches that failed with a transport error"),
        ("refused", "Requests the policy refused"),
        ("policy_errors", "Requests whose policy raised (answered 500)"),
    )
)


def _counters(
    label: str,
    sources: Iterable[tuple[str, Any]],
    tallies: Sequence[_Tally],
    scalars: Sequence[_Scalar],
) -> list[Metric]:
    """``hybridvoice_<name>_total`` families of every ``(name, counters)`` source, labelled
    ``label=name``: one per dict of tallies (plus its key's label) and one per scalar."""
    tally_families = [
        CounterMetricFamily(f"hybridvoice_{metric}", text, labels=[label, key])
        for _, metric, text, key in tallies
    ]
    scalar_families = [
        CounterMetricFamily(f"hybridvoice_{metric}", text, labels=[label])
        for _, metric, text in scalars
    ]
    for name, counters in sources:
        for family, (field, _, _, _) in zip(tally_families, tallies, strict=True):
            counts: Mapping[object, int] = getattr(counters, field)
            for key, n in sorted(counts.items()):
                family.add_metric([name, str(key)], n)
        for family, (field, _, _) in zip(scalar_families, scalars, strict=True):
            family.add_metric([name], getattr(counters, field))
    return [*tally_families, *scalar_families]


def endpoint_metrics(endpoints: Iterable[tuple[str, Endpoint]]) -> list[Metric]:
    """``hybridvoice_sip_*_total`` of every ``(name, endpoint)``, labelled ``endpoint=name``."""
    endpoints = list(endpoints)
    sources = ((name, endpoint.counters) for name, endpoint in endpoints)
    families = _counters("endpoint", sources, _ENDPOINT_TALLIES, _ENDPOINT_SCALARS)
    return [*families, *transport_metrics(endpoints)]


def transport_metrics(endpoints: Iterable[tuple[str, Endpoint]]) -> list[Metric]:
    """The transports' counters of every endpoint, summed by transport kind.

    ``hybridvoice_sip_dropped_total{endpoint, transport, reason, answered}``: every message
    received and not delivered (and every outgoing one given up), by
    :data:`~hybridvoice.net.transport.DropReason` (a fixed set); ``answered="true"`` for those
    refused with an error response (400, 505, 513...). Then the messages delivered, the
    keep-alives and the connections closed idle, so that what came in can be accounted for:
    received = delivered + dropped (+ keep-alives, which carry no message).

    ``hybridvoice_tls_refused_total{endpoint, peer, reason}``: TLS peers refused (a client
    by the listener, a server by the connecting side), by
    :data:`~hybridvoice.net.identity.RefusalReason`.
    """
    dropped = CounterMetricFamily(
        "hybridvoice_sip_dropped",
        "SIP messages dropped or refused, by reason (answered: refused with an error response)",
        labels=["endpoint", "transport", "reason", "answered"],
    )
    scalars = [
        CounterMetricFamily(f"hybridvoice_sip_{metric}", text, labels=["endpoint", "transport"])
        for _, metric, text in _TRANSPORT_SCALARS
    ]
    refused = CounterMetricFamily(
        "hybridvoice_tls_refused",
        "TLS peers refused: chain, name, certificate or version did not verify, by reason",
        labels=["endpoint", "peer", "reason"],
    )
    for name, endpoint in endpoints:
        refusals: dict[tuple[str, str], int] = {}
        for transport in endpoint.transports:
            for peer_reason, n in transport.counters.tls_refused.items():
                refusals[peer_reason] = refusals.get(peer_reason, 0) + n
        for (peer, reason), n in sorted(refusals.items()):
            refused.add_metric([name, peer, reason], n)
    for name, endpoint in endpoints:
        drops: dict[tuple[str, str, str], int] = {}
        totals: dict[tuple[str, str], int] = {}
        for transport in endpoint.transports:
            counters, kind = transport.counters, transport.kind
            for reason, n in counters.drops.items():
                answered = counters.answered.get(reason, 0)
                for flag, count in (("true", answered), ("false", n - answered)):
                    if count:
                        key = (kind, reason, flag)
                        drops[key] = drops.get(key, 0) + count
            for field, _, _ in _TRANSPORT_SCALARS:
                totals[kind, field] = totals.get((kind, field), 0) + getattr(counters, field)
        for (kind, reason, flag), n in sorted(drops.items()):
            dropped.add_metric([name, kind, reason, flag], n)
        for family, (field, _, _) in zip(scalars, _TRANSPORT_SCALARS, strict=True):
            for (kind, f), n in sorted(totals.items()):
                if f == field:
                    family.add_metric([name, kind], n)
    return [dropped, refused, *scalars]


_TRANSPORT_SCALARS: Final[Sequence[_Scalar]] = (
    ("messages_in", "messages_delivered", "SIP messages received, parsed and delivered"),
    ("keepalive_pings", "keepalives_received", "Keep-alives received (CRLF, RFC 5626)"),
    ("idle_closed", "connections_closed_idle", "TCP/TLS connections closed after idling"),
)


def proxy_metrics(proxies: Iterable[tuple[str, ProxyCounters]]) -> list[Metric]:
    """``hybridvoice_proxy_*_total`` of every ``(name, counters)``, labelled ``proxy=name``."""
    return _counters("proxy", proxies, _PROXY_TALLIES, _PROXY_SCALARS)
