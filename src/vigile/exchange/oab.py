"""CVE-2021-26858 in the OAB generator logs.

Test-ProxyLogon.ps1 (Get-Cve26858) reads ``Logging/OABGeneratorLog`` for
"Download failed and temporary file (.*?) needs to be removed" and flags the paths
outside ``<Exchange>\\ClientAccess\\OAB``: the arbitrary file write leaves a
temporary file wherever the attacker pointed it.
"""

from __future__ import annotations

import re
from typing import ClassVar

from vigile.detect import Finding
from vigile.exchange import LogRecord, make_finding

DOWNLOAD_FAILED = re.compile(r"Download failed and temporary file (.*?) needs to be removed")


class OabTemporaryFileCheck:
    """OAB generator lines naming a temporary file outside ClientAccess\\OAB."""

    name: ClassVar[str] = "exchange-oab-file-write"
    kinds: ClassVar[tuple[str, ...]] = ("oab",)
    summary: ClassVar[str] = "CVE-2021-26858: OAB download temporary file outside ClientAccess\\OAB"
    source: ClassVar[str] = "Microsoft Test-ProxyLogon.ps1 (Get-Cve26858)"

    def __init__(self) -> None:
        self.findings: list[Finding] = []

    def feed(self, record: LogRecord) -> None:
        match = DOWNLOAD_FAILED.search(record.raw)
        if match is None:
            return
        path = match.group(1).strip("'\" ")
        if "\\clientaccess\\oab" in path.lower().replace("/", "\\"):
            return
        self.findings.append(
            make_finding(
                self.name,
                record,
                0.85,
                f"The OAB generator left a temporary file at {path}, outside ClientAccess\\OAB: "
                "the trace of a CVE-2021-26858 arbitrary file write.",
                path=path,
            )
        )

    def finish(self) -> list[Finding]:
        return self.findings
