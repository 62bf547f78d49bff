"""The console shares its store: commands write it while ``vigile serve`` runs.

A real ``vigile serve`` on a free loopback port over the test store; beside it, real
``vigile ingest``, ``vigile hunt`` and ``vigile user add`` processes on the same file, and a process
that holds the file for writing (as a long ingest does) while the console is asked
for pages.
"""

from __future__ import annotations

import http.cookiejar
import json
import re
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.web.conftest import PASSWORD, USER, StoreFacts, build_store
from tests.web.served import holding, serving, vigile

from vigile.web.access import REQUEST_WAIT, RETRY_AFTER

CAPTURE = Path("pcap/caldera/ragdoll.pcap")


@dataclass
class Console:
    """A running console and a logged-in browser-like client for it."""

    base: str
    facts: StoreFacts
    opener: urllib.request.OpenerDirector

    def get(self, path: str) -> tuple[int, dict[str, str], str]:
        """Status, headers (names in lower case) and body of a GET (errors returned)."""
        try:
            with self.opener.open(self.base + path, timeout=30) as r:
                return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read().decode()

    def log_in(self) -> None:
        status, _, page = self.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page)
        assert status == 200 and token
        form = {"username": USER, "password": PASSWORD, "csrf_token": token.group(1)}
        data = urllib.parse.urlencode(form).encode()
        with self.opener.open(self.base + "/login", data=data, timeout=30) as r:
            assert r.status == 200 and r.url.endswith("/")  # redirected to the overview


@pytest.fixture
def console(tmp_path: Path) -> Iterator[Console]:
    facts = build_store(tmp_path / "vigile.duckdb")
    with serving(facts.path) as base:
        opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )
        running = Console(base, facts, opener)
        running.log_in()
        yield running


def test_ingest_hunt_and_user_add_while_the_console_runs(
    console: Console, shared_data: Path
) -> None:
    status, _, before = console.get("/api/sources")
    assert status == 200
    assert [i["path"] for i in json.loads(before)["inputs"]] == ["logs/2026-03-02/conn.log.gz"]

    capture = shared_data / CAPTURE
    done = vigile("ingest", str(capture), "--db", str(console.facts.path))
    assert done.returncode == 0, done.stderr
    added = vigile(
        "user", "add", "second", "--db", str(console.facts.path), "--password-stdin",
        stdin="another long password\n",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr

    status, _, after = console.get("/api/sources")
    assert status == 200
    inputs = {i["path"]: i for i in json.loads(after)["inputs"]}
    assert str(capture) in inputs and inputs[str(capture)]["rows_conn"] > 0
    status, _, page = console.get("/sources")
    assert status == 200 and "ragdoll.pcap" in page
    status, _, overview = console.get("/api/overview")
    ingest = json.loads(overview)["ingest"]
    assert ingest["rows"]["conn"] == console.facts.conn_rows + inputs[str(capture)]["rows_conn"]

    hunted = vigile("hunt", "--db", str(console.facts.path), "--json", "--limit", "1")
    assert hunted.returncode == 0, hunted.stderr
    top = json.loads(hunted.stdout.splitlines()[0])
    status, _, body = console.get(f"/api/findings/{top['id']}")
    assert status == 200 and json.loads(body)["explanation"] == top["explanation"]


@pytest.fixture
def writer_holding(console: Console) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the store for writing until the test ends."""
    with holding(console.facts.path) as holder:
        yield holder


def test_requests_while_a_writer_holds_the_store_get_503(
    console: Console, writer_holding: subprocess.Popen[str]
) -> None:
    started = time.monotonic()
    status, headers, body = console.get("/api/overview")
    assert time.monotonic() - started >= REQUEST_WAIT  # it waited before giving up
    assert status == 503 and headers["retry-after"] == str(RETRY_AFTER)
    assert headers["content-type"] == "application/json"
    detail = json.loads(body)["detail"]
    assert f"PID {writer_holding.pid}" in detail and "in use by another process" in detail
    status, headers, page = console.get("/hosts/10.0.1.14")
    assert status == 503 and headers["retry-after"] == str(RETRY_AFTER)
    assert "Traceback" not in page and f"PID {writer_holding.pid}" in page
    status, _, _ = console.get("/static/console.css")
    assert status == 200  # static files need no store

    # A page asks for several plots at once: queued requests are refused as soon as the
    # first has waited in vain, not one full wait after another (4 x 2 s).
    started = time.monotonic()
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: console.get("/api/overview")[0], range(4)))
    assert answers == [503] * 4 and time.monotonic() - started < 3 * REQUEST_WAIT

    writer_holding.communicate("", timeout=30)  # the writer lets go: the console answers again
    status, _, body = console.get("/api/overview")
    assert status == 200 and json.loads(body)["hosts"]
