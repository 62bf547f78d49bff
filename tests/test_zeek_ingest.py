"""Zeek ingest against the real RITA test data in ../shared/data."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from tests.helpers import ingest, table_rows

from vigile.store.duckdb import DuckDBStore

RITA = "zeek/rita"


def _count_data_lines(files: list[Path]) -> int:
    """Independent count: decompress and count lines not starting with '#'."""
    total = 0
    for f in files:
        with gzip.open(f, "rt", encoding="utf-8", errors="replace") as fh:
            total += sum(1 for line in fh if line.strip() and not line.startswith("#"))
    return total


@pytest.fixture(scope="module")
def missing_host_store(shared_data: Path, tmp_path_factory: pytest.TempPathFactory):
    store = DuckDBStore(tmp_path_factory.mktemp("mh") / "v.duckdb")
    report = ingest(store, shared_data / RITA / "missing_host")
    yield store, report
    store.close()


def test_missing_host_conn_rows_equal_independent_line_count(missing_host_store, shared_data):
    store, report = missing_host_store
    root = shared_data / RITA / "missing_host"
    # conn and open_conn logs both feed the conn table (open_conn rows carry open=True).
    conn_files = sorted(root.rglob("conn.*.log.gz")) + sorted(root.rglob("open_conn.*.log.gz"))
    assert len(conn_files) == 144  # 3 days x 24 hours x (conn, open_conn)
    expected = _count_data_lines(conn_files)
    assert store.count("conn") == expected == 105_990
    for table, stem in (("dns", "dns"), ("http", "http"), ("tls", "ssl")):
        assert store.count(table) == _count_data_lines(sorted(root.rglob(f"{stem}.*.log.gz")))
    assert not report.problems


def test_second_ingest_adds_nothing(missing_host_store, shared_data):
    store, _ = missing_host_store
    before = {t: store.count(t) for t in ("conn", "dns", "http", "tls", "sources")}
    again = ingest(store, shared_data / RITA / "missing_host")
    assert {t: store.count(t) for t in before} == before
    statuses = {f.status for f in again.files if f.format or f.status == "duplicate"}
    assert "ingested" not in statuses


def test_open_conn_rows_are_marked_open(missing_host_store):
    store, _ = missing_host_store
    from vigile.store import Pred

    assert store.scan("conn", ["uid"], where=[Pred("open", "=", True)]).num_rows == 72


def test_provenance_points_at_file_and_line(missing_host_store, shared_data):
    store, _ = missing_host_store
    row = store.scan("conn", ["source_id", "source_pos", "uid"], limit=1).to_pylist()[0]
    src = store.scan("sources", ["source_id", "path"]).to_pylist()
    path = next(s["path"] for s in src if s["source_id"] == row["source_id"])
    with gzip.open(path, "rt") as fh:
        line = fh.read().splitlines()[row["source_pos"] - 1]
    assert row["uid"] in line.split("\t")


def _zeek_tsv_to_json(path: Path, out: Path) -> None:
    """Convert one Zeek TSV log to Zeek JSON the way Zeek's JSON writer would."""
    types: dict[str, str] = {}
    fields: list[str] = []
    path_name = None
    with gzip.open(path, "rt", encoding="utf-8") as src, out.open("w") as dst:
        for line in src:
            line = line.rstrip("\n")
            if line.startswith("#fields"):
                fields = line.split("\t")[1:]
            elif line.startswith("#types"):
                types = dict(zip(fields, line.split("\t")[1:], strict=True))
            elif line.startswith("#path"):
                path_name = line.split("\t")[1]
            elif line.startswith("#") or not line:
                continue
            else:
                rec: dict[str, object] = {}
                for name, value in zip(fields, line.split("\t"), strict=True):
                    kind = types[name]
                    if value == "-":
                        continue
                    if kind.startswith(("set[", "vector[")):
                        rec[name] = [] if value == "(empty)" else value.split(",")
                    elif kind in ("time", "interval", "double"):
                        rec[name] = float(value)
                    elif kind in ("count", "int", "port"):
                        rec[name] = int(value)
                    elif kind == "bool":
                        rec[name] = value == "T"
                    else:
                        rec[name] = "" if value == "(empty)" else value
                rec["_path"] = path_name
                dst.write(json.dumps(rec) + "\n")


def test_tsv_and_json_give_identical_tables(shared_data, tmp_path):
    """Conformance: the same logs as TSV and as JSON give the same conn table."""
    root = shared_data / RITA / "missing_host"
    files = sorted(root.rglob("conn.*.log.gz")) + sorted(root.rglob("open_conn.*.log.gz"))
    json_dir = tmp_path / "json"
    json_dir.mkdir()
    for i, f in enumerate(files):
        _zeek_tsv_to_json(f, json_dir / f"{i:03d}-{f.name.removesuffix('.gz')}")
    tsv_store = DuckDBStore(tmp_path / "tsv.duckdb")
    json_store = DuckDBStore(tmp_path / "json.duckdb")
    for f in files:
        ingest(tsv_store, f)
    assert not ingest(json_store, json_dir).problems
    drop = ("source_id", "source_pos")
    assert table_rows(tsv_store, "conn", drop) == table_rows(json_store, "conn", drop)
    assert tsv_store.count("conn") == 105_990


