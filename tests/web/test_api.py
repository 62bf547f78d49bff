"""The console's pages and JSON API through FastAPI's test client.

Every page and endpoint is requested logged in and logged out; state changes are
tried with and without the CSRF token; wrong passwords run into the throttle.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from tests.web.conftest import (
    BEACON_DST,
    BEACON_SRC,
    EXFIL_DST,
    MAIL,
    PASSWORD,
    USER,
    StoreFacts,
    read_store,
)

from vigile.config import Config
from vigile.web.access import StoreAccess
from vigile.web.app import create_app
from vigile.web.auth import MAX_FAILURES


def _login_token(client: TestClient) -> str:
    page = client.get("/login")
    assert page.status_code == 200
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert match
    return match.group(1)


def _login(client: TestClient, password: str = PASSWORD, user: str = USER) -> int:
    token = _login_token(client)
    form = {"username": user, "password": password, "csrf_token": token, "next": "/"}
    return client.post("/login", data=form, follow_redirects=False).status_code


@pytest.fixture
def anon(console_access: StoreAccess, config: Config) -> Iterator[TestClient]:
    with TestClient(create_app(console_access, config), base_url="http://127.0.0.1") as client:
        yield client


@pytest.fixture
def client(anon: TestClient) -> TestClient:
    assert _login(anon) == 303
    return anon


def _csrf(client: TestClient) -> dict[str, str]:
    return {"X-CSRF-Token": client.get("/api/me").json()["csrf_token"]}


def _urls(facts: StoreFacts) -> list[str]:
    b, e = facts.beacon_id, facts.exfil_id
    return [
        "/",
        f"/hosts/{BEACON_SRC}",
        f"/hosts/{MAIL}",
        f"/findings/{b}",
        f"/findings/{e}",
        "/allowlist",
        "/sources",
        "/backups",  # no [vault] configured here: the page says so
        "/report.html",
        "/api/me",
        "/api/overview",
        "/api/hosts",
        f"/api/hosts/{BEACON_SRC}",
        f"/api/hosts/{BEACON_SRC}/traffic",
        "/api/findings",
        f"/api/findings?host={MAIL}",
        f"/api/findings/{b}",
        f"/api/findings/{b}/charts/intervals",
        f"/api/findings/{b}/charts/checkins",
        f"/api/findings/{b}/charts/series",
        f"/api/findings/{e}/charts/series",
        "/api/sources",
        "/api/allowlist",
        "/api/audit",
        "/api/backups",
        "/api/openapi.json",
    ]


def test_every_page_and_endpoint_needs_a_login(anon: TestClient, store_facts: StoreFacts) -> None:
    for url in _urls(store_facts):
        r = anon.get(url, follow_redirects=False)
        if url.startswith("/api/"):
            assert r.status_code == 401, url
        else:
            assert r.status_code == 303 and r.headers["location"].startswith("/login"), url
    body = {"kind": "cidr", "value": BEACON_DST, "reason": "x"}
    assert anon.post("/api/allowlist", json=body).status_code == 401
    assert anon.delete("/api/allowlist/console:1").status_code == 401


def test_every_page_and_endpoint_answers(client: TestClient, store_facts: StoreFacts) -> None:
    for url in _urls(store_facts):
        r = client.get(url)
        assert r.status_code == 200, (url, r.text[:200])
        assert "Content-Security-Policy" in r.headers
    assert client.get("/static/plotly.min.js").text.startswith("/**\n* plotly.js")
    assert client.get("/api/hosts/192.0.2.99").status_code == 404
    assert client.get("/findings/0000").status_code == 404
    report = client.get("/report.html?top=1")
    assert report.headers["Content-Disposition"].startswith("attachment;")
    assert report.text.count('data-kind="traffic"') == 1 and "plotly.js v" in report.text


def test_overview_ranks_hosts_and_counts(client: TestClient, store_facts: StoreFacts) -> None:
    data = client.get("/api/overview").json()
    hosts = data["hosts"]
    assert [h["host"] for h in hosts[:2]] == [BEACON_SRC, MAIL]
    assert hosts[0]["top_finding"] == store_facts.beacon_id
    roles = {h["host"]: h["role"] for h in hosts}
    assert (roles[MAIL], roles["10.0.0.53"], roles["10.0.9.5"], roles["10.0.1.12"]) == (
        "mail",
        "dns",
        "bmc",
        "workstation",
    )
    assert {d["detector"]: d["findings"] for d in data["detectors"]} == {
        "beacon": 1,
        "exfil": 1,
        "rare_destination": 1,
    }
    assert data["ingest"]["rows"]["conn"] == store_facts.conn_rows
    assert data["ingest"]["bad_rows"] == 2


def test_host_and_finding_data(client: TestClient, store_facts: StoreFacts) -> None:
    host = client.get(f"/api/hosts/{MAIL}").json()
    assert host["role"] == "mail"
    assert host["role_evidence"][:2] == [
        "reported by the exfil detector",
        "answers tcp/25 to 204 distinct client(s)",
    ]
    assert host["destinations"][0]["dst"] == EXFIL_DST
    assert host["destinations"][0]["bytes_out"] > 1_000_000_000
    traffic = client.get(f"/api/hosts/{MAIL}/traffic").json()
    assert len(traffic["t"]) == 48 and max(traffic["bytes_out"]) > 300_000_000
    gaps = client.get(f"/api/findings/{store_facts.beacon_id}/charts/intervals").json()
    assert len(gaps["intervals"]) > 250
    assert 240 <= sorted(gaps["intervals"])[len(gaps["intervals"]) // 2] <= 360
    series = client.get(f"/api/findings/{store_facts.exfil_id}/charts/series").json()
    assert series["baseline"] == 1_000_000 and sum(series["bytes"]) > 1_000_000_000
    assert client.get(f"/api/findings/{store_facts.exfil_id}/charts/intervals").status_code == 404


def test_sources_show_bad_rows_with_position(client: TestClient) -> None:
    data = client.get("/api/sources").json()
    assert data["inputs"][0]["bad_rows"] == 2
    first = data["rejects"][0]
    assert (first["path"], first["position"]) == ("logs/2026-03-02/conn.log.gz", 57)
    assert "conn.log.gz:57" in client.get("/sources").text


def test_state_changes_need_the_csrf_token(client: TestClient) -> None:
    body = {"kind": "cidr", "value": BEACON_DST, "reason": "lab"}
    assert client.post("/api/allowlist", json=body).status_code == 403
    assert (
        client.post("/api/allowlist", json=body, headers={"X-CSRF-Token": "x"}).status_code == 403
    )
    assert client.get("/api/allowlist").json() == []
    assert client.post("/logout", data={}).status_code == 403
    assert client.get("/api/me").status_code == 200  # still logged in


def test_login_form_needs_its_csrf_cookie(anon: TestClient) -> None:
    _login_token(anon)
    form = {"username": USER, "password": PASSWORD, "csrf_token": "forged"}
    assert anon.post("/login", data=form).status_code == 403


def test_allowlist_suppresses_audits_and_releases(
    client: TestClient, store_facts: StoreFacts
) -> None:
    headers = _csrf(client)
    body = {
        "kind": "domain",
        "value": "CDN-check.example.net.",
        "reason": "vendor health check",
        "detector": "beacon",
    }
    made = client.post("/api/allowlist", json=body, headers=headers)
    assert made.status_code == 201 and made.json()["value"] == "cdn-check.example.net"
    finding = client.get(f"/api/findings/{store_facts.beacon_id}").json()
    assert finding["suppressed_by"] == "console:1"
    assert client.get("/api/hosts").json()[0]["host"] == MAIL
    assert client.get("/api/allowlist").json()[0]["suppressed"] == 1

    edit = {"kind": "wildcard", "value": "*.example.org", "reason": "changed my mind"}
    assert client.put("/api/allowlist/console:1", json=edit, headers=headers).status_code == 200
    assert client.get(f"/api/findings/{store_facts.beacon_id}").json()["suppressed_by"] is None
    cidr = {"kind": "cidr", "value": "198.51.100.0/24", "reason": "backup provider"}
    assert client.post("/api/allowlist", json=cidr, headers=headers).status_code == 201
    assert client.get(f"/api/findings/{store_facts.exfil_id}").json()["suppressed_by"] == (
        "console:2"
    )
    assert client.delete("/api/allowlist/console:2", headers=headers).status_code == 204
    assert client.get(f"/api/findings/{store_facts.exfil_id}").json()["suppressed_by"] is None

    audit = [a for a in client.get("/api/audit").json() if a["action"].startswith("allowlist.")]
    assert [a["action"] for a in audit] == [
        "allowlist.remove",
        "allowlist.add",
        "allowlist.edit",
        "allowlist.add",
    ]
    assert {a["username"] for a in audit} == {USER}
    assert '"value": "*.example.org"' in audit[2]["detail"]
    assert "allowlist.edit" in client.get("/allowlist").text


def test_bad_allowlist_entries_are_refused(client: TestClient) -> None:
    headers = _csrf(client)
    for body in (
        {"kind": "cidr", "value": "10.0.0.300/8", "reason": "x"},
        {"kind": "wildcard", "value": "example.com", "reason": "x"},
        {"kind": "domain", "value": "a.example.com", "reason": "  "},
    ):
        r = client.post("/api/allowlist", json=body, headers=headers)
        assert r.status_code == 400, body
    bad_kind = {"kind": "regex", "value": ".*", "reason": "x"}
    assert client.post("/api/allowlist", json=bad_kind, headers=headers).status_code == 422
    assert client.delete("/api/allowlist/console:9", headers=headers).status_code == 404


def test_wrong_password_is_throttled(anon: TestClient, store_facts: StoreFacts) -> None:
    for _ in range(MAX_FAILURES):
        assert _login(anon, password="wrong password") == 401
    r_status = _login(anon, password=PASSWORD)
    assert r_status == 429  # even the right password waits until the window has passed
    assert _login(anon, password=PASSWORD, user="someone-else") == 429  # same client address
    store = read_store(store_facts.path)
    try:
        actions = store.scan("audit_log", ["username", "action"]).to_pylist()
    finally:
        store.close()
    assert actions.count({"username": USER, "action": "session.login_failed"}) == MAX_FAILURES
    assert {"username": "someone-else", "action": "session.login_throttled"} in actions


def test_session_cookie_flags_and_logout(anon: TestClient) -> None:
    token = _login_token(anon)
    form = {"username": USER, "password": PASSWORD, "csrf_token": token}
    r = anon.post("/login", data=form, follow_redirects=False)
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "secure" not in cookie
    csrf = anon.get("/api/me").json()["csrf_token"]
    assert (
        anon.post("/logout", data={"csrf_token": csrf}, follow_redirects=False).status_code == 303
    )
    assert anon.get("/api/me").status_code == 401
    assert _login(anon) == 303
    actions = [a["action"] for a in anon.get("/api/audit").json()]
    assert actions[:3] == ["session.login", "session.logout", "session.login"]


def test_secure_cookie_over_tls(console_access: StoreAccess, config: Config) -> None:
    app = create_app(console_access, config, secure_cookies=True)
    with TestClient(app, base_url="https://127.0.0.1") as client:
        token = _login_token(client)
        form = {"username": USER, "password": PASSWORD, "csrf_token": token}
        r = client.post("/login", data=form, follow_redirects=False)
        assert "secure" in r.headers["set-cookie"].lower()


def test_openapi_documents_the_api(client: TestClient) -> None:
    paths = client.get("/api/openapi.json").json()["paths"]
    assert {"/api/overview", "/api/allowlist", "/api/allowlist/{entry_id}"} <= set(paths)
    assert set(paths["/api/allowlist/{entry_id}"]) == {"put", "delete"}


def test_openapi_doc_is_generated_from_the_app(client: TestClient) -> None:
    from vigile.web.app import openapi_text

    committed = (Path(__file__).resolve().parents[2] / "docs" / "openapi.json").read_text()
    assert committed == openapi_text(), "docs/openapi.json is stale: run `make docs`"
    assert json.loads(committed)["paths"] == client.get("/api/openapi.json").json()["paths"]


def test_loopback_console_refuses_foreign_host_headers(
    console_access: StoreAccess, config: Config
) -> None:
    from vigile.web.app import LOOPBACK_HOSTS

    app = create_app(console_access, config, allowed_hosts=LOOPBACK_HOSTS)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        assert client.get("/login").status_code == 200
        assert client.get("/login", headers={"Host": "rebound.example"}).status_code == 400


def test_static_files_may_be_cached_pages_not(client: TestClient) -> None:
    assert client.get("/static/console.css").headers["Cache-Control"].startswith("private")
    assert client.get("/").headers["Cache-Control"] == "no-store"


def test_url_list_covers_every_route(client: TestClient, store_facts: StoreFacts) -> None:
    """Meta-test: a new page or endpoint must join the login and answer tests above."""
    from fastapi.routing import APIRoute
    from tests.web.test_backups import URLS as BACKUP_URLS  # requested there, over a vault

    listed = {url.split("?")[0] for url in [*_urls(store_facts), *BACKUP_URLS]}
    patterns = {
        r.path
        for r in client.app.routes  # type: ignore[attr-defined]
        if isinstance(r, APIRoute) and "GET" in r.methods
    }
    for pattern in patterns - {"/login", "/setup", "/static/plotly.min.js"}:
        regex = re.sub(r"\{[^}]+\}", "[^/]+", pattern) + "$"
        assert any(re.match(regex, url) for url in listed), f"{pattern} is not tested"
