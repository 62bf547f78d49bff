"""The network model: which addresses are ours, named hosts, roles, allowlists.

Read from a TOML file (``vigile.toml`` in the working directory, or ``--config``);
``vigile init`` writes the commented default below. Sections this module does not
know (``[vault]``, ``[ingest.pcap]``, ``[detectors.beacon]``, …) are kept in
:attr:`Config.raw` for the component that owns them.
"""

from __future__ import annotations

import ipaddress
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vigile.errors import ConfigError

if TYPE_CHECKING:  # imported where used: commands that only read the config stay light
    import numpy as np
    import pyarrow as pa

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: RFC 1918, RFC 4193 (unique local), link-local and loopback, v4 and v6.
DEFAULT_INTERNAL = (
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "169.254.0.0/16",
    "127.0.0.0/8",
    "fc00::/7",
    "fe80::/10",
    "::1/128",
)

DEFAULT_CONFIG = f"""\
# vigile configuration. Every setting is optional; the values shown are the defaults.

[network]
# Addresses that belong to your organisation. Traffic between two of them is internal;
# traffic crossing this line is inbound or outbound. Add your public server addresses
# here so that their inbound traffic is scored as "to an internal server".
internal = {list(DEFAULT_INTERNAL)!r}
# Management-plane subnets (BMC/IPMI, iDRAC, iLO); hosts here get the role "bmc".
management = []
# Hosts allowed to reach the management plane.
admin_hosts = []

# Name a host and fix its role (server, mail, dns, ntp, bmc, workstation, printer):
# [hosts."10.0.0.25"]
# name = "mail01"
# role = "mail"

[allowlist]
# Allowlist files (TOML); see docs/allowlists.md.
files = []

[hunt]
# Scoring window in hours, ending at the newest timestamp in the store (RITA uses 24).
window_hours = 24

[ingest.pcap]
# Packet captures: a flow with no packet for this many seconds ends, and a later packet
# starts a new one (Zeek's inactivity timeouts; the ICMP one also covers other protocols).
tcp_inactivity_timeout = 300
udp_inactivity_timeout = 60
icmp_inactivity_timeout = 60

# Mail backup (`vigile vault`); see docs/vault.md. Uncomment to use.
# [vault]
# path = "/srv/vigile-vault"
# key_file = "/root/vigile-vault.key"    # or passphrase_command = "pass show vigile/vault"
# stale_after_hours = 26                 # the console warns when a backup is older
#
# [[vault.accounts]]
# name = "alice"
# host = "mail.example.org"
# security = "tls"                       # tls | starttls | plain (loopback only)
# username = "alice@example.org"
# password_command = "pass show mail/alice"
"""


@dataclass(frozen=True)
class HostConfig:
    """A host the user named, with an optional fixed role."""

    address: str
    name: str | None = None
    role: str | None = None


@dataclass(frozen=True)
class Network:
    """Address classes of the monitored network."""

    internal: tuple[IPNetwork, ...] = tuple(ipaddress.ip_network(n) for n in DEFAULT_INTERNAL)
    management: tuple[IPNetwork, ...] = ()
    admin_hosts: tuple[IPNetwork, ...] = ()

    def is_internal(self, address: str) -> bool:
        """True if ``address`` is in an internal network.

        >>> Network().is_internal("10.1.2.3"), Network().is_internal("8.8.8.8")
        (True, False)
        """
        return _in_networks(address, self.internal)

    def internal_mask(self, addresses: pa.Array | pa.ChunkedArray) -> np.ndarray:
        """Vectorised :meth:`is_internal` over an Arrow string array."""
        return match_networks(addresses, self.internal)


@dataclass(frozen=True)
class Config:
    """The whole configuration; :attr:`raw` keeps every section as read."""

    network: Network = field(default_factory=Network)
    hosts: dict[str, HostConfig] = field(default_factory=dict)
    allowlist_files: tuple[Path, ...] = ()
    window_hours: float = 24.0
    path: Path | None = None
    raw: dict[str, Any] = field(default_factory=dict)

    def section(self, name: str) -> dict[str, Any]:
        """A section owned by another component (``[vault]``, ``[detectors.x]``)."""
        value = self.raw
        for part in name.split("."):
            value = value.get(part, {})
        return dict(value)


#: Roles a host may be given in ``[hosts."<ip>"]`` (the comment of DEFAULT_CONFIG).
HOST_ROLES = ("server", "mail", "dns", "ntp", "bmc", "workstation", "printer")

#: Sections vigile's own components read. Another top-level section is kept for a
#: plug-in, unless its name is so close to one of these that it is surely a typo.
KNOWN_SECTIONS = (
    "network",
    "hosts",
    "allowlist",
    "hunt",
    "ingest",
    "detectors",
    "exchange",
    "vault",
    "simulation",
)
NETWORK_KEYS = ("internal", "management", "admin_hosts")


