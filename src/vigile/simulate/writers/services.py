"""Payloads of the office's other services, and the table choosing a builder per connection.

SNMPv2c polls (RFC 3416), IPMI 2.0 RMCP+ sessions (IPMI v2.0 spec 13.6: the payload
is encrypted, so only its header and length show), SMTP (RFC 5321), the monitoring
agent (Zabbix protocol: ``ZBXD`` header and JSON), raw printing (PJL and PostScript
to port 9100). A connection on any other port with no service is an opaque channel
(an implant's own encryption): TLS application-data records without a handshake.
"""

from __future__ import annotations

import base64
import functools
import json
import struct
from collections.abc import Callable

import numpy as np

from vigile.simulate.flows import SERVICES, Flows, Vocabs
from vigile.simulate.network import DOMAIN
from vigile.simulate.writers import payloads, windows
from vigile.simulate.writers.der import fit, integer, integer_of_length, octets, oid, seq, tlv

Builder = Callable[[Vocabs, Flows, int, int, int], tuple[bytes, bytes]]

#: sysDescr, sysUpTime, sysName, sysLocation, sysContact (RFC 3418).
SYSTEM = tuple(f"1.3.6.1.2.1.1.{k}.0" for k in (1, 3, 5, 6, 4))
IF_HC_IN_OCTETS = "1.3.6.1.2.1.31.1.1.1.6"
#: Interface indexes whose OID arcs take 1, 2 and 3 bytes.
IF_INDEX = (1, 1001, 20001)
Shape = tuple[int, int, tuple[int, ...]]


def _snmp(pdu: int, reqid: bytes, binds: list[bytes]) -> bytes:
    body = reqid + integer(0) + integer(0) + seq(*binds)
    return seq(integer(1), octets(b"public"), tlv(0xA0 | pdu, body))  # version 1 = v2c


@functools.cache
def _snmp_shapes() -> dict[int, Shape]:
    """Request size -> (request-id length, system objects, index width per counter).

    Every shape is built once; the first (fewest counters) of each size is kept.
    """
    out: dict[int, Shape] = {}
    for count in range(9):
        for widths in _widths(count):
            for system in range(2, len(SYSTEM) + 1):
                for idlen in range(1, 5):
                    shape = (idlen, system, widths)
                    out.setdefault(len(_snmp_request(shape, 0)), shape)
    return out


def _snmp_shape(size: int) -> Shape | None:
    return _snmp_shapes().get(size)


def _widths(count: int) -> list[tuple[int, ...]]:
    return [
        (1,) * a + (2,) * b + (3,) * (count - a - b)
        for a in range(count + 1)
        for b in range(count - a + 1)
    ]


def _snmp_oids(shape: Shape) -> list[str]:
    counters = [f"{IF_HC_IN_OCTETS}.{IF_INDEX[w - 1] + k}" for k, w in enumerate(shape[2])]
    return list(SYSTEM[: shape[1]]) + counters


def _snmp_request(shape: Shape, seed: int) -> bytes:
    binds = [seq(oid(o), tlv(5, b"")) for o in _snmp_oids(shape)]
    return _snmp(0, integer_of_length(shape[0], seed), binds)


def _snmp_smallest() -> int:
    return min(_snmp_shapes())


def snmp_size(size: np.ndarray) -> np.ndarray:
    """The largest GetRequest size of a poll at most ``size`` (or the smallest there is)."""
    low = _snmp_smallest()
    out = np.maximum(np.asarray(size, np.int64), low)
    for k, n in enumerate(out):
        while n > low and _snmp_shape(int(n)) is None:
            n -= 1
        out[k] = n
    return out


def snmp(v: Vocabs, f: Flows, i: int, ob: int, rb: int) -> tuple[bytes, bytes]:
    """A GetRequest for system objects and interface counters, and its response."""
    shape = _snmp_shape(ob)
    if shape is None:
        raise ValueError(f"no SNMP GetRequest of {ob} bytes")
    seed = int(f.ts[i] * 1000)
    host = v.addr.values[f.dst[i]]

    def response(pad: int, knob: int) -> bytes:
        descr = f"Linux {host} 6.1.0-18-amd64 #1 SMP Debian 6.1.76-1 {'~' * pad}"
        system = [
            octets(descr.encode()),
            tlv(0x43, integer_of_length(knob + 1, seed)[2:]),  # TimeTicks
            octets(host.encode()),
            octets(b"server room"),
            octets(f"it@{DOMAIN}".encode()),
        ][: shape[1]]
        counters = [tlv(0x46, struct.pack("!Q", seed * 4096 + k)[2:]) for k in range(len(shape[2]))]
        binds = [
            seq(oid(o), val) for o, val in zip(_snmp_oids(shape), system + counters, strict=True)
        ]
        return _snmp(2, integer_of_length(shape[0], seed), binds)

    return _snmp_request(shape, seed), fit(response, rb)


