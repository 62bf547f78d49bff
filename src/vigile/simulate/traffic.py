"""Benign traffic, part one: people at work (browsing, internal services, mail).

Each generator is a plain function ``(office, rng, t0, t1, activity) -> Flows``
producing the traffic of one chunk of time ``[t0, t1)``; :data:`BENIGN` lists every
benign generator (these and the machine chatter of :mod:`.chatter`) in order. Rates
are per desktop and scaled by ``activity``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from vigile.simulate.activity import activity_at, awake, dns_lookups, lognormal, timers
from vigile.simulate.chatter import machine_timers, mail_traffic, monitoring, ntp
from vigile.simulate.flows import Flows, ephemeral_ports, service
from vigile.simulate.network import DOMAIN, Office

VISITS_PER_PEAK_HOUR = 40.0
BROWSER_UA = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36"
)

Generator = Callable[[Office, np.random.Generator, float, float, float], Flows]


def browsing(office: Office, rng: np.random.Generator, t0: float, t1: float, act: float) -> Flows:
    """Web browsing: a visit is a look-up, one page connection and a few CDN fetches."""
    desks = office.workstations
    lam = VISITS_PER_PEAK_HOUR * act * float(activity_at(np.array([t0]))[0]) * (t1 - t0) / 3600
    counts = rng.poisson(lam, len(desks))
    src = np.repeat(desks, counts)
    n = len(src)
    ts = t0 + rng.random(n) * (t1 - t0)
    rank = np.minimum(rng.zipf(1.3, n) - 1, len(office.sites) - 1)
    name, dst = office.sites[rank], office.site_addr[rank]
    plain = rng.random(n) < 0.08
    page = Flows.of(
        n,
        ts=ts,
        src=src,
        dst=dst,
        sport=ephemeral_ports(rng, n),
        dport=np.where(plain, 80, 443),
        service=np.where(plain, service("http"), service("ssl")),
        name=name,
        duration=rng.lognormal(0.0, 1.3, n),
        obytes=lognormal(rng, 1200, 0.8, n),
        rbytes=lognormal(rng, 25000, 1.5, n),
        method=np.where(plain, 1, 0),
        status=np.where(plain, 200, 0),
        agent=office.vocabs.agent.id(BROWSER_UA),
        uri=office.vocabs.uri.id("/"),
    )
    k = rng.integers(0, len(office.cdn), n)
    extra = rng.random(n) < 0.6
    m = int(extra.sum())
    cdn = Flows.of(
        m,
        ts=ts[extra] + rng.uniform(0.05, 2.0, m),
        src=src[extra],
        dst=office.cdn_addr[k[extra]],
        sport=ephemeral_ports(rng, m),
        dport=443,
        service=service("ssl"),
        name=office.cdn[k[extra]],
        duration=rng.lognormal(-0.5, 1.0, m),
        obytes=lognormal(rng, 900, 0.5, m),
        rbytes=lognormal(rng, 60000, 1.2, m),
    )
    lookups = dns_lookups(
        office,
        rng,
        np.concatenate([ts, cdn.ts]),
        np.concatenate([src, cdn.src]),
        np.concatenate([name, cdn.name]),
        np.concatenate([dst, cdn.dst]),
        0.5,
    )
    return Flows.concat([page, cdn, lookups])


def internal_services(
    office: Office, rng: np.random.Generator, t0: float, t1: float, act: float
) -> Flows:
    """Kerberos and LDAP to the domain controller, SMB to the file server, the intranet."""
    targets = (
        ("dc01", 88, "krb", 6.0, 1500, 1800),
        ("dc01", 389, "ldap", 8.0, 600, 4000),
        ("file01", 445, "smb", 5.0, 20000, 400000),
        ("web01", 443, "ssl", 4.0, 1500, 30000),
        ("printer", 9100, "", 0.05, 300000, 100),
    )
    share = float(activity_at(np.array([t0]))[0]) * act * (t1 - t0) / 3600
    parts = []
    for name, port, svc, per_hour, ob, rb in targets:
        counts = rng.poisson(per_hour * share, len(office.workstations))
        src = np.repeat(office.workstations, counts)
        n = len(src)
        dst = rng.choice(office.printers, n) if name == "printer" else office.addr(name)
        parts.append(
            Flows.of(
                n,
                ts=t0 + rng.random(n) * (t1 - t0),
                src=src,
                dst=dst,
                dport=port,
                sport=ephemeral_ports(rng, n),
                service=service(svc) if svc else 0,
                name=office.vocabs.name.id(f"intranet.{DOMAIN}") if name == "web01" else -1,
                duration=rng.lognormal(0.0, 1.5, n),
                obytes=lognormal(rng, ob, 1.0, n),
                rbytes=lognormal(rng, rb, 1.2, n),
            )
        )
    return Flows.concat(parts)


def mail_clients(
    office: Office, rng: np.random.Generator, t0: float, t1: float, act: float
) -> Flows:
    """Outlook on every switched-on desktop polls the mail server every 5 minutes."""
    src, ts = timers(office, rng, t0, t1, office.workstations, 300.0, 0.05, 1)
    on = awake(office, src, ts)
    src, ts = src[on], ts[on]
    n = len(src)
    return Flows.of(
        n,
        ts=ts,
        src=src,
        dst=office.addr("mail01"),
        sport=ephemeral_ports(rng, n),
        dport=443,
        service=service("ssl"),
        name=office.vocabs.name.id(f"mail.{DOMAIN}"),
        duration=rng.uniform(0.05, 0.4, n),
        obytes=lognormal(rng, 1800, 0.2, n),
        rbytes=lognormal(rng, 2500, 0.6, n),
    )


#: The benign generators, in the order their traffic is produced.
BENIGN: tuple[Generator, ...] = (
    browsing,
    internal_services,
    mail_clients,
    machine_timers,
    ntp,
    monitoring,
    mail_traffic,
)
