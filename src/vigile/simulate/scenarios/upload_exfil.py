"""Upload exfiltration: a server pushes gigabytes to a file-sharing service at night."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from vigile.simulate.activity import dns_lookups
from vigile.simulate.flows import Flows, ephemeral_ports, service
from vigile.simulate.network import Office
from vigile.simulate.scenarios.base import DAY, Truth, attacker_address, truth_for


@dataclass
class UploadExfilScenario:
    """Parameters: total GB, number of chunks, day (-1 = last), hour, upload rate, name."""

    name: ClassVar[str] = "upload_exfil"
    kind: ClassVar[str] = "exfil"
    summary: ClassVar[str] = "file server uploads gigabytes to a file-sharing site"

    total_gb: float = 4.0
    chunks: int = 40
    day: int = -1
    hour: float = 1.0
    rate_mbps: float = 50.0
    fqdn: str = "upload.transfer-share.io"

    def generate(
        self, office: Office, rng: np.random.Generator, start: float, end: float, label: int
    ) -> tuple[Flows, Truth]:
        day = self.day % max(int((end - start) // DAY), 1)
        src, dst = office.addr("file01"), attacker_address(office, rng)
        n = self.chunks
        size = (self.total_gb * 1e9 / n * rng.uniform(0.9, 1.1, n)).astype(np.int64)
        duration = size * 8 / (self.rate_mbps * 1e6)
        gaps = np.concatenate([[0.0], np.cumsum(duration[:-1] + rng.uniform(1, 10, n - 1))])
        flows = Flows.of(
            n,
            ts=start + day * DAY + self.hour * 3600 + gaps,
            src=src,
            dst=dst,
            sport=ephemeral_ports(rng, n),
            dport=443,
            service=service("ssl"),
            name=office.vocabs.name.id(self.fqdn),
            duration=duration,
            obytes=size,
            rbytes=rng.integers(3000, 6000, n),
        )
        lookups = dns_lookups(
            office, rng, flows.ts[:1], flows.src[:1], flows.name[:1], flows.dst[:1], 1.0
        )
        truth = truth_for(self, office, flows, label, src, dst, self.fqdn)
        lookups.label[:] = label
        return Flows.concat([flows, lookups]), truth
