"""Call traces: a per-call SIP capture (:mod:`.capture`), its export as a pcap file
(:mod:`.pcap`) and as HEPv3 packets for a Homer collector (:mod:`.hep`).

A sans-IO core like ``sip`` and ``media``: bytes, addresses and times in, bytes out; the
transports feed it through a tap the assembly wires (:mod:`hybridvoice.net.trace_tap`).
"""
