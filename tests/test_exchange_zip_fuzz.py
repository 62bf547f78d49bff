"""Fuzz tests of ``vigile inspect exchange`` on damaged zip archives of a server's logs.

Any damage gives records and counted bad lines, or a problem naming the archive; never
an exception, never a hang, never an archive taken silently for a file that is no log.
"""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from tests.fuzzing import mutated, within

from vigile.exchange.collect import Collection, walk
from vigile.exchange.inspect import inspect_paths

IIS = "#Fields: date time cs-method cs-uri-stem cs-uri-query cs(User-Agent)\n" + (
    "2021-03-03 01:02:03 POST /ecp/y.js - ExchangeServicesClient/0.0.0.0\n"
    "2021-03-03 01:02:04 GET /owa/auth/logon.aspx - Mozilla/5.0\n" * 20
)
PROXY = "DateTime,RequestId,UrlStem,AuthenticatedUser\n" + (
    "2021-03-03T01:02:05.000Z,1,/ecp/DDI/DDIService.svc/SetObject,\n" * 20
)


def _archive() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("W3SVC1/u_ex210303.log", IIS)
        z.writestr("Logging/HttpProxy/Ecp/HttpProxy_2021030301-1.LOG", PROXY)
    return out.getvalue()


ARCHIVE = _archive()


@settings(max_examples=80, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mutated(ARCHIVE))
@example(ARCHIVE[: len(ARCHIVE) // 2])  # cut short: no central directory at the end
@example(ARCHIVE[:51] + b"\x00" + ARCHIVE[52:])  # a member's deflate data damaged: zlib.error
def test_damaged_zip_gives_records_or_a_problem_naming_it(tmp_path_factory, data: bytes) -> None:
    path = tmp_path_factory.mktemp("zip") / "server.zip"
    path.write_bytes(data)
    with within(20):
        result = inspect_paths([path])
    col = result.collection
    for problem in col.problems:
        assert problem.origin.startswith(str(path)) and "\n" not in problem.message
    if data.startswith(b"PK\x03\x04"):  # still begins as a zip: read as one, or refused
        records = list(walk([path], Collection()))
        assert all(r.origin.startswith(f"{path}!") for r in records)


def test_cut_zip_is_a_problem_not_a_file_without_logs(tmp_path: Path) -> None:
    """Regression: a zip cut short has no end record, so it was taken for one plain file
    (exit 0, "NO LOGS") instead of an unreadable archive (exit 3)."""
    path = tmp_path / "server.zip"
    path.write_bytes(ARCHIVE[: len(ARCHIVE) // 2])
    col = inspect_paths([path]).collection
    assert [(p.origin, p.message.split(":")[0]) for p in col.problems] == [
        (str(path), f"unreadable zip (cut or damaged; {len(ARCHIVE) // 2} bytes)")
    ]
    assert col.coverage["file"].files == 0


def test_a_device_or_pipe_is_a_problem_not_read_for_ever(tmp_path: Path) -> None:
    """Regression: ``vigile inspect exchange /dev/zero`` (or a folder holding a named
    pipe) read without end."""
    os.mkfifo(tmp_path / "u_ex210303.log")
    with within(20):
        col = inspect_paths([Path("/dev/zero"), tmp_path]).collection
    assert [(p.origin, p.message) for p in col.problems] == [
        ("/dev/zero", "not a regular file (a device, pipe or socket)"),
        (str(tmp_path / "u_ex210303.log"), "not a regular file (a device, pipe or socket)"),
    ]
