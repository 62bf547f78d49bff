"""Packet capture parsing, split by layer and written for whole arrays of packets.

Passes, in the order :mod:`vigile.ingest.pcap` runs them on each chunk of packets:

1. :mod:`.pcapfile` frames pcap/pcapng records into NumPy arrays (offsets, lengths,
   timestamps, link types) and stops with a :class:`.pcapfile.Damage` at the first
   byte that cannot be framed;
2. :mod:`.decode` decodes link, IP (with extension headers and tunnels) and
   transport headers for all packets at once with NumPy;
3. :mod:`.flows` groups packets into bidirectional flows with Zeek semantics and
   carries the active flows over to the next chunk;
4. :mod:`.dns`, :mod:`.http` and :mod:`.tls` parse the few payloads that carry
   metadata, one packet at a time in Python.

Hand-written rather than dpkt or scapy: those build one Python object per packet
and run at 50-200 k packets/s, far below the ingest target (see docs/benchmarks.md).
"""
