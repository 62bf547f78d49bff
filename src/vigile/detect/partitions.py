"""Connection rows split by source into partitions on disk, in one read of the store.

The C2 detectors group each pair's connections in memory, which for a busy day does
not fit at once, so the rows are processed in partitions of whole sources. Filtering
the store once per partition (``hash mod``) reads and hashes every row's address once
per partition: at 50 M rows and 17 partitions that alone took longer than the scoring.
Instead the rows are read once, with the addresses as integer codes (``codes`` in the
store contract), and written as raw columns to one file per partition and column
(the external partitioning of database hash joins; the files are plain NumPy dumps
because they are written and read once by this process). Memory holds one batch while
splitting and one partition per worker while grouping; the operating system's page
cache, not this process, holds the files in between.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pyarrow as pa

#: Spilled columns and their on-disk types; dictionary columns are stored as indices,
#: a null as -1 (``dst_port`` too: ports are never negative). ``resp_payload`` is kept
#: as column ``answered``, null as False.
COLUMNS: dict[str, type] = {
    "src": np.int32,
    "dst": np.int32,
    "ts": np.int64,
    "orig_ip_bytes": np.int64,
    "answered": np.bool_,
    "dst_port": np.int32,
    "proto": np.int32,
}
_CODED = ("src", "dst", "proto")


def _numpy(col: pa.Array, dtype: type) -> np.ndarray:
    """A batch column as NumPy: dictionary indices or values, nulls as -1 (0 for bytes)."""
    if pa.types.is_dictionary(col.type):
        col = col.indices
    if pa.types.is_timestamp(col.type):
        col = col.cast(pa.int64())
    if col.null_count:
        col = col.fill_null(0 if dtype is np.int64 else -1)
    return col.to_numpy(zero_copy_only=False).astype(dtype, copy=False)


class SpilledPartitions:
    """Rows of ``conn`` split into ``k`` partitions by source code, in files under ``folder``.

    ``write`` takes record batches whose ``src``, ``dst`` and ``proto`` columns are
    dictionary-encoded over ``codes`` (as ``Store.scan_batches(..., codes=codes)``
    returns them); ``load(i)`` gives partition ``i`` back as a table with the same
    columns (``ts`` as int64 microseconds, ``answered`` for ``resp_payload``), holding
    every row of its sources.

    >>> import tempfile
    >>> codes = {"src": pa.array(["a", "b"]), "dst": pa.array(["x"]), "proto": pa.array(["tcp"])}
    >>> enc = lambda c, i: pa.DictionaryArray.from_arrays(pa.array(i, pa.int32()), codes[c])
    >>> batch = pa.record_batch({"src": enc("src", [0, 1, 0]), "dst": enc("dst", [0, 0, 0]),
    ...     "ts": pa.array([1, 2, 3]), "orig_ip_bytes": pa.array([10, None, 30]),
    ...     "resp_payload": pa.array([False, True, None]),
    ...     "dst_port": pa.array([443, None, 80], pa.int32()), "proto": enc("proto", [0, 0, 0])})
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     parts = SpilledPartitions(Path(tmp), 2, codes)
    ...     parts.write([batch])
    ...     a, b = parts.load(0), parts.load(1)
    >>> a.column("src").to_pylist(), a.column("ts").to_pylist(), b.column("dst_port").to_pylist()
    (['a', 'a'], [1, 3], [None])
    >>> a.column("orig_ip_bytes").to_pylist(), b.column("orig_ip_bytes").to_pylist()
    ([10, 30], [0])
    >>> a.column("answered").to_pylist(), b.column("answered").to_pylist()
    ([False, False], [True])
    """

    def __init__(self, folder: Path, k: int, codes: Mapping[str, pa.Array]) -> None:
        if not 1 <= k <= 1 << 16:
            raise ValueError(f"partitions must be between 1 and 65536, not {k}")
        self.folder, self.k = folder, k
        self.codes = {c: _array(v) for c, v in codes.items()}

    def _path(self, i: int, column: str) -> Path:
        return self.folder / f"{i}.{column}"

    def write(self, batches: Iterable[pa.RecordBatch]) -> None:
        """Append each batch's rows to the files of their partitions."""
        files: dict[tuple[int, str], BinaryIO] = {
            (i, c): self._path(i, c).open("wb") for i in range(self.k) for c in COLUMNS
        }
        try:
            for batch in batches:
                src = _numpy(batch.column("src"), np.int32)
                part = (np.where(src >= 0, src, 0) % self.k).astype(np.uint16)
                order = np.argsort(part, kind="stable")  # a radix sort on 16 bits
                bounds = np.searchsorted(part[order], np.arange(self.k + 1))
                for c, dtype in COLUMNS.items():
                    if c == "answered":
                        answered = batch.column("resp_payload").fill_null(False)
                        values = _numpy(answered, np.bool_)[order]
                    else:
                        values = _numpy(batch.column(c), dtype)[order]
                    for i in np.flatnonzero(np.diff(bounds)).tolist():
                        values[bounds[i] : bounds[i + 1]].tofile(files[(i, c)])
        finally:
            for f in files.values():
                f.close()

    def load(self, i: int) -> pa.Table:
        """Partition ``i`` as a table over its files mapped into memory (no copy; the
        files are unlinked at once and vanish when the table is released)."""
        out = {}
        for c, dtype in COLUMNS.items():
            path = self._path(i, c)
            values: np.ndarray = np.zeros(0, dtype)
            if path.stat().st_size:
                values = np.memmap(path, dtype=dtype, mode="r")
            path.unlink()
            mask = values < 0 if c in (*_CODED, "dst_port") else None
            arr = pa.array(values, mask=mask if mask is not None and mask.any() else None)
            out[c] = pa.DictionaryArray.from_arrays(arr, self.codes[c]) if c in _CODED else arr
        return pa.table(out)


def _array(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
