"""Exchange inspection on the real OTRF ProxyLogon capture, the CLI, and parser fuzzing."""

from __future__ import annotations

import json
import re
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from vigile.cli import app
from vigile.errors import InputError
from vigile.exchange.collect import Collection, walk
from vigile.exchange.fields import BadLine, FieldsRow, parse_fields_log
from vigile.exchange.inspect import inspect_paths
from vigile.exchange.winevents import json_clock_offset, read_json_events
from vigile.store.duckdb import DuckDBStore

OTRF = "exchange/otrf/proxylogon_ssrf_rce_poc.zip"


@pytest.fixture(scope="module")
def otrf_result(shared_data: Path):
    return inspect_paths([shared_data / OTRF])


def test_otrf_must_show(otrf_result) -> None:
    high = [f for f in otrf_result.findings if f.severity in ("high", "critical")]
    by = {(f.detector, f.window_start.isoformat()): f for f in high}
    write = by[("exchange-webshell-write", "2021-03-14T06:40:13.660000+00:00")]
    assert write.evidence["writer"] == "System"
    assert write.evidence["target"].endswith("FrontEnd\\HttpProxy\\owa\\auth\\ohyeah.aspx")
    execs = sorted(f for d, f in by if d == "exchange-webshell-exec")
    assert len(execs) == 2
    for ts in execs:
        finding = by[("exchange-webshell-exec", ts)]
        assert finding.evidence["command_line"] == "cmd /c whoami"
        assert finding.evidence["parent"].lower().endswith("w3wp.exe")
        assert finding.evidence["also_in"], "the Security 4688 twin is merged in"
        assert finding.evidence["children"] == ["whoami"]
    vdir = by[("exchange-vdir-script", "2021-03-14T06:40:12.987000+00:00")]
    assert vdir.evidence["cmdlet"] == "Set-OabVirtualDirectory"
    assert len(high) == 4, [f.explanation for f in high]


def test_otrf_timeline_and_coverage(otrf_result) -> None:
    timeline = otrf_result.timeline
    assert timeline[0].detector == "exchange-vdir-script"
    assert timeline[-1].detector == "exchange-webshell-exec"
    events = otrf_result.collection.coverage["event"]
    assert events.rows == 10487 and events.bad_rows == 0
    # TimeCreated in this export is local time (UTC-5); Sysmon's UtcTime corrects it.
    assert events.oldest == datetime(2021, 3, 14, 6, 39, 32, 609000, tzinfo=UTC)
    assert otrf_result.collection.coverage["httpproxy"].files == 0
    assert any("+5 h" in n for n in otrf_result.collection.notices)


def test_cli_writes_findings_to_store(shared_data: Path, tmp_path: Path) -> None:
    db = tmp_path / "v.duckdb"
    args = ["inspect", "exchange", str(shared_data / OTRF), "--db", str(db), "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    kinds = {line["type"] for line in lines}
    assert kinds == {"finding", "timeline", "coverage", "notice"}
    timeline = next(line for line in lines if line["type"] == "timeline")
    assert timeline["first"] == "2021-03-14T06:40:12.987000+00:00"
    assert timeline["last"] == "2021-03-14T06:40:15.347000+00:00"
    store = DuckDBStore(db, read_only=True)
    try:
        stored = store.scan("findings").to_pylist()
    finally:
        store.close()
    assert len(stored) == sum(1 for line in lines if line["type"] == "finding")
    assert CliRunner().invoke(app, args).exit_code == 0
    store = DuckDBStore(db, read_only=True)
    try:
        assert store.count("findings") == len(stored), "a rerun replaces, never adds"
    finally:
        store.close()


def test_cli_reports_unreadable_files(tmp_path: Path) -> None:
    (tmp_path / "Logging").mkdir()
    (tmp_path / "Logging" / "junk.log").write_bytes(b"\x00\xff garbage")
    (tmp_path / "bad.zip").write_bytes(b"PK\x03\x04 truncated")
    (tmp_path / "x.evtx").write_bytes(b"ElfFile\x00 short")
    result = CliRunner().invoke(
        app, ["inspect", "exchange", str(tmp_path), "--db", str(tmp_path / "v.duckdb")]
    )
    assert result.exit_code == 3, result.output
    assert "x.evtx" in result.output and "junk.log" in result.output
    assert "Traceback" not in result.output


def test_cli_missing_path_is_one_line_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["inspect", "exchange", str(tmp_path / "nope")])
    assert isinstance(result.exception, InputError)  # main() prints it as one line, exit 2
    assert str(result.exception) == f"{tmp_path / 'nope'}: no such file or folder"


