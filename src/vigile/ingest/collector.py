"""The live NetFlow/IPFIX collector: UDP datagrams in, ``conn`` rows in batches.

One thread receives and decodes (:func:`vigile.ingest.netflow.decode_datagram`);
a second one writes finished batches, so a slow commit does not stop reception.

Storage contract:

* Flows are written in batches, cut when ``batch_rows`` flows are waiting or
  ``batch_seconds`` have passed. Each batch is one input in ``sources`` (one
  store transaction: all its rows or none), so a crash never stores half a batch;
  it loses the batch being filled and the records waiting for a partner (below).
* A batch's ``content_hash`` hashes its datagrams (exporter address, port and bytes)
  and which records it takes from and leaves to its neighbours (below), so committing
  the same batch twice, e.g. a retry, adds nothing.
* Records of one connection that fall on either side of a cut are still paired: the
  lone one-direction TCP/UDP records of a batch are held back into the next batches
  (:class:`~vigile.ingest.pairhold.PairHold`) for ``pair_wait`` seconds after their
  batch was cut, at most :data:`~vigile.ingest.pairhold.HOLD_ROWS` of them; each is
  stored exactly once, with the batch in which its partner came or its wait ended. A
  batch whose rows all wait stores nothing (its rows go with a later batch). When a
  waiting record's time is up and no datagram comes, a batch is cut anyway; the last
  batch (:meth:`Collector.close`) holds nothing back.
* An exporter that sends one direction only is learnt, and its records are stored
  without waiting (:mod:`~vigile.ingest.oneway`): counted in ``not_held``, named in
  ``one_way_exporters`` and in a notice of each batch; ``resumed`` counts the times
  one paired again. Given the ``internal`` networks (the network model), this is
  learnt per exporter and kind of path (internal, internet, transit): a firewall that
  exports both directions of internal traffic and one of internet traffic has its
  internet records stored at once and its internal ones still paired.
* Every flow keeps its exporter address as ``sensor`` and the number of its
  datagram in the session as ``source_pos``; malformed datagrams go to
  ``rejects`` under the same position.
* Each batch's ``notices`` holds the session counters at that moment; the last
  batch, written by :meth:`Collector.close` even when empty, holds the totals.
* :meth:`Collector.stop` (called from a SIGINT/SIGTERM handler) ends the loop;
  :meth:`Collector.close` then reads the datagrams still waiting in the socket's
  receive buffer (they arrived before the stop) and writes everything received
  before returning.
* The store is opened for each batch and closed after it (``open_store``), so
  other commands (``vigile hunt``, ``status``, ``ingest``) can use the same store
  between batches. While another process holds it, finished batches wait in a
  queue of ``PENDING_BATCHES``; reception stops only when that queue is full.
"""

from __future__ import annotations

import os
import queue
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

import blake3
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from vigile.config import IPNetwork
from vigile.ingest.base import HASH_PREFIX, content_hasher, hash_id
from vigile.ingest.netflow import (
    DecodeError,
    DecodeResult,
    Flow,
    TemplateCache,
    decode_datagram,
)
from vigile.ingest.netflow.columns import conn_batch, flows_to_rows
from vigile.ingest.oneway import ONE_WAY_RECORDS
from vigile.ingest.pairhold import PairHold
from vigile.store import SourceRecord, SourceSummary, Store

RECV_BUFFER = 64 << 20
PENDING_BATCHES = 16
#: How long a stop goes on reading datagrams already waiting in the receive buffer. A
#: full buffer (RECV_BUFFER, doubled by Linux: 58,254 datagrams of 30 IPFIX records,
#: 1.75 M flows) took 13 s to read and decode on 2 shared cores; an exporter that goes
#: on sending at full rate after the stop is not waited for beyond this.
DRAIN_SECONDS = 30.0
SEQUENCE_WINDOW = 1 << 31
#: Seconds a lone record waits for its reverse-direction record. Records pair when their
#: spans lie within flowstate.PAIR_SLACK_US (5 s) of each other; an exporter that times
#: out each direction on its own sends the second that much later at most, plus its
#: expiry scan interval, and softflowd sends both at once.
PAIR_WAIT = 10.0


