"""Zeek connection states for flow records, from their cumulative TCP flags.

A flow record carries the OR of the TCP flags of its packets: NetFlow v5
``tcp_flags``, v9/IPFIX element 6 ``tcpControlBits``, RFC 5103 reverse element
6/29305 for a biflow's other side, nfdump's ``tcp_flags``, Suricata EVE's
``tcp.tcp_flags_ts`` and ``tcp.tcp_flags_tc`` (a flow event: both sides) or
``tcp.tcp_flags`` (a netflow event: one side). Each side's flags give that
endpoint's state as Zeek's TCP analyser names it, and the two endpoint states give
``conn_state`` by Zeek's own ``conn_state`` function
(https://docs.zeek.org/en/master/scripts/base/protocols/conn/main.zeek.html),
transcribed in :func:`zeek_tcp_state`. The NetFlow readers (collector, nfcapd) and
the EVE reader share this module.

NetFlow is mostly one record per direction, so the records of one batch (a
collector batch, 50,000 records of an nfcapd file, with the records of earlier
batches still waiting for a partner: :mod:`vigile.ingest.pairhold`) are paired
first: a record pairs with the record of the reversed 5-tuple, from the same exporter
or sensor (``keys["sensor"]``), whose time span lies within :data:`PAIR_SLACK_US` of
its own (the nearest one when several do).
Contract of :func:`conn_states`:

* The state goes on the **originator's** record: the side that sent a SYN without
  an ACK, else the earlier record, else the one sent to the lower port. The
  responder's record of a pair gets null, so a connection has one state, as in
  Zeek's conn log, and a detector never takes the responder for the prober.
* A TCP record with no partner gets a state only when its flags decide it: a SYN
  without an ACK (the sender never completed a handshake: ``S0``, or ``RSTOS0``
  with a RST, ``SH`` with a FIN). Any other lone record (SYN and ACK, ACK only)
  stays null: the sender may be either side, and its peer's record is more often
  unexported (one-interface, ingress-only export) than absent. Except a lone
  *reply* (``Pairing.reply``: from a likely server port to a port that is not one,
  :mod:`vigile.ingest.ports`), which the rows step turns around to its receiver
  (:func:`~vigile.ingest.pairhold.turn_replies`), as Zeek turns such a connection:
  its state is Zeek's with the originator unseen (:data:`REPLY_STATE`: ``RSTRH``,
  ``SHR`` or ``OTH``).
* UDP: a pair is ``SF``; a lone record is ``S0`` (only what was read is known),
  except a lone reply: a record from a likely server port to a port that is not one
  (:mod:`vigile.ingest.ports`; a resolver's answer whose query record was exported in
  another batch) stays null: it is turned around like a TCP reply, and Zeek's state
  for it, ``SHR`` (only the responder sent), would make the answering server the
  prober for ``scan`` wherever only answers are exported.
* A biflow (reverse counters present: an IPFIX biflow, an EVE flow event) is judged
  alone; when its reverse side is the one that sent the lone SYN (the record's
  ``src`` is the responder) it stays null. Callers give a side that sent no packets
  null flags (unknown, not zero). A biflow with a silent side follows the
  lone-record rule, unless ``one_sensor`` says one sensor watched both directions
  (EVE flow events): then the silent side is Zeek's inactive endpoint and the state
  is Zeek's (``SH``, ``OTH``, …).
* ``orig_payload``/``resp_payload`` (:func:`conn_payload`, rule in
  :mod:`vigile.ingest.payload`) follow the same pairing (:func:`pair_records`,
  computed once per batch for both): the originator's record of a pair gets its
  partner's side as the responder's; the responder's record and a lone
  one-direction record get a null ``resp_payload``.
* Rows: this module only derives columns, record by record. Storing a pair as one
  row (the originator's, with its partner's counters as the responder side) is
  :class:`~vigile.ingest.pairhold.PairHold`'s step, which the NetFlow readers share;
  the EVE reader's events are stored one row each.
* ``history`` is not derived: flags are ORed, so the order of the events and
  whether a segment carried data are lost, and a history would be invented.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from vigile.ingest import payload
from vigile.ingest.ports import SERVER_PORT

FIN, SYN, RST, ACK = 0x01, 0x02, 0x04, 0x10
#: Two records of one connection start and end within this of each other (a RST
#: answering a SYN is a separate one-packet record a round trip later).
PAIR_SLACK_US = 5_000_000
_NONE = 16  # flag code of a side that was not seen


def _endpoint(flags: int | None, peer_acked: bool) -> str:
    """Zeek's endpoint state (``TCP_*``) from the OR of one side's flags."""
    if flags is None:
        return "INACTIVE"
    if flags & RST:
        return "RESET"
    if flags & FIN:
        return "CLOSED"
    if not flags & SYN:
        return "PARTIAL"
    if flags & ACK:
        return "ESTABLISHED" if peer_acked else "SYN_ACK_SENT"
    return "SYN_SENT"


def zeek_tcp_state(orig: int | None, resp: int | None) -> str:
    """Zeek's ``conn_state`` for an originator's and a responder's ORed TCP flags.

    ``resp`` (``orig``) is None when no record of the responder (originator) was
    seen. Where Zeek looks at payload sizes (``REJ`` after resets from both sides) or
    the history (``RSTOS0``), flags stand in: no ACK from the originator means no
    handshake.

    >>> zeek_tcp_state(SYN, None), zeek_tcp_state(SYN, RST | ACK)
    ('S0', 'REJ')
    >>> zeek_tcp_state(SYN | ACK | FIN, SYN | ACK | FIN), zeek_tcp_state(SYN | RST, SYN | ACK)
    ('SF', 'RSTO')
    >>> zeek_tcp_state(None, SYN | ACK), zeek_tcp_state(None, SYN | ACK | FIN)
    ('OTH', 'SHR')
    """
    os = _endpoint(orig, True)
    rs = _endpoint(resp, bool((orig or 0) & ACK))
    orig = orig or 0
    o_inactive = os in ("INACTIVE", "PARTIAL")
    r_inactive = rs in ("INACTIVE", "PARTIAL")
    if rs == "RESET":
        if os in ("SYN_SENT", "SYN_ACK_SENT"):
            return "REJ"
        return "RSTRH" if o_inactive else "RSTR"
    if os == "RESET":
        if r_inactive:
            return "RSTOS0" if orig & SYN and not orig & (ACK | FIN) else "OTH"
        return "RSTO"
    if rs == "CLOSED" and os == "CLOSED":
        return "SF"
    if os == "CLOSED":
        return "SH" if r_inactive else "S2"
    if rs == "CLOSED":
        return "SHR" if o_inactive else "S3"
    if os == "SYN_SENT" and rs == "INACTIVE":
        return "S0"
    if os == "ESTABLISHED" and rs == "ESTABLISHED":
        return "S1"
    return "OTH"


def _flags(code: int) -> int | None:
    return None if code == _NONE else (code & 7) | (ACK if code & 8 else 0)


#: The states as indices into this list (-1: no state), so batches are set in numpy.
STATES = ["S0", "S1", "S2", "S3", "SF", "REJ", "RSTO", "RSTR", "RSTOS0", "RSTRH", "SH", "SHR"]
STATES.append("OTH")
#: States of a connection both sides finished, by FINs or a reset: never open (the
#: pcap reader's rule, ``ingest/packet/connstate.py``, as Zeek forgets such connections).
ENDED_STATES = ("SF", "REJ", "RSTO", "RSTR", "RSTOS0", "RSTRH")
_S0, _SF = STATES.index("S0"), STATES.index("SF")


def _tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every (originator, responder) flag code's state index, a lone record's, and a
    lone reply's (the record's sender as the responder, the originator unseen)."""
    pair = np.full((_NONE + 1, _NONE + 1), -1, dtype=np.int8)
    for o in range(_NONE):
        for r in range(_NONE + 1):
            pair[o, r] = STATES.index(zeek_tcp_state(_flags(o) or 0, _flags(r)))
    alone = np.array([pair[o, _NONE] if o & SYN and not o & 8 else -1 for o in range(17)])
    alone[_NONE] = -1
    reply = np.array([STATES.index(zeek_tcp_state(None, _flags(r))) for r in range(_NONE)] + [-1])
    return pair, alone.astype(np.int8), reply.astype(np.int8)


