"""HTTP C2 from a desktop: a GET to the same URI on a look-alike host name."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

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
class HttpBeaconScenario:
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
            dport=80,
            service=service("http"),
            duration=lambda n: rng.uniform(0.1, 0.4, n),
            obytes=around(rng, self.bytes_out, 0.05),
            rbytes=around(rng, self.bytes_in, 0.1),
            name=v.name.id(self.fqdn),
            uri=v.uri.id("/api/v2/status"),
            method=1,
            status=200,
            agent=v.agent.id("Mozilla/5.0 (Windows NT 10.0; Win64; x64) Trident/7.0"),
        )
        n = len(flows)
        lookups = dns_lookups(
            office, rng, flows.ts, flows.src, flows.name, np.full(n, c2, np.int32), 0.1
        )
        truth = truth_for(self, office, flows, label, src, c2, self.fqdn)
        lookups.label[:] = label
        return Flows.concat([flows, lookups]), truth
