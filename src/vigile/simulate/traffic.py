"""Benign traffic: people at work, and the periodic chatter that fools beacon detectors.

Each generator is a plain function ``(office, rng, t0, t1) -> Flows`` producing the
traffic of one chunk of time ``[t0, t1)``; :data:`BENIGN` lists them in order. The
office is in UTC; people work 08:00-18:00 on weekdays and a third of the desktops
stay on overnight. Every rate is per desktop, scaled by ``activity``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from vigile.simulate.flows import (
    REJ,
    S0,
    TCP,
    UDP,
    Flows,
    ephemeral_ports,
    periodic_times,
    service,
)
from vigile.simulate.network import DOMAIN, Office

#: Share of peak activity for each hour of a weekday (a Monday-to-Friday office).
DIURNAL = (
    np.array(
        [2, 1, 1, 1, 1, 2, 5, 30, 90, 100, 100, 90, 70, 90, 100, 100, 90, 60, 30, 15, 10, 8, 5, 3]
    )
    / 100.0
)
WEEKEND = 0.08
#: Page visits per desktop in a peak hour.
VISITS_PER_PEAK_HOUR = 40.0
BROWSER_UA = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36"
)

Generator = Callable[[Office, np.random.Generator, float, float, float], Flows]


def activity_at(ts: np.ndarray) -> np.ndarray:
    """Share of peak human activity at each Unix time (weekday diurnal curve)."""
    hours = ((ts // 3600) % 24).astype(np.int64)
    weekday = ((ts // 86400 + 3) % 7) < 5  # 1970-01-01 was a Thursday
    return DIURNAL[hours] * np.where(weekday, 1.0, WEEKEND)


def awake(office: Office, hosts: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """Whether each desktop is switched on: a third never sleep, the rest in office hours."""
    always_on = (hosts.astype(np.int64) * 2654435761 % 97) < 32
    return always_on | (activity_at(ts) >= 0.3)


def _lognormal(rng: np.random.Generator, median: float, sigma: float, n: int) -> np.ndarray:
    return np.maximum(1, rng.lognormal(np.log(median), sigma, n)).astype(np.int64)


def dns_lookups(
    office: Office,
    rng: np.random.Generator,
    ts: np.ndarray,
    clients: np.ndarray,
    names: np.ndarray,
    answers: np.ndarray,
    miss: float,
    qtype: int = 1,
    rcode: int = 0,
) -> Flows:
    """Look-ups of ``names`` by ``clients`` through the office resolver.

    A share ``miss`` is not cached by the client and reaches the resolver (dc01); of
    those, half are not cached there either and are forwarded upstream.
    """
    ask = rng.random(len(ts)) < miss
    ts, clients, names, answers = ts[ask] - 0.02, clients[ask], names[ask], answers[ask]
    n = len(ts)
    resolver = office.addr("dc01")
    # Exact DNS message sizes: header 12, name (length + 2), type and class 4; an A answer
    # is 16 bytes (name pointer, type, class, TTL, length, address); TXT/NULL answers carry
    # 16-200 bytes of data (C2 replies).
    query = office.vocabs.name.lengths()[names] + 18
    data = rng.integers(16, 200, n)
    answer = np.where(
        answers >= 0, 16, np.where(np.isin(qtype, (10, 16)) & (rcode == 0), 12 + 1 + data, 0)
    )
    common = {
        "proto": UDP,
        "service": service("dns"),
        "name": names,
        "answer": answers,
        "qtype": qtype,
        "rcode": rcode,
        "dport": 53,
    }
    local = Flows.of(
        n,
        ts=ts,
        src=clients,
        dst=resolver,
        sport=ephemeral_ports(rng, n),
        duration=rng.uniform(0.0005, 0.03, n),
        obytes=query,
        rbytes=query + answer,
        **common,
    )
    fwd = rng.random(n) < 0.5
    m = int(fwd.sum())
    upstream = Flows.of(
        m,
        ts=ts[fwd] + 0.0003,
        src=resolver,
        dst=rng.choice(office.upstream_dns, m),
        sport=ephemeral_ports(rng, m),
        duration=rng.uniform(0.005, 0.06, m),
        obytes=query[fwd],
        rbytes=(query + answer)[fwd],
        **{k: v[fwd] if isinstance(v, np.ndarray) else v for k, v in common.items()},
    )
    return Flows.concat([local, upstream])


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
        obytes=_lognormal(rng, 1200, 0.8, n),
        rbytes=_lognormal(rng, 25000, 1.5, n),
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
        obytes=_lognormal(rng, 900, 0.5, m),
        rbytes=_lognormal(rng, 60000, 1.2, m),
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
                obytes=_lognormal(rng, ob, 1.0, n),
                rbytes=_lognormal(rng, rb, 1.2, n),
            )
        )
    return Flows.concat(parts)


def _timers(
    office: Office,
    rng: np.random.Generator,
    t0: float,
    t1: float,
    hosts: np.ndarray,
    period: float,
    spread: float,
    salt: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Events of one timer on every host in ``hosts``; the phase is fixed per host."""
    phases = ((hosts.astype(np.int64) * 40503 + salt * 7919) % 10007) / 10007 * period
    who, ts = periodic_times(rng, t0, t1, period, phases.astype(np.float64), spread)
    return hosts[who], ts


