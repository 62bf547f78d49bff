"""A UDP sweep from a compromised desktop: looking for SNMP agents, name and time servers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from vigile.simulate.flows import S0, SF, UDP, Flows
from vigile.simulate.network import Office
from vigile.simulate.scenarios.base import (
    DAY,
    Truth,
    pick_workstation,
    server_subnet_sweep,
    sweep_flows,
    truth_for,
)

#: UDP services an intruder maps first: DNS, DHCP, TFTP, NTP, NetBIOS, SNMP, IKE,
#: syslog, IPMI/RMCP, SSDP, mDNS (nmap's most common UDP ports).
UDP_PORTS = (53, 67, 69, 123, 137, 161, 500, 514, 623, 1900, 5353)


@dataclass
class UdpScanScenario:
    """Parameters: hosts probed in 10.20.1.0/24, probes per second, start day, host.

    The server subnet only, as ``port_scan``: anything that reaches a BMC is
    ``role_violation``'s, one finding per BMC.
    """

    name: ClassVar[str] = "udp_scan"
    kind: ClassVar[str] = "scan"
    summary: ClassVar[str] = "desktop sweeps the server subnet for UDP services"

    targets: int = 254
    rate: float = 20.0
    start_day: float = 1.7
    host: int = 31

    def generate(
        self, office: Office, rng: np.random.Generator, start: float, end: float, label: int
    ) -> tuple[Flows, Truth]:
        src = pick_workstation(office, self.host)
        sweep = server_subnet_sweep(office, rng, self.targets, UDP_PORTS)
        _, _, live, order = sweep
        # Live servers answer on some of their services (nmap sends each port's protocol
        # payload, so a listening service replies); the rest stays silent or sends ICMP.
        state = np.where(live & (rng.random(len(order)) < 0.2), SF, S0)[order]
        flows = sweep_flows(
            rng,
            start + self.start_day * DAY,
            self.rate,
            src,
            sweep,
            state,
            proto=UDP,
            obytes=40,
            rbytes=np.where(state == SF, 120, 0),
            duration=np.where(state == S0, 0.0, 0.002),
        )
        return flows, truth_for(self, office, flows, label, src, None, None)
