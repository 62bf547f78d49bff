"""Rows in blocks give what rows one by one gave: same findings, coverage and bad lines.

The fast path (``parse_fields_blocks``, ``LogBlock``, each check's ``feed_block`` and
its needles) is held against the per-row path it replaces: ``parse_fields_log`` line by
line, and every check fed every record through ``feed``.
"""

from __future__ import annotations

import random
import re
from dataclasses import asdict
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vigile.exchange import ExchangeCheck, LogBlock, LogRecord, registered_checks
from vigile.exchange.blocks import FieldsBlock, parse_fields_blocks
from vigile.exchange.fields import BadLine, parse_fields_log
from vigile.exchange.httpproxy import forged_anchor_rows, reset_vdir_anchor, ssrf_anchor
from vigile.exchange.iis import (
    ASPNET_CLIENT_PAGE,
    HAFNIUM_AGENTS,
    PROXYSHELL,
    RESET_SETOBJECT,
    SHELL_PARAMS,
    SSRF_STATIC,
    THEMES_POST,
    URL_NEEDLES,
    IisProxyLogonCheck,
    match_request,
    needle_urls,
    request_url,
)
from vigile.exchange.indicators import hafnium_addresses
from vigile.exchange.inspect import InspectResult, inspect_paths
from vigile.exchange.prefilter import rows_holding

IIS_FIELDS = (
    "date time s-ip cs-method cs-uri-stem cs-uri-query s-port cs-username c-ip "
    "cs(User-Agent) cs(Referer) sc-status sc-substatus sc-win32-status sc-bytes time-taken"
)
#: The same columns in another order, as after a restart with other logging settings.
IIS_FIELDS_2 = "time date c-ip cs-method cs-uri-stem cs-uri-query cs(User-Agent) sc-bytes s-ip"
PROXY_FIELDS = (
    "DateTime,RequestId,ClientIpAddress,UrlHost,UrlStem,AuthenticatedUser,AnchorMailbox,"
    "UserAgent,ServerHostName,HttpStatus,ResponseBytes"
)
#: Lower-case names: the checks read HttpProxy fields without case (as Import-Csv).
PROXY_FIELDS_2 = "datetime,clientipaddress,anchormailbox,urlstem,httpstatus,responsebytes,user"
NORMAL = [
    ("POST", "/owa/auth.owa", "-"),
    ("GET", "/owa/auth/logon.aspx", "url=https%3a%2f%2fmail%2fowa"),
    ("POST", "/Microsoft-Server-ActiveSync/default.eas", "Cmd=Sync&User=alice"),
    ("GET", "/ecp/default.aspx", "-"),
    ("GET", "/owa/auth/15.1.2176/scripts/premium/flogon.js", "-"),
    ("POST", "/autodiscover/autodiscover.json", "Email=a%40b.c&Protocol=ActiveSync"),
]
ATTACKS = [
    ("POST", "/ecp/y.js", "-"),
    ("GET", "/ECP/DUEUL.CSS", "-"),
    ("POST", "/owa/auth/Current/themes/resources/logon.aspx", "-"),
    ("POST", "/ecp/DDI/DDIService.svc/SetObject", "schema=ResetOABVirtualDirectory&x=1"),
    ("POST", "/aspnet_client/system_web/discover.aspx", "-"),
    ("GET", "/owa/auth/errorFE.aspx", "cmd=%77hoami"),
    ("GET", "/owa/auth/x.aspx", "c=cmd.exe+/c+dir"),
    ("GET", "/autodiscover/autodiscover.json", "@evil.com/mapi/nspi/?&Email=a%3f@evil.com"),
    ("POST", "/owa/auth/shell.aspx", "code=Response.Write(1)"),
    ("GET", "/ecp/\u00e9t\u00e9.js", "-"),  # non-ASCII: every row of its block is a candidate
]  # fmt: skip
#: Sizes that are not plain ASCII numbers: summed in Python (long, other digits) or skipped.
ODD_SIZES = ["-", "1234567890123", "99999999999999999999", "\u0663\u0664", "\u00b2"]
AGENTS = ["Mozilla/5.0+(Windows+NT+10.0)", "Microsoft+Office/16.0", "python-requests/2.25.1",
          "ANTSWORD/v2.1", "ExchangeServicesClient/0.0.0.0", "curl/7.1"]  # fmt: skip