def mail_clients(
    office: Office, rng: np.random.Generator, t0: float, t1: float, act: float
) -> Flows:
    """Outlook on every switched-on desktop polls the mail server every 5 minutes."""
    src, ts = _timers(office, rng, t0, t1, office.workstations, 300.0, 0.05, 1)
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
        obytes=_lognormal(rng, 1800, 0.2, n),
        rbytes=_lognormal(rng, 2500, 0.6, n),
    )


def machine_timers(
    office: Office, rng: np.random.Generator, t0: float, t1: float, act: float
) -> Flows:
    """Telemetry, update checks and browser keep-alives from desktops; updates from servers."""
    parts = []
    linux = np.array([office.addr(n) for n in ("file01", "web01", "mon01", "ntp01")], np.int32)
    groups = ((office.machine_services, office.workstations), (office.server_services, linux))
    for services, hosts in groups:
        for salt, (name, addr, port, svc, period, spread) in enumerate(services, 10):
            src, ts = _timers(office, rng, t0, t1, hosts, period, spread, salt)
            if hosts is office.workstations:
                keep = awake(office, src, ts)
                src, ts = src[keep], ts[keep]
            n = len(src)
            http = svc == "http"
            parts.append(
                Flows.of(
                    n,
                    ts=ts,
                    src=src,
                    dst=addr,
                    dport=port,
                    sport=ephemeral_ports(rng, n),
                    service=service(svc),
                    name=name,
                    duration=rng.lognormal(-1.0, 0.8, n),
                    obytes=_lognormal(rng, 700 if http else 1500, 0.3, n),
                    rbytes=_lognormal(rng, 2000 if http else 5000, 0.8, n),
                    method=1 if http else 0,
                    status=200 if http else 0,
                    uri=office.vocabs.uri.id(
                        "/msdownload/update/v3/static/trustedr/en/authrootstl.cab"
                        if port == 80 and "windows" in office.vocabs.name.values[name]
                        else "/debian/dists/"
                    ),
                    agent=office.vocabs.agent.id(
                        "Microsoft-CryptoAPI/10.0"
                        if hosts is not linux
                        else "Debian APT-HTTP/1.3 (2.6.1)"
                    ),
                )
            )
            parts.append(
                dns_lookups(
                    office,
                    rng,
                    ts,
                    src,
                    np.full(n, name, np.int32),
                    np.full(n, addr, np.int32),
                    0.3,
                )
            )
    return Flows.concat(parts)


def ntp(office: Office, rng: np.random.Generator, t0: float, t1: float, act: float) -> Flows:
    """Every host syncs with ntp01 every 1,024 s; ntp01 with the public pool every 1,024 s."""
    others = [a for n, a in office.servers.items() if n != "ntp01"]
    hosts = np.concatenate(
        [office.workstations, office.bmcs, office.printers, np.array(others, np.int32)]
    )
    src, ts = _timers(office, rng, t0, t1, hosts, 1024.0, 0.02, 2)
    pool_src, pool_ts = _timers(office, rng, t0, t1, office.ntp_pool, 1024.0, 0.02, 3)
    n, m = len(src), len(pool_src)
    common = {"proto": UDP, "dport": 123, "service": service("ntp"), "obytes": 48, "rbytes": 48}
    return Flows.concat(
        [
            Flows.of(
                n,
                ts=ts,
                src=src,
                dst=office.addr("ntp01"),
                sport=123,
                duration=rng.uniform(0.0003, 0.002, n),
                **common,
            ),
            Flows.of(
                m,
                ts=pool_ts,
                src=office.addr("ntp01"),
                dst=pool_src,
                sport=123,
                duration=rng.uniform(0.01, 0.05, m),
                **common,
            ),
        ]
    )


