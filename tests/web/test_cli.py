"""The console's commands: `vigile user`, `vigile serve` refusals, `vigile report`."""

from __future__ import annotations

import http.client
import json
import os
import pty
import re
import select
import socket
import ssl
import subprocess
import sys
import termios
import time
import urllib.parse
from pathlib import Path

from fastapi.testclient import TestClient
from tests.conftest import require_tool
from tests.web.conftest import PASSWORD, USER, StoreFacts, build_store

from vigile.cli.serve import cleartext_warning
from vigile.config import Config
from vigile.detect import Finding, findings_table
from vigile.store import FindingScope
from vigile.store.duckdb import DuckDBStore
from vigile.web.access import StoreAccess
from vigile.web.app import create_app
from vigile.web.auth import count_users, verify_password
from vigile.web.queries import ranked_hosts
from vigile.web.report import render_report


def _vigile(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vigile", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_user_add_list_and_refusals(tmp_path: Path) -> None:
    db = str(tmp_path / "v.duckdb")
    short = _vigile("user", "add", "ops", "--db", db, "--password-stdin", stdin="short\n")
    assert short.returncode == 2 and "at least 10 characters" in short.stderr
    assert "Traceback" not in short.stderr
    ok = _vigile("user", "add", "ops", "--db", db, "--password-stdin", stdin=PASSWORD + "\n")
    assert ok.returncode == 0, ok.stderr
    again = _vigile("user", "add", "ops", "--db", db, "--password-stdin", stdin=PASSWORD + "\n")
    assert again.returncode == 2 and "--replace" in again.stderr
    listed = _vigile("user", "list", "--db", db, "--json")
    assert [json.loads(line)["username"] for line in listed.stdout.splitlines()] == ["ops"]
    as_csv = _vigile("user", "list", "--db", db, "--csv")
    assert as_csv.returncode == 0, as_csv.stderr
    header, row = as_csv.stdout.splitlines()
    assert header == "username,created_at" and row.startswith("ops,")


def test_serve_refuses_a_public_address_without_an_account(tmp_path: Path) -> None:
    db = tmp_path / "v.duckdb"
    DuckDBStore(db).close()
    refused = _vigile("serve", "--db", str(db), "--host", "0.0.0.0", "--port", "9")
    assert refused.returncode == 2
    assert "refusing to listen on 0.0.0.0 with no account" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_serve_on_a_port_in_use_or_out_of_range_is_one_line(tmp_path: Path) -> None:
    """The port is bound before the console is announced: a port another program holds
    is one line naming it, exit 2, and no "vigile console on" claim."""
    db = tmp_path / "v.duckdb"
    DuckDBStore(db).close()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = _vigile("serve", "--db", str(db), "--port", str(port))
    assert busy.returncode == 2, busy.stderr
    assert f"127.0.0.1:{port} is in use by another program" in busy.stderr
    assert "vigile console on" not in busy.stderr and "Traceback" not in busy.stderr
    wide = _vigile("serve", "--db", str(db), "--port", "99999")
    assert wide.returncode == 2 and "Traceback" not in wide.stderr
    assert "99999 is not in the range" in wide.stderr


def test_a_public_address_without_tls_is_warned_of() -> None:
    said = cleartext_warning("0.0.0.0", tls=False)
    assert said and "without TLS" in said and "--tls-cert" in said
    assert cleartext_warning("0.0.0.0", tls=True) is None
    assert (
        cleartext_warning("::1", tls=False) is None
        and cleartext_warning("localhost", False) is None
    )


def test_first_account_page_on_loopback(tmp_path: Path) -> None:
    facts = build_store(tmp_path / "v.duckdb", with_user=False)
    app = create_app(StoreAccess(facts.path), Config(), allow_setup=True)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        page = client.get("/login")
        assert page.url.path == "/setup"
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert token
        form = {
            "username": "first",
            "password": PASSWORD,
            "password2": PASSWORD,
            "csrf_token": token.group(1),
        }
        assert client.post("/setup", data={**form, "csrf_token": "x"}).status_code == 403
        done = client.post("/setup", data=form, follow_redirects=False)
        assert done.status_code == 303 and client.get("/api/me").json()["username"] == "first"
        store = DuckDBStore(facts.path, read_only=True)
        try:
            assert count_users(store) == 1
        finally:
            store.close()
        assert client.get("/setup").status_code == 404  # closed once an account exists


def test_report_is_self_contained(store_facts: StoreFacts) -> None:
    store = DuckDBStore(store_facts.path, read_only=True)
    try:
        html = render_report(store, Config(), top=2)
    finally:
        store.close()
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=\"(https?:)?//", html)
    assert "<script src=" not in html and "plotly.js v" in html
    assert html.count('class="chart"') == 2 + 3 + 1  # traffic per host, beacon 3, exfil 1
    assert "Mail server 10.0.0.25 sent 1.17 GB" in html


