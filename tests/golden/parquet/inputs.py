"""The Parquet golden inputs, written with pyarrow: ``python -m tests.golden.parquet.inputs``.

Each file is one way a Parquet table reaches vigile; the expected rows beside each
(``*.expected.json``) come from ``python -m tests.golden.regenerate``. Rewrite the inputs
only to add a case: a pyarrow upgrade changes their bytes (its version is in the footer).
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
T0 = 1_713_484_795_943_239  # 2024-04-18T23:59:55.943239Z in microseconds


def vigile_conn() -> pa.Table:
    """vigile's names and metadata, int64 ports (one too big), a null src, extra columns,
    three row groups."""
    n = 7
    table = pa.table(
        {
            "ts": pa.array([T0 + i * 1_000_000 for i in range(n)], pa.timestamp("us", "UTC")),
            "uid": [f"CcOnn{i}" for i in range(n)],
            "src": ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", None, "fe80::1", "10.0.0.7"],
            "src_port": pa.array([50000, 50001, 2**40, 50003, 50004, 50005, 50006], pa.int64()),
            "dst": ["192.0.2.10"] * n,
            "dst_port": pa.array([443] * n, pa.uint16()),
            "proto": pa.array(["tcp"] * n).dictionary_encode(),
            "duration": pa.array([0.5, None, 1.25, 3, 0, 2, 1], pa.float32()),
            "orig_bytes": pa.array([100, 0, 5, 7, 9, 11, 13], pa.int32()),
            "conn_state": ["SF", "S0", "SF", "REJ", "SF", "SF", "RSTO"],
            "open": [False, False, False, True, False, False, False],
            "sensor": ["edge-1"] * n,
            "source_pos": pa.array(range(n), pa.int64()),  # from another file: replaced
            "note": ["kept aside"] * n,
        }
    )
    return table.replace_schema_metadata({b"vigile.table": b"conn"})


def zeek_dns() -> pa.Table:
    """Zeek's names without metadata: ``id`` as a struct, ts in epoch seconds, lists."""
    ids = pa.StructArray.from_arrays(
        [
            pa.array(["10.0.0.5", "10.0.0.6"]),
            pa.array([5353, 40000], pa.uint16()),
            pa.array(["10.0.0.1", "10.0.0.1"]),
            pa.array([53, 53], pa.uint16()),
        ],
        names=["orig_h", "orig_p", "resp_h", "resp_p"],
    )
    return pa.table(
        {
            "ts": [1713484795.943239, 1713484796.5],
            "uid": ["Cdns1", "Cdns2"],
            "id": ids,
            "proto": ["udp", "udp"],
            "trans_id": pa.array([4660, 22136], pa.int64()),
            "query": ["WWW.Example.COM.", "dzx1.tunnel.example."],
            "qtype": [1, 16],
            "qtype_name": ["A", "TXT"],
            "qclass": [1, 1],
            "rcode": [0, 3],
            "answers": [["192.0.2.7", "192.0.2.8"], []],
            "TTLs": pa.array([[300.0, 60.0], []]),
        }
    )


def spark_http() -> pa.Table:
    """vigile's names without metadata, as Spark writes them: nanosecond times without a
    zone, int64 counts, large strings and lists, a blank Host."""
    ns = pa.timestamp("ns")
    return pa.table(
        {
            "ts": pa.array([T0 * 1000 + 999, (T0 + 5_000_000) * 1000], ns),
            "uid": pa.array(["Chttp1", "Chttp2"], pa.large_string()),
            "src": ["10.0.0.9", "10.0.0.9"],
            "src_port": pa.array([51000, 51001], pa.int64()),
            "dst": ["198.51.100.4", "198.51.100.4"],
            "dst_port": pa.array([80, 80], pa.int64()),
            "method": pa.array(["GET", "POST"]).dictionary_encode(),
            "host": ["Modzilla.example", "  "],
            "uri": ["/", "/upload"],
            "user_agent": ["Modzilla/0.0001 (Atari 7800)", None],
            "status": pa.array([200, 500], pa.int64()),
            "response_body_len": pa.array([1024, 0], pa.int64()),
            "resp_mime_types": pa.array([["text/html"], None], pa.large_list(pa.large_string())),
        }
    )


def zeek_ssl() -> pa.Table:
    """Zeek's flat names with metadata naming the table, times in another zone."""
    table = pa.table(
        {
            "ts": pa.array([T0 // 1000], pa.timestamp("ms", "Europe/Paris")),
            "id.orig_h": ["10.136.0.18"],
            "id.orig_p": [49152],
            "id.resp_h": ["10.136.0.16"],
            "id.resp_p": [3128],
            "version": ["TLSv12"],
            "server_name": ["www.honestimnotevil.com"],
            "established": [True],
            "ja3": ["e7d705a3286e19ea42f587b344ee6865"],
        }
    )
    return table.replace_schema_metadata({b"vigile.table": b"tls"})


INPUTS = {
    "vigile-conn.parquet": (vigile_conn, {"row_group_size": 3}),
    "zeek-dns.parquet": (zeek_dns, {}),
    "spark-http.parquet": (spark_http, {"compression": "zstd"}),
    "zeek-ssl.parquet": (zeek_ssl, {"compression": "none"}),
}


if __name__ == "__main__":
    for name, (make, options) in INPUTS.items():
        pq.write_table(make(), HERE / name, **options)
        print(f"wrote {name}")