PAIR_STATE, LONE_STATE, REPLY_STATE = _tables()


@dataclass(frozen=True)
class Pairing:
    """The records of one batch paired by direction (see the module contract).

    ``partner``: index of each record's reverse-direction record, -1 for none;
    ``originator``: whether a paired record is the originator's (meaningless unpaired);
    ``biflow``: whether the record carries both directions' counters;
    ``reply``: whether a record is a lone reply, to be turned around to its likely
    originator (rule in the module contract; none when not given).
    """

    partner: np.ndarray
    originator: np.ndarray
    biflow: np.ndarray
    reply: np.ndarray | None = None

    @property
    def turned(self) -> np.ndarray:
        """``reply`` as a mask (all false when not given)."""
        return np.zeros(len(self.partner), bool) if self.reply is None else self.reply

    def take(self, keep: np.ndarray) -> Pairing:
        """The pairing of the records at ``keep`` (a mask), none of the others being a
        kept record's partner; partners renumbered."""
        renumber = np.cumsum(keep) - 1
        partner = np.where(self.partner >= 0, renumber[self.partner], -1)[keep]
        reply = None if self.reply is None else self.reply[keep]
        return Pairing(partner, self.originator[keep], self.biflow[keep], reply)


def pair_records(
    keys: dict[str, pa.Array],
    start_us: pa.Array,
    end_us: pa.Array,
    flags: pa.Array,
    rpkts: pa.Array,
) -> Pairing:
    """Pair the one-direction records of a batch, tell each pair's originator and
    which lone records are replies.

    Arguments as for :func:`conn_states`; a ``sensor`` entry in ``keys`` (the
    exporter or sensor of each record) pairs only records of the same one. The
    originator is the side that sent a SYN without an ACK, else the earlier record,
    else the one sent to the lower port. A reply is a lone one-direction TCP or UDP
    record from a likely server port to a port that is not one, unless it is a SYN
    without an ACK (its sender opened the connection, whatever its port).
    """
    proto = _np(keys["proto"], 0)
    sport, dport = _np(keys["src_port"], 0) & 0xFFFF, _np(keys["dst_port"], 0) & 0xFFFF
    start, end = _np(start_us, 0), _np(end_us, 0)
    code = _codes(flags)
    biflow = _np(rpkts, -1) >= 0
    partner = _partners(keys, proto, start, end, biflow)
    p = np.where(partner >= 0, partner, 0)
    syn_only = (code & 2 != 0) & (code & 8 == 0) & (code != _NONE)
    is_orig = np.where(
        syn_only != syn_only[p],
        syn_only,
        np.where(
            start != start[p],
            start < start[p],
            np.where(dport != sport, dport < sport, np.arange(len(start)) < p),
        ),
    )
    lone = (partner < 0) & ~biflow & ((proto == 17) | ((proto == 6) & ~syn_only))
    reply = lone & SERVER_PORT[sport] & ~SERVER_PORT[dport]
    return Pairing(partner, is_orig, biflow, reply)


