"""How far the payload columns inferred from flow records agree with payload counts.

The same captures go through vigile's pcap reader (payload counts: ``resp_bytes > 0``
is the truth) and through the real exporters on this machine: softflowd (NetFlow v9
one record per direction, and IPFIX biflows with ``-b``) into vigile's collector,
nfdump's ``nfpcapd`` into nfcapd files, and Suricata 7 into EVE ``flow`` and
``netflow`` events. Each pcap connection is matched to the exporter's row with the
same 5-tuple starting within :data:`SLACK_S` (softflowd stamps flows by its own
clock, so its rows are matched by their order among the rows of that 5-tuple); when
there is none, the reversed row stands in with its sides swapped (softflowd's
biflows put the lower address first). Used by ``tests/test_payload_peers.py`` and
``bench/payload.py``.
"""

from __future__ import annotations

import subprocess
import tempfile
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.conftest import shared_data_dir
from tests.netflow_peers import RunningCollector, run_softflowd
from tests.suricata_peer import run_suricata

from vigile.ingest import ingest_paths
from vigile.store.duckdb import DuckDBStore

SLACK_S = 5.0
COLUMNS = ["ts", "src", "src_port", "dst", "dst_port", "proto"]
COLUMNS += [f"{s}_{c}" for s in ("orig", "resp") for c in ("bytes", "payload", "ip_bytes", "pkts")]
Row = dict[str, Any]
Key = tuple[Any, ...]


def stored_rows(db: Path, paths: Iterable[Path]) -> list[Row]:
    """Ingest ``paths`` into a new store at ``db`` and return its conn rows."""
    store = DuckDBStore(db)
    try:
        ingest_paths(store, list(paths))
        return _conn(store)
    finally:
        store.close()


def _conn(store: DuckDBStore) -> list[Row]:
    rows = store.scan("conn", COLUMNS).to_pylist()
    for r in rows:
        r["ts"] = r["ts"].timestamp()
    return rows


def nfpcapd_rows(pcaps: list[Path], work: Path) -> list[Row]:
    """nfpcapd turns each capture into nfcapd files; vigile ingests them."""
    for pcap in pcaps:
        out = work / "nfcapd" / pcap.stem
        out.mkdir(parents=True)
        cmd = ["nfpcapd", "-r", str(pcap), "-w", str(out)]
        subprocess.run(cmd, check=True, capture_output=True, timeout=60)
    return stored_rows(work / "nfcapd.duckdb", [work / "nfcapd"])


def softflowd_rows(pcaps: list[Path], work: Path, version: str, bidir: bool) -> list[Row]:
    """softflowd exports each capture to vigile's collector (default batches)."""
    db = work / f"softflowd-{version}{'b' if bidir else ''}.duckdb"
    sent = 0
    with RunningCollector(db) as run:
        for pcap in pcaps:
            sent += run_softflowd(pcap, run.collector.port, version, bidir, work)
            run.wait_for(sent)
    store = run.open()
    try:
        return _conn(store)
    finally:
        store.close()


def eve_rows(pcaps: list[Path], work: Path, kind: str) -> list[Row]:
    """Suricata's ``kind`` events (``flow`` or ``netflow``) of each capture, ingested."""
    files = []
    for pcap in pcaps:
        eve = run_suricata(pcap, work / "eve" / kind / pcap.stem, (kind,))
        files.append(eve)
    return stored_rows(work / f"eve-{kind}.duckdb", files)


EXPORTERS: dict[str, Callable[[list[Path], Path], list[Row]]] = {
    "softflowd v9": lambda p, w: softflowd_rows(p, w, "9", False),
    "softflowd IPFIX -b": lambda p, w: softflowd_rows(p, w, "10", True),
    "nfpcapd": nfpcapd_rows,
    "Suricata flow": lambda p, w: eve_rows(p, w, "flow"),
    "Suricata netflow": lambda p, w: eve_rows(p, w, "netflow"),
}