def monitoring(office: Office, rng: np.random.Generator, t0: float, t1: float, act: float) -> Flows:
    """mon01 polls servers (SNMP, 60 s) and BMCs (IPMI, 300 s); agents report every 60 s."""
    mon = office.addr("mon01")
    servers = np.array([a for n, a in office.servers.items() if n != "mon01"], np.int32)
    dst, ts = _timers(office, rng, t0, t1, servers, 60.0, 0.01, 4)
    bmc, bts = _timers(office, rng, t0, t1, office.bmcs, 300.0, 0.01, 5)
    agent, ats = _timers(office, rng, t0, t1, servers, 60.0, 0.02, 6)
    n, m, k = len(dst), len(bmc), len(agent)
    return Flows.concat(
        [
            Flows.of(
                n,
                ts=ts,
                src=mon,
                dst=dst,
                proto=UDP,
                sport=ephemeral_ports(rng, n),
                dport=161,
                service=service("snmp"),
                duration=0.004,
                obytes=rng.integers(80, 120, n),
                rbytes=rng.integers(300, 700, n),
            ),
            Flows.of(
                m,
                ts=bts,
                src=mon,
                dst=bmc,
                proto=UDP,
                sport=ephemeral_ports(rng, m),
                dport=623,
                service=service("ipmi"),
                duration=0.02,
                obytes=rng.integers(200, 260, m),
                rbytes=rng.integers(300, 400, m),
            ),
            Flows.of(
                k,
                ts=ats,
                src=agent,
                dst=mon,
                sport=ephemeral_ports(rng, k),
                dport=10051,
                duration=rng.uniform(0.01, 0.05, k),
                obytes=rng.integers(400, 1600, k),
                rbytes=rng.integers(40, 80, k),
            ),
        ]
    )


def mail_traffic(
    office: Office, rng: np.random.Generator, t0: float, t1: float, act: float
) -> Flows:
    """Remote staff on OWA and ActiveSync, inbound and outbound SMTP, internet scanners."""
    mail = office.addr("mail01")
    share = float(activity_at(np.array([t0]))[0]) * (t1 - t0) / 3600
    counts = rng.poisson(12 * share * act, len(office.remote_staff))
    owa = np.repeat(office.remote_staff, counts)
    sync, sts = _timers(office, rng, t0, t1, office.remote_staff, 900.0, 0.3, 7)
    n_in = rng.poisson(25 * max(share, 0.1))
    n_out = rng.poisson(12 * max(share, 0.05))
    n_scan = rng.poisson(150 * (t1 - t0) / 3600)
    sni = office.vocabs.name.id(f"mail.{DOMAIN}")
    parts = [
        Flows.of(
            len(owa),
            ts=t0 + rng.random(len(owa)) * (t1 - t0),
            src=owa,
            dst=mail,
            sport=ephemeral_ports(rng, len(owa)),
            dport=443,
            service=service("ssl"),
            name=sni,
            duration=rng.lognormal(0.5, 1.2, len(owa)),
            obytes=_lognormal(rng, 2500, 0.8, len(owa)),
            rbytes=_lognormal(rng, 40000, 1.3, len(owa)),
        ),
        Flows.of(
            len(sync),
            ts=sts,
            src=sync,
            dst=mail,
            sport=ephemeral_ports(rng, len(sync)),
            dport=443,
            service=service("ssl"),
            name=sni,
            duration=rng.uniform(850, 900, len(sync)),
            obytes=_lognormal(rng, 1400, 0.2, len(sync)),
            rbytes=_lognormal(rng, 900, 0.8, len(sync)),
        ),
        Flows.of(
            n_in,
            ts=t0 + rng.random(n_in) * (t1 - t0),
            src=rng.choice(office.mail_peers, n_in),
            dst=mail,
            dport=25,
            sport=ephemeral_ports(rng, n_in),
            service=service("smtp"),
            duration=rng.lognormal(0.5, 0.7, n_in),
            obytes=_lognormal(rng, 30000, 1.5, n_in),
            rbytes=_lognormal(rng, 600, 0.3, n_in),
        ),
        Flows.of(
            n_out,
            ts=t0 + rng.random(n_out) * (t1 - t0),
            src=mail,
            dst=rng.choice(office.mail_peers, n_out),
            dport=25,
            sport=ephemeral_ports(rng, n_out),
            service=service("smtp"),
            duration=rng.lognormal(0.5, 0.7, n_out),
            obytes=_lognormal(rng, 25000, 1.5, n_out),
            rbytes=_lognormal(rng, 600, 0.3, n_out),
        ),
        Flows.of(
            n_scan,
            ts=t0 + rng.random(n_scan) * (t1 - t0),
            src=office.vocabs.addr.ids(
                [
                    f"45.{i % 250}.{(i * 7) % 250}.{(i * 13) % 250 + 1}"
                    for i in rng.integers(0, 5000, n_scan)
                ]
            ),
            dst=mail,
            sport=ephemeral_ports(rng, n_scan),
            dport=rng.choice([22, 23, 80, 445, 3389, 8080, 5900, 1433], n_scan),
            state=np.where(rng.random(n_scan) < 0.7, REJ, S0),
            duration=0.0,
        ),
    ]
    return Flows.concat(parts)


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

__all__ = ["BENIGN", "TCP", "UDP", "activity_at", "awake", "dns_lookups"]
