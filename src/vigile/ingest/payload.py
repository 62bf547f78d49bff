"""Whether each side of a connection sent payload: ``conn.orig_payload``/``resp_payload``.

Every detector that asks "was this connection answered?" (role inference, long
connections, threat intel, role violations, beacon's answered share, scan) reads
these two columns; they are derived here, once, at ingest:

* **Payload counts known** (Zeek, the pcap reader, any reader that fills
  ``orig_bytes``/``resp_bytes``): a side sent payload when its count is above 0
  (null count, null answer). :func:`vigile.schema.conform` derives it for every
  batch that has the counts and not the columns (``Column.positive_of``), so no
  reader needs to.
* **IP bytes and packets only** (NetFlow v5/v9/IPFIX, nfcapd files, Suricata EVE):
  a side sent payload when its bytes exceed what its packets' headers account for
  (:func:`from_ip_bytes`). UDP headers have a fixed size (8 bytes, RFC 768), so the
  rule is exact there. TCP headers vary with their options: each packet is allowed
  :data:`TCP_HEADER_BYTES` (the 20 fixed bytes and 20 of options: the SYN and SYN/ACK
  of Linux and macOS carry MSS, SACK-permitted, timestamps and window scale, 20
  bytes; a later segment's timestamps take 12), above an IPv4 header of 20 bytes or an
  IPv6 header of 40. A record of one direction gets the answer for its own side; the
  responder's side comes from its partner record, paired by
  :mod:`vigile.ingest.flowstate` (see :func:`~vigile.ingest.flowstate.conn_payload`).
* **Cannot be told** (a one-direction record with no partner, the responder's record
  of a pair where it is kept as a row (EVE ``netflow`` events; the NetFlow readers
  merge it into its originator's row), protocols other than TCP and UDP without
  payload counts): null.

Byte counts: softflowd and nfdump's ``nfpcapd`` count IP bytes (measured: equal to
the pcap reader's ``*_ip_bytes`` on the shared captures); Suricata counts whole
captured frames (``GET_PKT_LEN``), 14 more per packet on Ethernet
(:data:`EVE_FRAMING`), none on raw-IP captures. softflowd and Suricata also count
Ethernet's padding of short frames (up to 6 bytes on a bare TCP segment, within the
TCP allowance; a padded UDP datagram of under 18 payload bytes counts as payload,
which it is unless empty).

Why this bound, and not the bound of the headers' maxima (60 bytes of IP header, 60
of TCP, 26 of link framing: 146 per packet, which no probe can exceed however many
options it carries)? Measured against the pcap reader's payload counts on the shared
captures (docs/detections.md, "Payload from IP bytes"): the maxima miss 45 % of the
TCP sides that sent payload (a server's small answers spread over many packets), so a
host answering small responses would never be a server, and they gained nothing in
precision (the few sides wrongly counted are the same under both bounds). The
allowance used errs only when a side's packets carry more than 20 option bytes on
average without payload: SACK blocks on a lossy receiver, MPTCP options, IP options,
and on EVE a link header longer than Ethernet's (802.1Q, Linux cooked capture) under
a SYN/ACK that already carries 20 option bytes. For ``scan`` that means a failed
attempt of that kind counts as a session with data (not a probe); a side that sent
only SYNs (flags without ACK) never does, and no scanner's probes (nmap: at most 20
option bytes; masscan, zmap: fewer) reach the allowance.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

#: Bytes a TCP header without payload is allowed per packet: 20 fixed, 20 of options.
TCP_HEADER_BYTES = 40
#: Bytes of a UDP header (RFC 768).
UDP_HEADER_BYTES = 8
#: Fixed IP header bytes: IPv4 without options (RFC 791), IPv6 (RFC 8200).
IPV4_HEADER_BYTES, IPV6_HEADER_BYTES = 20, 40
#: Link-layer bytes Suricata counts with each packet (Ethernet's 14; measured).
EVE_FRAMING = 14
#: Link-layer bytes NetFlow exporters count: none, they count IP bytes.
NETFLOW_FRAMING = 0
TCP, UDP = 6, 17
ACK = 0x10


def from_ip_bytes(
    ip_bytes: np.ndarray,
    pkts: np.ndarray,
    proto: np.ndarray,
    ipv6: np.ndarray,
    framing: int,
    flags: np.ndarray | None = None,
) -> np.ndarray:
    """Payload sent by one side of each record, from its IP bytes and packets.

    Arrays of one length; ``ip_bytes``, ``pkts`` and ``flags`` (the side's ORed TCP
    flags) hold -1 where unknown (flags 0 count as unknown too). Returns int8: 1
    payload, 0 none, -1 cannot be told (unknown counters, or a protocol other than
    TCP and UDP). A TCP side whose flags are known and lack ACK sent no payload
    whatever its bytes: once a connection is synchronized every segment carries ACK
    (RFC 9293 §3.10.7.4), so such a side sent only SYNs or RSTs (a SYN's data, TCP
    Fast Open, is no answer either), and a SYN-only probe never counts as data on a
    link whose framing exceeds the allowance.

    >>> import numpy as np
    >>> from_ip_bytes(np.array([60, 120, 52, -1, 500]), np.array([1, 2, 1, -1, 1]),
    ...     np.array([6, 6, 17, 6, 6]), np.zeros(5, bool), 0,
    ...     np.array([2, 0x12, -1, -1, 0x04])).tolist()
    [0, 0, 1, -1, 0]
    """
    ip_header = np.where(ipv6, IPV6_HEADER_BYTES, IPV4_HEADER_BYTES)
    transport = np.where(proto == TCP, TCP_HEADER_BYTES, UDP_HEADER_BYTES)
    allowed = pkts * (ip_header + transport + framing)
    sent = ip_bytes > allowed
    if flags is not None:
        # Zero flags are taken as unknown: some exporters send 0 where they keep none.
        sent &= ~((proto == TCP) & (flags > 0) & (flags & ACK == 0))
    sent = sent.astype(np.int8)
    known = (ip_bytes >= 0) & (pkts >= 0) & ((proto == TCP) | (proto == UDP))
    return np.where(known, sent, np.int8(-1)).astype(np.int8)


def as_arrow(values: np.ndarray) -> pa.Array:
    """An int8 answer of :func:`from_ip_bytes` as a boolean Arrow array (-1: null)."""
    return pa.array(values == 1, mask=values < 0)
