"""DNS C2 from a desktop: TXT look-ups of fresh subdomains of one domain, via the resolver."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from vigile.simulate.activity import dns_lookups
from vigile.simulate.flows import Flows, beacon_times
from vigile.simulate.network import Office
from vigile.simulate.scenarios.base import DAY, Truth, in_sleep_window, pick_workstation, truth_for


@dataclass
class DnsBeaconScenario:
    """Parameters: ``period`` (s), ``jitter`` (0-1), quiet hours, C2 domain, host."""

    name: ClassVar[str] = "dns_beacon"
    kind: ClassVar[str] = "dns"
    summary: ClassVar[str] = "desktop beacons with TXT look-ups of one C2 domain"

    period: float = 120.0
    jitter: float = 0.3
    sleep: str = ""
    domain: str = "ns.cloud-resolve-api.net"
    start_day: float = 0.5
    host: int = 12

    def generate(
        self, office: Office, rng: np.random.Generator, start: float, end: float, label: int
    ) -> tuple[Flows, Truth]:
        src = pick_workstation(office, self.host)
        ts = beacon_times(rng, start + self.start_day * DAY, end, self.period, self.jitter)
        ts = ts[~in_sleep_window(ts, self.sleep)]
        n = len(ts)
        labels = rng.integers(0, 16**8, n)
        names = office.vocabs.name.ids([f"{x:08x}.{self.domain}" for x in labels])
        flows = dns_lookups(
            office,
            rng,
            ts,
            np.full(n, src, np.int32),
            names,
            np.full(n, -1, np.int32),
            1.0,
            qtype=16,
        )
        return flows, truth_for(self, office, flows, label, src, None, self.domain)