def test_zip_members_are_read_in_place(tmp_path: Path) -> None:
    archive = tmp_path / "logs.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr(
            "W3SVC1/u_ex210303.log", "#Fields: date time cs-method\n2021-03-03 01:02:03 GET\n"
        )
    col = Collection()
    records = list(walk([archive], col))
    assert [r.kind for r in records] == ["file", "iis"]
    assert records[1].origin == f"{archive}!W3SVC1/u_ex210303.log"
    assert col.coverage["iis"].oldest == datetime(2021, 3, 3, 1, 2, 3, tzinfo=UTC)


@settings(max_examples=300)
@given(st.lists(st.text(max_size=80), max_size=12))
def test_fields_parser_never_raises(lines: list[str]) -> None:
    for item in parse_fields_log(["#Fields: date time a,b", *lines]):
        assert isinstance(item, FieldsRow | BadLine)
    for item in parse_fields_log(lines, headerless=True):
        assert isinstance(item, FieldsRow | BadLine)


@settings(max_examples=200)
@given(st.binary(max_size=400))
def test_any_bytes_as_a_log_give_records_or_problems(tmp_path_factory, data: bytes) -> None:
    root = tmp_path_factory.mktemp("fuzz")
    for name in ("Logging/HttpProxy/Owa/a.log", "W3SVC1/u_ex1.log", "ev.json", "e.evtx"):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"ElfFile\x00" + data if name.endswith(".evtx") else data)
    col = Collection()
    for record in walk([root], col):
        assert record.kind in ("file", "httpproxy", "iis", "event")


@settings(max_examples=200)
@given(st.lists(st.one_of(st.text(max_size=60), st.just('{"UtcTime": 5}')), max_size=8))
def test_json_events_never_raise(lines: list[str]) -> None:
    import io

    for item in read_json_events(lambda: io.StringIO("\n".join(lines))):
        assert isinstance(item, BadLine | tuple)
    json_clock_offset(lambda: io.StringIO("\n".join(lines)))


def _evtx_writer():
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "evtx_writer", Path(__file__).parent / "evtx_writer.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _evtx_events():
    event_element = _evtx_writer().event_element

    def system(provider: str, event_id: str, ts: str, channel: str) -> dict[str, str]:
        return {"Provider": provider, "EventID": event_id, "TimeCreated": ts,
                "Channel": channel, "Computer": "MX01"}  # fmt: skip

    sysmon = "Microsoft-Windows-Sysmon/Operational"
    w3wp = "C:\\Windows\\System32\\inetsrv\\w3wp.exe"
    return [
        (datetime(2021, 3, 3, 2, 12, tzinfo=UTC), event_element(
            system("MSExchange CmdletLogs", "1", "2021-03-03T02:12:00.000Z",
                   "MSExchange Management"),
            ["Set-OabVirtualDirectory", '-ExternalUrl "http://f/#<script language="JScript" '
             'runat="server">function Page_Load(){eval(Request["c"],"unsafe");}</script>"'])),
        (datetime(2021, 3, 3, 2, 13, tzinfo=UTC), event_element(
            system("Microsoft-Windows-Sysmon", "11", "2021-03-03T02:13:00.000Z", sysmon),
            {"Image": w3wp, "TargetFilename": "C:\\inetpub\\wwwroot\\aspnet_client\\x.aspx"})),
        (datetime(2021, 3, 3, 2, 14, tzinfo=UTC), event_element(
            system("Microsoft-Windows-Sysmon", "1", "2021-03-03T02:14:00.000Z", sysmon),
            {"Image": "C:\\Windows\\System32\\cmd.exe", "ParentImage": w3wp,
             "CommandLine": "cmd /c whoami", "ProcessId": "11", "ParentProcessId": "10"})),
    ]  # fmt: skip


def test_evtx_files_are_read(tmp_path: Path) -> None:
    """A real-format .evtx (written by tests/evtx_writer.py) read by the evtx package."""
    (tmp_path / "case").mkdir()
    _evtx_writer().write_evtx(tmp_path / "case" / "Application.evtx", _evtx_events())
    with zipfile.ZipFile(tmp_path / "case.zip", "w") as z:
        z.write(tmp_path / "case" / "Application.evtx", "logs/Application.evtx")
    for source in (tmp_path / "case", tmp_path / "case.zip"):
        result = inspect_paths([source])
        found = [(f.detector, f.severity, f.window_start.minute) for f in result.findings]
        assert found == [
            ("exchange-vdir-script", "critical", 12),
            ("exchange-webshell-write", "critical", 13),
            ("exchange-webshell-exec", "critical", 14),
        ]
        assert result.collection.coverage["event"].rows == 3
        assert not result.collection.problems


