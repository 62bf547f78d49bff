"""Host roles as the console shows them, with the evidence for each.

A host's role comes from ``[hosts."<ip>"] role`` in the configuration when the user
set one; otherwise from the services it answers in the traffic (the destination
side of ``conn`` where the responder sent payload, ``resp_payload``): mail ports make
a mail server, 53 a DNS server, UDP 123 an NTP server, IPMI/RMCP, KVM or
virtual-media ports a BMC, any other port answered to three or more distinct clients
a server, none a workstation, or *external* for an address outside ``[network]
internal``. Hosts in ``[network] management`` are BMCs.

This is the console's own small inference so it can rank and label hosts; a role a
detector reports in a finding's evidence (``evidence["role"]``) takes precedence over
it (see :mod:`vigile.web.queries`), and the configuration over both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pyarrow as pa

from vigile.config import Config, match_networks
from vigile.store import Agg, Pred, Store

MAIL_PORTS = {25, 110, 143, 465, 587, 993, 995}
BMC_PORTS = {623, 5120, 5121, 5122, 5123, 5900, 7578}
#: A port answered to at least this many distinct clients makes the host a server.
SERVER_MIN_CLIENTS = 3


@dataclass
class HostRole:
    """A host's role and the plain-language reasons for it."""

    role: str
    evidence: list[str] = field(default_factory=list)


def _role_for(services: list[tuple[str, int, int]]) -> str:
    ports = {(proto, port) for proto, port, _ in services}
    if any(port in BMC_PORTS for _, port in ports):
        return "bmc"
    if any(port in MAIL_PORTS for _, port in ports):
        return "mail"
    if ("udp", 53) in ports or ("tcp", 53) in ports:
        return "dns"
    if ("udp", 123) in ports:
        return "ntp"
    if any(clients >= SERVER_MIN_CLIENTS for _, _, clients in services):
        return "server"
    return "workstation"


def infer_roles(store: Store, config: Config, hosts: Sequence[str]) -> dict[str, HostRole]:
    """Role and evidence for each host in ``hosts``."""
    table = store.group(
        "conn",
        ["dst", "proto", "dst_port"],
        [Agg("count_distinct", "src", "clients"), Agg("count", None, "connections")],
        where=[Pred("dst", "in", list(hosts)), Pred("resp_payload", "=", True)],
    )
    served: dict[str, list[tuple[str, int, int]]] = {h: [] for h in hosts}
    for row in table.to_pylist():
        if row["dst_port"] is not None:
            served[row["dst"]].append((row["proto"] or "?", row["dst_port"], row["clients"]))
    managed = match_networks(pa.array(list(hosts), pa.string()), config.network.management)
    roles: dict[str, HostRole] = {}
    for host, in_management in zip(hosts, managed.tolist(), strict=True):
        services = sorted(served[host], key=lambda s: -s[2])
        evidence = [f"answers {p}/{n} to {c} distinct client(s)" for p, n, c in services[:5]]
        fixed = config.hosts.get(host)
        if fixed is not None and fixed.role:
            roles[host] = HostRole(fixed.role, ["role set in the configuration", *evidence])
        elif in_management:
            roles[host] = HostRole("bmc", ["in a [network] management subnet", *evidence])
        else:
            role = _role_for(services)
            if role == "workstation" and not config.network.is_internal(host):
                # An outside address (an attacker's, a scanner's) is nobody's workstation.
                role, evidence = "external", ["outside [network] internal", *evidence]
            roles[host] = HostRole(role, evidence or ["answers no service"])
    return roles
