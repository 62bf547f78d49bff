"""Who originated a flow, its history string and its Zeek ``conn_state``.

Follows Zeek's ``base/protocols/conn/main.zeek`` (``conn_state``) and the TCP
analyzer's endpoint states, computed from which history letters each side sent:
an endpoint that sent a RST is *reset*, else one that sent a FIN is *closed*, else
both are *established* once the originator's SYN and the responder's SYN/ACK were
seen, else the originator is *SYN sent* (responder: *SYN/ACK sent*) or *partial*
(packets without a handshake) or *inactive*.

The originator is the sender of the first packet, except (as in Zeek) when that
packet is a SYN/ACK, or carries no SYN and goes from a well-known server port to a
port that is not one; the history string then starts with ``^``.
"""

from __future__ import annotations

import numpy as np

from vigile.ingest.flowstate import ENDED_STATES
from vigile.ingest.packet.flows import BIG, LETTERS, SYN, Parts
from vigile.ingest.packet.magic import Timeouts
from vigile.ingest.ports import SERVER_PORT

INACTIVE, PARTIAL, SYN_SENT, SYN_ACK_SENT, ESTABLISHED, CLOSED, RESET = range(7)
S, H, A, D, F, R = range(6)
#: conn_state names by code; codes 1 to 13 follow the order of the rules in _state.
STATES = np.array(
    [
        "OTH",
        "REJ",
        "RSTRH",
        "RSTR",
        "RSTOS0",
        "OTH",
        "RSTO",
        "SF",
        "SH",
        "S2",
        "SHR",
        "S3",
        "S0",
        "S1",
    ],
    dtype=object,
)


def endpoints(p: Parts) -> dict[str, np.ndarray]:
    """``first_pos``, ``orig``, ``resp``, ``sport`` and ``dport`` of flows, finished or not.

    They depend only on a flow's first packet, so they are final from then on: rows of
    an active flow (its DNS transactions) can be written before the flow ends.
    """
    o = p["first_dir"] ^ _flipped(p)  # side of the originator: 0 = a, 1 = b
    icmp = np.isin(p["proto"], (1, 58))
    return {
        "first_pos": p["first_pos"],
        "orig": np.where((o == 0)[:, None], p["a"], p["b"]),
        "resp": np.where((o == 0)[:, None], p["b"], p["a"]),
        "sport": np.where(icmp, p["first_sport"], np.where(o == 0, p["pa"], p["pb"])),
        "dport": np.where(icmp, p["first_dport"], np.where(o == 0, p["pb"], p["pa"])),
    }


def conn_columns(p: Parts, end_ns: int | None, timeouts: Timeouts) -> dict[str, np.ndarray]:
    """Zeek conn.log fields of finished flows; ``end_ns`` set at the end of the capture."""
    n = len(p["h"])
    rows = np.arange(n)
    flip = _flipped(p)
    o = p["first_dir"] ^ flip  # side of the originator: 0 = a, 1 = b
    r = 1 - o
    ends = endpoints(p)
    tcp = p["proto"] == 6
    span = np.where(p["sbase"] >= 0, np.maximum(p["shi"] - p["slo"], 0), 0)
    payload = np.where(tcp[:, None], span, p["pay"])
    seen = p["hist"] < BIG  # (n, 2, letters)
    o_seen, r_seen = seen[rows, o], seen[rows, r]
    o_pk, r_pk = p["pkts"][rows, o], p["pkts"][rows, r]
    state = _state(p["proto"], o_seen, r_seen, o_pk, r_pk)
    ended = np.isin(state, ENDED_STATES)
    is_open = np.zeros(n, bool)
    if end_ns is not None:
        is_open = ~ended & (p["last_ts"] >= end_ns - timeouts.of(p["proto"]))
    return ends | {
        "ts_ns": p["first_ts"],
        "proto": p["proto"],
        "duration": (p["last_ts"] - p["first_ts"]) / 1e9,
        "orig_bytes": payload[rows, o],
        "resp_bytes": payload[rows, r],
        "orig_ip_bytes": p["ipb"][rows, o],
        "resp_ip_bytes": p["ipb"][rows, r],
        "orig_pkts": o_pk,
        "resp_pkts": r_pk,
        "conn_state": state,
        "history": _history(p["hist"], o, flip, p["proto"]),
        "open": is_open,
    }


