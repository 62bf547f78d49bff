"""A slow beacon: one HTTPS check-in an hour, too sparse for most 24-hour scores.

The traffic is the HTTPS beacon's; only the parameters differ.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from vigile.simulate.scenarios.https_beacon import HttpsBeaconScenario


@dataclass
class SlowBeaconScenario(HttpsBeaconScenario):
    """Parameters: ``period`` (s), ``jitter`` (0-1), bytes each way, quiet hours, host."""

    name: ClassVar[str] = "slow_beacon"
    kind: ClassVar[str] = "beacon"
    summary: ClassVar[str] = "desktop checks in hourly over HTTPS"

    period: float = 3600.0
    jitter: float = 0.1
    bytes_out: int = 800
    bytes_in: int = 1500
    sleep: str = ""
    fqdn: str = "metrics.telemetry-sync.org"
    start_day: float = 0.0
    host: int = 17
