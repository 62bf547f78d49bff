"""Mailbox exfiltration (Hafnium, 2021): one outside client pulls exported mailboxes over OWA.

After ProxyLogon the intruders exported mailboxes to PST files under the web root
and downloaded them over HTTPS: few connections, each with a very large response,
from one address never seen before, at night.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from vigile.simulate.flows import Flows, ephemeral_ports, service
from vigile.simulate.network import DOMAIN, Office
from vigile.simulate.scenarios.base import DAY, Truth, attacker_address, truth_for


@dataclass
class MailboxExfilScenario:
    """Parameters: downloads, median size (MB), day (-1 = last) and hour it starts."""

    name: ClassVar[str] = "mailbox_exfil"
    kind: ClassVar[str] = "exfil"
    summary: ClassVar[str] = "outside client downloads exported mailboxes from the mail server"

    downloads: int = 12
    median_mb: float = 300.0
    day: int = -1
    hour: float = 2.0
    rate_mbps: float = 40.0

    def generate(
        self, office: Office, rng: np.random.Generator, start: float, end: float, label: int
    ) -> tuple[Flows, Truth]:
        days = int((end - start) // DAY)
        day = self.day % max(days, 1)
        client = attacker_address(office, rng)
        mail = office.addr("mail01")
        n = self.downloads
        size = np.maximum(1, rng.lognormal(np.log(self.median_mb * 1e6), 0.5, n)).astype(np.int64)
        duration = size * 8 / (self.rate_mbps * 1e6)
        ts = (
            start
            + day * DAY
            + self.hour * 3600
            + np.concatenate([[0], np.cumsum(duration[:-1] + rng.uniform(5, 60, n - 1))])
        )
        flows = Flows.of(
            n,
            ts=ts,
            src=client,
            dst=mail,
            sport=ephemeral_ports(rng, n),
            dport=443,
            service=service("ssl"),
            name=office.vocabs.name.id(f"mail.{DOMAIN}"),
            duration=duration,
            obytes=rng.integers(900, 1600, n),
            rbytes=size,
        )
        return flows, truth_for(self, office, flows, label, client, mail, None)
