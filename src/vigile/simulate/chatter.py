"""Benign traffic, part two: what machines do on their own.

Telemetry, update checks and keep-alives from desktops, package updates from the
Linux servers, NTP, monitoring polls (including the BMCs, from the admin host), and
the mail server's traffic with the outside: remote staff, SMTP, internet scanners.
These are the periodic flows that fool beacon detectors.
"""

from __future__ import annotations

import numpy as np

from vigile.simulate.activity import activity_at, awake, dns_lookups, lognormal, timers
from vigile.simulate.flows import REJ, S0, UDP, Flows, ephemeral_ports, service
from vigile.simulate.network import DOMAIN, Office
from vigile.simulate.writers.services import rmcp_plus_size, snmp_size


def machine_timers(
    office: Office, rng: np.random.Generator, t0: float, t1: float, act: float
) -> Flows:
    """Telemetry, update checks and browser keep-alives from desktops; updates from servers."""
    parts = []
    linux = np.array([office.addr(n) for n in ("file01", "web01", "mon01", "ntp01")], np.int32)
    groups = ((office.machine_services, office.workstations), (office.server_services, linux))
    for services, hosts in groups:
        for salt, (name, addr, port, svc, period, spread) in enumerate(services, 10):
            src, ts = timers(office, rng, t0, t1, hosts, period, spread, salt)
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
                    obytes=lognormal(rng, 700 if http else 1500, 0.3, n),
                    rbytes=lognormal(rng, 2000 if http else 5000, 0.8, n),
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
    src, ts = timers(office, rng, t0, t1, hosts, 1024.0, 0.02, 2)
    pool_src, pool_ts = timers(office, rng, t0, t1, office.ntp_pool, 1024.0, 0.02, 3)
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
    dst, ts = timers(office, rng, t0, t1, servers, 60.0, 0.01, 4)
    bmc, bts = timers(office, rng, t0, t1, office.bmcs, 300.0, 0.01, 5)
    agent, ats = timers(office, rng, t0, t1, servers, 60.0, 0.02, 6)
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
                obytes=snmp_size(rng.integers(80, 120, n)),
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
                obytes=rmcp_plus_size(rng.integers(200, 260, m)),
                rbytes=rmcp_plus_size(rng.integers(300, 400, m)),
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
    sync, sts = timers(office, rng, t0, t1, office.remote_staff, 900.0, 0.3, 7)
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
            obytes=lognormal(rng, 2500, 0.8, len(owa)),
            rbytes=lognormal(rng, 40000, 1.3, len(owa)),
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
            obytes=lognormal(rng, 1400, 0.2, len(sync)),
            rbytes=lognormal(rng, 900, 0.8, len(sync)),
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
            obytes=lognormal(rng, 30000, 1.5, n_in),
            rbytes=lognormal(rng, 600, 0.3, n_in),
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
            obytes=lognormal(rng, 25000, 1.5, n_out),
            rbytes=lognormal(rng, 600, 0.3, n_out),
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
