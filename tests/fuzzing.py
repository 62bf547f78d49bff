"""Mutations of a valid input, and a guard against hangs, for the fuzz tests of readers.

A mutation is a short list of edits to a real or generated input: a byte replaced, bytes
inserted, the input cut, a line duplicated or removed. Small, local damage of a valid
input reaches far deeper into a parser than random bytes, which a sniffer refuses at once.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hypothesis import strategies as st

from vigile.ingest import FileResult, ingest_file, registered_readers
from vigile.store.duckdb import DuckDBStore

READERS = registered_readers()
OUTCOMES = {"ingested", "partial", "refused", "skipped", "duplicate"}


class Hang(BaseException):
    """An input took longer than its allowance (a BaseException: no reader catches it)."""


@contextmanager
def within(seconds: float) -> Iterator[None]:
    """Raise :class:`Hang` in the body if it runs longer than ``seconds`` (main thread)."""

    def expire(signum: int, frame: object) -> None:
        raise Hang(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _edit(data: bytes, edit: tuple[str, int, bytes]) -> bytes:
    how, at, chunk = edit
    pos = at % (len(data) + 1)
    if how == "replace":
        return data[:pos] + chunk + data[pos + len(chunk) :]
    if how == "insert":
        return data[:pos] + chunk + data[pos:]
    if how == "cut":
        return data[:pos]
    lines = data.splitlines(keepends=True)
    if not lines:
        return data
    i = at % len(lines)
    if how == "dup":
        return b"".join(lines[: i + 1] + lines[i:])
    return b"".join(lines[:i] + lines[i + 1 :])  # "drop"


EDITS = st.tuples(
    st.sampled_from(["replace", "insert", "cut", "dup", "drop"]),
    st.integers(0, 1 << 20),
    st.binary(min_size=1, max_size=12),
)


def mutated(seed: bytes, max_edits: int = 4) -> st.SearchStrategy[bytes]:
    """``seed`` with one to ``max_edits`` edits."""

    def apply(edits: list[tuple[str, int, bytes]]) -> bytes:
        data = seed
        for e in edits:
            data = _edit(data, e)
        return data

    return st.lists(EDITS, min_size=1, max_size=max_edits).map(apply)


def ingest_outcome(folder: Path, name: str, data: bytes, seconds: float = 20) -> FileResult:
    """Ingest ``data`` as the file ``name``: rows plus counted rejects, or one clear refusal.

    Checks that every row the result counts is stored, that every bad record is in
    ``rejects``, and that a refusal is one line naming the file.
    """
    path = folder / name
    path.write_bytes(data)
    store = DuckDBStore(":memory:")
    try:
        with within(seconds):
            result = ingest_file(store, path, READERS)
        assert result.status in OUTCOMES
        stored = sum(store.count(t) for t in result.rows)
        assert stored == sum(result.rows.values())
        assert store.count("rejects") == result.bad_rows
        if result.status == "partial":
            assert result.bad_rows > 0 and result.message
        if result.status == "refused":
            assert result.message and "\n" not in result.message
            assert result.message.startswith(str(path))
        return result
    finally:
        store.close()