def _check_typos(names: Iterable[str], known: tuple[str, ...], what: str) -> None:
    """Refuse a name that is not known but near one (``[netwrok]``, ``internals``): a
    misspelt setting would otherwise be ignored without a word."""
    import difflib

    for name in names:
        if name not in known:
            near = difflib.get_close_matches(name, known, n=1, cutoff=0.75)
            if near:
                raise ConfigError(f"{what.format(name)} is unknown; did you mean {near[0]!r}?")


def _check_host(path: Path, address: str, entry: Any) -> None:
    where = f'{path} [hosts."{address}"]'
    if not isinstance(entry, dict):
        raise ConfigError(f"{where} must be a table")
    if _parse_ip(address) is None:
        raise ConfigError(f"{where}: {address!r} is not an IP address")
    if not isinstance(entry.get("name", ""), str):
        raise ConfigError(f"{where} name must be text")
    role = entry.get("role")
    if role is not None and role not in HOST_ROLES:
        raise ConfigError(f"{where} role {role!r}: use one of {', '.join(HOST_ROLES)}")


def _parse_networks(values: Any, where: str) -> tuple[IPNetwork, ...]:
    if not isinstance(values, list):
        raise ConfigError(f"{where} must be a list of CIDRs")
    nets = []
    for v in values:
        try:
            nets.append(ipaddress.ip_network(str(v), strict=False))
        except ValueError:
            raise ConfigError(f"{where}: {v!r} is not an IP network (CIDR)") from None
    return tuple(nets)


def load_config(path: Path | None = None) -> Config:
    """Read the configuration; ``None`` reads ``./vigile.toml`` if present, else defaults."""
    if path is None:
        default = Path("vigile.toml")
        if not default.exists():
            return Config()
        path = default
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: configuration file not found") from None
    except OSError as e:  # a folder, no permission
        raise ConfigError(f"{path}: cannot read configuration: {e.strerror or e}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: {e}") from None
    _check_typos(raw, KNOWN_SECTIONS, f"{path}: section [{{}}]")
    net = _table(raw, "network", path)
    _check_typos(net, NETWORK_KEYS, f"{path} [network] {{}}")
    network = Network(
        internal=_parse_networks(
            net.get("internal", list(DEFAULT_INTERNAL)), f"{path} [network] internal"
        ),
        management=_parse_networks(net.get("management", []), f"{path} [network] management"),
        admin_hosts=_parse_networks(net.get("admin_hosts", []), f"{path} [network] admin_hosts"),
    )
    hosts = {}
    for address, entry in _table(raw, "hosts", path).items():
        _check_host(path, address, entry)
        hosts[address] = HostConfig(address, entry.get("name"), entry.get("role"))
    files = _table(raw, "allowlist", path).get("files", [])
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        raise ConfigError(f"{path} [allowlist] files must be a list of file names")
    allowlists = tuple((path.parent / f) for f in files)
    window = _table(raw, "hunt", path).get("window_hours", 24)
    if isinstance(window, bool) or not isinstance(window, int | float) or not 0 < window <= 1e6:
        raise ConfigError(f"{path} [hunt] window_hours must be a number of hours, 0 to 1e6")
    return Config(network, hosts, allowlists, float(window), path, raw)


def _table(raw: dict[str, Any], name: str, path: Path) -> dict[str, Any]:
    """The section ``name`` of the file (empty if absent); refused unless it is a table."""
    value = raw.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: {name} must be a table ([{name}])")
    return value


@lru_cache(maxsize=65536)
def _parse_ip(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return None


def _in_networks(address: str, networks: Iterable[IPNetwork]) -> bool:
    ip = _parse_ip(address)
    return ip is not None and any(ip.version == n.version and ip in n for n in networks)


def match_networks(
    addresses: pa.Array | pa.ChunkedArray, networks: tuple[IPNetwork, ...]
) -> np.ndarray:
    """Boolean mask: which addresses fall in any of ``networks``.

    Addresses repeat heavily in traffic, so each distinct value is parsed once.

    >>> import pyarrow as pa
    >>> match_networks(pa.array(["10.0.0.1", "8.8.8.8", "10.0.0.1"]),
    ...                (ipaddress.ip_network("10.0.0.0/8"),)).tolist()
    [True, False, True]
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    encoded = pc.dictionary_encode(addresses)
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.combine_chunks()
    values = encoded.dictionary.to_pylist()
    lookup = np.array([_in_networks(v, networks) for v in values] + [False], dtype=bool)
    indices = encoded.indices.fill_null(len(values)).to_numpy(zero_copy_only=False)
    return lookup[indices]