def test_report_shows_evidence_lists_and_tables_as_json(store_facts: StoreFacts) -> None:
    """A host score's ``pairs`` (a list of tables) reads as JSON in the report, and a
    missing value as "-", as `vigile explain` shows them; not as Python's repr."""
    store = DuckDBStore(store_facts.path)
    try:
        window = store.time_bounds("conn")
        pairs = [{"peer": "203.0.113.50", "score": 0.8, "weight": 0.8}]
        host = Finding(
            "host_score", "10.0.1.14", None, None, 0.99, *window, "Host 10.0.1.14: top.",
            {"pairs": pairs, "top_peer": "203.0.113.50", "baseline": None},
        )  # fmt: skip
        store.replace_findings(["host_score"], findings_table([host]), FindingScope())
        html = render_report(store, Config(), top=1)
    finally:
        store.close()
    assert (
        "<th>pairs</th><td>[{&#34;peer&#34;: &#34;203.0.113.50&#34;, &#34;score&#34;: 0.8" in html
    )
    assert "<th>baseline</th><td>-</td>" in html
    assert "&#39;peer&#39;" not in html and "<td>None</td>" not in html


def test_an_outside_host_is_external_not_a_workstation(store_facts: StoreFacts) -> None:
    """The outside end of a finding (a scanner, an attacker's client) ranks among the
    hosts; it is labelled external, not workstation, unless it answers services."""
    store = DuckDBStore(store_facts.path)
    try:
        window = store.time_bounds("conn")
        probe = Finding(
            "long_connection", "198.51.100.9", "10.0.0.25", None, 0.99, *window,
            "198.51.100.9 → 10.0.0.25 was connected for 75 h.", {},
        )  # fmt: skip
        store.replace_findings(["long_connection"], findings_table([probe]), FindingScope())
        roles = {h["host"]: h["role"] for h in ranked_hosts(store, Config())}
    finally:
        store.close()
    assert roles["198.51.100.9"] == "external"
    assert roles["10.0.1.12"] == "workstation" and roles["10.0.0.25"] == "mail"


def _read_until(fd: int, token: bytes, seen: bytearray, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while token not in seen:
        assert time.monotonic() < end, f"no {token!r} in {bytes(seen)!r}"
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            seen += os.read(fd, 4096)


def _wait_echo_off(fd: int, timeout: float = 30) -> None:
    end = time.monotonic() + timeout
    while termios.tcgetattr(fd)[3] & termios.ECHO:
        assert time.monotonic() < end, "the password prompt never turned echo off"
        time.sleep(0.05)


def test_serve_asks_for_the_first_account_on_a_terminal(tmp_path: Path) -> None:
    db = tmp_path / "v.duckdb"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    master, slave = pty.openpty()
    server = subprocess.Popen(
        [sys.executable, "-m", "vigile", "serve", "--db", str(db), "--port", str(port)],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        start_new_session=True,
    )
    os.close(slave)
    seen = bytearray()
    try:
        for prompt, answer in (
            (b"User name", "root-admin"),
            (b"Password:", PASSWORD),
            (b"confirmation:", PASSWORD),
        ):
            _read_until(master, prompt, seen)
            if prompt != b"User name":
                _wait_echo_off(master)  # getpass flushes what was typed before it hid input
            os.write(master, answer.encode() + b"\n")
        _read_until(master, f"http://127.0.0.1:{port}/".encode(), seen)
        assert PASSWORD.encode() not in seen  # not echoed
    finally:
        server.terminate()
        server.wait(timeout=30)
        os.close(master)
    store = DuckDBStore(db, read_only=True)
    try:
        assert verify_password(store, "root-admin", PASSWORD)
    finally:
        store.close()


def test_serve_over_tls_sets_secure_cookies(tmp_path: Path) -> None:
    openssl = require_tool("openssl")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    facts = build_store(tmp_path / "v.duckdb")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "vigile",
            "serve",
            "--db",
            str(facts.path),
            "--port",
            str(port),
            "--tls-cert",
            str(cert),
            "--tls-key",
            str(key),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    context = ssl.create_default_context(cafile=str(cert))
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
                conn.request("GET", "/login")
                page = conn.getresponse()
                break
            except ConnectionRefusedError:
                assert time.monotonic() < deadline and server.poll() is None, "no TLS server"
                time.sleep(0.3)
        body = page.read().decode()
        login_cookie = page.getheader("Set-Cookie", "").split(";")[0]
        token = re.search(r'name="csrf_token" value="([^"]+)"', body)
        assert token and "secure" in page.getheader("Set-Cookie", "").lower()
        form = urllib.parse.urlencode(
            {"username": USER, "password": PASSWORD, "csrf_token": token.group(1)}
        )
        headers = {"Cookie": login_cookie, "Content-Type": "application/x-www-form-urlencoded"}
        conn.request("POST", "/login", body=form, headers=headers)
        answer = conn.getresponse()
        answer.read()
        session_cookie = next(
            v for k, v in answer.getheaders() if k.lower() == "set-cookie" and "vigile_session" in v
        )
        assert answer.status == 303
        assert {"secure", "httponly", "samesite=strict"} <= {
            part.strip().lower() for part in session_cookie.split(";")
        }
        conn.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
