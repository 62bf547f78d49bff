"""Property tests: mutated Parquet files give rows or a clear error, never a crash or hang."""

from __future__ import annotations

import io
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from vigile.ingest import ingest_file, registered_readers
from vigile.schema import PARQUET_TABLE_KEY, TS
from vigile.store.duckdb import DuckDBStore

READERS = registered_readers()
OUTCOMES = {"ingested", "partial", "refused"}


def _valid(compression: str) -> bytes:
    n = 40
    table = pa.table(
        {
            "ts": pa.array([1_700_000_000_000_000 + i * 1000 for i in range(n)]).cast(TS),
            "src": pa.array([f"10.0.0.{i % 7}" for i in range(n)]).dictionary_encode(),
            "dst": [f"192.0.2.{i % 3}" for i in range(n)],
            "dst_port": pa.array([53 + i for i in range(n)], pa.int64()),
            "query": [f"host{i}.example.com" for i in range(n)],
            "answers": [[f"192.0.2.{i}"] * (i % 3) for i in range(n)],
        }
    ).replace_schema_metadata({PARQUET_TABLE_KEY: b"dns"})
    sink = io.BytesIO()
    pq.write_table(table, sink, row_group_size=15, compression=compression)
    return sink.getvalue()


VALID = {c: _valid(c) for c in ("none", "snappy", "zstd")}


def _run(tmp: Path, data: bytes) -> str:
    path = tmp / "dns.parquet"
    path.write_bytes(data)
    store = DuckDBStore(":memory:")
    try:
        result = ingest_file(store, path, READERS)
        assert result.status in OUTCOMES, result
        assert store.count("dns") == sum(result.rows.values())
        if result.status == "refused":
            message = result.message or ""
            assert message.startswith(f"{path}") and "\n" not in message, message
        else:
            assert store.count("rejects") == result.bad_rows
        return result.status
    finally:
        store.close()


@settings(max_examples=120, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.sampled_from(sorted(VALID)),
    st.floats(0, 1, exclude_max=True),
    st.binary(min_size=1, max_size=12),
    st.sampled_from(["replace", "insert", "cut"]),
)
# A byte in a dictionary page: the batch decodes, but an index points past the dictionary.
@example(compression="none", where=0.055928020079837555, chunk=b"\x07", how="replace")
def test_mutated_parquet(tmp_path_factory, compression, where, chunk, how):
    valid = VALID[compression]
    pos = int(where * len(valid))
    if how == "replace":
        data = valid[:pos] + chunk + valid[pos + len(chunk) :]
    elif how == "insert":
        data = valid[:pos] + chunk + valid[pos:]
    else:
        data = valid[:pos]
    _run(tmp_path_factory.mktemp("f"), data)


def test_valid_file_reads_whole() -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        for data in VALID.values():
            assert _run(Path(tmp), data) == "ingested"


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=512))
def test_arbitrary_bytes_between_magics(tmp_path_factory, body):
    assert _run(tmp_path_factory.mktemp("f"), b"PAR1" + body + b"PAR1") == "refused"
