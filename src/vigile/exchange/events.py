"""Checks on Windows events: web shell writes, shell spawns, UM crashes, vdir changes.

Sources: Microsoft's HAFNIUM blog and Test-ProxyLogon.ps1 (files written by w3wp or
UMWorkerProcess, ASPX files owned by SYSTEM, UMWorkerProcess children other than
WerFault/wermgr, ``System.InvalidCastException`` from MSExchange Unified Messaging),
the Sigma HAFNIUM rules (w3wp/UMWorkerProcess spawning shells, MSExchange Management
``Set-OabVirtualDirectory`` with script) and CISA AA21-062A.
"""

from __future__ import annotations

import re
from typing import ClassVar

from vigile.detect import Finding
from vigile.exchange import LogRecord, make_finding
from vigile.exchange.ecp import VDIR_CMDLET, script_in_vdir_change

#: Processes that wrote web shells into Exchange folders in ProxyLogon intrusions.
SHELL_WRITERS = {"w3wp.exe", "system", "umworkerprocess.exe", "msexchangemailboxreplication.exe"}
WEB_SCRIPT = re.compile(r"\.as[hmp]x$", re.IGNORECASE)
#: Folders IIS serves for Exchange (lower case, backslashes).
WEB_FOLDERS = ("\\inetpub\\wwwroot\\", "\\frontend\\httpproxy\\", "\\clientaccess\\")
#: Children of w3wp that mean a web shell runs commands (Sigma, CISA AA21-062A).
SHELLS_AND_RECON = {
    "cmd.exe", "powershell.exe", "pwsh.exe", "whoami.exe", "net.exe", "net1.exe",
    "nltest.exe", "ipconfig.exe", "systeminfo.exe", "tasklist.exe", "quser.exe",
    "query.exe", "procdump.exe", "procdump64.exe", "rundll32.exe", "certutil.exe",
    "wmic.exe", "mshta.exe", "cscript.exe", "wscript.exe", "bitsadmin.exe", "reg.exe",
    "sc.exe", "schtasks.exe", "7z.exe", "makecab.exe", "nslookup.exe", "ping.exe",
}  # fmt: skip
UM_BENIGN_CHILDREN = {"werfault.exe", "wermgr.exe"}
#: What UMWorkerProcess writes in normal operation (Sigma's CVE-2021-26858 file rule).
UM_ROUTINE_WRITES = ("cachecleanup.bin", ".txt", ".log", ".cfg", "cleanup.bin")
SSRF_MARKERS = re.compile(r"\]:444/|X-BEResource|~19\d{8}", re.IGNORECASE)


def _base(path: str) -> str:
    return path.replace("/", "\\").rsplit("\\", 1)[-1].lower()


def _is(record: LogRecord, channel: str, event_id: str) -> bool:
    return record.get("EventID") == event_id and record.get("Channel").lower() == channel.lower()


class WebShellWriteCheck:
    """Sysmon 11: an .aspx/.ashx/.asmx written into Exchange web folders by a server process."""

    name: ClassVar[str] = "exchange-webshell-write"
    kinds: ClassVar[tuple[str, ...]] = ("event",)
    summary: ClassVar[str] = "CVE-2021-26858/27065: web page written by w3wp, System or UM"
    source: ClassVar[str] = "Microsoft HAFNIUM blog; Sigma HAFNIUM rules"

    def __init__(self) -> None:
        self.findings: list[Finding] = []

    def feed(self, record: LogRecord) -> None:
        if not _is(record, "Microsoft-Windows-Sysmon/Operational", "11"):
            return
        target, writer = record.get("TargetFilename"), _base(record.get("Image"))
        if writer not in SHELL_WRITERS:
            return
        low = target.lower().replace("/", "\\")
        if WEB_SCRIPT.search(low) and any(f in low for f in WEB_FOLDERS):
            self.findings.append(self._hit(record, target, writer, 0.95, "into a served folder"))
        elif writer == "umworkerprocess.exe" and not low.endswith(UM_ROUTINE_WRITES):
            why = "(Unified Messaging writes only caches, logs and settings: CVE-2021-26858)"
            self.findings.append(self._hit(record, target, writer, 0.8, why))
        elif ".aspx." in low and low.endswith(".compiled") and "temporary asp.net files" in low:
            page = _base(target).split(".aspx.")[0] + ".aspx"
            self.findings.append(
                self._hit(record, target, writer, 0.45, f"(ASP.NET compiled {page}: was it run?)")
            )

    def _hit(self, record: LogRecord, target: str, writer: str, score: float, how: str) -> Finding:
        return make_finding(
            self.name,
            record,
            score,
            f"{record.get('Image') or writer} wrote {target} {how}.",
            subject=record.get("Hostname"),
            target=target,
            writer=record.get("Image"),
            utc_time=record.get("UtcTime"),
        )

    def finish(self) -> list[Finding]:
        return self.findings