ANCHORS = ["SMTP:a@contoso.com", "PUID:1~2@contoso.com", "ServerInfo~a]@mx01:444/ecp/x.ecp#",
           "ServerInfo~mx01/autodiscover/autodiscover.xml", "ServerInfo~localhost/ews",
           "ServerInfo~a]@mx01:444/ecp/DDI/DDIService.svc/SetObject?schema=ResetOABVirtualDirectory#",
           "serverinfo~X/Y"]  # fmt: skip


def _iis_row(rng: random.Random, n: int, fields: str) -> str:
    method, stem, query = rng.choice(ATTACKS if rng.random() < 0.02 else NORMAL)
    listed = sorted(hafnium_addresses())
    ip = rng.choice(listed) if rng.random() < 0.002 else f"10.0.{rng.randrange(3)}.{n % 40}"
    ip = "10.9.9.9" if rng.random() < 0.01 else ip  # the exfiltrating client
    size = 60_000_000 if ip == "10.9.9.9" else rng.randrange(500, 50_000)
    size = rng.choice(ODD_SIZES) if rng.random() < 0.002 else size
    agent = rng.choice(AGENTS) if rng.random() < 0.05 else AGENTS[0]
    day, sec = 3 + n // 9000, n % 86400
    date = "-" if rng.random() < 0.003 else f"2021-03-{day:02d}"
    time = f"{sec // 3600:02d}:{sec // 60 % 60:02d}:{sec % 60:02d}"
    if fields == IIS_FIELDS_2:
        return f"{time} {date} {ip} {method} {stem} {query} {agent} {size} 10.0.0.25"
    return f"{date} {time} 10.0.0.25 {method} {stem} {query} 443 - {ip} {agent} - 200 0 0 {size} 9"


def _proxy_row(rng: random.Random, n: int, lower: bool) -> str:
    anchor = rng.choice(ANCHORS) if rng.random() < 0.03 else ANCHORS[0]
    user = "" if rng.random() < 0.5 else "contoso\\alice"
    ip = "10.9.9.8" if rng.random() < 0.01 else f"10.1.0.{n % 30}"
    size = 70_000_000 if ip == "10.9.9.8" else rng.randrange(500, 50_000)
    size = rng.choice([*ODD_SIZES, "", " 7", "+5"]) if rng.random() < 0.002 else size
    status = rng.choice(["200", "200", "500"])
    ts = f"2021-03-{3 + n // 9000:02d}T{n % 24:02d}:00:{n % 60:02d}.1234567Z"
    if lower:
        return f'{ts},{ip},"{anchor}",/ecp/x,{status},{size},"{user}"'
    return f'{ts},r{n},{ip},mail,/mapi/,{user},"{anchor}","Outlook, 16",MX01,{status},{size}'


def _bad_line(rng: random.Random) -> str:
    return rng.choice(["2021-03-03 01:02:03 truncated", "x " * 30, 'a,"b', "2021,-,x"])


