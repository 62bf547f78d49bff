"""Property tests: any bytes into the Zeek readers give rows or a clear error."""

from __future__ import annotations

import gzip
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vigile.ingest import ingest_file, registered_readers
from vigile.store.duckdb import DuckDBStore

HEADER = (
    "#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\tconn\n"
    "#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tduration\t"
    "orig_bytes\tresp_bytes\n#types\ttime\tstring\taddr\tport\taddr\tport\tenum\tinterval\t"
    "count\tcount\n"
)
ROW = "1713484795.943239\tCabc\t10.0.0.1\t5353\t10.0.0.2\t53\tudp\t0.1\t10\t20\n"
VALID = (HEADER + ROW * 5 + "#close\t2024-04-19-01-00-00\n").encode()
READERS = registered_readers()
OUTCOMES = {"ingested", "partial", "refused", "skipped", "duplicate"}


def _run(tmp: Path, data: bytes, name: str) -> str:
    path = tmp / name
    path.write_bytes(data)
    store = DuckDBStore(":memory:")
    try:
        result = ingest_file(store, path, READERS)
        rows = store.count("conn")
        assert rows == sum(result.rows.values())
        # Every record is stored or rejected: nothing silently dropped.
        if result.status in ("ingested", "partial"):
            assert store.count("rejects") == result.bad_rows
        return result.status
    finally:
        store.close()


@settings(max_examples=100, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=2048))
def test_arbitrary_bytes(tmp_path_factory, data):
    assert _run(tmp_path_factory.mktemp("f"), data, "conn.log") in OUTCOMES


@settings(max_examples=120, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.integers(0, len(VALID) - 1),
    st.binary(min_size=1, max_size=16),
    st.sampled_from(["replace", "insert", "cut"]),
    st.booleans(),
)
def test_mutated_valid_log(tmp_path_factory, pos, chunk, how, compress):
    if how == "replace":
        data = VALID[:pos] + chunk + VALID[pos + len(chunk) :]
    elif how == "insert":
        data = VALID[:pos] + chunk + VALID[pos:]
    else:
        data = VALID[:pos]
    if compress:
        data = gzip.compress(data)
        data = data[: max(10, len(data) - (pos % 7))]  # sometimes a cut gzip stream
    assert _run(tmp_path_factory.mktemp("m"), data, "conn.log.gz") in OUTCOMES
