"""A BMC implant calling home: the management controller opens TLS to a bare IP."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from vigile.simulate.flows import Flows, ephemeral_ports, service
from vigile.simulate.network import Office
from vigile.simulate.scenarios.base import (
    DAY,
    Truth,
    around,
    attacker_address,
    beacon,
    truth_for,
)


@dataclass
class BmcBeaconScenario:
    """Parameters: check-in ``period`` (s), ``jitter`` (0-1), bytes each way, quiet hours."""

    name: ClassVar[str] = "bmc_beacon"
    kind: ClassVar[str] = "beacon"
    summary: ClassVar[str] = "BMC of file01 beacons over TLS (no SNI) to an attacker IP"

    period: float = 600.0
    jitter: float = 0.2
    bytes_out: int = 420
    bytes_in: int = 1100
    sleep: str = "08-18"
    port: int = 443
    start_day: float = 0.3
    bmc: int = 2

    def generate(
        self, office: Office, rng: np.random.Generator, start: float, end: float, label: int
    ) -> tuple[Flows, Truth]:
        src = int(office.bmcs[self.bmc % len(office.bmcs)])
        c2 = attacker_address(office, rng)
        flows = beacon(
            rng,
            start + self.start_day * DAY,
            end,
            self.period,
            self.jitter,
            self.sleep,
            src=src,
            dst=c2,
            sport=lambda n: ephemeral_ports(rng, n),
            dport=self.port,
            service=service("ssl"),
            duration=lambda n: rng.uniform(0.3, 0.9, n),
            obytes=around(rng, self.bytes_out, 0.1),
            rbytes=around(rng, self.bytes_in, 0.1),
        )
        return flows, truth_for(self, office, flows, label, src, c2, None)
