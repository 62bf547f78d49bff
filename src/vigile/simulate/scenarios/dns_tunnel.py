"""A DNS tunnel (iodine-style): bursts of long, high-entropy queries carrying data."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from vigile.simulate.activity import dns_lookups
from vigile.simulate.flows import Flows
from vigile.simulate.network import Office
from vigile.simulate.scenarios.base import DAY, Truth, pick_workstation, truth_for


@dataclass
class DnsTunnelScenario:
    """Parameters: sessions, minutes each, queries per second, label length, domain, host."""

    name: ClassVar[str] = "dns_tunnel"
    kind: ClassVar[str] = "dns"
    summary: ClassVar[str] = "desktop tunnels data in NULL/TXT queries to one domain"

    sessions: int = 2
    minutes: float = 30.0
    rate: float = 3.0
    label_len: int = 52
    domain: str = "t.dataplane-sync.com"
    start_day: float = 1.4
    host: int = 21

    def generate(
        self, office: Office, rng: np.random.Generator, start: float, end: float, label: int
    ) -> tuple[Flows, Truth]:
        src = pick_workstation(office, self.host)
        parts = []
        for i in range(self.sessions):
            t0 = start + (self.start_day + 0.3 * i) * DAY
            n = rng.poisson(self.rate * self.minutes * 60)
            ts = np.sort(t0 + rng.random(n) * self.minutes * 60)
            ts = ts[ts < end]
            raw = rng.integers(0, 256, (len(ts), self.label_len * 5 // 8), dtype=np.uint8)
            names = [
                base64.b32encode(r.tobytes()).decode().lower().rstrip("=") + "." + self.domain
                for r in raw
            ]
            parts.append(
                dns_lookups(
                    office,
                    rng,
                    ts,
                    np.full(len(ts), src, np.int32),
                    office.vocabs.name.ids(names),
                    np.full(len(ts), -1, np.int32),
                    1.0,
                    qtype=10,
                )
            )
        flows = Flows.concat(parts)
        return flows, truth_for(self, office, flows, label, src, None, self.domain)
