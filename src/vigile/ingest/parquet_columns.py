"""Which table a Parquet file holds, and how its columns become the schema's.

A file names its table in its key-value metadata (``vigile.table``, which every vigile
Parquet writer sets), or else its columns tell: the table whose required columns are all
there and which knows the most of the file's columns wins; a tie is refused. Columns may
carry vigile's names or Zeek's (``id.orig_h``, mapped with :mod:`.zeek_fields`); struct
columns are flattened to dotted names first, so a nested ``id`` struct reads as Zeek's.

Types are converted only within a kind (numbers, text, booleans, times, lists of
those): an integer port column of any width becomes ``int32``, an ``int64`` IP address
column is refused rather than turned into digits. Values that do not fit (a port of
2**40, a float count of 1.5, invalid UTF-8) make their row bad, not the file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from vigile.ingest.zeek_fields import FIELD_MAP, KNOWN_UNUSED, REQUIRED
from vigile.schema import PARQUET_TABLE_KEY as TABLE_KEY
from vigile.schema import TRAFFIC_TABLES, TS

#: Provenance columns a file may carry; the pipeline sets its own (``sensor`` is kept).
PROVENANCE = ("source_id", "source_pos")
_MAX_SECONDS = 9.2e12  # int64 microseconds overflow beyond this many seconds


class ColumnError(ValueError):
    """The file's columns cannot make rows of a table (message names the column)."""


@dataclass(frozen=True)
class Plan:
    """How to read one file: its table and file column -> vigile column."""

    table: str
    columns: Mapping[str, str]
    ignored: tuple[str, ...]
    zeek_names: bool


def flat_names(schema: pa.Schema) -> list[str]:
    """Column names with struct fields flattened (``id`` {orig_h} -> ``id.orig_h``)."""

    def walk(prefix: str, field: pa.Field) -> list[str]:
        name = prefix + field.name
        if pa.types.is_struct(field.type):
            return [
                n
                for i in range(field.type.num_fields)
                for n in walk(name + ".", field.type.field(i))
            ]
        return [name]

    return [n for f in schema for n in walk("", f)]


def flatten(table: pa.Table) -> pa.Table:
    """``table`` with struct columns flattened at every depth, as :func:`flat_names` names them."""
    while any(pa.types.is_struct(f.type) for f in table.schema):
        table = table.flatten()
    return table


def _mapping(table: str, zeek: bool) -> Mapping[str, str]:
    if zeek:
        return FIELD_MAP.get(table, {})
    return {c: c for c in TRAFFIC_TABLES[table].column_names if c not in PROVENANCE}


def _required(table: str, zeek: bool) -> tuple[str, ...]:
    if zeek:
        return REQUIRED.get(table, ("ts", "id.orig_h", "id.resp_h"))
    cols = TRAFFIC_TABLES[table].columns
    # ``open`` is a flag readers set, false unless the source says otherwise.
    return tuple(c.name for c in cols if not c.nullable and c.name not in (*PROVENANCE, "open"))


def plan_columns(schema: pa.Schema) -> Plan:
    """Choose the table and the column mapping; :class:`ColumnError` if none fits."""
    names = flat_names(schema)
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ColumnError(f"column {twice[0]!r} appears more than once")
    zeek = "id.orig_h" in names or "id.resp_h" in names
    meta = schema.metadata or {}
    if TABLE_KEY in meta:
        table = meta[TABLE_KEY].decode("utf-8", "replace")
        if table not in TRAFFIC_TABLES:
            known = ", ".join(TRAFFIC_TABLES)
            raise ColumnError(
                f"metadata vigile.table={table!r} is not a table vigile reads ({known})"
            )
    else:
        table = _table_from_columns(names, zeek)
    if zeek and table not in FIELD_MAP:
        raise ColumnError(f"Zeek's field names are read for {', '.join(FIELD_MAP)}, not {table}")
    missing = [c for c in _required(table, zeek) if c not in names]
    if missing:
        raise ColumnError(f"no column {missing[0]!r}, which the {table} table requires")
    mapping = _mapping(table, zeek)
    columns = {n: mapping[n] for n in names if n in mapping}
    skip = set(PROVENANCE) | (KNOWN_UNUSED if zeek else set())
    ignored = tuple(n for n in names if n not in mapping and n not in skip)
    return Plan(table, columns, ignored, zeek)