@dataclass
class Agreement:
    """Inferred payload against the truth, for one (protocol, side)."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0
    unknown: int = 0
    #: Of ``unknown``, the sides that did send payload.
    unknown_payload: int = 0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def recall_null_as_no(self) -> float:
        """Recall as a detector sees it: a null (cannot be told) counts as no payload."""
        told = self.tp + self.fn
        return self.tp / (told + self.unknown_payload) if told + self.unknown_payload else 1.0

    @property
    def known(self) -> int:
        return self.tp + self.fp + self.fn + self.tn

    def add(self, truth: bool, inferred: bool | None) -> None:
        if inferred is None:
            self.unknown += 1
            self.unknown_payload += truth
        elif inferred:
            self.tp, self.fp = self.tp + truth, self.fp + (not truth)
        else:
            self.fn, self.tn = self.fn + truth, self.tn + (not truth)


def _key(r: Row) -> Key:
    return (r["src"], r["src_port"], r["dst"], r["dst_port"], r["proto"])


def _flipped(r: Row) -> Row:
    out = dict(r)
    for c in ("bytes", "payload", "ip_bytes", "pkts"):
        out[f"orig_{c}"], out[f"resp_{c}"] = r[f"resp_{c}"], r[f"orig_{c}"]
    return out


def matches(truth: list[Row], rows: list[Row], by_order: bool) -> list[tuple[Row, Row | None]]:
    """Each TCP/UDP pcap connection with the exporter's row for it (or None)."""
    by_key: dict[Key, list[Row]] = defaultdict(list)
    for r in rows:
        by_key[_key(r)].append(r)
    for rs in by_key.values():
        rs.sort(key=lambda r: r["ts"])
    conns = sorted((t for t in truth if t["proto"] in ("tcp", "udp")), key=lambda t: t["ts"])
    rank: dict[Key, int] = defaultdict(int)
    out: list[tuple[Row, Row | None]] = []
    for t in conns:
        k = _key(t)
        i, rank[k] = rank[k], rank[k] + 1
        found = _pick(by_key.get(k, []), t["ts"], i, by_order)
        if found is None:
            back = (k[2], k[3], k[0], k[1], k[4])
            reverse = _pick(by_key.get(back, []), t["ts"], i, by_order)
            found = None if reverse is None else _flipped(reverse)
        out.append((t, found))
    return out


def _pick(rows: list[Row], ts: float, i: int, by_order: bool) -> Row | None:
    if by_order:
        return rows[i] if i < len(rows) else None
    near = [r for r in rows if abs(r["ts"] - ts) <= SLACK_S]
    return min(near, key=lambda r: abs(r["ts"] - ts)) if near else None


def agreement(pairs: list[tuple[Row, Row | None]]) -> dict[tuple[str, str], Agreement]:
    """Agreement per (protocol, side) of the matched rows' payload columns."""
    out: dict[tuple[str, str], Agreement] = defaultdict(Agreement)
    for t, r in pairs:
        for side in ("orig", "resp"):
            truth = t[f"{side}_bytes"]
            if truth is None:
                continue
            inferred = None if r is None else r[f"{side}_payload"]
            out[(t["proto"], side)].add(truth > 0, inferred)
    return dict(out)


def _strict(r: Row | None, side: str) -> bool | None:
    """The side's payload under the bound of the headers' maxima (146 bytes a packet),
    from the row's own counters (biflows carry both sides)."""
    if r is None or r[f"{side}_pkts"] is None or r[f"{side}_ip_bytes"] is None:
        return None
    if r["proto"] == "udp":
        return r[f"{side}_payload"]
    return bool(r[f"{side}_ip_bytes"] > r[f"{side}_pkts"] * STRICT_BYTES_PER_PACKET)


#: The headers' maxima: IPv4 60 (IHL), TCP 60 (Data Offset), link 26 (Ethernet, two
#: 802.1Q tags, FCS): the bound ``scan`` used before the payload columns.
STRICT_BYTES_PER_PACKET = 60 + 60 + 26


def table(pcaps: list[Path], work: Path) -> str:
    """The agreement table (markdown) of every exporter on ``pcaps``."""
    truth = stored_rows(work / "pcap.duckdb", pcaps)
    lines = [
        "| exporter | proto | side | connections | told | precision | recall "
        "| recall, null as no | recall at 146 B/packet |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, export in EXPORTERS.items():
        pairs = matches(truth, export(pcaps, work), by_order=name.startswith("softflowd"))
        strict: dict[tuple[str, str], Agreement] = defaultdict(Agreement)
        biflow = name in ("softflowd IPFIX -b", "Suricata flow")
        for t, r in pairs:
            for side in ("orig", "resp"):
                if biflow and t[f"{side}_bytes"] is not None:
                    strict[(t["proto"], side)].add(t[f"{side}_bytes"] > 0, _strict(r, side))
        for (proto, side), a in sorted(agreement(pairs).items()):
            s = strict.get((proto, side))
            at_max = f"{s.recall:.3f}" if s is not None and proto == "tcp" else "–"
            lines.append(
                f"| {name} | {proto} | {side} | {a.known + a.unknown} | {a.known} "
                f"| {a.precision:.3f} ({a.fp} wrong) | {a.recall:.3f} ({a.fn} missed) "
                f"| {a.recall_null_as_no:.3f} | {at_max} |"
            )
    return "\n".join(lines)


def main() -> None:
    """``python -m tests.payload_agreement``: the table over every shared capture."""
    pcaps = sorted((shared_data_dir() / "pcap").glob("*/*.pcap*"))
    with tempfile.TemporaryDirectory() as tmp:
        print(table(pcaps, Path(tmp)))


if __name__ == "__main__":
    main()
