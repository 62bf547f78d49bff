"""Regenerate the detector golden files: ``python tests/golden/detect/regenerate.py``.

Each detector has a folder here with ``input/`` (small Zeek logs and a vigile.toml,
written by this script from a fixed seed when missing, or always with ``--inputs``)
and ``expected.jsonl`` (the detector's findings on that input, one JSON object per
line, as ``vigile hunt --json`` prints them). Review the diff before committing.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from vigile.config import Config, load_config
from vigile.detect import HuntContext, default_window, registered_detectors
from vigile.ingest import ingest_paths
from vigile.store.duckdb import DuckDBStore

HERE = Path(__file__).resolve().parent
T0 = 1_700_000_000.0
CONN_FIELDS = [
    "ts",
    "uid",
    "id.orig_h",
    "id.orig_p",
    "id.resp_h",
    "id.resp_p",
    "proto",
    "service",
    "duration",
    "orig_bytes",
    "resp_bytes",
    "conn_state",
    "history",
    "orig_pkts",
    "orig_ip_bytes",
    "resp_pkts",
    "resp_ip_bytes",
]


def _write(path: Path, log: str, fields: list[str], rows: Iterable[list[object]]) -> None:
    lines = ["#separator \\x09", "#set_separator\t,", "#empty_field\t(empty)", "#unset_field\t-"]
    lines += [f"#path\t{log}", "#fields\t" + "\t".join(fields)]
    lines += ["\t".join("-" if v is None else str(v) for v in row) for row in rows]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _conn(ts: float, uid: str, src: str, dst: str, port: int, *, proto: str = "tcp",
          service: str | None = None, duration: float = 0.5, out: int = 300,
          back: int = 1200) -> list[object]:  # fmt: skip
    return [f"{ts:.6f}", uid, src, 50000, dst, port, proto, service, f"{duration:.6f}",
            out, back, "SF", "ShADadFf", 6, out + 320, 6, back + 320]  # fmt: skip


def _times(rng: np.random.Generator, period: float, jitter: float, span: float) -> np.ndarray:
    d = period * (1 + rng.uniform(-jitter, jitter, int(span / period) + 2))
    t = T0 + np.cumsum(d)
    return t[t < T0 + span]


def beacon_inputs(folder: Path, rng: np.random.Generator) -> None:
    conn, http, ssl = [], [], []
    for i, t in enumerate(_times(rng, 600, 0.3, 86_400)):
        uid = f"CT{i}"
        conn.append(_conn(t, uid, "10.0.0.5", "203.0.113.7", 443, service="ssl"))
        ssl.append([f"{t + 0.05:.6f}", uid, "10.0.0.5", 50000, "203.0.113.7", 443,
                    "update.example-c2.net"])  # fmt: skip
    for i, t in enumerate(_times(rng, 300, 0.1, 86_400)):
        uid = f"CH{i}"
        conn.append(_conn(t, uid, "10.0.0.6", "198.51.100.9", 80, service="http", out=180))
        http.append([f"{t + 0.01:.6f}", uid, "10.0.0.6", 50000, "198.51.100.9", 80, 1, "GET",
                     None, "/c", "Mozilla/4.0"])  # fmt: skip
    for i, t in enumerate(T0 + np.cumsum(rng.exponential(900, 90))):
        conn.append(
            _conn(t, f"CP{i}", "10.0.0.7", "192.0.2.10", 443, out=int(rng.integers(200, 9000)))
        )
    _write(folder / "conn.log", "conn", CONN_FIELDS, sorted(conn, key=lambda r: r[0]))
    _write(
        folder / "ssl.log",
        "ssl",
        ["ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "server_name"],
        ssl,
    )
    fields = "ts uid id.orig_h id.orig_p id.resp_h id.resp_p trans_depth method host uri user_agent"
    _write(folder / "http.log", "http", fields.split(), http)


def long_connection_inputs(folder: Path, rng: np.random.Generator) -> None:
    conn = [_conn(T0 + 600 * i, f"CL{i}", "10.0.0.5", "198.51.100.20", 443, duration=400.0)
            for i in range(100)]  # fmt: skip
    conn += [_conn(T0 + 900 * i, f"CS{i}", "10.0.0.8", "198.51.100.21", 443, duration=2.0)
             for i in range(50)]  # fmt: skip
    # An outside client's IMAP sessions to the mail server, 30 min each, one after
    # another (15 h in all), and three more clients of that service: halved.
    conn += [_conn(T0 + 1800 * i, f"CM{i}", "198.51.100.40", "10.0.0.25", 993, duration=1790.0)
             for i in range(30)]  # fmt: skip
    conn += [_conn(T0 + 60 * i, f"CC{i}", f"10.0.0.{60 + i}", "10.0.0.25", 993, duration=30.0)
             for i in range(3)]  # fmt: skip
    _write(folder / "conn.log", "conn", CONN_FIELDS, conn)
    snaps = [_conn(T0 - 3600, "COPEN", "203.0.113.50", "10.0.0.22", 22, service="ssh",
                   duration=3600.0 * h) for h in range(1, 26)]  # fmt: skip
    _write(folder / "open_conn.log", "open_conn", CONN_FIELDS, snaps)


def strobe_inputs(folder: Path, rng: np.random.Generator) -> None:
    conn = [_conn(T0 + 100 * i, f"CX{i}", "10.0.0.5", "198.51.100.30", 53, proto="udp")
            for i in range(600)]  # fmt: skip
    conn += [_conn(T0 + 200 * i + 7, f"CY{i}", "10.0.0.6", "198.51.100.31", 53, proto="udp")
             for i in range(400)]  # fmt: skip
    _write(folder / "conn.log", "conn", CONN_FIELDS, sorted(conn, key=lambda r: r[0]))
    (folder / "vigile.toml").write_text("[detectors.strobe]\nper_day = 500\n", encoding="utf-8")


def dns_c2_inputs(folder: Path, rng: np.random.Generator) -> None:
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz234567"))
    rows = []

    def q(i: int, src: str, name: str, qtype: str, rcode: int) -> None:
        code = {"A": 1, "TXT": 16, "NULL": 10}[qtype]
        rname = {0: "NOERROR", 3: "NXDOMAIN"}[rcode]
        rows.append([f"{T0 + i:.6f}", f"CD{i}", src, 5353, "10.0.0.53", 53, "udp", i % 65536,
                     name, code, qtype, rcode, rname, None])  # fmt: skip

    for i in range(150):
        q(i, "10.0.0.5", "".join(rng.choice(letters, 52)) + ".t.tunnel-example.org", "TXT", 0)
    for i in range(45):
        cons, vow = list("bcdfghjklmnpqrstvwxz"), list("aeiouy")
        label = "".join(rng.choice(cons) + rng.choice(vow) for _ in range(3)) + rng.choice(cons)
        q(1000 + i, "10.0.0.9", f"{label}.com", "A", 3)
    for i, name in enumerate(
        ["www.example.com", "mail.example.com", "example.org", "typo.exmple.com"] * 5
    ):
        q(2000 + i, "10.0.0.10", name, "A", 3 if "exmple" in name else 0)
    fields = "ts uid id.orig_h id.orig_p id.resp_h id.resp_p proto trans_id query qtype"
    fields += " qtype_name rcode rcode_name answers"
    _write(folder / "dns.log", "dns", fields.split(), rows)


def scan_inputs(folder: Path, rng: np.random.Generator) -> None:
    def probe(ts: float, src: str, dst: str, port: int, state: str, out: int = 0) -> list[object]:
        row = _conn(ts, f"CN{int(ts * 1000) % 10**9}{port}", src, dst, port, duration=0.0,
                    out=out, back=0)  # fmt: skip
        row[11], row[12] = state, "S" if state == "S0" else "Sr"
        return row

    conn = []
    # An internal desktop sweeps 60 hosts on 22 and 445 within two minutes (address scan),
    # then 40 ports of one server, which rejects them (port scan).
    for i in range(120):
        conn.append(probe(T0 + i, "10.0.0.40", f"10.0.1.{i // 2 + 1}", (22, 445)[i % 2], "S0"))
    for i in range(40):
        conn.append(probe(T0 + 600 + i, "10.0.0.40", "10.0.1.5", 1000 + i, "REJ"))
    # The admin host's vulnerability scanner: 30 hosts on 3389, rejected.
    for i in range(30):
        conn.append(probe(T0 + 900 + i, "10.0.0.2", f"10.0.1.{i + 1}", 3389, "REJ"))
    # Outside scanner: 20 ports of one internal host, unanswered (internet background).
    for i in range(20):
        conn.append(probe(T0 + 1200 + i * 5, "198.51.100.66", "10.0.0.22", 2000 + i, "S0"))
    # Below the thresholds: 24 hosts on one port, and 14 ports of one host.
    for i in range(24):
        conn.append(probe(T0 + 1800 + i, "10.0.0.41", f"10.0.2.{i + 1}", 80, "S0"))
    for i in range(14):
        conn.append(probe(T0 + 2400 + i, "10.0.0.42", "10.0.2.9", 3000 + i, "REJ"))
    # Resets after payload are not failed attempts: 30 hosts, RSTO with data.
    for i in range(30):
        conn.append(probe(T0 + 3000 + i, "10.0.0.43", f"10.0.3.{i + 1}", 443, "RSTO", out=500))
    # Slow: 40 hosts on 23, one every 30 s, never 25 within one 5-minute epoch.
    for i in range(40):
        conn.append(probe(T0 + 4000 + 30 * i, "10.0.0.44", f"10.0.4.{i + 1}", 23, "S0"))
    conn += udp_scan_rows(rng) + backscatter_rows()
    _write(folder / "conn.log", "conn", CONN_FIELDS, sorted(conn, key=lambda r: r[0]))
    (folder / "vigile.toml").write_text(
        '[network]\ninternal = ["10.0.0.0/8"]\nadmin_hosts = ["10.0.0.2/32"]\n',
        encoding="utf-8",
    )


def _udp(ts: float, src: str, sport: int, dst: str, port: int, state: str, *, out: int = 40,
         back: int = 0) -> list[object]:  # fmt: skip
    """A UDP flow as Zeek logs it: S0 (only the originator sent), SHR (only the
    responder sent: Zeek turned it around, history ``^d``) or SF (both sent)."""
    history = {"S0": "D", "SHR": "^d", "SF": "Dd"}[state]
    o_pk, r_pk = (0 if state == "SHR" else 1), (0 if state == "S0" else 1)
    return [f"{ts:.6f}", f"CU{int(ts * 1000) % 10**9}{port}{sport}", src, sport, dst, port,
            "udp", None, f"{0.0 if state != 'SF' else 0.02:.6f}", out * o_pk, back * r_pk,
            state, history, o_pk, (out + 28) * o_pk, r_pk, (back + 28) * r_pk]  # fmt: skip


def udp_scan_rows(rng: np.random.Generator) -> list[list[object]]:
    """UDP scans that must be found and UDP clients that must not be."""
    t, rows = T0 + 6000, []
    # An internal desktop probes 40 UDP ports of a server (nmap -sU): nothing comes
    # back but ICMP port unreachable, except from DNS and NTP, which answer.
    for i, port in enumerate([*range(2000, 2040), 53, 123]):
        state = "SF" if port in (53, 123) else "S0"
        rows.append(_udp(t + i, "10.0.0.50", 40000 + i, "10.0.1.7", port, state, back=60))
    # An outside sweep of 60 hosts on 161/udp (SNMP); 5 printers answer.
    for i in range(60):
        state = "SF" if i % 12 == 0 else "S0"
        rows.append(_udp(t + 600 + i, "203.0.113.80", 41000 + i, f"10.0.5.{i + 1}", 161, state,
                         back=90))  # fmt: skip
    # An outside port scan sent from source port 53 (nmap -g 53): Zeek turns each probe
    # around (53 is a likely server port), so the scanner is the logged responder.
    for i in range(20):
        rows.append(_udp(t + 1200 + i, "10.0.0.23", 3000 + i, "198.51.100.77", 53, "SHR"))
    # Busy DNS client: 2,000 queries to one resolver, 2 % unanswered.
    for i in range(2000):
        state = "S0" if rng.random() < 0.02 else "SF"
        rows.append(_udp(t + 20 * i, "10.0.0.60", 20000 + i % 30000, "10.0.0.53", 53, state,
                         back=120))  # fmt: skip
    # NTP client polling four servers every 64 s; one server is gone.
    for i in range(600):
        server = f"192.0.2.{120 + i % 4}"
        state = "S0" if server.endswith("123") else "SF"
        rows.append(_udp(t + 64 * i, "10.0.0.61", 123, server, 123, state, out=48, back=48))
    # Browsing over QUIC: 200 sites on 443/udp in 20 minutes, one in ten unanswered.
    for i in range(200):
        state = "S0" if i % 10 == 0 else "SF"
        rows.append(_udp(t + 6 * i, "10.0.0.62", 50000 + i, f"192.0.2.{i % 100}", 443, state,
                         out=1250, back=20000))  # fmt: skip
    # A recursive resolver asks 300 name servers in 100 s; 30 of them are dead.
    for i in range(300):
        state = "S0" if i % 10 == 0 else "SF"
        host = f"198.18.{i // 250}.{i % 250 + 1}"
        rows.append(_udp(t + i / 3, "10.0.0.53", 30000 + i, host, 53, state, back=200))
    # traceroute to an outside host: 90 probes, ports 33434-33523, answered by ICMP.
    for i in range(90):
        rows.append(_udp(t + 2400 + i / 3, "10.0.0.63", 45000, "198.51.100.99", 33434 + i,
                         "S0", out=32))  # fmt: skip
    return rows


def backscatter_rows() -> list[list[object]]:
    """TCP SYN/ACKs nobody here asked for: replies of flooded servers to spoofed SYNs."""
    rows = []
    # One flooded server answers 30 spoofed SYNs "from" 10.0.0.24 (older Zeek logs the
    # SYN/ACK's sender as originator, history H).
    for i in range(30):
        rows.append(_conn(T0 + 8000 + i, f"CB{i}", "192.0.2.200", "10.0.0.24", 1024 + 97 * i,
                          duration=0.0, out=0, back=0))  # fmt: skip
        rows[-1][3], rows[-1][11], rows[-1][12] = 80, "OTH", "H"
    # 30 flooded servers answer SYNs spoofed from 10.0.0.25 (Zeek turns each around:
    # the SYN/ACK's receiver is the logged originator, history ^h).
    for i in range(30):
        rows.append(_conn(T0 + 8100 + i, f"CF{i}", "10.0.0.25", f"192.0.2.{150 + i}", 80,
                          duration=0.0, out=0, back=0))  # fmt: skip
        rows[-1][3], rows[-1][11], rows[-1][12] = 2000 + i, "OTH", "^h"
    return rows


INPUTS = {
    "beacon": beacon_inputs,
    "long_connection": long_connection_inputs,
    "strobe": strobe_inputs,
    "dns_c2": dns_c2_inputs,
    "scan": scan_inputs,
}


def findings_for(name: str, folder: Path, db: Path) -> list[dict[str, object]]:
    """The detector's findings on ``folder``, as JSON objects in a stable order."""
    (detector,) = [d for d in registered_detectors() if d.name == name]
    config_path = folder / "vigile.toml"
    config = load_config(config_path) if config_path.exists() else Config()
    store = DuckDBStore(db)
    try:
        ingest_paths(store, [folder])
        findings = detector().run(HuntContext(store, config, default_window(store, 24)))
    finally:
        store.close()
    rows = [f.to_json() for f in findings]
    return sorted(
        rows, key=lambda r: (-r["score"], r["src"] or "", r["dst"] or "", r["fqdn"] or "")
    )


def main(argv: list[str]) -> None:
    import tempfile

    for i, (name, make) in enumerate(INPUTS.items()):
        folder = HERE / name / "input"
        if "--inputs" in argv or not folder.exists():
            make(folder, np.random.default_rng(1000 + i))
        with tempfile.TemporaryDirectory() as tmp:
            rows = findings_for(name, folder, Path(tmp) / "golden.duckdb")
        text = "".join(json.dumps(r, sort_keys=True, ensure_ascii=False) + "\n" for r in rows)
        (HERE / name / "expected.jsonl").write_text(text, encoding="utf-8")
        print(f"{name}: {len(rows)} findings")


if __name__ == "__main__":
    main(sys.argv[1:])
