"""The simulated office: its hosts, their roles, and the outside world they talk to.

One internal LAN for servers, one for workstations, a management subnet for the
servers' BMCs (IPMI/Redfish), and a mail server in a small public DMZ whose public
address is listed as internal (as ``vigile init`` asks users to do). Outside: the
public sites people browse (a popular head and a long tail), the vendor services
machines call on their own (updates, telemetry, NTP pool, CDNs), remote staff who
read mail over OWA, and mail exchangers.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass, field

import numpy as np

from vigile.simulate.flows import Vocabs

DOMAIN = "corp.example"
MAIL_PUBLIC = "203.0.113.25"
INTERNAL = ("10.20.0.0/16", "10.30.0.0/16", "203.0.113.16/28")
MANAGEMENT = ("10.20.250.0/24",)
ADMIN_HOSTS = ("10.20.1.40/32",)

#: Servers: (name, address, role).
SERVERS = (
    ("dc01", "10.20.1.10", "dns"),
    ("ntp01", "10.20.1.11", "ntp"),
    ("file01", "10.20.1.20", "server"),
    ("web01", "10.20.1.30", "server"),
    ("mon01", "10.20.1.40", "server"),
    ("mail01", MAIL_PUBLIC, "mail"),
)

#: Sites people visit, most popular first (browsing follows a Zipf law over them).
POPULAR_SITES = (
    "www.google.com",
    "www.youtube.com",
    "www.microsoft.com",
    "www.office.com",
    "login.microsoftonline.com",
    "www.wikipedia.org",
    "github.com",
    "www.linkedin.com",
    "www.bbc.co.uk",
    "www.amazon.com",
    "www.reddit.com",
    "stackoverflow.com",
    "www.nytimes.com",
    "www.theguardian.com",
    "news.ycombinator.com",
    "www.apple.com",
    "docs.python.org",
    "www.zoom.us",
    "www.dropbox.com",
    "www.salesforce.com",
)
CDN_NAMES = (
    "fonts.gstatic.com",
    "ajax.googleapis.com",
    "cdn.jsdelivr.net",
    "cdnjs.cloudflare.com",
    "static.xx.fbcdn.net",
    "i.ytimg.com",
    "upload.wikimedia.org",
    "a.akamaihd.net",
)
#: Services machines call on their own: (name, port, protocol, period s, spread).
MACHINE_SERVICES = (
    ("v10.events.data.microsoft.com", 443, "ssl", 900.0, 0.6),
    ("settings-win.data.microsoft.com", 443, "ssl", 3600.0, 0.5),
    ("ctldl.windowsupdate.com", 80, "http", 79200.0, 0.4),
    ("edge.microsoft.com", 443, "ssl", 1800.0, 0.3),
    ("clients4.google.com", 443, "ssl", 600.0, 0.2),
)
SERVER_SERVICES = (
    ("deb.debian.org", 80, "http", 21600.0, 0.5),
    ("security.debian.org", 80, "http", 21600.0, 0.5),
)
UPSTREAM_DNS = ("9.9.9.9", "149.112.112.112")
NTP_POOL = ("162.159.200.1", "162.159.200.123", "185.125.190.56", "91.189.91.157")
_WORDS = (
    "blue",
    "river",
    "stone",
    "north",
    "maple",
    "pixel",
    "cloud",
    "green",
    "urban",
    "swift",
    "atlas",
    "cedar",
    "delta",
    "ember",
    "fable",
    "grove",
    "haven",
    "iris",
    "jade",
    "kite",
)
_TLDS = ("com", "net", "org", "io", "de", "fr", "co.uk", "se")


@dataclass(frozen=True)
class Host:
    """An internal host: address, name and role."""

    address: str
    name: str
    role: str


@dataclass
class Office:
    """The whole simulated network, with every address registered in ``vocabs``."""

    vocabs: Vocabs
    hosts: list[Host]
    workstations: np.ndarray  # address ids
    servers: dict[str, int]  # name -> address id
    bmcs: np.ndarray
    printers: np.ndarray
    sites: np.ndarray  # name ids of browsed sites, most popular first
    site_addr: np.ndarray  # address id of each site
    cdn: np.ndarray
    cdn_addr: np.ndarray
    machine_services: list[tuple[int, int, int, str, float, float]] = field(default_factory=list)
    server_services: list[tuple[int, int, int, str, float, float]] = field(default_factory=list)
    remote_staff: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    mail_peers: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    upstream_dns: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    ntp_pool: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))

    def addr(self, name: str) -> int:
        """Address id of a named server."""
        return self.servers[name]

    @property
    def internal_hosts(self) -> int:
        return len(self.hosts)


def public_address(rng: np.random.Generator) -> str:
    """A random unicast address outside private, reserved and documentation ranges."""
    while True:
        ip = ipaddress.IPv4Address(int(rng.integers(0x01000000, 0xDF000000)))
        if ip.is_global and not str(ip).startswith(("203.0.113.", "198.51.100.")):
            return str(ip)


def _name_addresses(
    vocabs: Vocabs, rng: np.random.Generator, names: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    ids = vocabs.name.ids(names)
    addrs = np.array([vocabs.addr.id(public_address(rng)) for _ in names], dtype=np.int32)
    return ids, addrs


def build_office(workstations: int, seed: int, vocabs: Vocabs | None = None) -> Office:
    """The office with ``workstations`` desktops; the same seed gives the same office.

    >>> o = build_office(3, 7)
    >>> [h.name for h in o.hosts][:3], len(o.workstations), len(o.bmcs)
    (['dc01', 'ntp01', 'file01'], 3, 5)
    """
    if not 1 <= workstations <= 65000:
        raise ValueError("workstations must be between 1 and 65,000")
    rng = np.random.default_rng([seed, 1])
    v = vocabs or Vocabs.new()
    hosts = [Host(addr, name, role) for name, addr, role in SERVERS]
    servers = {name: v.addr.id(addr) for name, addr, _ in SERVERS}
    bmc_hosts = [
        Host(f"10.20.250.{11 + i}", f"{name}-bmc", "bmc")
        for i, (name, _, _) in enumerate(SERVERS)
        if name != "mail01"
    ]
    printers = [Host(f"10.20.3.{20 + i}", f"printer{i + 1:02d}", "printer") for i in range(3)]
    base = int(ipaddress.IPv4Address("10.30.0.10"))
    desks = [
        Host(str(ipaddress.IPv4Address(base + i)), f"ws{i + 1:04d}", "workstation")
        for i in range(workstations)
    ]
    hosts += bmc_hosts + printers + desks
    for h in hosts:
        v.addr.id(h.address)
    long_tail = [f"{a}{b}.{t}" for i, (a, b, t) in enumerate(_combinations()) if i < 400]
    sites, site_addr = _name_addresses(v, rng, list(POPULAR_SITES) + long_tail)
    cdn, cdn_addr = _name_addresses(v, rng, list(CDN_NAMES))
    office = Office(
        v,
        hosts,
        v.addr.ids([h.address for h in desks]),
        servers,
        v.addr.ids([h.address for h in bmc_hosts]),
        v.addr.ids([h.address for h in printers]),
        sites,
        site_addr,
        cdn,
        cdn_addr,
    )
    for group, out in (
        (MACHINE_SERVICES, office.machine_services),
        (SERVER_SERVICES, office.server_services),
    ):
        for name, port, svc, period, spread in group:
            out.append((v.name.id(name), v.addr.id(public_address(rng)), port, svc, period, spread))
    office.remote_staff = v.addr.ids(
        [public_address(rng) for _ in range(max(3, workstations // 8))]
    )
    office.mail_peers = v.addr.ids([public_address(rng) for _ in range(30)])
    office.upstream_dns = v.addr.ids(list(UPSTREAM_DNS))
    office.ntp_pool = v.addr.ids(list(NTP_POOL))
    return office


def _combinations() -> list[tuple[str, str, str]]:
    return [
        (a, b, _TLDS[(i + j) % len(_TLDS)])
        for i, a in enumerate(_WORDS)
        for j, b in enumerate(_WORDS)
        if a != b
    ]


def render_config(office: Office, simulation: dict[str, object]) -> str:
    """The ``vigile.toml`` for this office: its networks, named hosts and the run's settings."""
    lines = [
        "# Network model of a simulated office, written by `vigile simulate`.",
        "",
        "[network]",
        f"internal = {list(INTERNAL)!r}",
        f"management = {list(MANAGEMENT)!r}",
        f"admin_hosts = {list(ADMIN_HOSTS)!r}",
        "",
    ]
    for h in office.hosts:
        if h.role == "workstation":
            continue
        lines += [f'[hosts."{h.address}"]', f'name = "{h.name}"', f'role = "{h.role}"', ""]
    lines += ["# How this data was made (read by `vigile eval`).", "[simulation]"]
    # JSON scalars and arrays are valid TOML values.
    lines += [f"{key} = {json.dumps(value)}" for key, value in simulation.items()]
    return "\n".join(lines) + "\n"