class WebProcessSpawnCheck:
    """Sysmon 1 / Security 4688: w3wp starting a shell or recon tool, or UM starting anything."""

    name: ClassVar[str] = "exchange-webshell-exec"
    kinds: ClassVar[tuple[str, ...]] = ("event",)
    summary: ClassVar[str] = "w3wp spawning cmd/powershell/recon; UMWorkerProcess spawning"
    source: ClassVar[str] = "Sigma HAFNIUM rules; Microsoft HAFNIUM blog"

    def __init__(self) -> None:
        self.by_process: dict[tuple[str, int, int], Finding] = {}
        # Every process start by (host, parent pid): the shell's own children go into
        # the evidence (cmd /c whoami -> whoami.exe), once per child pid.
        self.children: dict[tuple[str, int], dict[int, str]] = {}

    def feed(self, record: LogRecord) -> None:
        if _is(record, "Microsoft-Windows-Sysmon/Operational", "1"):
            child, parent = record.get("Image"), record.get("ParentImage")
            pids = (_pid(record.get("ProcessId"), 10), _pid(record.get("ParentProcessId"), 10))
        elif _is(record, "Security", "4688"):
            child, parent = record.get("NewProcessName"), record.get("ParentProcessName")
            pids = (_pid(record.get("NewProcessId"), 16), _pid(record.get("ProcessId"), 16))
        else:
            return
        host = record.get("Hostname").lower()
        cmdline = record.get("CommandLine") or child
        self.children.setdefault((host, pids[1]), {}).setdefault(pids[0], cmdline)
        kid, dad = _base(child), _base(parent)
        if dad == "w3wp.exe" and kid in SHELLS_AND_RECON:
            why = "the IIS worker process ran a shell or recon tool, as a web shell does"
        elif dad == "umworkerprocess.exe" and kid not in UM_BENIGN_CHILDREN:
            why = "Unified Messaging started a process other than WerFault (CVE-2021-26857)"
        else:
            return
        key = (host, *pids)
        seen = self.by_process.get(key)
        if seen is not None:
            seen.evidence.setdefault("also_in", []).append(record.where())
            return
        self.by_process[key] = make_finding(
            self.name,
            record,
            0.9,
            f"{_base(parent)} started `{cmdline}` (pid {pids[0]}): {why}.",
            subject=record.get("Hostname"),
            image=child,
            parent=parent,
            command_line=cmdline,
            pid=pids[0],
            parent_pid=pids[1],
            user=record.get("User") or record.get("SubjectUserName"),
        )

    def finish(self) -> list[Finding]:
        for (host, pid, _), finding in self.by_process.items():
            kids = [c for c in self.children.get((host, pid), {}).values() if "conhost" not in c]
            if kids:
                finding.evidence["children"] = kids
                finding.explanation += f" It went on to run {', '.join(f'`{k}`' for k in kids)}."
        return list(self.by_process.values())


def _pid(value: str, base: int) -> int:
    try:
        return int(value, base)
    except ValueError:
        return -1