@dataclass
class Counters:
    """What the collector has seen this session (shown live, stored with each batch)."""

    datagrams: int = 0
    flows: int = 0
    options_records: int = 0
    templates: int = 0
    unknown_template: int = 0
    malformed: int = 0
    dropped: int | None = None  # datagrams the kernel dropped (socket buffer full)
    lost: int = 0  # records (v5, IPFIX) or packets (v9) missing by exporter sequence
    batches: int = 0
    rows_written: int = 0
    held_back: int = 0  # lone records held into a later batch to wait for their partner
    paired_late: int = 0  # held-back records whose partner came in a later batch
    released_early: int = 0  # held-back records stored before their wait ended (hold full)
    merged: int = 0  # responder records stored in their originator's row, not as rows
    read_at_stop: int = 0  # datagrams still waiting in the socket buffer at the stop, read
    not_held: int = 0  # lone records stored at once: their exporter sends one direction only
    resumed: int = 0  # times a one-way exporter (and kind of path) paired and was held again
    one_way_exporters: list[str] = field(default_factory=list)  # those exporters (kinds), now

    def text(self) -> str:
        return " ".join(f"{k}={_text(v)}" for k, v in asdict(self).items())


def _text(value: int | list[str] | None) -> str:
    if value is None:
        return "unknown"
    return (",".join(value) or "none") if isinstance(value, list) else str(value)


@dataclass
class _Batch:
    number: int
    flows: list[Flow] = field(default_factory=list)
    sensors: list[str] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)
    rejects: list[tuple[int, str, bytes]] = field(default_factory=list)
    digest: blake3.blake3 = field(default_factory=content_hasher)
    size: int = 0
    started: float = field(default_factory=time.monotonic)
    cut: float = 0.0  # when the batch was closed (monotonic); the held records' clock
    final: bool = False  # the last batch: nothing is held back from it
    rows: pa.Table | None = None  # what the batch stores, settled when it is first written


