"""What deriving ``conn_state`` costs the Suricata EVE reader, side by side in one process.

    .venv/bin/python -m bench.eve_state [--repeat 40]

Builds a large EVE file from the shared Slips EVE (its 3,512 flow events repeated,
each copy shifted by a day: 140,480 flow events by default) and, from the same
flows, a netflow-event file (each flow as its toserver and toclient event, as
Suricata writes them, toclient only when the server sent packets: 241,880). The
reader (``EveReader.read`` into a sink that only counts rows) reads each file as it
is and with the state step replaced by nothing (no flag parsing, an all-null
``conn_state``), the runs interleaved, best of 3 each.
Prints seconds of each, the time spent in the state step (timed from inside), per
event and as a share of the read, and peak memory; the section "Suricata EVE:
connection states" of docs/benchmarks.md gets the table.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa

from bench.common import ROOT, CountingSink, machine
from vigile.ingest import eve
from vigile.ingest.base import SourceFile

HEADING = "Suricata EVE: connection states"
SLIPS = ROOT.parent / "shared" / "data" / "suricata" / "slips-test6-malicious.eve.json"
REPEATS = 3


def _shift(event: dict[str, Any], days: int) -> None:
    for holder in (event, event.get("flow") or {}, event.get("netflow") or {}):
        for key in ("timestamp", "start", "end"):
            if key in holder:
                t = datetime.fromisoformat(holder[key]) + timedelta(days=days)
                holder[key] = t.isoformat()


def _netflow(event: dict[str, Any]) -> list[dict[str, Any]]:
    """A flow event as Suricata's two netflow events (toserver, toclient)."""
    f, tcp = event["flow"], event.get("tcp") or {}
    out = []
    for side, pkts, flags in (("server", "pkts_toserver", "ts"), ("client", "pkts_toclient", "tc")):
        if side == "client" and not f.get(pkts):
            continue
        e = {k: v for k, v in event.items() if k not in ("flow", "tcp")}
        if side == "client":
            e["src_ip"], e["dest_ip"] = event["dest_ip"], event["src_ip"]
            e["src_port"], e["dest_port"] = event.get("dest_port"), event.get("src_port")
        e["event_type"] = "netflow"
        e["netflow"] = {"pkts": f.get(pkts), "bytes": f.get(f"bytes_to{side}"), "start": f["start"]}
        e["netflow"]["end"] = f["end"]
        if tcp:
            e["tcp"] = {"tcp_flags": tcp.get(f"tcp_flags_{flags}", "00")}
        out.append(e)
    return out


def write_files(folder: Path, repeat: int) -> dict[str, Path]:
    flows = [json.loads(line) for line in SLIPS.open() if '"event_type":"flow"' in line]
    paths = {"flow events": folder / "flow.json", "netflow events": folder / "netflow.json"}
    with paths["flow events"].open("w") as fo, paths["netflow events"].open("w") as no:
        for day in range(repeat):
            for event in flows:
                copy = json.loads(json.dumps(event))
                _shift(copy, day)
                fo.write(json.dumps(copy, separators=(",", ":")) + "\n")
                for n in _netflow(copy):
                    no.write(json.dumps(n, separators=(",", ":")) + "\n")
    return paths


def best_seconds(
    path: Path, variants: dict[str, tuple[Any, Any]], spent: list[float]
) -> tuple[dict[str, tuple[float, float]], int]:
    """Best time of each variant (reader functions patched in), with the time ``spent``
    in its state step during that run; the runs interleaved so that a busy neighbour
    on the shared machine slows both alike."""
    best: dict[str, tuple[float, float]] = {}
    rows = 0
    for _ in range(REPEATS):
        for name, (flags, states) in variants.items():
            eve._tcp_flags, eve._states = flags, states
            sink, spent[0] = CountingSink(), 0.0
            t = time.perf_counter()
            eve.EveReader().read(SourceFile.probe(path), sink)
            took = time.perf_counter() - t
            if name not in best or took < best[name][0]:
                best[name] = (took, spent[0])
            rows = sum(sink.rows.values())
    return best, rows


def _timed(fn: Any, spent: list[float]) -> Any:
    def run(*args: Any) -> Any:
        t = time.perf_counter()
        try:
            return fn(*args)
        finally:
            spent[0] += time.perf_counter() - t

    return run


def main() -> str:
    parser = argparse.ArgumentParser(prog="python -m bench.eve_state")
    parser.add_argument("--repeat", type=int, default=40, help="copies of the Slips flows")
    args = parser.parse_args(sys.argv[1:])

    def no_flags(*_: Any) -> tuple[None, None]:
        return None, None

    def no_states(columns: Mapping[str, pa.Array], rows: list[Any]) -> pa.Array:
        return pa.nulls(len(rows), pa.string())

    lines = [
        f"`.venv/bin/python -m bench.eve_state --repeat {args.repeat}` on {machine()}.",
        "",
        "The EVE reader (`EveReader.read` into a sink that only counts rows) with and "
        "without the state step (parsing the hex TCP flags, `flowstate.conn_states` per "
        "batch of 20,000 rows), best of 3 (interleaved), on the Slips flow events repeated "
        f"{args.repeat} times (a day apart) and on the same flows as Suricata's netflow "
        "events (toserver and toclient). *State step* is the time spent in it during the "
        "best run with states, timed from inside (a neighbour's load on the shared "
        "machine moves the two whole-read columns by more than the step costs). Flow "
        "events are biflows: no pairing, the cost is the flags and a table look-up. "
        "Netflow events are paired by reversed 5-tuple within the batch (an Arrow join "
        "on text addresses).",
        "",
        "| file | events | read with states s | without s | state step s "
        "| µs/event | share of the read |",
        "|---|---|---|---|---|---|---|",
    ]
    spent = [0.0]
    with_flags, with_states = eve._tcp_flags, eve._states
    variants = {
        "on": (_timed(with_flags, spent), _timed(with_states, spent)),
        "off": (no_flags, no_states),
    }
    with tempfile.TemporaryDirectory() as tmp:
        for name, path in write_files(Path(tmp), args.repeat).items():
            best, rows = best_seconds(path, variants, spent)
            eve._tcp_flags, eve._states = with_flags, with_states
            (on, step), (off, _) = best["on"], best["off"]
            lines.append(
                f"| {name} | {rows:,} | {on:.2f} | {off:.2f} | {step:.2f} "
                f"| {step * 1e6 / rows:.2f} | {step / on:.0%} |"
            )
            print(lines[-1], flush=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    lines += ["", f"Peak memory of the process: {peak:,} MiB."]
    return "\n".join(lines)


if __name__ == "__main__":
    from bench.common import update_section

    body = main()
    print(body)
    update_section(HEADING, body)
