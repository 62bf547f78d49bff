"""Packet capture parsing, split by layer and written for whole arrays of packets.

Passes, in the order :mod:`vigile.ingest.pcap` runs them on each chunk of packets:

1. :mod:`.pcapfile` and :mod:`.pcapng` frame records into NumPy arrays (offsets, lengths,
   timestamps, link types; see :mod:`.records`) and stop with a
   :class:`.records.Damage` at the first byte that cannot be framed; the pcap record
   walk is compiled (:mod:`.framing`);
2. :mod:`.decode` decodes link, IP and transport headers: the common packet in
   compiled code (:mod:`.fastpath`), anything unusual (tunnels, fragments, extension
   headers, other link types) for whole arrays at once with NumPy;
3. :mod:`.flows` adds the packets to bidirectional flows with Zeek semantics in one
   compiled pass (:mod:`.flowkernel`) and carries the active flows over to the next
   chunk;
4. :mod:`.meta` picks the payloads that carry metadata; :mod:`.dnsbatch` reads the DNS
   messages of all of them at once in compiled code (:mod:`.dnskernel`) and
   :mod:`.dnsrows` pairs them into rows; :mod:`.headkernel` reads the TLS hellos and
   HTTP heads in the common layouts, also at once; :mod:`.dns` (unusual messages),
   :mod:`.http` and :mod:`.tls` parse the rest one packet at a time in Python.

The compiled parts use numba (machine code cached in ``__pycache__`` after the first
run). Tests hold the compiled decoder, DNS reader and hello and head reader to the
NumPy decoder and the Python parsers beside them, field for field; the framing and
the flows are held to tshark, to the golden files and to reading in small chunks.

Hand-written rather than on dpkt or scapy: those build Python objects for every
header of every packet; the plain dpkt loop of ``bench/pcap.py`` is measured beside
this code in docs/benchmarks.md.
"""
