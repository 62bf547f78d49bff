"""nfdump's nfcapd files, read through the ``nfdump`` program itself.

The nfcapd format is nfdump's own (versioned, compressed with LZO, LZ4, BZ2 or
ZSTD); rather than re-implement it, vigile runs ``nfdump -r FILE -o json`` with
``TZ=UTC`` and reads the records it prints. Positions are record numbers.
``conn_state`` comes from each record's ``tcp_flags``, and the payload columns from
its bytes and packets, the records paired by direction
(:func:`vigile.ingest.flowstate.conn_states`, ``conn_payload``) in batches of
50,000; a record with no partner in its batch waits for it through the next
:data:`PAIR_RECORDS` records of the file (:class:`~vigile.ingest.pairhold.PairHold`),
so pairs that straddle a batch boundary are still paired. A pair is stored as one
row, the originator's record with its partner's counters as the responder side; the
partner is counted in a notice (``N responder records merged …``). Files are not
paired with each other: each file is one input, stored in one transaction, whatever
its neighbours hold.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import IO, Any, ClassVar

import pyarrow as pa

from vigile.errors import InputError, Location
from vigile.ingest.base import Sink, SourceFile
from vigile.ingest.pairhold import PairHold
from vigile.schema import TS

MAGIC = b"\x0c\xa5"  # 0xA50C, little-endian, then the layout version (1 or 2)
BATCH = 50_000
#: How many later records of the file a record with no partner yet meets before it is
#: stored alone (nfcapd stores records as they came: partners are close together).
PAIR_RECORDS = 50_000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
INSTALL_HINT = (
    "reading nfcapd files needs the nfdump program, which is not installed; install it "
    "with `apt-get install nfdump` (Debian, Ubuntu) or `brew install nfdump` (macOS)"
)
PROTO_NAMES = {1: "icmp", 6: "tcp", 17: "udp", 58: "icmp6"}
#: nfdump prints TCP flags as eight characters, CWR ECE URG ACK PSH RST SYN FIN, "." unset.
FLAG_BITS = (0x80, 0x40, 0x20, 0x10, 0x08, 0x04, 0x02, 0x01)
#: nfdump 1.7.1 loops without end on some damaged files, printing one error line over
#: and over ("Error process appendix record type: 3"): past this much error output it
#: is stopped and the file refused.
MAX_ERROR_CHARS = 1 << 20


class _ErrorDrain(threading.Thread):
    """Reads nfdump's error output while its records are read (a full stderr pipe would
    stop it), keeping the end; stops nfdump once it has printed ``MAX_ERROR_CHARS``."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        super().__init__(daemon=True)
        self.proc, self.head, self.tail, self.flooded = proc, "", "", False

    def run(self) -> None:
        assert self.proc.stderr is not None
        total = 0
        while chunk := self.proc.stderr.read(1 << 16):
            total += len(chunk)
            self.head = self.head or chunk[:4096]
            self.tail = (self.tail + chunk)[-4096:]
            if total > MAX_ERROR_CHARS and not self.flooded:
                self.flooded = True
                self.proc.kill()

    def reason(self) -> str:
        if self.flooded:  # the end was cut by the kill: say what it began with
            return f"{self.head.strip().splitlines()[0]} (printed without end; stopped)"
        lines = self.tail.strip().splitlines()
        return lines[-1] if lines else "unreadable"


def _objects(stream: IO[str]) -> Iterator[str]:
    """The text of each top-level object in nfdump's pretty-printed JSON list."""
    buf: list[str] = []
    for line in stream:
        stripped = line.strip()
        if stripped == "{":
            buf = []
        elif stripped in ("}", "},", "}]"):
            yield "{" + "".join(buf) + "}"
        elif stripped not in ("[", "]"):
            buf.append(line)


def _time(text: Any) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _tcp_flags(text: Any) -> int | None:
    """nfdump's ``tcp_flags`` (``"...AP.SF"``) as bits.

    >>> _tcp_flags("...AP.SF"), _tcp_flags("......S."), _tcp_flags(None)
    (27, 2, None)
    """
    if not isinstance(text, str) or len(text) != len(FLAG_BITS):
        return None
    return sum(bit for bit, c in zip(FLAG_BITS, text, strict=True) if c != ".")


def _us(t: datetime) -> int:
    return (t - EPOCH) // timedelta(microseconds=1)


#: The integer fields of a row and the range each must fit (ports in 16 bits, RFC 9293
#: section 3.1; counters in a signed 64-bit column): a damaged file can hold anything.
_RANGES = {
    "src_port": 65_535,
    "dst_port": 65_535,
    "orig_pkts": 2**63 - 1,
    "orig_ip_bytes": 2**63 - 1,
    "resp_pkts": 2**63 - 1,
    "resp_ip_bytes": 2**63 - 1,
}


