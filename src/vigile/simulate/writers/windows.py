"""Payloads of a Windows domain: Kerberos (TGS exchange), LDAP (bind and searches), SMB2.

Each builder returns (originator bytes, responder bytes) of exactly the sizes the
conn row says, as :mod:`.payloads` does. Encrypted parts (ticket and reply ciphers,
file data) are filler of the right length, which is all a capture shows of them
without keys. References: RFC 4120 (Kerberos, TCP framing in 7.2.2), RFC 4511
(LDAP), [MS-SMB2] 2.2 (message layouts), RFC 1002 4.3.1 (the 4-byte session header
of SMB over TCP port 445).
"""

from __future__ import annotations

import functools
import struct
import time
from collections.abc import Callable

from vigile.simulate.flows import Flows, Vocabs
from vigile.simulate.network import DOMAIN
from vigile.simulate.writers.der import (
    BIT_STRING,
    BOOLEAN,
    ENUMERATED,
    GENERAL_STRING,
    GENERALIZED_TIME,
    app,
    ctx,
    fit,
    integer,
    integer_of_length,
    octets,
    seq,
    tlv,
)
from vigile.simulate.writers.payloads import fill

REALM = DOMAIN.upper()
BASE_DN = ",".join(f"DC={p}" for p in DOMAIN.split("."))
AES256 = 18  # aes256-cts-hmac-sha1-96 (RFC 3962)


def _user(v: Vocabs, f: Flows, i: int) -> str:
    return "u" + v.addr.values[f.src[i]].replace(".", "")


def _principal(kind: int, *names: str) -> bytes:
    strings = seq(*(tlv(GENERAL_STRING, n.encode()) for n in names))
    return seq(ctx(0, integer(kind)), ctx(1, strings))


def _encrypted(cipher: bytes, kvno: int | None = None) -> bytes:
    version = ctx(1, integer(kvno)) if kvno is not None else b""
    return seq(ctx(0, integer(AES256)), version, ctx(2, octets(cipher)))


def _ticket(sname: bytes, cipher_size: int) -> bytes:
    enc = _encrypted(fill(cipher_size), 2)
    return app(
        1,
        seq(
            ctx(0, integer(5)),
            ctx(1, tlv(GENERAL_STRING, REALM.encode())),
            ctx(2, sname),
            ctx(3, enc),
        ),
    )


def _ktime(ts: float) -> bytes:
    return tlv(GENERALIZED_TIME, time.strftime("%Y%m%d%H%M%SZ", time.gmtime(ts)).encode())


def _tgs_req(ts: float, service: str, host: str, pad: int, knob: int) -> bytes:
    tgt = _ticket(_principal(2, "krbtgt", REALM), pad)
    ap_req = app(
        14,
        seq(
            ctx(0, integer(5)),
            ctx(1, integer(14)),
            ctx(2, tlv(BIT_STRING, bytes(5))),
            ctx(3, tgt),
            ctx(4, _encrypted(fill(180))),
        ),
    )
    padata = seq(seq(ctx(1, integer(1)), ctx(2, octets(ap_req))))  # PA-TGS-REQ
    body = seq(
        ctx(0, tlv(BIT_STRING, bytes([0, 0x40, 0x81, 0, 0]))),  # forwardable renewable canon.
        ctx(2, tlv(GENERAL_STRING, REALM.encode())),
        ctx(3, _principal(2, service, host)),
        ctx(5, _ktime(ts + 10 * 3600)),
        ctx(7, integer_of_length(knob + 1, int(ts * 1000))),  # nonce
        ctx(8, seq(integer(18), integer(17), integer(23))),
    )
    return app(12, seq(ctx(1, integer(5)), ctx(2, integer(12)), ctx(3, padata), ctx(4, body)))


def _tgs_rep(user: str, service: str, host: str, pad: int, knob: int) -> bytes:
    return app(
        13,
        seq(
            ctx(0, integer(5)),
            ctx(1, integer(13)),
            ctx(3, tlv(GENERAL_STRING, REALM.encode())),
            ctx(4, _principal(1, user)),
            ctx(5, _ticket(_principal(2, service, host), pad)),
            ctx(6, _encrypted(fill(200 + knob), None)),
        ),
    )


def _tcp_record(size: int, make: Callable[[int, int], bytes]) -> bytes:
    """A Kerberos message behind its 4-byte length (RFC 4120 7.2.2) in ``size`` bytes."""
    msg = fit(make, size - 4)
    return struct.pack("!I", len(msg)) + msg


def kerberos(v: Vocabs, f: Flows, i: int, ob: int, rb: int) -> tuple[bytes, bytes]:
    """A TGS-REQ for a file server ticket and its TGS-REP."""
    ts, user, host = float(f.ts[i]), _user(v, f, i), f"file01.{DOMAIN}"
    req = _tcp_record(ob, lambda pad, knob: _tgs_req(ts, "cifs", host, pad, knob))
    rep = _tcp_record(rb, lambda pad, knob: _tgs_rep(user, "cifs", host, pad, knob))
    return req, rep


#: Bytes of an LDAP search for an account; a request holds as many as its size allows.
LDAP_SEARCH = 130


def _ldap(msgid: bytes, op: bytes) -> bytes:
    return seq(msgid, op)


def _search(msgid: bytes, name: str) -> bytes:
    flt = tlv(0xA3, octets(b"sAMAccountName") + octets(name.encode()))  # equalityMatch
    attrs = seq(*(octets(a) for a in (b"memberOf", b"userAccountControl", b"thumbnailPhoto")))
    op = app(
        3,
        octets(BASE_DN.encode()),
        tlv(ENUMERATED, b"\x02"),  # wholeSubtree
        tlv(ENUMERATED, b"\x00"),  # neverDerefAliases
        integer(0),
        integer(0),
        tlv(BOOLEAN, b"\x00"),
        flt,
        attrs,
    )
    return _ldap(msgid, op)


