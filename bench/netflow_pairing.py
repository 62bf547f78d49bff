"""Records of one connection split across collector batches: a simulated day exported live.

``vigile collect`` runs as its own process on a free loopback port; ``vigile simulate
--days 1 --export`` sends the day's flows to it as IPFIX (one record per direction).
Then the store is read back: a one-direction UDP/TCP record *has a partner* when a
record of the reversed 5-tuple, its time span within the pairing slack, is in the
store; it is *split* when no such record is in its own batch (``source_id``), and a
DNS query (to port 53) is *S0 though answered* when it has a partner and says ``S0``.
The collector's counters (records that waited for their partner) are printed as it
prints them on exit.

    .venv/bin/python -m bench.netflow_pairing [--days 1] [--batch-seconds 5] [--pair-wait 0]

With ``--peers``, real exporters instead: every shared capture
(``../shared/data/pcap/*/*.pcap``) exported by softflowd (IPFIX) and by nfdump's
nfpcapd + nfreplay (v9) into the collector cutting a batch after every datagram, once
without waiting (``--pair-wait 0``) and once with the default wait.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb
from tests.netflow_peers import RunningCollector, run_softflowd

from bench.common import ROOT, machine
from vigile.ingest.collector import PAIR_WAIT
from vigile.ingest.flowstate import PAIR_SLACK_US

VIGILE = str(Path(sys.executable).with_name("vigile"))

#: Each one-direction UDP/TCP record that has a partner in the store (reversed 5-tuple,
#: time spans within the pairing slack): whether it has one in its own batch too. A lone
#: reply stored turned around (originator's side null) is read as the record it was.
PAIRS = f"""
with r as (
  select *, orig_pkts is null as turned from conn
  where proto in ('udp', 'tcp') and (resp_pkts is null or orig_pkts is null)),
c as (
  select row_number() over () as id, epoch_us(ts) as s,
         epoch_us(ts) + cast(coalesce(duration, 0) * 1e6 as bigint) as e,
         source_id, proto, conn_state,
         case when turned then dst else src end as src,
         case when turned then src else dst end as dst,
         case when turned then dst_port else src_port end as src_port,
         case when turned then src_port else dst_port end as dst_port
  from r)
select a.id, bool_or(a.source_id = b.source_id) as in_batch,
       any_value(a.proto = 'udp' and a.dst_port = 53) as dns_query,
       any_value(a.conn_state) as state
from c a join c b
  on a.src = b.dst and a.dst = b.src and a.src_port = b.dst_port
 and a.dst_port = b.src_port and a.proto = b.proto and a.id <> b.id
 and b.s <= a.e + {PAIR_SLACK_US} and a.s <= b.e + {PAIR_SLACK_US}
group by a.id
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
    q = f"""select count(*), count(*) filter (where not in_batch),
       count(*) filter (where dns_query), count(*) filter (where dns_query and not in_batch),
       count(*) filter (where dns_query and state = 'S0') from ({PAIRS})"""
    paired, split, dns, dns_split, dns_s0 = con.execute(q).fetchone() or (0,) * 5
    print(
        f"DNS queries with an answer record {dns:,}: no answer in their batch {dns_split:,}, "
        f"S0 though answered {dns_s0:,}"
    )
    print(f"UDP/TCP records with a partner {paired:,}: none in their batch {split:,}")
    con.close()


def split_pairs(db: Path) -> tuple[int, int]:
    """(records with a partner, records with none in their own batch) in a store.

    A pair the collector paired is one row (its responder side filled): it counts as
    two records with a partner; records of one connection stored as two rows are the
    ones pairing missed."""
    con = duckdb.connect(str(db), read_only=True)
    q = f"select count(*), count(*) filter (where not in_batch) from ({PAIRS})"
    paired, split = con.execute(q).fetchone() or (0, 0)
    one = "select count(*) from conn where proto in ('udp', 'tcp') and resp_pkts is not null"
    merged = (con.execute(one).fetchone() or (0,))[0]
    con.close()
    return paired + 2 * merged, split


def nfreplay(pcap: Path, port: int, work: Path) -> int:
    """nfpcapd turns ``pcap`` into nfcapd files, nfreplay sends them; returns the flows."""
    flows = work / "nfcapd"
    flows.mkdir()
    subprocess.run(["nfpcapd", "-r", str(pcap), "-w", str(flows)], check=True, capture_output=True)
    total = 0
    for f in sorted(p for p in flows.rglob("nfcapd.*") if p.is_file()):
        cmd = ["nfreplay", "-r", str(f), "-H", "127.0.0.1", "-p", str(port), "-v", "9"]
        subprocess.run(cmd, check=True, capture_output=True)
        stat = subprocess.run(["nfdump", "-r", str(f), "-I"], capture_output=True, text=True)
        found = re.search(r"^Flows: (\d+)", stat.stdout, re.M)
        total += int(found.group(1)) if found else 0
    return total


def peers(tmp: Path) -> None:
    pcaps = sorted((ROOT.parent / "shared" / "data" / "pcap").glob("*/*.pcap"))
    print(f"{len(pcaps)} captures; a batch cut after every datagram")
    head = "exporter | --pair-wait | records with a partner | none in their batch"
    print(head + " | held_back | paired_late")
    for exporter in ("softflowd", "nfreplay"):
        for wait in (0.0, PAIR_WAIT):
            totals = [0, 0, 0, 0]
            for n, pcap in enumerate(pcaps):
                work = tmp / f"{exporter}-{wait}-{n}"
                work.mkdir()
                db = work / "v.duckdb"
                with RunningCollector(db, batch_rows=1, batch_seconds=60, pair_wait=wait) as run:
                    port = run.collector.port
                    if exporter == "softflowd":
                        run.wait_for(run_softflowd(pcap, port, "10", False, work))
                    else:
                        flows, deadline = nfreplay(pcap, port, work), time.monotonic() + 10
                        while run.collector.counters.flows < flows and time.monotonic() < deadline:
                            time.sleep(0.02)
                c = run.counters
                pairs, split = split_pairs(db)
                for i, v in enumerate((pairs, split, c.held_back, c.paired_late)):
                    totals[i] += v
            print(f"{exporter} | {wait:g} | " + " | ".join(f"{v:,}" for v in totals))


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--days", type=float, default=1.0)
    ap.add_argument("--batch-seconds", type=float, default=5.0)
    ap.add_argument("--pair-wait", type=float, default=None, help="0: no waiting")
    ap.add_argument("--peers", action="store_true", help="softflowd and nfreplay instead")
    args = ap.parse_args()
    print(f"machine: {machine()}; load average before: {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        if args.peers:
            peers(Path(tmp))
        else:
            run(args.days, args.batch_seconds, args.pair_wait, Path(tmp))


if __name__ == "__main__":
    main()