def _checked(row: dict[str, Any]) -> dict[str, Any]:
    """``row``, or ValueError for an integer field outside its range (rejected)."""
    for name, top in _RANGES.items():
        value = row[name]
        if value is not None and not (isinstance(value, int) and 0 <= value <= top):
            raise ValueError(f"{name} {value!r} is not an integer from 0 to {top}")
    return row


def _row(r: dict[str, Any]) -> dict[str, Any]:
    start, end = _time(r["first"]), _time(r["last"])
    proto = int(r.get("proto", 0))
    sport, dport = r.get("src_port"), r.get("dst_port")
    if proto in (1, 58) and "icmp_type" in r:
        sport, dport = r.get("icmp_type"), r.get("icmp_code")
    return {
        "ts": start,
        "src": r.get("src4_addr") or r["src6_addr"],
        "src_port": sport,
        "dst": r.get("dst4_addr") or r["dst6_addr"],
        "dst_port": dport,
        "proto": PROTO_NAMES.get(proto, str(proto)),
        "duration": max((end - start).total_seconds(), 0.0),
        "orig_pkts": r.get("in_packets", 0),
        "orig_ip_bytes": r.get("in_bytes", 0),
        "resp_pkts": r.get("out_packets"),
        "resp_ip_bytes": r.get("out_bytes"),
        "sensor": r.get("ip4_router") or r.get("ip6_router"),
        "open": False,
        "_start_us": _us(start),
        "_end_us": _us(end),
        "_proto": proto,
        "_flags": _tcp_flags(r.get("tcp_flags")),
    }


class NfcapdReader:
    """nfcapd files (nfdump's collector format)."""

    name: ClassVar[str] = "nfcapd"
    position_unit: ClassVar[str] = "record"
    description: ClassVar[str] = "nfdump nfcapd flow files (read with the nfdump program)"

    @classmethod
    def sniff(cls, head: bytes) -> bool:
        return head[:2] == MAGIC and head[2:4] in (b"\x01\x00", b"\x02\x00")

    def read(self, source: SourceFile, sink: Sink) -> None:
        program = shutil.which("nfdump")
        if program is None:
            raise InputError(Location(source.path), INSTALL_HINT)
        if source.compression is not None:
            raise InputError(
                Location(source.path), f"decompress this {source.compression} file first"
            )
        sink.set_log_type("conn")
        cmd = [program, "-r", str(source.path), "-o", "json"]
        env = {**os.environ, "TZ": "UTC"}
        with subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        ) as proc:
            assert proc.stdout is not None
            errors = _ErrorDrain(proc)
            errors.start()
            rows: list[dict[str, Any]] = []
            hold, read = PairHold(wait=PAIR_RECORDS), 0  # the clock: records read
            for number, text in enumerate(_objects(proc.stdout), 1):
                try:
                    record = json.loads(text)
                    if record.get("type") != "FLOW":
                        continue
                    rows.append({**_checked(_row(record)), "source_pos": number})
                except (ValueError, KeyError, TypeError) as e:
                    sink.reject(number, f"unreadable nfdump record: {e}", text)
                if len(rows) >= BATCH:
                    read += len(rows)
                    _emit(sink, rows, hold, read)
            _emit(sink, rows, hold, read + len(rows), final=True)
            for line in hold.exporters.notices():
                sink.notice(line)
            if hold.merged:
                sink.notice(
                    f"{hold.merged} responder records merged into their originator's row "
                    "(one row per connection)"
                )
            errors.join()
        if proc.returncode != 0 or errors.flooded:
            raise InputError(Location(source.path), f"nfdump failed: {errors.reason()}")


def _emit(
    sink: Sink, rows: list[dict[str, Any]], hold: PairHold, read: int, final: bool = False
) -> None:
    """Pass one batch of rows through ``hold`` (``read``: records read so far, its
    clock) and emit what it releases."""
    table = None
    if rows:
        types = {"ts": TS, "src_port": pa.int32(), "dst_port": pa.int32()}
        types |= {"duration": pa.float64(), "orig_pkts": pa.int64(), "resp_pkts": pa.int64()}
        table = pa.table(
            {name: pa.array([r[name] for r in rows], types.get(name)) for name in rows[0]}
        )
        rows.clear()
    out = hold.release(table, read, final=final)
    if out.num_rows:
        sink.emit(
            "conn", {name: out[name].combine_chunks() for name in out.column_names}, out.num_rows
        )
