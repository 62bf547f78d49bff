"""Regenerate the expected outputs under tests/golden/ from their inputs.

    .venv/bin/python -m tests.golden.regenerate

Review the diff before committing: a changed expected file is a changed behaviour.
Inputs: ``netflow/*.hex`` are datagrams captured from softflowd 1.1 exporting captures
from ../shared/data/pcap (one datagram per line, hex); ``eve/*.eve.json`` is a small
hand-written EVE log in Suricata 7's format; ``parquet/*.parquet`` are written by
``parquet/inputs.py`` (each a way a Parquet table reaches vigile).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from vigile.ingest import ingest_file, ingest_paths, registered_readers
from vigile.ingest.netflow import TemplateCache, address_text, decode_datagram
from vigile.store.duckdb import DuckDBStore

GOLDEN = Path(__file__).resolve().parent
TABLES = ("conn", "dns", "http", "tls", "alerts", "rejects")
VOLATILE = {"source_id"}


def netflow_expected(hex_file: Path) -> list[dict[str, Any]]:
    """Every datagram's decode result, in order, as plain JSON."""
    cache, out = TemplateCache(), []
    for n, line in enumerate(hex_file.read_text().split(), 1):
        r = decode_datagram(bytes.fromhex(line), "127.0.0.1", cache, 0.0)
        flows = [[*f[:2], address_text(f[2]), f[3], address_text(f[4]), *f[5:]] for f in r.flows]
        out.append(
            {
                "datagram": n,
                "version": r.version,
                "domain": r.domain,
                "sequence": r.sequence,
                "templates": r.templates,
                "options_records": r.options_records,
                "problems": r.problems,
                "flows": flows,
            }
        )
    return out


def eve_expected(eve_file: Path) -> dict[str, list[dict[str, Any]]]:
    """The rows each table holds after ingesting the file, in file order."""
    with tempfile.TemporaryDirectory() as tmp:
        store = DuckDBStore(Path(tmp) / "g.duckdb")
        ingest_paths(store, [eve_file])
        out = {}
        for table in TABLES:
            order = ["position"] if table == "rejects" else ["source_pos"]
            rows = store.scan(table, order_by=order).to_pylist()
            out[table] = [
                {
                    k: (v.isoformat() if hasattr(v, "isoformat") else v)
                    for k, v in row.items()
                    if k not in VOLATILE
                }
                for row in rows
            ]
        store.close()
    return out


def parquet_expected(parquet_file: Path) -> dict[str, Any]:
    """What ingesting the file reports, and the rows each table holds after it."""
    with tempfile.TemporaryDirectory() as tmp:
        store = DuckDBStore(Path(tmp) / "g.duckdb")
        result = ingest_file(store, parquet_file, registered_readers())
        notices = store.scan("sources").column("notices").to_pylist()
        store.close()
    message = (result.message or "").replace(str(parquet_file), parquet_file.name) or None
    report = {
        "status": result.status,
        "log_type": result.log_type,
        "rows": result.rows,
        "bad_rows": result.bad_rows,
        "message": message,
        "notices": notices,
    }
    return {"report": report, **eve_expected(parquet_file)}


def pairs() -> list[tuple[Path, Path, Any]]:
    """(input, expected file, function computing the expected content) for every case."""
    out: list[tuple[Path, Path, Any]] = []
    for f in sorted((GOLDEN / "netflow").glob("*.hex")):
        out.append((f, f.with_suffix(".expected.json"), netflow_expected))
    for f in sorted((GOLDEN / "eve").glob("*.eve.json")):
        out.append((f, f.with_name(f.name.replace(".eve.json", ".expected.json")), eve_expected))
    for f in sorted((GOLDEN / "parquet").glob("*.parquet")):
        out.append((f, f.with_suffix(".expected.json"), parquet_expected))
    return out


def render(value: Any) -> str:
    return json.dumps(value, indent=1, sort_keys=True) + "\n"


if __name__ == "__main__":
    for source, expected, compute in pairs():
        expected.write_text(render(compute(source)))
        print(f"wrote {expected.relative_to(GOLDEN.parent.parent)}")