def test_truncated_files_keep_complete_rows_and_report_the_cut(shared_data, tmp_path):
    store = DuckDBStore(tmp_path / "v.duckdb")
    report = ingest(store, shared_data / RITA / "truncated")
    by_name = {f.path.name: f for f in report.files}
    tsv, js, top = by_name["conn.log"], by_name["conn_json.log"], by_name["conn_top.log"]
    assert (tsv.status, tsv.rows["conn"], tsv.bad_rows) == ("partial", 58, 1)
    assert tsv.message and tsv.message.endswith(
        "conn.log:67: the file ends in the middle of this record"
    )
    # Line 3 is whole but its originator port, 93145, does not fit in 16 bits: rejected
    # as a bad row beside the cut line 4.
    assert (js.status, js.rows["conn"], js.bad_rows) == ("partial", 2, 2)
    assert js.message and "conn_json.log:3: src_port outside 0-65535: 93145" in js.message
    rejected = store.scan("rejects", ["position", "reason"]).to_pylist()
    assert {"position": 4, "reason": "the file ends in the middle of this record"} in rejected
    # Cut at the top: no header, so its columns cannot be known; refused with the line.
    assert (
        top.status == "refused" and top.message and "conn_top.log:1: not a Zeek log" in top.message
    )
    rejects = store.scan("rejects").to_pylist()
    assert sorted(r["position"] for r in rejects) == [3, 4, 67]
    assert all(r["raw"] for r in rejects)
    assert report.problems


def test_text_file_is_refused(shared_data, tmp_path):
    store = DuckDBStore(tmp_path / "v.duckdb")
    report = ingest(store, shared_data / RITA / "text_file")
    (result,) = report.files
    assert result.status == "refused"
    assert result.message and "not a Zeek log" in result.message
    assert store.count("sources") == 0


def test_unknown_field_is_tolerated_with_a_notice(shared_data, tmp_path):
    store = DuckDBStore(tmp_path / "v.duckdb")
    report = ingest(store, shared_data / RITA / "has_unknown_field")
    (result,) = report.files
    # Four rows are whole; line 9 has 29 values for 30 declared fields and is kept aside.
    assert result.rows["http"] == 4 and result.bad_rows == 1
    (notices,) = store.scan("sources", ["notices"]).column("notices").to_pylist()
    assert "unknown field(s) ignored: i_dont_exist" in notices


def test_json_with_all_fields(shared_data, tmp_path):
    store = DuckDBStore(tmp_path / "v.duckdb")
    report = ingest(store, shared_data / RITA / "json_with_all_fields")
    assert not report.problems
    assert store.count("conn") == 29 + 59
    assert store.count("tls") == 30
    # dns.log and ORIGINALdns.log have the same content: ingested once.
    assert store.count("dns") == 34
    answers = store.scan("dns", ["query", "answers"], limit=5).to_pylist()
    assert all(r["query"] == r["query"].lower() for r in answers)


def test_proxy_http_connect_and_sni(shared_data, tmp_path):
    store = DuckDBStore(tmp_path / "v.duckdb")
    ingest(store, shared_data / RITA / "proxy")
    from vigile.store import Pred

    connects = store.scan("http", ["host"], where=[Pred("method", "=", "CONNECT")])
    assert "www.honestimnotevil.com:443" in set(connects.column("host").to_pylist()) or any(
        h and h.startswith("www.honestimnotevil.com") for h in connects.column("host").to_pylist()
    )


def test_impossible_times_and_ports_are_rejected_rows_not_a_crash(tmp_path):
    """A ``ts`` no date can show (year 33658) and a port beyond 16 bits are bad rows,
    kept with their line; the rest of the file is stored (the pipeline checks every
    reader's rows)."""
    head = "#separator \\x09\n#path\tconn\n#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h"
    head += "\tid.resp_p\tproto\n#types\ttime\tstring\taddr\tport\taddr\tport\tenum\n"
    rows = [
        "999999999999\tC1\t10.0.0.1\t1\t10.0.0.2\t80\ttcp",
        "1700000000\tC2\t10.0.0.1\t70000\t10.0.0.2\t80\ttcp",
        "1700000001\tC3\t10.0.0.1\t5000\t10.0.0.2\t80\ttcp",
    ]
    path = tmp_path / "conn.log"
    path.write_text(head + "\n".join(rows) + "\n")
    store = DuckDBStore(tmp_path / "v.duckdb")
    (result,) = ingest(store, path).files
    assert (result.status, result.rows["conn"], result.bad_rows) == ("partial", 1, 2)
    rejects = store.scan("rejects", order_by=["position"]).to_pylist()
    assert [(r["position"], r["reason"], r["raw"]) for r in rejects] == [
        (5, "time outside years 1-9999: 999999999999000000 µs since 1970", rows[0]),
        (6, "src_port outside 0-65535: 70000", rows[1]),
    ]
