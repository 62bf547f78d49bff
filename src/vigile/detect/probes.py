"""Failed probes for ``scan``: who knocked, on which host and port, and whether it failed.

A probe is oriented from the **prober** (the side that knocked) to the **target**, not
from Zeek's originator to its responder, because Zeek (and vigile's pcap reader, which
follows it) turns flows around by a guess: a flow that starts with a SYN/ACK, or with a
packet from a likely server port (53, 5060, …) to another port, is recorded with its
first packet's *receiver* as originator (history ``^``). Scanners defeat that guess on
purpose (``nmap -g 53`` sends every probe from source port 53).

* **TCP**: a failed attempt is a connection in one of :data:`FAILED_TCP_STATES` with no
  payload either way (Zeek's ``connection_attempt``, ``connection_rejected`` and
  ``is_failed_conn``). Where a side's payload bytes are unknown (NetFlow and EVE
  give IP-level bytes and packets only), its IP bytes beyond what the packets'
  headers can hold (:data:`HEADER_BYTES_MAX` each) are payload; a one-direction
  record (``resp_pkts`` null) also looks at its responder's record, the reversed
  5-tuple without a state that :mod:`vigile.ingest.flowstate` paired it with. The
  prober is the side that sent the SYN: the originator when the history has ``S``,
  the responder when it has only ``s`` (Zeek's ``is_reverse_failed_conn``). A flow
  in which nobody sent a SYN (a lone SYN/ACK or RST: backscatter from a flooded
  server answering spoofed SYNs, or a capture that misses one direction) is no
  attempt by either side and is not counted; a source without a history (some Zeek
  field sets) keeps the originator.
* **UDP**: a probe is unanswered when only one side sent packets (Zeek state ``S0``:
  only the originator; ``SHR``: only the responder, the flipped case). The sender is
  the prober. A rejected probe is unanswered too: the target's ICMP port unreachable is
  a separate ``icmp`` flow. Traceroute's probes (UDP to ports 33434-33534, answered by
  ICMP from the routers) are not probes of their destination and are left out.

Answered UDP (both sides sent: ``SF``) is returned too, so the detector can tell a
sweep from a resolver that mostly gets answers.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from vigile.detect import HuntContext
from vigile.ingest.flowstate import PAIR_SLACK_US
from vigile.store import Pred, Window

#: The most bytes a TCP packet without payload counts for, so that IP bytes beyond
#: ``packets × HEADER_BYTES_MAX`` are payload. By the headers' own length fields: an
#: IPv4 header is at most 60 bytes (IHL, RFC 791 §3.1; IPv6's is 40, RFC 8200 §3,
#: which leaves 20 for extension headers), a TCP header at most 60 (Data Offset,
#: RFC 9293 §3.1; a SYN's MSS, SACK-permitted, timestamps and window scale take 20 of
#: its 40 option bytes, a later segment's timestamps 12). Suricata counts whole
#: captured frames, so 26 more: Ethernet 14, two 802.1Q tags 8, a kept FCS 4. The
#: maxima, not the usual sizes, so that no probe, however optioned, counts as data:
#: an exchange of a few small segments can go unseen (see docs/detections.md).
HEADER_BYTES_MAX = 60 + 60 + 26
FAILED_TCP_STATES = ("S0", "REJ", "RSTO", "RSTR", "RSTOS0", "RSTRH", "SH", "SHR", "OTH")
#: traceroute(8)'s default base port 33434, 30 hops × 3 probes and some slack.
TRACEROUTE_PORTS = (33434, 33534)
_COLUMNS = ["ts", "src", "src_port", "dst", "dst_port", "proto", "conn_state", "history"]
_COUNTERS = [f"{s}_{c}" for s in ("orig", "resp") for c in ("bytes", "ip_bytes", "pkts")]


def failed_probes(ctx: HuntContext, window: Window, interval: timedelta) -> pa.Table:
    """Failed TCP attempts and unanswered UDP probes in ``window``, prober first.

    Columns ``ts, src`` (prober), ``dst`` (target), ``dst_port`` (probed port),
    ``proto`` and ``epoch`` (the start of its ``interval`` slice).
    """
    tcp = ctx.store.scan(
        "conn",
        [*_COLUMNS, *_COUNTERS],
        window=window,
        where=[Pred("proto", "=", "tcp"), Pred("conn_state", "in", list(FAILED_TCP_STATES))],
    )
    carried = pc.or_(_payload(tcp, "orig"), _payload(tcp, "resp"))
    tcp = tcp.filter(pc.invert(pc.or_(carried, _answered_apart(ctx, window, tcp, carried))))
    history = pc.fill_null(tcp["history"], "S")
    by_orig = pc.match_substring(history, "S")
    by_resp = pc.and_(pc.invert(by_orig), pc.match_substring(history, "s"))
    udp = ctx.store.scan(
        "conn",
        _COLUMNS,
        window=window,
        where=[Pred("proto", "=", "udp"), Pred("conn_state", "in", ["S0", "SHR"])],
    )
    parts = [
        _oriented(tcp.filter(by_orig), reverse=False),
        _oriented(tcp.filter(by_resp), reverse=True),
        _oriented(udp.filter(pc.equal(udp["conn_state"], "S0")), reverse=False),
        _oriented(udp.filter(pc.equal(udp["conn_state"], "SHR")), reverse=True),
    ]
    probes = pa.concat_tables(parts)
    port = probes["dst_port"]
    traceroute = pc.and_(
        pc.equal(probes["proto"], "udp"),
        pc.and_(
            pc.greater_equal(port, TRACEROUTE_PORTS[0]),
            pc.less_equal(port, TRACEROUTE_PORTS[1]),
        ),
    )
    probes = probes.filter(pc.and_(pc.is_valid(port), pc.invert(pc.fill_null(traceroute, False))))
    return _with_epoch(probes, interval)


def _payload(t: pa.Table, side: str) -> pa.ChunkedArray:
    """Whether ``side`` (``orig``/``resp``) sent payload: its payload bytes where known,
    else IP bytes the packets' headers cannot account for; False when neither is known.
    """
    told = pc.greater(t[f"{side}_bytes"], 0)
    headers = pc.multiply(t[f"{side}_pkts"], HEADER_BYTES_MAX)
    return pc.fill_null(pc.coalesce(told, pc.greater(t[f"{side}_ip_bytes"], headers)), False)


def _answered_apart(
    ctx: HuntContext, window: Window, tcp: pa.Table, carried: pa.ChunkedArray
) -> pa.Array:
    """Which one-direction records (``resp_pkts`` null) the responder answered with
    payload in its own record: the reversed 5-tuple with no state (the pairing gives
    the originator's record the state, the responder's none), starting within
    :data:`~vigile.ingest.flowstate.PAIR_SLACK_US` of it.
    """
    one_way = pc.and_(pc.is_null(tcp["resp_pkts"]), pc.invert(carried))
    found = np.zeros(tcp.num_rows, bool)
    if not pc.any(one_way).as_py():
        return pa.array(found)
    rows = pa.array(np.flatnonzero(one_way.to_numpy(zero_copy_only=False)))
    mine = _keyed(tcp.take(rows)).append_column("row", rows)
    theirs = ctx.store.scan(
        "conn",
        ["ts", "src", "src_port", "dst", "dst_port", *_COUNTERS],
        window=window,
        where=[
            Pred("proto", "=", "tcp"),
            Pred("conn_state", "is null"),
            Pred("src", "in", pc.unique(mine["dst"])),
            Pred("dst", "in", pc.unique(mine["src"])),
        ],
    )
    theirs = theirs.filter(_payload(theirs, "orig"))
    if not theirs.num_rows:
        return pa.array(found)
    theirs = _keyed(theirs).rename_columns(["ts_r", "dst", "dst_port", "src", "src_port"])
    pairs = mine.join(theirs, ["src", "src_port", "dst", "dst_port"], join_type="inner")
    apart = pc.abs(pc.subtract(pairs["ts_r"].cast(pa.int64()), pairs["ts"].cast(pa.int64())))
    near = pairs.filter(pc.less_equal(apart, PAIR_SLACK_US))
    found[near["row"].to_numpy()] = True
    return pa.array(found)


def _keyed(t: pa.Table) -> pa.Table:
    """``ts`` (µs) and the 5-tuple's ends of ``t``, typed alike for a join."""
    return pa.table(
        {
            "ts": t["ts"].cast(pa.timestamp("us", tz="UTC")),
            "src": t["src"].cast(pa.string()),
            "src_port": t["src_port"].cast(pa.int32()),
            "dst": t["dst"].cast(pa.string()),
            "dst_port": t["dst_port"].cast(pa.int32()),
        }
    )