def _flipped(p: Parts) -> np.ndarray:
    """1 where the first packet's receiver is the originator."""
    flags = p["first_flags"]
    syn_ack = (p["proto"] == 6) & ((flags & 0x12) == 0x12)
    ported = ((p["proto"] == 6) | (p["proto"] == 17)) & ((flags & SYN) == 0)
    from_server = SERVER_PORT[p["first_sport"] & 0xFFFF]
    to_server = SERVER_PORT[p["first_dport"] & 0xFFFF]
    return (syn_ack | (ported & from_server & ~to_server)).astype(np.int64)


def _endpoint(
    seen: np.ndarray, pkts: np.ndarray, established: np.ndarray, opening: int
) -> np.ndarray:
    out = np.where(pkts > 0, PARTIAL, INACTIVE)
    out = np.where(seen[:, opening], SYN_SENT if opening == S else SYN_ACK_SENT, out)
    out = np.where(established, ESTABLISHED, out)
    out = np.where(seen[:, F], CLOSED, out)
    return np.where(seen[:, R], RESET, out)


def _state(
    proto: np.ndarray, o_seen: np.ndarray, r_seen: np.ndarray, o_pk: np.ndarray, r_pk: np.ndarray
) -> np.ndarray:
    established = o_seen[:, S] & r_seen[:, H]
    os_ = _endpoint(o_seen, o_pk, established, S)
    rs = _endpoint(r_seen, r_pk, established, H)
    o_inactive = (os_ == INACTIVE) | (os_ == PARTIAL)
    r_inactive = (rs == INACTIVE) | (rs == PARTIAL)
    no_data = ~o_seen[:, D] & ~r_seen[:, D]
    tcp = np.select(
        [
            (rs == RESET) & (np.isin(os_, (SYN_SENT, SYN_ACK_SENT)) | ((os_ == RESET) & no_data)),
            (rs == RESET) & o_inactive,
            rs == RESET,
            (os_ == RESET) & r_inactive & o_seen[:, S],
            (os_ == RESET) & r_inactive,
            os_ == RESET,
            (rs == CLOSED) & (os_ == CLOSED),
            (os_ == CLOSED) & r_inactive,
            os_ == CLOSED,
            (rs == CLOSED) & o_inactive,
            rs == CLOSED,
            (os_ == SYN_SENT) & (rs == INACTIVE),
            (os_ == ESTABLISHED) & (rs == ESTABLISHED),
        ],
        list(range(1, 14)),
        0,
    )
    udp = np.where(o_pk > 0, np.where(r_pk > 0, 7, 12), np.where(r_pk > 0, 10, 0))
    return STATES[np.where(proto == 6, tcp, np.where(proto == 17, udp, 0))]


def _history(hist: np.ndarray, o: np.ndarray, flip: np.ndarray, proto: np.ndarray) -> np.ndarray:
    """Zeek history: letters in order of first appearance, originator's in upper case."""
    n = len(o)
    rows = np.arange(n)
    first = np.concatenate([hist[rows, o], hist[rows, 1 - o]], axis=1)  # (n, 12)
    order = np.argsort(first, axis=1, kind="stable")
    present = np.take_along_axis(first, order, 1) < BIG
    code = np.where(present, order, -1)
    # One integer per flow (4 bits per letter slot, then the flip and has-history bits),
    # so the distinct patterns come from a 1-D unique rather than a row-wise one.
    key = np.zeros(n, np.int64)
    for k in range(code.shape[1]):
        key |= (code[:, k] + 1) << (4 * k)
    key |= flip.astype(np.int64) << 48 | np.isin(proto, (6, 17)).astype(np.int64) << 49
    patterns, inverse = np.unique(key, return_inverse=True)
    alphabet = LETTERS + LETTERS.lower()
    texts = []
    for pattern in patterns.tolist():
        slots = [(pattern >> (4 * k) & 0xF) - 1 for k in range(code.shape[1])]
        text = ("^" if pattern >> 48 & 1 else "") + "".join(alphabet[i] for i in slots if i >= 0)
        texts.append(text if pattern >> 49 & 1 else None)
    return np.array(texts, dtype=object)[inverse.reshape(-1)]
