"""HTTPS C2 from a desktop: TLS to a CDN-looking name with a steady size."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from vigile.simulate.activity import dns_lookups
from vigile.simulate.flows import Flows, ephemeral_ports, service
from vigile.simulate.network import Office
from vigile.simulate.scenarios.base import (
    DAY,
    Truth,
    around,
    attacker_address,
    beacon,
    pick_workstation,
    truth_for,
)


@dataclass
class HttpsBeaconScenario:
    """Parameters: ``period`` (s), ``jitter`` (0-1), bytes each way, quiet hours, host."""

    name: ClassVar[str] = "https_beacon"
    kind: ClassVar[str] = "beacon"
    summary: ClassVar[str] = "desktop beacons over HTTPS to a CDN-looking name"

    period: float = 300.0
    jitter: float = 0.4
    bytes_out: int = 1900
    bytes_in: int = 4200
    sleep: str = ""
    fqdn: str = "cdn.static-assets-cache.net"
    start_day: float = 0.5
    host: int = 9

    port: ClassVar[int] = 443
    protocol: ClassVar[str] = "ssl"

    def request(self, office: Office) -> dict[str, Any]:
        """Per-request fields of the protocol (none for TLS: the payload is opaque)."""
        return {}

    def generate(
        self, office: Office, rng: np.random.Generator, start: float, end: float, label: int
    ) -> tuple[Flows, Truth]:
        src = pick_workstation(office, self.host)
        c2 = attacker_address(office, rng)
        v = office.vocabs
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
            service=service(self.protocol),
            duration=lambda n: rng.uniform(0.1, 0.4, n),
            obytes=around(rng, self.bytes_out, 0.05),
            rbytes=around(rng, self.bytes_in, 0.1),
            name=v.name.id(self.fqdn),
            **self.request(office),
        )
        n = len(flows)
        lookups = dns_lookups(
            office, rng, flows.ts, flows.src, flows.name, np.full(n, c2, np.int32), 0.1
        )
        truth = truth_for(self, office, flows, label, src, c2, self.fqdn)
        lookups.label[:] = label
        return Flows.concat([flows, lookups]), truth
