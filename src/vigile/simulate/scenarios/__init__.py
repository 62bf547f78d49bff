"""Attack scenarios that can be hidden in simulated traffic.

A scenario is a small dataclass whose fields are its parameters (with the defaults
documented in ``docs/evaluation.md``); :meth:`Scenario.generate` returns its
connections and the :class:`Truth` record that says which host, pair and time
window it occupies. ``SCENARIOS`` lists every scenario in one place.

Parameters are given on the command line as ``NAME:key=value,key=value``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Protocol

import numpy as np

from vigile.errors import ConfigError
from vigile.simulate.flows import Flows
from vigile.simulate.network import Office
from vigile.simulate.scenarios.base import Truth
from vigile.simulate.scenarios.bmc_beacon import BmcBeaconScenario
from vigile.simulate.scenarios.dns_beacon import DnsBeaconScenario
from vigile.simulate.scenarios.dns_tunnel import DnsTunnelScenario
from vigile.simulate.scenarios.http_beacon import HttpBeaconScenario
from vigile.simulate.scenarios.https_beacon import HttpsBeaconScenario
from vigile.simulate.scenarios.long_connection import LongConnectionScenario
from vigile.simulate.scenarios.mailbox_exfil import MailboxExfilScenario
from vigile.simulate.scenarios.port_scan import PortScanScenario
from vigile.simulate.scenarios.slow_beacon import SlowBeaconScenario
from vigile.simulate.scenarios.udp_scan import UdpScanScenario
from vigile.simulate.scenarios.upload_exfil import UploadExfilScenario


class Scenario(Protocol):
    """What every scenario class provides."""

    name: ClassVar[str]
    kind: ClassVar[str]
    summary: ClassVar[str]

    def generate(
        self, office: Office, rng: np.random.Generator, start: float, end: float, label: int
    ) -> tuple[Flows, Truth]: ...


#: Every scenario, by the name used on the command line.
SCENARIOS: dict[str, type[Any]] = {
    cls.name: cls
    for cls in (
        BmcBeaconScenario,
        HttpBeaconScenario,
        HttpsBeaconScenario,
        DnsBeaconScenario,
        SlowBeaconScenario,
        DnsTunnelScenario,
        MailboxExfilScenario,
        UploadExfilScenario,
        LongConnectionScenario,
        PortScanScenario,
        UdpScanScenario,
    )
}
#: What ``vigile simulate`` hides in the traffic unless told otherwise (the demo story).
DEFAULT_SCENARIOS = ("bmc_beacon", "mailbox_exfil")


def parse_scenario(text: str) -> Scenario:
    """A scenario from ``NAME`` or ``NAME:key=value,...``.

    >>> parse_scenario("bmc_beacon:period=120,jitter=0.3").period
    120.0
    """
    name, _, args = text.partition(":")
    cls = SCENARIOS.get(name.strip())
    if cls is None:
        raise ConfigError(f"unknown scenario {name!r}; choose from {', '.join(SCENARIOS)}")
    # With postponed annotations the field types are the strings "float", "int", "str".
    types = {f.name: str(getattr(f.type, "__name__", f.type)) for f in dataclasses.fields(cls)}
    params: dict[str, Any] = {}
    for item in filter(None, (a.strip() for a in args.split(","))):
        key, eq, value = item.partition("=")
        if not eq or key not in types:
            raise ConfigError(
                f"scenario {name}: unknown parameter {key!r}; it has {', '.join(types)}"
            )
        kind = types[key]
        try:
            params[key] = {"float": float, "int": int}.get(kind, str)(value)
        except ValueError:
            raise ConfigError(f"scenario {name}: {key}={value!r} is not a {kind}") from None
    scenario: Scenario = cls(**params)
    return scenario


__all__ = ["DEFAULT_SCENARIOS", "SCENARIOS", "Scenario", "Truth", "parse_scenario"]


def render_parameters() -> str:
    """The Markdown table of every scenario's parameters and defaults (in docs/evaluation.md)."""
    lines = ["| scenario | kind | what it does | parameters (defaults) |", "|---|---|---|---|"]
    for name, cls in SCENARIOS.items():
        params = ", ".join(f"`{f.name}={f.default!r}`" for f in dataclasses.fields(cls) if f.init)
        lines.append(f"| `{name}` | {cls.kind} | {cls.summary} | {params} |")
    return "\n".join(lines) + "\n"