def conn_states(
    keys: dict[str, pa.Array],
    start_us: pa.Array,
    end_us: pa.Array,
    flags: pa.Array,
    rflags: pa.Array,
    rpkts: pa.Array,
    *,
    one_sensor: bool = False,
    pairing: Pairing | None = None,
) -> pa.Array:
    """The ``conn_state`` of each record of one batch (see the module contract).

    Args:
        keys: ``src``, ``src_port``, ``dst``, ``dst_port`` and ``proto`` (IP protocol
            number) of each record; addresses as text, or IPv4 as integers.
        start_us: Record start, Unix microseconds.
        end_us: Record end, Unix microseconds.
        flags: ORed TCP flags of the record (null when the exporter sent none).
        rflags: A biflow's reverse-direction flags (null when absent).
        rpkts: A biflow's reverse packets; null marks a one-direction record.
        one_sensor: The biflows come from a sensor that watched both directions
            (Suricata's flow events): a side without packets was silent, not
            unexported, so the other side's flags alone give the state Zeek gives
            the same packets (``SH``, ``OTH``, …), not only a lone SYN's.
        pairing: The batch's :func:`pair_records`, when the caller has it already
            (for :func:`conn_payload` too); computed here otherwise.

    >>> k = {"src": pa.array(["a", "b"]), "src_port": pa.array([5000, 80]),
    ...      "dst": pa.array(["b", "a"]), "dst_port": pa.array([80, 5000]),
    ...      "proto": pa.array([6, 6])}
    >>> t = pa.array([0, 1000])
    >>> conn_states(k, t, t, pa.array([2, 20]), pa.nulls(2, pa.int64()),
    ...     pa.nulls(2, pa.int64())).to_pylist()
    ['REJ', None]
    """
    proto = _np(keys["proto"], 0)
    sport, dport = _np(keys["src_port"], 0) & 0xFFFF, _np(keys["dst_port"], 0) & 0xFFFF
    code = _codes(flags)
    rcode = _codes(rflags)
    rp = _np(rpkts, -1)
    if pairing is None:
        pairing = pair_records(keys, start_us, end_us, flags, rpkts)
    biflow, partner, is_orig = pairing.biflow, pairing.partner, pairing.originator
    paired = partner >= 0
    p = np.where(paired, partner, 0)
    syn_only = (code & 2 != 0) & (code & 8 == 0) & (code != _NONE)
    out = np.full(len(proto), -1, dtype=np.int8)
    tcp, udp = proto == 6, proto == 17
    # One-direction records: with a partner (originator only) or alone.
    sel = tcp & ~biflow & paired & is_orig & (code != _NONE) & (code[p] != _NONE)
    out[sel] = PAIR_STATE[code[sel], code[p][sel]]
    silent = tcp & biflow & (rp == 0)
    sel = tcp & ~biflow & ~paired | (silent if not one_sensor else False)
    out[sel] = LONE_STATE[code[sel]]
    if one_sensor:
        out[silent] = PAIR_STATE[code[silent], _NONE]
    # A lone reply: the row is turned around (merge_pairs), its sender the responder.
    turned = tcp & pairing.turned
    out[turned] = REPLY_STATE[code[turned]]
    # Biflows with both sides' flags, unless the reverse side is the one that opened.
    r_syn_only = (rcode & 2 != 0) & (rcode & 8 == 0) & (rcode != _NONE)
    sel = tcp & biflow & (rp > 0) & (code != _NONE) & (rcode != _NONE)
    sel &= ~(r_syn_only & ~syn_only)
    out[sel] = PAIR_STATE[code[sel], rcode[sel]]
    reply = SERVER_PORT[sport] & ~SERVER_PORT[dport]
    out[udp & ((~biflow & ~paired & ~reply) | (biflow & (rp == 0)))] = _S0
    out[udp & ((~biflow & paired & is_orig) | (biflow & (rp > 0)))] = _SF
    return pc.take(pa.array(STATES), pa.array(out, mask=out < 0))