def write_mixed_logs(root: Path, lines: int, seed: int = 3) -> None:
    """IIS and HttpProxy logs with attacks, bad lines, blank lines and header changes."""
    rng = random.Random(seed)
    iis = [
        "\ufeff#Software: Microsoft Internet Information Services 10.0",
        f"#Fields: {IIS_FIELDS}",
    ]
    proxy = ["#Log-type: HttpProxy Logs", f"#Fields: {PROXY_FIELDS}"]
    iis_fields, lower = IIS_FIELDS, False
    for n in range(lines):
        roll = rng.random()
        if roll < 0.003:
            iis_fields = IIS_FIELDS_2 if iis_fields == IIS_FIELDS else IIS_FIELDS
            iis.append(f"#Fields: {iis_fields}")
            lower = not lower
            proxy.append(f"#Fields: {PROXY_FIELDS_2 if lower else PROXY_FIELDS}")
        elif roll < 0.01:
            iis.append(_bad_line(rng))
            proxy.append(_bad_line(rng))
        elif roll < 0.012:
            iis.append(rng.choice(["", "   ", "#Date: 2021-03-03 00:00:00"]))
            proxy.append(rng.choice(["", "\t"]))
        iis.append(_iis_row(rng, n, iis_fields))
        proxy.append(_proxy_row(rng, n, lower))
    files = {
        "W3SVC1/u_ex210303.log": "\r\n".join(iis) + "\r\n",
        "W3SVC1/u_ex210304.log": "#Software: Microsoft Internet Information Services 10.0\n"
        f"2021-03-04 00:00:00 early\n#Fields: {IIS_FIELDS}\n" + "\n".join(iis[2:500]),
        "Logging/HttpProxy/Ecp/HttpProxy_2021030300-1.LOG": "\n".join(proxy) + "\n",
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")


def _per_row(check: type[ExchangeCheck]) -> type[ExchangeCheck]:
    """The check without ``feed_block``: every record goes through ``feed``."""
    return type(check.__name__, (check,), {"feed_block": None})


def _everything(result: InspectResult) -> dict[str, object]:
    col = result.collection
    return {
        "findings": [f.to_json() for f in result.findings],
        "coverage": {k: asdict(c) for k, c in col.coverage.items()},
        "detail": {k: asdict(c) for k, c in col.detail.items()},
        "problems": col.problems,
        "notices": col.notices,
    }


@pytest.fixture(scope="module")
def mixed_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("mixed")
    write_mixed_logs(root, 40_000)
    return root


def test_blocks_find_what_rows_find(mixed_logs: Path) -> None:
    checks = registered_checks()
    assert any(getattr(c, "feed_block", None) for c in checks)
    fast = _everything(inspect_paths([mixed_logs], checks))
    slow = _everything(inspect_paths([mixed_logs], [_per_row(c) for c in checks]))
    assert fast == slow
    detectors = {f["detector"] for f in fast["findings"]}  # type: ignore[attr-defined]
    assert {
        "exchange-iis-requests", "exchange-ssrf-httpproxy", "exchange-reset-vdir-httpproxy",
        "exchange-exfil-hint", "exchange-hafnium-address",
    } <= detectors  # fmt: skip
    coverage = fast["coverage"]
    for kind in ("iis", "httpproxy"):
        assert coverage[kind]["bad_rows"] > 100  # type: ignore[index]


def _as_rows(items: list) -> list[tuple]:
    out: list[tuple] = []
    for item in items:
        if isinstance(item, BadLine):
            out.append((item.line, "bad", item.reason, item.raw))
        elif isinstance(item, FieldsBlock):
            for i in range(len(item)):
                out.append((item.lines[i], item.ts[i], item.fields(i), item.raws[i]))
        else:
            out.append((item.line, item.ts, item.fields, item.raw))
    return sorted(out, key=lambda row: row[0])


def test_block_parser_reads_the_mixed_logs_as_the_line_parser(mixed_logs: Path) -> None:
    for path in sorted(p for p in mixed_logs.rglob("*") if p.is_file()):
        with path.open(encoding="utf-8-sig", newline="") as f:
            lines = f.readlines()
        assert _as_rows(list(parse_fields_blocks(lines, size=97))) == _as_rows(
            list(parse_fields_log(lines))
        ), path


LINE = st.one_of(
    st.sampled_from(["#Fields: date time a b", "#Fields: DateTime,x,y", "#Fields: date time",
                     "#Fields: time date date", "", "  \t", "\ufeff#c", "\ufeff", "#x"]),
    st.from_regex(r"(2021-03-0[1-3]|-) (0\d:00:0\d|-)( [ab-]{1,3}){0,2}", fullmatch=True),
    st.from_regex(r"(2021-03-0[1-3]T0\d:00:00\.\d{0,9}Z?|-)(,\"?[x,-]{0,3}\"?){0,3}",
                  fullmatch=True),
    st.text(max_size=30),
)  # fmt: skip


@settings(max_examples=300)
@given(st.lists(LINE, max_size=30), st.integers(1, 5))
def test_block_parser_agrees_with_the_line_parser(lines: list[str], size: int) -> None:
    blocks = list(parse_fields_blocks(lines, size=size))
    assert all(0 < len(b) <= size for b in blocks if isinstance(b, FieldsBlock))
    assert _as_rows(blocks) == _as_rows(list(parse_fields_log(lines)))


URL_PATTERNS = [THEMES_POST, SSRF_STATIC, RESET_SETOBJECT, SHELL_PARAMS, PROXYSHELL,
                ASPNET_CLIENT_PAGE]  # fmt: skip


@pytest.mark.parametrize("pattern", URL_PATTERNS, ids=lambda p: p.pattern[:20])
@settings(max_examples=200)
@given(data=st.data())
def test_every_pattern_match_holds_a_needle(pattern: re.Pattern[str], data: st.DataObject) -> None:
    ascii_text = data.draw(st.from_regex(pattern, alphabet=st.characters(max_codepoint=127)))
    assert rows_holding(["/owa/auth.owa", ascii_text], URL_NEEDLES) == [1]
    text = data.draw(st.from_regex(pattern))  # non-ASCII: the block's rows all go on
    assert 1 in rows_holding(["/owa/auth.owa", text], URL_NEEDLES)


FRAGMENTS = st.sampled_from(
    ["/ecp/", "y.js", "/owa/auth/", "x.JS", "Current/themes/resources/", "/aspnet_client/",
     "a.aspx", "DDI/DDIService.svc/SetObject", "schema=Reset", "whoami", "%77hoami", "=+",
     "cmd", ".exe", "+/c", "%20", "PowerShell", "eval(", "autodiscover.json", "?@", "@",
     "/mapi/nspi", "\u017f", "\u212a", "-", "&", "?", "/"]
)  # fmt: skip
AGENT = st.one_of(
    st.sampled_from(HAFNIUM_AGENTS).map(lambda a: a.upper().replace("+", " ")),
    st.sampled_from(HAFNIUM_AGENTS),
    st.text(max_size=20),
)


class _Seen(IisProxyLogonCheck):
    """Records which rows reached ``feed``."""

    def __init__(self) -> None:
        super().__init__()
        self.fed: list[int] = []

    def feed(self, record: LogRecord) -> None:
        self.fed.append(record.line)


@settings(max_examples=400)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["GET", "POST", "post"]),
            st.lists(FRAGMENTS, max_size=6).map("".join),
            st.lists(FRAGMENTS, max_size=6).map("".join),
            AGENT,
        ),
        min_size=1,
        max_size=8,
    )
)
def test_iis_prefilter_never_drops_a_matching_request(
    requests: list[tuple[str, str, str, str]],
) -> None:
    names = ["cs-method", "cs-uri-stem", "cs-uri-query", "cs(User-Agent)"]
    values = [list(r) for r in requests]
    rows = FieldsBlock(names, True, list(range(1, len(values) + 1)), values,
                       [""] * len(values), [None] * len(values))  # fmt: skip
    check = _Seen()
    check.feed_block(LogBlock("iis", "f", rows))
    flagged = [n for n, request in enumerate(requests, 1) if match_request(*request)]
    assert set(flagged) <= set(check.fed)