def _account_search(msgid: int, user: str, pad: int, knob: int) -> bytes:
    return _search(integer(msgid), f"{user}-{'x' * pad}")


def _result(tag: int, msgid: int) -> bytes:
    return _ldap(integer(msgid), app(tag, tlv(ENUMERATED, b"\x00"), octets(b""), octets(b"")))


def ldap(v: Vocabs, f: Flows, i: int, ob: int, rb: int) -> tuple[bytes, bytes]:
    """A simple bind, then searches for accounts; the last one finds an entry."""
    user = _user(v, f, i)
    dn = f"CN={user},CN=Users,{BASE_DN}".encode()
    bind = _ldap(integer(1), app(0, integer(3), octets(dn), tlv(0x80, fill(12).hex().encode())))
    request, n, left = [bind], 1, ob - len(bind)
    while left > 2 * LDAP_SEARCH:  # full-size searches, then one of the size left
        n += 1
        msg = fit(functools.partial(_account_search, n, user), LDAP_SEARCH)
        request.append(msg)
        left -= len(msg)
    n += 1
    request.append(
        fit(lambda pad, knob: _search(integer_of_length(knob + 1, n), "a" * (1 + pad)), left)
    )
    response = [_result(1, 1)] + [_result(5, m) for m in range(2, n)]  # bind OK, not found
    done = _result(5, n)
    left = rb - sum(map(len, response)) - len(done)

    def entry(pad: int, knob: int) -> bytes:
        attrs = seq(
            seq(octets(b"userAccountControl"), tlv(0x31, octets(b"512"))),
            seq(octets(b"description"), tlv(0x31, octets(b"d" * (1 + knob)))),
            seq(octets(b"thumbnailPhoto"), tlv(0x31, octets(fill(pad)))),
        )
        return _ldap(integer(n), app(4, octets(f"CN=a,CN=Users,{BASE_DN}".encode()), attrs))

    return b"".join(request), b"".join(response) + fit(entry, left) + done


SMB_CHUNK = 8 << 20  # MaxReadSize offered by the simulated server
_SMB_NEG_REQ = 4 + 64 + 36 + 8
_SMB_READ_REQ = 4 + 64 + 49
_SMB_WRITE_REQ = 4 + 64 + 48
_SMB_NEG_RESP = 4 + 64 + 64
_SMB_READ_RESP = 4 + 64 + 16
_SMB_WRITE_RESP = 4 + 64 + 16
FILE_ID = bytes(range(16))


def smb_reads(rbytes: int) -> int:
    """READ requests a response of ``rbytes`` needs (one per 8 MiB)."""
    return max(1, -(-rbytes // SMB_CHUNK))


def _smb2(command: int, mid: int, body: bytes, response: bool, status: int = 0) -> bytes:
    flags = 1 if response else 0
    head = b"\xfeSMB" + struct.pack(
        "<HHIHHIIQIIQ", 64, 1, status, command, 1, flags, 0, mid, 0, 1, 0x1000
    )
    msg = head + bytes(16) + body  # unsigned
    return struct.pack("!I", len(msg)) + msg  # NBSS: type 0, 24-bit length


def smb(v: Vocabs, f: Flows, i: int, ob: int, rb: int) -> tuple[bytes, bytes]:
    """SMB2 NEGOTIATE, READs of a file and one WRITE (the file server's usual work)."""
    reads = smb_reads(rb)
    dialects = struct.pack("<4H", 0x0202, 0x0210, 0x0300, 0x0302)
    neg = struct.pack("<HHHHI", 36, 4, 1, 0, 0x7F) + FILE_ID + bytes(8) + dialects
    data_r = rb - _SMB_NEG_RESP - reads * _SMB_READ_RESP - _SMB_WRITE_RESP
    data_w = ob - _SMB_NEG_REQ - reads * _SMB_READ_REQ - _SMB_WRITE_REQ
    sizes = [SMB_CHUNK] * (reads - 1) + [data_r - SMB_CHUNK * (reads - 1)]
    req = [_smb2(0, 0, neg, False)]
    resp = [
        _smb2(
            0,
            0,
            struct.pack("<HHHH", 65, 1, 0x0302, 0)
            + FILE_ID
            + struct.pack("<IIIIQQHHI", 0x7F, SMB_CHUNK, SMB_CHUNK, SMB_CHUNK, 0, 0, 128, 0, 0),
            True,
        )
    ]
    offset = 0
    for k, n in enumerate(sizes, 1):
        body = struct.pack("<HBBIQ", 49, 0x50, 0, n, offset) + FILE_ID
        req.append(_smb2(8, k, body + struct.pack("<IIIHH", 1, 0, 0, 0, 0) + b"\0", False))
        resp.append(_smb2(8, k, struct.pack("<HBBIII", 17, 80, 0, n, 0, 0) + fill(n), True))
        offset += n
    write = (
        struct.pack("<HHIQ", 49, 112, data_w, 0) + FILE_ID + struct.pack("<IIHHI", 0, 0, 0, 0, 0)
    )
    req.append(_smb2(9, reads + 1, write + fill(data_w), False))
    resp.append(_smb2(9, reads + 1, struct.pack("<HHIIHH", 17, 0, data_w, 0, 0, 0), True))
    return b"".join(req), b"".join(resp)
