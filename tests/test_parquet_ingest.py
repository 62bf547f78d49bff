"""The Parquet reader: vigile's tables in, the same rows as the Zeek logs, bad input named."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from vigile.cli import app
from vigile.ingest import ingest_file, ingest_paths, registered_readers
from vigile.schema import PARQUET_TABLE_KEY, TS
from vigile.store.duckdb import DuckDBStore

SIM = ["--days", "0.1", "--hosts", "6", "--seed", "11", "-s", "bmc_beacon:start_day=0"]
#: Columns that say where a row came from: they differ between two files by design.
PROVENANCE = ("source_id", "source_pos", "sensor")


def conn_table(n: int = 6, **overrides: Any) -> pa.Table:
    """A small conn table in vigile's names; ``overrides`` replace or add columns."""
    cols: dict[str, Any] = {
        "ts": pa.array([1_700_000_000_000_000 + i for i in range(n)], pa.int64()).cast(TS),
        "uid": [f"C{i}" for i in range(n)],
        "src": [f"10.0.0.{i}" for i in range(n)],
        "src_port": pa.array([40000 + i for i in range(n)], pa.int64()),
        "dst": ["192.0.2.1"] * n,
        "dst_port": pa.array([443] * n, pa.int32()),
        "proto": ["tcp"] * n,
        "open": [False] * n,
    }
    cols.update(overrides)
    return pa.table({k: v for k, v in cols.items() if v is not None})


def write(path: Path, table: pa.Table, name: str | None = "conn", **kw: Any) -> Path:
    if name is not None:
        table = table.replace_schema_metadata({PARQUET_TABLE_KEY: name.encode()})
    pq.write_table(table, path, **kw)
    return path


def ingest(path: Path, db: Path | str = ":memory:") -> tuple[Any, DuckDBStore]:
    store = DuckDBStore(db)
    return ingest_file(store, path, registered_readers()), store


def cli(*args: str) -> Any:
    return CliRunner().invoke(app, ["ingest", *args])


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, DuckDBStore]:
    """One seed written as Parquet and as Zeek TSV, each folder ingested as a whole."""
    root = tmp_path_factory.mktemp("sim")
    stores = {}
    for fmt in ("parquet", "zeek"):
        done = CliRunner().invoke(app, ["simulate", "--out", str(root / fmt), "-f", fmt, *SIM])
        assert done.exit_code == 0, done.output
        db = root / f"{fmt}.duckdb"
        done = cli(str(root / fmt), "--db", str(db), "--json")
        assert done.exit_code == 0, done.output
        stores[fmt] = DuckDBStore(db)
    yield stores
    for s in stores.values():
        s.close()


@pytest.mark.parametrize("table", ["conn", "dns", "http", "tls"])
def test_simulated_parquet_gives_the_zeek_logs_rows(simulated, table: str) -> None:
    got = simulated["parquet"].scan(table, order_by=["uid", "ts"])
    want = simulated["zeek"].scan(table, order_by=["uid", "ts"])
    assert got.num_rows == want.num_rows > 0
    for column in got.column_names:
        if column not in PROVENANCE:
            assert got.column(column).equals(want.column(column)), (table, column)
    # The Parquet rows say where they came from: the simulator as sensor, row numbers.
    assert set(got.column("sensor").to_pylist()) == {"simulate"}
    assert sorted(got.column("source_pos").to_pylist()) == list(range(1, got.num_rows + 1))


