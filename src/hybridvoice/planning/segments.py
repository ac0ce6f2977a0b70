"""The network segments a call's traffic crosses, and the two kinds of traffic.

Seed 002 ("call flows with ExpressRoute") divides every call flow into four network segments,
each run by a different organisation: the customer's own network, the internet, a private
peering link to the cloud (ExpressRoute), and the cloud provider's network. Traffic is of two
kinds: real-time media (RTP, preferably over UDP) and signalling (SIP, and HTTP(S)).

Pure data and one pure function: no I/O.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Segment", "Traffic", "crossing"]


class Segment(StrEnum):
    """A network segment, in the order a diagram draws them (customer first, cloud last)."""

    CUSTOMER = "customer"  # the customer's network (offices, DMZ, local data centres, WAN)
    INTERNET = "internet"
    PEERING = "peering"  # a private peering link to the cloud (ExpressRoute)
    CLOUD = "cloud"  # the cloud provider's network


class Traffic(StrEnum):
    """The two kinds of traffic of seed 002."""

    SIGNALLING = "signalling"  # SIP and HTTP(S)
    MEDIA = "media"  # RTP, preferably over UDP


def crossing(source: Segment, target: Segment, *, peering: bool) -> tuple[Segment, ...]:
    """The segments a packet crosses from an endpoint in `source` to one in `target`, in order.

    CUSTOMER->CLOUD crosses the peering link when the customer has one, else the internet;
    an endpoint on the internet reaches either side over the internet only (the peering link
    carries only the customer's own network); both ends in one segment: that segment alone.

    >>> crossing(Segment.CUSTOMER, Segment.CLOUD, peering=True)
    (<Segment.CUSTOMER: 'customer'>, <Segment.PEERING: 'peering'>, <Segment.CLOUD: 'cloud'>)
    """
    if source is target:
        return (source,)
    ends = {source, target}
    if ends == {Segment.CUSTOMER, Segment.CLOUD}:
        middle = Segment.PEERING if peering else Segment.INTERNET
        return (source, middle, target)
    if Segment.PEERING in ends:
        # An endpoint "in" the peering link: it sits between the customer and the cloud.
        other = target if source is Segment.PEERING else source
        if other is Segment.INTERNET:
            raise ValueError("no path between the internet and the peering link")
        return (source, target)
    # The internet borders the customer network and the cloud directly.
    return (source, target)
