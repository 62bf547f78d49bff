"""What deriving ``conn_state`` costs per NetFlow batch, side by side in one process.

Turns one collector batch (50,000 decoded flows) into a ``conn`` batch with
``flows_to_conn`` as the collector does, once as it is and once with the state step
replaced by an all-null column, on three batch shapes: every record with its reverse
(a two-direction export), every record alone (a one-direction export, the case with
no partner to find), and the collector load test's shape (1,920 one-direction
5-tuples repeated). Prints milliseconds per batch, the difference per flow, the
ratio and peak memory. Takes a few seconds.

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
from bench.common import machine
from vigile.ingest.flowstate import conn_states

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


def best_ms(flows: list[tuple[Any, ...]]) -> float:
    sensors, positions = ["192.0.2.1"] * len(flows), [1] * len(flows)
    columns.flows_to_conn(flows, sensors, positions, 1)
    times = []
    for _ in range(REPEATS):
        t = time.perf_counter()
        columns.flows_to_conn(flows, sensors, positions, 1)
        times.append(time.perf_counter() - t)
    return min(times) * 1000


def main() -> None:
    print(f"machine: {machine()}")
    print("batch shape | with state ms | without ms | state µs/flow | ratio")
    no_state: Callable[..., pa.Array] = lambda keys, *_: pa.nulls(len(keys["src"]), pa.string())  # noqa: E731
    for name, flows in shapes().items():
        columns.conn_states = conn_states
        with_state = best_ms(flows)
        columns.conn_states = no_state
        without = best_ms(flows)
        columns.conn_states = conn_states
        extra = (with_state - without) * 1000 / len(flows)
        print(
            f"{name} | {with_state:.1f} | {without:.1f} | {extra:.2f} | {with_state / without:.2f}"
        )
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MB")


if __name__ == "__main__":
    main()
