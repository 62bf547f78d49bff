"""The collector's own duties: batches, counters, rejects, loss, signals, idempotency."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from tests.netflow_peers import RunningCollector, free_udp_port
from tests.test_netflow_decode import FIELDS, ipfix_msg, record, template

from vigile.store.duckdb import DuckDBStore


def _send(port: int, messages: list[bytes]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for m in messages:
            s.sendto(m, ("127.0.0.1", port))
            time.sleep(0.001)


def _flows_msg(seq: int, n: int, base: int = 0) -> bytes:
    recs = b"".join(record("10.0.0.1", "10.0.0.2", 1, 100 + base + i, 1000 + i) for i in range(n))
    return ipfix_msg([(2, template(300, FIELDS)), (300, recs)], seq=seq)


def test_counters_loss_rejects_and_batches(tmp_path: Path) -> None:
    # pair_wait=0: the records are one-direction, and would otherwise wait for a partner
    with RunningCollector(
        tmp_path / "v.duckdb", batch_rows=25, batch_seconds=60, pair_wait=0
    ) as run:
        port = run.collector.port
        msgs = [_flows_msg(0, 10), _flows_msg(10, 10, 10), _flows_msg(27, 10, 20)]  # 7 lost
        msgs += [b"\x00\x0a\x00\x05garbage", b"\x00\x63" + b"\x00" * 30]  # malformed, v99
        msgs += [ipfix_msg([(301, b"\x00" * 20)], seq=37)]  # template never sent
        _send(port, msgs)
        run.wait_for(len(msgs))
    c = run.counters
    assert (c.datagrams, c.flows, c.malformed, c.lost, c.unknown_template) == (6, 30, 2, 7, 1)
    assert c.rows_written == 30 and c.batches == 2  # one cut by count (25+), one on close
    store = run.open()
    assert store.count("conn") == 30
    rejects = store.scan("rejects").to_pylist()
    assert sorted(r["position"] for r in rejects) == [4, 5]
    assert any("unknown NetFlow version 99" in r["reason"] for r in rejects)
    sources = store.scan("sources", order_by=["path"]).to_pylist()
    assert [s["rows_conn"] for s in sources] == [30, 0]
    assert "lost=7" in sources[-1]["notices"] and "malformed=2" in sources[-1]["notices"]
    store.close()


def test_batches_by_time(tmp_path: Path) -> None:
    with RunningCollector(tmp_path / "v.duckdb", batch_seconds=0.2, pair_wait=0) as run:
        _send(run.collector.port, [_flows_msg(0, 5)])
        run.wait_for(1)
        time.sleep(1.0)
        assert run.count("conn") == 5  # written, and readable, while the collector runs
        _send(run.collector.port, [_flows_msg(5, 5, 5)])
        run.wait_for(2)
    assert run.count("conn") == 10


def test_same_batch_twice_adds_nothing(tmp_path: Path) -> None:
    from vigile.ingest.collector import _Batch

    with RunningCollector(tmp_path / "v.duckdb") as run:
        pass
    collector = run.collector
    batch = _Batch(7)
    collector._batch = batch
    collector.handle(_flows_msg(0, 4), "192.0.2.1")
    collector._write(batch)  # the lone records wait for their partners: nothing stored
    collector._write(batch)  # a retry: the same decision, nothing held twice
    assert run.count("conn") == 0 and collector._hold.rows == 4
    final = _Batch(8, final=True)
    collector._write(final)
    collector._write(final)  # a retried commit of the same batch
    assert run.count("conn") == 4 and collector._hold.rows == 0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_cli_signal_writes_everything(tmp_path: Path, sig: signal.Signals) -> None:
    port = free_udp_port()
    db = tmp_path / "v.duckdb"
    cmd = [
        sys.executable,
        "-m",
        "vigile",
        "collect",
        "--listen",
        f"127.0.0.1:{port}",
        "--db",
        str(db),
        "--batch-seconds",
        "3600",
        "--json",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        assert "listening on" in proc.stderr.readline()
        _send(port, [_flows_msg(i * 20, 20, i * 20) for i in range(5)])
        time.sleep(0.5)
    finally:
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    counters = json.loads(out)
    assert counters["datagrams"] == 5 and counters["flows"] == 100
    store = DuckDBStore(db, read_only=True)
    assert store.count("conn") == 100
    store.close()


def test_cli_refuses_public_address_without_flag() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "vigile", "collect", "--listen", "0.0.0.0:2055"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert "--allow-remote" in proc.stderr and "Traceback" not in proc.stderr


def test_templates_belong_to_the_transport_session(tmp_path: Path) -> None:
    """Data from another source port than its template's waits, then counts as unknown."""
    tmpl = ipfix_msg([(2, template(300, FIELDS))], seq=0)
    data = ipfix_msg([(300, record("10.0.0.1", "10.0.0.2", 1, 100))], seq=0)
    with RunningCollector(tmp_path / "v.duckdb") as run:
        _send(run.collector.port, [tmpl])
        _send(run.collector.port, [data])  # a new socket: another source port
        both = ipfix_msg([(2, template(300, FIELDS)), (300, record("10.0.0.3", "10.0.0.4", 2, 2))])
        _send(run.collector.port, [both])  # template and data in one session: decoded
        run.wait_for(3)
    assert (run.counters.flows, run.counters.unknown_template) == (1, 1)