@settings(max_examples=100)
@given(st.lists(st.tuples(st.integers(0, 4096 + 2048), st.integers(0, 255)), max_size=6))
def test_damaged_evtx_gives_records_or_a_problem(tmp_path_factory, flips) -> None:
    root = tmp_path_factory.mktemp("evtx")
    path = root / "Security.evtx"
    _evtx_writer().write_evtx(path, _evtx_events())
    data = bytearray(path.read_bytes())
    for offset, value in flips:
        data[offset] = value
    path.write_bytes(bytes(data))
    col = Collection()
    records = [r for r in walk([root], col) if r.kind == "event"]
    assert records or col.problems or col.coverage["event"].rows == 0


def test_cli_table_shows_ranking_timeline_and_coverage(shared_data: Path, tmp_path: Path) -> None:
    db = tmp_path / "v.duckdb"
    args = ["inspect", "exchange", str(shared_data / OTRF), "--db", str(db), "--no-store"]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    out = result.output
    assert "  1. critical 0.95  2021-03-14 06:40:12  exchange-vdir-script" in out
    assert re.search(r"^     id [0-9a-f]{16}$", out, re.M)  # what `vigile explain` takes
    assert "first malicious event: 2021-03-14 06:40:12 UTC" in out
    assert "last malicious event:  2021-03-14 06:40:15 UTC" in out
    assert "NO LOGS: not checked" in out  # no HttpProxy, ECP, OAB or IIS logs in this capture
    assert not db.exists(), "--no-store leaves the store alone"


def test_powershell_json_array_export(tmp_path: Path) -> None:
    """Get-WinEvent | ConvertTo-Json: one array, /Date()/ times, data only in Message."""
    sysmon_message = (
        "Process Create:\r\nRuleName: -\r\nUtcTime: 2021-03-03 02:17:00.000\r\n"
        "ProcessId: 4242\r\nImage: C:\\Windows\\System32\\cmd.exe\r\n"
        "CommandLine: cmd /c whoami\r\nParentProcessId: 1000\r\n"
        "ParentImage: C:\\Windows\\System32\\inetsrv\\w3wp.exe\r\n"
        'ParentCommandLine: c:\\windows\\system32\\inetsrv\\w3wp.exe -ap "MSExchangeOWAAppPool"'
    )
    security_message = (
        "A new process has been created.\r\n\r\nCreator Subject:\r\n\tAccount Name:\t\tMX01$\r\n"
        "\r\nProcess Information:\r\n\tNew Process ID:\t\t0x1092\r\n"
        "\tNew Process Name:\tC:\\Windows\\System32\\cmd.exe\r\n"
        "\tCreator Process ID:\t0x3e8\r\n"
        "\tCreator Process Name:\tC:\\Windows\\System32\\inetsrv\\w3wp.exe\r\n"
        "\tProcess Command Line:\tcmd /c whoami"
    )
    events = [
        {"Id": 1, "LogName": "Microsoft-Windows-Sysmon/Operational", "MachineName": "MX01",
         "ProviderName": "Microsoft-Windows-Sysmon", "TimeCreated": "/Date(1614737820000)/",
         "Message": sysmon_message},
        {"Id": 4688, "LogName": "Security", "MachineName": "MX01",
         "ProviderName": "Microsoft-Windows-Security-Auditing",
         "TimeCreated": "/Date(1614737820010)/", "Message": security_message},
    ]  # fmt: skip
    (tmp_path / "events.json").write_text(json.dumps(events, indent=2), encoding="utf-8")
    result = inspect_paths([tmp_path])
    assert [(f.detector, f.window_start.isoformat()) for f in result.findings] == [
        ("exchange-webshell-exec", "2021-03-03T02:17:00+00:00")
    ]
    assert result.findings[0].evidence["also_in"], "the 4688 twin merged by process ids"
    assert not result.collection.notices, "PowerShell times are UTC: no clock correction"


def test_links_on_a_mounted_image_are_not_followed(tmp_path: Path) -> None:
    """A junction-like loop and a dangling link are reported, the walk ends."""
    (tmp_path / "Users").mkdir()
    (tmp_path / "Users" / "Application Data").symlink_to(tmp_path / "Users")
    (tmp_path / "gone.log").symlink_to(tmp_path / "nowhere.log")
    (tmp_path / "Windows" / "Temp").mkdir(parents=True)
    (tmp_path / "Windows" / "Temp" / "lsass.dmp").write_bytes(b"MDMP")
    result = inspect_paths([tmp_path])
    assert [f.fqdn for f in result.findings] == [f"{tmp_path.name}/Windows/Temp/lsass.dmp"]
    assert not result.collection.problems
    assert sorted(result.collection.notices) == [
        f"{tmp_path}/Users/Application Data: symbolic link not followed",
        f"{tmp_path}/gone.log: symbolic link not followed",
    ]