def test_folder_of_parquet_is_read_and_reingesting_adds_nothing(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    write(folder / "conn.parquet", conn_table())
    (folder / "notes.txt").write_text("not read")
    store = DuckDBStore(tmp_path / "v.duckdb")
    try:
        first = ingest_paths(store, [folder])
        assert [f.status for f in first.files] == ["ingested", "skipped"]
        assert first.files[0].format == "parquet" and first.files[0].log_type == "conn"
        again = ingest_paths(store, [folder])
        assert again.files[0].status == "duplicate"
        assert store.count("conn") == 6
    finally:
        store.close()


def test_table_from_columns_and_zeek_names(tmp_path: Path) -> None:
    # No metadata, Zeek's names, ``id`` as a struct, ts as epoch seconds, a dns log.
    ids = pa.StructArray.from_arrays(
        [pa.array(["10.0.0.5"]), pa.array([5353], pa.uint16()), pa.array(["10.0.0.1"])],
        names=["orig_h", "orig_p", "resp_h"],
    )
    t = pa.table(
        {
            "ts": [1713484795.943239],
            "id": ids,
            "query": ["WWW.Example.COM."],
            "TTLs": pa.array([[300.0, 60.0]]),
            "answers": [["192.0.2.7", "192.0.2.8"]],
            "qclass": [1],
            "colour": ["blue"],
        }
    )
    result, store = ingest(write(tmp_path / "x.parquet", t, None))
    try:
        assert (result.status, result.log_type) == ("ingested", "dns"), result.message
        assert result.message == "column(s) not in the dns table ignored: colour"
        row = store.scan("dns").to_pylist()[0]
        assert row["query"] == "www.example.com"
        assert row["src"] == "10.0.0.5" and row["src_port"] == 5353
        assert row["ts"].isoformat() == "2024-04-18T23:59:55.943239+00:00"
        assert row["ttls"] == [300.0, 60.0]
    finally:
        store.close()


def test_ambiguous_columns_are_refused(tmp_path: Path) -> None:
    t = conn_table().select(["ts", "src", "dst"])
    result, store = ingest(write(tmp_path / "x.parquet", t, None))
    store.close()
    assert result.status == "refused"
    assert "fit conn and dns and http and tls equally" in (result.message or "")
    assert "vigile.table" in (result.message or "")


def test_missing_required_column_is_one_line(tmp_path: Path) -> None:
    path = write(tmp_path / "x.parquet", conn_table().drop_columns(["src"]))
    done = cli(str(path), "--db", str(tmp_path / "v.duckdb"))
    assert done.exit_code == 3
    assert f"{path}: no column 'src', which the conn table requires" in done.output


def test_wrong_type_is_refused_with_column(tmp_path: Path) -> None:
    path = write(tmp_path / "x.parquet", conn_table(src=pa.array(range(6), pa.int64())))
    result, store = ingest(path)
    store.close()
    assert result.status == "refused"
    assert result.message == f"{path}: column 'src' is int64, which cannot become src (string)"


def test_bad_values_and_null_required_fields_are_rejected_by_row(tmp_path: Path) -> None:
    t = conn_table(
        src=["10.0.0.1", None, "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"],
        src_port=pa.array([1, 2, 2**40, 4, 5, 6], pa.int64()),
        open=[False, False, False, None, False, False],
        duration=pa.array([0.5, 1.0, 2.0, 3.0, 4.0, float("inf")]),
    )
    result, store = ingest(write(tmp_path / "x.parquet", t, row_group_size=4))
    try:
        assert (result.status, result.bad_rows, result.rows) == ("partial", 3, {"conn": 3})
        rejects = store.scan("rejects", order_by=["position"]).to_pylist()
        assert [(r["position"], r["position_unit"]) for r in rejects] == [
            (2, "record"),
            (3, "record"),
            (4, "record"),
        ]
        assert rejects[0]["reason"] == "required column src is null"
        assert rejects[1]["reason"] == "bad value for src_port: 1099511627776"
        assert rejects[2]["reason"] == "required column open is null"
        assert json.loads(rejects[1]["raw"])["src_port"] == 2**40
        assert result.message == f"{tmp_path / 'x.parquet'}@record 2: required column src is null"
        kept = store.scan("conn", order_by=["source_pos"]).to_pylist()
        assert [r["source_pos"] for r in kept] == [1, 5, 6]
        assert kept[2]["duration"] == float("inf")  # a float column keeps what it holds
    finally:
        store.close()


def test_truncated_file_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "x.parquet", conn_table())
    path.write_bytes(path.read_bytes()[:-20])
    done = cli(str(path), "--db", str(tmp_path / "v.duckdb"))
    assert done.exit_code == 3
    assert "no Parquet footer (PAR1) at the end: the file is cut or damaged" in done.output
    assert "Traceback" not in done.output


def test_damaged_row_group_keeps_the_others(tmp_path: Path) -> None:
    path = write(tmp_path / "x.parquet", conn_table(30), row_group_size=10, compression="none")
    chunk = pq.ParquetFile(path).metadata.row_group(1).column(2)
    start = chunk.dictionary_page_offset or chunk.data_page_offset
    data = bytearray(path.read_bytes())
    data[start : start + 8] = b"\xff" * 8
    path.write_bytes(bytes(data))
    result, store = ingest(path)
    try:
        assert (result.status, result.rows, result.bad_rows) == ("partial", {"conn": 20}, 1)
        assert "@record 11: row group 2 cannot be read from here (10 rows lost)" in (
            result.message or ""
        )
        kept = store.scan("conn", order_by=["source_pos"]).column("source_pos").to_pylist()
        assert kept == [*range(1, 11), *range(21, 31)]
    finally:
        store.close()


