"""Decoded flows as a ``conn`` batch, converted in bulk with Arrow."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from vigile.ingest.flowstate import conn_payload, conn_states, pair_records
from vigile.ingest.netflow.templates import Address, Flow, address_text
from vigile.ingest.payload import NETFLOW_FRAMING
from vigile.schema import CONN, TS, conform

PROTO_NAMES = {1: "icmp", 6: "tcp", 17: "udp", 58: "icmp6"}


def flows_to_conn(
    flows: list[Flow], sensors: list[str], positions: list[int], source_id: int
) -> pa.RecordBatch:
    """Decoded flows as a ``conn`` batch (unidirectional records: ``resp_*`` null).

    ``conn_state`` comes from the TCP flags of the batch's records, paired by
    direction (:func:`~vigile.ingest.flowstate.conn_states`); ``orig_payload`` and
    ``resp_payload`` from their IP bytes and packets over the same pairing
    (:func:`~vigile.ingest.flowstate.conn_payload`).
    """
    cols = list(zip(*flows, strict=True))
    start = pa.array(cols[0], pa.int64())
    end = pa.array(cols[1], pa.int64())
    src_ints, dst_ints = ipv4_numbers(cols[2]), ipv4_numbers(cols[4])
    src, dst = addresses_text(cols[2], src_ints), addresses_text(cols[4], dst_ints)
    sport, dport = pa.array(cols[3], pa.int32()), pa.array(cols[5], pa.int32())
    protos = pa.array(cols[6], pa.int32())
    resp_pkts = pa.array(cols[9], pa.int64())
    ints = src_ints is not None and dst_ints is not None
    keys = {"src": src_ints if ints else src, "dst": dst_ints if ints else dst}
    keys |= {"src_port": sport, "dst_port": dport, "proto": protos}
    flags, rflags = pa.array(cols[11], pa.int64()), pa.array(cols[12], pa.int64())
    pairing = pair_records(keys, start, end, flags, resp_pkts)
    orig_pkts, orig_ip_bytes = pa.array(cols[7], pa.int64()), pa.array(cols[8], pa.int64())
    resp_ip_bytes = pa.array(cols[10], pa.int64())
    sent, received = (orig_ip_bytes, orig_pkts), (resp_ip_bytes, resp_pkts)
    orig_payload, resp_payload = conn_payload(
        keys, pairing, sent, received, NETFLOW_FRAMING, (flags, rflags)
    )
    duration = pc.divide(pc.max_element_wise(pc.subtract(end, start), 0).cast(pa.float64()), 1e6)
    n = len(flows)
    return conform(
        CONN,
        {
            "ts": start.cast(TS),
            "src": src,
            "src_port": sport,
            "dst": dst,
            "dst_port": dport,
            "proto": proto_names(protos),
            "duration": duration,
            "orig_pkts": orig_pkts,
            "orig_ip_bytes": orig_ip_bytes,
            "resp_pkts": resp_pkts,
            "resp_ip_bytes": resp_ip_bytes,
            "conn_state": conn_states(keys, start, end, flags, rflags, resp_pkts, pairing=pairing),
            "orig_payload": orig_payload,
            "resp_payload": resp_payload,
            "open": pa.array([False] * n, pa.bool_()),
            "sensor": pa.array(sensors, pa.string()),
            "source_id": pa.array([source_id] * n, pa.int64()),
            "source_pos": pa.array(positions, pa.int64()),
        },
        n,
    )


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
