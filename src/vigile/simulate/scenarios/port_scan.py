"""A port scan from a compromised desktop across the server subnet."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from vigile.simulate.flows import REJ, S0, SF, Flows
from vigile.simulate.network import Office
from vigile.simulate.scenarios.base import (
    DAY,
    Truth,
    pick_workstation,
    server_subnet_sweep,
    sweep_flows,
    truth_for,
)

TOP_PORTS = (
    21,
    22,
    23,
    25,
    53,
    80,
    88,
    110,
    111,
    135,
    139,
    143,
    389,
    443,
    445,
    465,
    587,
    623,
    636,
    993,
    995,
    1433,
    1723,
    2049,
    3306,
    3389,
    5432,
    5900,
    5985,
    6379,
    8080,
    8443,
    9100,
)


@dataclass
class PortScanScenario:
    """Parameters: hosts probed in 10.20.1.0/24, probes per second, start day, host."""

    name: ClassVar[str] = "port_scan"
    kind: ClassVar[str] = "scan"
    summary: ClassVar[str] = "desktop sweeps the server subnet for open ports"

    targets: int = 254
    rate: float = 50.0
    start_day: float = 1.6
    host: int = 30

    def generate(
        self, office: Office, rng: np.random.Generator, start: float, end: float, label: int
    ) -> tuple[Flows, Truth]:
        src = pick_workstation(office, self.host)
        sweep = server_subnet_sweep(office, rng, self.targets, TOP_PORTS)
        _, _, live, order = sweep
        state = np.where(live, np.where(rng.random(len(order)) < 0.1, SF, REJ), S0)[order]
        first = start + self.start_day * DAY
        flows = sweep_flows(
            rng, first, self.rate, src, sweep, state, duration=np.where(state == S0, 0.0, 0.0004)
        )
        return flows, truth_for(self, office, flows, label, src, None, None)
