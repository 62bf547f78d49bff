"""vigile.jit: kernels ahead of time where built, else numba's; numba set up without probes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pytest
from tests.conftest import missing

from vigile import jit
from vigile.detect.kernels import pack_pair_keys
from vigile.ingest.packet.framing import walk_pcap

CHECK = """
import sys
import numpy as np
from vigile.ingest.packet import classify  # a kernel module: imports vigile.jit
classify._member(1, np.array([1]))  # a helper called from Python: numba compiles it now
print(sorted(m for m in ("scipy.linalg", "cffi") if m in sys.modules))
import cffi
import scipy.linalg
print(type(cffi.FFI()).__name__, scipy.linalg.norm(np.array([3.0, 4.0])))
"""

BUILT = jit.status() == "ahead of time"


def ahead_of_time_required() -> None:
    """`make` builds the kernels before the tests: under CI they must be there."""
    if not BUILT:
        missing(f"kernels are not compiled ahead of time: {jit.status()}")


def run(code: str, *args: str, just_in_time: bool = False) -> str:
    env = {**os.environ, jit.ENV_JIT: "1" if just_in_time else ""}
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
        env=env,
    ).stdout


@pytest.mark.parametrize("just_in_time", [False, True])
def test_numba_starts_without_scipy_linalg_or_cffi_which_still_import_afterwards(
    just_in_time: bool,
) -> None:
    assert run(CHECK, just_in_time=just_in_time).splitlines() == ["[]", "FFI 5.0"]


INGEST = """
import sys
from pathlib import Path
from vigile import jit
from vigile.ingest import ingest_file, registered_readers
from vigile.store.duckdb import DuckDBStore
store = DuckDBStore(Path(sys.argv[1]))
for path in sys.argv[2:]:
    ingest_file(store, Path(path), registered_readers())
store.close()
print(jit.status(), "numba" in sys.modules)
"""

#: DNS (over UDP, fragmented, tunnelled), HTTP, TLS, tunnels, pcapng, damage.
CAPTURES = [
    "pcap/ndpi/dns-tunnel-iodine.pcap",
    "pcap/ndpi/dns_fragmented.pcap",
    "pcap/ndpi/http_ipv6.pcap",
    "pcap/ndpi/long_tls_certificate.pcap",
    "pcap/ndpi/gre.pcapng",
    "pcap/ndpi/4in6tunnel.pcap",
    "pcap/ndpi/teredo.pcap",
    "pcap/ndpi/ip_fragmented_garbage.pcap",
    "pcap/caldera/sandcat.pcap",
]


def _rows(db: Path, table: str, leave_out: str = "") -> pa.Table:
    """A table's rows in a stable order, without the column ``leave_out``."""
    with duckdb.connect(str(db), read_only=True) as con:
        select = f"* EXCLUDE ({leave_out})" if leave_out else "*"
        return con.sql(f"SELECT {select} FROM {table} ORDER BY ALL").to_arrow_table()


def test_captures_read_ahead_of_time_without_numba_as_just_in_time(
    tmp_path: Path, shared_data: Path
) -> None:
    ahead_of_time_required()
    paths = [str(shared_data / c) for c in CAPTURES]
    missing = [p for p in paths if not Path(p).is_file()]
    assert not missing, missing
    whole = (shared_data / "pcap/ndpi/smtp.pcap").read_bytes()
    (tmp_path / "cut.pcap").write_bytes(whole[: len(whole) - 5])  # a truncated last record
    paths.append(str(tmp_path / "cut.pcap"))
    aot = run(INGEST, str(tmp_path / "aot.duckdb"), *paths)
    assert aot.split() == ["ahead", "of", "time", "False"]  # numba never imported
    jit_out = run(INGEST, str(tmp_path / "jit.duckdb"), *paths, just_in_time=True)
    assert jit_out.startswith(f"{jit.ENV_JIT} is set")
    for table in ("conn", "dns", "http", "tls", "rejects", "sources"):
        leave_out = "ingested_at" if table == "sources" else ""
        want = _rows(tmp_path / "jit.duckdb", table, leave_out)
        got = _rows(tmp_path / "aot.duckdb", table, leave_out)
        assert got.num_rows and got.equals(want), table


HUNT = """
import sys
from vigile import jit
from vigile.cli import main
sys.argv = ["vigile", "hunt", sys.argv[1], "--db", sys.argv[2], "--report", sys.argv[3]]
try:
    main()
except SystemExit as e:
    assert not e.code, e.code
print(jit.status(), "numba" in sys.modules, file=sys.stderr)
"""


SMALL = ["--seed", "3", "--days", "1", "--hosts", "6", "--scenario", "all", "--out"]


def test_hunts_find_the_same_ahead_of_time_without_numba_as_just_in_time(tmp_path: Path) -> None:
    ahead_of_time_required()
    logs = tmp_path / "logs"
    subprocess.run(
        [sys.executable, "-c", "from vigile.cli import main; main()", "simulate", *SMALL, logs],
        check=True,
        capture_output=True,
        timeout=600,
    )
    modes = {"aot": False, "jit": True}
    for mode, just_in_time in modes.items():
        env = {**os.environ, jit.ENV_JIT: "1" if just_in_time else ""}
        args = [str(logs), str(tmp_path / f"{mode}.duckdb"), str(tmp_path / f"{mode}.md")]
        done = subprocess.run(
            [sys.executable, "-c", HUNT, *args], capture_output=True, text=True, env=env
        )
        assert done.returncode == 0, done.stderr[-2000:]
        status = done.stderr.strip().splitlines()[-1]
        assert status == ("ahead of time False" if mode == "aot" else f"{jit.ENV_JIT} is set True")
    found = {mode: _rows(tmp_path / f"{mode}.duckdb", "findings", "created_at") for mode in modes}
    assert found["aot"].equals(found["jit"])
    assert "beacon" in found["aot"]["detector"].to_pylist()  # periodicity and pair kernels ran