def test_gzipped_logs_are_read(tmp_path: Path) -> None:
    import gzip

    log = "#Fields: date time cs-method cs-uri-stem cs-uri-query c-ip cs(User-Agent) sc-bytes\n"
    log += "2021-03-03 02:11:05 POST /ecp/y.js - 203.0.113.7 python-requests/2.25.1 512\n"
    (tmp_path / "W3SVC1").mkdir()
    (tmp_path / "W3SVC1" / "u_ex210303.log.gz").write_bytes(gzip.compress(log.encode()))
    result = inspect_paths([tmp_path])
    assert [f.src for f in result.findings] == ["203.0.113.7"]
    assert result.collection.coverage["iis"].rows == 1


def test_suppression_rules_mark_findings_visibly(tmp_path: Path) -> None:
    golden = Path(__file__).parent / "golden" / "exchange" / "events" / "input"
    config = tmp_path / "vigile.toml"
    config.write_text(
        "[[exchange.suppress]]\n"
        'detector = "exchange-mailbox-export"\n'
        'contains = "\\\\\\\\nas01\\\\pst\\\\"\n'
        'reason = "monthly PST archive job"\n',
        encoding="utf-8",
    )
    args = ["inspect", "exchange", str(golden), "--config", str(config), "--no-store", "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    findings = [json.loads(x) for x in result.stdout.splitlines() if '"finding"' in x]
    suppressed = [f for f in findings if f["suppressed_by"]]
    assert [f["explanation"] for f in suppressed] == [
        "Exchange PowerShell exported a mailbox to \\\\nas01\\pst\\leaver.pst; "
        "confirm an administrator asked for it."
    ]
    assert suppressed[0]["suppressed_by"].endswith("monthly PST archive job")
    assert findings[-1] is suppressed[0], "suppressed findings rank last"


def test_suppression_rule_without_text_is_refused(tmp_path: Path) -> None:
    from vigile.errors import ConfigError

    config = tmp_path / "vigile.toml"
    config.write_text('[[exchange.suppress]]\ndetector = "*"\nreason = "x"\n', encoding="utf-8")
    result = CliRunner().invoke(
        app, ["inspect", "exchange", str(tmp_path), "--config", str(config)]
    )
    assert isinstance(result.exception, ConfigError)
    assert "'contains' must name the text" in str(result.exception)


def test_utf16_iis_log_is_read(tmp_path: Path) -> None:
    log = "#Software: Microsoft Internet Information Services 10.0\r\n"
    log += "#Fields: date time cs-method cs-uri-stem cs-uri-query c-ip cs(User-Agent)\r\n"
    log += (
        "2021-03-03 02:14:00 POST /owa/auth/Current/themes/resources/logon.css - 198.51.100.4 x\r\n"
    )
    (tmp_path / "u_ex210303.log").write_bytes(log.encode("utf-16"))
    result = inspect_paths([tmp_path])
    assert [f.src for f in result.findings] == ["198.51.100.4"]


def test_markup_in_attacker_text_is_printed_literally(tmp_path: Path) -> None:
    event = {
        "Channel": "Microsoft-Windows-Sysmon/Operational", "EventID": 1, "Hostname": "MX01",
        "TimeCreated": "2021-03-03T02:17:00Z", "ProcessId": "7", "ParentProcessId": "6",
        "Image": "C:\\Windows\\System32\\cmd.exe", "CommandLine": "cmd /c echo [/] [bold]x",
        "ParentImage": "C:\\Windows\\System32\\inetsrv\\w3wp.exe",
    }  # fmt: skip
    (tmp_path / "events.json").write_text(json.dumps(event) + "\n", encoding="utf-8")
    args = ["inspect", "exchange", str(tmp_path), "--no-store"]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "`cmd /c echo [/] [bold]x`" in result.output


def test_markdown_report(shared_data: Path, tmp_path: Path) -> None:
    report = tmp_path / "out" / "mx01.md"
    args = ["inspect", "exchange", str(shared_data / OTRF), "--no-store", "--report", str(report)]
    assert CliRunner().invoke(app, args).exit_code == 0
    text = report.read_text(encoding="utf-8")
    assert (
        "**Compromise indicated**: 4 events at high or critical, first 2021-03-14 06:40:12 UTC"
        in text
    )
    assert "| 2021-03-14 06:40:13 UTC | exchange-webshell-write |" in text
    assert "&lt;script language=" in text and "<script" not in text, "script shown, not rendered"
    assert "| httpproxy | 0 | 0 | 0 | - | - | NO LOGS: not checked |" in text
