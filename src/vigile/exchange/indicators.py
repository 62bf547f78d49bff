"""Requests from addresses published as HAFNIUM infrastructure (IIS and HttpProxy logs).

CISA's CHIRP ships the Volexity address list of March 2021 as an IOC file and greps
the IIS logs for it; vigile keeps the same list in ``vigile/data/hafnium_ips.txt``
(no download at run time). The addresses are rented servers, so a hit from 2021 is
scored high and a later one medium: it may be someone else by then.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files as package_files
from typing import ClassVar

from vigile.detect import Finding
from vigile.exchange import LogBlock, LogRecord
from vigile.exchange.grouping import Grouper


@cache
def hafnium_addresses() -> frozenset[str]:
    """The published addresses, one per line in the data file (``#`` starts a comment).

    >>> "103.77.192.219" in hafnium_addresses()
    True
    """
    text = package_files("vigile").joinpath("data/hafnium_ips.txt").read_text()
    lines = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return frozenset(line for line in lines if line)


class PublishedAddressCheck:
    """IIS or HttpProxy requests whose client address is on the published HAFNIUM list."""

    name: ClassVar[str] = "exchange-hafnium-address"
    kinds: ClassVar[tuple[str, ...]] = ("iis", "httpproxy")
    summary: ClassVar[str] = "Requests from addresses published by Volexity/CISA for HAFNIUM"
    source: ClassVar[str] = "CISA CHIRP Hafnium IOC file; CISA AA21-062A; Volexity"

    def __init__(self) -> None:
        self.groups = Grouper(self.name)
        self.known = hafnium_addresses()

    def feed(self, record: LogRecord) -> None:
        client = record.get("c-ip") if record.kind == "iis" else record.iget("ClientIpAddress")
        if client not in self.known:
            return
        in_campaign = record.ts is not None and record.ts.year == 2021
        self.groups.add(
            client,
            "published-2021" if in_campaign else "published-later",
            0.8 if in_campaign else 0.55,
            record,
            request=record.get("cs-uri-stem") or record.iget("UrlStem"),
        )

    def feed_block(self, block: LogBlock) -> None:
        """:meth:`feed` for the rows from a listed address (a set test per block)."""
        rows = block.rows
        clients = rows.column("c-ip") if block.kind == "iis" else rows.icolumn("ClientIpAddress")
        if self.known.isdisjoint(clients):
            return
        for i, client in enumerate(clients):
            if client in self.known:
                self.feed(block.record(i))

    def finish(self) -> list[Finding]:
        return self.groups.findings(
            {
                "published-2021": "the address is on the HAFNIUM list Volexity and CISA "
                "published in March 2021",
                "published-later": "the address was on the March 2021 HAFNIUM list; the "
                "server may have changed hands since",
            }
        )