@settings(max_examples=300)
@given(st.lists(st.one_of(st.from_regex(r"(?i)serverinfo~.*/.*"), st.text(max_size=20))))
def test_every_forged_anchor_holds_a_tilde(anchors: list[str]) -> None:
    rows = FieldsBlock(["AnchorMailbox"], True, list(range(len(anchors))), [[a] for a in anchors],
                       [""] * len(anchors), [None] * len(anchors))  # fmt: skip
    kept = set(forged_anchor_rows(LogBlock("httpproxy", "f", rows)))
    for i, anchor in enumerate(anchors):
        if ssrf_anchor(anchor) or reset_vdir_anchor(anchor, "200"):
            assert i in kept


QUERY = st.lists(
    st.sampled_from(["%C3", "%A9", "%c3%a9", "%0A", "%", "%2", "%77", "+", "=", "a", "\u00e9",
                     "\n", "-", "cmd"]),
    max_size=6,
).map("".join)  # fmt: skip


@settings(max_examples=300)
@given(st.lists(st.tuples(st.sampled_from(["/", "/ecp/x"]), QUERY), max_size=8))
def test_needle_urls_decode_as_request_url(rows: list[tuple[str, str]]) -> None:
    """Decoding the escaped queries joined gives each one's decoding (``+`` aside)."""
    stems, queries = [s for s, _ in rows], [q for _, q in rows]
    expected = [request_url(s, q).replace("+", " ") for s, q in rows]
    assert [u.replace("+", " ") for u in needle_urls(stems, queries)] == expected


def test_a_size_int_cannot_read_is_skipped(tmp_path: Path) -> None:
    """``"²".isdigit()`` holds but ``int("²")`` fails: such a size is not summed."""
    log = tmp_path / "W3SVC1" / "u_ex1.log"
    log.parent.mkdir()
    log.write_text("#Fields: date time c-ip sc-bytes\n2021-03-03 01:02:03 10.0.0.1 \u00b2\n")
    for checks in (registered_checks(), [_per_row(c) for c in registered_checks()]):
        result = inspect_paths([tmp_path], checks)
        assert result.collection.coverage["iis"].rows == 1 and not result.findings