class ManagementVirtualDirectoryCheck:
    """MSExchange Management: Set-/New-/Remove-*VirtualDirectory, with script in a URL or not."""

    name: ClassVar[str] = "exchange-vdir-script"
    kinds: ClassVar[tuple[str, ...]] = ("event",)
    summary: ClassVar[str] = "CVE-2021-27065: virtual directory cmdlet with script in a URL"
    source: ClassVar[str] = "Sigma HAFNIUM rules (MSExchange Management); Test-ProxyLogon.ps1"

    def __init__(self) -> None:
        self.findings: list[Finding] = []

    def feed(self, record: LogRecord) -> None:
        if record.get("Channel").lower() != "msexchange management":
            return
        message = record.get("Message")
        cmdlet = VDIR_CMDLET.search(message)
        if cmdlet is None:
            return
        hit = script_in_vdir_change(message)
        if hit is not None:
            score, text = 0.95, f"with markup in -{hit[1]} ({hit[2][:80]!r})"
            text += ": the CVE-2021-27065 step that plants a web shell"
        else:
            score, text = 0.3, "without script in any URL; check it was an administrator"
        self.findings.append(
            make_finding(
                self.name,
                record,
                score,
                f"Exchange ran {cmdlet.group(1)} {text}.",
                subject=record.get("Hostname"),
                cmdlet=cmdlet.group(1),
                message=message[:2000],
            )
        )

    def finish(self) -> list[Finding]:
        return self.findings


class UnifiedMessagingCrashCheck:
    """Application log: MSExchange Unified Messaging errors with System.InvalidCastException."""

    name: ClassVar[str] = "exchange-um-deserialization"
    kinds: ClassVar[tuple[str, ...]] = ("event",)
    summary: ClassVar[str] = "CVE-2021-26857: UM errors with System.InvalidCastException"
    source: ClassVar[str] = "Microsoft Test-ProxyLogon.ps1 (Get-Cve26857)"

    def __init__(self) -> None:
        self.findings: list[Finding] = []

    def feed(self, record: LogRecord) -> None:
        if record.get("Provider").lower() != "msexchange unified messaging":
            return
        if "System.InvalidCastException" not in record.get("Message"):
            return
        if record.get("Level") not in ("", "2", "Error"):
            return
        self.findings.append(
            make_finding(
                self.name,
                record,
                0.8,
                "Unified Messaging logged System.InvalidCastException, the crash that "
                "exploiting CVE-2021-26857 (insecure deserialization) leaves.",
                subject=record.get("Hostname"),
                message=record.get("Message")[:2000],
            )
        )

    def finish(self) -> list[Finding]:
        return self.findings


class SsrfTraceEventCheck:
    """Application log: an ECP/OWA error for a URL that carries the SSRF's back-end hint."""

    name: ClassVar[str] = "exchange-ssrf-trace"
    kinds: ClassVar[tuple[str, ...]] = ("event",)
    summary: ClassVar[str] = "CVE-2021-26855: request URL routed to the back end (:444)"
    source: ClassVar[str] = "Volexity ProxyLogon write-up (X-BEResource to :444)"

    def __init__(self) -> None:
        self.findings: list[Finding] = []

    def feed(self, record: LogRecord) -> None:
        if record.get("Channel").lower() != "application":
            return
        if not record.get("Provider").lower().startswith("msexchange"):
            return
        marker = SSRF_MARKERS.search(record.get("Message"))
        if marker is None:
            return
        url = re.search(r"URL '([^']*)'", record.get("Message"))
        self.findings.append(
            make_finding(
                self.name,
                record,
                0.7,
                f"{record.get('Provider')} logged a request for "
                f"{url.group(1) if url else 'a URL'} carrying {marker.group(0)!r}, the "
                "back-end routing that the CVE-2021-26855 request forgery uses.",
                subject=record.get("Hostname"),
                marker=marker.group(0),
                url=url.group(1) if url else None,
            )
        )

    def finish(self) -> list[Finding]:
        return self.findings