def test_not_parquet_with_parquet_name(tmp_path: Path) -> None:
    path = tmp_path / "conn.parquet"
    path.write_text("ts,src,dst\n1,10.0.0.1,10.0.0.2\n")
    done = cli(str(path), "--db", str(tmp_path / "v.duckdb"))
    assert done.exit_code == 3
    assert "Parquet table (format is detected from content)" in done.output


def test_gzipped_parquet_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "x.parquet", conn_table())
    gz = tmp_path / "x.parquet.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    result, store = ingest(gz)
    store.close()
    assert result.status == "refused"
    assert "Parquet inside gzip: decompress it first" in (result.message or "")


def test_unknown_table_in_metadata(tmp_path: Path) -> None:
    result, store = ingest(write(tmp_path / "x.parquet", conn_table(), "weird"))
    store.close()
    assert result.status == "refused"
    assert "metadata vigile.table='weird' is not a table vigile reads" in (result.message or "")


def test_listing_names_the_files_left_unread(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    (folder / "old").mkdir(parents=True)
    for name in ("README", "old/vigile.toml", "old/ground-truth.csv"):
        (folder / name).write_text("x")
    done = cli(str(folder), "--db", str(tmp_path / "v.duckdb"))
    assert done.exit_code == 0, done.output
    text = " ".join(done.output.split())  # as one line, however the terminal wraps it
    assert "Ingested files" not in text  # no empty table
    assert (
        f"not read (not a log, capture or table name; name a file to read it anyway) "
        f"in {folder}: README; in {folder / 'old'}: ground-truth.csv, vigile.toml"
    ) in text
    assert "3 files (3 skipped)" in text
    rows = [
        json.loads(line)
        for line in cli(
            str(folder), "--db", str(tmp_path / "v.duckdb"), "--json"
        ).stdout.splitlines()
    ]
    assert [(r["status"], r["message"]) for r in rows] == [
        ("skipped", "not a log, capture or table name")
    ] * 3


def test_progress_is_reported_row_group_by_row_group(tmp_path: Path) -> None:
    path = write(tmp_path / "x.parquet", conn_table(30), row_group_size=10)
    steps: list[int] = []
    store = DuckDBStore(":memory:")
    try:
        ingest_file(store, path, registered_readers(), on_progress=steps.append)
    finally:
        store.close()
    assert sum(steps) == path.stat().st_size
    assert len([s for s in steps if s > 0]) >= 3


def test_null_port_in_zeek_names_is_kept_like_the_zeek_reader_does(tmp_path: Path) -> None:
    t = pa.table(
        {
            "ts": [1713484795.5, None],
            "id.orig_h": ["10.0.0.1", "10.0.0.2"],
            "id.orig_p": pa.array([None, 1], pa.int64()),
            "id.resp_h": ["10.0.0.3", "10.0.0.4"],
            "id.resp_p": pa.array([53, 53], pa.int64()),
            "proto": ["udp", "udp"],
            "conn_state": ["S0", "S0"],
        }
    )
    result, store = ingest(write(tmp_path / "x.parquet", t, None))
    try:
        assert (result.status, result.log_type, result.rows) == ("partial", "conn", {"conn": 1})
        assert store.scan("conn").column("src_port").to_pylist() == [None]
        reject = store.scan("rejects").to_pylist()[0]
        assert (reject["position"], reject["reason"]) == (2, "required column ts is null")
    finally:
        store.close()


def test_duplicate_columns_and_zeek_alerts_are_refused(tmp_path: Path) -> None:
    twice = pa.Table.from_arrays(
        [pa.array([0]).cast(TS), pa.array(["10.0.0.1"]), pa.array(["10.0.0.2"]), pa.array(["x"])],
        names=["ts", "src", "dst", "src"],
    )
    zeek_alerts = pa.table({"ts": [1.0], "id.orig_h": ["a"], "id.resp_h": ["b"]})
    for name, table, meta, message in (
        ("twice", twice, "conn", "column 'src' appears more than once"),
        ("alerts", zeek_alerts, "alerts", "Zeek's field names are read for conn, dns, http"),
    ):
        result, store = ingest(write(tmp_path / f"{name}.parquet", table, meta))
        store.close()
        assert result.status == "refused" and message in (result.message or ""), result
