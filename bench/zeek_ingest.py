"""Zeek TSV ingest: vigile's reader vs DuckDB's own ``read_csv`` on the same file.

Both parse the same uncompressed conn.log and store it in a fresh DuckDB file; each runs
in its own process so its peak memory is its own. Target: vigile ≥ 0.5x DuckDB's rows/s.

    .venv/bin/python -m bench.zeek_ingest [--rows 2000000]
"""

from __future__ import annotations

import argparse
import gzip
import os
import random
from functools import partial
from pathlib import Path

from bench.common import OUT, REPEAT, Contender, add_repeat_option, machine, measure_turns

HEADING = "Zeek TSV ingest"

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "zeek" / "rita" / "missing_host"
HEADER_FIELDS = (
    "ts uid id.orig_h id.orig_p id.resp_h id.resp_p proto service duration "
    "orig_bytes resp_bytes conn_state local_orig local_resp missed_bytes history "
    "orig_pkts orig_ip_bytes resp_pkts resp_ip_bytes tunnel_parents"
).split()
TYPES = (
    "time string addr port addr port enum string interval count count string bool bool "
    "count string count count count count set[string]"
).split()


def build_log(rows: int, path: Path) -> int:
    """A conn.log of ``rows`` rows: real rows from missing_host, time-shifted copies."""
    sample: list[list[str]] = []
    for f in sorted(SHARED.rglob("conn.*.log.gz")):
        with gzip.open(f, "rt") as fh:
            sample += [line.rstrip("\n").split("\t")[1:] for line in fh if not line.startswith("#")]
    rng = random.Random(1)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as out:
        out.write(
            "#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n"
            "#path\tconn\n#open\t2024-04-19-00-00-00\n"
        )
        out.write("#fields\t" + "\t".join(HEADER_FIELDS) + "\n#types\t" + "\t".join(TYPES) + "\n")
        for i in range(rows):
            row = list(sample[i % len(sample)])
            row[0] = f"{float(row[0]) + (i // len(sample)) * 86400 + rng.random():.6f}"
            out.write("\t".join(row) + "\n")
        out.write("#close\t2024-04-20-00-00-00\n")
    return rows


def run_vigile(log: str, db: str) -> int:
    from vigile.ingest import ingest_paths
    from vigile.store.duckdb import DuckDBStore

    store = DuckDBStore(db)
    ingest_paths(store, [Path(log)])
    n = store.count("conn")
    store.close()
    return n


def run_duckdb(log: str, db: str) -> int:
    import duckdb

    con = duckdb.connect(db)
    con.execute("SET enable_progress_bar = false")
    cols = ", ".join(f"'{f}': 'VARCHAR'" for f in HEADER_FIELDS)
    con.execute(f"""CREATE TABLE conn AS SELECT * FROM read_csv('{log}', delim='\t',
        header=false, skip=8, comment='#', nullstr='-', quote='', escape='',
        columns={{{cols}}})""")
    n = con.execute("SELECT count(*) FROM conn").fetchall()[0][0]
    con.close()
    return int(n)


def main(rows: int = 2_000_000, repeat: int = REPEAT) -> str:
    log = OUT / f"zeek_conn_{rows}.log"
    if not log.exists() or log.stat().st_size == 0:
        build_log(rows, log)
    contenders = []
    for name, fn in (("vigile ingest", run_vigile), ("DuckDB read_csv", run_duckdb)):
        db = OUT / f"zeek_{name.split()[0].lower()}.duckdb"
        fresh = partial(db.unlink, missing_ok=True)  # each run writes a new store
        contenders.append(Contender(name, fn, (str(log), str(db)), before=fresh))
    results = measure_turns(contenders, repeat)
    for c in contenders:
        Path(c.args[1]).unlink(missing_ok=True)
    load = os.getloadavg()[0]
    lines = [
        f"Command: `.venv/bin/python -m bench.zeek_ingest --rows {rows} --repeat {repeat}`. "
        "Each contender runs in its own process, parses the same uncompressed conn.log and "
        f"stores it in a new DuckDB file; they take turns and the fastest of {repeat} runs of "
        "each is kept. Load average "
        f"at the end: {load:.1f}.",
        "",
        f"Zeek TSV ingest of {results[0].result:,} conn rows "
        f"({log.stat().st_size / 1e6:.0f} MB uncompressed), {machine()}",
        "",
        "| contender | seconds | CPU s | rows/s | peak RSS MB |",
        "|---|---|---|---|---|",
    ]
    for m in results:
        lines.append(
            f"| {m.name} | {m.seconds:.2f} | {m.cpu_seconds:.2f} | {m.result / m.seconds:,.0f} | "
            f"{m.peak_rss_mb:.0f} |"
        )
    ratio = (results[0].result / results[0].seconds) / (results[1].result / results[1].seconds)
    lines += ["", f"Ratio vigile / DuckDB read_csv: {ratio:.2f} (target ≥ 0.5)"]
    text = "\n".join(lines)
    print(text)
    return text


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=2_000_000)
    add_repeat_option(parser)
    args = parser.parse_args()
    main(args.rows, args.repeat)
