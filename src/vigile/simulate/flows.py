"""The simulator's working form of traffic: columns of NumPy arrays.

Every generator (benign traffic, attack scenarios) returns a :class:`Flows`: one row
per connection, with the application fields (DNS query, HTTP request, TLS SNI) the
connection carries. Text values are indices into a shared :class:`Vocab`, so tens of
millions of rows stay small and every writer turns them into strings in one
vectorised step.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np

#: Service names; index 0 means "not identified" (Zeek's ``-``).
SERVICES = ("", "dns", "http", "ssl", "ntp", "smtp", "krb", "ldap", "smb", "snmp", "ipmi")
PROTOS = ("tcp", "udp", "icmp")
#: Zeek connection states used by the simulator.
STATES = ("SF", "S0", "REJ", "S1", "RSTO")
METHODS = ("", "GET", "POST", "PUT")
QTYPES = {1: "A", 16: "TXT", 28: "AAAA", 12: "PTR", 10: "NULL", 15: "MX"}
RCODES = {0: "NOERROR", 2: "SERVFAIL", 3: "NXDOMAIN"}

TCP, UDP, ICMP = 0, 1, 2
SF, S0, REJ, S1, RSTO = 0, 1, 2, 3, 4


def service(name: str) -> int:
    """Index of a service name.

    >>> service("ssl")
    3
    """
    return SERVICES.index(name)


class Vocab:
    """Append-only table of strings; rows refer to entries by index."""

    def __init__(self) -> None:
        self.values: list[str] = []
        self._index: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self.values)

    def id(self, value: str) -> int:
        """Index of ``value``, adding it if new.

        >>> v = Vocab(); v.id("a"), v.id("b"), v.id("a")
        (0, 1, 0)
        """
        found = self._index.get(value)
        if found is None:
            found = self._index[value] = len(self.values)
            self.values.append(value)
        return found

    def lengths(self) -> np.ndarray:
        """Length of every value (cached, extended as the table grows)."""
        cached = getattr(self, "_lengths", np.zeros(0, np.int64))
        if len(cached) < len(self.values):
            extra = [len(v) for v in self.values[len(cached) :]]
            cached = np.concatenate([cached, np.array(extra, np.int64)])
            self._lengths = cached
        return cached

    def ids(self, values: list[str]) -> np.ndarray:
        return np.fromiter((self.id(v) for v in values), dtype=np.int32, count=len(values))


@dataclass
class Vocabs:
    """The string tables one simulation shares between generators and writers."""

    addr: Vocab
    name: Vocab
    uri: Vocab
    agent: Vocab

    @classmethod
    def new(cls) -> Vocabs:
        return cls(Vocab(), Vocab(), Vocab(), Vocab())


@dataclass
class Flows:
    """Connections as columns; -1 in an index column means "none"."""

    ts: np.ndarray  # float64 Unix seconds
    src: np.ndarray  # int32 into Vocabs.addr
    sport: np.ndarray  # int32
    dst: np.ndarray  # int32 into Vocabs.addr
    dport: np.ndarray  # int32
    proto: np.ndarray  # uint8 into PROTOS
    service: np.ndarray  # uint8 into SERVICES
    duration: np.ndarray  # float64 seconds
    obytes: np.ndarray  # int64 payload bytes from the originator
    rbytes: np.ndarray  # int64 payload bytes from the responder
    opkts: np.ndarray  # int64
    rpkts: np.ndarray  # int64
    state: np.ndarray  # uint8 into STATES
    name: np.ndarray  # int32 into Vocabs.name: DNS query, HTTP Host or TLS SNI
    uri: np.ndarray  # int32 into Vocabs.uri
    agent: np.ndarray  # int32 into Vocabs.agent
    method: np.ndarray  # uint8 into METHODS
    status: np.ndarray  # int16 HTTP status, 0 = none
    qtype: np.ndarray  # int16 DNS query type, 0 = none
    rcode: np.ndarray  # int16 DNS response code, -1 = no response
    answer: np.ndarray  # int32 into Vocabs.addr: the DNS answer
    label: np.ndarray  # int16 scenario number, -1 = benign

    DTYPES: Any = None  # filled below

    def __len__(self) -> int:
        return len(self.ts)

    @classmethod
    def of(cls, n: int, **columns: Any) -> Flows:
        """``n`` rows; each column given as an array or a scalar, others defaulted."""
        out = {}
        for f in fields(cls):
            if f.name == "DTYPES":
                continue
            dtype, default = _DTYPES[f.name]
            value = columns.pop(f.name, default)
            arr = np.asarray(value, dtype=dtype)
            out[f.name] = np.broadcast_to(arr, (n,)).copy() if arr.ndim == 0 else arr
            if len(out[f.name]) != n:
                raise ValueError(f"column {f.name} has {len(out[f.name])} rows, expected {n}")
        if columns:
            raise TypeError(f"unknown columns: {sorted(columns)}")
        flows = cls(**out)
        flows.enforce_minimums()
        if not out["opkts"].any():
            flows.fill_packets()
        flows.keep_alive()
        return flows

    @classmethod
    def empty(cls) -> Flows:
        return cls.of(0)

    @classmethod
    def concat(cls, parts: list[Flows]) -> Flows:
        if not parts:
            return cls.empty()
        return cls(**{k: np.concatenate([getattr(p, k) for p in parts]) for k in _DTYPES})

    def take(self, index: np.ndarray) -> Flows:
        """Rows selected by a boolean mask or an index array."""
        return Flows(**{k: getattr(self, k)[index] for k in _DTYPES})

    def sorted(self) -> Flows:
        return self.take(np.argsort(self.ts, kind="stable"))

    def enforce_minimums(self) -> None:
        """Payloads at least as large as the protocol needs (a ClientHello, HTTP headers, ...).

        The sizes are those of the smallest exchange each builder in
        :mod:`vigile.simulate.writers` makes (a test holds them together).
        """
        done = (self.state == SF) | (self.state == S1) | (self.state == RSTO)
        for svc, low_out, low_in in (
            ("ssl", 600, 300),
            ("http", 420, 160),
            ("krb", 480, 400),  # TGS-REQ with a TGT, TGS-REP with a ticket
            ("ldap", 200, 200),  # a bind and one search; one result more per search
            ("smb", 345, 300),  # NEGOTIATE, READ, WRITE; one READ more per 8 MiB
            ("smtp", 300, 400),  # envelope and headers; the server's replies
        ):
            rows = (self.service == SERVICES.index(svc)) & done
            self.obytes = np.where(rows, np.maximum(self.obytes, low_out), self.obytes)
            self.rbytes = np.where(rows, np.maximum(self.rbytes, low_in), self.rbytes)
        ldap = (self.service == SERVICES.index("ldap")) & done
        low = 200 + 16 * (self.obytes // 130)
        self.rbytes = np.where(ldap, np.maximum(self.rbytes, low), self.rbytes)
        smb = (self.service == SERVICES.index("smb")) & done
        low = 345 + 117 * (np.maximum(1, -(-self.rbytes // (8 << 20))) - 1)
        self.obytes = np.where(smb, np.maximum(self.obytes, low), self.obytes)

    def keep_alive(self, every: float = 250.0) -> None:
        """Keep-alive ACKs in long, quiet TCP connections: a packet at least every ``every`` s.

        A connection silent for longer than a monitor's inactivity timeout (Zeek's
        ``tcp_inactivity_timeout``, 5 minutes, as vigile's pcap reader) is cut in two by
        it; an ActiveSync long poll or a slow download keeps itself alive instead. The
        capture writer spreads a connection's data and keep-alive packets evenly over
        its duration, so ``ceil(duration / every)`` of them keep every gap under ``every``.
        """
        spread = np.maximum(self.opkts - 3, 0) + np.maximum(self.rpkts - 2, 0)
        long = (self.proto == TCP) & (self.state == SF) & (self.duration > every)
        need = np.where(long, np.ceil(self.duration / every), 0).astype(np.int64)
        short = np.maximum(need - spread, 0)
        self.rpkts = self.rpkts + short // 2
        self.opkts = self.opkts + short - short // 2

    def fill_packets(self) -> None:
        """Packet counts where none were given, from payload sizes (1448-byte segments)."""
        missing = (self.opkts == 0) & (self.rpkts == 0)
        if not missing.any():
            return
        tcp = self.proto == TCP
        seg = 1448
        # TCP: SYN, ACK, data, FIN from the originator; SYN-ACK, data, FIN back (no final
        # ACK). UDP: one datagram per 1,448 bytes each way, at least one from the originator.
        data_o, data_r = -(-self.obytes // seg), -(-self.rbytes // seg)
        op = np.where(tcp, 3 + data_o, np.maximum(1, data_o))
        rp = np.where(tcp, 2 + data_r, data_r)
        rp = np.where(self.state == S0, 0, rp)
        rp = np.where(self.state == REJ, 1, rp)
        op = np.where((self.state == S0) | (self.state == REJ), np.where(tcp, 1, op), op)
        self.opkts = np.where(missing, op, self.opkts).astype(np.int64)
        self.rpkts = np.where(missing, rp, self.rpkts).astype(np.int64)


_DTYPES: dict[str, tuple[Any, Any]] = {
    "ts": (np.float64, 0.0),
    "src": (np.int32, -1),
    "sport": (np.int32, 0),
    "dst": (np.int32, -1),
    "dport": (np.int32, 0),
    "proto": (np.uint8, TCP),
    "service": (np.uint8, 0),
    "duration": (np.float64, 0.0),
    "obytes": (np.int64, 0),
    "rbytes": (np.int64, 0),
    "opkts": (np.int64, 0),
    "rpkts": (np.int64, 0),
    "state": (np.uint8, SF),
    "name": (np.int32, -1),
    "uri": (np.int32, -1),
    "agent": (np.int32, -1),
    "method": (np.uint8, 0),
    "status": (np.int16, 0),
    "qtype": (np.int16, 0),
    "rcode": (np.int16, -1),
    "answer": (np.int32, -1),
    "label": (np.int16, -1),
}


def request_times(ts: np.ndarray, duration: np.ndarray) -> np.ndarray:
    """When the originator's first payload leaves: after the handshake, 1.5 round trips in.

    The round trip is a quarter of the connection, at most 20 ms. Zeek stamps its
    http.log and ssl.log rows with this time (the request, the ClientHello), and the
    capture writer sends the first data segment then.

    >>> request_times(np.array([10.0]), np.array([1.0])).tolist()
    [10.03]
    """
    return ts + 1.5 * np.minimum(duration / 4, 0.02)


#: Seconds a packet reader (and Zeek, ``udp_inactivity_timeout``) keeps a UDP flow open.
UDP_TIMEOUT = 60.0


def unique_udp_ports(flows: Flows, rng: np.random.Generator) -> None:
    """New client ports for UDP rows that reuse a 4-tuple too soon after another row.

    Two datagram exchanges on one 4-tuple less than :data:`UDP_TIMEOUT` apart are one
    connection to Zeek and to a packet reader; a random client port repeats that
    soon more often than an operating system's would, so such rows get new ports.
    (NTP from port 123 to 123 every 1,024 s keeps its ports.)
    """
    udp = np.flatnonzero(flows.proto == UDP)
    for _ in range(8):
        order = udp[
            np.lexsort(
                (flows.ts[udp], flows.sport[udp], flows.dport[udp], flows.dst[udp], flows.src[udp])
            )
        ]
        a, b = order[:-1], order[1:]
        same = (
            (flows.src[a] == flows.src[b])
            & (flows.dst[a] == flows.dst[b])
            & (flows.dport[a] == flows.dport[b])
            & (flows.sport[a] == flows.sport[b])
            & (flows.ts[b] - flows.ts[a] - flows.duration[a] < UDP_TIMEOUT)
        )
        again = b[same]
        if not len(again):
            return
        flows.sport[again] = ephemeral_ports(rng, len(again))


def ephemeral_ports(rng: np.random.Generator, n: int) -> np.ndarray:
    """Client ports from the IANA ephemeral range, as Windows and Linux pick them."""
    return rng.integers(49152, 65535, n, dtype=np.int32)


def periodic_times(
    rng: np.random.Generator, t0: float, t1: float, period: float, phases: np.ndarray, spread: float
) -> tuple[np.ndarray, np.ndarray]:
    """Timer events in ``[t0, t1)`` for many timers at once.

    Timer ``i`` fires at ``phases[i] + k * period`` plus a random delay of up to
    ``spread * period`` (like systemd's RandomizedDelaySec). Each chunk of time is
    generated on its own, so the result does not depend on how a run is chunked.

    Returns (timer index, time) for every event.
    """
    k0 = np.ceil((t0 - phases) / period).astype(np.int64)
    k1 = np.ceil((t1 - phases) / period).astype(np.int64)
    counts = np.maximum(k1 - k0, 0)
    who = np.repeat(np.arange(len(phases)), counts)
    starts = np.repeat(k0 - np.cumsum(counts) + counts, counts)
    k = np.arange(len(who)) + starts
    ts = phases[who] + k * period + rng.random(len(who)) * spread * period
    return who, np.clip(ts, t0, np.nextafter(t1, t0))


def beacon_times(
    rng: np.random.Generator, start: float, end: float, period: float, jitter: float
) -> np.ndarray:
    """Check-in times of an implant sleeping ``period`` seconds with ``jitter``.

    As in Cobalt Strike's ``sleep`` command: each sleep is ``period`` shortened by a
    random fraction of up to ``jitter`` (0 to 1) of itself.

    >>> t = beacon_times(np.random.default_rng(1), 0, 100, 10, 0.0)
    >>> t.tolist()[:3], len(t)
    ([0.0, 10.0, 20.0], 10)
    """
    if end <= start:
        return np.zeros(0)
    n = int((end - start) / (period * (1 - jitter / 2))) + 2
    sleeps = period * (1 - rng.random(n) * jitter)
    ts = start + np.concatenate([[0.0], np.cumsum(sleeps)])
    return ts[ts < end]