def test_other_commands_use_the_store_while_collect_runs(tmp_path: Path) -> None:
    """collect holds the store only while it writes a batch: status and hunt run beside it."""
    port = free_udp_port()
    db = tmp_path / "v.duckdb"
    cmd = [sys.executable, "-m", "vigile", "collect", "--listen", f"127.0.0.1:{port}"]
    cmd += ["--db", str(db), "--batch-seconds", "0.2", "--pair-wait", "0", "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        assert "listening on" in proc.stderr.readline()
        _send(port, [_flows_msg(0, 20)])
        time.sleep(1.0)
        vigile = [sys.executable, "-m", "vigile"]
        status = subprocess.run(
            [*vigile, "status", "--db", str(db), "--json"], capture_output=True, text=True
        )
        assert status.returncode == 0, status.stderr
        assert '"conn"' in status.stdout and "20" in status.stdout
        hunt = subprocess.run([*vigile, "hunt", "--db", str(db)], capture_output=True, text=True)
        assert hunt.returncode == 0, hunt.stderr
        _send(port, [_flows_msg(20, 5, 1)])  # still receiving and writing after the hunt
        time.sleep(1.0)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    assert proc.returncode == 0
    store = DuckDBStore(db, read_only=True)
    assert store.count("conn") == 25
    store.close()


def test_a_held_store_is_named_after_the_wait(tmp_path: Path) -> None:
    db = tmp_path / "v.duckdb"
    DuckDBStore(db).close()
    holder = DuckDBStore(db)  # this process writes the store
    try:
        env = {**os.environ, "VIGILE_STORE_WAIT": "0.5"}
        started = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", "vigile", "status", "--db", str(db)],
            capture_output=True,
            text=True,
            env=env,
        )
        waited = time.monotonic() - started
    finally:
        holder.close()
    assert proc.returncode == 2
    assert "waiting up to 0.5 s" in proc.stderr
    assert "in use by another process" in proc.stderr and f"PID {os.getpid()}" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert waited >= 0.5


def test_datagrams_waiting_in_the_socket_at_the_stop_are_stored(tmp_path: Path) -> None:
    """Datagrams the kernel holds for the socket when the collector stops arrived before
    the stop: close() reads and stores them, none is lost uncounted."""
    with RunningCollector(tmp_path / "v.duckdb", pair_wait=0) as run:
        run.collector.stop()
        run.thread.join()  # nothing reads the socket any more
        _send(run.collector.port, [_flows_msg(i * 10, 10, i * 10) for i in range(20)])
        time.sleep(0.2)
        assert run.collector.counters.datagrams == 0
        run.thread = threading.Thread(target=lambda: None)  # __exit__ joins it
        run.thread.start()
    c = run.counters
    assert (c.datagrams, c.read_at_stop, c.flows, c.rows_written) == (20, 20, 200, 200)
    assert run.count("conn") == 200