def parse_listen(text: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` to a (host, port) pair.

    >>> parse_listen("127.0.0.1:2055"), parse_listen("[::1]:4739")
    (('127.0.0.1', 2055), ('::1', 4739))
    """
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"{text!r} is not host:port")
    return host.strip("[]") or "127.0.0.1", int(port)


class Collector:
    """Receives export datagrams on one UDP socket and stores their flows."""

    def __init__(
        self,
        open_store: Callable[[], Store],
        host: str = "127.0.0.1",
        port: int = 2055,
        *,
        batch_rows: int = 50_000,
        batch_seconds: float = 5.0,
        cache: TemplateCache | None = None,
        receive_buffer: int = RECV_BUFFER,
        pair_wait: float = PAIR_WAIT,
        one_way_records: int = ONE_WAY_RECORDS,
        internal: Sequence[IPNetwork] = (),
    ) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        _grow_receive_buffer(self.sock, receive_buffer)
        self.sock.bind((host, port))
        self.sock.settimeout(0.1)
        self.host, self.port = host, self.sock.getsockname()[1]
        self.open_store = open_store
        self.batch_rows, self.batch_seconds = batch_rows, batch_seconds
        self.cache = cache or TemplateCache()
        self.counters = Counters()
        self.session = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        self._batch = _Batch(1)
        self._hold = PairHold(pair_wait, one_way_records=one_way_records, internal=internal)
        self._hold_due: float | None = None  # set by the writer: when held records are due
        self._expected: dict[tuple[str, int, int], tuple[int, ...]] = {}
        self._stop = threading.Event()
        self._queue: queue.Queue[_Batch | None] = queue.Queue(maxsize=PENDING_BATCHES)
        self._writer = threading.Thread(target=self._write_loop, name="collector-writer")
        self._writer.start()
        self._error: BaseException | None = None

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"udp://{host}:{self.port}"

    def one_way_notices(self) -> list[str]:
        """One line per exporter (and kind of path) judged to send one direction only."""
        return self._hold.exporters.notices()

    def stop(self) -> None:
        """Ask :meth:`serve` to return (safe from a signal handler or another thread)."""
        self._stop.set()

    def serve(
        self, on_tick: Callable[[Counters], None] = lambda c: None, tick: float = 0.5
    ) -> None:
        """Receive until :meth:`stop`; calls ``on_tick`` about every ``tick`` seconds."""
        recv = self.sock.recvfrom
        next_tick = time.monotonic() + tick
        while not self._stop.is_set():
            try:
                data, peer = recv(65535)
            except TimeoutError:
                data = b""
            except InterruptedError:
                continue
            if data:
                self.handle(data, peer[0], peer[1])
            now = time.monotonic()
            if now >= next_tick:
                self._tick(now)
                on_tick(self.counters)
                next_tick = now + tick
            if self._error is not None:
                raise self._error

    def handle(self, data: bytes, exporter: str, port: int = 0) -> None:
        """Decode one datagram from ``exporter`` (address) and its source ``port``.

        Templates and sequence numbers belong to the transport session, the exporter's
        address and port (RFC 7011 §8.4): an exporter that restarts on a new port starts
        afresh. The sensor recorded is the address alone.
        """
        session = f"{exporter}:{port}"
        c, batch = self.counters, self._batch
        c.datagrams += 1
        position = c.datagrams
        batch.digest.update(session.encode() + len(data).to_bytes(4, "big") + data)
        batch.size += len(data)
        try:
            result = decode_datagram(data, session, self.cache, time.monotonic())
        except DecodeError as e:
            c.malformed += 1
            batch.rejects.append((position, str(e), data))
            return
        except Exception as e:  # a decoder bug must not stop collection: keep the datagram
            c.malformed += 1
            batch.rejects.append((position, f"decoder error {type(e).__name__}: {e}", data))
            return
        if result.problems:
            c.malformed += 1
            batch.rejects.append((position, "; ".join(result.problems), data))
        self._check_sequence(session, result)
        c.templates += result.templates
        c.options_records += result.options_records
        if result.flows:
            n = len(result.flows)
            c.flows += n
            batch.flows.extend(result.flows)
            batch.sensors.extend([exporter] * n)
            batch.positions.extend([position] * n)
            if len(batch.flows) >= self.batch_rows:
                self._cut()

    def _check_sequence(self, session: str, r: DecodeResult) -> None:
        """Count records missing by the exporter's sequence numbers.

        v5 and IPFIX number data records, v9 numbers packets. RFC 7011 numbers a
        message by the records sent before it, options records included; softflowd
        leaves options records out and numbers a message by the records up to and
        including it. Each of these readings is accepted; a gap under all of them
        (the smallest) is counted as lost.
        """
        key = (session, r.version, r.domain)
        if r.version == 9:
            counts: tuple[int, ...] = (1,)
        else:
            counts = (r.data_records, r.data_records - r.options_records)
        previous = self._expected.get(key)
        self._expected[key] = (r.sequence, *counts)
        if previous is None:
            return
        prev_seq, prev_counts = previous[0], previous[1:]
        gaps = [(r.sequence - prev_seq - n) & 0xFFFFFFFF for n in prev_counts]
        if r.version != 9:
            gaps += [(r.sequence - n - prev_seq) & 0xFFFFFFFF for n in counts]
        if 0 not in gaps:
            gap = min(gaps)
            self.counters.lost += gap if gap < SEQUENCE_WINDOW else 0

    def _tick(self, now: float) -> None:
        self.cache.expire(time.monotonic())
        self.counters.unknown_template = self.cache.unknown_template
        self.counters.dropped = socket_drops(self.sock)
        batch, due = self._batch, self._hold_due
        waited = (batch.flows or batch.rejects) and now - batch.started >= self.batch_seconds
        if waited or (due is not None and now >= due):  # held records must not wait forever
            self._hold_due = None
            self._cut()

    def _cut(self) -> None:
        self.counters.batches += 1
        self._batch.cut = time.monotonic()
        self._queue.put(self._batch)
        self._batch = _Batch(self._batch.number + 1)

    def close(self) -> Counters:
        """Write what was received (parked sets count as unknown template) and stop.

        Datagrams that reached the socket before the stop but were not read yet (the
        kernel's receive buffer holds up to its size of them) are read and stored
        first: they were received, not lost (:meth:`_drain`)."""
        self._drain()
        self.counters.dropped = socket_drops(self.sock)
        self.sock.close()
        self.cache.expire(float("inf"))
        self.counters.unknown_template = self.cache.unknown_template
        self.counters.batches += 1
        self._batch.cut, self._batch.final = time.monotonic(), True
        self._queue.put(self._batch)  # written even if empty: it holds the final counters
        self._queue.put(None)
        self._writer.join()
        if self._error is not None:
            raise self._error
        return self.counters

    def _drain(self, seconds: float = DRAIN_SECONDS) -> None:
        """Decode every datagram waiting in the receive buffer, for at most ``seconds``
        (an exporter that goes on sending at full rate keeps the buffer filled; what
        arrives after the stop is not waited for beyond that)."""
        self.sock.setblocking(False)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                data, peer = self.sock.recvfrom(65535)
            except InterruptedError:
                continue
            except (BlockingIOError, OSError):
                return
            self.counters.read_at_stop += 1
            self.handle(data, peer[0], peer[1])

    def _write_loop(self) -> None:
        while (batch := self._queue.get()) is not None:
            if self._error is None:
                try:
                    self._write(batch)
                except BaseException as e:  # reported to the receiving thread
                    self._error = e

    def _write(self, batch: _Batch) -> None:
        if batch.rows is None:
            self._settle(batch)
        assert batch.rows is not None
        if not (batch.rows.num_rows or batch.rejects or batch.final):
            return  # every row waits: they are stored with a later batch
        store = self.open_store()
        try:
            self._write_to(store, batch, batch.rows)
        finally:
            store.close()

    def _settle(self, batch: _Batch) -> None:
        """Decide, once per batch, which rows it stores (held ones join and leave) and
        its content hash: a retried write of the batch stores the same rows or nothing."""
        hold, c = self._hold, self.counters
        carried = hold.held
        rows = flows_to_rows(batch.flows, batch.sensors, batch.positions) if batch.flows else None
        batch.rows = hold.release(rows, batch.cut, final=batch.final)
        _hash_rows(batch.digest, b"in", carried)
        _hash_rows(batch.digest, b"out", hold.held)
        if not (batch.flows or batch.rejects):
            batch.digest.update(f"{self.address} {self.session} {batch.number}".encode())
        batch.flows, batch.sensors, batch.positions = [], [], []  # in batch.rows now
        c.held_back, c.paired_late, c.released_early = hold.held_back, hold.paired_late, hold.early
        c.merged, c.not_held = hold.merged, hold.exporters.not_held
        c.resumed, c.one_way_exporters = hold.exporters.resumed, hold.exporters.labels()
        self._hold_due = hold.due()

    def _write_to(self, store: Store, batch: _Batch, rows: pa.Table) -> None:
        content_hash = HASH_PREFIX + batch.digest.hexdigest()
        if content_hash in store.source_hashes(batch.size):
            return
        path = f"{self.address}#{self.session}/{batch.number}"
        record = SourceRecord(
            hash_id(content_hash), path, content_hash, batch.size, "netflow-collector"
        )
        summary = SourceSummary(log_type="conn", bad_rows=len(batch.rejects))
        with store.source_writer(record) as writer:
            if rows.num_rows:
                conn = conn_batch(rows, record.source_id)
                writer.append("conn", conn)
                summary.rows["conn"] = conn.num_rows
                lo, hi = pc.min_max(conn.column("ts")).values()
                summary.first_ts, summary.last_ts = lo.as_py(), hi.as_py()
            for position, reason, raw in batch.rejects:
                text = raw[:4096].decode("utf-8", "backslashreplace")
                writer.reject(position, "record", f"datagram {position}: {reason}", text)
            if batch.rejects:
                first = batch.rejects[0]
                summary.first_error = f"{path}@datagram {first[0]}: {first[1]}"
            self.counters.rows_written += rows.num_rows
            summary.notices.append(f"collector counters: {self.counters.text()}")
            summary.notices.extend(self.one_way_notices())
            writer.finish(summary)


def _hash_rows(digest: blake3.blake3, tag: bytes, rows: pa.Table | None) -> None:
    """Add which records (datagram number, times, ports, bytes) ``rows`` holds to a hash."""
    digest.update(tag + (rows.num_rows if rows is not None else 0).to_bytes(8, "big"))
    if rows is None:
        return
    for name in ("source_pos", "_start_us", "_end_us", "src_port", "dst_port", "orig_ip_bytes"):
        values = pc.fill_null(rows[name].combine_chunks(), 0).cast(pa.int64())
        digest.update(np.asarray(values).tobytes())


def _grow_receive_buffer(sock: socket.socket, size: int) -> None:
    """Ask for a large socket buffer (SO_RCVBUFFORCE passes rmem_max when privileged)."""
    # Python does not export SO_RCVBUFFORCE; 33 is its value in Linux <asm-generic/socket.h>.
    force = getattr(socket, "SO_RCVBUFFORCE", 33 if sys.platform == "linux" else None)
    try:
        if force is not None:
            sock.setsockopt(socket.SOL_SOCKET, force, size)
            return
    except OSError:
        pass
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)


def socket_drops(sock: socket.socket) -> int | None:
    """Datagrams the kernel dropped for this socket (Linux ``/proc/net/udp``), else None."""
    try:
        inode = os.fstat(sock.fileno()).st_ino
    except OSError:
        return None
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    if len(parts) >= 13 and parts[9] == str(inode):
                        return int(parts[-1])
        except OSError:
            continue
    return None
