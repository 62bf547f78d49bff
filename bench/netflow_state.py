"""What deriving ``conn_state`` and the payload columns costs per NetFlow batch, side
by side in one process.

Turns one collector batch (50,000 decoded flows) into a ``conn`` batch, once with
``flows_to_conn`` (pairing, ``conn_state``, ``orig_payload``/``resp_payload`` within
the batch) and once without that step (``flows_to_rows`` then ``conn_batch``: all-null
columns), on three batch
shapes: every record with its reverse (a two-direction export), every record alone
(a one-direction export, the case with no partner to find), and the collector load
test's shape (1,920 one-direction 5-tuples repeated). Prints milliseconds per batch
(best of 7, the three steps in turn), the difference per flow, the ratio and peak
memory. The last column is the collector's own step since records wait across
batches for their partner: ``flows_to_rows``, ``PairHold.release`` with the previous
batch's lone records waiting (up to 50,000: a one-direction export would keep the hold
full, were its exporter not learnt one-way; here it is not) and ``conn_batch``; then
the same with the exporter learnt one-way from the previous batch (its records not
held, :mod:`vigile.ingest.oneway`), and the state step with the records of two
exporters (each connection's two records from one of them, alternately: the pairing
join takes the exporter as a key). Then the time of each step alone (pairing, state,
payload). Takes a few seconds.

    .venv/bin/python -m bench.netflow_state
"""

from __future__ import annotations

import random
import resource
import time
from collections.abc import Callable
from typing import Any

import pyarrow as pa

import vigile.ingest.netflow.columns as columns
import vigile.ingest.pairhold as pairhold
from bench.common import machine
from vigile.ingest.flowstate import conn_payload, conn_states, pair_records

N = 50_000
T0 = 1_700_000_000_000_000
REPEATS = 7


def _flow(t: int, a: int, sp: int, b: int, dp: int, flags: int) -> tuple[Any, ...]:
    return (t, t + 5_000, a, sp, b, dp, 6, 10, 1_000, None, None, flags, None)


def shapes() -> dict[str, list[tuple[Any, ...]]]:
    rng = random.Random(1)
    paired, alone = [], []
    for i in range(N // 2):
        a, b, sp, t = rng.getrandbits(32), rng.getrandbits(32), rng.randint(1024, 65535), T0
        paired += [_flow(t + i, a, sp, b, 443, 0x1B), _flow(t + i + 100, b, 443, a, sp, 0x1B)]
    for i in range(N):
        alone.append(_flow(T0 + i, rng.getrandbits(32), rng.randint(1024, 65535), 1, 443, 0x1B))
    load = [
        _flow(T0 + i, 0x0A000001 + (i % 64 << 16) + (i % 30 << 8), 40_000 + i % 30, 3, 443, 0x1B)
        for i in range(N)
    ]
    return {"two directions": paired, "one direction": alone, "load test": load}


def one_s(flows: list[tuple[Any, ...]], earlier: list[tuple[Any, ...]], step: str) -> float:
    """Seconds for one batch to ``conn`` rows by ``step``: ``state`` (``flows_to_conn``:
    pairing and states within the batch, no hold), ``none`` (the rows as
    ``flows_to_rows`` gives them, no state), ``hold`` (the collector's step, with
    ``earlier``'s lone records waiting in the hold), ``one-way`` (the same, its
    exporter learnt one-way from ``earlier``) or ``exporters`` (``state`` with the
    records of two exporters)."""
    sensors, positions = ["192.0.2.1"] * len(flows), [1] * len(flows)
    if step == "exporters":
        sensors = [f"192.0.2.{1 + (i // 2) % 2}" for i in range(len(flows))]
    never = 10 * pairhold.HOLD_ROWS  # so many lone records in a row: never learnt one-way
    hold = pairhold.PairHold(10.0, one_way_records=never if step == "hold" else 5_000)
    if step in ("hold", "one-way"):
        hold.release(columns.flows_to_rows(earlier, sensors, positions), 0.0)
    t = time.perf_counter()
    if step in ("state", "exporters"):
        columns.flows_to_conn(flows, sensors, positions, 1)
    elif step == "none":
        columns.conn_batch(columns.flows_to_rows(flows, sensors, positions), 1)
    else:
        columns.conn_batch(hold.release(columns.flows_to_rows(flows, sensors, positions), 5.0), 1)
    return time.perf_counter() - t


def main() -> None:
    print(f"machine: {machine()}")
    print(
        "batch shape | with state ms | without ms | state µs/flow | ratio | with the hold ms"
        " | one-way learnt ms | two exporters ms"
    )
    hour = 3_600_000_000  # the previous batch: the same shape an hour earlier, no partners
    for name, flows in shapes().items():
        earlier = [(f[0] - hour, f[1] - hour, *f[2:]) for f in flows]
        steps = ("state", "none", "hold", "one-way", "exporters")
        times: dict[str, list[float]] = {step: [] for step in steps}
        for _ in range(REPEATS + 1):  # the steps in turn, so a neighbour's load hits all
            for step, spent in times.items():
                spent.append(one_s(flows, earlier, step))
        with_state, without, held, learnt, two = (min(v[1:]) * 1000 for v in times.values())
        extra = (with_state - without) * 1000 / len(flows)
        print(
            f"{name} | {with_state:.1f} | {without:.1f} | {extra:.2f} | "
            f"{with_state / without:.2f} | {held:.1f} | {learnt:.1f} | {two:.1f}"
        )
    print("batch shape | pairing ms | conn_state ms | payload ms (each step alone, best of 15)")
    for name, flows in shapes().items():
        print(f"{name} | " + " | ".join(f"{ms:.1f}" for ms in step_ms(flows)))
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MB")


def step_ms(flows: list[tuple[Any, ...]]) -> list[float]:
    """Best milliseconds of the pairing, the state and the payload step on one batch."""
    cols = list(zip(*flows, strict=True))
    keys = {"src": pa.array(cols[2], pa.uint32()), "dst": pa.array(cols[4], pa.uint32())}
    keys |= {"src_port": pa.array(cols[3], pa.int32()), "dst_port": pa.array(cols[5], pa.int32())}
    keys["proto"] = pa.array(cols[6], pa.int32())
    start, end = pa.array(cols[0], pa.int64()), pa.array(cols[1], pa.int64())
    flags, rpkts = pa.array(cols[11], pa.int64()), pa.array(cols[9], pa.int64())
    sent = (pa.array(cols[8], pa.int64()), pa.array(cols[7], pa.int64()))
    received = (pa.array(cols[10], pa.int64()), rpkts)
    pairing = pair_records(keys, start, end, flags, rpkts)
    steps: list[Callable[[], Any]] = [
        lambda: pair_records(keys, start, end, flags, rpkts),
        lambda: conn_states(keys, start, end, flags, flags, rpkts, pairing=pairing),
        lambda: conn_payload(keys, pairing, sent, received, 0),
    ]
    out = []
    for step in steps:
        times = []
        for _ in range(15):
            t = time.perf_counter()
            step()
            times.append(time.perf_counter() - t)
        out.append(min(times) * 1000)
    return out


if __name__ == "__main__":
    main()
