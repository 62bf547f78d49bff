"""Records of one connection split across collector batches: a simulated day exported live.

``vigile collect`` runs as its own process on a free loopback port; ``vigile simulate
--days 1 --export`` sends the day's flows to it as IPFIX (one record per direction).
Then the store is read back: every UDP/TCP record with a reverse-direction record
whose time span lies within the pairing slack is one side of a pair; a pair is *split*
when its two records are in different batches (``source_id``), and a DNS query (to port
53) is *answered but S0* when such a reverse record exists and the query says ``S0``.
The collector's counters (records that waited for their partner) are printed as it
prints them on exit.

    .venv/bin/python -m bench.netflow_pairing [--days 1] [--batch-seconds 5] [--pair-wait 0]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb

from bench.common import machine
from vigile.ingest.flowstate import PAIR_SLACK_US

VIGILE = str(Path(sys.executable).with_name("vigile"))

PAIRS = f"""
with c as (select row_number() over () as id, * from conn where proto in ('udp', 'tcp'))
select a.proto, a.dst_port = 53 and a.proto = 'udp' as dns_query,
       a.source_id <> b.source_id as split, a.conn_state as state, a.source_pos as pos_a,
       b.source_pos as pos_b
from c a join c b
  on a.src = b.dst and a.dst = b.src and a.src_port = b.dst_port
 and a.dst_port = b.src_port and a.proto = b.proto and a.id <> b.id
 and abs(epoch_us(a.ts) - epoch_us(b.ts)) <= {PAIR_SLACK_US}
where a.ts < b.ts or (a.ts = b.ts and a.id < b.id)
"""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(days: float, batch_seconds: float, pair_wait: float | None, tmp: Path) -> None:
    db, port = tmp / "v.duckdb", free_port()
    collect = [VIGILE, "collect", "--listen", f"127.0.0.1:{port}", "--db", str(db)]
    collect += ["--batch-seconds", str(batch_seconds), "--json"]
    if pair_wait is not None:  # None: the collector's default
        collect += ["--pair-wait", str(pair_wait)]
    collector = subprocess.Popen(collect, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(3)  # the collector opens the store and binds before the export starts
    began = time.perf_counter()
    sim = [VIGILE, "simulate", "--days", str(days), "--out", str(tmp / "sim")]
    sim += ["--export", f"127.0.0.1:{port}"]
    done = subprocess.run(sim, capture_output=True, text=True, check=True)
    export_s = time.perf_counter() - began
    time.sleep(1)
    collector.terminate()
    out, _ = collector.communicate(timeout=120)
    print(done.stderr.strip().splitlines()[-1])
    print(f"export took {export_s:.1f} s; collector: {out.decode().strip()}")
    con = duckdb.connect(str(db), read_only=True)
    rows = con.execute("select count(*), count(distinct source_id) from conn").fetchone()
    print(f"stored {rows[0]:,} records in {rows[1]} batches")
    q = f"""select count(*) filter (where dns_query), count(*) filter (where dns_query and split),
       count(*) filter (where dns_query and state = 'S0'),
       count(*), count(*) filter (where split),
       count(*) filter (where split and pos_a = pos_b) from ({PAIRS})"""
    dns, dns_split, dns_s0, pairs, split, same_dgram = con.execute(q).fetchone()
    print(
        f"DNS query/answer pairs {dns:,}: split across batches {dns_split:,}, "
        f"query S0 though answered {dns_s0:,}"
    )
    print(
        f"all UDP/TCP pairs {pairs:,}: split across batches {split:,} "
        f"(of which in one datagram: {same_dgram})"
    )
    con.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--days", type=float, default=1.0)
    ap.add_argument("--batch-seconds", type=float, default=5.0)
    ap.add_argument("--pair-wait", type=float, default=None, help="0: no waiting")
    args = ap.parse_args()
    print(f"machine: {machine()}; load average before: {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        run(args.days, args.batch_seconds, args.pair_wait, Path(tmp))


if __name__ == "__main__":
    main()