def conn_payload(
    keys: dict[str, pa.Array],
    pairing: Pairing,
    sent: tuple[pa.Array, pa.Array],
    received: tuple[pa.Array, pa.Array],
    framing: int,
    tcp_flags: tuple[pa.Array, pa.Array] | None = None,
) -> tuple[pa.Array, pa.Array]:
    """``orig_payload`` and ``resp_payload`` of each record of one batch.

    ``sent`` is each record's own (IP bytes, packets), ``received`` a biflow's reverse
    ones (null for a one-direction record); ``framing`` the link bytes the exporter
    counts per packet, ``tcp_flags`` each record's own and reverse ORed TCP flags
    (null: unknown; :mod:`vigile.ingest.payload`). A record's own side comes from
    its own counters; its responder's side from its reverse counters (a biflow) or,
    on the originator's record of a pair, from its partner's own side. The
    responder's record of a pair gets a null ``resp_payload`` (its partner carries
    the connection, as for ``conn_state``), and so does a lone one-direction record.

    >>> k = {"src": pa.array(["a", "b"]), "src_port": pa.array([5000, 80]),
    ...      "dst": pa.array(["b", "a"]), "dst_port": pa.array([80, 5000]),
    ...      "proto": pa.array([6, 6])}
    >>> t, none = pa.array([0, 1000]), pa.nulls(2, pa.int64())
    >>> pairing = pair_records(k, t, t, pa.array([2, 18]), none)
    >>> o, r = conn_payload(k, pairing, (pa.array([120, 900]), pa.array([2, 3])),
    ...     (none, none), 0)
    >>> o.to_pylist(), r.to_pylist()
    ([False, True], [True, None])
    """
    proto = _np(keys["proto"], 0)
    src = keys["src"]
    if pa.types.is_integer(src.type):
        ipv6 = np.zeros(len(proto), dtype=bool)
    else:
        ipv6 = _bools(pc.match_substring(src.cast(pa.string()), ":"))
    fl, rfl = (None, None) if tcp_flags is None else (_np(f, -1) for f in tcp_flags)
    own = payload.from_ip_bytes(_np(sent[0], -1), _np(sent[1], -1), proto, ipv6, framing, fl)
    back = payload.from_ip_bytes(
        _np(received[0], -1), _np(received[1], -1), proto, ipv6, framing, rfl
    )
    partner = pairing.partner
    paired = partner >= 0
    from_partner = own[np.where(paired, partner, 0)]
    resp = np.where(pairing.biflow, back, np.int8(-1))
    resp = np.where(~pairing.biflow & paired & pairing.originator, from_partner, resp)
    return payload.as_arrow(own), payload.as_arrow(resp.astype(np.int8))