def answered_udp(
    ctx: HuntContext, window: Window, interval: timedelta, sources: list[str]
) -> pa.Table:
    """UDP flows of ``sources`` that got an answer (both sides sent), with their epoch."""
    if not sources:
        return _with_epoch(_oriented(_empty(), reverse=False), interval)
    t = ctx.store.scan(
        "conn",
        _COLUMNS,
        window=window,
        where=[
            Pred("proto", "=", "udp"),
            Pred("conn_state", "=", "SF"),
            Pred("src", "in", sources),
            Pred("dst_port", "is not null"),
        ],
    )
    return _with_epoch(_oriented(t, reverse=False), interval)


def _oriented(t: pa.Table, *, reverse: bool) -> pa.Table:
    """``ts, src, dst, dst_port, proto`` with the prober as ``src``."""
    src, dst, port = ("dst", "src", "src_port") if reverse else ("src", "dst", "dst_port")
    return pa.table(
        {
            "ts": t["ts"],
            "src": t[src].cast(pa.string()),
            "dst": t[dst].cast(pa.string()),
            "dst_port": t[port].cast(pa.int32()),
            "proto": t["proto"].cast(pa.string()),
        }
    )


def _empty() -> pa.Table:
    fields = [("ts", pa.timestamp("us", tz="UTC")), ("src", pa.string()), ("dst", pa.string())]
    fields += [("src_port", pa.int32()), ("dst_port", pa.int32()), ("proto", pa.string())]
    return pa.schema(fields).empty_table()


def _with_epoch(t: pa.Table, interval: timedelta) -> pa.Table:
    seconds = int(interval.total_seconds())
    epoch = pc.floor_temporal(t["ts"], multiple=seconds, unit="second")
    return t.append_column("epoch", epoch)
