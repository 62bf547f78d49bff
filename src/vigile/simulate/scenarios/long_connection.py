"""A long-lived connection: a reverse shell from the web server held open for a day or more."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from vigile.simulate.flows import Flows, ephemeral_ports
from vigile.simulate.network import Office
from vigile.simulate.scenarios.base import DAY, Truth, attacker_address, truth_for


@dataclass
class LongConnectionScenario:
    """Parameters: hours open, port, bytes each way, start day."""

    name: ClassVar[str] = "long_connection"
    kind: ClassVar[str] = "long_connection"
    summary: ClassVar[str] = "web server holds one TCP session to an outside host open for hours"

    hours: float = 30.0
    port: int = 8443
    bytes_out: int = 2_400_000
    bytes_in: int = 180_000
    start_day: float = 0.6

    def generate(
        self, office: Office, rng: np.random.Generator, start: float, end: float, label: int
    ) -> tuple[Flows, Truth]:
        src, dst = office.addr("web01"), attacker_address(office, rng)
        t0 = start + self.start_day * DAY
        # Zeek logs a connection when it ends; keep the end inside the simulated time.
        duration = min(self.hours * 3600, end - t0 - 1)
        n = 1 if duration > 0 else 0
        flows = Flows.of(
            n,
            ts=np.full(n, t0),
            src=src,
            dst=dst,
            sport=ephemeral_ports(rng, n),
            dport=self.port,
            duration=duration,
            obytes=self.bytes_out,
            rbytes=self.bytes_in,
            opkts=int(duration / 30) + self.bytes_out // 1448,
            rpkts=int(duration / 30) + self.bytes_in // 1448,
        )
        return flows, truth_for(self, office, flows, label, src, dst, None)
