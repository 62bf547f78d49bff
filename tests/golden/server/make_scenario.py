"""Write the golden scenario for the server-side detectors as Zeek JSON logs.

Run from the repository root: ``python tests/golden/server/make_scenario.py``. The
output is committed; ``regen.py`` then rewrites the expected findings. The scenario
(three days, 2024-05-01..03 UTC; the hunt window is the third day):

* mail server 10.0.0.25: SMTP from the internet, IMAP and OWA for six internal
  clients every hour; on day 3, 13:00-15:59, external 89.248.165.74 downloads
  about 400 MB over IMAPS (a mailbox) — exfil;
* BMC 10.9.0.5 (management subnet): IPMI from admin host 10.0.0.50 every hour; on
  day 3 it beacons to 185.220.101.7:443, resolves ``fw-update.badbmc.net``, and
  workstation 10.0.1.7 (not an admin host) reaches its IPMI port — role_violation;
* web server 10.0.0.80: HTTPS for the internet; on day 3 it opens 4444/tcp to
  45.77.1.2 — role_violation (server outbound);
* workstations 10.0.1.1-6 browse the same common sites; on day 3 10.0.1.3 reaches
  the new address 91.219.236.18 (listed in the indicator files), 10.0.1.4 looks
  up ``x.evil-cdn.example`` (STIX) and 10.0.1.5 fetches ``kb.windowsupdate.com``
  from a new address (suppressed by the built-in priors);
* DNS server 10.0.0.53 answers every workstation.
"""

from __future__ import annotations

import gzip
import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

HERE = Path(__file__).parent
START = datetime(2024, 5, 1, tzinfo=UTC)
WORKSTATIONS = [f"10.0.1.{i}" for i in range(1, 7)]
COMMON = {"13.107.42.14": "www.office.com", "142.250.74.46": "www.google.com"}
SMTP_PEERS = ["40.92.10.5", "40.92.11.6", "209.85.220.41"]


class Logs:
    """Zeek JSON records, per log, with deterministic uids."""

    def __init__(self) -> None:
        self.rows: dict[str, list[dict[str, object]]] = {
            "conn": [],
            "dns": [],
            "http": [],
            "ssl": [],
        }
        self.n = 0
        self.rng = random.Random(7)

    def conn(
        self,
        ts: datetime,
        src: str,
        dst: str,
        port: int,
        proto: str = "tcp",
        ob: int = 500,
        rb: int = 2000,
        service: str | None = None,
        state: str = "SF",
    ) -> str:
        self.n += 1
        uid = f"C{self.n:08d}"
        self.rows["conn"].append(
            {
                "_path": "conn",
                "ts": ts.timestamp(),
                "uid": uid,
                "id.orig_h": src,
                "id.orig_p": 40000 + self.n % 20000,
                "id.resp_h": dst,
                "id.resp_p": port,
                "proto": proto,
                "service": service,
                "duration": 1.5,
                "orig_bytes": ob,
                "resp_bytes": rb,
                "conn_state": state,
                "history": "ShADadFf",
                "orig_pkts": 10,
                "orig_ip_bytes": ob + 400,
                "resp_pkts": 10,
                "resp_ip_bytes": rb + 400,
            }
        )
        return uid

    def dns(self, ts: datetime, src: str, query: str, answers: list[str]) -> None:
        uid = self.conn(ts, src, "10.0.0.53", 53, "udp", 40, 80, "dns")
        self.rows["dns"].append(
            {
                "_path": "dns",
                "ts": ts.timestamp(),
                "uid": uid,
                "id.orig_h": src,
                "id.orig_p": 53000,
                "id.resp_h": "10.0.0.53",
                "id.resp_p": 53,
                "proto": "udp",
                "trans_id": 1,
                "query": query,
                "qtype": 1,
                "qtype_name": "A",
                "rcode": 0,
                "rcode_name": "NOERROR",
                "answers": answers,
                "TTLs": [300.0] * len(answers),
            }
        )

    def tls(
        self, ts: datetime, src: str, dst: str, sni: str, ob: int = 800, rb: int = 5000
    ) -> None:
        uid = self.conn(ts, src, dst, 443, ob=ob, rb=rb, service="ssl")
        self.rows["ssl"].append(
            {
                "_path": "ssl",
                "ts": ts.timestamp(),
                "uid": uid,
                "id.orig_h": src,
                "id.orig_p": 50000,
                "id.resp_h": dst,
                "id.resp_p": 443,
                "version": "TLSv13",
                "cipher": "TLS_AES_128_GCM_SHA256",
                "server_name": sni,
                "established": True,
            }
        )

    def http(self, ts: datetime, src: str, dst: str, host: str | None, uri: str, ua: str) -> None:
        uid = self.conn(ts, src, dst, 80, service="http")
        self.rows["http"].append(
            {
                "_path": "http",
                "ts": ts.timestamp(),
                "uid": uid,
                "id.orig_h": src,
                "id.orig_p": 50001,
                "id.resp_h": dst,
                "id.resp_p": 80,
                "trans_depth": 1,
                "method": "GET",
                "host": host,
                "uri": uri,
                "user_agent": ua,
                "status_code": 200,
                "request_body_len": 0,
                "response_body_len": 1500,
            }
        )