def test_a_call_that_does_not_fit_an_export_goes_to_numba_with_the_same_result() -> None:
    ahead_of_time_required()
    record = (16).to_bytes(4, "little") * 2 + (3).to_bytes(4, "little") * 2 + b"abc"
    data = np.frombuffer(record * 3 + bytes(8), np.uint8)  # read-only: declared writable
    assert not jit._fits(data, ["a", "|u1", 1, "C", True])
    got = walk_pcap(data, 0, len(data), 65535, True, 10)  # numba compiles a read-only variant
    want = walk_pcap(data.copy(), 0, len(data), 65535, True, 10)  # the export
    assert got[0].tolist() == want[0].tolist() == [0, 19, 38]
    assert got[1].tolist() == want[1].tolist() and got[2:] == want[2:] == (57, -1)


@pytest.mark.parametrize(
    ("value", "spec", "fits"),
    [
        (np.zeros(3, np.uint8), ["a", "|u1", 1, "C", True], True),
        (np.zeros(3, np.int8), ["a", "|u1", 1, "C", True], False),  # another dtype
        (np.zeros((3, 1), np.uint8), ["a", "|u1", 1, "C", True], False),  # another ndim
        (np.zeros(6, np.uint8)[::2], ["a", "|u1", 1, "C", True], False),  # not contiguous
        (np.zeros(6, np.uint8)[::2], ["a", "|u1", 1, "A", True], True),
        (np.zeros(3, ">i8"), ["a", "<i8", 1, "C", False], False),  # byte order
        (np.frombuffer(bytes(3), np.uint8), ["a", "|u1", 1, "C", False], True),  # read-only
        ([0, 1], ["a", "<i8", 1, "A", False], False),  # a list is not an array
        (5, ["i"], True),
        (np.int32(5), ["i"], True),
        (5.0, ["i"], False),
        (True, ["b"], True),
        (np.bool_(False), ["b"], True),
        (1, ["b"], False),
        (2, ["f"], True),
        ("2", ["f"], False),
        ((np.zeros(2, np.int64),) * 2, ["t", [["a", "<i8", 1, "C", True]] * 2], True),
        ((np.zeros(2, np.int64),), ["t", [["a", "<i8", 1, "C", True]] * 2], False),
        ([np.zeros(2, np.int64)] * 2, ["t", [["a", "<i8", 1, "C", True]] * 2], False),
    ],
)
def test_fits(value: object, spec: jit.Spec, fits: bool) -> None:
    assert jit._fits(value, spec) is fits


def test_kernels_run_without_the_gil() -> None:
    """Another thread runs Python while a kernel runs (detect.pairs relies on it).

    With a switch interval of 1000 s, the thread that runs the kernel keeps the GIL
    unless the kernel releases it, so this thread can only see the kernel unfinished if
    it did.
    """
    first = np.arange(30_000_000, dtype=np.int32) % 1000
    first.flags.writeable = False  # as the pair grouping passes them
    if BUILT:
        assert jit._fits(first, ["a", "<i4", 1, "C", False])
    started, finished = threading.Event(), threading.Event()

    def work() -> None:
        started.set()
        pack_pair_keys(first, first, 1000, 25)
        finished.set()

    pack_pair_keys(first[:10], first[:10], 1000, 25)  # compiled or loaded before timing
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1000)
    try:
        worker = threading.Thread(target=work)
        worker.start()
        started.wait()
        overlapped = not finished.is_set()
        worker.join()
    finally:
        sys.setswitchinterval(interval)
    assert overlapped


def write_manifest(root: Path, **changes: object) -> None:
    (root / "_kernels.fake.so").write_bytes(bytes(10))
    manifest = {
        "library": "_kernels.fake.so",
        "size": 10,
        "machine": jit.machine(),
        "fingerprint": jit.fingerprint(),
        "exports": {},
    }
    (root / "_kernels.json").write_text(json.dumps({**manifest, **changes}))


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"size": 11}, "the library does not match its manifest"),
        ({"library": "gone.so"}, "the library does not match its manifest"),
        ({"machine": "0" * 16}, "built on another CPU"),
        ({"fingerprint": "0" * 32}, "kernel sources changed since the build"),
        ({"size": "ten"}, "the library does not match its manifest"),
    ],
)
def test_a_library_that_does_not_match_is_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, changes: dict[str, object], why: str
) -> None:
    monkeypatch.delenv(jit.ENV_JIT, raising=False)
    write_manifest(tmp_path, **changes)
    library, exports, status = jit._load(tmp_path)
    assert library is None and exports == {} and status.startswith(why)


def test_no_manifest_or_a_foreign_one_or_the_switch_means_just_in_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(jit.ENV_JIT, raising=False)
    assert jit._load(tmp_path)[2].startswith("not built")
    (tmp_path / "_kernels.json").write_text("{}")
    assert jit._load(tmp_path)[2].startswith("the manifest is not one this vigile wrote")
    write_manifest(tmp_path)
    monkeypatch.setenv(jit.ENV_JIT, "1")
    assert jit._load(tmp_path)[2] == f"{jit.ENV_JIT} is set"