def _codes(flags: pa.Array) -> np.ndarray:
    """ORed TCP flags as flag codes (FIN, SYN, RST, ACK as 0..15; 16 unseen)."""
    fl = _np(flags, -1)
    return np.where(fl < 0, _NONE, (fl & 7) | np.where(fl & ACK, 8, 0))


def _bools(values: pa.Array) -> np.ndarray:
    return np.asarray(pc.fill_null(values, False).to_numpy(zero_copy_only=False), dtype=bool)


def _np(values: pa.Array, null: int) -> np.ndarray:
    """An integer Arrow array as int64 numpy, nulls as ``null``."""
    return np.asarray(pc.fill_null(values.cast(pa.int64()), null).to_numpy(zero_copy_only=False))


def _sensor_ids(sensor: pa.Array | None, take: pa.Array) -> pa.Array | None:
    """The exporter of each record at ``take`` as a number (null: -1), or None when
    they all have one exporter (the usual case: the join is left as it is)."""
    if sensor is None:
        return None
    ids = pc.dictionary_encode(sensor.take(take)).indices
    ids = np.asarray(pc.fill_null(ids.cast(pa.int64()), -1))
    if not len(ids) or (ids == ids[0]).all():
        return None
    return pa.array(ids)


def _partners(
    keys: dict[str, pa.Array],
    proto: np.ndarray,
    start: np.ndarray,
    end: np.ndarray,
    biflow: np.ndarray,
) -> np.ndarray:
    """For each record, the index of its reverse-direction record, or -1."""
    n = len(start)
    partner = np.full(n, -1, dtype=np.int64)
    candidates = np.flatnonzero(~biflow & ((proto == 6) | (proto == 17)))
    if len(candidates) < 2:
        return partner
    # Endpoints as integers (address << 24 | port << 8 | protocol): joining on two int64
    # columns is several times cheaper than on four text and number columns. IPv4
    # addresses given as integers are used as they are; others are numbered.
    take = pa.array(candidates)
    src, dst = keys["src"].take(take), keys["dst"].take(take)
    if pa.types.is_integer(src.type) and pa.types.is_integer(dst.type):
        a_ids, b_ids = _np(src, 0), _np(dst, 0)
    else:
        texts = pa.chunked_array([src.cast(pa.string()), dst.cast(pa.string())])
        ids = np.asarray(pc.dictionary_encode(texts).combine_chunks().indices, dtype=np.int64)
        a_ids, b_ids = ids[: len(candidates)], ids[len(candidates) :]
    proto_c = proto[candidates]
    here = a_ids << 24 | _np(keys["src_port"].take(take), 0) << 8 | proto_c
    there = b_ids << 24 | _np(keys["dst_port"].take(take), 0) << 8 | proto_c
    # Only records whose endpoints both appear reversed somewhere can have a partner:
    # in a one-direction export that is almost none, and the join is skipped.
    maybe = np.isin(here, there) & np.isin(there, here)
    if maybe.sum() < 2:
        return partner
    take, here, there = take.filter(pa.array(maybe)), here[maybe], there[maybe]
    times = {"s": start[candidates][maybe], "e": end[candidates][maybe]}
    left = pa.table({"i": take, "a": here, "b": there, **times})
    right = pa.table({"j": take, "a": there, "b": here, "s2": times["s"], "e2": times["e"]})
    on = ["a", "b"]
    exporter = _sensor_ids(keys.get("sensor"), take)
    if exporter is not None:  # records of different exporters never pair
        left, right = left.append_column("x", exporter), right.append_column("x", exporter)
        on.append("x")
    m = left.join(right, on, join_type="inner")
    if not m.num_rows:
        return partner
    i, j = m["i"].to_numpy(), m["j"].to_numpy()
    s, e, s2, e2 = (m[c].to_numpy() for c in ("s", "e", "s2", "e2"))
    ok = (i != j) & (s2 <= e + PAIR_SLACK_US) & (s <= e2 + PAIR_SLACK_US)
    i, j, dist = i[ok], j[ok], np.abs(s[ok] - s2[ok])
    order = np.lexsort((j, dist, i))
    i, j = i[order], j[order]
    first = np.ones(len(i), dtype=bool)
    first[1:] = i[1:] != i[:-1]
    partner[i[first]] = j[first]
    return partner
