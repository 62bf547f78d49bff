"""Decoded flows as a ``conn`` batch, converted in bulk with Arrow."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from vigile.ingest.netflow.templates import Address, Flow, address_text
from vigile.ingest.pairhold import PairHold
from vigile.schema import CONN, TS, conform

PROTO_NAMES = {1: "icmp", 6: "tcp", 17: "udp", 58: "icmp6"}


def flows_to_conn(
    flows: list[Flow], sensors: list[str], positions: list[int], source_id: int
) -> pa.RecordBatch:
    """Decoded flows as a ``conn`` batch (unidirectional records: ``resp_*`` null).

    ``conn_state`` comes from the TCP flags of the batch's records, paired by
    direction (:func:`~vigile.ingest.flowstate.conn_states`) among these flows only;
    the collector pairs across its batches with :func:`flows_to_rows` and a
    :class:`~vigile.ingest.pairhold.PairHold`.
    """
    rows = PairHold(0).release(flows_to_rows(flows, sensors, positions), 0, final=True)
    return conn_batch(rows, source_id)


def flows_to_rows(flows: list[Flow], sensors: list[str], positions: list[int]) -> pa.Table:
    """Decoded flows as ``conn`` columns (no state, no source) and the pairing work columns
    (:data:`~vigile.ingest.pairhold.WORK`)."""
    cols = list(zip(*flows, strict=True))
    start = pa.array(cols[0], pa.int64())
    end = pa.array(cols[1], pa.int64())
    src_ints, dst_ints = ipv4_numbers(cols[2]), ipv4_numbers(cols[4])
    src, dst = addresses_text(cols[2], src_ints), addresses_text(cols[4], dst_ints)
    sport, dport = pa.array(cols[3], pa.int32()), pa.array(cols[5], pa.int32())
    protos = pa.array(cols[6], pa.int32())
    duration = pc.divide(pc.max_element_wise(pc.subtract(end, start), 0).cast(pa.float64()), 1e6)
    n = len(flows)
    conn = conform(
        CONN,
        {
            "ts": start.cast(TS),
            "src": src,
            "src_port": sport,
            "dst": dst,
            "dst_port": dport,
            "proto": proto_names(protos),
            "duration": duration,
            "orig_pkts": pa.array(cols[7], pa.int64()),
            "orig_ip_bytes": pa.array(cols[8], pa.int64()),
            "resp_pkts": pa.array(cols[9], pa.int64()),
            "resp_ip_bytes": pa.array(cols[10], pa.int64()),
            "open": pa.array([False] * n, pa.bool_()),
            "sensor": pa.array(sensors, pa.string()),
            "source_id": pa.array([0] * n, pa.int64()),
            "source_pos": pa.array(positions, pa.int64()),
        },
        n,
    )
    work = {"_start_us": start, "_end_us": end, "_proto": protos}
    work |= {"_flags": pa.array(cols[11], pa.int64()), "_rflags": pa.array(cols[12], pa.int64())}
    none = pa.nulls(n, pa.uint32())
    work["_src4"] = none if src_ints is None else src_ints
    work["_dst4"] = none if dst_ints is None else dst_ints
    table = pa.Table.from_batches([conn])
    for name, values in work.items():
        table = table.append_column(name, values)
    return table


def conn_batch(rows: pa.Table, source_id: int) -> pa.RecordBatch:
    """Rows from :meth:`~vigile.ingest.pairhold.PairHold.release` as one ``conn`` batch of
    the source ``source_id``."""
    columns = {name: rows[name].combine_chunks() for name in rows.column_names}
    columns["source_id"] = pa.array(np.full(rows.num_rows, source_id, np.int64))
    return conform(CONN, columns, rows.num_rows)


def ipv4_numbers(values: tuple[Address, ...]) -> pa.Array | None:
    """Flow addresses as a uint32 array when every one is IPv4, else None."""
    try:
        return pa.array(values, pa.uint32())
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
        return None


def addresses_text(values: tuple[Address, ...], ints: pa.Array | None = None) -> pa.Array:
    """Flow addresses as text: IPv4 integers (``ints`` when already converted) are
    formatted in bulk by Arrow."""
    ints = ints if ints is not None else ipv4_numbers(values)
    if ints is None:
        return pa.array([address_text(v) for v in values], pa.string())
    octets = [
        pc.cast(pc.bit_wise_and(pc.shift_right(ints, shift), 255), pa.string())
        for shift in (24, 16, 8, 0)
    ]
    return pc.binary_join_element_wise(*octets, ".")


def proto_names(numbers: pa.Array) -> pa.Array:
    """Protocol numbers as conn names (tcp, udp, icmp, icmp6, else the number)."""
    names = pc.cast(numbers, pa.string())
    for number, name in PROTO_NAMES.items():
        names = pc.if_else(pc.equal(numbers, number), name, names)
    return names