def _table_from_columns(names: list[str], zeek: bool) -> str:
    present = set(names)
    fits = {
        t: len(present & set(_mapping(t, zeek)))
        for t in TRAFFIC_TABLES
        if _mapping(t, zeek) and all(c in present for c in _required(t, zeek))
    }
    if not fits:
        need = ", ".join(_required("conn", zeek))
        raise ColumnError(f"not a vigile table: no table's required columns ({need}) are all here")
    best = max(fits.values())
    winners = sorted(t for t, n in fits.items() if n == best)
    if len(winners) > 1:
        raise ColumnError(
            f"cannot tell which table this is (its columns fit {' and '.join(winners)} "
            "equally): set the key-value metadata vigile.table"
        )
    return winners[0]


def _kind(t: pa.DataType) -> str:
    if pa.types.is_dictionary(t):
        return _kind(t.value_type)
    if pa.types.is_null(t):
        return "null"
    if pa.types.is_timestamp(t):
        return "time"
    if pa.types.is_integer(t) or pa.types.is_decimal(t):
        return "int"
    if pa.types.is_floating(t):
        return "float"
    if pa.types.is_boolean(t):
        return "bool"
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_binary(t):
        return "text"
    if pa.types.is_large_binary(t) or getattr(pa.types, "is_string_view", lambda _: False)(t):
        return "text"
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        return "list:" + _kind(t.value_type)
    return str(t)


#: Which kinds of file column may become which kind of schema column.
_ACCEPTS = {
    "time": {"time", "float", "int"},
    "int": {"int", "float"},
    "float": {"int", "float"},
    "bool": {"bool"},
    "text": {"text"},
}


def castable(source: pa.DataType, target: pa.DataType) -> bool:
    """True if values of ``source`` can become ``target`` without changing meaning."""
    have, want = _kind(source), _kind(target)
    if have == "null":
        return True
    if want.startswith("list:"):
        return have.startswith("list:") and (
            have == "list:null" or have[5:] in _ACCEPTS.get(want[5:], set())
        )
    return have in _ACCEPTS.get(want, set())


def convert(arr: pa.Array, target: pa.DataType) -> tuple[pa.Array, np.ndarray | None]:
    """``arr`` as ``target`` (see :func:`castable`), and the rows whose value did not fit."""
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    if pa.types.is_null(arr.type):
        return pa.nulls(len(arr), target), None
    if pa.types.is_timestamp(target):
        # Times beyond years 1-9999 are rejected by the pipeline, as for every reader.
        return _seconds(arr) if not pa.types.is_timestamp(arr.type) else _times(arr)
    try:
        out = _cast(arr, target)
        if _kind(target) in ("text", "list:text"):
            out.validate(full=True)  # invalid UTF-8 is found here, not in the store
        return out, None
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OverflowError):
        pass
    # Some value does not fit: find which, one row at a time (only on this slow path).
    bad = np.zeros(len(arr), dtype=bool)
    for i in range(len(arr)):
        try:
            one = _cast(arr.slice(i, 1), target)
            if _kind(target) in ("text", "list:text"):
                one.validate(full=True)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OverflowError):
            bad[i] = True
    clean = pc.if_else(pa.array(bad), pa.nulls(len(arr), arr.type), arr)
    return _cast(clean, target), bad


def _cast(arr: pa.Array, target: pa.DataType) -> pa.Array:
    return pc.cast(arr, target, safe=True)


def _times(arr: pa.Array) -> tuple[pa.Array, None]:
    """Any timestamp as microseconds in UTC: finer units are cut to microseconds (the
    schema's resolution); a time without a zone is taken as UTC, as Spark writes them."""
    us = pc.cast(arr, pa.timestamp("us", arr.type.tz), safe=False)
    return pc.cast(us.view(pa.int64()), TS), None


def _seconds(arr: pa.Array) -> tuple[pa.Array, np.ndarray | None]:
    """Epoch seconds (Zeek's ``ts`` as a double) to microsecond timestamps."""
    values = pc.cast(arr, pa.float64(), safe=False).to_numpy(zero_copy_only=False)
    valid = ~arr.is_null().to_numpy(zero_copy_only=False)
    ok = np.isfinite(values) & (np.abs(np.nan_to_num(values)) < _MAX_SECONDS)
    bad = valid & ~ok
    micros = np.where(ok, np.round(np.where(ok, values, 0) * 1e6), 0).astype(np.int64)
    out = pa.array(micros, pa.int64(), mask=~(valid & ok)).cast(TS)
    return out, (bad if bad.any() else None)
