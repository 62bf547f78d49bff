"""Packet capture parsing, split by layer and written for whole arrays of packets.

Passes, in the order :mod:`vigile.ingest.pcap` runs them on each chunk of packets:

1. :mod:`.pcapfile` and :mod:`.pcapng` frame records into NumPy arrays (offsets, lengths,
   timestamps, link types; see :mod:`.records`) and stop with a
   :class:`.records.Damage` at the first byte that cannot be framed;
2. :mod:`.decode` decodes link, IP (with extension headers and tunnels) and
   transport headers for all packets at once with NumPy;
3. :mod:`.flows` groups packets into bidirectional flows with Zeek semantics and
   carries the active flows over to the next chunk;
4. :mod:`.meta` picks the few payloads that carry metadata; :mod:`.dnsbatch` reads
   the DNS questions of all of them at once, and :mod:`.dns`, :mod:`.http` and
   :mod:`.tls` parse the rest one packet at a time in Python.

Hand-written rather than on dpkt or scapy: those build Python objects for every
header of every packet; the plain dpkt loop of ``bench/pcap.py`` is measured beside
this code in docs/benchmarks.md.
"""