def hour_of(logs: Logs, t: datetime, day: int) -> None:
    rng = logs.rng
    for ws in WORKSTATIONS:
        for ip, name in COMMON.items():
            logs.dns(t + timedelta(minutes=1), ws, name, [ip])
            logs.tls(t + timedelta(minutes=2), ws, ip, name, rb=rng.randint(20_000, 60_000))
        logs.conn(
            t + timedelta(minutes=3),
            ws,
            "10.0.0.25",
            993,
            ob=2_000,
            rb=rng.randint(150_000, 250_000),
            service="ssl",
        )
        logs.http(
            t + timedelta(minutes=4),
            ws,
            "10.0.0.25",
            "mail.corp.example",
            "/owa/",
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64)",
        )
    for peer in SMTP_PEERS:
        logs.conn(
            t + timedelta(minutes=5), peer, "10.0.0.25", 25, ob=30_000, rb=600, service="smtp"
        )
    logs.conn(
        t + timedelta(minutes=6),
        "10.0.0.25",
        "40.92.10.5",
        25,
        ob=rng.randint(20_000, 40_000),
        rb=500,
        service="smtp",
    )
    for k in range(4):
        client = f"77.{20 + k}.{day}.{t.hour + 1}"
        logs.conn(
            t + timedelta(minutes=7 + k),
            client,
            "10.0.0.80",
            443,
            ob=1_500,
            rb=rng.randint(40_000, 80_000),
            service="ssl",
        )
    logs.conn(t + timedelta(minutes=20), "10.0.0.50", "10.9.0.5", 623, "udp", 60, 80)


def day3_attacks(logs: Logs, day3: datetime) -> None:
    for h in (13, 14, 15):
        for k in range(4):
            logs.conn(
                day3 + timedelta(hours=h, minutes=10 * k),
                "89.248.165.74",
                "10.0.0.25",
                993,
                ob=20_000,
                rb=33_000_000,
                service="ssl",
            )
    for m in range(0, 24 * 60, 5):
        logs.conn(day3 + timedelta(minutes=m), "10.9.0.5", "185.220.101.7", 443, ob=300, rb=200)
    for h in range(0, 24, 6):
        logs.dns(day3 + timedelta(hours=h), "10.9.0.5", "fw-update.badbmc.net", ["185.220.101.7"])
    logs.conn(day3 + timedelta(hours=9), "10.0.1.7", "10.9.0.5", 623, "udp", 60, 80)
    for h in (2, 3):
        logs.conn(day3 + timedelta(hours=h), "10.0.0.80", "45.77.1.2", 4444, ob=9_000, rb=700)
    logs.tls(day3 + timedelta(hours=11), "10.0.1.3", "91.219.236.18", "cdn.files-share.net")
    logs.dns(day3 + timedelta(hours=12), "10.0.1.4", "x.evil-cdn.example", ["104.21.5.9"])
    logs.tls(day3 + timedelta(hours=12, minutes=1), "10.0.1.4", "104.21.5.9", "x.evil-cdn.example")
    logs.dns(day3 + timedelta(hours=10), "10.0.1.5", "kb.windowsupdate.com", ["93.184.221.240"])
    logs.tls(
        day3 + timedelta(hours=10, minutes=1), "10.0.1.5", "93.184.221.240", "kb.windowsupdate.com"
    )


def main() -> None:
    logs = Logs()
    for day in range(3):
        for hour in range(24):
            hour_of(logs, START + timedelta(days=day, hours=hour), day + 1)
    day3_attacks(logs, START + timedelta(days=2))
    out = HERE / "scenario"
    out.mkdir(exist_ok=True)
    for name, rows in logs.rows.items():
        rows.sort(key=lambda r: float(r["ts"]))  # type: ignore[arg-type]
        text = "".join(
            json.dumps({k: v for k, v in r.items() if v is not None}) + "\n" for r in rows
        )
        with gzip.GzipFile(out / f"{name}.log.gz", "wb", mtime=0) as f:
            f.write(text.encode())


if __name__ == "__main__":
    main()