def rmcp_plus_size(size: np.ndarray) -> np.ndarray:
    """The largest RMCP+ datagram size at most ``size`` (48 + 16 k bytes, k >= 0)."""
    return 48 + 16 * np.maximum(0, (size - 48) // 16)


def _rmcp_plus(session: int, seq_no: int, size: int) -> bytes:
    payload = payloads.fill(size - 32)  # 16-byte IV + AES-CBC blocks (13.29)
    head = struct.pack("<BBIIH", 0x06, 0xC0, session, seq_no, len(payload))  # RMCP+, enc+auth
    trailer = b"\xff\xff" + bytes([2, 0x07]) + payloads.fill(12)  # pad, length, next header
    return struct.pack("!BBBB", 6, 0, 0xFF, 7) + head + payload + trailer


def ipmi(v: Vocabs, f: Flows, i: int, ob: int, rb: int) -> tuple[bytes, bytes]:
    """One encrypted, authenticated IPMI request and its response in an RMCP+ session."""
    seq_no = int(f.ts[i]) & 0xFFFFFF
    return _rmcp_plus(0x0200A0B0, seq_no, ob), _rmcp_plus(0x02001000, seq_no, rb)


def smtp(v: Vocabs, f: Flows, i: int, ob: int, rb: int) -> tuple[bytes, bytes]:
    """A whole SMTP session: envelope, one message, QUIT; the server's replies."""
    peer = v.addr.values[f.src[i]]
    head = (
        f"EHLO [{peer}]\r\nMAIL FROM:<news@{peer}> SIZE={ob}\r\nRCPT TO:<staff@{DOMAIN}>\r\n"
        f"DATA\r\nFrom: news@{peer}\r\nTo: staff@{DOMAIN}\r\nSubject: report\r\n\r\n"
    ).encode()
    tail = b"\r\n.\r\nQUIT\r\n"
    room = max(0, ob - len(head) - len(tail))
    text = base64.encodebytes(payloads.fill(room)).replace(b"\n", b"\r\n")[:room]
    client = head + text + tail
    replies = (
        f"220 mail.{DOMAIN} Microsoft ESMTP MAIL Service ready\r\n250-mail.{DOMAIN} Hello\r\n"
        "250-SIZE 37748736\r\n250-PIPELINING\r\n250 8BITMIME\r\n250 2.1.0 Sender OK\r\n"
        "250 2.1.5 Recipient OK\r\n354 Start mail input; end with <CRLF>.<CRLF>\r\n"
    )
    bye = "\r\n221 2.0.0 Service closing transmission channel\r\n"
    queued = "250 2.6.0 Queued mail for delivery "
    pad = rb - len(replies) - len(queued) - len(bye)
    return client[:ob], (replies + queued + "#" * max(0, pad) + bye).encode()[:rb]


def zabbix(v: Vocabs, f: Flows, i: int, ob: int, rb: int) -> tuple[bytes, bytes]:
    """An agent's active-check report to the monitoring server (Zabbix protocol) and the ack."""

    def message(text: str, size: int) -> bytes:
        body = text[:-1] + " " * max(0, size - 13 - len(text)) + "}"
        return b"ZBXD\x01" + struct.pack("<II", len(body), 0) + body.encode()

    host = v.addr.values[f.src[i]]
    report = json.dumps(
        {
            "request": "agent data",
            "session": f"{int(f.ts[i]):x}",
            "data": [{"host": host, "key": "system.cpu.load", "value": "0.1"}],
        }
    )
    return message(report, ob)[:ob], message('{"response":"success"}', rb)[:rb]


def printing(v: Vocabs, f: Flows, i: int, ob: int, rb: int) -> tuple[bytes, bytes]:
    """A print job to a JetDirect port: PJL around PostScript; the printer's status."""
    head = b'\x1b%-12345X@PJL JOB NAME="doc"\r\n@PJL ENTER LANGUAGE=POSTSCRIPT\r\n%!PS-Adobe-3.0\n'
    tail = b"showpage\n\x1b%-12345X@PJL EOJ\r\n\x1b%-12345X"
    body = (
        payloads.fill(max(0, ob - len(head) - len(tail)))
        .hex()
        .encode()[: max(0, ob - len(head) - len(tail))]
    )
    status = b'@PJL USTATUS JOB\r\nEND\r\nNAME="doc"\r\nPAGES=1\r\n\x0c'
    return (head + body + tail)[:ob], (status + b" " * rb)[:rb]


def _records(total: int, mss: int = 1448) -> bytes:
    """TLS application-data records of one TCP segment each, ``total`` bytes in all.

    One record per segment so that every segment starts with a record header, as
    TLS stacks write them; random bytes at a segment's start would make tshark's
    heuristic dissectors (Thrift, for one) claim an unknown port's traffic.
    """
    sizes = [mss] * (total // mss) + ([total % mss] if total % mss else [])
    if sizes and sizes[-1] < 6:
        if len(sizes) == 1:
            return payloads.fill(total)  # too short for a record: a bare fragment
        sizes[-2:] = [sizes[-2] + sizes[-1] - 6, 6]
    return b"".join(struct.pack("!BHH", 23, 0x0303, n - 5) + payloads.fill(n - 5) for n in sizes)


def opaque(v: Vocabs, f: Flows, i: int, ob: int, rb: int) -> tuple[bytes, bytes]:
    """A channel the simulator does not name: TLS application data without a handshake.

    An implant's own encryption inside what its port suggests (8443: HTTPS); the
    handshake is not shown, as when a capture starts mid-session, so no analyser
    names the service.
    """
    return _records(ob), _records(rb)


BY_SERVICE: dict[str, Builder] = {
    "dns": payloads.dns,
    "http": payloads.http,
    "ssl": payloads.tls,
    "ntp": payloads.ntp,
    "krb": windows.kerberos,
    "ldap": windows.ldap,
    "smb": windows.smb,
    "snmp": snmp,
    "ipmi": ipmi,
    "smtp": smtp,
}
#: Connections with no service, by responder port.
BY_PORT: dict[int, Builder] = {10051: zabbix, 9100: printing}


def build(v: Vocabs, f: Flows, i: int, ob: int, rb: int) -> tuple[bytes, bytes]:
    """Payloads for connection ``i``: (originator bytes, responder bytes), of the row's sizes."""
    maker = BY_SERVICE.get(SERVICES[f.service[i]]) or BY_PORT.get(int(f.dport[i]), opaque)
    return maker(v, f, i, ob, rb)
