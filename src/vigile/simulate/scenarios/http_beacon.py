"""HTTP C2 from a desktop: a GET to the same URI on a look-alike host name.

The timing and sizes are the HTTPS beacon's; only the protocol and its request differ.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from vigile.simulate.network import Office
from vigile.simulate.scenarios.https_beacon import HttpsBeaconScenario


@dataclass
class HttpBeaconScenario(HttpsBeaconScenario):
    """Parameters: ``period`` (s), ``jitter`` (0-1), bytes each way, quiet hours, host."""

    name: ClassVar[str] = "http_beacon"
    kind: ClassVar[str] = "beacon"
    summary: ClassVar[str] = "desktop beacons over plain HTTP to a look-alike update host"

    period: float = 60.0
    jitter: float = 0.25
    bytes_out: int = 350
    bytes_in: int = 240
    sleep: str = ""
    fqdn: str = "update-check.cloudsync-api.com"
    start_day: float = 0.5
    host: int = 5

    port: ClassVar[int] = 80
    protocol: ClassVar[str] = "http"

    def request(self, office: Office) -> dict[str, Any]:
        v = office.vocabs
        return {
            "uri": v.uri.id("/api/v2/status"),
            "method": 1,
            "status": 200,
            "agent": v.agent.id("Mozilla/5.0 (Windows NT 10.0; Win64; x64) Trident/7.0"),
        }
