"""Failed probes for ``scan``: who knocked, on which host and port, and whether it failed.

A probe is oriented from the **prober** (the side that knocked) to the **target**, not
from Zeek's originator to its responder, because Zeek (and vigile's pcap reader, which
follows it) turns flows around by a guess: a flow that starts with a SYN/ACK, or with a
packet from a likely server port (53, 5060, …) to another port, is recorded with its
first packet's *receiver* as originator (history ``^``). Scanners defeat that guess on
purpose (``nmap -g 53`` sends every probe from source port 53).

* **TCP**: a failed attempt is a connection in one of :data:`FAILED_TCP_STATES` with no
  payload either way (Zeek's ``connection_attempt``, ``connection_rejected`` and
  ``is_failed_conn``): ``orig_payload`` and ``resp_payload`` both not true. Where
  payload bytes are unknown (NetFlow and EVE give IP-level bytes and packets only)
  the ingest inferred those columns (:mod:`vigile.ingest.payload`), for a
  one-direction record from its responder's record too. The prober is the side that
  sent the SYN: the originator when the history has ``S``, the responder when it has
  only ``s`` (Zeek's ``is_reverse_failed_conn``). A flow
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

import pyarrow as pa
import pyarrow.compute as pc

from vigile.detect import HuntContext
from vigile.store import Pred, Window

FAILED_TCP_STATES = ("S0", "REJ", "RSTO", "RSTR", "RSTOS0", "RSTRH", "SH", "SHR", "OTH")
#: traceroute(8)'s default base port 33434, 30 hops × 3 probes and some slack.
TRACEROUTE_PORTS = (33434, 33534)
_COLUMNS = ["ts", "src", "src_port", "dst", "dst_port", "proto", "conn_state", "history"]


def failed_probes(ctx: HuntContext, window: Window, interval: timedelta) -> pa.Table:
    """Failed TCP attempts and unanswered UDP probes in ``window``, prober first.

    Columns ``ts, src`` (prober), ``dst`` (target), ``dst_port`` (probed port),
    ``proto`` and ``epoch`` (the start of its ``interval`` slice).
    """
    tcp = ctx.store.scan(
        "conn",
        [*_COLUMNS, "orig_payload", "resp_payload"],
        window=window,
        where=[Pred("proto", "=", "tcp"), Pred("conn_state", "in", list(FAILED_TCP_STATES))],
    )
    carried = pc.or_kleene(tcp["orig_payload"], tcp["resp_payload"])
    tcp = tcp.filter(pc.invert(pc.fill_null(carried, False)))
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
