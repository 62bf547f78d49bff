"""Vectorised text columns shared by the writers (Arrow compute, no Python loops)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_BASE62 = np.frombuffer(
    b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", dtype=np.uint8
)


def lookup(values: Sequence[str], index: np.ndarray) -> pa.Array:
    """Strings ``values[index]``; a negative index gives null.

    >>> lookup(["a", "b"], np.array([1, -1, 0])).to_pylist()
    ['b', None, 'a']
    """
    table = pa.array(values, pa.string())
    idx = index.astype(np.int32)
    return table.take(pa.array(idx, pa.int32(), mask=idx < 0))


def fixed_strings(chars: np.ndarray) -> pa.Array:
    """A string array from an ``(n, width)`` uint8 matrix of ASCII characters."""
    n, width = chars.shape
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int32)
    data = np.ascontiguousarray(chars).tobytes()
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data))


def zeek_uids(rng: np.random.Generator, n: int) -> pa.Array:
    """Connection ids shaped like Zeek's: ``C`` and 17 base-62 characters."""
    chars = _BASE62[rng.integers(0, 62, (n, 18), dtype=np.uint8)]
    chars[:, 0] = ord("C")
    return fixed_strings(chars)


def decimal6(values: np.ndarray) -> pa.Array:
    """Seconds with six decimals, as Zeek prints ``time`` and ``interval`` values.

    >>> decimal6(np.array([1713484795.943239, 0.5])).to_pylist()
    ['1713484795.943239', '0.500000']
    """
    micros = np.round(values * 1e6).astype(np.int64)
    whole = pc.cast(pa.array(micros // 1_000_000), pa.string())
    frac = pc.utf8_lpad(pc.cast(pa.array(micros % 1_000_000), pa.string()), 6, "0")
    return pc.binary_join_element_wise(whole, frac, ".")


def ints(values: np.ndarray) -> pa.Array:
    return pc.cast(pa.array(values), pa.string())


def where(mask: np.ndarray, yes: pa.Array | str, no: pa.Array | str) -> pa.Array:
    """``yes`` where ``mask`` holds, else ``no`` (arrays or scalars)."""
    return pc.if_else(pa.array(mask, pa.bool_()), yes, no)


def tsv_lines(columns: Sequence[pa.Array], unset: str = "-") -> bytes:
    """Tab-separated lines, nulls printed as ``unset``, each ending with a newline."""
    filled = [pc.fill_null(c, unset) for c in columns]
    if len(filled[0]) == 0:
        return b""
    lines = pc.binary_join_element_wise(*filled, "\t")
    ended = (
        pc.binary_join_element_wise(lines, "\n", "").combine_chunks()
        if isinstance(lines, pa.ChunkedArray)
        else pc.binary_join_element_wise(lines, "\n", "")
    )
    # The value buffer of a string array is every value back to back: the file body.
    offsets = np.frombuffer(ended.buffers()[1], dtype=np.int32)[ended.offset :]
    body = ended.buffers()[2]
    return body.to_pybytes()[offsets[0] : offsets[len(ended)]]
